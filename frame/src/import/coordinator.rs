//! The coordinator of an import, on whichever node received it: list the files, have their
//! format plan the splits, hand each worker its share (`FrameService/ParseSplits`, where the
//! format reads each split into the worker's store), parse again the splits whose start the
//! quote counts show inside a quoted field, and register the frame on every node, or drop
//! what was parsed on any failure.

use std::collections::HashMap;
use std::sync::Mutex;

use eddy_common::NodeAddr;
use eddy_proto::v1::{ParseSplitsRequest, SplitDone, SplitSpec};

use crate::import::columnar::InputFormat;
use crate::import::format::{self, Plan};
use crate::import::setup::{ParseSetup, SetupOverrides};
use crate::import::split::{assign, starts_in_quotes, Split};
use crate::storage::{list, FileEntry};
use crate::store::meta::{ChunkInfo, ColumnInfo, FrameInfo, ImportRecipe, Job, JobStatus, ParseReport, SourceSplit};
use crate::{FrameCloud, FrameError, FrameResult, ImportRequest};

/// One import's parse across the workers.
#[derive(Clone, Copy)]
struct ParseTask<'a> {
    frame_id: &'a str,
    setup: &'a ParseSetup,
    format: InputFormat,
    workers: &'a [NodeAddr],
    splits: &'a [Split],
    strict: bool,
}

impl FrameCloud {
    /// Guesses the parse setup of the first file `path` names, with `overrides` applied
    /// (for Parquet and Arrow files: their own schema).
    pub async fn parse_setup(&self, path: &str, overrides: &SetupOverrides) -> FrameResult<(Vec<FileEntry>, ParseSetup)> {
        let (_, plan) = self.plan(&ImportRequest { path: path.into(), parse_setup: overrides.clone(), ..Default::default() }, 1).await?;
        Ok((plan.files, plan.setup))
    }

    /// Lists the files, finds their format and has the format plan the import.
    async fn plan(&self, request: &ImportRequest, workers: usize) -> FrameResult<(InputFormat, Plan)> {
        let files = list(&request.path, &self.inner.storage).await?;
        let format = match request.format {
            Some(format) => format,
            None => crate::import::sniff::format_of(&files, &self.inner.storage).await?,
        };
        Ok((format, format::of(format).plan(files, request, workers, &self.inner.storage).await?))
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

    /// Imports a dataset into a frame spread over the workers.
    pub async fn import(&self, request: &ImportRequest, job: &Job) -> FrameResult<FrameInfo> {
        let workers = self.workers()?;
        self.inner.node.lock("first work: import");
        let (format, Plan { files, setup, splits, estimate }) = self.plan(request, workers.len()).await?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.check_memory(estimate)?;
        let stem = files[0].url.rsplit('/').next().unwrap_or("frame").split('.').next().unwrap_or("frame").to_string();
        let frame_id = request.destination_frame.clone().unwrap_or_else(|| self.inner.state.frames.fresh_id(&stem));
        job.update(|s| s.bytes_total = total);
        tracing::info!(frame = %frame_id, files = files.len(), bytes = total, splits = splits.len(), workers = workers.len(), "import started");

        let task = ParseTask { frame_id: &frame_id, setup: &setup, format, workers: &workers, splits: &splits, strict: request.strict };
        match self.parse_everywhere(&task, job).await {
            Ok((chunks, report, in_quotes)) => {
                let columns = setup
                    .column_names
                    .iter()
                    .zip(&setup.column_types)
                    .enumerate()
                    .filter(|(i, _)| !setup.skipped_columns.contains(i))
                    .map(|(_, (n, t))| ColumnInfo::new(n.clone(), *t))
                    .collect();
                let sources = files.iter().map(|f| f.url.clone()).collect();
                let splits = splits
                    .iter()
                    .map(|s| SourceSplit { split: Split { hosts: Vec::new(), ..s.clone() }, start_in_quotes: in_quotes.contains(&s.chunk) })
                    .collect();
                let info = FrameInfo {
                    source_bytes: total,
                    parse_report: report,
                    recipe: Some(ImportRecipe { setup: setup.clone(), format, strict: request.strict, splits }),
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
    /// inside a quoted field (see [`crate::import::split`]). Returns the chunks, the report and
    /// the chunks whose split was last parsed as starting inside quotes.
    async fn parse_everywhere(&self, task: &ParseTask<'_>, job: &Job) -> FrameResult<(Vec<ChunkInfo>, ParseReport, Vec<u32>)> {
        let ParseTask { frame_id, setup, format, workers, splits, strict } = *task;
        let request = ParseSplitsRequest {
            frame_id: frame_id.to_string(),
            setup: Some(crate::service::wire::setup(setup)),
            storage: Some(crate::service::wire::storage(&self.inner.storage)),
            strict,
            format: crate::service::wire::input_format(format) as i32,
            splits: Vec::new(),
        };
        let hosts: Vec<String> = workers.iter().map(|w| w.ip.to_string()).collect();
        let first_round: Vec<(NodeAddr, Vec<SplitSpec>)> = assign(splits, &hosts)
            .into_iter()
            .zip(workers)
            .filter(|(mine, _)| !mine.is_empty())
            .map(|(mine, node)| (*node, mine.iter().map(|s| crate::service::wire::split_spec(s, false)).collect()))
            .collect();
        let progress = Progress::new(job, format::of(format).shares(splits));
        let mut done: HashMap<u32, (NodeAddr, SplitDone)> = self.parse_round(&request, first_round, &progress).await?;
        if done.len() != splits.len() {
            return Err(FrameError::Cloud {
                reason: format!("{} of {} chunks came back; a worker stopped early", done.len(), splits.len()),
            });
        }
        let quotes: Vec<u64> = splits.iter().map(|s| done.get(&s.chunk).map_or(0, |(_, d)| d.quotes)).collect();
        let mut second_round: HashMap<NodeAddr, Vec<SplitSpec>> = HashMap::new();
        let mut in_quotes_chunks = Vec::new();
        for (s, in_quotes) in splits.iter().zip(starts_in_quotes(splits, &quotes)) {
            if let (true, Some((node, _))) = (in_quotes, done.get(&s.chunk)) {
                in_quotes_chunks.push(s.chunk);
                second_round.entry(*node).or_default().push(crate::service::wire::split_spec(s, true));
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
                return Err(FrameError::Worker { node: node.to_string(), reason: d.parse_error.clone() });
            }
            chunks.push(ChunkInfo::new(d.chunk, node, d.rows, d.bytes_in_memory));
            report.bad_rows += d.bad_rows;
            report.bad_cells += d.bad_cells;
            report.examples.extend(d.examples.into_iter().map(crate::service::wire::bad_value_from));
        }
        chunks.sort_by_key(|c| c.index);
        report.examples.sort_by(|a, b| (&a.url, a.offset).cmp(&(&b.url, b.offset)));
        report.examples.truncate(5);
        job.update(|s| {
            s.rows = chunks.iter().map(|c| c.rows).sum();
            s.parse_report = report.clone();
        });
        Ok((chunks, report, in_quotes_chunks))
    }

    /// One round of `ParseSplits` calls, a call per node; the splits each node finished.
    pub(crate) async fn parse_round(
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
}

/// An import job's progress as splits finish. Bytes count each split's share of the input
/// (its nominal range; a Parquet file's size spread over its row groups), not what the worker
/// read: neighbouring splits read past their ends, so those reads add up to more than the
/// input. A split parsed again (a second round after a wrong quote guess) replaces its count.
pub(crate) struct Progress {
    job: Job,
    /// Input bytes of each chunk's split.
    shares: HashMap<u32, u64>,
    /// Rows of each chunk that finished.
    finished: Mutex<HashMap<u32, u64>>,
}

impl Progress {
    pub(crate) fn new(job: &Job, shares: HashMap<u32, u64>) -> Self {
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
