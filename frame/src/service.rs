//! The worker side of the frame protocol: parse the splits handed to this worker into its
//! chunk store, keep frame metadata, and answer map-reduce tasks over local chunks.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use eddy_proto::v1::frame_service_server::FrameService;
use eddy_proto::v1::{
    BinCounts, ChunkData, ChunkRef, ExportTask, ExportedFiles, FrameAck, FrameMeta, FrameRef, GroupByPartial, GroupByTask,
    HistogramPartial, HistogramRequest, ParseSplitsRequest, RowsReply, RowsRequest, SplitDone, SplitSpec, SummaryPartial,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::columnar::{read_ipc, read_row_group, InputFormat};
use crate::meta::{FrameInfo, FrameRegistry};
use crate::narrow::{narrow, widen};
use crate::parse::parse;
use crate::setup::ParseSetup;
use crate::split::{count_quotes, record_end, record_start};
use crate::storage::{read_range, StorageOptions};
use crate::store::{Chunk, ChunkStore};
use crate::summary::{bin_counts, partials, BinSpec, MAX_BINS};
use crate::{FrameError, FrameResult};

/// Runs CPU-bound work on the rayon pool and awaits it without blocking the async runtime.
pub async fn run_cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> FrameResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        // The caller may have gone away; then the result is simply dropped.
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| FrameError::Internal("a parse task panicked".into()))
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
}

pub(crate) fn status(e: FrameError) -> Status {
    match e {
        FrameError::OutOfMemory { .. } => Status::resource_exhausted(e.to_string()),
        FrameError::FrameNotFound(_) | FrameError::NotFound { .. } => Status::not_found(e.to_string()),
        FrameError::InvalidArgument { .. } | FrameError::InvalidUrl { .. } => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The records a split owns, read from storage.
struct SplitRecords {
    /// Whole records.
    data: bytes::Bytes,
    /// Their offset in the file.
    offset: u64,
    /// Bytes read from storage.
    bytes_read: u64,
    /// Quote bytes in the split's nominal range (for the start parity of the next split).
    quotes: u64,
    /// Whether `data` may hold a quote.
    quoted: bool,
}

/// UTF-8's byte-order mark, which some writers put before the first record.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the first record of a file begins in `buf` (the file's first bytes): after a
/// byte-order mark, and past the header when there is one; `None` if the header goes on
/// past `buf`.
fn first_record(buf: &[u8], skip_header: bool) -> Option<usize> {
    let first = if buf.starts_with(BOM) { BOM.len() } else { 0 };
    if skip_header {
        crate::split::next_record_start(buf, first, false)
    } else {
        Some(first)
    }
}

/// Reads the records a split owns; `s.start_in_quotes` says whether its start lies inside a
/// quoted field.
async fn read_records(s: &SplitSpec, storage: &StorageOptions) -> FrameResult<SplitRecords> {
    const WINDOW: u64 = 64 << 10;
    let buf_start = s.start.saturating_sub(1);
    let mut buf_end = (s.end + WINDOW).min(s.file_size);
    // Kept as `Bytes` so the records are sliced out without copying the split.
    let mut buf = read_range(&s.url, buf_start..buf_end, storage).await?;
    let mut bytes_read = buf.len() as u64;
    let nominal = |buf: &[u8]| buf.get((s.start - buf_start) as usize..(s.end - buf_start) as usize).map(count_quotes);
    let quotes = nominal(&buf);
    // Records longer than the window: read on until the boundaries are found or the file ends.
    let (first, last) = loop {
        let first =
            if s.start == 0 { first_record(&buf, s.skip_header) } else { record_start(&buf, buf_start, s.start, s.start_in_quotes) };
        let owns_none = first.is_some_and(|f| s.start > 0 && buf_start + f as u64 >= s.end.max(1));
        let last = match first {
            Some(f) if !owns_none => record_end(&buf, buf_start, s.end.max(1), f),
            _ => None,
        };
        match (first, last) {
            _ if owns_none => break (0, 0),
            (Some(f), Some(l)) => break (f, l),
            _ if buf_end >= s.file_size => break (first.unwrap_or(buf.len()), buf.len()),
            _ => {
                let next = (buf_end + (buf.len() as u64).max(1 << 20)).min(s.file_size);
                let more = read_range(&s.url, buf_end..next, storage).await?;
                bytes_read += more.len() as u64;
                let mut joined = Vec::with_capacity(buf.len() + more.len());
                joined.extend_from_slice(&buf);
                joined.extend_from_slice(&more);
                buf = bytes::Bytes::from(joined);
                buf_end = next;
            }
        }
    };
    let quotes = quotes.or_else(|| nominal(&buf)).unwrap_or(0);
    let data = if first >= last { bytes::Bytes::new() } else { buf.slice(first..last) };
    // The records reach past the nominal range at either end (by a record at most): look for
    // quotes there, not again over the whole split.
    let (from, to) =
        ((s.start.saturating_sub(buf_start) as usize).clamp(first, last), (s.end.saturating_sub(buf_start) as usize).clamp(first, last));
    let quoted = quotes > 0
        || memchr::memchr(crate::split::QUOTE, &buf[first..from]).is_some()
        || memchr::memchr(crate::split::QUOTE, &buf[to..last]).is_some();
    Ok(SplitRecords { data, offset: buf_start + first as u64, bytes_read, quotes, quoted })
}

async fn parse_one(state: Arc<FrameState>, job: Arc<SplitJob>, s: SplitSpec) -> FrameResult<SplitDone> {
    match job.format {
        InputFormat::Csv => parse_csv(state, job, s).await,
        InputFormat::Parquet | InputFormat::Arrow => read_columnar(state, job, s).await,
    }
}

/// What every split of one `ParseSplits` call shares.
pub(crate) struct SplitJob {
    frame_id: String,
    setup: ParseSetup,
    schema: arrow::datatypes::SchemaRef,
    storage: StorageOptions,
    strict: bool,
    format: InputFormat,
}

fn done(s: &SplitSpec, chunk: &Chunk, bytes_read: u64, parsed: Option<&crate::parse::Parsed>) -> SplitDone {
    SplitDone {
        chunk: s.chunk,
        rows: chunk.rows,
        bytes_read,
        bytes_in_memory: chunk.bytes,
        bad_rows: parsed.map_or(0, |p| p.bad_rows),
        bad_cells: parsed.map_or(0, |p| p.bad_cells),
        examples: parsed.map(|p| p.examples.iter().map(crate::wire::bad_value).collect()).unwrap_or_default(),
        ..SplitDone::default()
    }
}

async fn parse_csv(state: Arc<FrameState>, job: Arc<SplitJob>, s: SplitSpec) -> FrameResult<SplitDone> {
    let span = s.end - s.start;
    // Arrow takes about 1.15x the CSV's bytes; reserve more, settle to the truth after.
    let estimate = span + span / 2 + (64 << 10);
    let what = format!("chunk {} of {} ({} bytes of {})", s.chunk, job.frame_id, span, s.url);
    let codec = crate::compression::codec_of(&s.url)?;
    let estimate = if codec.is_some() { s.file_size * 6 } else { estimate };
    let reservation = state.store.reserve(estimate, &what)?;
    let records = match codec {
        None => read_records(&s, &job.storage).await?,
        Some(codec) => {
            let compressed = read_range(&s.url, 0..s.file_size, &job.storage).await?;
            let url = s.url.clone();
            let text = bytes::Bytes::from(run_cpu(move || crate::compression::decompress(codec, &compressed, &url)).await??);
            let first = first_record(&text, s.skip_header).unwrap_or(text.len());
            let quoted = memchr::memchr(crate::split::QUOTE, &text).is_some();
            SplitRecords { data: text.slice(first..), offset: first as u64, bytes_read: s.file_size, quotes: 0, quoted }
        }
    };
    let url = s.url.clone();
    let job2 = job.clone();
    let data = records.data;
    let mut parsed = match run_cpu(move || parse(&data, records.offset, records.quoted, &job2.setup, &url, job2.strict)).await? {
        Ok(parsed) => parsed,
        Err(e @ FrameError::Parse { .. }) => {
            // The coordinator knows whether this split started in the right quote state.
            let empty = Chunk::new(Vec::new());
            return Ok(SplitDone { quotes: records.quotes, parse_error: e.to_string(), ..done(&s, &empty, records.bytes_read, None) });
        }
        Err(e) => return Err(e),
    };
    let chunk = Chunk::new(std::mem::take(&mut parsed.batches));
    let reply = SplitDone { quotes: records.quotes, ..done(&s, &chunk, records.bytes_read, Some(&parsed)) };
    state.store.insert(&job.frame_id, s.chunk, chunk, reservation);
    Ok(reply)
}

async fn read_columnar(state: Arc<FrameState>, job: Arc<SplitJob>, s: SplitSpec) -> FrameResult<SplitDone> {
    let what = format!("chunk {} of {} ({})", s.chunk, job.frame_id, s.url);
    // Values decoded take about their uncompressed bytes; reserve a fifth more, settle after.
    let reserve = |bytes: u64| state.store.reserve(bytes + bytes / 5 + (64 << 10), &what);
    let (batches, reservation) = match job.format {
        InputFormat::Parquet => read_row_group(&s.url, s.file_size, s.start as usize, &job.storage, &job.schema, reserve).await?,
        _ => {
            let reservation = reserve(s.file_size)?;
            (read_ipc(&s.url, s.file_size, &job.storage, &job.schema).await?, reservation)
        }
    };
    let batches = run_cpu(move || batches.into_iter().map(narrow).collect::<FrameResult<Vec<_>>>()).await??;
    let chunk = Chunk::new(batches);
    let reply = done(&s, &chunk, if job.format == InputFormat::Parquet { 0 } else { s.file_size }, None);
    state.store.insert(&job.frame_id, s.chunk, chunk, reservation);
    Ok(reply)
}

/// The tonic implementation of `FrameService`.
#[derive(Debug, Clone)]
pub struct FrameServer {
    /// Shared with the coordinator on this node.
    pub state: Arc<FrameState>,
}

type SplitStream = Pin<Box<dyn Stream<Item = Result<SplitDone, Status>> + Send>>;

/// A message a peer got wrong, as the status it gets back.
fn malformed(what: &'static str) -> impl Fn(crate::wire::Malformed) -> Status {
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
        StorageOptions { stores: self.stores.clone(), ..crate::wire::storage_from(settings) }
    }

    /// A registered frame, or `not_found`.
    pub(crate) fn frame(&self, id: &str) -> Result<FrameInfo, Status> {
        self.frames.get(id).ok_or_else(|| status(FrameError::FrameNotFound(id.into())))
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

    async fn parse_splits(&self, request: Request<ParseSplitsRequest>) -> Result<Response<SplitStream>, Status> {
        let req = request.into_inner();
        let setup: ParseSetup = crate::wire::setup_from(req.setup.ok_or_else(|| Status::invalid_argument("no parse setup"))?)
            .map_err(malformed("parse setup"))?;
        let storage = self.state.request_storage(req.storage);
        let format = crate::wire::input_format_from(req.format).map_err(malformed("input format"))?;
        let job = Arc::new(SplitJob {
            frame_id: req.frame_id.clone(),
            schema: Arc::new(setup.schema()),
            setup,
            storage,
            strict: req.strict,
            format,
        });
        let state = self.state.clone();
        // Enough splits in flight to keep every core parsing while the next ones are read.
        let in_flight = rayon::current_num_threads().max(1) + 1;
        let stream = futures::stream::iter(req.splits)
            .map(move |s| parse_one(state.clone(), job.clone(), s))
            .buffer_unordered(in_flight)
            .map(|r| r.map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put_frame(&self, request: Request<FrameMeta>) -> Result<Response<FrameAck>, Status> {
        let info = request.into_inner().info.ok_or_else(|| Status::invalid_argument("no frame metadata"))?;
        let info: FrameInfo = crate::wire::frame_info_from(info).map_err(malformed("frame metadata"))?;
        // The metadata names the chunks this node holds: each must be here, and any other
        // chunk of the frame (from a retried Spark task, say) is dropped.
        let mine: Vec<u32> = info.chunks.iter().filter(|c| c.node == self.state.me).map(|c| c.index).collect();
        let held: Vec<u32> = self.state.store.chunks(&info.frame_id).iter().map(|(i, _)| *i).collect();
        if let Some(missing) = mine.iter().find(|i| !held.contains(i)) {
            return Err(Status::failed_precondition(format!(
                "chunk {missing} of {} is not on {}; it was never stored here or was lost",
                info.frame_id, self.state.me
            )));
        }
        let freed = self.state.store.retain(&info.frame_id, |i| mine.contains(&i));
        if freed > 0 {
            tracing::info!(frame = %info.frame_id, freed, "dropped chunks the frame does not list");
        }
        self.state.frames.put(info);
        Ok(Response::new(FrameAck {}))
    }

    async fn summarize(&self, request: Request<FrameRef>) -> Result<Response<SummaryPartial>, Status> {
        let id = request.into_inner().frame_id;
        let info = self.state.frames.get(&id).ok_or_else(|| status(FrameError::FrameNotFound(id.clone())))?;
        let chunks = self.state.store.chunks(&id);
        let ncols = info.columns.len();
        let parts = run_cpu(move || {
            let batches: Vec<&RecordBatch> = chunks.iter().flat_map(|(_, c)| c.batches.iter()).collect();
            partials(&batches, ncols)
        })
        .await
        .map_err(status)?;
        Ok(Response::new(SummaryPartial { columns: parts.into_iter().map(Into::into).collect() }))
    }

    async fn histogram(&self, request: Request<HistogramRequest>) -> Result<Response<HistogramPartial>, Status> {
        let request = request.into_inner();
        let id = request.frame_id;
        let info = self.state.frames.get(&id).ok_or_else(|| status(FrameError::FrameNotFound(id.clone())))?;
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
        tracing::info!(frame = %id, freed, "frame deleted");
        Ok(Response::new(FrameAck {}))
    }

    async fn get_rows(&self, request: Request<RowsRequest>) -> Result<Response<RowsReply>, Status> {
        let req = request.into_inner();
        let chunk = self.state.chunk(&req.frame_id, req.chunk)?;
        let info = self.state.frame(&req.frame_id)?;
        let rows = rows_as_text(&chunk.batches, &info.schema(), req.start, req.count.min(10_000)).map_err(status)?;
        Ok(Response::new(RowsReply { rows: crate::wire::rows(&rows) }))
    }

    async fn group_by(&self, request: Request<GroupByTask>) -> Result<Response<GroupByPartial>, Status> {
        let task = request.into_inner();
        let info = self.state.frame(&task.frame_id)?;
        let req = crate::wire::group_by_from(task.request).map_err(malformed("group-by request"))?;
        let names: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let by = crate::groupby::indices(&names, &req.by).map_err(status)?;
        let aggs = crate::groupby::indices(&names, &req.aggs.iter().map(|a| a.column.clone()).collect::<Vec<_>>()).map_err(status)?;
        let chunks = self.state.store.chunks(&task.frame_id);
        let schema = info.schema();
        let groups = run_cpu(move || {
            let batches: Vec<&RecordBatch> = chunks.iter().flat_map(|(_, c)| c.batches.iter()).collect();
            crate::groupby::fold(&batches, &schema, &by, &aggs)
        })
        .await
        .map_err(status)?
        .map_err(status)?;
        Ok(Response::new(GroupByPartial { groups: crate::wire::groups(groups) }))
    }

    async fn put_chunk(&self, request: Request<ChunkData>) -> Result<Response<FrameAck>, Status> {
        let data = request.into_inner();
        let batches = crate::codec::from_ipc(&data.arrow_ipc).map_err(status)?;
        let batches = batches.into_iter().map(crate::ingest::compact).collect::<FrameResult<Vec<_>>>().map_err(status)?;
        let chunk = Chunk::new(batches);
        let reservation = self.state.store.reserve(chunk.bytes, &format!("chunk {} of {}", data.chunk, data.frame_id)).map_err(status)?;
        self.state.store.insert(&data.frame_id, data.chunk, chunk, reservation);
        Ok(Response::new(FrameAck {}))
    }

    async fn get_chunk(&self, request: Request<ChunkRef>) -> Result<Response<ChunkData>, Status> {
        let r = request.into_inner();
        let info = self.state.frame(&r.frame_id)?;
        let chunk = self.state.chunk(&r.frame_id, r.chunk)?;
        let schema = info.schema();
        let bytes = run_cpu(move || {
            let wide = chunk.batches.iter().map(|b| widen(b, &schema)).collect::<FrameResult<Vec<_>>>()?;
            crate::codec::to_ipc(&schema, &wide)
        })
        .await
        .map_err(status)?
        .map_err(status)?;
        Ok(Response::new(ChunkData { frame_id: r.frame_id, chunk: r.chunk, arrow_ipc: bytes }))
    }

    async fn export_chunks(&self, request: Request<ExportTask>) -> Result<Response<ExportedFiles>, Status> {
        let task = request.into_inner();
        let info = self.state.frame(&task.frame_id)?;
        let format = crate::codec::ExportFormat::parse(&task.format).map_err(status)?;
        let storage = self.state.request_storage(task.storage);
        let schema = info.schema();
        let mut out = ExportedFiles::default();
        for (index, chunk) in self.state.store.chunks(&task.frame_id) {
            let schema = schema.clone();
            let bytes = run_cpu(move || {
                let wide = chunk.batches.iter().map(|b| widen(b, &schema)).collect::<FrameResult<Vec<_>>>()?;
                crate::codec::encode(format, &schema, &wide)
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
