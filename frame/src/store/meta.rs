//! Frame metadata (known to every node) and import jobs (known to the node that runs them).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use eddy_common::NodeAddr;
use serde::{Deserialize, Serialize};

use crate::import::columnar::InputFormat;
use crate::import::parse::BadValue;
use crate::import::setup::{ColumnType, ParseSetup};
use crate::import::split::Split;

/// Where one chunk lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkInfo {
    /// Chunk index (file order).
    pub index: u32,
    /// The worker holding it.
    pub node: NodeAddr,
    /// Rows.
    pub rows: u64,
    /// Bytes in memory.
    pub bytes: u64,
    /// Other workers holding a copy (frames without a source, with `--replicas` above 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<NodeAddr>,
}

impl ChunkInfo {
    /// A chunk with no copies.
    pub fn new(index: u32, node: NodeAddr, rows: u64, bytes: u64) -> Self {
        Self { index, node, rows, bytes, replicas: Vec::new() }
    }
}

/// One column of a frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// The exact Arrow type, where it is not the column type's default (a frame from Spark
    /// keeps `Int32`, `Float32` or microsecond timestamps with their zone, so they come back
    /// as they went in). Written as Arrow prints it, e.g. `Timestamp(µs, "UTC")`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "arrow_type_text")]
    pub arrow_type: Option<DataType>,
    /// The source declared the column never missing (Spark's `nullable = false`); kept so
    /// the column goes back the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_null: bool,
}

impl ColumnInfo {
    /// A column of the type's default Arrow type.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self { name: name.into(), column_type, arrow_type: None, not_null: false }
    }

    /// The Arrow type readers see (stored forms are widened to it).
    pub fn data_type(&self) -> DataType {
        self.arrow_type.clone().unwrap_or_else(|| self.column_type.arrow_type())
    }
}

/// `Option<DataType>` as Arrow's own text form (`Display` / `FromStr`).
mod arrow_type_text {
    use arrow::datatypes::DataType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<DataType>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => s.serialize_str(&t.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DataType>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse::<DataType>().map_err(serde::de::Error::custom)).transpose()
    }
}

/// What an import reported about bad input.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ParseReport {
    /// Rows with the wrong number of fields.
    pub bad_rows: u64,
    /// Cells that did not fit their type (stored as missing).
    pub bad_cells: u64,
    /// The first few examples.
    pub examples: Vec<BadValue>,
}

/// How an import made a frame, kept with it so that a chunk lost with its worker can be
/// read again from its source by another.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecipe {
    /// The parse setup every split was read with.
    pub setup: ParseSetup,
    /// The input format.
    pub format: InputFormat,
    /// Whether a bad value failed the import.
    pub strict: bool,
    /// Each chunk's split, as it was last parsed.
    pub splits: Vec<SourceSplit>,
}

/// The split a chunk was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSplit {
    /// The split.
    pub split: Split,
    /// Whether its start lies inside a quoted field (found after a first parse).
    pub start_in_quotes: bool,
}

/// A frame as every node knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameInfo {
    /// Frame id.
    pub frame_id: String,
    /// The files it was read from.
    pub sources: Vec<String>,
    /// Columns.
    pub columns: Vec<ColumnInfo>,
    /// Chunks in order.
    pub chunks: Vec<ChunkInfo>,
    /// Total rows.
    pub rows: u64,
    /// Bytes in memory over all chunks.
    pub bytes_in_memory: u64,
    /// Bytes of the source files.
    pub source_bytes: u64,
    /// Bad input seen while parsing.
    pub parse_report: ParseReport,
    /// How an import made it (none for Spark conversions, group-by results, Flight puts).
    #[serde(skip)]
    pub recipe: Option<ImportRecipe>,
    /// Why chunks of it are gone for good, if they are (their worker was lost, and there was
    /// no source to read them from again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
}

impl FrameInfo {
    /// A frame of `chunks`, with its rows and bytes in memory summed from them; nothing was
    /// parsed from files (imports set `source_bytes` and `parse_report` after).
    pub fn from_chunks(frame_id: impl Into<String>, sources: Vec<String>, columns: Vec<ColumnInfo>, chunks: Vec<ChunkInfo>) -> Self {
        Self {
            frame_id: frame_id.into(),
            sources,
            columns,
            rows: chunks.iter().map(|c| c.rows).sum(),
            bytes_in_memory: chunks.iter().map(|c| c.bytes).sum(),
            source_bytes: 0,
            chunks,
            parse_report: ParseReport::default(),
            recipe: None,
            lost: None,
        }
    }

    /// The frame's logical Arrow schema: what readers get after widening.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().map(|c| Field::new(&c.name, c.data_type(), !c.not_null)).collect::<Vec<_>>()))
    }

    /// The nodes holding chunks, sorted.
    pub fn nodes(&self) -> Vec<NodeAddr> {
        let mut n: Vec<NodeAddr> = self.chunks.iter().map(|c| c.node).collect();
        n.sort();
        n.dedup();
        n
    }
}

/// Frames known to this node.
#[derive(Debug, Default)]
pub struct FrameRegistry {
    frames: Mutex<BTreeMap<String, FrameInfo>>,
}

impl FrameRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, FrameInfo>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a frame.
    pub fn put(&self, info: FrameInfo) {
        self.lock().insert(info.frame_id.clone(), info);
    }

    /// Looks a frame up.
    pub fn get(&self, id: &str) -> Option<FrameInfo> {
        self.lock().get(id).cloned()
    }

    /// Every frame.
    pub fn all(&self) -> Vec<FrameInfo> {
        self.lock().values().cloned().collect()
    }

    /// Forgets a frame.
    pub fn remove(&self, id: &str) -> Option<FrameInfo> {
        self.lock().remove(id)
    }

    /// A frame id not in use, derived from `base`.
    pub fn fresh_id(&self, base: &str) -> String {
        let frames = self.lock();
        let clean: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        let clean = if clean.is_empty() { "frame".to_string() } else { clean };
        let mut id = format!("{clean}.hex");
        let mut k = 1;
        while frames.contains_key(&id) {
            k += 1;
            id = format!("{clean}_{k}.hex");
        }
        id
    }
}

/// What removed processes held, by frame, noted when the removal is heard: by the time it is
/// recovered a new process may answer at the same address, and must not pass for the old one.
#[derive(Debug, Default)]
pub struct LostHoldings {
    frames: Mutex<BTreeMap<String, Holdings>>,
}

/// Chunks and copies of one frame on removed processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Chunks whose worker was removed.
    pub chunks: std::collections::BTreeSet<u32>,
    /// Copies (chunk, worker) whose worker was removed.
    pub copies: std::collections::BTreeSet<(u32, NodeAddr)>,
}

impl LostHoldings {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Holdings>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process at `node` was removed: everything `frames` place there is lost.
    pub fn node_removed(&self, node: NodeAddr, frames: &[FrameInfo]) {
        let mut lost = self.lock();
        for f in frames {
            let chunks = f.chunks.iter().filter(|c| c.node == node).map(|c| c.index);
            let copies = f.chunks.iter().filter(|c| c.replicas.contains(&node)).map(|c| (c.index, node));
            let (chunks, copies): (Vec<u32>, Vec<(u32, NodeAddr)>) = (chunks.collect(), copies.collect());
            if !chunks.is_empty() || !copies.is_empty() {
                let h = lost.entry(f.frame_id.clone()).or_default();
                h.chunks.extend(chunks);
                h.copies.extend(copies);
            }
        }
    }

    /// What frame `id` lost, if anything.
    pub fn of(&self, id: &str) -> Option<Holdings> {
        self.lock().get(id).cloned()
    }

    /// Frame `id` was recovered (or deleted): its losses are settled.
    pub fn settled(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The state of a job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Still working.
    Running,
    /// Finished.
    Done,
    /// Failed; see `error`.
    Failed,
}

/// A job as `GET /3/Jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    /// Job id.
    pub key: String,
    /// What it does.
    pub description: String,
    /// Status.
    pub status: JobStatus,
    /// Fraction done, 0..1.
    pub progress: f64,
    /// Bytes to read.
    pub bytes_total: u64,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Rows parsed so far.
    pub rows: u64,
    /// The frame, once done.
    pub dest: Option<String>,
    /// The error, if failed.
    pub error: Option<String>,
    /// Bad input so far.
    pub parse_report: ParseReport,
    /// Milliseconds since the job started.
    pub msec: u64,
}

/// A running job's handle.
#[derive(Debug, Clone)]
pub struct Job {
    state: Arc<Mutex<JobState>>,
    started: std::time::Instant,
}

impl Job {
    /// Updates the state.
    pub fn update(&self, f: impl FnOnce(&mut JobState)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        s.msec = self.started.elapsed().as_millis() as u64;
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> JobState {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if s.status == JobStatus::Running {
            s.msec = self.started.elapsed().as_millis() as u64;
        }
        s
    }
}

/// Jobs started on this node.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Job>>,
    counter: std::sync::atomic::AtomicU64,
}

impl Jobs {
    /// Starts tracking a new job.
    pub fn create(&self, description: &str) -> (String, Job) {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let key = format!("job_{n}");
        let job = Job {
            state: Arc::new(Mutex::new(JobState {
                key: key.clone(),
                description: description.into(),
                status: JobStatus::Running,
                progress: 0.0,
                bytes_total: 0,
                bytes_read: 0,
                rows: 0,
                dest: None,
                error: None,
                parse_report: ParseReport::default(),
                msec: 0,
            })),
            started: std::time::Instant::now(),
        };
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), job.clone());
        (key, job)
    }

    /// Every job, in the order they were started.
    pub fn all(&self) -> Vec<JobState> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(u64, JobState)> =
            jobs.iter().map(|(k, j)| (k.trim_start_matches("job_").parse().unwrap_or(u64::MAX), j.snapshot())).collect();
        all.sort_by_key(|(n, _)| *n);
        all.into_iter().map(|(_, j)| j).collect()
    }

    /// A job by id.
    pub fn get(&self, key: &str) -> Option<JobState> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(key).map(Job::snapshot)
    }
}
