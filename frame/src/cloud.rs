//! The coordinator side: any node (worker or observer client) can import a dataset, list
//! frames, summarise them, read rows or delete them; the work runs on the workers that hold
//! the chunks. Imports run as jobs whose progress `GET /3/Jobs/{id}` shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use eddy_common::auth::{AuthCheck, AuthStamp};
use eddy_common::NodeAddr;
use eddy_node::{Extensions, NodeHandle};
use eddy_proto::v1::frame_service_client::FrameServiceClient;
use eddy_proto::v1::frame_service_server::FrameServiceServer;
use eddy_proto::v1::{ColumnBins, FrameMeta, FrameRef, HistogramRequest, RowsRequest};
use serde::{Deserialize, Serialize};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::compute::summary::{add_counts, finish, merge_all, BinSpec, ColumnPartial, ColumnSummary, Histogram, MAX_BINS};
use crate::import::columnar::InputFormat;
use crate::import::setup::SetupOverrides;
use crate::service::flight::FlightServer;
use crate::service::{FrameServer, FrameState};
use crate::storage::StorageOptions;
use crate::store::meta::{ChunkInfo, ColumnInfo, FrameInfo, FrameRegistry, JobState, Jobs};
use crate::store::ChunkStore;
use crate::{FrameError, FrameResult};

type Client = FrameServiceClient<InterceptedService<Channel, AuthStamp>>;

/// `POST /3/ImportFiles`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportRequest {
    /// A URL or path: file, directory or glob.
    pub path: String,
    /// Frame id [default: from the file name].
    #[serde(default)]
    pub destination_frame: Option<String>,
    /// Overrides of the guessed parse setup.
    #[serde(default)]
    pub parse_setup: SetupOverrides,
    /// Fail on the first bad value instead of storing it as missing.
    #[serde(default)]
    pub strict: bool,
    /// Split size in bytes [default: 64 MiB].
    #[serde(default)]
    pub split_bytes: Option<u64>,
    /// csv, parquet or arrow [default: detected from the first bytes and the name].
    #[serde(default)]
    pub format: Option<InputFormat>,
}

/// `POST /3/Frames/{id}/commit`: chunks staged by Arrow Flight puts, to register as a frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommitRequest {
    /// The columns (as every put reported them).
    pub columns: Vec<ColumnInfo>,
    /// The chunks (from the puts' replies: index, node, rows, bytes).
    pub chunks: Vec<ChunkInfo>,
    /// Where the data came from, for people reading `GET /3/Frames`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Copies of each chunk, on distinct workers [default: the cloud's `--replicas`]; 2 keeps the frame through the loss of a worker.
    #[serde(default)]
    pub replicas: Option<u32>,
}

pub(crate) struct Inner {
    pub(crate) node: NodeHandle,
    pub(crate) state: Arc<FrameState>,
    pub(crate) jobs: Jobs,
    pub(crate) storage: StorageOptions,
    stamp: AuthStamp,
    clients: Mutex<HashMap<NodeAddr, Client>>,
    /// Copies of each chunk of a frame without a source (`--replicas`).
    pub(crate) replicas: std::sync::atomic::AtomicU32,
}

/// Frames on this node: the worker-side service and the coordinator.
#[derive(Clone)]
pub struct FrameCloud {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for FrameCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCloud").field("node", &self.inner.node.addr()).finish()
    }
}

impl FrameCloud {
    /// Frames for `node`, holding at most `budget` bytes of chunks here.
    pub fn new(node: &NodeHandle, budget: u64, storage: StorageOptions) -> Self {
        let options = node.options();
        let reporter = node.clone();
        let store = ChunkStore::new(node.addr().to_string(), budget).with_observer(Arc::new(move |used| reporter.set_data_bytes(used)));
        let state = Arc::new(FrameState {
            me: node.addr(),
            stores: storage.stores.clone(),
            store,
            frames: FrameRegistry::default(),
            lost: Default::default(),
        });
        let cloud = Self {
            inner: Arc::new(Inner {
                node: node.clone(),
                state,
                jobs: Jobs::default(),
                storage,
                stamp: AuthStamp::new(options.secret.clone(), options.cloud_name.clone()),
                clients: Mutex::default(),
                replicas: std::sync::atomic::AtomicU32::new(1),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            cloud.watch_losses();
        }
        cloud
    }

    /// Copies of each chunk of a frame without a source, on distinct workers (at least 1).
    pub fn set_replicas(&self, copies: u32) {
        self.inner.replicas.store(copies.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The gRPC service and REST routes to serve on the node.
    pub fn extensions(&self) -> Extensions {
        let options = self.inner.node.options();
        let check = AuthCheck::new(options.secret.clone(), options.cloud_name.clone(), "frame service");
        let server = FrameServiceServer::new(FrameServer { state: self.inner.state.clone() }).max_decoding_message_size(64 << 20);
        let flight_check = AuthCheck::new(options.secret.clone(), options.cloud_name.clone(), "Arrow Flight service").accepting_grants();
        // One Flight message carries one record batch; Spark's are 10 000 rows.
        let flight = FlightServiceServer::new(FlightServer { state: self.inner.state.clone() })
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let grpc =
            tonic::service::Routes::new(InterceptedService::new(server, check)).add_service(InterceptedService::new(flight, flight_check));
        let stream = crate::service::arrow_stream::ArrowStreamService {
            state: self.inner.state.clone(),
            auth: AuthCheck::new(options.secret.clone(), options.cloud_name.clone(), "Arrow stream service"),
        };
        Extensions {
            stream: Some(std::sync::Arc::new(stream)),
            grpc: Some(grpc),
            rest: Some(crate::service::rest::routes(self.clone())),
            metrics: Some(std::sync::Arc::new(crate::service::metrics::FrameMetrics(self.clone()))),
        }
    }

    pub(crate) fn client(&self, node: NodeAddr) -> FrameResult<Client> {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&node) {
            return Ok(c.clone());
        }
        let tls = self.inner.node.options().internal_tls.clone();
        let endpoint = eddy_common::tls::grpc_endpoint(&node.grpc().to_string(), tls.as_deref())
            .map_err(|e| FrameError::Internal { what: "a worker's address", reason: e.to_string() })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        let client =
            FrameServiceClient::with_interceptor(endpoint.connect_lazy(), self.inner.stamp.clone()).max_decoding_message_size(64 << 20);
        clients.insert(node, client.clone());
        Ok(client)
    }

    pub(crate) fn workers(&self) -> FrameResult<Vec<NodeAddr>> {
        let view = self.inner.node.require_healthy()?;
        Ok(view.members.iter().map(|m| m.addr).collect())
    }

    pub(crate) fn remote(node: NodeAddr, s: tonic::Status) -> FrameError {
        FrameError::Worker { node: node.to_string(), reason: s.message().to_string() }
    }

    /// Every job started on this node.
    pub fn jobs(&self) -> Vec<JobState> {
        self.inner.jobs.all()
    }

    /// A job's state.
    pub fn job(&self, key: &str) -> Option<JobState> {
        self.inner.jobs.get(key)
    }

    /// Gives every member the frame's metadata; every member is tried (the cloud may be
    /// changing, e.g. a new worker joining during a recovery), and the first failure is the
    /// error. A member that cannot be reached and holds none of the frame is passed over: a
    /// process that is gone (an executor killed with its worker) stays a member until its
    /// heartbeats time out, and the frame is whole without it.
    pub(crate) async fn broadcast_meta(&self, info: &FrameInfo) -> FrameResult<()> {
        self.inner.state.frames.put(info.clone());
        let members: Vec<NodeAddr> = self.inner.node.view().members.iter().map(|m| m.addr).collect();
        let holds = |node: NodeAddr| info.chunks.iter().any(|c| c.node == node || c.replicas.contains(&node));
        let mut first_error = None;
        for node in members {
            match self.send_meta(node, info).await {
                Ok(()) => {}
                Err(s) if s.code() == tonic::Code::Unavailable && !holds(node) => {
                    tracing::warn!(%node, frame = %info.frame_id, reason = %s.message(), "passed over a member that cannot be reached and holds none of the frame");
                }
                Err(s) => {
                    first_error.get_or_insert(Self::remote(node, s));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn send_meta(&self, node: NodeAddr, info: &FrameInfo) -> Result<(), tonic::Status> {
        let wire = crate::service::wire::frame_info(info);
        let mut client = self.client(node).map_err(|e| tonic::Status::internal(e.to_string()))?;
        client.put_frame(FrameMeta { frame_id: info.frame_id.clone(), info: Some(wire) }).await?;
        Ok(())
    }

    /// Gives `node` the frame's metadata.
    pub(crate) async fn put_meta(&self, node: NodeAddr, info: &FrameInfo) -> FrameResult<()> {
        self.send_meta(node, info).await.map_err(|s| Self::remote(node, s))
    }

    pub(crate) async fn delete_everywhere(&self, frame_id: &str) {
        self.inner.state.frames.remove(frame_id);
        self.inner.state.store.delete(frame_id);
        let members: Vec<NodeAddr> = self.inner.node.view().members.iter().map(|m| m.addr).collect();
        for node in members {
            if let Ok(mut client) = self.client(node) {
                let call = client.delete_frame(FrameRef { frame_id: frame_id.to_string() });
                if let Ok(Err(s)) = tokio::time::timeout(Duration::from_secs(5), call).await {
                    tracing::warn!(%node, frame = frame_id, error = %s.message(), "could not delete the frame there");
                }
            }
        }
    }

    /// Gives every healthy worker new Hadoop delegation tokens (they replace those of the same
    /// alias in its token file); returns how many took them. A worker that fails is named.
    /// An unhealthy one is skipped: it must not keep the others from their tokens.
    pub async fn update_tokens(&self, credentials: &eddy_hadoop_ipc::credentials::Credentials) -> FrameResult<usize> {
        let workers: Vec<NodeAddr> = self.inner.node.view().members.iter().filter(|m| m.healthy).map(|m| m.addr).collect();
        let update = eddy_proto::v1::TokenUpdate { credentials: credentials.to_bytes() };
        let calls = workers.iter().map(|&node| {
            let update = update.clone();
            async move {
                let mut client = self.client(node)?;
                match tokio::time::timeout(Duration::from_secs(10), client.update_tokens(update)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(s)) => Err(Self::remote(node, s)),
                    Err(_) => Err(FrameError::Worker { node: node.to_string(), reason: "no answer within 10 s".into() }),
                }
            }
        });
        let results = futures::future::join_all(calls).await;
        let count = results.len();
        results.into_iter().collect::<FrameResult<Vec<()>>>()?;
        Ok(count)
    }

    /// Every frame this node knows.
    pub fn frames(&self) -> Vec<FrameInfo> {
        self.inner.state.frames.all()
    }

    /// One frame.
    pub fn frame(&self, id: &str) -> FrameResult<FrameInfo> {
        self.inner.state.frames.get(id).ok_or_else(|| FrameError::FrameNotFound { id: id.into() })
    }

    /// Deletes a frame on every node. An id no node has registered still has its staged
    /// chunks (puts never committed) swept from every node, then reports not found.
    pub async fn delete(&self, id: &str) -> FrameResult<()> {
        let known = self.frame(id);
        self.delete_everywhere(id).await;
        known.map(|_| ())
    }

    /// Registers a frame from chunks staged by Arrow Flight puts (`POST /3/Frames/{id}/commit`).
    /// Every chunk must be on a cloud member, which checks that it holds it; on any failure
    /// nothing stays registered and the staged chunks are dropped.
    pub async fn commit(&self, id: &str, request: CommitRequest) -> FrameResult<FrameInfo> {
        let workers = self.workers()?;
        self.inner.node.lock("first work: commit");
        let bad = |reason: String| FrameError::InvalidArgument { what: "commit", reason };
        if self.inner.state.frames.get(id).is_some() {
            return Err(bad(format!("frame {id} is registered already; delete it first or stage under a new id")));
        }
        // No columns is a frame too (a Spark DataFrame of rows without columns): its chunks
        // still count rows, so nothing checks for columns here.
        let mut chunks = request.chunks;
        chunks.sort_by_key(|c| c.index);
        if let Some(w) = chunks.windows(2).find(|w| w[0].index == w[1].index) {
            return Err(bad(format!("chunk {} is listed twice", w[0].index)));
        }
        if let Some(c) = chunks.iter().find(|c| !workers.contains(&c.node)) {
            return Err(bad(format!("chunk {} is on {}, which is not a worker of this cloud", c.index, c.node)));
        }
        let info = FrameInfo::from_chunks(id, request.sources, request.columns, chunks);
        let info = match self.register_with_replicas(info, request.replicas).await {
            Ok(info) => info,
            Err(e) => {
                self.delete_everywhere(id).await;
                return Err(e);
            }
        };
        tracing::info!(frame = %id, rows = info.rows, chunks = info.chunks.len(), bytes = info.bytes_in_memory, "frame committed");
        Ok(info)
    }

    /// Summarises every column: a map-reduce over the workers holding chunks, then a second
    /// one for the histograms (`bins` at most per numeric column, 0 for none), whose bins
    /// need the whole frame's minimum and maximum.
    pub async fn summary(&self, id: &str, bins: usize) -> FrameResult<Vec<ColumnSummary>> {
        let info = self.readable(id)?;
        self.workers()?;
        let calls = info.nodes().into_iter().map(|node| {
            let frame_id = info.frame_id.clone();
            async move {
                let mut client = self.client(node)?;
                let reply = client.summarize(FrameRef { frame_id }).await.map_err(|s| Self::remote(node, s))?;
                FrameResult::Ok(reply.into_inner().chunks)
            }
        });
        // Merged in chunk order: the same bits wherever the chunks live (after a worker's
        // chunks were read again elsewhere, too).
        let mut parts: Vec<_> = futures::future::try_join_all(calls).await?.into_iter().flatten().collect();
        parts.sort_by_key(|p| p.chunk);
        let merged = parts
            .into_iter()
            .map(|p| p.columns.into_iter().map(ColumnPartial::from).collect::<Vec<_>>())
            .fold(vec![ColumnPartial::default(); info.columns.len()], merge_all);
        let types: Vec<String> = info
            .columns
            .iter()
            .map(|c| serde_json::to_value(c.column_type).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default())
            .collect();
        let mut summaries: Vec<ColumnSummary> =
            info.columns.iter().zip(&merged).zip(&types).map(|((c, p), t)| finish(&c.name, t, p)).collect();
        let specs: Vec<BinSpec> =
            merged.iter().zip(&types).enumerate().filter_map(|(i, (p, t))| BinSpec::for_column(i, t, p, bins.min(MAX_BINS))).collect();
        if specs.is_empty() {
            return Ok(summaries);
        }
        let wire: Vec<ColumnBins> =
            specs.iter().map(|s| ColumnBins { column: s.column as u32, start: s.start, width: s.width, bins: s.bins as u32 }).collect();
        let calls = info.nodes().into_iter().map(|node| {
            let request = HistogramRequest { frame_id: info.frame_id.clone(), columns: wire.clone() };
            async move {
                let mut client = self.client(node)?;
                let reply = client.histogram(request).await.map_err(|s| Self::remote(node, s))?;
                FrameResult::Ok(reply.into_inner().columns.into_iter().map(|c| c.counts).collect::<Vec<_>>())
            }
        });
        let parts = futures::future::try_join_all(calls).await?;
        let counts = parts.into_iter().fold(specs.iter().map(|s| vec![0u64; s.bins]).collect(), add_counts);
        for (spec, counts) in specs.iter().zip(counts) {
            summaries[spec.column].histogram = Some(Histogram { start: spec.start, width: spec.width, counts });
        }
        Ok(summaries)
    }

    /// Rows `[offset, offset + count)` as text cells.
    pub async fn rows(&self, id: &str, offset: u64, count: u64) -> FrameResult<Vec<Vec<Option<String>>>> {
        let info = self.readable(id)?;
        let count = count.min(10_000);
        let mut out = Vec::new();
        let mut start_of_chunk = 0u64;
        for chunk in &info.chunks {
            let end_of_chunk = start_of_chunk + chunk.rows;
            let want_from = offset + out.len() as u64;
            if out.len() as u64 >= count {
                break;
            }
            if want_from < end_of_chunk && chunk.rows > 0 {
                let mut client = self.client(chunk.node)?;
                let request = RowsRequest {
                    frame_id: id.into(),
                    chunk: chunk.index,
                    start: want_from - start_of_chunk,
                    count: count - out.len() as u64,
                };
                let reply = client.get_rows(request).await.map_err(|s| Self::remote(chunk.node, s))?;
                out.extend(crate::service::wire::rows_from(reply.into_inner().rows));
            }
            start_of_chunk = end_of_chunk;
        }
        Ok(out)
    }
}
