//! The node runtime: serves gRPC and REST, runs the heartbeat loop over [`Membership`], and
//! exposes a cloneable [`NodeHandle`] to binaries and tests.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eddy_common::{ClusterSecret, NodeAddr};
use eddy_proto::v1::{Heartbeat, ShutdownRequest};
use futures::future::join_all;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::membership::{CloudView, Event, Membership, MembershipOptions, RefusalKind};
use crate::transport::ClientPool;
use crate::{stats, NodeError, NodeResult};

/// Whether a node holds data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A full worker node.
    Worker,
    /// An observer client: sees the cloud and sends it work, holds no data.
    Client,
}

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Worker or observer client.
    pub role: Role,
    /// The cloud name.
    pub cloud_name: String,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// How often to heartbeat every member.
    pub heartbeat_interval: Duration,
    /// Silence after which a member is unhealthy.
    pub heartbeat_timeout: Duration,
    /// The worker's memory budget in bytes.
    pub memory_budget: u64,
    /// Who may use the REST API.
    pub rest_auth: crate::rest_auth::RestAuthMode,
    /// TLS of the internal gRPC server and clients; `None`: plain TCP.
    pub internal_tls: Option<Arc<eddy_common::tls::InternalTls>>,
    /// TLS of the REST API (the user's certificate); `None`: plain HTTP.
    pub rest_tls: Option<Arc<rustls::ServerConfig>>,
}

impl NodeOptions {
    /// Fast settings for tests: 200 ms heartbeats, 2 s timeout.
    pub fn for_test(role: Role, secret: ClusterSecret) -> Self {
        Self {
            role,
            cloud_name: "test".into(),
            secret,
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(2),
            memory_budget: 1 << 30,
            rest_auth: crate::rest_auth::RestAuthMode::Token,
            internal_tls: None,
            rest_tls: None,
        }
    }
}

/// Why a node stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `POST /3/Shutdown` here or on a peer.
    Shutdown {
        /// Which node asked.
        origin: String,
        /// Why.
        reason: String,
    },
    /// Told to exit from outside the cloud (driver, signal).
    Exit {
        /// Why.
        reason: String,
    },
    /// A failure the node cannot continue after.
    Fatal(String),
}

impl StopReason {
    /// Whether the process should exit with success.
    pub fn is_clean(&self) -> bool {
        !matches!(self, StopReason::Fatal(_))
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Shutdown { origin, reason } => write!(f, "shutdown requested by {origin}: {reason}"),
            StopReason::Exit { reason } => write!(f, "{reason}"),
            StopReason::Fatal(m) => write!(f, "{m}"),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) me: NodeAddr,
    pub(crate) options: NodeOptions,
    membership: Mutex<Membership>,
    pub(crate) pool: ClientPool,
    stop_tx: watch::Sender<Option<StopReason>>,
    formed_tx: watch::Sender<Option<CloudView>>,
    events_tx: broadcast::Sender<Event>,
    pub(crate) in_flight: Mutex<HashSet<NodeAddr>>,
    pub(crate) started: Instant,
    started_epoch_millis: u64,
    /// Bytes of data this node holds (reported by the frame layer).
    data_bytes: std::sync::atomic::AtomicU64,
    /// Wakes the heartbeat loop early (new peers), so formation does not wait for a tick.
    pub(crate) beat_now: tokio::sync::Notify,
    /// Counters of `GET /metrics`.
    pub(crate) metrics: Arc<crate::metrics::NodeMetrics>,
    /// What the layers above add to `GET /metrics`.
    pub(crate) metrics_sources: Mutex<Vec<Arc<dyn crate::metrics::MetricsSource>>>,
}

impl Inner {
    pub(crate) fn membership(&self) -> MutexGuard<'_, Membership> {
        // Plain data: a panic elsewhere cannot leave it half-updated in a harmful way.
        self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn my_heartbeat(&self) -> Heartbeat {
        self.membership().heartbeat()
    }

    /// Applies a heartbeat (incoming call or reply); `Err` carries the refusal's kind and message.
    pub(crate) fn apply_heartbeat(&self, hb: &Heartbeat, now: Instant) -> Result<(), (RefusalKind, String)> {
        let result = {
            let mut m = self.membership();
            m.on_heartbeat(hb, now).map_err(|r| (r.kind(), r.message(self.me, &self.options.cloud_name)))
        };
        match result {
            Ok(events) => {
                self.publish(events);
                self.tick(now);
                Ok(())
            }
            Err((kind, message)) => {
                let sender = hb.sender.as_ref().map(|s| format!("{}:{}", s.ip, s.rest_port)).unwrap_or_default();
                tracing::warn!(node = %self.me, from = %sender, reason = %message, "refused a heartbeat");
                Err((kind, message))
            }
        }
    }

    pub(crate) fn tick(&self, now: Instant) {
        let events = self.membership().tick(now);
        self.publish(events);
    }

    fn publish(&self, events: Vec<Event>) {
        for e in events {
            match &e {
                Event::Formed { size, leader } => {
                    let view = self.membership().view(Instant::now());
                    let nodes: Vec<String> = view.members.iter().map(|m| m.addr.to_string()).collect();
                    tracing::info!(node = %self.me, size, leader = %leader, "Cloud of size {size} formed [{}]", nodes.join(", "));
                    self.formed_tx.send_replace(Some(view));
                }
                Event::Unhealthy { node, silent_for } => {
                    tracing::error!(node = %self.me, lost = %node, silent_ms = silent_for.as_millis() as u64, "member missed heartbeats; the cloud is unhealthy");
                }
                Event::Recovered { node } => tracing::warn!(node = %self.me, member = %node, "member is heard from again"),
                Event::Joined { node } => tracing::debug!(node = %self.me, member = %node, "member joined"),
                Event::Lost { node, reason, generation } => tracing::error!(
                    node = %self.me,
                    lost = %node,
                    generation,
                    "member removed from the cloud: {reason}"
                ),
            }
            // Nobody listening is fine.
            let _ = self.events_tx.send(e);
        }
    }

    pub(crate) fn stop(&self, reason: StopReason) {
        self.stop_tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub(crate) async fn stopped(&self) -> StopReason {
        let mut rx = self.stop_tx.subscribe();
        let reason = rx.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
        reason.unwrap_or(StopReason::Exit { reason: "stopped".into() })
    }

    pub(crate) fn refresh_stats(&self) {
        let threads = stats::cpus_allowed();
        let mut s = stats::sample(self.options.memory_budget, threads, self.started_epoch_millis);
        // Free memory is budget not yet holding data, the figure imports plan with.
        s.free_mem = self.options.memory_budget.saturating_sub(self.data_bytes.load(std::sync::atomic::Ordering::Relaxed));
        self.membership().set_my_stats(s);
    }
}

/// Services a node serves besides its own.
#[derive(Default)]
pub struct Extensions {
    /// Extra gRPC services (authenticate them with `eddy_common::auth::AuthCheck`).
    pub grpc: Option<tonic::service::Routes>,
    /// Extra REST routes, documented in the node's index.
    pub rest: Option<crate::routes::Routes>,
    /// More metrics for `GET /metrics`.
    pub metrics: Option<Arc<dyn crate::metrics::MetricsSource>>,
    /// Serves the plain byte-stream connections of the internal port (see `stream_port`).
    pub stream: Option<Arc<dyn crate::stream_port::StreamHandler>>,
}

/// A cloneable handle on a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("addr", &self.inner.me).finish()
    }
}

impl NodeHandle {
    /// Starts a node at `addr`. Workers pass both listeners; an observer client may pass
    /// only a REST listener (or none). Servers stop when the node stops.
    pub fn start(addr: NodeAddr, rest_opt: Option<TcpListener>, grpc_opt: Option<TcpListener>, options: NodeOptions) -> Self {
        Self::start_with(addr, rest_opt, grpc_opt, options, |_| Extensions::default())
    }

    /// Like [`NodeHandle::start`], serving the extra gRPC services and REST routes that
    /// `extend` builds from the handle (frames, later algorithms).
    pub fn start_with(
        addr: NodeAddr,
        rest_opt: Option<TcpListener>,
        grpc_opt: Option<TcpListener>,
        options: NodeOptions,
        extend: impl FnOnce(&NodeHandle) -> Extensions,
    ) -> Self {
        let membership = Membership::new(MembershipOptions {
            me: addr,
            cloud_name: options.cloud_name.clone(),
            is_client: options.role == Role::Client,
            heartbeat_timeout: options.heartbeat_timeout,
            incarnation: new_incarnation(),
        });
        let inner = Arc::new(Inner {
            me: addr,
            pool: ClientPool::new(options.secret.clone(), &options.cloud_name, options.internal_tls.clone()),
            options,
            membership: Mutex::new(membership),
            stop_tx: watch::Sender::new(None),
            formed_tx: watch::Sender::new(None),
            events_tx: broadcast::channel(256).0,
            in_flight: Mutex::default(),
            started: Instant::now(),
            started_epoch_millis: stats::epoch_millis(),
            data_bytes: std::sync::atomic::AtomicU64::new(0),
            beat_now: tokio::sync::Notify::new(),
            metrics: Arc::default(),
            metrics_sources: Mutex::default(),
        });
        inner.refresh_stats();
        let handle = Self { inner: inner.clone() };
        let extensions = extend(&handle);
        if let Some(source) = extensions.metrics {
            inner.metrics_sources.lock().unwrap_or_else(|p| p.into_inner()).push(source);
        }
        if let Some(grpc) = grpc_opt {
            let svc = crate::transport::service(inner.clone(), inner.options.secret.clone(), &inner.options.cloud_name);
            let mut routes = extensions.grpc.unwrap_or_default();
            routes = routes.add_service(svc);
            let stop = inner.clone();
            let mut server = tonic::transport::Server::builder();
            let mut stream_tls = None;
            if let Some(tls) = &inner.options.internal_tls {
                stream_tls = match tls.rustls_server_config() {
                    Ok(config) => Some(config),
                    Err(e) => {
                        inner.stop(StopReason::Fatal(format!("cannot use the internal TLS certificate: {e}")));
                        return handle;
                    }
                };
                server = match server.tls_config(tls.server_config()) {
                    Ok(s) => s,
                    Err(e) => {
                        inner.stop(StopReason::Fatal(format!("cannot use the internal TLS certificate: {e}")));
                        return handle;
                    }
                };
            }
            let stream_handler = extensions.stream;
            tokio::spawn(async move {
                let router = server.add_routes(routes);
                let stopped = async move {
                    stop.stopped().await;
                };
                let served = match stream_handler {
                    Some(handler) => {
                        let incoming = crate::stream_port::split_incoming(grpc, handler, stream_tls);
                        router.serve_with_incoming_shutdown(incoming, stopped).await
                    }
                    None => {
                        let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
                        router.serve_with_incoming_shutdown(incoming, stopped).await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the internal gRPC server failed");
                }
            });
        }
        if let Some(rest) = rest_opt {
            let mut routes = crate::rest::routes(handle.clone());
            if let Some(extra) = extensions.rest {
                routes = routes.merge(extra);
            }
            // Inside the authentication layer, where the matched route is known.
            let router = routes
                .into_router()
                .route_layer(axum::middleware::from_fn_with_state(inner.metrics.clone(), crate::metrics::count_requests));
            let opts = &handle.inner.options;
            let auth = crate::rest_auth::RestAuth::new(&opts.rest_auth, &opts.secret, &opts.cloud_name)
                .map(|a| a.over_https(opts.rest_tls.is_some()));
            let router = match auth {
                Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, crate::rest_auth::require)),
                None => {
                    tracing::warn!(
                        "REST authentication is off (--rest-auth none): anyone who reaches {} can read this cloud's data and stop it",
                        rest.local_addr().map(|a| a.to_string()).unwrap_or_default()
                    );
                    router
                }
            };
            handle.serve_http(rest, router, handle.inner.options.rest_tls.clone());
        }
        tokio::spawn(crate::heartbeat::heartbeat_loop(inner));
        handle
    }

    /// Serves `router` on `listener` until the node stops, over plain HTTP: the Kubernetes
    /// probe port, which kubelet asks without TLS unless told otherwise.
    pub fn serve_plain_http(&self, listener: TcpListener, router: axum::Router) {
        self.serve_http(listener, router, None);
    }

    fn serve_http(&self, listener: TcpListener, router: axum::Router, tls: Option<Arc<rustls::ServerConfig>>) {
        let stop = self.inner.clone();
        tokio::spawn(crate::http_server::serve(listener, router, crate::http_server::HttpLimits::default(), tls, async move {
            stop.stopped().await;
        }));
    }

    /// This node's address.
    pub fn addr(&self) -> NodeAddr {
        self.inner.me
    }

    /// Node options.
    pub fn options(&self) -> &NodeOptions {
        &self.inner.options
    }

    /// Bytes of data this node holds, as the frame layer last reported.
    pub fn data_bytes(&self) -> u64 {
        self.inner.data_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records how many bytes of data this node holds (shown as `max_mem - free_mem`).
    pub fn set_data_bytes(&self, bytes: u64) {
        self.inner.data_bytes.store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.inner.refresh_stats();
    }

    /// How long this node has run.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Adds peers from discovery.
    pub fn add_peers(&self, peers: &[NodeAddr]) {
        let events = self.inner.membership().add_peers(peers);
        self.inner.publish(events);
        // A tick now: every peer hears from us at once instead of up to an interval later.
        self.inner.beat_now.notify_one();
    }

    /// At the formation timeout: leaves out the peers never heard from, so that the members
    /// that agree can form (see `Membership::leave_out_silent`). Returns who was left out.
    pub fn leave_out_silent(&self) -> Vec<crate::membership::LeftOut> {
        let left = self.inner.membership().leave_out_silent();
        for l in &left {
            tracing::warn!(node = %self.inner.me, peer = %l.addr, reason = %l.reason, "the cloud forms without this peer");
        }
        self.inner.beat_now.notify_one();
        left
    }

    /// The cloud as this node sees it now.
    pub fn view(&self) -> CloudView {
        self.inner.membership().view(Instant::now())
    }

    /// Membership events (formed, unhealthy, recovered, joined).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.inner.events_tx.subscribe()
    }

    /// Locks the cloud: from now on it refuses newcomers. Called at the first piece of work.
    pub fn lock(&self, reason: &str) {
        if self.inner.membership().lock(reason) {
            tracing::info!(node = %self.inner.me, reason, "cloud locked");
        }
    }

    /// Fails fast, naming the lost nodes, when the cloud is not healthy.
    pub fn require_healthy(&self) -> NodeResult<CloudView> {
        let view = self.view();
        if !view.healthy {
            let nodes: Vec<String> = view.unhealthy().iter().map(ToString::to_string).collect();
            return Err(NodeError::Unhealthy { nodes: nodes.join(", ") });
        }
        Ok(view)
    }

    /// Waits until consensus is first reached, or fails at `timeout` naming who is missing.
    pub async fn wait_formed(&self, timeout: Duration) -> NodeResult<CloudView> {
        let mut formed = self.inner.formed_tx.subscribe();
        let started = Instant::now();
        tokio::select! {
            r = tokio::time::timeout(timeout, formed.wait_for(Option::is_some)) => match r {
                Ok(Ok(v)) => v.clone().ok_or_else(|| NodeError::Server { what: "formation", reason: "no view".into() }),
                _ => Err(NodeError::FormationTimeout { waited: started.elapsed(), detail: self.formation_detail() }),
            },
            reason = self.inner.stopped() => Err(NodeError::Server { what: "formation", reason: format!("the node stopped before the cloud formed: {reason}") }),
        }
    }

    fn formation_detail(&self) -> String {
        let view = self.view();
        let mut silent = Vec::new();
        let mut refused = Vec::new();
        for m in view.members.iter().filter(|m| m.addr != view.me) {
            match (&m.refused_us, m.healthy) {
                (Some(why), _) => refused.push(format!("{} ({why})", m.addr)),
                (None, false) => silent.push(m.addr.to_string()),
                (None, true) => {}
            }
        }
        let mut parts = vec![format!("{} members known", view.members.len())];
        if !silent.is_empty() {
            parts.push(format!("never heard from [{}]: are they started, and can this host reach their port + 1?", silent.join(", ")));
        }
        if !refused.is_empty() {
            parts.push(format!("refused by [{}]", refused.join("; ")));
        }
        if silent.is_empty() && refused.is_empty() {
            parts.push("the members have not yet agreed on one member list".into());
        }
        parts.join("; ")
    }

    /// Stops this node only.
    pub fn stop(&self, reason: StopReason) {
        self.inner.stop(reason);
    }

    /// Resolves when the node stops, with the reason.
    pub async fn stopped(&self) -> StopReason {
        self.inner.stopped().await
    }

    /// Asks every member to stop (bounded in time), then stops this node.
    pub async fn shutdown_cloud(&self, reason: &str) {
        let targets = self.inner.membership().targets();
        let origin = self.inner.me.to_proto();
        let calls = targets.into_iter().map(|t| {
            let pool = self.inner.pool.clone();
            let req = ShutdownRequest { origin: Some(origin.clone()), reason: reason.to_string() };
            async move {
                let Ok(mut client) = pool.get(t) else { return };
                match tokio::time::timeout(Duration::from_secs(3), client.shutdown(req)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(s)) => tracing::warn!(peer = %t, error = %s.message(), "peer did not accept the shutdown"),
                    Err(_) => tracing::warn!(peer = %t, "shutdown request timed out"),
                }
            }
        });
        join_all(calls).await;
        self.inner.stop(StopReason::Shutdown { origin: self.inner.me.to_string(), reason: reason.to_string() });
    }
}

/// A random, non-zero identity for this process (0 means "none" on the wire).
fn new_incarnation() -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness, the pid and the clock still tell two processes apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        bytes = (nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    u64::from_le_bytes(bytes).max(1)
}
