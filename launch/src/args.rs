//! The settings shared by every way of starting a cloud ([`CloudArgs`]), of `eddy-driver
//! yarn` ([`YarnArgs`], which also travel to a disowned cloud's ApplicationMaster) and of an
//! import ([`ImportArgs`]): clap arguments, parsed by `eddy-driver`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use eddy_common::parse_duration;
use serde::{Deserialize, Serialize};

/// `eddy-driver yarn`. Serializable: with `--disown` the settings travel to the
/// ApplicationMaster container (`eddy-mapper am`).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(
    args_conflicts_with_subcommands = true,
    long_about = "Start a cloud in YARN containers, speaking YARN's own protocols (no JVM, no `hadoop jar`).\n\n\
        Reads yarn-site.xml and core-site.xml from HADOOP_CONF_DIR (or YARN_CONF_DIR), uploads\n\
        eddy-mapper to a staging directory on the default file system, submits an application\n\
        whose ApplicationMaster is this driver (unmanaged), gets --nodes containers of\n\
        --memory (+ --extra-mem-percent) and --cores, starts a worker in each, forms the cloud\n\
        and stays attached as an observer client. Ctrl-C or POST /3/Shutdown ends the\n\
        application and removes the staging directory; a container that dies is reported\n\
        with YARN's exit status and the application ends FAILED.\n\n\
        Authentication: SIMPLE on unsecured clusters. On Kerberized ones (hadoop.security.authentication\n\
        = kerberos) the driver uses the ticket cache (`kinit`) or --principal and --keytab towards\n\
        the ResourceManager and NameNode, and gives the containers delegation tokens (HDFS's, and\n\
        the ResourceManager's for a --disown master), never the keytab. Attached, a small master\n\
        container hands the driver its AMRMToken (YARN gives an unmanaged master's token to no\n\
        Kerberos caller) and the driver stays the master. YARN's own tokens (DIGEST-MD5) go towards\n\
        the scheduler and NodeManagers. Every hadoop.rpc.protection is spoken: authentication,\n\
        integrity (signed RPCs) and privacy (encrypted RPCs).",
    after_help = "Examples:\n  eddy-driver yarn --nodes 4 --memory 6g --cores 2 --queue analytics --name sales-eddy\n  kinit alice@EXAMPLE.COM && eddy-driver yarn --nodes 4 --memory 6g\n  eddy-driver yarn --disown --principal alice@EXAMPLE.COM --keytab alice.keytab --nodes 4\n  eddy-driver yarn kill application_1700000000000_0042"
)]
pub struct YarnArgs {
    /// `kill APP_ID`.
    #[command(subcommand)]
    pub action: Option<YarnAction>,
    /// Shared settings.
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Vcores of each container
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub cores: u16,
    /// YARN queue
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Container memory above --memory for the worker process itself, percent
    #[arg(long, default_value_t = 10)]
    pub extra_mem_percent: u32,
    /// Directory for the mapper binary, e.g. hdfs://nn:8020/apps/eddy [default: <fs.defaultFS>/user/<user>/.eddy/<application id>, removed at the end]; an identical binary already there is reused and the directory kept
    #[arg(long, value_name = "URL")]
    pub staging_dir: Option<String>,
    /// The eddy-mapper binary to upload [default: next to eddy-driver, then PATH]
    #[arg(long, env = "EDDY_MAPPER_BIN")]
    pub mapper: Option<PathBuf>,
    /// With --disown: memory of the ApplicationMaster's container, MiB
    #[arg(long, default_value_t = 256)]
    pub am_memory_mb: u32,
}

/// `eddy-driver yarn ...` actions.
#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum YarnAction {
    /// End a running Eddy application (e.g. one started with --disown)
    Kill {
        /// The application id, application_<cluster timestamp>_<number>
        app_id: String,
        /// On a Kerberized cluster: the principal (user@REALM) to log in as, with --keytab [default: the ticket cache, `kinit`]
        #[arg(long, value_name = "USER@REALM", requires = "keytab")]
        principal: Option<String>,
        /// Keytab of --principal
        #[arg(long, value_name = "FILE", requires = "principal")]
        keytab: Option<PathBuf>,
    },
}

/// `eddy-driver import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// REST URL of any node of the cloud
    #[arg(long, default_value = "http://127.0.0.1:54321")]
    pub cloud: String,
    /// The dataset: a path (resolved on the node that receives it), file://, s3:// or s3a:// URL; a file, directory or glob
    pub path: String,
    /// Fail on the first malformed value instead of storing it as missing
    #[arg(long)]
    pub strict: bool,
    /// Give up waiting after this long
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The cloud's REST access token (the driver printed it and wrote it to its --notify file)
    #[arg(long, env = "EDDY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an https:// cloud: the PEM file of the CA that signed its certificate, trusted instead of the system's CAs
    #[arg(long, env = "EDDY_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
}

/// Settings every launcher shares.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct CloudArgs {
    /// Number of workers [default: 3]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: Option<u16>,
    /// Memory budget of each worker, e.g. 2g [local default: 3/4 of this machine split between the workers; yarn default: 2g]
    #[arg(long)]
    pub memory: Option<String>,
    /// Base REST port of the workers (internal port = REST + 1; taken ports move up by 2); 0 = free ports
    #[arg(long, default_value_t = 54321)]
    pub port: u16,
    /// Give up when the cloud has not formed by then (names the missing workers)
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How often workers heartbeat each other
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// A worker silent this long is unhealthy; once a majority reports it silent it is removed and the cloud carries on
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Copies of each chunk of a frame without a source (group-by results, Spark conversions, Flight uploads), on distinct workers: 2 keeps such frames through the loss of a worker (imported frames are read again from their source)
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=8))]
    pub replicas: u32,
    /// Cloud name [default: eddy-<user>-<random>]
    #[arg(long)]
    pub name: Option<String>,
    /// Write the leader's ip:port to this file once the cloud formed
    #[arg(long, value_name = "FILE")]
    pub notify: Option<PathBuf>,
    /// Keep this file a JSON document of where the driver stands (phase, gather address, workers, leader, observer; no secrets), replaced whole at every step: for programs that start the driver
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub status_file: Option<PathBuf>,
    /// Exit 0 once the cloud formed and leave it running (stop it with POST /3/Shutdown; on YARN an ApplicationMaster container takes over, `yarn kill APP_ID` ends it)
    #[arg(long)]
    pub disown: bool,
    /// Stop the whole cloud and exit non-zero when a worker is lost. Without it the cloud carries on: the survivors remove the lost worker (after --heartbeat-timeout of silence), read its chunks of imported frames again from their sources, and report other frames it held as lost
    #[arg(long)]
    pub fail_fast: bool,
    /// New worker processes started in place of lost ones, over the cloud's life (local launcher) [default: twice the workers, at least 3]; 0 never
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub worker_restarts: Option<u32>,
    /// Form the cloud, print it and a network test, then stop it and exit (a smoke test)
    #[arg(long)]
    pub check: bool,
    /// Import this dataset once the cloud formed and print its summary (path, file://, s3://; file, directory or glob)
    #[arg(long, value_name = "URL")]
    pub import: Option<String>,
    /// With --import: fail on the first malformed value instead of storing it as missing
    #[arg(long)]
    pub strict: bool,
    /// Address or host name the driver's gather service listens on (edge nodes with several interfaces); a name resolves as for every host of the cluster, IPv4 first
    #[arg(long, visible_alias = "driver-host", value_name = "HOST", value_parser = eddy_common::address::parse_host)]
    pub driver_ip: Option<IpAddr>,
    /// Port of the gather service [default: a free port]
    #[arg(long, default_value_t = 0, conflicts_with = "driver_port_range")]
    pub driver_port: u16,
    /// Ports the gather service may take, e.g. 30000-30100 (firewalls that open a range); the first free one is used
    #[arg(long, value_name = "FROM-TO", value_parser = parse_port_range)]
    #[serde(default)]
    pub driver_port_range: Option<(u16, u16)>,
    /// Workers bind the interface inside this CIDR, e.g. 10.0.0.0/8
    #[arg(long, value_name = "CIDR")]
    pub network: Option<String>,
    /// Who may use the cloud's REST API: token (the cloud's access token, printed once the cloud formed and written to --notify), basic (the token, or a user and password of --htpasswd), none (anyone who can reach the port: do not use on a shared network)
    #[arg(long, default_value = "token", value_name = "token|basic|none")]
    #[serde(default = "default_rest_auth")]
    pub rest_auth: String,
    /// Users and bcrypt hashes for --rest-auth basic (`htpasswd -B -c FILE USER`); every worker reads it, so it must exist at this path on their hosts
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub htpasswd: Option<PathBuf>,
    /// Directories (DIR:DIR...) that file:// and plain-path imports and exports may use; other local paths are refused [default: wherever the workers' user may read and write]
    #[arg(long, value_name = "DIRS")]
    #[serde(default)]
    pub import_roots: Option<String>,
    /// Kerberos principal (user@REALM) the workers read and write Kerberized HDFS as, with --keytab [default: the ticket cache of the workers' user: `kinit`, KRB5CCNAME]
    #[arg(long, value_name = "USER@REALM", requires = "keytab")]
    #[serde(default)]
    pub principal: Option<String>,
    /// Keytab of --principal: tickets are obtained from it, and again before they expire, so clouds outlive a ticket; it must exist at this path on the workers' hosts (keep it mode 0600)
    #[arg(long, value_name = "FILE", requires = "principal")]
    #[serde(default)]
    pub keytab: Option<PathBuf>,
    /// File holding the cluster secret (at least 8 characters, e.g. `openssl rand -hex 32`) [default: a fresh random secret]; whoever holds it can compute the REST access token (`eddy-driver token`)
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Serve the REST API over HTTPS with this PEM certificate (chain), on the observer and every worker (the file must exist at this path on their hosts); with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Your CA (PEM): the internal channels present --tls-cert and trust only this CA instead of the cloud's own; every node's certificate must name its IP address
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// TLS on the internal channels (node to node, worker to driver, Arrow Flight): on (the cloud's own CA, or --tls-ca) or off (plain TCP, for measuring its cost or networks encrypted below)
    #[arg(long, default_value = "on", value_name = "on|off")]
    #[serde(default = "default_internal_tls")]
    pub internal_tls: String,
}

fn default_internal_tls() -> String {
    "on".into()
}

fn default_rest_auth() -> String {
    "token".into()
}

/// `FROM-TO`, both inclusive.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text.split_once('-').ok_or_else(|| format!("{text:?} is not a port range: write FROM-TO, e.g. 30000-30100"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("{a:?} is not a port"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("{b:?} is not a port"))?;
    if a == 0 || a > b {
        return Err(format!("{text:?}: the range must go from a port above 0 up to a port not below it"));
    }
    Ok((a, b))
}
