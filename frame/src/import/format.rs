//! The seam between the import pipeline and the formats it reads: one [`Format`] per
//! [`InputFormat`], each with its two halves, the coordinator's plan and a worker's read of
//! one split. An import walks coordinator → format (plan) → worker → format (read) → store.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_proto::v1::{SplitDone, SplitSpec};

use crate::import::columnar::{ArrowIpc, InputFormat, Parquet};
use crate::import::csv::Csv;
use crate::import::setup::ParseSetup;
use crate::import::split::Split;
use crate::service::FrameState;
use crate::storage::{FileEntry, StorageOptions};
use crate::store::Chunk;
use crate::{FrameResult, ImportRequest};

/// What an import will read, planned on the coordinating node.
pub(crate) struct Plan {
    pub files: Vec<FileEntry>,
    pub setup: ParseSetup,
    pub splits: Vec<Split>,
    /// Estimated bytes in memory.
    pub estimate: u64,
}

/// What every split of one `ParseSplits` call shares, on the worker.
pub(crate) struct SplitJob {
    pub frame_id: String,
    pub setup: ParseSetup,
    pub schema: arrow::datatypes::SchemaRef,
    pub storage: StorageOptions,
    pub strict: bool,
}

/// One input format's two halves.
#[async_trait]
pub(crate) trait Format: Send + Sync {
    /// On the coordinator: the setup (columns and types) and the splits of `files` for
    /// `workers` workers.
    async fn plan(&self, files: Vec<FileEntry>, request: &ImportRequest, workers: usize, storage: &StorageOptions) -> FrameResult<Plan>;

    /// On a worker: reads split `s` into a chunk of this worker's store, reserving its
    /// memory first.
    async fn read_split(&self, state: &FrameState, job: &SplitJob, s: &SplitSpec) -> FrameResult<SplitDone>;

    /// Each chunk's share of the input bytes, for progress: by default its split's nominal range.
    fn shares(&self, splits: &[Split]) -> HashMap<u32, u64> {
        splits.iter().map(|s| (s.chunk, s.end.saturating_sub(s.start))).collect()
    }
}

/// The implementation of `format`.
pub(crate) fn of(format: InputFormat) -> Arc<dyn Format> {
    match format {
        InputFormat::Csv => Arc::new(Csv),
        InputFormat::Parquet => Arc::new(Parquet),
        InputFormat::Arrow => Arc::new(ArrowIpc),
    }
}

/// A finished split's report: its chunk's size and what parsing found.
pub(crate) fn split_done(s: &SplitSpec, chunk: &Chunk, bytes_read: u64, parsed: Option<&crate::import::parse::Parsed>) -> SplitDone {
    SplitDone {
        chunk: s.chunk,
        rows: chunk.rows,
        bytes_read,
        bytes_in_memory: chunk.bytes,
        bad_rows: parsed.map_or(0, |p| p.bad_rows),
        bad_cells: parsed.map_or(0, |p| p.bad_cells),
        examples: parsed.map(|p| p.examples.iter().map(crate::service::wire::bad_value).collect()).unwrap_or_default(),
        ..SplitDone::default()
    }
}
