//! The internal gRPC transport: the `NodeService` server and a pool of authenticated clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_common::auth::{AuthCheck, AuthStamp};
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_proto::v1::node_service_client::NodeServiceClient;
use eddy_proto::v1::node_service_server::{NodeService, NodeServiceServer};
use eddy_proto::v1::{Heartbeat, LogTailReply, LogTailRequest, PingReply, PingRequest, ShutdownReply, ShutdownRequest};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::membership::REFUSAL_METADATA_KEY;
use crate::runtime::Inner;

/// A client of one peer's `NodeService`.
pub(crate) type PeerClient = NodeServiceClient<InterceptedService<Channel, AuthStamp>>;

/// Lazily connected, authenticated clients, one per peer.
#[derive(Debug, Clone)]
pub(crate) struct ClientPool {
    stamp: AuthStamp,
    tls: Option<Arc<eddy_common::tls::InternalTls>>,
    clients: Arc<Mutex<HashMap<NodeAddr, PeerClient>>>,
}

impl ClientPool {
    pub(crate) fn new(secret: ClusterSecret, cloud_name: &str, tls: Option<Arc<eddy_common::tls::InternalTls>>) -> Self {
        Self { stamp: AuthStamp::new(secret, cloud_name), tls, clients: Arc::default() }
    }

    pub(crate) fn get(&self, peer: NodeAddr) -> Result<PeerClient, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&peer) {
            return Ok(c.clone());
        }
        let endpoint = eddy_common::tls::grpc_endpoint(&peer.grpc().to_string(), self.tls.as_deref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let client = NodeServiceClient::with_interceptor(endpoint.connect_lazy(), self.stamp.clone()).max_decoding_message_size(64 << 20);
        clients.insert(peer, client.clone());
        Ok(client)
    }
}

/// The server side of `NodeService`.
pub(crate) struct NodeServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn service(
    inner: Arc<Inner>,
    secret: ClusterSecret,
    cloud_name: &str,
) -> InterceptedService<NodeServiceServer<NodeServer>, AuthCheck> {
    let server = NodeServiceServer::new(NodeServer { inner }).max_decoding_message_size(64 << 20);
    InterceptedService::new(server, AuthCheck::new(secret, cloud_name, "node service"))
}

#[tonic::async_trait]
impl NodeService for NodeServer {
    async fn heartbeat(&self, request: Request<Heartbeat>) -> Result<Response<Heartbeat>, Status> {
        let hb = request.into_inner();
        self.inner.metrics.heartbeat_received();
        match self.inner.apply_heartbeat(&hb, Instant::now()) {
            Ok(()) => Ok(Response::new(self.inner.my_heartbeat())),
            Err((kind, message)) => {
                let mut status = Status::failed_precondition(message);
                status.metadata_mut().insert(REFUSAL_METADATA_KEY, tonic::metadata::MetadataValue::from_static(kind.code()));
                Err(status)
            }
        }
    }

    async fn shutdown(&self, request: Request<ShutdownRequest>) -> Result<Response<ShutdownReply>, Status> {
        let req = request.into_inner();
        let origin =
            req.origin.as_ref().and_then(|o| NodeAddr::from_proto(o).ok()).map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
        tracing::info!(%origin, reason = %req.reason, "shutdown requested by a peer");
        self.inner.stop(crate::StopReason::Shutdown { origin, reason: req.reason });
        Ok(Response::new(ShutdownReply {}))
    }

    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Ok(Response::new(PingReply { payload: request.into_inner().payload }))
    }

    async fn log_tail(&self, request: Request<LogTailRequest>) -> Result<Response<LogTailReply>, Status> {
        let lines = crate::logging::recent_lines(request.into_inner().lines as usize);
        Ok(Response::new(LogTailReply { lines }))
    }
}
