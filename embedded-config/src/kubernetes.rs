//! Kubernetes discovery: the pods of a StatefulSet are the A records of its headless service.
//!
//! The service name is resolved once a second until `expected_count` addresses are found; or,
//! without an expected count, for the whole lookup timeout when one was given (as H2O's
//! `H2O_NODE_LOOKUP_TIMEOUT`: pods that start late still make it), else until the set has
//! stayed the same for three lookups in a row; all bounded by the lookup timeout. Every pod listens on the same port. The service must
//! publish not-ready addresses, since pods become ready only after the cloud formed.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eddy_common::NodeAddr;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::{normalize_peers, Announcement, EmbeddedConfig, EmbeddedConfigError, EmbeddedConfigResult, ExitRequest};

/// Default lookup timeout when `EDDY_NODE_LOOKUP_TIMEOUT` is not set.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(120);
const STABLE_LOOKUPS: usize = 3;
const LOOKUP_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of [`KubernetesDns`].
#[derive(Debug, Clone)]
pub struct KubernetesDnsOptions {
    /// The headless service's DNS name.
    pub service_dns: String,
    /// Stop once this many pods are found.
    pub expected_count_opt: Option<usize>,
    /// Bound on the whole lookup.
    pub lookup_timeout: Duration,
    /// The lookup timeout was given (not the default): without an expected count, resolve
    /// until it is over instead of stopping at the first stable answer.
    pub lookup_timeout_given: bool,
    /// A DNS server to query instead of the system resolver.
    pub dns_server_opt: Option<SocketAddr>,
}

/// Discovery through the A records of a headless service.
#[derive(Debug, Clone)]
pub struct KubernetesDns {
    options: KubernetesDnsOptions,
}

impl KubernetesDns {
    /// Validates the settings.
    pub fn new(options: KubernetesDnsOptions) -> EmbeddedConfigResult<Self> {
        if options.service_dns.trim().is_empty() {
            return Err(EmbeddedConfigError::InvalidArgument { what: "EDDY_KUBERNETES_SERVICE_DNS", reason: "it is empty".into() });
        }
        if options.expected_count_opt == Some(0) {
            return Err(EmbeddedConfigError::InvalidArgument { what: "EDDY_NODE_EXPECTED_COUNT", reason: "it must be at least 1".into() });
        }
        Ok(Self { options })
    }

    async fn lookup_once(&self, resolver: &Option<TokioResolver>) -> Result<BTreeSet<IpAddr>, String> {
        let name = self.options.service_dns.as_str();
        match resolver {
            Some(r) => match r.lookup_ip(name).await {
                Ok(found) => Ok(found.iter().collect()),
                Err(e) => Err(e.to_string()),
            },
            // The system resolver honours /etc/hosts and the cluster's search domains.
            None => match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name, 0))).await {
                Ok(Ok(found)) => Ok(found.map(|sa| sa.ip()).collect()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the system resolver timed out".into()),
            },
        }
    }

    fn resolver(&self) -> Option<TokioResolver> {
        let server = self.options.dns_server_opt?;
        let mut connection = ConnectionConfig::udp();
        connection.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![connection]);
        let mut opts = ResolverOpts::default();
        // Pods come and go between lookups: never answer from a cache.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the DNS resolver; using the system resolver"))
            .ok()
    }
}

#[async_trait]
impl EmbeddedConfig for KubernetesDns {
    fn mode(&self) -> &'static str {
        "kubernetes"
    }

    fn route_target(&self) -> Option<SocketAddr> {
        None
    }

    fn allows_port_search(&self) -> bool {
        false
    }

    async fn announce(&self, me: &Announcement) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        let started = Instant::now();
        let resolver = self.resolver();
        let mut previous: Option<BTreeSet<IpAddr>> = None;
        let mut stable = 0usize;
        let mut found = BTreeSet::new();
        loop {
            match self.lookup_once(&resolver).await {
                Ok(ips) => {
                    if previous.as_ref() == Some(&ips) {
                        stable += 1;
                    } else {
                        stable = 1;
                        tracing::info!(service = %self.options.service_dns, pods = ips.len(), "resolved the headless service");
                    }
                    previous = Some(ips.clone());
                    found = ips;
                }
                Err(e) => tracing::debug!(service = %self.options.service_dns, error = %e, "lookup failed; retrying"),
            }
            let done = match self.options.expected_count_opt {
                Some(n) => found.len() >= n,
                None if self.options.lookup_timeout_given => false,
                None => stable >= STABLE_LOOKUPS && !found.is_empty(),
            };
            if done {
                break;
            }
            if started.elapsed() + LOOKUP_INTERVAL > self.options.lookup_timeout {
                match self.options.expected_count_opt {
                    Some(n) => {
                        return Err(EmbeddedConfigError::NotEnoughPods {
                            service: self.options.service_dns.clone(),
                            found: found.len(),
                            expected: n,
                            waited: started.elapsed(),
                            addresses: found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                        })
                    }
                    // Forming a cloud of one from nothing would split the brain behind one service.
                    None if found.is_empty() => {
                        return Err(EmbeddedConfigError::NotEnoughPods {
                            service: self.options.service_dns.clone(),
                            found: 0,
                            expected: 1,
                            waited: started.elapsed(),
                            addresses: String::new(),
                        })
                    }
                    None => break,
                }
            }
            tokio::time::sleep(LOOKUP_INTERVAL).await;
        }
        if !found.contains(&me.addr.ip) {
            tracing::warn!(node = %me.addr, service = %self.options.service_dns, "this pod's address is not among the service's records; is publishNotReadyAddresses set?");
        }
        let mut peers = Vec::with_capacity(found.len());
        for ip in found {
            peers.push(NodeAddr { ip, rest_port: me.addr.rest_port, grpc_port: me.addr.grpc_port });
        }
        Ok(normalize_peers(peers, me.addr))
    }

    async fn cloud_formed(&self, _me: NodeAddr, _size: usize, _leader: NodeAddr) -> EmbeddedConfigResult<()> {
        Ok(())
    }

    async fn exit_requested(&self, _me: NodeAddr) -> ExitRequest {
        std::future::pending().await
    }

    async fn report_exit(&self, _me: NodeAddr, _reason: &str) {}
}
