//! Driver-callback discovery: the worker registers with the driver's gather service, gets the
//! peer list back once every worker registered, reports formation, then watches the driver.
//!
//! An unreachable driver is retried with exponential backoff up to the timeout. Once the
//! cloud formed, a lost watch stream is retried a few times and then treated as the driver
//! being gone, so that workers never outlive a crashed driver (unless it disowned them).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use eddy_common::auth::AuthStamp;
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_proto::v1::gather_service_client::GatherServiceClient;
use eddy_proto::v1::{driver_event, CloudFormedRequest, ExitReport, RegisterRequest, WatchRequest};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

use crate::{normalize_peers, Announcement, EmbeddedConfig, EmbeddedConfigError, EmbeddedConfigResult, ExitRequest};

type Client = GatherServiceClient<InterceptedService<Channel, AuthStamp>>;

/// Settings of [`DriverCallback`].
#[derive(Debug, Clone)]
pub struct DriverCallbackOptions {
    /// The gather service address (`EDDY_DRIVER`).
    pub driver: SocketAddr,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// The cloud name.
    pub cloud_name: String,
    /// How long to keep trying an unreachable driver.
    pub timeout: Duration,
    /// How long a lost watch stream may stay lost before the worker gives up on the driver.
    pub driver_lost_grace: Duration,
    /// TLS toward the driver (`None`: plain TCP).
    pub tls: Option<std::sync::Arc<eddy_common::tls::InternalTls>>,
}

/// Discovery through the driver's gather service.
#[derive(Debug, Clone)]
pub struct DriverCallback {
    options: DriverCallbackOptions,
    client: Client,
}

impl DriverCallback {
    /// Prepares the client; nothing is sent until [`EmbeddedConfig::announce`].
    pub fn new(options: DriverCallbackOptions) -> EmbeddedConfigResult<Self> {
        let endpoint = eddy_common::tls::grpc_endpoint(&options.driver.to_string(), options.tls.as_deref())
            .map_err(|e| EmbeddedConfigError::InvalidArgument { what: "driver address", reason: e.to_string() })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            // Keepalives notice a driver host that vanished without closing the watch stream.
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let stamp = AuthStamp::new(options.secret.clone(), options.cloud_name.clone());
        let client = GatherServiceClient::with_interceptor(endpoint.connect_lazy(), stamp);
        Ok(Self { options, client })
    }

    /// A failed registration as an error: unreachable (retryable) while the driver may still
    /// be starting, refused otherwise.
    fn registration_error(&self, status: &tonic::Status, waited: Duration) -> EmbeddedConfigError {
        if is_transient(status) {
            return EmbeddedConfigError::DriverUnreachable {
                driver: self.options.driver.to_string(),
                waited,
                last_error: status.message().to_string(),
            };
        }
        if eddy_common::tls::is_untrusted_peer(status) {
            return EmbeddedConfigError::DriverRefused {
                driver: self.options.driver.to_string(),
                call: "registration",
                message: format!(
                    "{} ({}); the driver's and this worker's must be the same",
                    eddy_common::tls::UNTRUSTED_PEER,
                    status.message().rsplit(": ").next().unwrap_or_default()
                ),
            };
        }
        self.refused("registration", status)
    }

    fn refused(&self, call: &'static str, status: &tonic::Status) -> EmbeddedConfigError {
        EmbeddedConfigError::DriverRefused { driver: self.options.driver.to_string(), call, message: status.message().to_string() }
    }
}

/// Errors worth retrying while the driver may still be starting or busy.
fn is_transient(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown) && !eddy_common::tls::is_untrusted_peer(status)
}

#[async_trait]
impl EmbeddedConfig for DriverCallback {
    fn mode(&self) -> &'static str {
        "driver callback"
    }

    fn route_target(&self) -> Option<SocketAddr> {
        Some(self.options.driver)
    }

    fn allows_port_search(&self) -> bool {
        true
    }

    async fn announce(&self, me: &Announcement) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        let started = Instant::now();
        let request = RegisterRequest { node: Some(me.addr.to_proto()), worker_id: me.worker_id.clone(), stats: Some(me.stats.clone()) };
        let register = || async {
            let mut client = self.client.clone();
            client.register(request.clone()).await.map_err(|status| self.registration_error(&status, started.elapsed()))
        };
        // The driver may still be starting, or busy with many workers at once.
        let backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .with_total_delay(Some(self.options.timeout))
            .without_max_times();
        let reply = register
            .retry(backoff)
            .when(EmbeddedConfigError::is_retryable)
            .notify(|e, _| tracing::debug!(driver = %self.options.driver, error = %e, "driver not reachable yet; retrying"))
            .await?
            .into_inner();
        let mut peers = Vec::with_capacity(reply.peers.len());
        for p in &reply.peers {
            peers.push(NodeAddr::from_proto(p)?);
        }
        if !peers.contains(&me.addr) {
            return Err(EmbeddedConfigError::GatherFailed {
                reason: format!("the driver's peer list does not contain this node {}; is another driver using the same address?", me.addr),
            });
        }
        Ok(normalize_peers(peers, me.addr))
    }

    async fn cloud_formed(&self, me: NodeAddr, size: usize, leader: NodeAddr) -> EmbeddedConfigResult<()> {
        let request = CloudFormedRequest { node: Some(me.to_proto()), size: size as u32, leader: Some(leader.to_proto()) };
        let mut client = self.client.clone();
        client.cloud_formed(request).await.map_err(|s| self.refused("the cloud-formed report", &s))?;
        Ok(())
    }

    async fn exit_requested(&self, me: NodeAddr) -> ExitRequest {
        let mut lost_since: Option<Instant> = None;
        let mut last_error = String::new();
        loop {
            if let Some(since) = lost_since {
                if since.elapsed() >= self.options.driver_lost_grace {
                    return ExitRequest::ControllerLost {
                        reason: format!("lost the driver at {} for {:.0?}: {last_error}", self.options.driver, since.elapsed()),
                    };
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut client = self.client.clone();
            let connected_at = Instant::now();
            let mut stream = match client.watch(WatchRequest { node: Some(me.to_proto()) }).await {
                Ok(s) => s.into_inner(),
                Err(status) => {
                    last_error = status.message().to_string();
                    lost_since.get_or_insert_with(Instant::now);
                    continue;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(event)) => match event.event {
                        Some(driver_event::Event::Exit(reason)) => return ExitRequest::Exit { reason },
                        Some(driver_event::Event::Disowned(_)) => {
                            tracing::info!(driver = %self.options.driver, "the driver disowned the cloud; it keeps running without it");
                            return std::future::pending().await;
                        }
                        None => {}
                    },
                    Ok(None) => {
                        last_error = "the driver closed the watch stream".into();
                        break;
                    }
                    Err(status) => {
                        last_error = status.message().to_string();
                        break;
                    }
                }
            }
            // A stream that stayed up for a while was healthy: the loss starts now. One that
            // broke at once keeps counting from the earlier loss, so a flapping driver ends too.
            if connected_at.elapsed() > self.options.driver_lost_grace {
                lost_since = Some(Instant::now());
            } else {
                lost_since.get_or_insert_with(Instant::now);
            }
        }
    }

    async fn report_exit(&self, me: NodeAddr, reason: &str) {
        let mut client = self.client.clone();
        let report = ExitReport { node: Some(me.to_proto()), reason: reason.to_string() };
        match tokio::time::timeout(Duration::from_secs(2), client.report_exit(report)).await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::debug!(error = %status.message(), "could not report exit to the driver"),
            Err(_) => tracing::debug!("reporting exit to the driver timed out"),
        }
    }
}
