//! Narrow storage: each batch keeps every column in the smallest form that holds that batch's
//! values exactly, the way H2O compresses its chunks:
//!
//! - integers in 8, 16, 32 or 64 bits by range;
//! - reals that are decimals with few digits (as CSV text usually is) as integers scaled by
//!   `10^d` (field metadata [`DECIMAL_SCALE`]), kept only when every value of the batch comes
//!   back bit for bit (so `-0.0`, NaN and values with long expansions keep the batch in f64);
//! - exact decimals (Spark's `DecimalType`, Arrow `Decimal128`) whose unscaled values fit 64
//!   bits as those integers in 8 to 64 bits ([`DECIMAL_UNSCALED`]); wider ones as they came;
//! - times that are whole seconds within the 32-bit range as 32-bit seconds ([`TIME_SECONDS`]);
//! - dictionary (categorical) keys in 8 or 16 bits when there are few levels.
//!
//! The frame's logical types never change; readers that need them (IPC between nodes,
//! export, group-by, rows) widen with [`widen`], and the summary reads the narrow forms
//! directly.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, PrimitiveArray, RecordBatch};
use arrow::compute::{cast, max, min};
use arrow::datatypes::{DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit};

use crate::FrameResult;

/// Field metadata of a real column stored as integers: the value is `stored / 10^scale`.
pub const DECIMAL_SCALE: &str = "eddy.decimal_scale";
/// Field metadata of an exact decimal column stored as its unscaled integers; the value is the
/// column's scale (the logical type, `Decimal128(p, s)`, is the frame's and decides on widening).
pub const DECIMAL_UNSCALED: &str = "eddy.decimal_unscaled";
/// Field metadata of a time column stored as whole seconds in 32 bits.
pub const TIME_SECONDS: &str = "eddy.time_seconds";

/// Powers of ten tried for decimal scaling (up to 9 digits after the point).
pub const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

pub(crate) fn narrowest(lo: i64, hi: i64) -> DataType {
    if lo >= i64::from(i8::MIN) && hi <= i64::from(i8::MAX) {
        DataType::Int8
    } else if lo >= i64::from(i16::MIN) && hi <= i64::from(i16::MAX) {
        DataType::Int16
    } else if lo >= i64::from(i32::MIN) && hi <= i64::from(i32::MAX) {
        DataType::Int32
    } else {
        DataType::Int64
    }
}

/// Rounds to the nearest integer with two additions (exact for |x| < 2^51), where
/// `f64::round` would be a libm call on baseline x86-64; larger values fail the checks below.
#[inline]
fn round_fast(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    (x + MAGIC) - MAGIC
}

#[inline]
fn exact_at(v: f64, d: usize) -> Option<f64> {
    let p = POW10[d];
    let s = round_fast(v * p);
    // An integer 0 comes back as +0.0, so -0.0 is not exact.
    let signed_zero = s == 0.0 && v.to_bits() != 0;
    (!signed_zero && s.abs() <= f64::from(i32::MAX) && (s / p).to_bits() == v.to_bits()).then_some(s)
}

/// The column as integers scaled by `10^d` with the fewest digits `d` (at most 9) that bring
/// every valid value back exactly, with the integers' range; `None` if there is no such `d`.
///
/// One pass: `d` only grows, and when a value needs more digits than the values before it,
/// the pass starts over at the new `d` (that happens within the first few values).
fn scaled(values: &Float64Array) -> Option<(usize, ArrayRef, i64, i64)> {
    let nulls = values.nulls();
    let raw = values.values();
    let mut d = 0usize;
    let mut out = vec![0i32; values.len()];
    'restart: loop {
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        for (i, &v) in raw.iter().enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                continue;
            }
            let s = match exact_at(v, d) {
                Some(s) => s as i32,
                None => {
                    // More digits for this value (and so for all); none fit: keep the reals.
                    d = (d + 1..POW10.len()).find(|&e| exact_at(v, e).is_some())?;
                    continue 'restart;
                }
            };
            lo = lo.min(s);
            hi = hi.max(s);
            out[i] = s;
        }
        let ints = Int32Array::new(out.into(), nulls.cloned());
        return Some((d, Arc::new(ints) as ArrayRef, i64::from(lo), i64::from(hi)));
    }
}

pub(crate) fn with_meta(name: &str, data_type: DataType, nullable: bool, key: &str, value: String) -> Field {
    Field::new(name, data_type, nullable).with_metadata(HashMap::from([(key.to_string(), value)]))
}

/// Ticks of `unit` in one second.
pub fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// Stores every column of `batch` in its narrowest exact form.
pub fn narrow(batch: RecordBatch) -> FrameResult<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let (field, column) = narrow_column(field, column)?;
        // A validity bitmap with nothing missing (as readers of nullable columns give) is
        // dead weight: an eighth of a byte per value.
        let column = if column.nulls().is_some() && column.null_count() == 0 {
            arrow::array::make_array(column.to_data().into_builder().nulls(None).build()?)
        } else {
            column
        };
        fields.push(field);
        columns.push(column);
    }
    crate::store::ingest::batch_of(Arc::new(Schema::new(fields)), columns, batch.num_rows())
}

/// One column of a batch in its narrowest exact form, with the field that describes it.
pub fn narrow_column(field: &Field, column: &ArrayRef) -> FrameResult<(Field, ArrayRef)> {
    let (name, nullable) = (field.name(), field.is_nullable());
    Ok(match column.data_type() {
        DataType::Int64 | DataType::Int32 | DataType::Int16 => {
            let wide = cast(column, &DataType::Int64)?;
            let values = wide.as_primitive::<Int64Type>();
            let target = match (min(values), max(values)) {
                (Some(lo), Some(hi)) => narrowest(lo, hi),
                // All missing: the smallest type holds the nulls just as well.
                _ => DataType::Int8,
            };
            let column = if &target == column.data_type() { column.clone() } else { cast(column, &target)? };
            (Field::new(name, target, nullable), column)
        }
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            match scaled(values) {
                Some((d, ints, lo, hi)) => {
                    let target = if values.null_count() == values.len() { DataType::Int8 } else { narrowest(lo, hi) };
                    let column = if &target == ints.data_type() { ints } else { cast(&ints, &target)? };
                    (with_meta(name, target, nullable, DECIMAL_SCALE, d.to_string()), column)
                }
                None => (field.clone(), column.clone()),
            }
        }
        DataType::Decimal128(_, scale) => match unscaled(column.as_primitive::<Decimal128Type>()) {
            Some(ints) => {
                let (ints, target) = ints;
                let column = if &target == ints.data_type() { ints } else { cast(&ints, &target)? };
                (with_meta(name, target, nullable, DECIMAL_UNSCALED, scale.to_string()), column)
            }
            None => (field.clone(), column.clone()),
        },
        DataType::Timestamp(unit, _) => {
            let per_second = per_second(*unit);
            let raw = cast(column, &DataType::Int64)?;
            let values = raw.as_primitive::<Int64Type>();
            let nulls = values.nulls();
            let whole = values
                .values()
                .iter()
                .enumerate()
                .all(|(i, &v)| nulls.is_some_and(|n| n.is_null(i)) || (v % per_second == 0 && i32::try_from(v / per_second).is_ok()));
            if whole {
                let secs: PrimitiveArray<arrow::datatypes::Int32Type> =
                    arrow::compute::kernels::arity::unary(values, |v| i32::try_from(v / per_second).unwrap_or(0));
                (with_meta(name, DataType::Int32, nullable, TIME_SECONDS, "1".into()), Arc::new(secs) as ArrayRef)
            } else {
                (field.clone(), column.clone())
            }
        }
        DataType::Dictionary(key, value) if key.as_ref() == &DataType::Int32 => {
            let target = DataType::Dictionary(Box::new(key_type_for(column.as_any_dictionary().values().len())), value.clone());
            let column = if &target == column.data_type() { column.clone() } else { cast(column, &target)? };
            (Field::new(name, target, nullable), column)
        }
        _ => (field.clone(), column.clone()),
    })
}

/// A decimal column's unscaled values as 64-bit integers, with the narrowest integer type that
/// holds them; `None` when one needs more than 64 bits (kept as 128-bit decimals then).
fn unscaled(values: &PrimitiveArray<Decimal128Type>) -> Option<(ArrayRef, DataType)> {
    let (mut lo, mut hi) = (i128::MAX, i128::MIN);
    for v in values.iter().flatten() {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let target = if lo > hi {
        DataType::Int8 // all missing
    } else {
        narrowest(i64::try_from(lo).ok()?, i64::try_from(hi).ok()?)
    };
    // Missing slots may hold anything: they become 0, which every type holds.
    let ints: PrimitiveArray<Int64Type> = arrow::compute::kernels::arity::unary(values, |v| i64::try_from(v).unwrap_or(0));
    Some((Arc::new(ints), target))
}

/// The scale of a decimal column stored as unscaled integers.
pub fn decimal_unscaled(field: &Field) -> Option<i8> {
    field.metadata().get(DECIMAL_UNSCALED).and_then(|s| s.parse().ok())
}

/// The narrowest dictionary key type for `levels` distinct values.
pub(crate) fn key_type_for(levels: usize) -> DataType {
    if levels <= 128 {
        DataType::Int8
    } else if levels <= 32768 {
        DataType::Int16
    } else {
        DataType::Int32
    }
}

/// The `10^d` a stored column is scaled by, if it is a scaled real.
pub fn decimal_scale(field: &Field) -> Option<f64> {
    field.metadata().get(DECIMAL_SCALE).and_then(|d| d.parse::<usize>().ok()).and_then(|d| POW10.get(d).copied())
}

/// Whether a stored column holds a time as 32-bit seconds.
pub fn is_time_seconds(field: &Field) -> bool {
    field.metadata().contains_key(TIME_SECONDS)
}

/// One stored column back in its logical type.
pub fn widen_column(stored: &Field, column: &ArrayRef, logical: &DataType) -> FrameResult<ArrayRef> {
    if column.data_type() == logical {
        return Ok(column.clone());
    }
    if let (Some(_), DataType::Decimal128(precision, scale)) = (decimal_unscaled(stored), logical) {
        let ints = cast(column, &DataType::Int64)?;
        let decimals: PrimitiveArray<Decimal128Type> = arrow::compute::kernels::arity::unary(ints.as_primitive::<Int64Type>(), i128::from);
        return Ok(Arc::new(decimals.with_precision_and_scale(*precision, *scale)?));
    }
    if let Some(p) = decimal_scale(stored) {
        let reals = cast(column, &DataType::Float64)?;
        let reals: Float64Array = arrow::compute::kernels::arity::unary(reals.as_primitive::<Float64Type>(), |s| s / p);
        // A Float32 column (from Spark or pandas) whose values had a short decimal form.
        return Ok(if *logical == DataType::Float64 { Arc::new(reals) } else { cast(&reals, logical)? });
    }
    if is_time_seconds(stored) {
        let per_second = match logical {
            DataType::Timestamp(unit, _) => per_second(*unit),
            _ => 1000,
        };
        let secs = cast(column, &DataType::Int64)?;
        let ticks: PrimitiveArray<Int64Type> =
            arrow::compute::kernels::arity::unary(secs.as_primitive::<Int64Type>(), |s| s.saturating_mul(per_second));
        // Int64 to a timestamp type is a reinterpretation (unit and zone come from `logical`).
        return Ok(cast(&ticks, logical)?);
    }
    Ok(cast(column, logical)?)
}

/// Casts a stored batch back to the frame's logical schema.
pub fn widen(batch: &RecordBatch, schema: &SchemaRef) -> FrameResult<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let stored = batch.schema();
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(stored.fields())
        .zip(schema.fields())
        .map(|((c, s), f)| widen_column(s, c, f.data_type()))
        .collect::<Result<_, _>>()?;
    crate::store::ingest::batch_of(schema.clone(), columns, batch.num_rows())
}
#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn float32_with_a_short_decimal_form_widens_back_to_float32() {
        let values = arrow::array::Float32Array::from(vec![Some(0.125), None, Some(2.5)]);
        let logical = Arc::new(Schema::new(vec![Field::new("f", DataType::Float32, true)]));
        // As ingest stores it: cast to Float64, then narrowed.
        let stored = narrow(RecordBatch::try_from_iter([("f", cast(&values, &DataType::Float64).unwrap())]).unwrap()).unwrap();
        assert_ne!(stored.schema().field(0).data_type(), &DataType::Float64, "narrowed to scaled integers");
        let back = widen(&stored, &logical).unwrap();
        assert_eq!(back.column(0).as_primitive::<arrow::datatypes::Float32Type>(), &values);
    }

    #[test]
    fn narrows_by_range_and_widens_back() {
        let b = RecordBatch::try_from_iter([
            ("small", Arc::new(Int64Array::from(vec![Some(-5), None, Some(100)])) as ArrayRef),
            ("mid", Arc::new(Int64Array::from(vec![Some(-1000), Some(1000), None])) as ArrayRef),
            ("big", Arc::new(Int64Array::from(vec![Some(1 << 40), Some(0), Some(1)])) as ArrayRef),
            ("none", Arc::new(Int64Array::from(vec![None, None, None])) as ArrayRef),
        ])
        .unwrap();
        let schema = b.schema();
        let n = narrow(b.clone()).unwrap();
        let types: Vec<DataType> = n.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, vec![DataType::Int8, DataType::Int16, DataType::Int64, DataType::Int8]);
        assert!(n.get_array_memory_size() < b.get_array_memory_size());
        assert_eq!(widen(&n, &schema).unwrap(), b);
    }

    #[test]
    fn decimals_times_and_levels_are_stored_narrow_and_come_back_exactly() {
        use arrow::array::{DictionaryArray, Float64Array, StringArray, TimestampMillisecondArray};
        use arrow::datatypes::Int32Type;
        let keys = arrow::array::Int32Array::from(vec![Some(0), Some(1), None, Some(0)]);
        let cat = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(vec!["a", "b"]))).unwrap();
        let b = RecordBatch::try_from_iter([
            ("price", Arc::new(Float64Array::from(vec![Some(373.781), None, Some(-0.5), Some(12.0)])) as ArrayRef),
            ("z", Arc::new(Float64Array::from(vec![Some(0.142928), Some(-1.5), None, Some(3.0)])) as ArrayRef),
            ("pi", Arc::new(Float64Array::from(vec![Some(std::f64::consts::PI), Some(1.0), None, None])) as ArrayRef),
            ("negzero", Arc::new(Float64Array::from(vec![Some(-0.0), Some(1.0), None, None])) as ArrayRef),
            ("huge", Arc::new(Float64Array::from(vec![Some(1e15), Some(1.0), None, None])) as ArrayRef),
            ("t", Arc::new(TimestampMillisecondArray::from(vec![Some(1_600_000_000_000), None, Some(0), Some(-86_400_000)])) as ArrayRef),
            ("t_ms", Arc::new(TimestampMillisecondArray::from(vec![Some(1_600_000_000_001), None, None, None])) as ArrayRef),
            ("cat", Arc::new(cat) as ArrayRef),
        ])
        .unwrap();
        let schema = b.schema();
        let n = narrow(b.clone()).unwrap();
        let stored = n.schema();
        let types: Vec<&DataType> = stored.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types[0], &DataType::Int32, "373.781 needs 3 digits: 373781");
        assert_eq!(decimal_scale(stored.field(0)), Some(1e3));
        assert_eq!(types[1], &DataType::Int32);
        assert_eq!(decimal_scale(stored.field(1)), Some(1e6));
        assert_eq!(types[2], &DataType::Float64, "pi has no short decimal form");
        assert_eq!(types[3], &DataType::Float64, "-0.0 would come back as +0.0");
        assert_eq!(types[4], &DataType::Float64, "1e15 does not fit 32 bits");
        assert_eq!(types[5], &DataType::Int32);
        assert!(is_time_seconds(stored.field(5)));
        assert_eq!(types[6], &DataType::Timestamp(TimeUnit::Millisecond, None), "milliseconds are kept");
        assert_eq!(types[7], &DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)));
        assert!(n.get_array_memory_size() < b.get_array_memory_size());
        let back = widen(&n, &schema).unwrap();
        for (i, (x, y)) in back.columns().iter().zip(b.columns()).enumerate() {
            assert_eq!(x.to_data(), y.to_data(), "column {i} changed");
        }
        let bits = |c: &ArrayRef| c.as_primitive::<Float64Type>().values().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.column(0))[0], 373.781f64.to_bits());
        assert_eq!(bits(back.column(1))[0], 0.142928f64.to_bits());
    }

    #[test]
    fn decimals_are_stored_as_unscaled_integers_and_come_back_exactly() {
        use arrow::array::Decimal128Array;
        let exact = |values: Vec<Option<i128>>, p: u8, s: i8| Decimal128Array::from(values).with_precision_and_scale(p, s).unwrap();
        let wide = 10i128.pow(37) + 7; // needs 38 digits: more than 64 bits
        let b = RecordBatch::try_from_iter([
            ("price", Arc::new(exact(vec![Some(12_345), None, Some(-5), Some(0)], 10, 2)) as ArrayRef),
            ("amount", Arc::new(exact(vec![Some(i128::from(i64::MAX)), Some(i128::from(i64::MIN)), None, Some(1)], 22, 1)) as ArrayRef),
            ("wide", Arc::new(exact(vec![Some(wide), Some(-wide), None, Some(3)], 38, 18)) as ArrayRef),
            ("none", Arc::new(exact(vec![None, None, None, None], 38, 0)) as ArrayRef),
        ])
        .unwrap();
        let n = narrow(b.clone()).unwrap();
        let stored = n.schema();
        let types: Vec<&DataType> = stored.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types, vec![&DataType::Int16, &DataType::Int64, &DataType::Decimal128(38, 18), &DataType::Int8]);
        assert_eq!(decimal_unscaled(stored.field(0)), Some(2));
        assert_eq!(decimal_unscaled(stored.field(2)), None, "38 digits stay 128-bit decimals");
        let back = widen(&n, &b.schema()).unwrap();
        assert_eq!(back, b, "values, precision and scale come back");
    }

    proptest::proptest! {
        #[test]
        fn scaled_reals_round_trip_bit_for_bit(values in proptest::collection::vec(proptest::option::of(-1e6f64..1e6), 1..50), digits in 0usize..7) {
            // Values as CSV text gives them: rounded to a number of digits, then parsed.
            let reals: Float64Array = values.iter().map(|v| v.map(|x| format!("{x:.digits$}").parse::<f64>().unwrap())).collect();
            let b = RecordBatch::try_from_iter([("x", Arc::new(reals) as ArrayRef)]).unwrap();
            let back = widen(&narrow(b.clone()).unwrap(), &b.schema()).unwrap();
            let bits = |c: &ArrayRef| {
                let a = c.as_primitive::<Float64Type>();
                (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_bits())).collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(bits(back.column(0)), bits(b.column(0)));
        }
    }
}
