//! Column summaries as a map-reduce: each worker folds its chunks into partials (rayon),
//! partials merge associatively (Chan et al.'s update for mean and variance), and the caller
//! finalises them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How many of a categorical column's most frequent levels a summary lists.
pub const TOP_LEVELS: usize = 10;

/// The mergeable state of one column. Like H2O's rollups, NaN counts as missing and the
/// infinities are counted apart: min, max, mean and sd are over the finite values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnPartial {
    /// Present finite values (all present values of categorical and text columns).
    pub count: u64,
    /// Missing values (NaN included).
    pub missing: u64,
    /// Values that are +infinity.
    pub positive_infinities: u64,
    /// Values that are -infinity.
    pub negative_infinities: u64,
    /// Smallest finite value (numeric, time, boolean); `None` before any value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Values equal to zero.
    pub zeros: u64,
    /// Counts per level (categorical columns only).
    pub levels: BTreeMap<String, u64>,
}

impl Default for ColumnPartial {
    fn default() -> Self {
        Self {
            count: 0,
            missing: 0,
            positive_infinities: 0,
            negative_infinities: 0,
            min: None,
            max: None,
            mean: 0.0,
            m2: 0.0,
            zeros: 0,
            levels: BTreeMap::new(),
        }
    }
}

impl ColumnPartial {
    /// One value at a time with a running mean (Welford): the oracle the batch fold is tested
    /// against.
    #[cfg(test)]
    fn push(&mut self, x: f64) {
        if !x.is_finite() {
            match x {
                f64::INFINITY => self.positive_infinities += 1,
                f64::NEG_INFINITY => self.negative_infinities += 1,
                _ => self.missing += 1,
            }
            return;
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = min_of(self.min, Some(x));
        self.max = max_of(self.max, Some(x));
        if x == 0.0 {
            self.zeros += 1;
        }
    }

    /// One batch's partial of a numeric column from its finite values' moments in stored
    /// units (`bounds`: min and max; `m2`: squared deviations from `mean`), in logical units: a
    /// scale moves min, max and mean by its factor, the squared deviations by its square.
    fn of_batch(unit: Unit, count: u64, bounds: (f64, f64), mean: f64, m2: f64, zeros: u64) -> ColumnPartial {
        let seen = count > 0;
        ColumnPartial {
            count,
            min: seen.then(|| unit.apply(bounds.0)),
            max: seen.then(|| unit.apply(bounds.1)),
            mean: unit.apply(mean),
            m2: unit.apply_squared(m2),
            zeros,
            ..ColumnPartial::default()
        }
    }

    /// Merges another partial of the same column.
    pub fn merge(mut self, other: ColumnPartial) -> ColumnPartial {
        let n = self.count + other.count;
        if n > 0 && other.count > 0 {
            let delta = other.mean - self.mean;
            let (na, nb) = (self.count as f64, other.count as f64);
            self.mean += delta * nb / n as f64;
            self.m2 += other.m2 + delta * delta * na * nb / n as f64;
        }
        self.count = n;
        self.missing += other.missing;
        self.positive_infinities += other.positive_infinities;
        self.negative_infinities += other.negative_infinities;
        self.min = min_of(self.min, other.min);
        self.max = max_of(self.max, other.max);
        self.zeros += other.zeros;
        for (k, v) in other.levels {
            *self.levels.entry(k).or_default() += v;
        }
        self
    }
}

/// The smaller of two optional values (`None` = no value yet).
pub(crate) fn min_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The larger of two optional values.
pub(crate) fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// How a column's stored numbers become its logical values.
#[derive(Clone, Copy)]
enum Unit {
    /// As stored.
    Same,
    /// Divided by this (decimals stored as scaled integers, time ticks finer than a millisecond).
    Divide(f64),
    /// Multiplied by this (dates as days, times as seconds, both to milliseconds).
    Multiply(f64),
}

impl Unit {
    #[inline]
    fn apply(self, v: f64) -> f64 {
        match self {
            Unit::Same => v,
            Unit::Divide(d) => v / d,
            Unit::Multiply(m) => v * m,
        }
    }

    /// A sum of squared deviations in stored units, in logical units.
    fn apply_squared(self, m2: f64) -> f64 {
        match self {
            Unit::Same => m2,
            Unit::Divide(d) => m2 / (d * d),
            Unit::Multiply(m) => m2 * (m * m),
        }
    }
}

/// How the stored numbers of a column become logical values (times in epoch milliseconds);
/// `None` for columns that are not numeric, time or boolean.
fn unit_of(field: &Field, data_type: &DataType) -> Option<Unit> {
    Some(match data_type {
        DataType::Int64 | DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::Float64 | DataType::Float32 => {
            // Columns are stored narrow where their values allow (narrow.rs): integers in fewer
            // bits, decimals as scaled integers, whole-second times as 32-bit seconds.
            let unscaled = crate::store::narrow::decimal_unscaled(field).map(|s| 10f64.powi(i32::from(s)));
            match crate::store::narrow::decimal_scale(field).or(unscaled) {
                Some(s) => Unit::Divide(s),
                None if crate::store::narrow::is_time_seconds(field) => Unit::Multiply(1000.0),
                None => Unit::Same,
            }
        }
        // Decimals too wide for 64-bit storage summarise as the nearest reals (as Spark's describe()).
        DataType::Decimal128(_, s) => Unit::Divide(10f64.powi(i32::from(*s))),
        // Times summarise in milliseconds since the epoch, whatever their unit.
        DataType::Timestamp(unit, _) => match crate::store::narrow::per_second(*unit) {
            1000 => Unit::Same,
            per_second => Unit::Divide(per_second as f64 / 1000.0),
        },
        DataType::Date32 => Unit::Multiply(86_400_000.0),
        DataType::Boolean => Unit::Same,
        _ => return None,
    })
}

/// Something run over the present values of a column as stored, as f64, as often as it needs
/// them (`values()` starts over): one dispatch on the column's type serves every such pass.
trait OverStoredNumbers {
    type Out;
    fn over<I: Iterator<Item = f64>>(self, values: impl Fn() -> I) -> Self::Out;
}

/// Runs `run` over the present values of a numeric, time or boolean column as stored
/// ([`unit_of`] tells how they become logical values); `None` for other columns.
fn over_stored_numbers<O: OverStoredNumbers>(array: &dyn Array, run: O) -> Option<O::Out> {
    fn primitive<T: arrow::datatypes::ArrowPrimitiveType, O: OverStoredNumbers>(
        array: &dyn Array,
        as_f64: impl Fn(T::Native) -> f64 + Copy,
        run: O,
    ) -> O::Out {
        let values = array.as_primitive::<T>();
        let stored = values.values();
        match values.nulls().filter(|n| n.null_count() > 0) {
            None => run.over(|| stored.iter().map(move |v| as_f64(*v))),
            Some(valid) => run.over(|| valid.valid_indices().map(move |i| as_f64(stored[i]))),
        }
    }
    Some(match array.data_type() {
        DataType::Int64 => primitive::<Int64Type, _>(array, |v| v as f64, run),
        DataType::Int32 => primitive::<Int32Type, _>(array, f64::from, run),
        DataType::Int16 => primitive::<Int16Type, _>(array, f64::from, run),
        DataType::Int8 => primitive::<Int8Type, _>(array, f64::from, run),
        DataType::Float64 => primitive::<Float64Type, _>(array, |v| v, run),
        DataType::Float32 => primitive::<Float32Type, _>(array, f64::from, run),
        DataType::Decimal128(_, _) => primitive::<Decimal128Type, _>(array, |v| v as f64, run),
        DataType::Timestamp(_, _) => {
            let ticks = arrow::compute::cast(array, &DataType::Int64).ok()?;
            primitive::<Int64Type, _>(ticks.as_ref(), |v| v as f64, run)
        }
        DataType::Date32 => primitive::<Date32Type, _>(array, f64::from, run),
        DataType::Boolean => run.over(|| array.as_boolean().iter().flatten().map(|v| f64::from(u8::from(v)))),
        _ => return None,
    })
}

/// One batch's moments of a numeric column, taken in two passes (sums, then squared
/// deviations from the batch's mean): no division per value, as a running mean needs, and
/// loops the compiler can keep in registers. Batches then merge as partials do.
#[derive(Clone, Copy)]
struct Moments {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    zeros: u64,
    positive_infinities: u64,
    negative_infinities: u64,
    not_numbers: u64,
}

impl Moments {
    // NaN bounds: `f64::min` and `f64::max` pass over them, so the first value needs no branch.
    const EMPTY: Moments = Moments {
        count: 0,
        sum: 0.0,
        min: f64::NAN,
        max: f64::NAN,
        zeros: 0,
        positive_infinities: 0,
        negative_infinities: 0,
        not_numbers: 0,
    };

    #[inline]
    fn push(&mut self, x: f64) {
        if x.is_finite() {
            self.count += 1;
            self.sum += x;
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.zeros += u64::from(x == 0.0);
        } else if x == f64::INFINITY {
            self.positive_infinities += 1;
        } else if x == f64::NEG_INFINITY {
            self.negative_infinities += 1;
        } else {
            self.not_numbers += 1;
        }
    }
}

/// The moments of a batch's values and their sum of squared deviations from its mean, in two
/// passes. The accumulators are values folded along, not state a closure borrows: borrowed,
/// they lived on the stack and every value paid a store and a load.
struct TwoPasses;

impl OverStoredNumbers for TwoPasses {
    type Out = (Moments, f64);

    fn over<I: Iterator<Item = f64>>(self, values: impl Fn() -> I) -> (Moments, f64) {
        let m = values().fold(Moments::EMPTY, |mut m, x| {
            m.push(x);
            m
        });
        if m.count < 2 {
            return (m, 0.0);
        }
        let mean = m.sum / m.count as f64;
        let m2 = values().fold(0.0, |m2, x| {
            let d = x - mean;
            if x.is_finite() {
                m2 + d * d
            } else {
                m2
            }
        });
        (m, m2)
    }
}

/// One batch's moments of a column stored as integers of up to 32 bits (most columns, once
/// stored narrow: integers, decimals as scaled integers, times as seconds), in one pass and
/// exactly: integer sums of the values and of their squares give the squared deviations
/// without a second pass or rounding (n·Σx² − (Σx)² fits an i128 for any batch).
#[derive(Clone, Copy)]
struct IntegerMoments {
    count: u64,
    sum: i64,
    squares: i128,
    min: i64,
    max: i64,
    zeros: u64,
}

impl IntegerMoments {
    const EMPTY: IntegerMoments = IntegerMoments { count: 0, sum: 0, squares: 0, min: i64::MAX, max: i64::MIN, zeros: 0 };

    #[inline]
    fn push(mut self, x: i64) -> Self {
        self.count += 1;
        self.sum += x;
        self.squares += i128::from(x * x);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.zeros += u64::from(x == 0);
        self
    }

    /// The present values of `values`: words of 64 all present (the usual case) run without a
    /// test per value.
    fn of<T: Copy + Into<i64>>(values: &[T], valid: Option<&arrow::buffer::NullBuffer>) -> Self {
        let Some(valid) = valid.filter(|v| v.null_count() > 0) else {
            return values.iter().fold(Self::EMPTY, |m, &x| m.push(x.into()));
        };
        let bits = valid.inner().bit_chunks();
        let mut m = Self::EMPTY;
        let mut start = 0;
        for word in bits.iter().chain(std::iter::once(bits.remainder_bits())) {
            let block = &values[start..(start + 64).min(values.len())];
            if word == u64::MAX {
                m = block.iter().fold(m, |m, &x| m.push(x.into()));
            } else {
                for (i, &x) in block.iter().enumerate() {
                    if word >> i & 1 == 1 {
                        m = m.push(x.into());
                    }
                }
            }
            start += 64;
            if start >= values.len() {
                break;
            }
        }
        m
    }

    /// As a partial, in logical units.
    fn partial(&self, unit: Unit) -> ColumnPartial {
        let n = self.count as f64;
        let m2 = if self.count > 1 {
            (i128::from(self.count as i64) * self.squares - i128::from(self.sum) * i128::from(self.sum)) as f64 / n
        } else {
            0.0
        };
        let mean = if self.count > 0 { self.sum as f64 / n } else { 0.0 };
        ColumnPartial::of_batch(unit, self.count, (self.min as f64, self.max as f64), mean, m2, self.zeros)
    }
}

/// The moments of a batch of a column stored as integers of up to 32 bits; `None` for others.
fn integer_moments(array: &dyn Array) -> Option<IntegerMoments> {
    fn of<T: arrow::datatypes::ArrowPrimitiveType>(array: &dyn Array) -> IntegerMoments
    where
        T::Native: Into<i64>,
    {
        let values = array.as_primitive::<T>();
        IntegerMoments::of(values.values(), values.nulls())
    }
    Some(match array.data_type() {
        DataType::Int32 => of::<Int32Type>(array),
        DataType::Int16 => of::<Int16Type>(array),
        DataType::Int8 => of::<Int8Type>(array),
        DataType::Date32 => of::<Date32Type>(array),
        _ => return None,
    })
}

/// Folds a numeric, time or boolean column of one batch into `p`; false for other columns.
/// The moments are taken over the stored numbers (in one integer pass, or two passes over
/// reals), then become logical values.
fn fold_numbers(field: &Field, array: &dyn Array, p: &mut ColumnPartial) -> bool {
    let Some(unit) = unit_of(field, array.data_type()) else {
        return false;
    };
    if let Some(m) = integer_moments(array) {
        *p = std::mem::take(p).merge(m.partial(unit));
        return true;
    }
    let Some((m, m2)) = over_stored_numbers(array, TwoPasses) else {
        return false;
    };
    let mean = if m.count > 0 { m.sum / m.count as f64 } else { 0.0 };
    let batch = ColumnPartial {
        missing: m.not_numbers,
        positive_infinities: m.positive_infinities,
        negative_infinities: m.negative_infinities,
        ..ColumnPartial::of_batch(unit, m.count, (m.min, m.max), mean, m2, m.zeros)
    };
    *p = std::mem::take(p).merge(batch);
    true
}

fn fold_array(field: &Field, array: &dyn Array, p: &mut ColumnPartial) {
    p.missing += array.null_count() as u64;
    if fold_numbers(field, array, p) {
        return;
    }
    match array.data_type() {
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let values = dict.values().as_string::<i32>();
            let counts = level_counts(dict.keys(), values.len());
            for (i, c) in counts.into_iter().enumerate().filter(|(_, c)| *c > 0) {
                p.count += c;
                *p.levels.entry(values.value(i).to_string()).or_default() += c;
            }
        }
        _ => p.count += (array.len() - array.null_count()) as u64,
    }
}

/// Rows per dictionary entry of a categorical column's keys: counted on the typed keys
/// directly, then the missing rows taken back out (their keys are arbitrary; keys out of
/// range count nowhere).
fn level_counts(keys: &dyn Array, entries: usize) -> Vec<u64> {
    fn count<T: arrow::datatypes::ArrowPrimitiveType>(keys: &dyn Array, entries: usize) -> Vec<u64> {
        let keys = keys.as_primitive::<T>();
        // One slot past the entries catches keys out of range, which are counted nowhere.
        let mut counts = vec![0u64; entries + 1];
        let slot = |k: T::Native| arrow::datatypes::ArrowNativeType::to_usize(k).unwrap_or(entries).min(entries);
        for &k in keys.values().iter() {
            counts[slot(k)] += 1;
        }
        if let Some(valid) = keys.nulls().filter(|n| n.null_count() > 0) {
            for row in (0..keys.len()).filter(|&r| valid.is_null(r)) {
                counts[slot(keys.values()[row])] -= 1;
            }
        }
        counts.truncate(entries);
        counts
    }
    match keys.data_type() {
        DataType::Int8 => count::<Int8Type>(keys, entries),
        DataType::Int16 => count::<Int16Type>(keys, entries),
        DataType::Int32 => count::<Int32Type>(keys, entries),
        DataType::UInt8 => count::<arrow::datatypes::UInt8Type>(keys, entries),
        DataType::UInt16 => count::<arrow::datatypes::UInt16Type>(keys, entries),
        DataType::UInt32 => count::<arrow::datatypes::UInt32Type>(keys, entries),
        DataType::UInt64 => count::<arrow::datatypes::UInt64Type>(keys, entries),
        _ => count::<Int64Type>(keys, entries),
    }
}

/// Folds batches into one partial per column: batches in parallel, merged in their order, so
/// that the same batches always give the same bits (a parallel reduce's tree depends on
/// work stealing, and floating-point merges on their order).
pub fn partials(batches: &[&RecordBatch], num_columns: usize) -> Vec<ColumnPartial> {
    let per_batch: Vec<Vec<ColumnPartial>> = batches
        .par_iter()
        .map(|b| {
            (0..num_columns)
                .map(|c| {
                    let mut p = ColumnPartial::default();
                    fold_array(b.schema_ref().field(c), b.column(c).as_ref(), &mut p);
                    p
                })
                .collect::<Vec<_>>()
        })
        .collect();
    per_batch.into_iter().fold(vec![ColumnPartial::default(); num_columns], merge_all)
}

/// One list of partials per chunk, chunks in parallel (each folded as [`partials`] does).
pub fn partials_by_chunk(chunks: &[(u32, Vec<&RecordBatch>)], num_columns: usize) -> Vec<(u32, Vec<ColumnPartial>)> {
    chunks.par_iter().map(|(index, batches)| (*index, partials(batches, num_columns))).collect()
}

/// Merges two lists of column partials.
pub fn merge_all(a: Vec<ColumnPartial>, b: Vec<ColumnPartial>) -> Vec<ColumnPartial> {
    a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect()
}

impl From<ColumnPartial> for eddy_proto::v1::ColumnPartial {
    fn from(p: ColumnPartial) -> Self {
        Self {
            count: p.count,
            missing: p.missing,
            min: p.min,
            max: p.max,
            mean: p.mean,
            m2: p.m2,
            zeros: p.zeros,
            positive_infinities: p.positive_infinities,
            negative_infinities: p.negative_infinities,
            levels: p.levels.into_iter().collect(),
        }
    }
}

impl From<eddy_proto::v1::ColumnPartial> for ColumnPartial {
    fn from(p: eddy_proto::v1::ColumnPartial) -> Self {
        Self {
            count: p.count,
            missing: p.missing,
            min: p.min,
            max: p.max,
            mean: p.mean,
            m2: p.m2,
            zeros: p.zeros,
            positive_infinities: p.positive_infinities,
            negative_infinities: p.negative_infinities,
            levels: p.levels.into_iter().collect(),
        }
    }
}

/// Most bins a histogram may ask for.
pub const MAX_BINS: usize = 1000;

/// Bins a summary's histograms have unless the caller asks otherwise.
pub const DEFAULT_BINS: usize = 20;

/// Bins of one column's histogram: where they start, how wide they are, how many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinSpec {
    /// Index of the column in the frame.
    pub column: usize,
    /// Lower edge of the first bin.
    pub start: f64,
    /// Width of every bin.
    pub width: f64,
    /// Number of bins.
    pub bins: usize,
}

impl BinSpec {
    /// Equal-width bins over `[min, max]`: at most `max_bins`, one per value for integer
    /// columns with fewer distinct values than that (so a 0/1 column gets two bars, not 20).
    /// `None` for columns without finite values.
    pub fn for_column(column: usize, column_type: &str, p: &ColumnPartial, max_bins: usize) -> Option<BinSpec> {
        let (min, max) = (p.min?, p.max?);
        if max_bins == 0 || !matches!(column_type, "int" | "real" | "time" | "bool") {
            return None;
        }
        let range = max - min;
        let integral = matches!(column_type, "int" | "bool");
        if integral && range < max_bins as f64 {
            return Some(BinSpec { column, start: min, width: 1.0, bins: range as usize + 1 });
        }
        if range <= 0.0 {
            return Some(BinSpec { column, start: min, width: 1.0, bins: 1 });
        }
        Some(BinSpec { column, start: min, width: range / max_bins as f64, bins: max_bins })
    }

    /// The bin of a value, `None` outside the bins (infinities, or values of another pass).
    #[inline]
    fn bin_of(&self, x: f64) -> Option<usize> {
        let t = (x - self.start) / self.width;
        // Refuses NaN too; for `t >= 0` truncation is the floor: a call to libm's `floor` per
        // value had cost more than the rest of the histogram pass.
        if t.is_nan() || t < 0.0 {
            return None;
        }
        let i = t as usize;
        if i < self.bins {
            return Some(i);
        }
        // The largest value sits on the last bin's upper edge: count it in that bin.
        (i == self.bins && x <= self.start + self.width * self.bins as f64).then(|| i - 1)
    }
}

/// Counts the present values of one column of a batch into its bins, in logical units.
struct Binning<'a> {
    spec: &'a BinSpec,
    unit: Unit,
    counts: &'a mut [u64],
}

impl OverStoredNumbers for Binning<'_> {
    type Out = ();

    fn over<I: Iterator<Item = f64>>(self, values: impl Fn() -> I) {
        let Binning { spec, unit, counts } = self;
        for x in values() {
            if let Some(i) = spec.bin_of(unit.apply(x)) {
                counts[i] += 1;
            }
        }
    }
}

/// Counts per bin of each requested column over `batches` (batches in parallel).
pub fn bin_counts(batches: &[&RecordBatch], specs: &[BinSpec]) -> Vec<Vec<u64>> {
    let empty = || specs.iter().map(|s| vec![0u64; s.bins]).collect::<Vec<_>>();
    batches
        .par_iter()
        .map(|b| {
            let mut counts = empty();
            for (spec, counts) in specs.iter().zip(counts.iter_mut()) {
                if spec.column >= b.num_columns() {
                    continue;
                }
                let (field, array) = (b.schema_ref().field(spec.column), b.column(spec.column).as_ref());
                if let Some(unit) = unit_of(field, array.data_type()) {
                    over_stored_numbers(array, Binning { spec, unit, counts });
                }
            }
            counts
        })
        .reduce(empty, add_counts)
}

/// Adds two lists of bin counts, column by column.
pub fn add_counts(a: Vec<Vec<u64>>, b: Vec<Vec<u64>>) -> Vec<Vec<u64>> {
    a.into_iter().zip(b).map(|(x, y)| x.into_iter().zip(y).map(|(p, q)| p + q).collect()).collect()
}

/// A column's histogram as `GET /3/Frames/{id}/summary` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    /// Lower edge of the first bin (time: epoch milliseconds).
    pub start: f64,
    /// Width of every bin.
    pub width: f64,
    /// Finite values per bin.
    pub counts: Vec<u64>,
}

/// A finished column summary (what `GET /3/Frames/{id}/summary` shows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnSummary {
    /// Column name.
    pub label: String,
    /// Column type (int, real, bool, time, enum, string).
    #[serde(rename = "type")]
    pub column_type: String,
    /// Present values (infinities included).
    pub count: u64,
    /// Missing values (NaN included).
    pub missing: u64,
    /// Values that are +infinity (not in min, max, mean and sd).
    pub positive_infinities: u64,
    /// Values that are -infinity.
    pub negative_infinities: u64,
    /// Smallest finite value (time: epoch milliseconds).
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub sd: Option<f64>,
    /// Values equal to zero.
    pub zeros: u64,
    /// Number of levels (categorical columns).
    pub cardinality: Option<u64>,
    /// Most frequent levels with their counts, most frequent first.
    pub top_levels: Vec<(String, u64)>,
    /// Equal-width histogram of the finite values (numeric, time and boolean columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// Finalises a partial.
pub fn finish(label: &str, column_type: &str, p: &ColumnPartial) -> ColumnSummary {
    let numeric = matches!(column_type, "int" | "real" | "time" | "bool") && p.count > 0;
    let mut top: Vec<(String, u64)> = p.levels.iter().map(|(k, v)| (k.clone(), *v)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP_LEVELS);
    ColumnSummary {
        label: label.to_string(),
        column_type: column_type.to_string(),
        count: p.count + p.positive_infinities + p.negative_infinities,
        missing: p.missing,
        positive_infinities: p.positive_infinities,
        negative_infinities: p.negative_infinities,
        min: if numeric { p.min } else { None },
        max: if numeric { p.max } else { None },
        mean: numeric.then_some(p.mean),
        sd: (numeric && p.count > 1).then(|| (p.m2 / (p.count - 1) as f64).sqrt()),
        zeros: p.zeros,
        cardinality: (column_type == "enum").then_some(p.levels.len() as u64),
        top_levels: top,
        histogram: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn merging_matches_one_pass(xs in proptest::collection::vec(-1e6f64..1e6, 2..200), cut in 0usize..200) {
            let cut = cut.min(xs.len());
            let mut whole = ColumnPartial::default();
            xs.iter().for_each(|x| whole.push(*x));
            let (mut a, mut b) = (ColumnPartial::default(), ColumnPartial::default());
            xs[..cut].iter().for_each(|x| a.push(*x));
            xs[cut..].iter().for_each(|x| b.push(*x));
            let merged = a.merge(b);
            prop_assert_eq!(merged.count, whole.count);
            prop_assert!((merged.mean - whole.mean).abs() <= 1e-6 * (1.0 + whole.mean.abs()));
            prop_assert!((merged.m2 - whole.m2).abs() <= 1e-6 * (1.0 + whole.m2.abs()));
            prop_assert_eq!(merged.min, whole.min);
            prop_assert_eq!(merged.max, whole.max);
        }
    }

    proptest! {
        #[test]
        fn batches_fold_as_values_one_at_a_time(
            xs in proptest::collection::vec(prop_oneof![8 => -1e6f64..1e6, 1 => Just(0.0), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)], 0..300),
            cut in 0usize..300,
        ) {
            use arrow::array::{ArrayRef, Float64Array};
            use std::sync::Arc;
            let cut = cut.min(xs.len());
            let mut one_at_a_time = ColumnPartial::default();
            xs.iter().for_each(|x| one_at_a_time.push(*x));
            let batch = |v: &[f64]| RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(v.to_vec())) as ArrayRef)]).unwrap();
            let (a, b) = (batch(&xs[..cut]), batch(&xs[cut..]));
            let folded = partials(&[&a, &b], 1).remove(0);
            prop_assert_eq!((folded.count, folded.missing, folded.zeros), (one_at_a_time.count, one_at_a_time.missing, one_at_a_time.zeros));
            prop_assert_eq!((folded.positive_infinities, folded.min, folded.max), (one_at_a_time.positive_infinities, one_at_a_time.min, one_at_a_time.max));
            prop_assert!((folded.mean - one_at_a_time.mean).abs() <= 1e-6 * (1.0 + one_at_a_time.mean.abs()));
            prop_assert!((folded.m2 - one_at_a_time.m2).abs() <= 1e-6 * (1.0 + one_at_a_time.m2.abs()));
        }
    }

    proptest! {
        #[test]
        fn narrow_integers_fold_as_their_values_one_at_a_time(
            xs in proptest::collection::vec(prop_oneof![6 => any::<i32>(), 2 => -3i32..3, 1 => Just(0)], 0..300),
            missing in proptest::collection::vec(any::<bool>(), 300),
            cut in 0usize..300,
        ) {
            use arrow::array::{ArrayRef, Int16Array, Int32Array};
            use std::sync::Arc;
            let cut = cut.min(xs.len());
            let cells: Vec<Option<i32>> = xs.iter().zip(&missing).map(|(x, m)| (!m).then_some(*x)).collect();
            let mut one_at_a_time = ColumnPartial::default();
            cells.iter().for_each(|x| match x { Some(x) => one_at_a_time.push(f64::from(*x)), None => one_at_a_time.missing += 1 });
            let ints = |v: &[Option<i32>]| RecordBatch::try_from_iter([("x", Arc::new(Int32Array::from(v.to_vec())) as ArrayRef)]).unwrap();
            let (a, b) = (ints(&cells[..cut]), ints(&cells[cut..]));
            let shorts: Vec<Option<i16>> = cells.iter().map(|x| x.map(|x| x as i16)).collect();
            let mut short_one_at_a_time = ColumnPartial::default();
            shorts.iter().for_each(|x| match x { Some(x) => short_one_at_a_time.push(f64::from(*x)), None => short_one_at_a_time.missing += 1 });
            let short = RecordBatch::try_from_iter([("x", Arc::new(Int16Array::from(shorts.clone())) as ArrayRef)]).unwrap();
            for (folded, want) in [(partials(&[&a, &b], 1).remove(0), one_at_a_time), (partials(&[&short], 1).remove(0), short_one_at_a_time)] {
                prop_assert_eq!((folded.count, folded.missing, folded.zeros), (want.count, want.missing, want.zeros));
                prop_assert_eq!((folded.min, folded.max), (want.min, want.max));
                prop_assert!((folded.mean - want.mean).abs() <= 1e-9 * (1.0 + want.mean.abs()));
                prop_assert!((folded.m2 - want.m2).abs() <= 1e-9 * (1.0 + want.m2.abs()), "{} against {}", folded.m2, want.m2);
            }
        }
    }

    proptest! {
        #[test]
        fn bins_are_those_of_the_floor_formula(
            start in -1e6f64..1e6, width in 1e-3f64..1e4, bins in 1usize..1000,
            x in prop_oneof![4 => -2e6f64..2e7, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY), 1 => Just(f64::NEG_INFINITY)],
            edge in 0usize..1001,
        ) {
            let spec = BinSpec { column: 0, start, width, bins };
            // The formula with `floor` the histograms used before, as the oracle.
            let floor_formula = |x: f64| {
                let i = ((x - start) / width).floor();
                let i = if i as usize == bins && x <= start + width * bins as f64 { i - 1.0 } else { i };
                (i >= 0.0 && i < bins as f64).then_some(i as usize)
            };
            // Values on the bins' edges too, the upper end included.
            let on_edge = start + width * edge.min(bins) as f64;
            prop_assert_eq!(spec.bin_of(x), floor_formula(x));
            prop_assert_eq!(spec.bin_of(on_edge), floor_formula(on_edge));
        }
    }

    #[test]
    fn levels_are_counted_without_the_missing_rows() {
        use arrow::array::{ArrayRef, DictionaryArray, StringArray, UInt16Array};
        use arrow::datatypes::{Int8Type, UInt16Type};
        use std::sync::Arc;
        let signed: DictionaryArray<Int8Type> = vec![Some("a"), None, Some("b"), Some("a"), None].into_iter().collect();
        // A missing row whose key points at a real entry must not count for it.
        let unsigned = DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::from(vec![Some(1), Some(0), None, Some(1)]),
            Arc::new(StringArray::from(vec!["b", "a", "unused"])),
        )
        .unwrap();
        let batch = |d: ArrayRef| RecordBatch::try_from_iter([("c", d)]).unwrap();
        let (a, b) = (batch(Arc::new(signed)), batch(Arc::new(unsigned)));
        let p = partials(&[&a, &b], 1).remove(0);
        assert_eq!((p.count, p.missing), (6, 3));
        assert_eq!(p.levels, BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 2)]));
    }

    #[test]
    fn nan_is_missing_and_infinities_are_counted_apart() {
        let mut p = ColumnPartial::default();
        for x in [1.0, f64::NAN, f64::INFINITY, 3.0, f64::NEG_INFINITY, f64::INFINITY] {
            p.push(x);
        }
        // Through the wire form, as partials travel between nodes.
        let p = ColumnPartial::from(eddy_proto::v1::ColumnPartial::from(p.merge(ColumnPartial::default())));
        let s = finish("x", "real", &p);
        assert_eq!((s.count, s.missing, s.positive_infinities, s.negative_infinities), (5, 1, 2, 1));
        assert_eq!((s.min, s.max, s.mean), (Some(1.0), Some(3.0), Some(2.0)));
        assert!(serde_json::to_string(&s).unwrap().contains("\"mean\":2.0"));
    }

    #[test]
    fn decimals_summarise_as_their_values_in_either_storage() {
        use arrow::array::{ArrayRef, Decimal128Array};
        use std::sync::Arc;
        let column = |values: Vec<Option<i128>>, p: u8, s: i8| {
            Arc::new(Decimal128Array::from(values).with_precision_and_scale(p, s).unwrap()) as ArrayRef
        };
        let b = RecordBatch::try_from_iter([
            ("narrow", column(vec![Some(150), None, Some(-50), Some(0)], 10, 2)),
            ("wide", column(vec![Some(10i128.pow(30)), Some(0), None, None], 38, 28)),
        ])
        .unwrap();
        let stored = crate::store::narrow::narrow(b).unwrap();
        let p = partials(&[&stored], 2);
        let narrow = finish("narrow", "real", &p[0]);
        assert_eq!((narrow.count, narrow.missing, narrow.zeros), (3, 1, 1));
        assert_eq!((narrow.min, narrow.max, narrow.mean), (Some(-0.5), Some(1.5), Some(1.0 / 3.0)));
        let wide = finish("wide", "real", &p[1]);
        assert_eq!((wide.min, wide.max, wide.count), (Some(0.0), Some(100.0), 2));
    }

    #[test]
    fn histograms_count_every_finite_value_once() {
        use arrow::array::{ArrayRef, Float64Array, Int64Array};
        use std::sync::Arc;
        let reals: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).chain([f64::NAN, f64::INFINITY]).collect();
        let ints: Vec<i64> = (0..1002).map(|i| i % 3).collect();
        let b = RecordBatch::try_from_iter([
            ("x", Arc::new(Float64Array::from(reals)) as ArrayRef),
            ("k", Arc::new(Int64Array::from(ints)) as ArrayRef),
        ])
        .unwrap();
        let p = partials(&[&b, &b], 2);
        let x = BinSpec::for_column(0, "real", &p[0], 20).unwrap();
        let k = BinSpec::for_column(1, "int", &p[1], 20).unwrap();
        assert_eq!((k.start, k.width, k.bins), (0.0, 1.0, 3));
        let counts = bin_counts(&[&b, &b], &[x, k]);
        assert_eq!(counts[0].len(), 20);
        assert_eq!(counts[0].iter().sum::<u64>(), 2000, "every finite value, the maximum included");
        assert!(counts[0].iter().all(|c| *c == 100), "{:?}", counts[0]);
        assert_eq!(counts[1], vec![668, 668, 668]);
        assert_eq!(BinSpec::for_column(0, "enum", &p[0], 20), None);
    }

    #[test]
    fn sd_is_the_sample_standard_deviation() {
        let mut p = ColumnPartial::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            p.push(x);
        }
        let s = finish("x", "real", &p);
        assert_eq!(s.mean, Some(5.0));
        assert!((s.sd.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }
}
