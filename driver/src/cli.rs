//! The command line of `eddy-driver`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eddy_common::parse_duration;
pub use eddy_launch::args::{parse_port_range, CloudArgs, ImportArgs, YarnAction, YarnArgs};

/// `eddy-driver`: launch an Eddy cloud and watch it.
#[derive(Debug, Parser)]
#[command(
    name = "eddy-driver",
    version,
    about = "Launch an Eddy cloud and stay attached to it as an observer client.",
    long_about = "Launch an Eddy cloud and stay attached to it as an observer client.\n\n\
        The driver starts the workers, gathers their addresses through its gather service,\n\
        hands every worker the same peer list, waits until they agree, prints the cloud,\n\
        and then watches it: Ctrl-C or POST /3/Shutdown stops every worker. A worker that\n\
        dies is named; the survivors remove it, read its chunks of imported frames again\n\
        from their sources and carry on (with --fail-fast the driver stops the cloud and\n\
        exits non-zero instead).\n\n\
        Without a subcommand: `local --nodes 3 --check --import data/sample.csv`\n\
        (a local cloud imports the sample dataset, prints its summary and stops).",
    after_help = "Examples:\n  eddy-driver local --nodes 3\n  eddy-driver local --nodes 2 --port 0 --notify leader.txt --disown\n\n\
        Exit codes:\n  0    the cloud was stopped on purpose (POST /3/Shutdown, --check, --disown) and every worker exited\n  \
        1    something failed: a worker died, the cloud did not form in time, an import failed (the message says which)\n  \
        2    the command line is wrong\n  \
        130  stopped by SIGINT (Ctrl-C), after stopping the cloud in order\n  \
        143  stopped by SIGTERM, after stopping the cloud in order\n\n\
        All EDDY_* variables: docs/configuration.md"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a cloud of worker processes on this machine
    Local(LocalArgs),
    /// Start a cloud in YARN containers (the driver is the ApplicationMaster), or `yarn kill APP_ID`
    Yarn(YarnArgs),
    /// Import a dataset into a running cloud and print its summary
    Import(ImportArgs),
    /// Gather and watch workers that someone else starts (the Spark integration starts them in executors)
    Attach(AttachArgs),
    /// Print the REST access token of a cloud whose secret file you hold (e.g. standalone workers started with --secret-file)
    Token(TokenArgs),
    /// Print the certificate of a cloud's own CA (PEM), which its internal channels chain to, from its secret file
    CloudCa(CloudCaArgs),
    /// Start a cloud on plain hosts over SSH (a hosts file), or `ssh status|stop|restart` the workers it left
    Ssh(Box<SshArgs>),
}

/// `eddy-driver ssh`.
#[derive(Debug, Clone, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Start a cloud on plain hosts over SSH: no YARN, no Kubernetes, just machines you can ssh to.\n\n\
        For every host of --hosts the driver opens one SSH connection (the system's OpenSSH\n\
        client: your ~/.ssh/config, agent, known_hosts and ProxyJump apply), copies eddy-mapper\n\
        into --install-dir unless the identical binary is there (compared by SHA-256), starts\n\
        --workers-per-host workers that survive the SSH session, forms the cloud with itself as\n\
        observer and stays attached: Ctrl-C or POST /3/Shutdown stops every worker on every host.\n\
        With --disown it leaves the cloud running; `ssh status`, `ssh stop` and `ssh restart`\n\
        find its workers through the state the install directory keeps (run/workers, run/cloud).\n\n\
        The cluster secret travels on the SSH channel's standard input into a file of mode 0600\n\
        (<install dir>/run/secret), never on a command line. The workers call the driver back at\n\
        --driver-ip [default: the address the first host sees this machine connect from].",
    after_help = "Hosts file: one host per line, [user@]host[:port]; # starts a comment.\n\n\
        Examples:\n  eddy-driver ssh --hosts nodes.txt --user ubuntu --key-file key.pem --memory 6g\n  \
        eddy-driver ssh --hosts nodes.txt --workers-per-host 2 --disown\n  \
        eddy-driver ssh status --hosts nodes.txt\n  eddy-driver ssh restart --hosts nodes.txt --disown\n  \
        eddy-driver ssh stop --hosts nodes.txt"
)]
pub struct SshArgs {
    /// `status`, `stop`, `restart`.
    #[command(subcommand)]
    pub action: Option<SshAction>,
    /// Starting a cloud.
    #[command(flatten)]
    pub start: SshStartArgs,
}

/// What starting a cloud over SSH takes (also `ssh restart`).
#[derive(Debug, Clone, Args)]
pub struct SshStartArgs {
    /// Shared settings (--nodes does not apply: the cloud has hosts x --workers-per-host workers).
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Reaching the hosts.
    #[command(flatten)]
    pub hosts: SshHostArgs,
    /// Workers on every host (they take ports upward from --port)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers_per_host: u16,
    /// The eddy-mapper binary to copy to the hosts [default: next to eddy-driver, then PATH]
    #[arg(long, env = "EDDY_MAPPER_BIN")]
    pub mapper: Option<PathBuf>,
}

/// Which hosts, and how to reach them.
#[derive(Debug, Clone, Args)]
pub struct SshHostArgs {
    /// File of hosts, one [user@]host[:port] per line
    #[arg(long, value_name = "FILE", required = true)]
    pub hosts: Option<PathBuf>,
    /// User on every host that does not name one [default: your ssh configuration's]
    #[arg(long)]
    pub user: Option<String>,
    /// Private key to log in with (only this key is offered) [default: your agent and ssh configuration]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// An ssh_config file to use instead of ~/.ssh/config (ssh -F)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Directory on every host for eddy-mapper, its logs and the cloud's state; relative paths and ~/ are under the remote user's home
    #[arg(long, default_value = "~/eddy", value_name = "DIR")]
    pub install_dir: String,
    /// Host keys: accept-new (unknown hosts are added to known_hosts, changed keys refused), strict (only known hosts), off (accept any key: test networks only)
    #[arg(long, default_value = "accept-new", value_name = "accept-new|strict|off")]
    pub host_key_check: String,
    /// Bound of every step on a host: connecting, copying the binary, starting a worker, stopping
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub ssh_timeout: Duration,
}

/// `eddy-driver ssh ...` actions on the workers a cloud left (found through the install directory).
#[derive(Debug, Clone, Subcommand)]
pub enum SshAction {
    /// Show every host's workers: cloud, worker id, process id, running or gone
    Status(SshHostArgs),
    /// Stop every worker on every host (SIGTERM, SIGKILL after --grace) and forget them
    Stop {
        /// Reaching the hosts.
        #[command(flatten)]
        hosts: SshHostArgs,
        /// How long workers get to exit after SIGTERM
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Stop the workers and start the same cloud again (name and secret kept); refused while a job runs
    Restart(Box<SshStartArgs>),
}

/// `eddy-driver token`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Example:\n  curl -H \"Authorization: Bearer $(eddy-driver token --secret-file secret --name eddy)\" http://10.0.0.5:54321/3/Cloud"
)]
pub struct TokenArgs {
    /// The cluster secret's file
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    /// The cloud's name (`--name` of its nodes; eddy-mapper's default is "eddy")
    #[arg(long, default_value = "eddy")]
    pub name: String,
}

/// `eddy-driver cloud-ca`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Example (a Flight client of a worker):\n  eddy-driver cloud-ca --secret-file secret > cloud-ca.pem")]
pub struct CloudCaArgs {
    /// The cluster secret's file
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
}

/// `eddy-driver attach`.
#[derive(Debug, Clone, Args)]
#[command(long_about = "Run the gather service and the observer client for workers started by someone else.\n\n\
    The Spark integration (python/eddy) runs this next to the Spark driver, then starts one\n\
    eddy-mapper per executor with EDDY_DRIVER set to the address in --gather-file and the\n\
    secret from --secret-file; the cloud forms as with the other launchers.")]
pub struct AttachArgs {
    /// Shared settings.
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Write the gather service's ip:port here once it listens
    #[arg(long, value_name = "FILE")]
    pub gather_file: Option<PathBuf>,
    /// Stop the cloud when standard input closes (the process that started the driver is gone)
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
}

/// `eddy-driver local`.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Shared settings.
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// The eddy-mapper binary [default: next to eddy-driver, then PATH]
    #[arg(long, env = "EDDY_MAPPER_BIN")]
    pub mapper: Option<PathBuf>,
    /// Directory for the workers' logs [default: <tmp>/eddy-logs/<cloud name>]
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Stop the cloud when standard input closes: the process that started the driver, and
    /// holds the other end of a pipe, is gone, even killed (eddy.start_local uses it)
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
}

impl LocalArgs {
    /// The embedded default: a local cloud of three, checked and stopped.
    pub fn default_check() -> Self {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample.csv");
        let sample = if std::path::Path::new("data/sample.csv").is_file() { "data/sample.csv" } else { sample };
        Self::try_parse_from_args(&["--check", "--import", sample])
    }

    fn try_parse_from_args(extra: &[&str]) -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            local: LocalArgs,
        }
        let mut argv = vec!["eddy-driver"];
        argv.extend_from_slice(extra);
        match Wrapper::try_parse_from(argv) {
            Ok(w) => w.local,
            Err(e) => e.exit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_driver_address_may_be_a_host_name() {
        // What the Spark integration passes on YARN: spark.driver.host, a name.
        for flag in ["--driver-ip", "--driver-host"] {
            let cli = Cli::try_parse_from(["eddy-driver", "attach", "--secret-file", "s", flag, "localhost"]).unwrap();
            let Some(Command::Attach(a)) = cli.command else { panic!("not attach") };
            assert_eq!(a.cloud.driver_ip, Some(IpAddr::from([127, 0, 0, 1])), "{flag}");
        }
        let err = Cli::try_parse_from(["eddy-driver", "attach", "--secret-file", "s", "--driver-ip", "no-such-host.invalid"]).unwrap_err();
        assert!(err.to_string().contains("does not resolve"), "{err}");
    }
}
