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
use eddy_proto::v1::{ColumnBins, FrameMeta, FrameRef, HistogramRequest, ParseSplitsRequest, RowsRequest, SplitDone, SplitSpec};
use serde::{Deserialize, Serialize};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::columnar::{ipc_layout, parquet_layout, InputFormat};
use crate::flight::FlightServer;
use crate::meta::{ChunkInfo, ColumnInfo, FrameInfo, FrameRegistry, Job, JobState, JobStatus, Jobs, ParseReport};
use crate::service::{FrameServer, FrameState};
use crate::setup::{guess, ColumnType, ParseSetup, SetupOverrides};
use crate::split::{assign, plan, starts_in_quotes, Split, DEFAULT_SPLIT_BYTES};
use crate::storage::{list, read_range, FileEntry, StorageOptions};
use crate::store::ChunkStore;
use crate::summary::{add_counts, finish, merge_all, BinSpec, ColumnPartial, ColumnSummary, Histogram, MAX_BINS};
use crate::{FrameError, FrameResult};

type Client = FrameServiceClient<InterceptedService<Channel, AuthStamp>>;

const SAMPLE_BYTES: u64 = 1 << 20;

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
}

/// What an import will read, planned on the coordinating node.
struct Plan {
    files: Vec<FileEntry>,
    setup: ParseSetup,
    format: InputFormat,
    splits: Vec<Split>,
    /// Estimated bytes in memory.
    estimate: u64,
}

pub(crate) struct Inner {
    pub(crate) node: NodeHandle,
    pub(crate) state: Arc<FrameState>,
    pub(crate) jobs: Jobs,
    pub(crate) storage: StorageOptions,
    stamp: AuthStamp,
    clients: Mutex<HashMap<NodeAddr, Client>>,
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

/// Whether `url` names a compressed file (or one whose compression is not supported).
pub(crate) fn compressed(url: &str) -> bool {
    matches!(crate::compression::codec_of(url), Ok(Some(_)) | Err(_))
}

impl FrameCloud {
    /// Frames for `node`, holding at most `budget` bytes of chunks here.
    pub fn new(node: &NodeHandle, budget: u64, storage: StorageOptions) -> Self {
        let options = node.options();
        let reporter = node.clone();
        let store = ChunkStore::new(node.addr().to_string(), budget).with_observer(Arc::new(move |used| reporter.set_data_bytes(used)));
        let state = Arc::new(FrameState { me: node.addr(), stores: storage.stores.clone(), store, frames: FrameRegistry::default() });
        Self {
            inner: Arc::new(Inner {
                node: node.clone(),
                state,
                jobs: Jobs::default(),
                storage,
                stamp: AuthStamp::new(options.secret.clone(), options.cloud_name.clone()),
                clients: Mutex::default(),
            }),
        }
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
        Extensions {
            grpc: Some(grpc),
            rest: Some(crate::rest::routes(self.clone())),
            metrics: Some(std::sync::Arc::new(crate::metrics::FrameMetrics(self.clone()))),
        }
    }

    pub(crate) fn client(&self, node: NodeAddr) -> FrameResult<Client> {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&node) {
            return Ok(c.clone());
        }
        let tls = self.inner.node.options().internal_tls.clone();
        let endpoint = eddy_common::tls::grpc_endpoint(&node.grpc().to_string(), tls.as_deref())
            .map_err(|e| FrameError::Internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        let client =
            FrameServiceClient::with_interceptor(endpoint.connect_lazy(), self.inner.stamp.clone()).max_decoding_message_size(64 << 20);
        clients.insert(node, client.clone());
        Ok(client)
    }

    pub(crate) fn workers(&self) -> FrameResult<Vec<NodeAddr>> {
        let view = self.inner.node.require_healthy().map_err(|e| FrameError::Cloud(e.to_string()))?;
        Ok(view.members.iter().map(|m| m.addr).collect())
    }

    pub(crate) fn remote(node: NodeAddr, s: tonic::Status) -> FrameError {
        FrameError::Cloud(format!("worker {node}: {}", s.message()))
    }

    /// Guesses the parse setup of the first file `path` names, with `overrides` applied
    /// (for Parquet and Arrow files: their own schema).
    pub async fn parse_setup(&self, path: &str, overrides: &SetupOverrides) -> FrameResult<(Vec<FileEntry>, ParseSetup)> {
        let plan = self.plan(&ImportRequest { path: path.into(), parse_setup: overrides.clone(), ..Default::default() }, 1).await?;
        Ok((plan.files, plan.setup))
    }

    async fn plan(&self, request: &ImportRequest, workers: usize) -> FrameResult<Plan> {
        let files = list(&request.path, &self.inner.storage).await?;
        let format = match request.format {
            Some(format) => format,
            None => crate::sniff::format_of(&files, &self.inner.storage).await?,
        };
        let total: u64 = files.iter().map(|f| f.size).sum();
        if format == InputFormat::Csv {
            for f in &files {
                crate::compression::codec_of(&f.url)?;
            }
            let first = &files[0];
            let (sample, whole) = match crate::compression::codec_of(&first.url)? {
                None => {
                    let take = first.size.min(SAMPLE_BYTES);
                    (read_range(&first.url, 0..take, &self.inner.storage).await?.to_vec(), take == first.size)
                }
                Some(codec) => {
                    let take = first.size.min(4 * SAMPLE_BYTES);
                    let head = read_range(&first.url, 0..take, &self.inner.storage).await?;
                    crate::compression::sample(codec, &head, take == first.size, SAMPLE_BYTES as usize)?
                }
            };
            let setup = guess(&sample, whole, &first.url)?.apply(&request.parse_setup)?;
            // Small inputs still reach every worker: about two splits each, 256 KiB at least.
            let split_bytes =
                request.split_bytes.unwrap_or_else(|| (total / (2 * workers as u64).max(1)).clamp(256 << 10, DEFAULT_SPLIT_BYTES));
            let splits = plan(&files, split_bytes, setup.header, |f| !compressed(&f.url));
            let estimate = files.iter().map(|f| if compressed(&f.url) { f.size * 6 } else { f.size + f.size / 5 }).sum();
            return Ok(Plan { files, setup, format, splits, estimate });
        }
        let mut columns_opt: Option<Vec<(String, ColumnType)>> = None;
        let mut splits = Vec::new();
        let mut estimate = 0;
        for f in &files {
            let (columns, groups) = match format {
                InputFormat::Parquet => parquet_layout(&f.url, f.size, &self.inner.storage).await?,
                _ => (ipc_layout(&f.url, f.size, &self.inner.storage).await?, vec![f.size]),
            };
            match &columns_opt {
                Some(first) if *first != columns => {
                    return Err(FrameError::Parse {
                        url: f.url.clone(),
                        reason: format!("its columns differ from those of {}; every file must have the same columns", files[0].url),
                    })
                }
                _ => columns_opt = Some(columns),
            }
            for (i, bytes) in groups.iter().enumerate() {
                let (start, end) = if format == InputFormat::Parquet { (i as u64, i as u64 + 1) } else { (0, f.size) };
                splits.push(Split {
                    url: f.url.clone(),
                    start,
                    end,
                    file_size: f.size,
                    chunk: splits.len() as u32,
                    skip_header: false,
                    hosts: Vec::new(),
                });
                estimate += bytes + bytes / 5;
            }
        }
        let columns = columns_opt.unwrap_or_default();
        let setup = ParseSetup {
            separator: ',',
            header: false,
            column_names: columns.iter().map(|c| c.0.clone()).collect(),
            column_types: columns.iter().map(|c| c.1).collect(),
            na_strings: Vec::new(),
            skipped_columns: Vec::new(),
        }
        .apply(&SetupOverrides { skipped_columns: request.parse_setup.skipped_columns.clone(), ..Default::default() })?;
        Ok(Plan { files, setup, format, splits, estimate })
    }

    /// Starts an import job; returns its id at once.
    pub fn start_import(&self, request: ImportRequest) -> String {
        let (key, job) = self.inner.jobs.create(&format!("Import {}", request.path));
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.import(&request, &job).await;
            job.update(|s| match result {
                Ok(info) => {
                    s.status = JobStatus::Done;
                    s.progress = 1.0;
                    s.dest = Some(info.frame_id);
                }
                Err(e) => {
                    s.status = JobStatus::Failed;
                    s.error = Some(e.to_string());
                }
            });
        });
        key
    }

    /// Every job started on this node.
    pub fn jobs(&self) -> Vec<JobState> {
        self.inner.jobs.all()
    }

    /// A job's state.
    pub fn job(&self, key: &str) -> Option<JobState> {
        self.inner.jobs.get(key)
    }

    /// Imports a dataset into a frame spread over the workers.
    pub async fn import(&self, request: &ImportRequest, job: &Job) -> FrameResult<FrameInfo> {
        let workers = self.workers()?;
        self.inner.node.lock("first work: import");
        let Plan { files, setup, format, splits, estimate } = self.plan(request, workers.len()).await?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.check_memory(estimate)?;
        let stem = files[0].url.rsplit('/').next().unwrap_or("frame").split('.').next().unwrap_or("frame").to_string();
        let frame_id = request.destination_frame.clone().unwrap_or_else(|| self.inner.state.frames.fresh_id(&stem));
        job.update(|s| s.bytes_total = total);
        tracing::info!(frame = %frame_id, files = files.len(), bytes = total, splits = splits.len(), workers = workers.len(), "import started");

        match self.parse_everywhere(&frame_id, &setup, format, &workers, &splits, request.strict, job).await {
            Ok((chunks, report)) => {
                let columns = setup
                    .column_names
                    .iter()
                    .zip(&setup.column_types)
                    .enumerate()
                    .filter(|(i, _)| !setup.skipped_columns.contains(i))
                    .map(|(_, (n, t))| ColumnInfo::new(n.clone(), *t))
                    .collect();
                let sources = files.iter().map(|f| f.url.clone()).collect();
                let info = FrameInfo {
                    source_bytes: total,
                    parse_report: report,
                    ..FrameInfo::from_chunks(frame_id.clone(), sources, columns, chunks)
                };
                self.broadcast_meta(&info).await?;
                Ok(info)
            }
            Err(e) => {
                // Nothing half-registered: every worker drops what it parsed of this frame.
                self.delete_everywhere(&frame_id).await;
                Err(e)
            }
        }
    }

    fn check_memory(&self, needed: u64) -> FrameResult<()> {
        let view = self.inner.node.view();
        let free: u64 = view.members.iter().filter_map(|m| m.stats.as_ref()).map(|s| s.free_mem).sum();
        if needed > free {
            return Err(FrameError::OutOfMemory {
                node: "the cloud".into(),
                what: "this import (estimated)".into(),
                needed,
                available: free,
                budget: view.members.iter().filter_map(|m| m.stats.as_ref()).map(|s| s.max_mem).sum(),
            });
        }
        Ok(())
    }

    /// Parses `splits` on `workers`: every split first as if it started outside quotes, then
    /// again each split whose start the quote counts of the splits before it show to lie
    /// inside a quoted field (see [`crate::split`]).
    #[allow(clippy::too_many_arguments)]
    async fn parse_everywhere(
        &self,
        frame_id: &str,
        setup: &ParseSetup,
        format: InputFormat,
        workers: &[NodeAddr],
        splits: &[Split],
        strict: bool,
        job: &Job,
    ) -> FrameResult<(Vec<ChunkInfo>, ParseReport)> {
        let request = ParseSplitsRequest {
            frame_id: frame_id.to_string(),
            setup: Some(crate::wire::setup(setup)),
            storage: Some(crate::wire::storage(&self.inner.storage)),
            strict,
            format: crate::wire::input_format(format) as i32,
            splits: Vec::new(),
        };
        let hosts: Vec<String> = workers.iter().map(|w| w.ip.to_string()).collect();
        let first_round: Vec<(NodeAddr, Vec<SplitSpec>)> = assign(splits, &hosts)
            .into_iter()
            .zip(workers)
            .filter(|(mine, _)| !mine.is_empty())
            .map(|(mine, node)| (*node, mine.iter().map(|s| spec(s, false)).collect()))
            .collect();
        let progress = Progress::new(job, splits, format);
        let mut done: HashMap<u32, (NodeAddr, SplitDone)> = self.parse_round(&request, first_round, &progress).await?;
        if done.len() != splits.len() {
            return Err(FrameError::Cloud(format!("{} of {} chunks came back; a worker stopped early", done.len(), splits.len())));
        }
        let quotes: Vec<u64> = splits.iter().map(|s| done.get(&s.chunk).map_or(0, |(_, d)| d.quotes)).collect();
        let mut second_round: HashMap<NodeAddr, Vec<SplitSpec>> = HashMap::new();
        for (s, in_quotes) in splits.iter().zip(starts_in_quotes(splits, &quotes)) {
            if let (true, Some((node, _))) = (in_quotes, done.get(&s.chunk)) {
                second_round.entry(*node).or_default().push(spec(s, true));
            }
        }
        if !second_round.is_empty() {
            tracing::info!(
                frame = frame_id,
                splits = second_round.values().map(Vec::len).sum::<usize>(),
                "splits start inside quotes: parsing them again"
            );
            done.extend(self.parse_round(&request, second_round.into_iter().collect(), &progress).await?);
        }
        let mut chunks = Vec::with_capacity(done.len());
        let mut report = ParseReport::default();
        for (node, d) in done.into_values() {
            if !d.parse_error.is_empty() {
                return Err(FrameError::Cloud(format!("worker {node}: {}", d.parse_error)));
            }
            chunks.push(ChunkInfo { index: d.chunk, node, rows: d.rows, bytes: d.bytes_in_memory });
            report.bad_rows += d.bad_rows;
            report.bad_cells += d.bad_cells;
            report.examples.extend(d.examples.into_iter().map(crate::wire::bad_value_from));
        }
        chunks.sort_by_key(|c| c.index);
        report.examples.sort_by(|a, b| (&a.url, a.offset).cmp(&(&b.url, b.offset)));
        report.examples.truncate(5);
        job.update(|s| {
            s.rows = chunks.iter().map(|c| c.rows).sum();
            s.parse_report = report.clone();
        });
        Ok((chunks, report))
    }

    /// One round of `ParseSplits` calls, a call per node; the splits each node finished.
    async fn parse_round(
        &self,
        request: &ParseSplitsRequest,
        calls: Vec<(NodeAddr, Vec<SplitSpec>)>,
        progress: &Progress,
    ) -> FrameResult<HashMap<u32, (NodeAddr, SplitDone)>> {
        let calls = calls.into_iter().map(|(node, splits)| {
            let request = ParseSplitsRequest { splits, ..request.clone() };
            async move {
                let mut client = self.client(node)?;
                let mut stream = client.parse_splits(request).await.map_err(|s| Self::remote(node, s))?.into_inner();
                let mut finished = Vec::new();
                while let Some(done) = stream.message().await.map_err(|s| Self::remote(node, s))? {
                    progress.split_done(&done);
                    finished.push((done.chunk, (node, done)));
                }
                FrameResult::Ok(finished)
            }
        });
        Ok(futures::future::try_join_all(calls).await?.into_iter().flatten().collect())
    }

    pub(crate) async fn broadcast_meta(&self, info: &FrameInfo) -> FrameResult<()> {
        let wire = crate::wire::frame_info(info);
        self.inner.state.frames.put(info.clone());
        for node in self.workers()? {
            let mut client = self.client(node)?;
            client
                .put_frame(FrameMeta { frame_id: info.frame_id.clone(), info: Some(wire.clone()) })
                .await
                .map_err(|s| Self::remote(node, s))?;
        }
        Ok(())
    }

    async fn delete_everywhere(&self, frame_id: &str) {
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

    /// Every frame this node knows.
    pub fn frames(&self) -> Vec<FrameInfo> {
        self.inner.state.frames.all()
    }

    /// One frame.
    pub fn frame(&self, id: &str) -> FrameResult<FrameInfo> {
        self.inner.state.frames.get(id).ok_or_else(|| FrameError::FrameNotFound(id.into()))
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
        if let Err(e) = self.broadcast_meta(&info).await {
            self.delete_everywhere(id).await;
            return Err(e);
        }
        tracing::info!(frame = %id, rows = info.rows, chunks = info.chunks.len(), bytes = info.bytes_in_memory, "frame committed");
        Ok(info)
    }

    /// Summarises every column: a map-reduce over the workers holding chunks, then a second
    /// one for the histograms (`bins` at most per numeric column, 0 for none), whose bins
    /// need the whole frame's minimum and maximum.
    pub async fn summary(&self, id: &str, bins: usize) -> FrameResult<Vec<ColumnSummary>> {
        let info = self.frame(id)?;
        self.workers()?;
        let calls = info.nodes().into_iter().map(|node| {
            let frame_id = info.frame_id.clone();
            async move {
                let mut client = self.client(node)?;
                let reply = client.summarize(FrameRef { frame_id }).await.map_err(|s| Self::remote(node, s))?;
                FrameResult::Ok(reply.into_inner().columns.into_iter().map(ColumnPartial::from).collect::<Vec<_>>())
            }
        });
        let parts = futures::future::try_join_all(calls).await?;
        let merged = parts.into_iter().fold(vec![ColumnPartial::default(); info.columns.len()], merge_all);
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
        let info = self.frame(id)?;
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
                out.extend(crate::wire::rows_from(reply.into_inner().rows));
            }
            start_of_chunk = end_of_chunk;
        }
        Ok(out)
    }
}

fn spec(s: &Split, start_in_quotes: bool) -> SplitSpec {
    SplitSpec {
        url: s.url.clone(),
        start: s.start,
        end: s.end,
        file_size: s.file_size,
        chunk: s.chunk,
        skip_header: s.skip_header,
        start_in_quotes,
    }
}

/// An import job's progress as splits finish. Bytes count each split's share of the input
/// (its nominal range; a Parquet file's size spread over its row groups), not what the worker
/// read: neighbouring splits read past their ends, so those reads add up to more than the
/// input. A split parsed again (a second round after a wrong quote guess) replaces its count.
struct Progress {
    job: Job,
    /// Input bytes of each chunk's split.
    shares: HashMap<u32, u64>,
    /// Rows of each chunk that finished.
    finished: Mutex<HashMap<u32, u64>>,
}

impl Progress {
    fn new(job: &Job, splits: &[Split], format: InputFormat) -> Self {
        let mut shares = HashMap::new();
        if format == InputFormat::Parquet {
            let mut groups: HashMap<&str, Vec<&Split>> = HashMap::new();
            for s in splits {
                groups.entry(s.url.as_str()).or_default().push(s);
            }
            for parts in groups.values() {
                let n = parts.len() as u64;
                for (i, s) in parts.iter().enumerate() {
                    let share = s.file_size / n + if i as u64 == n - 1 { s.file_size % n } else { 0 };
                    shares.insert(s.chunk, share);
                }
            }
        } else {
            shares.extend(splits.iter().map(|s| (s.chunk, s.end.saturating_sub(s.start))));
        }
        Self { job: job.clone(), shares, finished: Mutex::default() }
    }

    fn split_done(&self, done: &SplitDone) {
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        finished.insert(done.chunk, done.rows);
        let rows = finished.values().sum();
        let bytes = finished.keys().filter_map(|c| self.shares.get(c)).sum();
        let fraction = finished.len() as f64 / self.shares.len().max(1) as f64;
        self.job.update(|s| {
            s.bytes_read = bytes;
            s.rows = rows;
            s.progress = fraction.min(0.99);
        });
    }
}
