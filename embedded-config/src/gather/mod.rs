//! The driver-side gather service of the callback protocol.
//!
//! The driver creates a [`Gather`], serves it on its gather port, launches the workers with
//! that address and the cluster secret in their environment, then waits:
//! [`Gather::wait_for_peers`] until every worker registered (each `Register` call is answered
//! only then, all with the same sorted list), [`Gather::wait_for_cloud`] until every worker
//! reported the same formed cloud. Afterwards [`Gather::tell_workers_exit`] and
//! [`Gather::disown`] reach every worker through its `Watch` stream.

mod state;

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eddy_common::auth::AuthCheck;
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_proto::v1::gather_service_server::{GatherService, GatherServiceServer};
use eddy_proto::v1::{
    driver_event, CloudFormedReply, CloudFormedRequest, DriverEvent, ExitReport, ExitReportReply, RegisterRequest, RegisterResponse,
    WatchRequest,
};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tonic::codegen::InterceptedService;
use tonic::{Request, Response, Status};

use state::GatherState;
pub use state::{Phase, Refusal, Registration};

use crate::{EmbeddedConfigError, EmbeddedConfigResult};

/// Settings of the gather service.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// How many workers must register.
    pub expected: usize,
    /// Deadline for registration and formation, counted from [`Gather::new`].
    pub timeout: Duration,
    /// Cloud name given to the workers.
    pub cloud_name: String,
    /// The cluster secret.
    pub secret: ClusterSecret,
}

/// What the gather service saw, for the driver's progress output and monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherEvent {
    /// A worker registered.
    Registered {
        /// Its registration.
        registration: Registration,
        /// How many have registered so far.
        count: usize,
    },
    /// A worker reported the cloud formed.
    Formed {
        /// The reporter.
        node: NodeAddr,
    },
    /// A worker said it is exiting.
    Exited {
        /// The worker.
        node: NodeAddr,
        /// Its reason.
        reason: String,
    },
}

struct Shared {
    options: GatherOptions,
    started: Instant,
    state: Mutex<GatherState>,
    phase_tx: watch::Sender<Phase>,
    formed_tx: watch::Sender<Option<Result<(usize, NodeAddr), String>>>,
    driver_event_tx: watch::Sender<Option<DriverEvent>>,
    watching_tx: watch::Sender<std::collections::BTreeSet<NodeAddr>>,
    events_tx: mpsc::UnboundedSender<GatherEvent>,
}

/// A cloneable handle on the gather service.
#[derive(Clone)]
pub struct Gather {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather").field("expected", &self.shared.options.expected).finish()
    }
}

impl Gather {
    /// Creates the service; the deadline starts now. Returns the event receiver too.
    pub fn new(options: GatherOptions) -> (Self, mpsc::UnboundedReceiver<GatherEvent>) {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            state: Mutex::new(GatherState::new(options.expected)),
            options,
            started: Instant::now(),
            phase_tx: watch::Sender::new(Phase::Collecting),
            formed_tx: watch::Sender::new(None),
            driver_event_tx: watch::Sender::new(None),
            watching_tx: watch::Sender::new(Default::default()),
            events_tx,
        };
        (Self { shared: Arc::new(shared) }, events_rx)
    }

    fn state(&self) -> MutexGuard<'_, GatherState> {
        // A poisoned lock only means another handler panicked mid-update of plain data.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.shared.started + self.shared.options.timeout)
    }

    /// The tonic service, authenticated with the cluster secret.
    pub fn service(&self) -> InterceptedService<GatherServiceServer<GatherServer>, AuthCheck> {
        let check =
            AuthCheck::new(self.shared.options.secret.clone(), self.shared.options.cloud_name.clone(), "the driver's gather service");
        GatherServiceServer::with_interceptor(GatherServer { gather: self.clone() }, check)
    }

    /// Serves the service on `listener` (over TLS with `tls`) until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<std::sync::Arc<eddy_common::tls::InternalTls>>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> EmbeddedConfigResult<()> {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls.server_config()).map_err(|e| EmbeddedConfigError::GatherFailed {
                reason: format!("cannot use the gather service's TLS certificate: {e}"),
            })?;
        }
        server
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| EmbeddedConfigError::GatherFailed { reason: format!("the gather service stopped: {e}") })
    }

    /// Declares a worker id the launcher started, so a timeout can name it if it never comes.
    pub fn expect_worker_id(&self, id: &str) {
        self.state().expect_worker_id(id);
    }

    /// Lets worker `id` register once more after the peer list went out: a new process in
    /// place of a lost one, answered with the list as it is then.
    pub fn expect_replacement(&self, id: &str) {
        self.state().expect_replacement(id);
    }

    /// Every registration so far.
    pub fn registrations(&self) -> Vec<Registration> {
        self.state().registrations()
    }

    /// The exit reason a worker reported, if it did.
    pub fn exit_reason(&self, node: &NodeAddr) -> Option<String> {
        self.state().exited.get(node).cloned()
    }

    /// Waits until every worker registered; fails at the deadline naming who is missing.
    pub async fn wait_for_peers(&self) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        let mut rx = self.shared.phase_tx.subscribe();
        let waited = tokio::time::timeout_at(self.deadline(), rx.wait_for(|p| *p != Phase::Collecting)).await;
        let phase = match waited {
            Ok(Ok(p)) => p.clone(),
            _ => self.fail_registration(),
        };
        match phase {
            Phase::Sent(peers) => Ok(peers),
            Phase::Failed(msg) => Err(EmbeddedConfigError::GatherFailed { reason: msg }),
            Phase::Collecting => Err(EmbeddedConfigError::GatherFailed { reason: "gathering ended without a result".into() }),
        }
    }

    fn fail_registration(&self) -> Phase {
        let mut state = self.state();
        let phase = state.fail_registration_timeout(self.shared.started.elapsed());
        // Published under the lock, so the channel never disagrees with the state.
        self.shared.phase_tx.send_replace(phase.clone());
        phase
    }

    /// Fails every waiting registration with `message` (e.g. a worker died before registering).
    pub fn fail(&self, message: &str) {
        let mut state = self.state();
        if state.phase == Phase::Collecting {
            state.phase = Phase::Failed(message.to_string());
            self.shared.phase_tx.send_replace(state.phase.clone());
        }
    }

    /// Waits until every worker reported the same formed cloud: returns (size, leader).
    pub async fn wait_for_cloud(&self) -> EmbeddedConfigResult<(usize, NodeAddr)> {
        let mut rx = self.shared.formed_tx.subscribe();
        let waited = tokio::time::timeout_at(self.deadline(), rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(v)) => match v.clone() {
                Some(Ok(formed)) => Ok(formed),
                Some(Err(msg)) => Err(EmbeddedConfigError::GatherFailed { reason: msg }),
                None => Err(EmbeddedConfigError::GatherFailed { reason: "formation ended without a result".into() }),
            },
            _ => {
                let missing: Vec<String> = self.state().not_formed().iter().map(ToString::to_string).collect();
                Err(EmbeddedConfigError::GatherFailed { reason: format!(
                    "the workers registered but did not agree on a cloud within {:.0?}; still waiting for [{}]; check their logs for refused heartbeats (firewall between workers, wrong --network)",
                    self.shared.options.timeout,
                    missing.join(", ")
                ) })
            }
        }
    }

    /// Waits until `n` workers opened their watch stream (so a disown reaches them), bounded.
    pub async fn wait_for_watchers(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.watching_tx.subscribe();
        let reached = matches!(tokio::time::timeout(timeout, rx.wait_for(|w| w.len() >= n)).await, Ok(Ok(_)));
        reached
    }

    /// Tells every worker (watching now or later) to exit.
    pub fn tell_workers_exit(&self, reason: &str) {
        self.shared.driver_event_tx.send_replace(Some(DriverEvent { event: Some(driver_event::Event::Exit(reason.to_string())) }));
    }

    /// Tells every worker the driver leaves on purpose and the cloud stays.
    pub fn disown(&self) {
        self.shared.driver_event_tx.send_replace(Some(DriverEvent { event: Some(driver_event::Event::Disowned(true)) }));
    }

    fn event(&self, e: GatherEvent) {
        // The driver may have stopped listening; events are informational.
        let _ = self.shared.events_tx.send(e);
    }
}

/// The tonic implementation behind [`Gather::service`].
pub struct GatherServer {
    gather: Gather,
}

fn node_of(node: Option<&eddy_proto::v1::NodeAddr>) -> Result<NodeAddr, Status> {
    let node = node.ok_or_else(|| Status::invalid_argument("the node address is missing"))?;
    NodeAddr::from_proto(node).map_err(|e| Status::invalid_argument(e.to_string()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<DriverEvent, Status>> + Send>>;

#[tonic::async_trait]
impl GatherService for GatherServer {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let req = request.into_inner();
        let node = node_of(req.node.as_ref())?;
        let pid = req.stats.as_ref().map(|s| s.pid).unwrap_or_default();
        let registration = Registration { node, worker_id: req.worker_id.clone(), pid };
        let outcome = {
            let mut state = self.gather.state();
            let outcome = state.register(registration.clone());
            if let Ok(Some(peers)) = &outcome {
                self.gather.shared.phase_tx.send_replace(Phase::Sent(peers.clone()));
            }
            outcome
        };
        match outcome {
            Err(Refusal::Duplicate(msg)) => {
                tracing::warn!(%node, reason = %msg, "refused a registration");
                return Err(Status::already_exists(msg));
            }
            Err(Refusal::TooLate(msg)) => {
                tracing::warn!(%node, reason = %msg, "refused a registration");
                return Err(Status::failed_precondition(msg));
            }
            Ok(_) => {
                let count = self.gather.state().registrations().len();
                self.gather.event(GatherEvent::Registered { registration, count });
            }
        }
        match self.gather.wait_for_peers().await {
            Ok(peers) => Ok(Response::new(RegisterResponse {
                peers: peers.iter().map(NodeAddr::to_proto).collect(),
                cloud_name: self.gather.shared.options.cloud_name.clone(),
            })),
            Err(e) => Err(Status::deadline_exceeded(e.to_string())),
        }
    }

    async fn cloud_formed(&self, request: Request<CloudFormedRequest>) -> Result<Response<CloudFormedReply>, Status> {
        let req = request.into_inner();
        let node = node_of(req.node.as_ref())?;
        let leader = node_of(req.leader.as_ref())?;
        let outcome = self.gather.state().cloud_formed(node, req.size as usize, leader);
        match outcome {
            Ok(done) => {
                self.gather.event(GatherEvent::Formed { node });
                if let Some(formed) = done {
                    self.gather.shared.formed_tx.send_replace(Some(Ok(formed)));
                }
                Ok(Response::new(CloudFormedReply {}))
            }
            Err(msg) => {
                tracing::error!(%node, reason = %msg, "inconsistent formation report");
                self.gather.shared.formed_tx.send_replace(Some(Err(msg.clone())));
                Err(Status::failed_precondition(msg))
            }
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let node = node_of(request.get_ref().node.as_ref())?;
        self.gather.shared.watching_tx.send_modify(|w| {
            w.insert(node);
        });
        let mut rx = self.gather.shared.driver_event_tx.subscribe();
        // One event per stream: exit and disown are both final for the worker. A late watcher
        // still gets an event sent before it subscribed; a dropped sender ends the stream.
        let stream = futures::stream::once(async move { rx.wait_for(Option::is_some).await.ok().and_then(|e| e.clone()) })
            .filter_map(|e| async move { e.map(Ok) });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_exit(&self, request: Request<ExitReport>) -> Result<Response<ExitReportReply>, Status> {
        let req = request.into_inner();
        let node = node_of(req.node.as_ref())?;
        self.gather.state().exited.insert(node, req.reason.clone());
        tracing::info!(%node, reason = %req.reason, "worker is exiting");
        self.gather.event(GatherEvent::Exited { node, reason: req.reason });
        Ok(Response::new(ExitReportReply {}))
    }
}
