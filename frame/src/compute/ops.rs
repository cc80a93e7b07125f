//! Frame operations the coordinator runs over the workers: group-by (a map-reduce whose
//! result becomes a new frame) and export (every worker writes its own chunks; or one file
//! assembled by the caller on request).

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use eddy_proto::v1::{ChunkData, ChunkRef, ExportTask, GroupByTask};

use crate::cloud::FrameCloud;
use crate::compute::groupby::{indices, merge, result_batch, GroupByRequest, Plan};
use crate::import::setup::ColumnType;
use crate::service::codec::{encode, from_ipc, to_ipc, ExportFormat};
use crate::store::meta::{ChunkInfo, ColumnInfo, FrameInfo, Job, JobStatus};
use crate::{FrameError, FrameResult};

/// Rows per chunk of a group-by's result frame.
const RESULT_CHUNK_ROWS: usize = 262_144;

/// `POST /3/Frames/{id}/export`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportRequest {
    /// Destination URL: a directory (one file per chunk) or, with `single_file`, a file.
    pub path: String,
    /// csv or parquet.
    pub format: ExportFormat,
    /// Write one file, assembled on the node that received the request.
    #[serde(default)]
    pub single_file: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportResult {
    /// Files written.
    pub files: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// Marks a job failed if the work is dropped before it ends (an HTTP caller that went away
/// cancels the handler), so no job stays "running" forever.
struct Unfinished<'a> {
    job: &'a Job,
    finished: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.job.update(|s| {
                s.status = JobStatus::Failed;
                s.error = Some("cancelled: the caller went away before it finished".into());
            });
        }
    }
}

impl FrameCloud {
    /// Runs work that answers when it is done (export, group-by) as a job of this node, so
    /// that `GET /3/Jobs` and the console list it beside the imports. `outcome` names the
    /// frame it made and the rows it handled.
    async fn as_job<T>(
        &self,
        description: String,
        work: impl std::future::Future<Output = FrameResult<T>>,
        outcome: impl FnOnce(&T) -> (Option<String>, u64),
    ) -> FrameResult<T> {
        let (_, job) = self.inner.jobs.create(&description);
        let mut guard = Unfinished { job: &job, finished: false };
        let result = work.await;
        guard.finished = true;
        job.update(|s| match &result {
            Ok(value) => {
                let (dest, rows) = outcome(value);
                s.status = JobStatus::Done;
                s.progress = 1.0;
                s.dest = dest;
                s.rows = rows;
            }
            Err(e) => {
                s.status = JobStatus::Failed;
                s.error = Some(e.to_string());
            }
        });
        result
    }

    /// Groups a frame and stores the result as a new frame (on the first worker), as a job.
    pub async fn group_by(&self, id: &str, request: &GroupByRequest) -> FrameResult<FrameInfo> {
        let description = format!("Group {id} by {}", request.by.join(", "));
        self.as_job(description, self.group_by_now(id, request), |info| (Some(info.frame_id.clone()), info.rows)).await
    }

    /// Writes a frame to any supported URL, as a job.
    pub async fn export(&self, id: &str, request: &ExportRequest) -> FrameResult<ExportResult> {
        let rows = self.frame(id).map(|info| info.rows).unwrap_or(0);
        let description = format!("Export {id} to {}", request.path);
        self.as_job(description, self.export_now(id, request), |_| (None, rows)).await
    }

    async fn group_by_now(&self, id: &str, request: &GroupByRequest) -> FrameResult<FrameInfo> {
        let info = self.readable(id)?;
        let workers = self.workers()?;
        self.inner.node.lock("first work: group-by");
        let names: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        if request.by.is_empty() {
            return Err(FrameError::InvalidArgument { what: "by", reason: "name at least one column to group by".into() });
        }
        let by = indices(&names, &request.by)?;
        let aggs = indices(&names, &request.aggs.iter().map(|a| a.column.clone()).collect::<Vec<_>>())?;
        let plan = Plan::new(&info.schema(), &by, &aggs);
        let wire_request = crate::service::wire::group_by(request);
        let calls = info.nodes().into_iter().map(|node| {
            let task = GroupByTask { frame_id: id.to_string(), request: Some(wire_request.clone()) };
            async move {
                let mut client = self.client(node)?;
                let mut pages = client.group_by(task).await.map_err(|s| Self::remote(node, s))?.into_inner();
                let mut groups = Vec::new();
                while let Some(page) = pages.message().await.map_err(|s| Self::remote(node, s))? {
                    groups.extend(from_ipc(&page.arrow_ipc)?);
                }
                Ok::<Vec<RecordBatch>, FrameError>(groups)
            }
        });
        let partials = futures::future::try_join_all(calls).await?;
        let (merge_plan, result_request) = (plan.clone(), request.clone());
        let batch = crate::service::run_cpu(move || result_batch(&merge_plan, &result_request, &merge(&merge_plan, partials)?)).await??;
        let dest = request
            .destination_frame
            .clone()
            .unwrap_or_else(|| self.inner.state.frames.fresh_id(&format!("{}_by_{}", id.trim_end_matches(".hex"), request.by.join("_"))));
        // Many groups make a large result: it is stored in chunks spread over the workers, so
        // that no chunk outgrows a message and no one worker holds it all.
        let pieces: Vec<RecordBatch> = (0..batch.num_rows().max(1))
            .step_by(RESULT_CHUNK_ROWS)
            .map(|start| batch.slice(start, RESULT_CHUNK_ROWS.min(batch.num_rows() - start)))
            .collect();
        let puts = pieces.iter().enumerate().map(|(i, piece)| {
            let node = workers[i % workers.len()];
            let dest = dest.clone();
            async move {
                let ipc = to_ipc(&piece.schema(), std::slice::from_ref(piece))?;
                let mut client = self.client(node)?;
                client
                    .put_chunk(ChunkData { frame_id: dest, chunk: i as u32, arrow_ipc: ipc, replica: false })
                    .await
                    .map_err(|s| Self::remote(node, s))?;
                Ok::<ChunkInfo, FrameError>(ChunkInfo::new(i as u32, node, piece.num_rows() as u64, piece.get_array_memory_size() as u64))
            }
        });
        let chunks = futures::future::try_join_all(puts).await?;
        let mut columns: Vec<ColumnInfo> = request
            .by
            .iter()
            .enumerate()
            .map(|(k, b)| ColumnInfo::new(b.clone(), if plan.key_is_int(k) { ColumnType::Int } else { ColumnType::String }))
            .collect();
        columns.push(ColumnInfo::new("nrow", ColumnType::Int));
        for f in batch.schema().fields().iter().skip(columns.len()) {
            columns.push(ColumnInfo::new(f.name().clone(), ColumnType::Real));
        }
        let result = FrameInfo::from_chunks(dest, vec![format!("group-by of {id}")], columns, chunks);
        self.register_with_replicas(result, request.replicas).await
    }

    async fn export_now(&self, id: &str, request: &ExportRequest) -> FrameResult<ExportResult> {
        let info = self.readable(id)?;
        self.workers()?;
        self.inner.node.lock("first work: export");
        let storage = crate::service::wire::storage(&self.inner.storage);
        let target = crate::storage::normalize(&request.path)?.to_string();
        if request.single_file {
            let mut batches = Vec::new();
            for c in &info.chunks {
                let mut client = self.client(c.node)?;
                let data = client.get_chunk(ChunkRef { frame_id: id.into(), chunk: c.index }).await.map_err(|s| Self::remote(c.node, s))?;
                batches.extend(from_ipc(&data.into_inner().arrow_ipc)?);
            }
            let schema = info.schema();
            let format = request.format;
            let bytes = crate::service::run_cpu(move || encode(format, &schema, &batches)).await??;
            let n = bytes.len() as u64;
            crate::storage::write(&target, bytes::Bytes::from(bytes), &self.inner.storage).await?;
            return Ok(ExportResult { files: vec![target], bytes: n });
        }
        let calls = info.nodes().into_iter().map(|node| {
            let task = ExportTask {
                frame_id: id.into(),
                directory: target.clone(),
                format: request.format.extension().into(),
                storage: Some(storage.clone()),
            };
            async move {
                let mut client = self.client(node)?;
                let reply = client.export_chunks(task).await.map_err(|s| Self::remote(node, s))?;
                Ok::<_, FrameError>(reply.into_inner())
            }
        });
        let mut result = ExportResult { files: Vec::new(), bytes: 0 };
        for r in futures::future::try_join_all(calls).await? {
            result.files.extend(r.urls);
            result.bytes += r.bytes;
        }
        result.files.sort();
        Ok(result)
    }
}
