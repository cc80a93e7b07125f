//! The worker side of the frame protocol: parse the splits handed to this worker into its
//! chunk store, keep frame metadata, and answer map-reduce tasks over local chunks.
//!
//! The room also holds the other ways in: Arrow Flight ([`flight`]), the REST routes
//! (`rest`), the protocol's typed messages (`wire`), Arrow IPC and export encodings
//! ([`codec`]) and the frame metrics (`metrics`).

pub mod arrow_stream;
pub mod codec;
pub mod flight;
pub(crate) mod metrics;
pub(crate) mod rest;
pub(crate) mod wire;

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use eddy_proto::v1::frame_service_server::FrameService;
use eddy_proto::v1::{
    BinCounts, ChunkData, ChunkList, ChunkPartial, ChunkRef, ExportTask, ExportedFiles, FrameAck, FrameMeta, FrameRef, GroupByPartial,
    GroupByTask, HistogramPartial, HistogramRequest, ParseSplitsRequest, RowsReply, RowsRequest, SplitDone, SummaryPartial, TokenUpdate,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::compute::summary::{bin_counts, partials_by_chunk, BinSpec, MAX_BINS};
use crate::import::format::SplitJob;
use crate::import::setup::ParseSetup;
use crate::storage::StorageOptions;
use crate::store::meta::{FrameInfo, FrameRegistry};
use crate::store::narrow::widen;
use crate::store::{Chunk, ChunkStore};
use crate::{FrameError, FrameResult};

/// Runs CPU-bound work on the rayon pool and awaits it without blocking the async runtime.
pub async fn run_cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> FrameResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        // The caller may have gone away; then the result is simply dropped.
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| FrameError::Internal { what: "parsing", reason: "a parse task panicked".into() })
}

/// What the frame service of one node holds.
#[derive(Debug)]
pub struct FrameState {
    /// This node.
    pub me: eddy_common::NodeAddr,
    /// The object stores this node opened (requests' storage options use them).
    pub stores: crate::storage::StoreRegistry,
    /// This node's chunks.
    pub store: ChunkStore,
    /// Frames this node knows.
    pub frames: FrameRegistry,
    /// Chunks and copies on processes the cloud removed, until recovered.
    pub lost: crate::store::meta::LostHoldings,
}

impl FrameState {
    /// Takes a frame's metadata from the cloud (at registration, after a recovery). It names
    /// the chunks this node holds: each must be here, and any other chunk of the frame (from a
    /// retried Spark task, say) is dropped, as are copies the frame no longer lists here.
    pub(crate) fn adopt(&self, info: FrameInfo) -> Result<(), String> {
        let mine: Vec<u32> = info.chunks.iter().filter(|c| c.node == self.me).map(|c| c.index).collect();
        let held: Vec<u32> = self.store.chunks(&info.frame_id).iter().map(|(i, _)| *i).collect();
        if let Some(missing) = mine.iter().find(|i| !held.contains(i)) {
            return Err(format!("chunk {missing} of {} is not on {}; it was never stored here or was lost", info.frame_id, self.me));
        }
        let freed = self.store.retain(&info.frame_id, |i| mine.contains(&i));
        if freed > 0 {
            tracing::info!(frame = %info.frame_id, freed, "dropped chunks the frame does not list");
        }
        let my_replicas: Vec<u32> = info.chunks.iter().filter(|c| c.replicas.contains(&self.me)).map(|c| c.index).collect();
        self.store.retain(&crate::store::replica_key(&info.frame_id), |i| my_replicas.contains(&i));
        // The metadata after a recovery: what was lost is settled.
        self.lost.settled(&info.frame_id);
        self.frames.put(info);
        Ok(())
    }
}

pub(crate) fn status(e: FrameError) -> Status {
    match e {
        FrameError::OutOfMemory { .. } => Status::resource_exhausted(e.to_string()),
        FrameError::FrameNotFound { .. } | FrameError::NotFound { .. } => Status::not_found(e.to_string()),
        FrameError::InvalidArgument { .. } | FrameError::InvalidUrl { .. } => Status::invalid_argument(e.to_string()),
        FrameError::FrameLost { .. } => Status::failed_precondition(e.to_string()),
        FrameError::Cloud { .. } => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The tonic implementation of `FrameService`.
#[derive(Debug, Clone)]
pub struct FrameServer {
    /// Shared with the coordinator on this node.
    pub state: Arc<FrameState>,
}

type SplitStream = Pin<Box<dyn Stream<Item = Result<SplitDone, Status>> + Send>>;
type GroupStream = Pin<Box<dyn Stream<Item = Result<GroupByPartial, Status>> + Send>>;

/// Bytes of partial groups per `GroupBy` message, about: far below the transport's limit.
const GROUP_PAGE_BYTES: usize = 4 << 20;

/// A message a peer got wrong, as the status it gets back.
fn malformed(what: &'static str) -> impl Fn(crate::service::wire::Malformed) -> Status {
    move |e| Status::invalid_argument(format!("malformed {what}: {e}"))
}

/// Formats rows `[start, start + count)` of a chunk's batches as text cells.
fn rows_as_text(
    batches: &[RecordBatch],
    schema: &arrow::datatypes::SchemaRef,
    start: u64,
    count: u64,
) -> FrameResult<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    let mut skip = start;
    let options = FormatOptions::default();
    for b in batches {
        let n = b.num_rows() as u64;
        if skip >= n {
            skip -= n;
            continue;
        }
        let b = &widen(b, schema)?;
        let formatters: Vec<ArrayFormatter<'_>> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>()?;
        for row in skip as usize..b.num_rows() {
            if out.len() as u64 >= count {
                return Ok(out);
            }
            let cells = b.columns().iter().zip(&formatters).map(|(c, f)| c.is_valid(row).then(|| f.value(row).to_string())).collect();
            out.push(cells);
        }
        skip = 0;
    }
    Ok(out)
}

use arrow::array::Array;

impl FrameState {
    /// A request's storage options (the coordinator's settings) with this node's open stores.
    fn request_storage(&self, settings: Option<eddy_proto::v1::StorageSettings>) -> StorageOptions {
        StorageOptions { stores: self.stores.clone(), ..crate::service::wire::storage_from(settings) }
    }

    /// A registered frame, or `not_found`.
    pub(crate) fn frame(&self, id: &str) -> Result<FrameInfo, Status> {
        self.frames.get(id).ok_or_else(|| status(FrameError::FrameNotFound { id: id.into() }))
    }

    /// One chunk held here, or `not_found` naming this node.
    pub(crate) fn chunk(&self, frame: &str, index: u32) -> Result<Arc<Chunk>, Status> {
        let found = self.store.chunks(frame).into_iter().find(|(i, _)| *i == index).map(|(_, c)| c);
        found.ok_or_else(|| Status::not_found(format!("chunk {index} of {frame} is not on {}", self.me)))
    }

    /// Refuses to add chunks to a frame that is registered (frames do not change).
    pub(crate) fn refuse_registered(&self, frame: &str) -> Result<(), Status> {
        match self.frames.get(frame) {
            Some(_) => Err(Status::already_exists(format!("frame {frame} is registered; a put may only add to a new frame"))),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl FrameService for FrameServer {
    type ParseSplitsStream = SplitStream;
    type GroupByStream = GroupStream;

    async fn parse_splits(&self, request: Request<ParseSplitsRequest>) -> Result<Response<SplitStream>, Status> {
        let req = request.into_inner();
        let setup: ParseSetup = crate::service::wire::setup_from(req.setup.ok_or_else(|| Status::invalid_argument("no parse setup"))?)
            .map_err(malformed("parse setup"))?;
        let storage = self.state.request_storage(req.storage);
        let format = crate::import::format::of(crate::service::wire::input_format_from(req.format).map_err(malformed("input format"))?);
        let job =
            Arc::new(SplitJob { frame_id: req.frame_id.clone(), schema: Arc::new(setup.schema()), setup, storage, strict: req.strict });
        let state = self.state.clone();
        // Enough splits in flight to keep every core parsing while the next ones are read.
        let in_flight = rayon::current_num_threads().max(1) + 1;
        let stream = futures::stream::iter(req.splits)
            .map(move |s| {
                let (state, job, format) = (state.clone(), job.clone(), format.clone());
                async move { format.read_split(&state, &job, &s).await }
            })
            .buffer_unordered(in_flight)
            .map(|r| r.map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put_frame(&self, request: Request<FrameMeta>) -> Result<Response<FrameAck>, Status> {
        let info = request.into_inner().info.ok_or_else(|| Status::invalid_argument("no frame metadata"))?;
        let info: FrameInfo = crate::service::wire::frame_info_from(info).map_err(malformed("frame metadata"))?;
        self.state.adopt(info).map_err(Status::failed_precondition)?;
        Ok(Response::new(FrameAck {}))
    }

    async fn get_frame(&self, request: Request<FrameRef>) -> Result<Response<FrameMeta>, Status> {
        let id = request.into_inner().frame_id;
        if self.state.lost.of(&id).is_some() {
            return Err(Status::unavailable(format!("frame {id} is being recovered on {}", self.state.me)));
        }
        let info = self.state.frame(&id)?;
        Ok(Response::new(FrameMeta { frame_id: id, info: Some(crate::service::wire::frame_info(&info)) }))
    }

    async fn summarize(&self, request: Request<FrameRef>) -> Result<Response<SummaryPartial>, Status> {
        let id = request.into_inner().frame_id;
        let info = self.state.frames.get(&id).ok_or_else(|| status(FrameError::FrameNotFound { id: id.clone() }))?;
        let chunks = self.state.store.chunks(&id);
        let ncols = info.columns.len();
        let parts = run_cpu(move || {
            let by_chunk: Vec<(u32, Vec<&RecordBatch>)> = chunks.iter().map(|(i, c)| (*i, c.batches.iter().collect())).collect();
            partials_by_chunk(&by_chunk, ncols)
        })
        .await
        .map_err(status)?;
        let chunks = parts
            .into_iter()
            .map(|(chunk, columns)| ChunkPartial { chunk, columns: columns.into_iter().map(Into::into).collect() })
            .collect();
        Ok(Response::new(SummaryPartial { columns: Vec::new(), chunks }))
    }

    async fn histogram(&self, request: Request<HistogramRequest>) -> Result<Response<HistogramPartial>, Status> {
        let request = request.into_inner();
        let id = request.frame_id;
        let info = self.state.frames.get(&id).ok_or_else(|| status(FrameError::FrameNotFound { id: id.clone() }))?;
        let mut specs = Vec::with_capacity(request.columns.len());
        for c in request.columns {
            let bins = c.bins as usize;
            if c.column as usize >= info.columns.len()
                || bins == 0
                || bins > MAX_BINS
                || !c.width.is_finite()
                || c.width <= 0.0
                || !c.start.is_finite()
            {
                return Err(Status::invalid_argument(format!(
                    "bins of column {} must name a column of the frame, 1 to {MAX_BINS} bins and a positive width",
                    c.column
                )));
            }
            specs.push(BinSpec { column: c.column as usize, start: c.start, width: c.width, bins });
        }
        let chunks = self.state.store.chunks(&id);
        let counts = run_cpu(move || {
            let batches: Vec<&RecordBatch> = chunks.iter().flat_map(|(_, c)| c.batches.iter()).collect();
            bin_counts(&batches, &specs)
        })
        .await
        .map_err(status)?;
        Ok(Response::new(HistogramPartial { columns: counts.into_iter().map(|counts| BinCounts { counts }).collect() }))
    }

    async fn delete_frame(&self, request: Request<FrameRef>) -> Result<Response<FrameAck>, Status> {
        let id = request.into_inner().frame_id;
        let freed = self.state.store.delete(&id);
        self.state.frames.remove(&id);
        self.state.lost.settled(&id);
        tracing::info!(frame = %id, freed, "frame deleted");
        Ok(Response::new(FrameAck {}))
    }

    async fn get_rows(&self, request: Request<RowsRequest>) -> Result<Response<RowsReply>, Status> {
        let req = request.into_inner();
        let chunk = self.state.chunk(&req.frame_id, req.chunk)?;
        let info = self.state.frame(&req.frame_id)?;
        let rows = rows_as_text(&chunk.batches, &info.schema(), req.start, req.count.min(10_000)).map_err(status)?;
        Ok(Response::new(RowsReply { rows: crate::service::wire::rows(&rows) }))
    }

    async fn group_by(&self, request: Request<GroupByTask>) -> Result<Response<GroupStream>, Status> {
        let task = request.into_inner();
        let info = self.state.frame(&task.frame_id)?;
        let req = crate::service::wire::group_by_from(task.request).map_err(malformed("group-by request"))?;
        let names: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let by = crate::compute::groupby::indices(&names, &req.by).map_err(status)?;
        let aggs =
            crate::compute::groupby::indices(&names, &req.aggs.iter().map(|a| a.column.clone()).collect::<Vec<_>>()).map_err(status)?;
        let chunks = self.state.store.chunks(&task.frame_id);
        let schema = info.schema();
        let plan = crate::compute::groupby::Plan::new(&schema, &by, &aggs);
        let groups = run_cpu(move || {
            let batches: Vec<&RecordBatch> = chunks.iter().flat_map(|(_, c)| c.batches.iter()).collect();
            crate::compute::groupby::fold(&batches, &schema, &plan)
        })
        .await
        .map_err(status)?
        .map_err(status)?;
        // Pages encoded as they go out, so that no message outgrows the transport's limit.
        let rows = groups.num_rows();
        let page = (GROUP_PAGE_BYTES as u128 * rows as u128 / groups.get_array_memory_size().max(1) as u128).clamp(1_024, 1 << 20) as usize;
        let pages = (0..rows).step_by(page).map(move |start| {
            let slice = groups.slice(start, page.min(rows - start));
            crate::service::codec::to_ipc(&slice.schema(), &[slice]).map(|arrow_ipc| GroupByPartial { arrow_ipc }).map_err(status)
        });
        Ok(Response::new(Box::pin(futures::stream::iter(pages))))
    }

    async fn put_chunk(&self, request: Request<ChunkData>) -> Result<Response<FrameAck>, Status> {
        let data = request.into_inner();
        let batches = crate::service::codec::from_ipc(&data.arrow_ipc).map_err(status)?;
        let batches = batches.into_iter().map(crate::store::ingest::compact).collect::<FrameResult<Vec<_>>>().map_err(status)?;
        let chunk = Chunk::new(batches);
        let what = format!("{} {} of {}", if data.replica { "a copy of chunk" } else { "chunk" }, data.chunk, data.frame_id);
        let reservation = self.state.store.reserve(chunk.bytes, &what).map_err(status)?;
        let key = if data.replica { crate::store::replica_key(&data.frame_id) } else { data.frame_id };
        self.state.store.insert(&key, data.chunk, chunk, reservation);
        Ok(Response::new(FrameAck {}))
    }

    async fn promote_replicas(&self, request: Request<ChunkList>) -> Result<Response<FrameAck>, Status> {
        let list = request.into_inner();
        self.state.store.promote(&list.frame_id, &list.chunks).map_err(|missing| {
            Status::failed_precondition(format!("no copy of chunk {missing} of {} is on {}", list.frame_id, self.state.me))
        })?;
        tracing::info!(frame = %list.frame_id, chunks = list.chunks.len(), "copies became the chunks of record");
        Ok(Response::new(FrameAck {}))
    }

    async fn get_chunk(&self, request: Request<ChunkRef>) -> Result<Response<ChunkData>, Status> {
        let r = request.into_inner();
        let info = self.state.frame(&r.frame_id)?;
        let chunk = self.state.chunk(&r.frame_id, r.chunk)?;
        let schema = info.schema();
        let bytes = run_cpu(move || {
            let wide = chunk.batches.iter().map(|b| widen(b, &schema)).collect::<FrameResult<Vec<_>>>()?;
            crate::service::codec::to_ipc(&schema, &wide)
        })
        .await
        .map_err(status)?
        .map_err(status)?;
        Ok(Response::new(ChunkData { frame_id: r.frame_id, chunk: r.chunk, arrow_ipc: bytes, replica: false }))
    }

    async fn update_tokens(&self, request: Request<TokenUpdate>) -> Result<Response<FrameAck>, Status> {
        let credentials = eddy_hadoop_ipc::credentials::Credentials::from_bytes(&request.into_inner().credentials)
            .map_err(|e| Status::invalid_argument(format!("the token update is not a Hadoop token file: {e}")))?;
        let stores = self.state.stores.clone();
        // File I/O off the async runtime's threads.
        let replaced = tokio::task::spawn_blocking(move || stores.update_tokens(&credentials))
            .await
            .map_err(|e| Status::internal(format!("the token update task failed: {e}")))?
            .map_err(status)?;
        tracing::info!(tokens = replaced, "took new delegation tokens");
        Ok(Response::new(FrameAck {}))
    }

    async fn export_chunks(&self, request: Request<ExportTask>) -> Result<Response<ExportedFiles>, Status> {
        let task = request.into_inner();
        let info = self.state.frame(&task.frame_id)?;
        let format = crate::service::codec::ExportFormat::parse(&task.format).map_err(status)?;
        let storage = self.state.request_storage(task.storage);
        let schema = info.schema();
        let mut out = ExportedFiles::default();
        for (index, chunk) in self.state.store.chunks(&task.frame_id) {
            let schema = schema.clone();
            let bytes = run_cpu(move || {
                let wide = chunk.batches.iter().map(|b| widen(b, &schema)).collect::<FrameResult<Vec<_>>>()?;
                crate::service::codec::encode(format, &schema, &wide)
            })
            .await
            .map_err(status)?
            .map_err(status)?;
            let url = format!("{}/part-{index:05}.{}", task.directory.trim_end_matches('/'), format.extension());
            out.bytes += bytes.len() as u64;
            crate::storage::write(&url, bytes::Bytes::from(bytes), &storage).await.map_err(status)?;
            out.urls.push(url);
        }
        Ok(Response::new(out))
    }
}
