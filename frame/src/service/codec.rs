//! Encoding chunks: Arrow IPC between nodes, CSV and Parquet for export.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::{FrameError, FrameResult};

/// Batches as an Arrow IPC stream.
pub fn to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> FrameResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Batches from an Arrow IPC stream.
pub fn from_ipc(bytes: &[u8]) -> FrameResult<Vec<RecordBatch>> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(FrameError::from)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// CSV with a header line.
    Csv,
    /// Parquet (zstd-compressed).
    Parquet,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
        }
    }

    /// Parses "csv" / "parquet".
    pub fn parse(text: &str) -> FrameResult<Self> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "parquet" => Ok(ExportFormat::Parquet),
            other => Err(FrameError::InvalidArgument { what: "format", reason: format!("{other:?}: use csv or parquet") }),
        }
    }
}

/// One file holding `batches` in `format`.
pub fn encode(format: ExportFormat, schema: &SchemaRef, batches: &[RecordBatch]) -> FrameResult<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        ExportFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                writer.write(b)?;
            }
            if batches.is_empty() {
                // A header-only file still names the columns.
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(writer);
                out.extend_from_slice(format!("{}\n", names.join(",")).as_bytes());
            }
        }
        ExportFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
                .build();
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, Arc::clone(schema), Some(props))
                .map_err(|e| FrameError::Internal { what: "writing Parquet", reason: e.to_string() })?;
            for b in batches {
                writer.write(b).map_err(|e| FrameError::Internal { what: "writing Parquet", reason: e.to_string() })?;
            }
            writer.close().map_err(|e| FrameError::Internal { what: "writing Parquet", reason: e.to_string() })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn ipc_round_trip_and_file_formats() {
        let b = RecordBatch::try_from_iter([
            ("a", Arc::new(Int64Array::from(vec![1, 2])) as _),
            ("s", Arc::new(StringArray::from(vec![Some("x"), None])) as _),
        ])
        .unwrap();
        let schema = b.schema();
        let back = from_ipc(&to_ipc(&schema, std::slice::from_ref(&b)).unwrap()).unwrap();
        assert_eq!(back, vec![b.clone()]);
        let csv = String::from_utf8(encode(ExportFormat::Csv, &schema, std::slice::from_ref(&b)).unwrap()).unwrap();
        assert_eq!(csv, "a,s\n1,x\n2,\n");
        let pq = encode(ExportFormat::Parquet, &schema, &[b]).unwrap();
        assert_eq!(&pq[..4], b"PAR1");
        assert_eq!(String::from_utf8(encode(ExportFormat::Csv, &schema, &[]).unwrap()).unwrap(), "a,s\n");
        assert!(ExportFormat::parse("xlsx").is_err());
    }
}
