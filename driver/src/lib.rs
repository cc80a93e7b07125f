//! The Eddy driver: the command line, and the launchers that start workers on this machine
//! (`local`), on hosts over SSH (`ssh`) or nowhere (`attach`, workers someone else starts).
//! The protocol, the YARN application and the observer are in `eddy-launch`, which the
//! ApplicationMaster in `eddy-mapper am` shares.

pub mod cli;
pub mod launcher;
pub mod ssh;

use eddy_common::env::Environment;
pub use eddy_launch::{cloud, default_cloud_name, error_chain, find_mapper, frames, yarn_application, DriverError, DriverResult, Outcome};

pub use cli::{Cli, Command, LocalArgs};
pub use eddy_launch::args::CloudArgs;

/// Runs a parsed command line.
/// `env` is the process environment, read once by `main`.
pub async fn run(cli: Cli, env: Environment) -> DriverResult<Outcome> {
    match cli.command {
        Some(Command::Local(args)) => run_local(args, &env).await,
        Some(Command::Yarn(args)) => yarn_application::run(args, &env).await,
        Some(Command::Attach(args)) => run_attach(args, &env).await,
        Some(Command::Ssh(args)) => ssh::run(*args, &env).await,
        Some(Command::Import(args)) => frames::import_over_rest(args).await.map(|()| Outcome::Stopped),
        Some(Command::Token(args)) => {
            let secret = eddy_common::ClusterSecret::from_file(&args.secret_file)?;
            println!("{}", secret.rest_token(&args.name));
            Ok(Outcome::Stopped)
        }
        Some(Command::CloudCa(args)) => {
            let secret = eddy_common::ClusterSecret::from_file(&args.secret_file)?;
            print!("{}", eddy_common::tls::InternalTls::cloud_ca_pem(&secret)?);
            Ok(Outcome::Stopped)
        }
        None => run_local(LocalArgs::default_check(), &env).await,
    }
}

async fn run_local(args: LocalArgs, env: &Environment) -> DriverResult<Outcome> {
    let mapper = find_mapper(args.mapper.clone(), env)?;
    let cloud_name = args.cloud.name.clone().unwrap_or_else(|| default_cloud_name(env));
    let log_dir = args.log_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("eddy-logs").join(&cloud_name));
    let mut launcher = launcher::LocalLauncher::new(mapper, log_dir, env)?;
    let mut options = cloud::CloudOptions::from_args(&args.cloud, cloud_name, env)?;
    // Local workers bind the driver's address unless the user asked for an interface by network.
    if options.network_opt.is_none() {
        options.worker_ip_opt = Some(options.driver_ip);
    }
    options.stop_on_stdin_eof = args.stop_on_stdin_eof;
    if options.memory_opt.is_none() {
        let share = eddy_node::stats::default_memory_budget() / u64::from(args.cloud.nodes.unwrap_or(cloud::DEFAULT_NODES).max(1));
        options.memory_opt = Some(share.to_string());
    }
    cloud::drive(&mut launcher, options).await
}

async fn run_attach(args: cli::AttachArgs, env: &Environment) -> DriverResult<Outcome> {
    let cloud_name = args.cloud.name.clone().unwrap_or_else(|| default_cloud_name(env));
    let mut options = cloud::CloudOptions::from_args(&args.cloud, cloud_name, env)?;
    if options.secret_opt.is_none() {
        return Err(DriverError::InvalidArgument {
            reason: "attach needs --secret-file: the secret of the workers that someone else starts".into(),
        });
    }
    options.gather_file_opt = args.gather_file.clone();
    options.stop_on_stdin_eof = args.stop_on_stdin_eof;
    if args.cloud.disown {
        return Err(DriverError::InvalidArgument {
            reason: "attach watches workers it did not start: --disown has no meaning here".into(),
        });
    }
    let mut launcher = launcher::ExternalLauncher;
    cloud::drive(&mut launcher, options).await
}
