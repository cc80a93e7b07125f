//! The driver's settings for one cloud, validated from the command line, and what they
//! hand to each worker (its environment).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eddy_common::address::parse_network;
use eddy_common::tls::InternalTlsMode;
use eddy_common::{keys, ClusterSecret, NodeAddr};
use eddy_node::rest_auth::RestAuthMode;

use crate::args::CloudArgs;
use crate::launcher::WorkerSpec;
use crate::{DriverError, DriverResult};

/// Workers of a cloud when `--nodes` is not given.
pub const DEFAULT_NODES: u16 = 3;

/// Resolved driver settings.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// Number of workers.
    pub nodes: usize,
    /// Memory per worker as text for `EDDY_MEMORY`.
    pub memory_opt: Option<String>,
    /// Base worker port.
    pub worker_port: u16,
    /// The IP workers bind (local launcher), if fixed.
    pub worker_ip_opt: Option<IpAddr>,
    /// CIDR for the workers' interface choice.
    pub network_opt: Option<String>,
    /// Formation deadline.
    pub timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Heartbeat timeout.
    pub heartbeat_timeout: Duration,
    /// Copies of each chunk of a frame without a source.
    pub replicas: u32,
    /// Cloud name.
    pub cloud_name: String,
    /// Where the gather service listens.
    pub driver_ip: IpAddr,
    /// Gather port (0 = free).
    pub driver_port: u16,
    /// Gather ports to try, first free one wins (instead of `driver_port`).
    pub driver_port_range_opt: Option<(u16, u16)>,
    /// `--notify`.
    pub notify_opt: Option<std::path::PathBuf>,
    /// More lines for the `--notify` file (the YARN application id).
    pub notify_extra_opt: Option<String>,
    /// The cluster secret, when whoever starts the workers chose it (`attach`).
    pub secret_opt: Option<ClusterSecret>,
    /// Who may use the REST API (validated; an htpasswd file already read).
    pub rest_auth: RestAuthMode,
    /// `--htpasswd`, absolute, for the workers.
    pub htpasswd_opt: Option<std::path::PathBuf>,
    /// `--import-roots`, for the workers and the observer.
    pub import_roots_opt: Option<String>,
    /// `--principal` and `--keytab` (absolute, checked readable), for the workers.
    pub kerberos_opt: Option<(String, PathBuf)>,
    /// The internal channels' TLS (paths absolute, for the workers).
    pub internal_tls: InternalTlsMode,
    /// `--tls-cert` and `--tls-key`, absolute: the REST API is HTTPS.
    pub rest_tls_opt: Option<(PathBuf, PathBuf)>,
    /// The observer's REST TLS settings, read from those files once, at validation.
    pub rest_tls_config_opt: Option<Arc<rustls::ServerConfig>>,
    /// Print the REST access token once the cloud formed (not in a disowned YARN master,
    /// whose output is a container log that YARN may show to others).
    pub print_token: bool,
    /// Write the gather service's address here once it listens (`attach`).
    pub gather_file_opt: Option<std::path::PathBuf>,
    /// `--status-file`.
    pub status_file_opt: Option<std::path::PathBuf>,
    /// Stop the cloud when standard input closes: the process that started us is gone.
    pub stop_on_stdin_eof: bool,
    /// `--disown`.
    pub disown: bool,
    /// `--fail-fast`.
    pub fail_fast: bool,
    /// `--worker-restarts`: new processes in place of lost workers, at most.
    pub worker_restarts: u32,
    /// `--check`.
    pub check: bool,
    /// `--import`.
    pub import_opt: Option<String>,
    /// `--strict`.
    pub strict: bool,
    /// The driver's environment: storage settings for the observer, and the settings it
    /// forwards to workers.
    pub env: eddy_common::env::Environment,
    /// New delegation tokens for the workers while the driver watches (YARN on Kerberos).
    pub token_source_opt: Option<Arc<dyn crate::cloud::TokenSource>>,
}

impl CloudOptions {
    /// Validates CLI arguments.
    pub fn from_args(args: &CloudArgs, cloud_name: String, env: &eddy_common::env::Environment) -> DriverResult<Self> {
        if let Some(n) = &args.network {
            parse_network(n)?;
        }
        if let Some(m) = &args.memory {
            eddy_node::stats::parse_memory(m)?;
        }
        if args.heartbeat_timeout <= args.heartbeat_interval {
            return Err(DriverError::InvalidArgument { reason: "--heartbeat-timeout must be longer than --heartbeat-interval".into() });
        }
        if args.disown && args.check {
            return Err(DriverError::InvalidArgument { reason: "--disown and --check contradict each other".into() });
        }
        let rest_auth = RestAuthMode::parse(&args.rest_auth, args.htpasswd.as_deref())?;
        let htpasswd_opt = args
            .htpasswd
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .map_err(|source| DriverError::Io { what: "cannot resolve the --htpasswd path".into(), source })?;
        let secret_opt = args.secret_file.as_deref().map(ClusterSecret::from_file).transpose()?;
        let kerberos_opt = crate::keytab::login_from_flags(args.principal.as_ref(), args.keytab.as_ref())?;
        let absolute = |p: &Option<PathBuf>, flag: &str| {
            p.as_deref()
                .map(std::path::absolute)
                .transpose()
                .map_err(|source| DriverError::Io { what: format!("cannot resolve the {flag} path"), source })
        };
        let (tls_cert, tls_key, tls_ca) =
            (absolute(&args.tls_cert, "--tls-cert")?, absolute(&args.tls_key, "--tls-key")?, absolute(&args.tls_ca, "--tls-ca")?);
        let internal_tls = InternalTlsMode::from_settings(&args.internal_tls, tls_ca, tls_cert.clone(), tls_key.clone())?;
        let rest_tls_opt = tls_cert.zip(tls_key);
        // Read now: a wrong file fails here, before any worker starts.
        let rest_tls_config_opt = rest_tls_opt.as_ref().map(|(cert, key)| eddy_common::tls::rest_server_config(cert, key)).transpose()?;
        Ok(Self {
            nodes: usize::from(args.nodes.unwrap_or(DEFAULT_NODES)),
            memory_opt: args.memory.clone(),
            worker_port: args.port,
            worker_ip_opt: None,
            network_opt: args.network.clone(),
            timeout: args.timeout,
            heartbeat_interval: args.heartbeat_interval,
            heartbeat_timeout: args.heartbeat_timeout,
            replicas: args.replicas,
            cloud_name,
            driver_ip: args.driver_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            driver_port: args.driver_port,
            driver_port_range_opt: args.driver_port_range,
            notify_opt: args.notify.clone(),
            notify_extra_opt: None,
            secret_opt,
            rest_auth,
            htpasswd_opt,
            import_roots_opt: args.import_roots.clone(),
            kerberos_opt,
            internal_tls,
            rest_tls_opt,
            rest_tls_config_opt,
            print_token: true,
            gather_file_opt: None,
            status_file_opt: args.status_file.clone(),
            stop_on_stdin_eof: false,
            disown: args.disown,
            fail_fast: args.fail_fast,
            // As Spark's spark.yarn.max.executor.failures: twice the executors, at least 3.
            worker_restarts: args.worker_restarts.unwrap_or_else(|| (2 * u32::from(args.nodes.unwrap_or(DEFAULT_NODES))).max(3)),
            check: args.check,
            import_opt: args.import.clone(),
            strict: args.strict,
            token_source_opt: None,
            env: env.clone(),
        })
    }

    /// The REST base URL of `node`: `https://` with `--tls-cert`.
    pub fn rest_url(&self, node: &NodeAddr) -> String {
        node.rest_base(self.rest_tls_opt.is_some())
    }

    /// `--principal` and `--keytab` as the environment keys a node's stores read.
    pub(crate) fn kerberos_env(&self) -> Vec<(String, String)> {
        crate::keytab::login_env(self.kerberos_opt.as_ref())
    }

    pub(crate) fn worker_spec(&self, gather: SocketAddr, secret: &ClusterSecret, id: &str) -> WorkerSpec {
        let mut env = BTreeMap::new();
        let mut set = |k: &keys::Key, v: String| {
            env.insert(k.name.to_string(), v);
        };
        set(&keys::DRIVER, gather.to_string());
        set(&keys::CLUSTER_SECRET, secret.expose().to_string());
        set(&keys::CLOUD_NAME, self.cloud_name.clone());
        set(&keys::WORKER_ID, id.to_string());
        set(&keys::PORT, self.worker_port.to_string());
        set(&keys::TIMEOUT, format!("{}ms", self.timeout.as_millis()));
        set(&keys::HEARTBEAT_INTERVAL, format!("{}ms", self.heartbeat_interval.as_millis()));
        set(&keys::HEARTBEAT_TIMEOUT, format!("{}ms", self.heartbeat_timeout.as_millis()));
        set(&keys::REPLICAS, self.replicas.to_string());
        set(&keys::REST_AUTH, self.rest_auth.name().to_string());
        if let Some(roots) = &self.import_roots_opt {
            set(&keys::IMPORT_ROOTS, roots.clone());
        }
        if let Some(path) = &self.htpasswd_opt {
            set(&keys::HTPASSWD, path.display().to_string());
        }
        match &self.internal_tls {
            InternalTlsMode::Off => set(&keys::INTERNAL_TLS, "off".into()),
            InternalTlsMode::Cloud => {}
            InternalTlsMode::UserCa { ca, .. } => set(&keys::TLS_CA, ca.display().to_string()),
        }
        if let Some((cert, key)) = &self.rest_tls_opt {
            set(&keys::TLS_CERT, cert.display().to_string());
            set(&keys::TLS_KEY, key.display().to_string());
        }
        if let Some(ip) = self.worker_ip_opt {
            set(&keys::IP, ip.to_string());
        }
        if let Some(n) = &self.network_opt {
            set(&keys::NETWORK, n.clone());
        }
        if let Some(m) = &self.memory_opt {
            set(&keys::MEMORY, m.clone());
        }
        for (name, value) in self.env.forwarded_to_workers() {
            env.insert(name.to_string(), value);
        }
        env.extend(self.kerberos_env());
        WorkerSpec { env, args: Vec::new() }
    }
}
