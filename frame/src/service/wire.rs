//! The frame protocol's typed messages (`proto/proto/eddy/v1/frame.proto`) from and to the
//! domain types. Encoding cannot fail; decoding names the field a peer got wrong.

use std::path::PathBuf;

use eddy_common::NodeAddr;
use eddy_proto::v1 as pb;

use crate::compute::groupby::{Agg, AggOp, GroupByRequest};
use crate::import::columnar::InputFormat;
use crate::import::parse::BadValue;
use crate::import::setup::{ColumnType, ParseSetup};
use crate::import::split::Split;
use crate::storage::StorageOptions;
use crate::store::meta::{ChunkInfo, ColumnInfo, FrameInfo, ImportRecipe, ParseReport, SourceSplit};

/// A message a peer sent that does not decode: what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Decoded<T> = Result<T, Malformed>;

fn required<T>(value: Option<T>, what: &str) -> Decoded<T> {
    value.ok_or_else(|| Malformed(format!("no {what}")))
}

/// A column type on the wire.
pub fn column_type(t: ColumnType) -> pb::ColumnType {
    match t {
        ColumnType::Int => pb::ColumnType::Int,
        ColumnType::Real => pb::ColumnType::Real,
        ColumnType::Bool => pb::ColumnType::Bool,
        ColumnType::Time => pb::ColumnType::Time,
        ColumnType::Enum => pb::ColumnType::Enum,
        ColumnType::String => pb::ColumnType::String,
    }
}

fn column_type_from(value: i32) -> Decoded<ColumnType> {
    match pb::ColumnType::try_from(value) {
        Ok(pb::ColumnType::Int) => Ok(ColumnType::Int),
        Ok(pb::ColumnType::Real) => Ok(ColumnType::Real),
        Ok(pb::ColumnType::Bool) => Ok(ColumnType::Bool),
        Ok(pb::ColumnType::Time) => Ok(ColumnType::Time),
        Ok(pb::ColumnType::Enum) => Ok(ColumnType::Enum),
        Ok(pb::ColumnType::String) => Ok(ColumnType::String),
        Ok(pb::ColumnType::Unspecified) | Err(_) => Err(Malformed(format!("unknown column type {value}"))),
    }
}

/// An input format on the wire.
pub fn input_format(f: InputFormat) -> pb::InputFormat {
    match f {
        InputFormat::Csv => pb::InputFormat::Csv,
        InputFormat::Parquet => pb::InputFormat::Parquet,
        InputFormat::Arrow => pb::InputFormat::Arrow,
    }
}

/// An input format from the wire.
pub fn input_format_from(value: i32) -> Decoded<InputFormat> {
    match pb::InputFormat::try_from(value) {
        Ok(pb::InputFormat::Csv) => Ok(InputFormat::Csv),
        Ok(pb::InputFormat::Parquet) => Ok(InputFormat::Parquet),
        Ok(pb::InputFormat::Arrow) => Ok(InputFormat::Arrow),
        Err(_) => Err(Malformed(format!("unknown input format {value}"))),
    }
}

/// A parse setup on the wire.
pub fn setup(s: &ParseSetup) -> pb::ParseSetup {
    pb::ParseSetup {
        separator: u32::from(s.separator),
        header: s.header,
        column_names: s.column_names.clone(),
        column_types: s.column_types.iter().map(|t| column_type(*t) as i32).collect(),
        na_strings: s.na_strings.clone(),
        skipped_columns: s.skipped_columns.iter().map(|c| *c as u32).collect(),
    }
}

/// A parse setup from the wire.
pub fn setup_from(s: pb::ParseSetup) -> Decoded<ParseSetup> {
    Ok(ParseSetup {
        separator: char::from_u32(s.separator).ok_or_else(|| Malformed(format!("separator {} is not a character", s.separator)))?,
        header: s.header,
        column_names: s.column_names,
        column_types: s.column_types.into_iter().map(column_type_from).collect::<Decoded<_>>()?,
        na_strings: s.na_strings,
        skipped_columns: s.skipped_columns.into_iter().map(|c| c as usize).collect(),
    })
}

/// The coordinator's storage settings on the wire (never a node's registry or credentials).
pub fn storage(o: &StorageOptions) -> pb::StorageSettings {
    let list = |v: &[String]| pb::StringList { values: v.to_vec() };
    pb::StorageSettings {
        s3_endpoint: o.s3_endpoint_opt.clone(),
        s3_region: o.s3_region_opt.clone(),
        file_roots: o
            .file_roots_opt
            .as_ref()
            .map(|roots| pb::StringList { values: roots.iter().map(|r| r.display().to_string()).collect() }),
        http_allow_hosts: o.http_allow_hosts_opt.as_deref().map(list),
    }
}

/// Storage settings from the wire; the receiving node gives them its registry.
pub fn storage_from(s: Option<pb::StorageSettings>) -> StorageOptions {
    let s = s.unwrap_or_default();
    StorageOptions {
        s3_endpoint_opt: s.s3_endpoint,
        s3_region_opt: s.s3_region,
        file_roots_opt: s.file_roots.map(|l| l.values.into_iter().map(PathBuf::from).collect()),
        http_allow_hosts_opt: s.http_allow_hosts.map(|l| l.values),
        ..Default::default()
    }
}

/// A bad value on the wire.
pub fn bad_value(b: &BadValue) -> pb::BadValue {
    pb::BadValue { url: b.url.clone(), offset: b.offset, column: b.column.clone(), reason: b.reason.clone() }
}

/// A bad value from the wire.
pub fn bad_value_from(b: pb::BadValue) -> BadValue {
    BadValue { url: b.url, offset: b.offset, column: b.column, reason: b.reason }
}

/// A frame's metadata on the wire.
pub fn frame_info(f: &FrameInfo) -> pb::FrameInfo {
    pb::FrameInfo {
        frame_id: f.frame_id.clone(),
        sources: f.sources.clone(),
        columns: f
            .columns
            .iter()
            .map(|c| pb::ColumnInfo {
                name: c.name.clone(),
                column_type: column_type(c.column_type) as i32,
                arrow_type: c.arrow_type.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                not_null: c.not_null,
            })
            .collect(),
        chunks: f
            .chunks
            .iter()
            .map(|c| pb::ChunkInfo {
                index: c.index,
                node: Some(c.node.to_proto()),
                rows: c.rows,
                bytes: c.bytes,
                replicas: c.replicas.iter().map(NodeAddr::to_proto).collect(),
            })
            .collect(),
        rows: f.rows,
        bytes_in_memory: f.bytes_in_memory,
        source_bytes: f.source_bytes,
        parse_report: Some(pb::ParseReport {
            bad_rows: f.parse_report.bad_rows,
            bad_cells: f.parse_report.bad_cells,
            examples: f.parse_report.examples.iter().map(bad_value).collect(),
        }),
        recipe: f.recipe.as_ref().map(|r| pb::ImportRecipe {
            setup: Some(setup(&r.setup)),
            format: input_format(r.format) as i32,
            strict: r.strict,
            splits: r.splits.iter().map(|s| split_spec(&s.split, s.start_in_quotes)).collect(),
        }),
        lost: f.lost.clone().unwrap_or_default(),
    }
}

/// A split to parse, on the wire.
pub fn split_spec(s: &Split, start_in_quotes: bool) -> pb::SplitSpec {
    pb::SplitSpec {
        url: s.url.clone(),
        start: s.start,
        end: s.end,
        file_size: s.file_size,
        chunk: s.chunk,
        skip_header: s.skip_header,
        start_in_quotes,
    }
}

fn source_split_from(s: pb::SplitSpec) -> SourceSplit {
    SourceSplit {
        split: Split {
            url: s.url,
            start: s.start,
            end: s.end,
            file_size: s.file_size,
            chunk: s.chunk,
            skip_header: s.skip_header,
            hosts: Vec::new(),
        },
        start_in_quotes: s.start_in_quotes,
    }
}

/// A frame's metadata from the wire.
pub fn frame_info_from(f: pb::FrameInfo) -> Decoded<FrameInfo> {
    let columns = f
        .columns
        .into_iter()
        .map(|c| {
            let arrow_type = match c.arrow_type.as_str() {
                "" => None,
                text => Some(text.parse().map_err(|e| Malformed(format!("column {:?}: Arrow type {text:?}: {e}", c.name)))?),
            };
            Ok(ColumnInfo { column_type: column_type_from(c.column_type)?, name: c.name, arrow_type, not_null: c.not_null })
        })
        .collect::<Decoded<_>>()?;
    let chunks = f
        .chunks
        .into_iter()
        .map(|c| {
            let node = required(c.node.as_ref(), "chunk node")?;
            let node = NodeAddr::from_proto(node).map_err(|e| Malformed(format!("chunk {}: {e}", c.index)))?;
            let replicas = c
                .replicas
                .iter()
                .map(|r| NodeAddr::from_proto(r).map_err(|e| Malformed(format!("chunk {} replica: {e}", c.index))))
                .collect::<Decoded<_>>()?;
            Ok(ChunkInfo { index: c.index, node, rows: c.rows, bytes: c.bytes, replicas })
        })
        .collect::<Decoded<_>>()?;
    let report = f.parse_report.unwrap_or_default();
    let recipe = match f.recipe {
        Some(r) => Some(ImportRecipe {
            setup: setup_from(required(r.setup, "recipe's parse setup")?)?,
            format: input_format_from(r.format)?,
            strict: r.strict,
            splits: r.splits.into_iter().map(source_split_from).collect(),
        }),
        None => None,
    };
    Ok(FrameInfo {
        frame_id: f.frame_id,
        sources: f.sources,
        columns,
        chunks,
        rows: f.rows,
        bytes_in_memory: f.bytes_in_memory,
        source_bytes: f.source_bytes,
        parse_report: ParseReport {
            bad_rows: report.bad_rows,
            bad_cells: report.bad_cells,
            examples: report.examples.into_iter().map(bad_value_from).collect(),
        },
        recipe,
        lost: Some(f.lost).filter(|l| !l.is_empty()),
    })
}

fn cells(values: &[Option<String>]) -> Vec<pb::Cell> {
    values.iter().map(|v| pb::Cell { text: v.clone() }).collect()
}

fn cells_from(cells: Vec<pb::Cell>) -> Vec<Option<String>> {
    cells.into_iter().map(|c| c.text).collect()
}

/// Rows of text cells on the wire.
pub fn rows(rows: &[Vec<Option<String>>]) -> Vec<pb::Row> {
    rows.iter().map(|r| pb::Row { cells: cells(r) }).collect()
}

/// Rows from the wire.
pub fn rows_from(rows: Vec<pb::Row>) -> Vec<Vec<Option<String>>> {
    rows.into_iter().map(|r| cells_from(r.cells)).collect()
}

fn agg_op(op: AggOp) -> pb::AggOp {
    match op {
        AggOp::Count => pb::AggOp::Count,
        AggOp::Sum => pb::AggOp::Sum,
        AggOp::Mean => pb::AggOp::Mean,
        AggOp::Min => pb::AggOp::Min,
        AggOp::Max => pb::AggOp::Max,
    }
}

fn agg_op_from(value: i32) -> Decoded<AggOp> {
    match pb::AggOp::try_from(value) {
        Ok(pb::AggOp::Count) => Ok(AggOp::Count),
        Ok(pb::AggOp::Sum) => Ok(AggOp::Sum),
        Ok(pb::AggOp::Mean) => Ok(AggOp::Mean),
        Ok(pb::AggOp::Min) => Ok(AggOp::Min),
        Ok(pb::AggOp::Max) => Ok(AggOp::Max),
        Err(_) => Err(Malformed(format!("unknown aggregate {value}"))),
    }
}

/// A group-by request on the wire.
pub fn group_by(r: &GroupByRequest) -> pb::GroupByRequest {
    pb::GroupByRequest {
        by: r.by.clone(),
        aggs: r.aggs.iter().map(|a| pb::Agg { op: agg_op(a.op) as i32, column: a.column.clone() }).collect(),
        destination_frame: r.destination_frame.clone(),
    }
}

/// A group-by request from the wire.
pub fn group_by_from(r: Option<pb::GroupByRequest>) -> Decoded<GroupByRequest> {
    let r = required(r, "group-by request")?;
    Ok(GroupByRequest {
        by: r.by,
        aggs: r.aggs.into_iter().map(|a| Ok(Agg { op: agg_op_from(a.op)?, column: a.column })).collect::<Decoded<_>>()?,
        destination_frame: r.destination_frame,
        // Copies are the coordinator's business; workers only fold.
        replicas: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_info_with_exact_arrow_types_and_examples_survives_the_wire() {
        use arrow::datatypes::{DataType, TimeUnit};
        let node = NodeAddr { ip: "127.0.0.2".parse().unwrap(), rest_port: 54321, grpc_port: 54322 };
        let mut ts = ColumnInfo::new("t", ColumnType::Time);
        ts.arrow_type = Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        ts.not_null = true;
        let mut info = FrameInfo::from_chunks(
            "f.hex",
            vec!["s3://b/k.csv".into()],
            vec![ColumnInfo::new("a", ColumnType::Int), ColumnInfo::new("e", ColumnType::Enum), ts],
            vec![ChunkInfo { replicas: vec![node], ..ChunkInfo::new(0, node, 10, 800) }],
        );
        info.source_bytes = 123;
        info.parse_report = ParseReport {
            bad_rows: 1,
            bad_cells: 2,
            examples: vec![BadValue { url: "s3://b/k.csv".into(), offset: 7, column: Some("a".into()), reason: "not a number".into() }],
        };
        assert_eq!(frame_info_from(frame_info(&info)).unwrap(), info);
    }

    #[test]
    fn setups_requests_and_groups_survive_the_wire() {
        let s = ParseSetup {
            separator: '\t',
            header: true,
            column_names: vec!["a".into(), "b".into()],
            column_types: vec![ColumnType::Real, ColumnType::String],
            na_strings: vec!["NA".into()],
            skipped_columns: vec![1],
        };
        assert_eq!(setup_from(setup(&s)).unwrap(), s);
        let r = GroupByRequest {
            by: vec!["b".into()],
            aggs: vec![Agg { op: AggOp::Mean, column: "a".into() }, Agg { op: AggOp::Max, column: "a".into() }],
            destination_frame: None,
            replicas: None,
        };
        assert_eq!(group_by_from(Some(group_by(&r))).unwrap(), r);
        for f in [InputFormat::Csv, InputFormat::Parquet, InputFormat::Arrow] {
            assert_eq!(input_format_from(input_format(f) as i32).unwrap(), f);
        }
    }

    #[test]
    fn storage_settings_keep_absent_and_empty_lists_apart() {
        let none = StorageOptions {
            file_roots_opt: Some(Vec::new()),
            s3_endpoint_opt: Some("http://127.0.0.1:8333".into()),
            ..Default::default()
        };
        let back = storage_from(Some(storage(&none)));
        assert_eq!((back.file_roots_opt, back.http_allow_hosts_opt, back.s3_endpoint_opt), (Some(Vec::new()), None, none.s3_endpoint_opt));
    }

    #[test]
    fn what_a_peer_got_wrong_is_named() {
        let bad = pb::ParseSetup { separator: 0xD800, ..Default::default() };
        assert!(setup_from(bad).unwrap_err().0.contains("not a character"));
        let bad = pb::ParseSetup { column_types: vec![99], ..Default::default() };
        assert!(setup_from(bad).unwrap_err().0.contains("unknown column type 99"));
        assert!(group_by_from(None).unwrap_err().0.contains("no group-by request"));
    }
}
