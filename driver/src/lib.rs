//! The Eddy driver: launches workers, runs the gather service of the callback protocol,
//! waits for the cloud to form, then watches it as an observer client.
//!
//! [`cloud::drive`] holds the protocol and is the same for every [`launcher::WorkerLauncher`].

pub mod cli;
pub mod cloud;
mod cloud_options;
pub mod frames;
pub mod launcher;
pub mod ssh;
pub mod status;
pub mod yarn;

use std::path::PathBuf;

use eddy_common::env::Environment;

pub use cli::{Cli, CloudArgs, Command, LocalArgs};
pub use cloud::Outcome;

/// Errors of the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A setting is unusable.
    #[error("{0}")]
    InvalidArgument(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we tried.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The cloud did not form.
    #[error("{0}")]
    NotFormed(String),
    /// A worker died or went silent.
    #[error("{0}")]
    WorkerLost(String),
    /// Hosts reached over SSH failed (each named, with why).
    #[error("{0}")]
    Ssh(String),
    /// YARN refused or failed something.
    #[error("{0}")]
    Yarn(String),
    /// Gathering failed.
    #[error(transparent)]
    Gather(#[from] eddy_embedded_config::EmbeddedConfigError),
    /// The node runtime failed.
    #[error(transparent)]
    Node(#[from] eddy_node::NodeError),
    /// The shared vocabulary refused something.
    #[error(transparent)]
    Common(#[from] eddy_common::CommonError),
}

/// Result with [`DriverError`].
pub type DriverResult<T> = Result<T, DriverError>;

/// Runs a parsed command line.
/// `env` is the process environment, read once by `main`.
pub async fn run(cli: Cli, env: Environment) -> DriverResult<Outcome> {
    match cli.command {
        Some(Command::Local(args)) => run_local(args, &env).await,
        Some(Command::Yarn(args)) => yarn::run(args, &env).await,
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
        return Err(DriverError::InvalidArgument("attach needs --secret-file: the secret of the workers that someone else starts".into()));
    }
    options.gather_file_opt = args.gather_file.clone();
    options.stop_on_stdin_eof = args.stop_on_stdin_eof;
    if args.cloud.disown {
        return Err(DriverError::InvalidArgument("attach watches workers it did not start: --disown has no meaning here".into()));
    }
    let mut launcher = launcher::ExternalLauncher;
    cloud::drive(&mut launcher, options).await
}

/// An error with its causes, for a user's message: a client library's own words (ssh's, a
/// TLS verifier's "invalid peer certificate: UnknownIssuer") sit in the sources.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

pub(crate) fn default_cloud_name(env: &Environment) -> String {
    let user = env.login_user();
    // Only tells one user's clouds apart; nothing secret depends on it.
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    format!("eddy-{user}-{:02x}{:02x}", bytes[0], bytes[1])
}

/// Finds `eddy-mapper`: the explicit path, else next to this executable, else on `PATH`.
pub fn find_mapper(explicit: Option<PathBuf>, env: &Environment) -> DriverResult<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p);
        }
        return Err(DriverError::InvalidArgument(format!("the mapper binary {} does not exist", p.display())));
    }
    let name = format!("eddy-mapper{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(paths) = env.get("PATH") {
        for dir in std::env::split_paths(paths) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(DriverError::InvalidArgument(format!(
        "cannot find {name} next to eddy-driver or on PATH; build it (cargo build -p eddy-mapper) or pass --mapper PATH"
    )))
}
