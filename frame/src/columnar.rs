//! Columnar inputs: Parquet (one split per row group, read with the async object_store
//! reader) and Arrow IPC files (one split per file). Their columns are conformed to the
//! frame's column types, so a frame looks the same whatever it was read from.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};

use crate::setup::ColumnType;
use crate::storage::{locate, normalize, read_range, StorageOptions};
use crate::{FrameError, FrameResult};

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

async fn parquet_builder(url: &str, size: u64, storage: &StorageOptions) -> FrameResult<ParquetRecordBatchStreamBuilder<StoreReader>> {
    let loc = locate(&normalize(url)?, storage)?;
    let reader = StoreReader { store: loc.store, path: loc.path, size };
    ParquetRecordBatchStreamBuilder::new(reader)
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
            columns[i].1 = crate::setup::text_type(&present);
        }
    }
    Ok((columns, groups))
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
