//! The Eddy worker. Turns whatever process it runs in (YARN container, Spark executor,
//! Kubernetes pod, plain host) into a full worker node of a cloud.
//!
//! Discovery is chosen from the environment: `EDDY_DRIVER` (set by `eddy-driver` and the Spark
//! integration) selects the driver callback; `--flatfile` a flatfile; `EDDY_KUBERNETES_SERVICE_DNS`
//! the Kubernetes headless service; otherwise the node forms a cloud of one.

mod config;
mod owner;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use eddy_common::address::choose_ip;
use eddy_embedded_config::{Announcement, EmbeddedConfig, ExitRequest};
use eddy_node::{bind, logging, rest, NodeHandle, StopReason};

pub use config::{Discovery, MapperArgs, MapperCommand, MapperConfig};

/// Errors of the worker binary.
#[derive(Debug, thiserror::Error)]
pub enum MapperError {
    /// A setting is missing or unusable.
    #[error("{reason}")]
    Config {
        /// Which setting, what is wrong with it and what to do.
        reason: String,
    },
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] eddy_embedded_config::EmbeddedConfigError),
    /// The node runtime failed.
    #[error(transparent)]
    Node(#[from] eddy_node::NodeError),
    /// Address selection failed.
    #[error(transparent)]
    Common(#[from] eddy_common::CommonError),
}

impl MapperError {
    /// Whether starting again may succeed without a change of settings.
    pub fn is_retryable(&self) -> bool {
        match self {
            MapperError::Config { .. } => false,
            MapperError::Discovery(e) => e.is_retryable(),
            MapperError::Node(e) => e.is_retryable(),
            MapperError::Common(e) => e.is_retryable(),
        }
    }
}

/// Result with [`MapperError`].
pub type MapperResult<T> = Result<T, MapperError>;

/// Tells the user how to reach the REST API. The token is never logged: a cloud of one made
/// its own secret, so it prints the token on standard output (as the driver does); nodes
/// given a secret file leave it to `eddy-driver token`.
fn announce_rest_access(config: &MapperConfig, me: &eddy_common::NodeAddr) {
    use eddy_node::rest_auth::RestAuthMode;
    match (&config.rest_auth, &config.discovery) {
        (RestAuthMode::None, _) => {}
        (_, config::Discovery::Single) => {
            let token = config.secret.rest_token(&config.cloud_name);
            let url = me.rest_base(config.rest_tls_opt.is_some());
            println!("REST API: {url}/3/Cloud");
            println!("{}", eddy_common::ClusterSecret::access_line(&url, &token));
        }
        (_, config::Discovery::Flatfile(_) | config::Discovery::Kubernetes(_)) => tracing::info!(
            "the REST API wants the cloud's access token: `eddy-driver token --secret-file FILE --name {}` prints it",
            config.cloud_name
        ),
        (_, config::Discovery::Driver(_)) => {}
    }
}

/// Runs the worker until it is told to stop; returns why it stopped.
pub async fn run(config: MapperConfig) -> MapperResult<StopReason> {
    let started = Instant::now();
    let owner_opt = config.exit_with_pid_opt.map(owner::Owner::find).transpose()?;
    let discovery: Arc<dyn EmbeddedConfig> = config.discovery()?;
    let ip = choose_ip(&config.address, discovery.route_target())?;
    let listeners = bind::bind(ip, config.port, discovery.allows_port_search()).await?;
    let me = listeners.addr;
    logging::set_node_label(me.to_string());
    tracing::info!(mode = discovery.mode(), rest = %me.rest(), grpc = %me.grpc(), pid = std::process::id(), "worker listening");
    announce_rest_access(&config, &me);
    let mut storage = config.storage.clone();
    if storage.close_files_of_an_open_node(matches!(config.rest_auth, eddy_node::rest_auth::RestAuthMode::None), ip) {
        tracing::warn!(
            "local files are refused: the REST API is open (--rest-auth none) on {ip}, which others can reach; --import-roots DIR allows a directory"
        );
    }
    let node = NodeHandle::start_with(me, Some(listeners.rest), Some(listeners.grpc), config.node_options(ip)?, |n| {
        let frames = eddy_frame::FrameCloud::new(n, config.memory_budget, storage);
        frames.set_replicas(config.replicas);
        frames.extensions()
    });
    if let Some(port) = config.kubernetes_api_port_opt {
        let addr = SocketAddr::new(ip, port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| MapperError::Config {
            reason: format!("cannot listen on {addr} for the Kubernetes probe: {e}; set EDDY_KUBERNETES_API_PORT to a free port"),
        })?;
        node.serve_plain_http(listener, rest::kubernetes_router(node.clone()));
    }

    let announcement = Announcement {
        addr: me,
        worker_id: config.worker_id.clone(),
        stats: eddy_node::stats::sample(config.memory_budget, eddy_node::stats::cpus_allowed(), 0),
    };
    let peers = tokio::select! {
        peers = discovery.announce(&announcement) => peers,
        reason = node.stopped() => return Ok(reason),
        reason = stop_requested(owner_opt) => return Ok(stop(&node, discovery.as_ref(), StopReason::Exit { reason }).await),
    };
    let peers = match peers {
        Ok(p) => p,
        Err(e) => return Ok(fail(&node, discovery.as_ref(), e.to_string()).await),
    };
    tracing::info!(peers = peers.len(), "got the peer list");
    node.add_peers(&peers);

    // The formation timeout counts from the start, except after a DNS lookup: that one runs
    // for its own timeout (which may be the longer), and formation then still needs its time.
    let remaining = match config.discovery {
        config::Discovery::Kubernetes(_) => config.timeout,
        _ => config.timeout.saturating_sub(started.elapsed()),
    };
    let mut view = tokio::select! {
        v = node.wait_formed(remaining) => v,
        reason = stop_requested(owner_opt) => return Ok(stop(&node, discovery.as_ref(), StopReason::Exit { reason }).await),
    };
    // A peer list the user wrote (a flatfile, a DNS name without an expected count) may name a
    // host that is down, mistyped, or of another cloud: the members that agree form without it.
    // The driver's list and an expected count are exact: there a missing member stays an error.
    if view.is_err() && config.may_leave_out_peers() {
        let left = node.leave_out_silent();
        if !left.is_empty() {
            let names: Vec<String> = left.iter().map(|l| format!("{} ({})", l.addr, l.reason)).collect();
            tracing::warn!(left_out = %names.join(", "), "forming without peers never heard from by the formation timeout");
            view = tokio::select! {
                v = node.wait_formed(config.heartbeat_timeout * 2) => v,
                reason = stop_requested(owner_opt) => return Ok(stop(&node, discovery.as_ref(), StopReason::Exit { reason }).await),
            };
        }
    }
    let view = match view {
        Ok(v) => v,
        Err(e) => return Ok(fail(&node, discovery.as_ref(), e.to_string()).await),
    };
    if let Some(leader) = view.leader {
        let report = tokio::time::timeout(std::time::Duration::from_secs(30), discovery.cloud_formed(me, view.members.len(), leader));
        let reported = tokio::select! {
            r = report => r,
            reason = stop_requested(owner_opt) => return Ok(stop(&node, discovery.as_ref(), StopReason::Exit { reason }).await),
        };
        match reported {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ok(fail(&node, discovery.as_ref(), e.to_string()).await),
            Err(_) => return Ok(fail(&node, discovery.as_ref(), "reporting the formed cloud timed out".into()).await),
        }
    }

    let reason = tokio::select! {
        reason = node.stopped() => reason,
        request = discovery.exit_requested(me) => match request {
            ExitRequest::Exit { reason } => StopReason::Exit { reason: format!("the driver asked: {reason}") },
            ExitRequest::ControllerLost { reason } => StopReason::Fatal(reason),
        },
        reason = stop_requested(owner_opt) => StopReason::Exit { reason },
    };
    Ok(stop(&node, discovery.as_ref(), reason).await)
}

async fn stop(node: &NodeHandle, discovery: &dyn EmbeddedConfig, reason: StopReason) -> StopReason {
    node.stop(reason.clone());
    discovery.report_exit(node.addr(), &reason.to_string()).await;
    // Let the servers finish their last responses.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    reason
}

async fn fail(node: &NodeHandle, discovery: &dyn EmbeddedConfig, message: String) -> StopReason {
    stop(node, discovery, StopReason::Fatal(message)).await
}

/// Resolves on SIGINT or SIGTERM, or once the `--exit-with-pid` process ended, with the text
/// a stop reason carries.
async fn stop_requested(owner_opt: Option<owner::Owner>) -> String {
    let owner_ended = async {
        match owner_opt {
            Some(owner) => owner.ended().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        signal = eddy_node::signal::stop_signal() => signal.to_string(),
        reason = owner_ended => reason,
    }
}
