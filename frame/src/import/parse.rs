//! Parsing a split's bytes into stored (narrow) record batches, on all cores (rayon).
//!
//! Each piece of a split goes the first way that takes it:
//! 1. [`direct`](crate::import::direct): plain CSV (no quotes, one record per line, every value of its
//!    column's type) decoded in one pass straight into stored form;
//! 2. arrow-csv with the frame's typed schema, then [`narrow`];
//! 3. if the piece holds anything arrow-csv cannot type (a word in an integer column, a row
//!    with the wrong number of fields), a forgiving path: fields are split by hand,
//!    wrong-length rows are padded or cut and counted, and values that do not fit their
//!    column's type become missing and are counted, with the first examples and their byte
//!    offsets. `strict` turns either into an error.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{Schema, SchemaRef};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::import::direct::Plan;
use crate::import::setup::{split_fields, ColumnType, ParseSetup, DEFAULT_NA};
use crate::import::split::pieces;
use crate::store::narrow::narrow;
use crate::{FrameError, FrameResult};

const MAX_EXAMPLES: usize = 5;

/// A malformed row or cell, for the job report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BadValue {
    /// The file.
    pub url: String,
    /// Byte offset of the row in the file.
    pub offset: u64,
    /// The column, if one cell was at fault.
    pub column: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// What parsing produced.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The batches in stored form, in file order.
    pub batches: Vec<RecordBatch>,
    /// Rows parsed.
    pub rows: u64,
    /// Rows with the wrong number of fields.
    pub bad_rows: u64,
    /// Cells that did not fit their column's type (now missing).
    pub bad_cells: u64,
    /// The first few problems.
    pub examples: Vec<BadValue>,
}

impl Parsed {
    fn absorb(&mut self, other: Parsed) {
        self.batches.extend(other.batches);
        self.rows += other.rows;
        self.bad_rows += other.bad_rows;
        self.bad_cells += other.bad_cells;
        for e in other.examples {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e);
            }
        }
    }
}

/// Parses `data` (whole records, starting at byte `offset` of `url`; `quoted`: it may hold a
/// quote) on the rayon pool into stored batches.
pub fn parse(data: &[u8], offset: u64, quoted: bool, setup: &ParseSetup, url: &str, strict: bool) -> FrameResult<Parsed> {
    let schema = Arc::new(setup.schema());
    let plan = Plan::new(setup);
    // Pieces of 1 MiB at least: each piece is a batch of its own, with a header per column.
    let parts = pieces(data, (rayon::current_num_threads() * 2).min(data.len() / (1 << 20) + 1), quoted);
    let mut starts = Vec::with_capacity(parts.len());
    let mut at = offset;
    for p in &parts {
        starts.push(at);
        at += p.len() as u64;
    }
    let job = PieceJob { setup, plan: plan.as_ref(), schema: &schema, url, strict, quoted };
    let results: Vec<FrameResult<Parsed>> =
        parts.par_iter().zip(starts.par_iter()).map(|(piece, start)| parse_piece(piece, *start, &job)).collect();
    let mut out = Parsed::default();
    for r in results {
        out.absorb(r?);
    }
    Ok(out)
}

fn projection(setup: &ParseSetup) -> Vec<usize> {
    (0..setup.column_names.len()).filter(|i| !setup.skipped_columns.contains(i)).collect()
}

fn null_regex(setup: &ParseSetup) -> FrameResult<Option<regex::Regex>> {
    let non_empty: Vec<String> = setup.na_strings.iter().filter(|s| !s.is_empty()).map(|s| regex::escape(s)).collect();
    if non_empty.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{})?$", non_empty.join("|")))
        .map(Some)
        .map_err(|e| FrameError::InvalidArgument { what: "na_strings", reason: e.to_string() })
}

/// What every piece of one parse shares.
struct PieceJob<'a> {
    setup: &'a ParseSetup,
    plan: Option<&'a Plan>,
    schema: &'a SchemaRef,
    url: &'a str,
    strict: bool,
    /// Whether the data may hold a quote (else the direct decoder need not look for one).
    quoted: bool,
}

fn parse_piece(piece: &[u8], start: u64, job: &PieceJob<'_>) -> FrameResult<Parsed> {
    let PieceJob { setup, plan, schema, url, strict, quoted } = *job;
    let direct = plan.and_then(|p| if quoted { p.decode(piece) } else { p.decode_unquoted(piece) });
    if let Some(batches) = direct {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        return Ok(Parsed { batches, rows, ..Parsed::default() });
    }
    let mut parsed = match parse_general(piece, setup) {
        Ok(p) => p,
        Err(e) if strict => {
            return Err(FrameError::Parse {
                url: url.into(),
                reason: format!("near byte {start}: {e} (import without strict to turn bad values into missing ones)"),
            })
        }
        Err(_) => parse_forgiving(piece, start, setup, schema, url)?,
    };
    parsed.batches = std::mem::take(&mut parsed.batches).into_iter().map(narrow).collect::<FrameResult<_>>()?;
    Ok(parsed)
}

/// arrow-csv with the frame's typed schema, into batches in the frame's logical types.
pub(crate) fn parse_general(piece: &[u8], setup: &ParseSetup) -> Result<Parsed, arrow::error::ArrowError> {
    // arrow-csv reads every column of the file, then projects.
    let full: Vec<arrow::datatypes::Field> =
        setup.column_names.iter().zip(&setup.column_types).map(|(n, t)| arrow::datatypes::Field::new(n, t.arrow_type(), true)).collect();
    let mut builder = arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(full)))
        .with_header(false)
        .with_delimiter(setup.separator as u8)
        // Sized for the rows there can be: arrow-csv keeps a field offset per cell of a batch.
        .with_batch_size(crate::import::direct::batch_capacity(piece.len(), setup.column_names.len()))
        .with_projection(projection(setup));
    if let Some(re) = null_regex(setup).map_err(|e| arrow::error::ArrowError::ParseError(e.to_string()))? {
        builder = builder.with_null_regex(re);
    }
    let mut decoder = builder.build_decoder();
    let mut out = Parsed::default();
    let mut rest = piece;
    loop {
        let used = decoder.decode(rest)?;
        rest = &rest[used..];
        if used == 0 || decoder.capacity() == 0 {
            if let Some(batch) = decoder.flush()? {
                out.rows += batch.num_rows() as u64;
                out.batches.push(batch);
            }
        }
        if rest.is_empty() && used == 0 {
            break;
        }
    }
    Ok(out)
}

fn parse_forgiving(piece: &[u8], start: u64, setup: &ParseSetup, schema: &SchemaRef, url: &str) -> FrameResult<Parsed> {
    let ncols = setup.column_names.len();
    let keep = projection(setup);
    let mut out = Parsed::default();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); keep.len()];
    let mut offsets = Vec::new();
    let mut at = start;
    for raw in crate::import::split::records(piece) {
        let line_offset = at;
        at += raw.len() as u64;
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            continue;
        }
        let fields = split_fields(line, setup.separator);
        if fields.len() != ncols {
            out.bad_rows += 1;
            if out.examples.len() < MAX_EXAMPLES {
                out.examples.push(BadValue {
                    url: url.into(),
                    offset: line_offset,
                    column: None,
                    reason: format!("{} fields where {ncols} were expected", fields.len()),
                });
            }
        }
        for (slot, &c) in keep.iter().enumerate() {
            // Typed columns also treat the usual NA spellings as missing, even when the sample
            // did not show them; text columns keep them as text unless the setup lists them.
            let typed = !matches!(setup.column_types.get(c), Some(ColumnType::Enum | ColumnType::String));
            let v = fields
                .get(c)
                .filter(|v| !(setup.na_strings.iter().any(|na| na == *v) || typed && DEFAULT_NA.contains(&v.as_str())))
                .cloned();
            columns[slot].push(v);
        }
        offsets.push(line_offset);
    }
    let cast_options = CastOptions { safe: true, ..Default::default() };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(keep.len());
    for (slot, field) in schema.fields().iter().enumerate() {
        let strings = StringArray::from(std::mem::take(&mut columns[slot]));
        let typed = cast_with_options(&strings, field.data_type(), &cast_options)?;
        for (row, offset) in offsets.iter().enumerate() {
            if strings.is_valid(row) && typed.is_null(row) {
                out.bad_cells += 1;
                if out.examples.len() < MAX_EXAMPLES {
                    out.examples.push(BadValue {
                        url: url.into(),
                        offset: *offset,
                        column: Some(field.name().clone()),
                        reason: format!("{:?} is not a valid {} value; stored as missing", strings.value(row), field.data_type()),
                    });
                }
            }
        }
        arrays.push(typed);
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    out.rows = batch.num_rows() as u64;
    if batch.num_rows() > 0 {
        out.batches.push(batch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::setup::{guess, ColumnType};
    use arrow::array::{Float64Array, Int64Array};

    fn setup_of(text: &str) -> ParseSetup {
        guess(text.as_bytes(), true, "t").unwrap()
    }

    /// The parsed rows in the frame's logical types, as one batch.
    fn logical(p: &Parsed, setup: &ParseSetup) -> RecordBatch {
        let schema = Arc::new(setup.schema());
        let wide: Vec<RecordBatch> = p.batches.iter().map(|b| crate::store::narrow::widen(b, &schema).unwrap()).collect();
        arrow::compute::concat_batches(&schema, &wide).unwrap()
    }

    #[test]
    fn typed_fast_path_with_missing_values() {
        let text = "a,b,c,t\n1,2.5,x,2020-01-01 00:00:01\n2,NA,y,2020-01-02 00:00:00\n3,,x,\n";
        let setup = setup_of(text);
        let body = &text.as_bytes()[8..];
        let p = parse(body, 8, true, &setup, "t", true).unwrap();
        assert_eq!(p.rows, 3);
        assert_eq!((p.bad_rows, p.bad_cells), (0, 0));
        let b = logical(&p, &setup);
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.values(), &[1, 2, 3]);
        let f = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(f.null_count(), 2);
        assert_eq!(b.column(3).null_count(), 1);
        assert!(matches!(b.column(2).data_type(), arrow::datatypes::DataType::Dictionary(..)));
    }

    #[test]
    fn bad_values_become_missing_and_are_reported() {
        let setup = ParseSetup {
            separator: ',',
            header: false,
            column_names: vec!["a".into(), "b".into()],
            column_types: vec![ColumnType::Int, ColumnType::Real],
            na_strings: vec!["".into()],
            skipped_columns: vec![],
        };
        let body = b"1,2.0\noops,3.0\n4\n5,6.0,7\n";
        let p = parse(body, 100, true, &setup, "file:///d.csv", false).unwrap();
        assert_eq!(p.rows, 4);
        assert_eq!(p.bad_rows, 2);
        assert_eq!(p.bad_cells, 1);
        let cell = p.examples.iter().find(|e| e.column.as_deref() == Some("a")).unwrap();
        assert_eq!(cell.offset, 106);
        assert!(cell.reason.contains("\"oops\""));
        assert!(p.examples.iter().any(|e| e.offset == 115 && e.reason.contains("1 fields where 2")));
        let err = parse(body, 100, true, &setup, "file:///d.csv", true).unwrap_err().to_string();
        assert!(err.contains("file:///d.csv") && err.contains("strict"), "{err}");
    }

    #[test]
    fn empty_input_gives_no_rows() {
        let setup = setup_of("a,b\n1,2\n");
        let p = parse(b"", 0, true, &setup, "t", true).unwrap();
        assert_eq!(p.rows, 0);
        assert!(p.batches.is_empty());
    }
}
