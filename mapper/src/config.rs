//! Worker configuration: clap arguments (which also read the `EDDY_*` environment) resolved,
//! together with the keys that have H2O aliases, into a plain [`MapperConfig`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use eddy_common::address::{parse_network, AddressChoice};
use eddy_common::tls::{InternalTls, InternalTlsMode};
use eddy_common::{keys, parse_duration, ClusterSecret};
use eddy_embedded_config::{
    DriverCallback, DriverCallbackOptions, EmbeddedConfig, Flatfile, KubernetesDns, KubernetesDnsOptions, SingleNode,
    DEFAULT_LOOKUP_TIMEOUT,
};
use eddy_node::rest_auth::RestAuthMode;
use eddy_node::{NodeOptions, Role};

use crate::{MapperError, MapperResult};

/// Command line of `eddy-mapper`. Every flag can also be set with its `EDDY_*` variable.
#[derive(Debug, Parser)]
#[command(
    name = "eddy-mapper",
    args_override_self = true,
    version,
    about = "An Eddy worker node: joins a cloud and holds part of its data.",
    long_about = "An Eddy worker node: joins a cloud and holds part of its data.\n\n\
        How it finds its peers:\n  \
        - launched by eddy-driver or the Spark integration: EDDY_DRIVER and EDDY_CLUSTER_SECRET are set for it\n    (in a YARN container the secret comes from the container's token file);\n  \
        - on your own hosts: --flatfile FILE (one ip:port per line) and --secret-file on every host;\n  \
        - in Kubernetes: EDDY_KUBERNETES_SERVICE_DNS names the headless service (see deploy/kubernetes/);\n  \
        - otherwise: a cloud of one.\n\n\
        Example, three hosts:\n  \
        eddy-mapper --flatfile flatfile.txt --secret-file secret --ip 10.0.0.5 --port 54321",
    after_help = "`eddy-mapper am` is the YARN ApplicationMaster of a disowned cloud (eddy-driver yarn --disown starts it).\n\nAll EDDY_* variables: docs/configuration.md"
)]
pub struct MapperArgs {
    /// `am` (hidden: only `eddy-driver yarn --disown` starts it).
    #[command(subcommand)]
    pub command: Option<MapperCommand>,
    /// IP address or host name to bind and advertise [default: the address routed toward the driver or first peer]
    #[arg(long, env = "EDDY_IP", value_name = "HOST", value_parser = eddy_common::address::parse_host)]
    pub ip: Option<IpAddr>,
    /// Bind the local interface inside this CIDR (multi-homed hosts), e.g. 10.0.0.0/8
    #[arg(long, env = "EDDY_NETWORK", value_name = "CIDR")]
    pub network: Option<String>,
    /// REST port; the internal port is this + 1; 0 picks free ports
    #[arg(long, env = "EDDY_PORT", default_value_t = 54321)]
    pub port: u16,
    /// Peers, one `ip:port` per line (`#` comments, blank lines ignored)
    #[arg(long, env = "EDDY_FLATFILE")]
    pub flatfile: Option<PathBuf>,
    /// File holding the cluster secret (flatfile and Kubernetes modes); or set EDDY_CLUSTER_SECRET
    #[arg(long, env = "EDDY_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Cloud name; nodes of differently named clouds refuse each other
    #[arg(long = "name", env = "EDDY_CLOUD_NAME", default_value = "eddy")]
    pub cloud_name: String,
    /// How often to heartbeat every peer
    #[arg(long, env = "EDDY_HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// A peer silent this long is unhealthy
    #[arg(long, env = "EDDY_HEARTBEAT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Copies of each chunk of a frame without a source (group-by results, Spark conversions, Flight uploads), on distinct workers: 2 survives the loss of a worker
    #[arg(long, env = "EDDY_REPLICAS", default_value = "1", value_parser = clap::value_parser!(u32).range(1..=8))]
    pub replicas: u32,
    /// How long to wait for the driver, the peers and consensus
    #[arg(long, env = "EDDY_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Memory budget for data, e.g. 6g [default: 3/4 of the machine's or container's memory]
    #[arg(long, env = "EDDY_MEMORY")]
    pub memory: Option<String>,
    /// Identity given by the launcher (container or executor id)
    #[arg(long, env = "EDDY_WORKER_ID", default_value = "")]
    pub worker_id: String,
    /// Stop once the process with this id has ended (the executor a worker was started in)
    #[arg(long, env = "EDDY_EXIT_WITH_PID", value_name = "PID")]
    pub exit_with_pid: Option<u32>,
    /// Who may use the REST API: token (the cloud's access token), basic (the token or a user
    /// of --htpasswd), none (anyone who reaches the port)
    #[arg(long, env = "EDDY_REST_AUTH", default_value = "token", value_name = "token|basic|none")]
    pub rest_auth: String,
    /// Directories (DIR:DIR...) that file:// and plain-path imports and exports may use
    #[arg(long, env = "EDDY_IMPORT_ROOTS", value_name = "DIRS")]
    pub import_roots: Option<String>,
    /// Kerberos principal (user@REALM) this worker reads and writes Kerberized HDFS as, with
    /// --keytab [default: the ticket cache of the worker's user]
    #[arg(long, env = "EDDY_KERBEROS_PRINCIPAL", value_name = "USER@REALM", requires = "keytab")]
    pub principal: Option<String>,
    /// Keytab of --principal: tickets are obtained from it, and again before they expire
    #[arg(long, env = "EDDY_KERBEROS_KEYTAB", value_name = "FILE", requires = "principal")]
    pub keytab: Option<PathBuf>,
    /// htpasswd file (bcrypt entries, `htpasswd -B -c FILE USER`) for --rest-auth basic
    #[arg(long, env = "EDDY_HTPASSWD", value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve the REST API over HTTPS with this PEM certificate (chain); with --tls-key
    #[arg(long, env = "EDDY_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "EDDY_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Your CA (PEM): the internal channels present --tls-cert and trust only this CA instead of the cloud's own (derived from the secret)
    #[arg(long, env = "EDDY_TLS_CA", value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// TLS on the internal channels: on (the cloud's own CA, or --tls-ca) or off (plain TCP)
    #[arg(long, env = "EDDY_INTERNAL_TLS", default_value = "on", value_name = "on|off")]
    pub internal_tls: String,
}

/// `eddy-mapper` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MapperCommand {
    /// The YARN ApplicationMaster of a disowned cloud
    #[command(hide = true)]
    Am,
}

/// How this worker discovers its peers.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Register with the driver's gather service.
    Driver(SocketAddr),
    /// Read a flatfile.
    Flatfile(PathBuf),
    /// Resolve a headless service.
    Kubernetes(KubernetesDnsOptions),
    /// A cloud of one.
    Single,
}

/// The resolved worker configuration.
#[derive(Debug, Clone)]
pub struct MapperConfig {
    /// Discovery mode.
    pub discovery: Discovery,
    /// Address selection.
    pub address: AddressChoice,
    /// REST port.
    pub port: u16,
    /// Cloud name.
    pub cloud_name: String,
    /// Cluster secret.
    pub secret: ClusterSecret,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Heartbeat timeout.
    pub heartbeat_timeout: Duration,
    /// Formation timeout.
    pub timeout: Duration,
    /// Memory budget in bytes.
    pub memory_budget: u64,
    /// Copies of each chunk of a frame without a source.
    pub replicas: u32,
    /// The internal channels' TLS.
    pub internal_tls: InternalTlsMode,
    /// The REST API's TLS (the user's certificate), read at start.
    pub rest_tls_opt: Option<Arc<rustls::ServerConfig>>,
    /// Launcher-given id.
    pub worker_id: String,
    /// The process this worker ends with, if any.
    pub exit_with_pid_opt: Option<u32>,
    /// Port of the Kubernetes readiness endpoint (Kubernetes mode only).
    pub kubernetes_api_port_opt: Option<u16>,
    /// Object-store settings (S3 endpoint, region).
    pub storage: eddy_frame::storage::StorageOptions,
    /// Who may use the REST API.
    pub rest_auth: RestAuthMode,
}

fn parse_key<T: std::str::FromStr>(env: &HashMap<String, String>, key: &keys::Key) -> Result<Option<T>, MapperError> {
    match keys::lookup(env, key) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| MapperError::Config { reason: format!("{}={v:?} is not a valid number", key.name) })
        }
    }
}

/// In a YARN container (`NM_HOST` set by the NodeManager): the address YARN knows this node
/// by, if it is one of this machine's (it can be bound) and inside `--network` when one is
/// given. Workers then advertise the address HDFS names its DataNodes by, so block locality
/// works, also on hosts with several addresses (or a test cluster on 127.0.0.2 and .3).
fn node_manager_ip(host: &str, network_opt: Option<&ipnet::IpNet>) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified() && network_opt.is_none_or(|n| n.contains(ip)))
        .find(|ip| std::net::UdpSocket::bind((*ip, 0)).is_ok())
}

impl MapperConfig {
    /// Resolves arguments and environment (`env` is passed in so tests control it).
    pub fn resolve(args: MapperArgs, environment: &eddy_common::env::Environment) -> Result<Self, MapperError> {
        let env = environment.as_map();
        keys::warn_unknown(env);
        let driver_opt = keys::lookup(env, &keys::DRIVER);
        let service_opt = keys::lookup(env, &keys::KUBERNETES_SERVICE_DNS);
        let chosen = [driver_opt.is_some(), args.flatfile.is_some(), service_opt.is_some()].iter().filter(|b| **b).count();
        if chosen > 1 {
            return Err(MapperError::Config {
                reason: "choose one discovery mode: EDDY_DRIVER (set by eddy-driver), --flatfile, or EDDY_KUBERNETES_SERVICE_DNS".into(),
            });
        }
        let discovery = if let Some(d) = driver_opt {
            let addr = eddy_common::address::resolve_host_port(d)
                .map_err(|e| MapperError::Config { reason: format!("EDDY_DRIVER={d:?} is not a usable host:port address: {e}") })?;
            Discovery::Driver(addr)
        } else if let Some(path) = &args.flatfile {
            Discovery::Flatfile(path.clone())
        } else if let Some(service) = service_opt {
            let lookup_secs: Option<u64> = parse_key(env, &keys::NODE_LOOKUP_TIMEOUT)?;
            let dns_server_opt =
                match keys::lookup(env, &keys::KUBERNETES_DNS_SERVER) {
                    None => None,
                    Some(s) => Some(s.parse().map_err(|_| MapperError::Config {
                        reason: format!("EDDY_KUBERNETES_DNS_SERVER={s:?} is not an ip:port address"),
                    })?),
                };
            Discovery::Kubernetes(KubernetesDnsOptions {
                service_dns: service.to_string(),
                expected_count_opt: parse_key(env, &keys::NODE_EXPECTED_COUNT)?,
                lookup_timeout: lookup_secs.map(Duration::from_secs).unwrap_or(DEFAULT_LOOKUP_TIMEOUT),
                lookup_timeout_given: lookup_secs.is_some(),
                dns_server_opt,
            })
        } else {
            Discovery::Single
        };

        let secret = match (keys::lookup(env, &keys::CLUSTER_SECRET), &args.secret_file) {
            (_, Some(path)) => ClusterSecret::from_file(path)?,
            (Some(text), None) => ClusterSecret::from_text(text)?,
            (None, None) => match discovery {
                Discovery::Single => ClusterSecret::generate()?,
                // In a YARN container the driver puts the secret into the token file.
                Discovery::Driver(_) if env.contains_key("HADOOP_TOKEN_FILE_LOCATION") => {
                    let path = std::path::PathBuf::from(&env["HADOOP_TOKEN_FILE_LOCATION"]);
                    let credentials = eddy_hadoop_ipc::credentials::Credentials::read_file(&path).map_err(|reason| MapperError::Config { reason })?;
                    let secret = credentials.secret(eddy_yarn_client::CLUSTER_SECRET_ALIAS).ok_or_else(|| {
                        MapperError::Config { reason: format!("the token file {} holds no cluster secret; was this container started by eddy-driver?", path.display()) }
                    })?;
                    ClusterSecret::from_text(&String::from_utf8_lossy(secret))?
                }
                Discovery::Driver(_) => {
                    return Err(MapperError::Config { reason: "EDDY_CLUSTER_SECRET is not set; the driver sets it for the workers it launches".into() })
                }
                _ => {
                    return Err(MapperError::Config { reason: "no cluster secret: create one (e.g. `openssl rand -hex 32 > secret`), give it to every node with --secret-file secret, or set EDDY_CLUSTER_SECRET".into() })
                }
            },
        };

        let memory_budget = match &args.memory {
            Some(m) => eddy_node::stats::parse_memory(m)?,
            None => eddy_node::stats::default_memory_budget(),
        };
        if args.heartbeat_timeout <= args.heartbeat_interval {
            return Err(MapperError::Config {
                reason: format!(
                    "--heartbeat-timeout ({:?}) must be longer than --heartbeat-interval ({:?})",
                    args.heartbeat_timeout, args.heartbeat_interval
                ),
            });
        }
        let kubernetes_api_port_opt = match discovery {
            Discovery::Kubernetes(_) => Some(parse_key(env, &keys::KUBERNETES_API_PORT)?.unwrap_or(8080)),
            _ => None,
        };
        let network_opt = args.network.as_deref().map(parse_network).transpose()?;
        let rest_auth = RestAuthMode::parse(&args.rest_auth, args.htpasswd.as_deref())?;
        let internal_tls =
            InternalTlsMode::from_settings(&args.internal_tls, args.tls_ca.clone(), args.tls_cert.clone(), args.tls_key.clone())?;
        let rest_tls_opt = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(eddy_common::tls::rest_server_config(cert, key)?),
            _ => None,
        };
        let ip_opt = args.ip.or_else(|| env.get("NM_HOST").and_then(|host| node_manager_ip(host, network_opt.as_ref())));
        Ok(Self {
            discovery,
            address: AddressChoice { ip_opt, network_opt },
            port: args.port,
            cloud_name: args.cloud_name,
            secret,
            heartbeat_interval: args.heartbeat_interval,
            heartbeat_timeout: args.heartbeat_timeout,
            timeout: args.timeout,
            memory_budget,
            replicas: args.replicas,
            worker_id: args.worker_id,
            exit_with_pid_opt: args.exit_with_pid,
            kubernetes_api_port_opt,
            storage: {
                // Flags win over the environment: the store registry reads the login from it.
                let login = eddy_launch::keytab::login_from_flags(args.principal.as_ref(), args.keytab.as_ref())
                    .map_err(|e| MapperError::Config { reason: e.to_string() })?;
                let environment = environment.with(eddy_launch::keytab::login_env(login.as_ref()));
                let mut storage = eddy_frame::storage::StorageOptions::from_env(&environment);
                if let Some(roots) = &args.import_roots {
                    storage.file_roots_opt = Some(eddy_frame::storage::parse_roots(roots));
                }
                storage
            },
            rest_auth,
            internal_tls,
            rest_tls_opt,
        })
    }

    /// Builds the discovery implementation.
    pub fn discovery(&self) -> Result<Arc<dyn EmbeddedConfig>, MapperError> {
        Ok(match &self.discovery {
            Discovery::Driver(driver) => Arc::new(DriverCallback::new(DriverCallbackOptions {
                driver: *driver,
                secret: self.secret.clone(),
                cloud_name: self.cloud_name.clone(),
                timeout: self.timeout,
                driver_lost_grace: self.heartbeat_timeout,
                // Only the CA matters toward the driver; this process's own certificate is made with the node's.
                tls: InternalTls::for_mode(&self.internal_tls, &self.secret, &[])?,
            })?),
            Discovery::Flatfile(path) => Arc::new(Flatfile::load(path, Duration::from_secs(10))?),
            Discovery::Kubernetes(options) => Arc::new(KubernetesDns::new(options.clone())?),
            Discovery::Single => Arc::new(SingleNode),
        })
    }

    /// Whether the peer list is the user's, and unreachable peers may be left out at the
    /// formation timeout: flatfile, and DNS discovery without an expected count.
    pub fn may_leave_out_peers(&self) -> bool {
        match &self.discovery {
            Discovery::Flatfile(_) => true,
            Discovery::Kubernetes(k) => k.expected_count_opt.is_none(),
            Discovery::Driver(_) | Discovery::Single => false,
        }
    }

    /// Options of the node runtime of a node reached at `ip`.
    pub fn node_options(&self, ip: IpAddr) -> MapperResult<NodeOptions> {
        Ok(NodeOptions {
            role: Role::Worker,
            cloud_name: self.cloud_name.clone(),
            secret: self.secret.clone(),
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            memory_budget: self.memory_budget,
            rest_auth: self.rest_auth.clone(),
            internal_tls: InternalTls::for_mode(&self.internal_tls, &self.secret, &[ip.to_string()])?,
            rest_tls: self.rest_tls_opt.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> eddy_common::env::Environment {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn in_a_yarn_container_workers_take_the_node_managers_address_when_it_is_local() {
        let loopback: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
        let elsewhere: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(node_manager_ip("127.0.0.2", Some(&loopback)), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(node_manager_ip("127.0.0.3", None), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(node_manager_ip("127.0.0.2", Some(&elsewhere)), None, "outside --network");
        assert_eq!(node_manager_ip("192.0.2.7", None), None, "not an address of this machine");
    }

    fn args(extra: &[&str]) -> MapperArgs {
        let mut argv = vec!["eddy-mapper"];
        argv.extend_from_slice(extra);
        MapperArgs::try_parse_from(argv).unwrap()
    }

    #[test]
    fn kubernetes_mode_accepts_h2o_aliases() {
        let e = env(&[
            ("H2O_KUBERNETES_SERVICE_DNS", "eddy.default.svc.cluster.local"),
            ("H2O_NODE_EXPECTED_COUNT", "3"),
            ("H2O_NODE_LOOKUP_TIMEOUT", "30"),
            ("H2O_KUBERNETES_API_PORT", "8081"),
            ("EDDY_CLUSTER_SECRET", "0123456789abcdef"),
        ]);
        let c = MapperConfig::resolve(args(&[]), &e).unwrap();
        match c.discovery {
            Discovery::Kubernetes(k) => {
                assert_eq!(k.expected_count_opt, Some(3));
                assert_eq!(k.lookup_timeout, Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.kubernetes_api_port_opt, Some(8081));
    }

    #[test]
    fn secrets_are_required_outside_single_node() {
        let e = env(&[("EDDY_DRIVER", "127.0.0.1:9")]);
        assert!(MapperConfig::resolve(args(&[]), &e).unwrap_err().to_string().contains("EDDY_CLUSTER_SECRET"));
        let msg = MapperConfig::resolve(args(&["--flatfile", "f"]), &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("--secret-file"), "{msg}");
        assert!(matches!(MapperConfig::resolve(args(&[]), &env(&[])).unwrap().discovery, Discovery::Single));
    }

    #[test]
    fn host_names_are_taken_where_addresses_are() {
        // Spark and YARN name hosts (spark.driver.host, executor hosts): as the launchers pass them.
        let e = env(&[("EDDY_DRIVER", "localhost:9"), ("EDDY_CLUSTER_SECRET", "0123456789")]);
        let c = MapperConfig::resolve(args(&["--ip", "localhost"]), &e).unwrap();
        assert!(matches!(c.discovery, Discovery::Driver(a) if a.to_string() == "127.0.0.1:9"), "{:?}", c.discovery);
        assert_eq!(MapperArgs::try_parse_from(["eddy-mapper", "--ip", "localhost"]).unwrap().ip, Some([127, 0, 0, 1].into()));
    }

    #[test]
    fn bad_values_get_clear_errors() {
        let e = env(&[("EDDY_DRIVER", "nowhere"), ("EDDY_CLUSTER_SECRET", "0123456789")]);
        assert!(MapperConfig::resolve(args(&[]), &e).unwrap_err().to_string().contains("EDDY_DRIVER=\"nowhere\""));
        let e = env(&[("EDDY_DRIVER", "127.0.0.1:9"), ("EDDY_FLATFILE_X", "1"), ("EDDY_CLUSTER_SECRET", "0123456789")]);
        let msg = MapperConfig::resolve(args(&["--flatfile", "f"]), &e).unwrap_err().to_string();
        assert!(msg.contains("choose one discovery mode"), "{msg}");
        let msg =
            MapperConfig::resolve(args(&["--heartbeat-timeout", "1s", "--heartbeat-interval", "2s"]), &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("longer than"), "{msg}");
        assert!(MapperArgs::try_parse_from(["eddy-mapper", "--timeout", "soon"]).is_err());
    }
}
