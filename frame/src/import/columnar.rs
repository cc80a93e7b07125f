//! Columnar inputs: Parquet (one split per row group, read with the async object_store
//! reader) and Arrow IPC files (one split per file). Their columns are conformed to the
//! frame's column types, so a frame looks the same whatever it was read from.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use eddy_proto::v1::{SplitDone, SplitSpec};
use futures::future::BoxFuture;
use futures::FutureExt;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};

use crate::import::format::{split_done, Format, Plan, SplitJob};
use crate::import::setup::{ColumnType, ParseSetup, SetupOverrides};
use crate::import::split::Split;
use crate::service::{run_cpu, FrameState};
use crate::storage::{locate, normalize, read_range, FileEntry, StorageOptions};
use crate::store::narrow::narrow;
use crate::store::{Chunk, Reservation};
use crate::{FrameError, FrameResult, ImportRequest};

/// What a file holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Delimited text.
    #[default]
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file (Feather v2).
    Arrow,
}

impl InputFormat {
    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Csv => "CSV text",
            InputFormat::Parquet => "Parquet",
            InputFormat::Arrow => "an Arrow IPC file",
        }
    }

    /// Detects the format from the first bytes, then the name.
    pub fn detect(url: &str, head: &[u8]) -> Self {
        if head.starts_with(b"PAR1") || url.ends_with(".parquet") || url.ends_with(".pq") {
            InputFormat::Parquet
        } else if head.starts_with(b"ARROW1") || url.ends_with(".arrow") || url.ends_with(".feather") {
            InputFormat::Arrow
        } else {
            InputFormat::Csv
        }
    }
}

/// The frame column type for an Arrow type found in a file.
pub fn column_type_of(dt: &DataType) -> ColumnType {
    match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
            ColumnType::Int
        }
        DataType::UInt64 | DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => ColumnType::Real,
        DataType::Boolean => ColumnType::Bool,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => ColumnType::Time,
        DataType::Dictionary(..) => ColumnType::Enum,
        _ => ColumnType::String,
    }
}

/// Casts every column of `batch` to the frame's types (dates and timestamps to ms).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> FrameResult<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let source = batch.column_by_name(field.name()).ok_or_else(|| FrameError::Parse {
            url: String::new(),
            reason: format!("column {:?} is missing from a part of the input; every file must have the same columns", field.name()),
        })?;
        let source = if matches!(source.data_type(), DataType::Timestamp(..)) && matches!(field.data_type(), DataType::Timestamp(..)) {
            // Timestamps with a time zone cast to naive milliseconds through Int64 after unit change.
            cast(source, &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None))?
        } else {
            source.clone()
        };
        columns.push(if source.data_type() == field.data_type() { source } else { cast(&source, field.data_type())? });
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Parquet's async reader over any object store (ranged GETs).
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(parquet_err) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<std::ops::Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(parquet_err) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl StoreReader {
    fn of(url: &str, size: u64, storage: &StorageOptions) -> FrameResult<StoreReader> {
        let loc = locate(&normalize(url)?, storage)?;
        Ok(StoreReader { store: loc.store, path: loc.path, size })
    }
}

async fn parquet_builder(url: &str, size: u64, storage: &StorageOptions) -> FrameResult<ParquetRecordBatchStreamBuilder<StoreReader>> {
    ParquetRecordBatchStreamBuilder::new(StoreReader::of(url, size, storage)?)
        .await
        .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("not a readable Parquet file: {e}") })
}

/// Rows of the first row group whose text decides whether a string column is categorical.
const TEXT_SAMPLE_ROWS: usize = 1000;

/// A Parquet file's columns and the uncompressed bytes of each row group. String columns
/// are categorical or text as a CSV column with the same values would be, judged on the
/// first rows of the first row group (categoricals are stored as small keys).
pub async fn parquet_layout(url: &str, size: u64, storage: &StorageOptions) -> FrameResult<(Vec<(String, ColumnType)>, Vec<u64>)> {
    let builder = parquet_builder(url, size, storage).await?;
    let mut columns: Vec<(String, ColumnType)> =
        builder.schema().fields().iter().map(|f| (f.name().clone(), column_type_of(f.data_type()))).collect();
    let groups: Vec<u64> = builder.metadata().row_groups().iter().map(|rg| u64::try_from(rg.total_byte_size()).unwrap_or(0)).collect();
    let text: Vec<usize> = columns.iter().enumerate().filter(|(_, c)| c.1 == ColumnType::String).map(|(i, _)| i).collect();
    if text.is_empty() || groups.is_empty() {
        return Ok((columns, groups));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), text.iter().copied());
    let sample: Vec<RecordBatch> = builder
        .with_projection(mask)
        .with_row_groups(vec![0])
        .with_limit(TEXT_SAMPLE_ROWS)
        .with_batch_size(TEXT_SAMPLE_ROWS)
        .build()
        .map_err(|e| FrameError::Parse { url: url.into(), reason: e.to_string() })?
        .try_collect()
        .await
        .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("row group 0: {e}") })?;
    for (slot, &i) in text.iter().enumerate() {
        let mut values = Vec::new();
        for batch in &sample {
            let strings = cast(batch.column(slot), &DataType::Utf8)?;
            values.extend(strings.as_string::<i32>().iter().flatten().map(str::to_string));
        }
        let present: Vec<&str> = values.iter().map(String::as_str).collect();
        if !present.is_empty() {
            columns[i].1 = crate::import::setup::text_type(&present);
        }
    }
    Ok((columns, groups))
}

/// The file's schema with the text columns the frame keeps as categoricals read as
/// dictionaries: Parquet's dictionary pages then become the keys directly, instead of every
/// row's string being made and hashed again into a dictionary (about a sixth of a Parquet
/// import's time for the reference file's two categoricals). `None` if no column changes.
fn dictionary_hint(file: &Schema, frame: &SchemaRef) -> Option<Schema> {
    let mut changed = false;
    let fields: Vec<Field> = file
        .fields()
        .iter()
        .map(|f| match (f.data_type(), frame.field_with_name(f.name()).map(|w| w.data_type())) {
            (DataType::Utf8 | DataType::LargeUtf8, Ok(wanted @ DataType::Dictionary(_, _))) => {
                changed = true;
                f.as_ref().clone().with_data_type(wanted.clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    changed.then(|| Schema::new_with_metadata(fields, file.metadata().clone()))
}

/// Reads one row group, after `reserve` took its uncompressed bytes from the memory budget.
pub async fn read_row_group<R>(
    url: &str,
    size: u64,
    row_group: usize,
    storage: &StorageOptions,
    schema: &SchemaRef,
    reserve: impl FnOnce(u64) -> FrameResult<R>,
) -> FrameResult<(Vec<RecordBatch>, R)> {
    let builder = parquet_builder(url, size, storage).await?;
    let bytes = builder.metadata().row_groups().get(row_group).map_or(size, |rg| u64::try_from(rg.total_byte_size()).unwrap_or(size));
    let reservation = reserve(bytes)?;
    let builder = match dictionary_hint(builder.schema(), schema) {
        None => builder,
        Some(hint) => {
            let options = ArrowReaderOptions::new().with_schema(Arc::new(hint));
            let metadata = ArrowReaderMetadata::try_new(builder.metadata().clone(), options)
                .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("text columns as categoricals: {e}") })?;
            ParquetRecordBatchStreamBuilder::new_with_metadata(StoreReader::of(url, size, storage)?, metadata)
        }
    };
    let stream = builder
        .with_row_groups(vec![row_group])
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| FrameError::Parse { url: url.into(), reason: e.to_string() })?;
    let batches: Vec<RecordBatch> =
        stream.try_collect().await.map_err(|e| FrameError::Parse { url: url.into(), reason: format!("row group {row_group}: {e}") })?;
    Ok((batches.iter().map(|b| conform(b, schema)).collect::<FrameResult<_>>()?, reservation))
}

/// An Arrow IPC file's columns.
pub async fn ipc_layout(url: &str, size: u64, storage: &StorageOptions) -> FrameResult<Vec<(String, ColumnType)>> {
    let bytes = read_range(url, 0..size, storage).await?;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("not a readable Arrow IPC file: {e}") })?;
    Ok(reader.schema().fields().iter().map(|f| (f.name().clone(), column_type_of(f.data_type()))).collect())
}

/// Reads a whole Arrow IPC file.
pub async fn read_ipc(url: &str, size: u64, storage: &StorageOptions, schema: &SchemaRef) -> FrameResult<Vec<RecordBatch>> {
    let bytes = read_range(url, 0..size, storage).await?;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| FrameError::Parse { url: url.into(), reason: format!("not a readable Arrow IPC file: {e}") })?;
    let schema = Arc::clone(schema);
    reader.map(|b| b.map_err(FrameError::from).and_then(|b| conform(&b, &schema))).collect()
}

/// Apache Parquet: a split per row group.
pub(crate) struct Parquet;

/// Arrow IPC files: a split per file.
pub(crate) struct ArrowIpc;

/// One file's columns and its splits as (start, end, estimated bytes in memory).
type Layout = (Vec<(String, ColumnType)>, Vec<(u64, u64, u64)>);

/// How a columnar format lays a file out in splits.
#[async_trait]
trait FileLayout: Send + Sync {
    async fn layout(&self, file: &FileEntry, storage: &StorageOptions) -> FrameResult<Layout>;
}

#[async_trait]
impl FileLayout for Parquet {
    async fn layout(&self, f: &FileEntry, storage: &StorageOptions) -> FrameResult<Layout> {
        let (columns, groups) = parquet_layout(&f.url, f.size, storage).await?;
        Ok((columns, groups.iter().enumerate().map(|(i, bytes)| (i as u64, i as u64 + 1, *bytes)).collect()))
    }
}

#[async_trait]
impl FileLayout for ArrowIpc {
    async fn layout(&self, f: &FileEntry, storage: &StorageOptions) -> FrameResult<Layout> {
        Ok((ipc_layout(&f.url, f.size, storage).await?, vec![(0, f.size, f.size)]))
    }
}

/// The plan of columnar files: their common columns (every file must have the same), the
/// request's skipped columns, and each file's splits.
async fn plan_files(
    layout: &dyn FileLayout,
    files: Vec<FileEntry>,
    request: &ImportRequest,
    storage: &StorageOptions,
) -> FrameResult<Plan> {
    let mut columns_opt: Option<Vec<(String, ColumnType)>> = None;
    let mut splits = Vec::new();
    let mut estimate = 0;
    for f in &files {
        let (columns, parts) = layout.layout(f, storage).await?;
        match &columns_opt {
            Some(first) if *first != columns => {
                return Err(FrameError::Parse {
                    url: f.url.clone(),
                    reason: format!("its columns differ from those of {}; every file must have the same columns", files[0].url),
                })
            }
            _ => columns_opt = Some(columns),
        }
        for (start, end, bytes) in parts {
            let chunk = splits.len() as u32;
            splits.push(Split { url: f.url.clone(), start, end, file_size: f.size, chunk, skip_header: false, hosts: Vec::new() });
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
    Ok(Plan { files, setup, splits, estimate })
}

/// Narrows `batches` to their stored form and keeps them as the split's chunk.
async fn keep(
    state: &FrameState,
    job: &SplitJob,
    s: &SplitSpec,
    batches: Vec<RecordBatch>,
    bytes_read: u64,
    reservation: Reservation<'_>,
) -> FrameResult<SplitDone> {
    let batches = run_cpu(move || batches.into_iter().map(narrow).collect::<FrameResult<Vec<_>>>()).await??;
    let chunk = Chunk::new(batches);
    let reply = split_done(s, &chunk, bytes_read, None);
    state.store.insert(&job.frame_id, s.chunk, chunk, reservation);
    Ok(reply)
}

/// Decoded values take about their uncompressed bytes; a fifth more is reserved, settled after.
fn reserve<'a>(state: &'a FrameState, job: &SplitJob, s: &SplitSpec, bytes: u64) -> FrameResult<Reservation<'a>> {
    state.store.reserve(bytes + bytes / 5 + (64 << 10), &format!("chunk {} of {} ({})", s.chunk, job.frame_id, s.url))
}

#[async_trait]
impl Format for Parquet {
    async fn plan(&self, files: Vec<FileEntry>, request: &ImportRequest, _workers: usize, storage: &StorageOptions) -> FrameResult<Plan> {
        plan_files(self, files, request, storage).await
    }

    async fn read_split(&self, state: &FrameState, job: &SplitJob, s: &SplitSpec) -> FrameResult<SplitDone> {
        let (batches, reservation) =
            read_row_group(&s.url, s.file_size, s.start as usize, &job.storage, &job.schema, |bytes| reserve(state, job, s, bytes)).await?;
        keep(state, job, s, batches, 0, reservation).await
    }

    /// A file's size spread evenly over its row groups.
    fn shares(&self, splits: &[Split]) -> HashMap<u32, u64> {
        let mut groups: HashMap<&str, Vec<&Split>> = HashMap::new();
        for s in splits {
            groups.entry(s.url.as_str()).or_default().push(s);
        }
        let mut shares = HashMap::new();
        for parts in groups.values() {
            let n = parts.len() as u64;
            for (i, s) in parts.iter().enumerate() {
                let share = s.file_size / n + if i as u64 == n - 1 { s.file_size % n } else { 0 };
                shares.insert(s.chunk, share);
            }
        }
        shares
    }
}

#[async_trait]
impl Format for ArrowIpc {
    async fn plan(&self, files: Vec<FileEntry>, request: &ImportRequest, _workers: usize, storage: &StorageOptions) -> FrameResult<Plan> {
        plan_files(self, files, request, storage).await
    }

    async fn read_split(&self, state: &FrameState, job: &SplitJob, s: &SplitSpec) -> FrameResult<SplitDone> {
        let reservation = reserve(state, job, s, s.file_size)?;
        let batches = read_ipc(&s.url, s.file_size, &job.storage, &job.schema).await?;
        keep(state, job, s, batches, s.file_size, reservation).await
    }
}
