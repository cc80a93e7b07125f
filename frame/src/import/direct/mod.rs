//! Direct decoding of plain CSV into stored (narrow) batches, in one pass over the bytes.
//!
//! The general path (arrow-csv, then [`narrow`](crate::store::narrow::narrow)) first splits every
//! record into field strings, then parses each column into 64-bit values, then narrows them.
//! Most CSV files are plainer than what that path is built for: no quotes, one record per
//! line. For those, this decoder parses each field where it lies, straight into the form the
//! chunk store keeps: integers by range, decimal reals as scaled integers without going
//! through `f64`, times as seconds, categoricals as dictionary keys (a level's bytes are
//! checked for UTF-8 once, when first seen).
//!
//! The rule that keeps it safe: it produces exactly what the general path would, or declines.
//! A piece with a quote character, a row with the wrong number of fields, an empty line, a
//! stray carriage return or a value it cannot type makes [`Plan::decode`] return `None`, and
//! the piece goes to the general path, which handles it (and reports bad values) as before.
//! Values outside the fast forms but still valid (`1e-5`, `+7`, a time with a zone) are
//! parsed with arrow's own parsers, so the result is the same as arrow-csv's. The property
//! test below checks the equality on generated files.

mod values;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, DictionaryArray, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    NullBufferBuilder, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::cast_utils::{string_to_datetime, Parser};
use arrow::datatypes::{DataType, Field, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema};

use self::values::{fast_decimal, fast_int, fast_time};
use crate::import::setup::{ColumnType, ParseSetup};
use crate::store::narrow::{key_type_for, narrow_column, narrowest, with_meta, DECIMAL_SCALE, TIME_SECONDS};

/// Rows per stored batch; the same as the general path's, so both cut batches alike.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// Rows to size a batch's buffers for: [`BATCH_ROWS`], or fewer when `bytes` of records of
/// `columns` fields cannot hold that many (a field takes a byte at least, value or
/// separator). A wide file has few rows of many columns: `BATCH_ROWS` for each of thousands
/// of columns would take gigabytes.
pub(crate) fn batch_capacity(bytes: usize, columns: usize) -> usize {
    BATCH_ROWS.min(bytes / columns.max(1) + 1)
}

/// Powers of ten that are exact in `f64`.
const EXACT_POW10: [f64; 23] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
/// Decimal digits kept as a scaled integer (the same limit as [`narrow`](crate::store::narrow)).
const MAX_SCALE: u32 = 9;

/// What the decoder does with one column of the file.
#[derive(Debug, Clone)]
enum Slot {
    Skip,
    Keep { name: String, kind: ColumnType },
}

/// How to decode pieces of one file; `None` from [`Plan::new`] when the setup is not plain.
#[derive(Debug)]
pub(crate) struct Plan {
    sep: u8,
    slots: Vec<Slot>,
    /// Non-empty texts that mean missing (an empty field is always missing).
    na: Vec<Vec<u8>>,
}

impl Plan {
    /// A plan for `setup`, or `None` if its files need the general path.
    pub(crate) fn new(setup: &ParseSetup) -> Option<Plan> {
        // A separator that can occur inside a number or a time (`2021-07-17 00:28:10` with a
        // space separator is two fields) would be read across by the fast forms.
        let sep =
            u8::try_from(setup.separator).ok().filter(|s| s.is_ascii() && !s.is_ascii_alphanumeric() && !b"\"\n\r -.:+".contains(s))?;
        let na: Vec<Vec<u8>> = setup.na_strings.iter().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        // Missing-value texts that look like numbers or times would have to be checked on
        // every value; such setups are rare, and the general path handles them.
        if na.iter().any(|s| s.iter().all(|c| c.is_ascii_digit() || b"+-.:eE T".contains(c))) {
            return None;
        }
        let mut slots = Vec::with_capacity(setup.column_names.len());
        for (i, (name, kind)) in setup.column_names.iter().zip(&setup.column_types).enumerate() {
            if setup.skipped_columns.contains(&i) {
                slots.push(Slot::Skip);
            } else if *kind == ColumnType::Bool {
                return None;
            } else {
                slots.push(Slot::Keep { name: name.clone(), kind: *kind });
            }
        }
        (setup.column_names.len() == setup.column_types.len() && !slots.is_empty()).then_some(Plan { sep, slots, na })
    }

    /// Decodes whole records into stored batches of [`BATCH_ROWS`] rows, or `None` if the
    /// piece needs the general path.
    pub(crate) fn decode(&self, piece: &[u8]) -> Option<Vec<RecordBatch>> {
        if memchr::memchr(b'"', piece).is_some() {
            return None;
        }
        self.decode_unquoted(piece)
    }

    /// [`Plan::decode`] of a piece known to hold no quote (the caller counted them).
    pub(crate) fn decode_unquoted(&self, piece: &[u8]) -> Option<Vec<RecordBatch>> {
        let capacity = batch_capacity(piece.len(), self.slots.len());
        let mut columns: Vec<Column<'_>> = self.slots.iter().map(|s| Column::new(s, capacity)).collect();
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut pos = 0usize;
        let last = columns.len() - 1;
        while pos < piece.len() {
            if matches!(piece[pos], b'\n' | b'\r') {
                return None;
            }
            for (i, column) in columns.iter_mut().enumerate() {
                pos = column.push(piece, pos, self, i == last)?;
            }
            rows += 1;
            if rows == BATCH_ROWS {
                batches.push(self.finish(&mut columns, capacity)?);
                rows = 0;
            }
        }
        if rows > 0 {
            batches.push(self.finish(&mut columns, capacity)?);
        }
        Some(batches)
    }

    fn finish(&self, columns: &mut [Column<'_>], capacity: usize) -> Option<RecordBatch> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays = Vec::with_capacity(columns.len());
        for (column, slot) in columns.iter_mut().zip(&self.slots) {
            if let Slot::Keep { name, .. } = slot {
                let (field, array) = column.finish(name, capacity)?;
                fields.push(field);
                arrays.push(array);
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
    }

    fn is_na(&self, field: &[u8]) -> bool {
        field.is_empty() || self.na.iter().any(|n| n.as_slice() == field)
    }
}

/// Where the field that starts at `pos` ends: at the separator, a line end or the piece end.
#[inline]
fn field_end(b: &[u8], pos: usize, sep: u8) -> usize {
    let mut i = pos;
    while i < b.len() {
        let c = b[i];
        if c == sep || c == b'\n' || c == b'\r' {
            break;
        }
        i += 1;
    }
    i
}

/// The position after the terminator at `i`, if it is the right one for the field: the
/// separator, or for the last field a line end (`\n`, `\r\n`) or the end of the piece.
#[inline]
fn after_terminator(b: &[u8], i: usize, sep: u8, last: bool) -> Option<usize> {
    match b.get(i) {
        Some(&c) if !last => (c == sep).then_some(i + 1),
        None => last.then_some(i),
        Some(b'\n') => Some(i + 1),
        Some(b'\r') if b.get(i + 1) == Some(&b'\n') => Some(i + 2),
        _ => None,
    }
}

/// The field at `pos` and where the next one starts; `None` if it does not end where a field
/// of its place in the record must (see [`after_terminator`]).
#[inline]
fn field_at(b: &[u8], pos: usize, sep: u8, last: bool) -> Option<(&[u8], usize)> {
    let end = field_end(b, pos, sep);
    Some((&b[pos..end], after_terminator(b, end, sep, last)?))
}

/// A typed field at `pos`: its value in the fast form if it has one, else `None` if it is a
/// missing-value text, else what arrow's parser makes of it; and where the next field starts.
/// `None` overall (decline the piece) if the field ends badly or no parser takes it.
#[inline]
fn typed_field<T>(
    b: &[u8],
    pos: usize,
    plan: &Plan,
    last: bool,
    fast: impl FnOnce(&[u8], usize) -> Option<(T, usize)>,
    slow: impl FnOnce(&str) -> Option<T>,
) -> Option<(Option<T>, usize)> {
    if let Some((v, end)) = fast(b, pos) {
        if let Some(next) = after_terminator(b, end, plan.sep, last) {
            return Some((Some(v), next));
        }
    }
    let (field, next) = field_at(b, pos, plan.sep, last)?;
    if plan.is_na(field) {
        return Some((None, next));
    }
    Some((Some(slow(std::str::from_utf8(field).ok()?)?), next))
}

/// A real as the text gave it: a short decimal (sign, digits, digits after the point), or
/// whatever else arrow's parser read.
enum Real {
    Decimal(bool, u64, u32),
    Float(f64),
}

/// One column being built for the current batch.
enum Column<'a> {
    Skip,
    Int { values: Vec<i64>, nulls: NullBufferBuilder, lo: i64, hi: i64 },
    Real { reals: Reals, nulls: NullBufferBuilder },
    Time { millis: Vec<i64>, nulls: NullBufferBuilder },
    Enum { keys: Vec<i64>, nulls: NullBufferBuilder, levels: hashbrown::HashMap<&'a [u8], i32>, values: StringBuilder },
    Text(StringBuilder),
}

impl<'a> Column<'a> {
    fn new(slot: &Slot, capacity: usize) -> Column<'a> {
        let nulls = || NullBufferBuilder::new(capacity);
        match slot {
            Slot::Skip => Column::Skip,
            Slot::Keep { kind, .. } => match kind {
                ColumnType::Int => Column::Int { values: Vec::with_capacity(capacity), nulls: nulls(), lo: i64::MAX, hi: i64::MIN },
                ColumnType::Real => Column::Real { reals: Reals::Scaled { m: Vec::with_capacity(capacity), d: 0 }, nulls: nulls() },
                ColumnType::Time => Column::Time { millis: Vec::with_capacity(capacity), nulls: nulls() },
                ColumnType::Enum => Column::Enum {
                    keys: Vec::with_capacity(capacity),
                    nulls: nulls(),
                    levels: hashbrown::HashMap::new(),
                    values: StringBuilder::new(),
                },
                // Booleans never reach a plan (see `Plan::new`).
                ColumnType::String | ColumnType::Bool => Column::Text(StringBuilder::new()),
            },
        }
    }

    /// Parses the field at `pos`; returns where the next one starts.
    #[inline]
    fn push(&mut self, b: &'a [u8], pos: usize, plan: &Plan, last: bool) -> Option<usize> {
        let sep = plan.sep;
        match self {
            Column::Int { values, nulls, lo, hi } => {
                let (v, next) = typed_field(b, pos, plan, last, fast_int, Int64Type::parse)?;
                match v {
                    Some(v) => {
                        values.push(v);
                        nulls.append_non_null();
                        *lo = (*lo).min(v);
                        *hi = (*hi).max(v);
                    }
                    None => {
                        values.push(0);
                        nulls.append_null();
                    }
                }
                Some(next)
            }
            Column::Real { reals, nulls } => {
                let fast = |b: &[u8], pos| fast_decimal(b, pos).map(|(neg, digits, scale, end)| (Real::Decimal(neg, digits, scale), end));
                let (v, next) = typed_field(b, pos, plan, last, fast, |t| Float64Type::parse(t).map(Real::Float))?;
                match v {
                    Some(Real::Decimal(neg, digits, scale)) => reals.push_decimal(neg, digits, scale),
                    Some(Real::Float(v)) => reals.push_float(v),
                    None => reals.push_null(),
                }
                nulls.append(v.is_some());
                Some(next)
            }
            Column::Time { millis, nulls } => {
                let fast = |b: &[u8], pos| fast_time(b, pos).map(|(secs, end)| (secs * 1000, end));
                // What arrow-csv does for a time column without a zone.
                let slow = |t: &str| string_to_datetime(&chrono::Utc, t).ok().map(|t| t.timestamp_millis());
                let (v, next) = typed_field(b, pos, plan, last, fast, slow)?;
                millis.push(v.unwrap_or(0));
                nulls.append(v.is_some());
                Some(next)
            }
            Column::Enum { keys, nulls, levels, values } => {
                let (field, next) = field_at(b, pos, sep, last)?;
                let key = match levels.get(field) {
                    Some(&k) => k,
                    None => {
                        let k = if plan.is_na(field) {
                            -1
                        } else {
                            values.append_value(std::str::from_utf8(field).ok()?);
                            i32::try_from(values.len() - 1).ok()?
                        };
                        levels.insert(field, k);
                        k
                    }
                };
                keys.push(i64::from(key.max(0)));
                nulls.append(key >= 0);
                Some(next)
            }
            Column::Text(builder) => {
                let (field, next) = field_at(b, pos, sep, last)?;
                if plan.is_na(field) {
                    builder.append_null();
                } else {
                    builder.append_value(std::str::from_utf8(field).ok()?);
                }
                Some(next)
            }
            Column::Skip => {
                let (field, next) = field_at(b, pos, sep, last)?;
                // The general path checks every byte of a record for UTF-8; so does this one.
                std::str::from_utf8(field).ok()?;
                Some(next)
            }
        }
    }

    /// The stored column for the rows pushed since the last call, and its field.
    fn finish(&mut self, name: &str, capacity: usize) -> Option<(Field, ArrayRef)> {
        Some(match self {
            Column::Skip => return None,
            Column::Int { values, nulls, lo, hi } => {
                let nulls = nulls.finish();
                let target = if *lo > *hi { DataType::Int8 } else { narrowest(*lo, *hi) };
                let array = ints_as(&target, std::mem::take(values), nulls);
                values.reserve(capacity);
                (*lo, *hi) = (i64::MAX, i64::MIN);
                (Field::new(name, target, true), array)
            }
            Column::Real { reals, nulls } => {
                let nulls = nulls.finish();
                let taken = std::mem::replace(reals, Reals::Scaled { m: Vec::with_capacity(capacity), d: 0 });
                match taken {
                    Reals::Scaled { m, d } => {
                        // Missing slots hold 0, which is inside every stored type's range, so
                        // they cannot change the choice. Every value fits 32 bits (see
                        // `push_decimal`).
                        let (lo, hi) = (m.iter().copied().min().unwrap_or(0), m.iter().copied().max().unwrap_or(0));
                        let target = narrowest(lo, hi);
                        (with_meta(name, target.clone(), true, DECIMAL_SCALE, d.to_string()), ints_as(&target, m, nulls))
                    }
                    Reals::Float(v) => {
                        let array: ArrayRef = Arc::new(Float64Array::new(v.into(), nulls));
                        narrow_column(&Field::new(name, DataType::Float64, true), &array).ok()?
                    }
                }
            }
            Column::Time { millis, nulls } => {
                let nulls = nulls.finish();
                let millis = std::mem::replace(millis, Vec::with_capacity(capacity));
                // Missing slots hold 0, a whole second in range.
                let whole = millis.iter().all(|&v| v % 1000 == 0 && i32::try_from(v / 1000).is_ok());
                if whole {
                    let secs: Vec<i32> = millis.iter().map(|&v| (v / 1000) as i32).collect();
                    (with_meta(name, DataType::Int32, true, TIME_SECONDS, "1".into()), Arc::new(Int32Array::new(secs.into(), nulls)))
                } else {
                    let array = TimestampMillisecondArray::new(millis.into(), nulls);
                    (Field::new(name, array.data_type().clone(), true), Arc::new(array))
                }
            }
            Column::Enum { keys, nulls, levels, values } => {
                let nulls = nulls.finish();
                let keys = std::mem::replace(keys, Vec::with_capacity(capacity));
                let dictionary: ArrayRef = Arc::new(values.finish());
                levels.clear();
                let key_type = key_type_for(dictionary.len());
                let keys = ints_as(&key_type, keys, nulls);
                let array: ArrayRef = match key_type {
                    DataType::Int8 => Arc::new(DictionaryArray::try_new(keys.as_primitive::<Int8Type>().clone(), dictionary).ok()?),
                    DataType::Int16 => Arc::new(DictionaryArray::try_new(keys.as_primitive::<Int16Type>().clone(), dictionary).ok()?),
                    _ => Arc::new(DictionaryArray::try_new(keys.as_primitive::<Int32Type>().clone(), dictionary).ok()?),
                };
                (Field::new(name, array.data_type().clone(), true), array)
            }
            Column::Text(builder) => {
                let array: StringArray = builder.finish();
                (Field::new(name, DataType::Utf8, true), Arc::new(array) as ArrayRef)
            }
        })
    }
}

/// The integers of a column in the stored type `target` (chosen by their range).
fn ints_as(target: &DataType, values: Vec<i64>, nulls: Option<NullBuffer>) -> ArrayRef {
    match target {
        DataType::Int8 => Arc::new(Int8Array::new(values.iter().map(|&v| v as i8).collect::<Vec<_>>().into(), nulls)),
        DataType::Int16 => Arc::new(Int16Array::new(values.iter().map(|&v| v as i16).collect::<Vec<_>>().into(), nulls)),
        DataType::Int32 => Arc::new(Int32Array::new(values.iter().map(|&v| v as i32).collect::<Vec<_>>().into(), nulls)),
        _ => Arc::new(Int64Array::new(values.into(), nulls)),
    }
}

/// The values of a real column so far: integers scaled by `10^d` while every value is a short
/// decimal that fits 32 bits so scaled, else plain `f64`.
enum Reals {
    Scaled { m: Vec<i64>, d: u32 },
    Float(Vec<f64>),
}

impl Reals {
    /// Pushes the decimal `±digits / 10^scale` (trailing zeros of the fraction already gone).
    #[inline]
    fn push_decimal(&mut self, neg: bool, digits: u64, scale: u32) {
        if let Reals::Scaled { m, d } = self {
            // -0 comes back from a scaled integer as +0, so it needs the reals.
            if scale <= MAX_SCALE && !(neg && digits == 0) {
                if scale > *d {
                    let factor = 10i64.pow(scale - *d);
                    if m.iter().all(|v| v.unsigned_abs() <= i32::MAX as u64 / factor as u64) {
                        m.iter_mut().for_each(|v| *v *= factor);
                        *d = scale;
                    }
                }
                if scale <= *d {
                    let s = digits.checked_mul(10u64.pow(*d - scale)).filter(|s| *s <= i32::MAX as u64);
                    if let Some(s) = s {
                        m.push(if neg { -(s as i64) } else { s as i64 });
                        return;
                    }
                }
            }
            self.make_float();
        }
        // `digits < 2^53` and an exact power of ten: the division is correctly rounded, so
        // this is the same `f64` a parser of the text gives.
        let v = if digits < 1 << 53 && (scale as usize) < EXACT_POW10.len() {
            digits as f64 / EXACT_POW10[scale as usize]
        } else {
            let text = if scale == 0 { digits.to_string() } else { format!("{digits}e-{scale}") };
            text.parse::<f64>().unwrap_or(f64::NAN)
        };
        self.push_float(if neg { -v } else { v });
    }

    fn push_float(&mut self, v: f64) {
        self.make_float();
        if let Reals::Float(values) = self {
            values.push(v);
        }
    }

    fn push_null(&mut self) {
        match self {
            Reals::Scaled { m, .. } => m.push(0),
            Reals::Float(values) => values.push(0.0),
        }
    }

    /// Gives up the scaled form (values so far are exact: small integers over a power of ten).
    fn make_float(&mut self) {
        if let Reals::Scaled { m, d } = self {
            let p = EXACT_POW10[*d as usize];
            let mut values = Vec::with_capacity(BATCH_ROWS.max(m.len()));
            values.extend(m.iter().map(|&v| v as f64 / p));
            *self = Reals::Float(values);
        }
    }
}

/// For the fuzz target `direct_vs_arrow_csv`: decodes a piece without header both with the
/// direct decoder and with arrow-csv (the general path). The direct decoder may always
/// decline; when it does not, both must give the same stored batches. `Err` says how not.
#[doc(hidden)]
pub fn compare_with_general(piece: &[u8], setup: &ParseSetup) -> Result<(), String> {
    let Some(direct) = Plan::new(setup).and_then(|plan| plan.decode(piece)) else { return Ok(()) };
    let general =
        crate::import::parse::parse_general(piece, setup).map_err(|e| format!("taken by the direct path, refused by arrow-csv: {e}"))?;
    let general: Vec<RecordBatch> =
        general.batches.into_iter().map(crate::store::narrow::narrow).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    if direct != general {
        return Err(format!("the direct decoder gave {direct:?}, arrow-csv {general:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::narrow::narrow;
    use proptest::prelude::*;

    /// What the general path stores for the same text.
    fn general(piece: &[u8], setup: &ParseSetup) -> Vec<RecordBatch> {
        crate::import::parse::parse_general(piece, setup).unwrap().batches.into_iter().map(|b| narrow(b).unwrap()).collect()
    }

    fn setup(types: &[ColumnType], na: &[&str], skipped: Vec<usize>) -> ParseSetup {
        ParseSetup {
            separator: ',',
            header: false,
            column_names: (0..types.len()).map(|i| format!("c{i}")).collect(),
            column_types: types.to_vec(),
            na_strings: na.iter().map(|s| s.to_string()).collect(),
            skipped_columns: skipped,
        }
    }

    fn assert_same(text: &str, setup: &ParseSetup) {
        let plan = Plan::new(setup).expect("a plain setup");
        let direct = plan.decode(text.as_bytes()).unwrap_or_else(|| panic!("declined {text:?}"));
        assert_eq!(direct, general(text.as_bytes(), setup), "{text:?}");
    }

    #[test]
    fn the_reference_layout_decodes_as_the_general_path_does() {
        use ColumnType::*;
        let s = setup(&[Int, Int, Real, Real, Enum, Time], &["", "NA"], vec![]);
        assert_same("0,-822,,373.781,cat_8,2021-07-17 00:28:10\n1,547,0.142928,-9.5,cat_2,2023-09-11 03:55:28\n2,NA,1e-5,7.0,NA,NA\n", &s);
        // Reals that need f64: -0, long fractions, too big for 32 bits scaled.
        assert_same("1,2,-0.0,1.5,a,2020-02-29\n", &s);
        // Trailing zeros do not count as digits: 2.50 is stored as 25 at scale 1.
        assert_same("1,2,2.50,3.000,a,2020-02-29\n3,4,-1.20,5.00,b,2020-03-01\n", &s);
        assert_same("1,2,0.1234567891,1.5,a,2020-02-29T01:02:03\n", &s);
        assert_same("1,2,3000000000,1.5,a,1969-12-31 23:59:59\r\n", &s);
        // Arrow's own parsers for the rest: a sign, an exponent, a time with a zone.
        assert_same("+5,2,.5,1E3,a,2020-01-01T00:00:00Z\n", &s);
    }

    #[test]
    fn what_is_not_plain_is_declined() {
        use ColumnType::*;
        let s = setup(&[Int, Enum], &[""], vec![]);
        let plan = Plan::new(&s).unwrap();
        let texts: [&[u8]; 7] = [b"1,\"a\"\n", b"1\n", b"1,a,b\n", b"x,a\n", b"1,a\n\n2,b\n", b"1,a\r2,b\n", b"1,\xff\n"];
        for text in texts {
            assert!(plan.decode(text).is_none(), "{:?}", std::string::String::from_utf8_lossy(text));
        }
        assert!(plan.decode(b"1,a\n2,b").is_some(), "no newline at the end is fine");
        assert!(Plan::new(&setup(&[Int, Bool], &[""], vec![])).is_none());
        assert!(Plan::new(&setup(&[Int], &["-1"], vec![])).is_none(), "a number that means missing");
        let mut spaced = setup(&[Time, Time], &[""], vec![]);
        spaced.separator = ' ';
        assert!(Plan::new(&spaced).is_none(), "a separator that occurs inside a time");
    }

    #[test]
    fn skipped_columns_and_text_columns() {
        use ColumnType::*;
        let s = setup(&[Int, String, Real, Enum], &["", "N/A"], vec![2]);
        assert_same("1,héllo,x,N/A\n2,N/A,y,z\n3,,z,\n", &s);
    }

    #[test]
    fn batches_are_cut_where_the_general_path_cuts_them() {
        use ColumnType::*;
        let s = setup(&[Int, Real], &[""], vec![]);
        let mut text = std::string::String::new();
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!("{i},{}.{}\n", i % 1000, i % 7));
        }
        let plan = Plan::new(&s).unwrap();
        let batches = plan.decode(text.as_bytes()).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), vec![BATCH_ROWS, 10]);
        assert_eq!(batches, general(text.as_bytes(), &s));
    }

    fn int_cell() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            8 => (-1_000_000i64..1_000_000).prop_map(|v| v.to_string()),
            1 => any::<i64>().prop_map(|v| v.to_string()),
            1 => Just(std::string::String::new()),
            1 => Just("NA".to_string()),
        ]
    }

    fn real_cell() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            8 => (-1e6f64..1e6, 0usize..8).prop_map(|(v, d)| format!("{v:.d$}")),
            1 => (-1e6f64..1e6, 8usize..13).prop_map(|(v, d)| format!("{v:.d$}")),
            1 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")),
            1 => prop_oneof![Just("-0".to_string()), Just("0.000".to_string()), Just("".to_string()), Just("NA".to_string())],
        ]
    }

    /// Whole or short numbers written with trailing zeros, as fixed-point exports write them.
    fn padded_real_cell() -> impl Strategy<Value = std::string::String> {
        (-10_000i64..10_000, 0usize..2, 1usize..5).prop_map(|(v, frac, zeros)| format!("{}.{}{}", v, "5".repeat(frac), "0".repeat(zeros)))
    }

    fn time_cell() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            8 => (-2_000_000_000i64..4_000_000_000).prop_map(|s| {
                chrono::DateTime::from_timestamp(s, 0).unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            1 => (0i64..4_000_000_000).prop_map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap().format("%Y-%m-%d").to_string()),
            1 => (0i64..4_000_000_000, 1u32..999).prop_map(|(s, ms)| {
                chrono::DateTime::from_timestamp(s, ms * 1_000_000).unwrap().format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
            }),
            1 => Just(std::string::String::new()),
        ]
    }

    fn enum_cell() -> impl Strategy<Value = std::string::String> {
        prop_oneof![8 => (0u32..300).prop_map(|i| format!("level_{i}")), 1 => Just("NA".to_string()), 1 => Just("ünï".to_string())]
    }

    /// Bytes from an alphabet of CSV's troublemakers: separators, line ends, quotes, signs,
    /// points, exponents, time punctuation, letters and a byte that is not UTF-8.
    fn noise() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: &[u8] = b"0123456789,\n\r\"-.+eE :T-ANa\xff";
        proptest::collection::vec(proptest::sample::select(alphabet.to_vec()), 0..6)
    }

    /// Rows of cells that are mostly right for their column, some noise; so that the direct
    /// path takes a good share of them and both paths get compared.
    fn noisy_text() -> impl Strategy<Value = Vec<u8>> {
        let cell =
            |good: BoxedStrategy<std::string::String>| prop_oneof![12 => good.prop_map(std::string::String::into_bytes), 1 => noise()];
        let row = (cell(int_cell().boxed()), cell(real_cell().boxed()), cell(time_cell().boxed()), cell(enum_cell().boxed()));
        proptest::collection::vec(row, 1..20).prop_map(|rows| {
            let mut text = Vec::new();
            for (a, b, c, d) in rows {
                for (i, cell) in [a, b, c, d].into_iter().enumerate() {
                    if i > 0 {
                        text.push(b',');
                    }
                    text.extend(cell);
                }
                text.push(b'\n');
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn on_any_bytes_it_declines_or_agrees_with_the_general_path(text in noisy_text()) {
            use ColumnType::*;
            let s = setup(&[Int, Real, Time, Enum], &["", "NA"], vec![]);
            if let Some(direct) = Plan::new(&s).unwrap().decode(&text) {
                let general = crate::import::parse::parse_general(&text, &s);
                prop_assert!(general.is_ok(), "taken by the direct path, refused by arrow-csv: {:?}", std::string::String::from_utf8_lossy(&text));
                let general: Vec<RecordBatch> = general.unwrap().batches.into_iter().map(|b| narrow(b).unwrap()).collect();
                prop_assert_eq!(direct, general);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn decodes_generated_files_exactly_as_the_general_path(
            rows in proptest::collection::vec((int_cell(), real_cell(), time_cell(), enum_cell(), real_cell(), padded_real_cell()), 1..400),
            crlf in any::<bool>(),
            final_newline in any::<bool>(),
        ) {
            use ColumnType::*;
            let s = setup(&[Int, Real, Time, Enum, Real, Real], &["", "NA"], vec![]);
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text: std::string::String =
                rows.iter().map(|(a, b, c, d, e, f)| format!("{a},{b},{c},{d},{e},{f}{end}")).collect();
            if !final_newline {
                text.truncate(text.len() - end.len());
            }
            let plan = Plan::new(&s).unwrap();
            let direct = plan.decode(text.as_bytes());
            prop_assert!(direct.is_some(), "declined {:?}", text);
            prop_assert_eq!(direct.unwrap(), general(text.as_bytes(), &s));
        }
    }
}
