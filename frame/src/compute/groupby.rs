//! Group-by as a map-reduce: every worker folds its chunks into a table of partial groups
//! (rayon over batches), the caller merges the workers' tables and builds the result frame.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray, UInt64Array};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast, concat_batches, lexsort_to_indices, sort_to_indices, take_record_batch, SortColumn, SortOptions};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{FrameError, FrameResult};

/// An aggregate function.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AggOp {
    /// Rows in the group (with a column: its present values).
    Count,
    /// Sum.
    Sum,
    /// Mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
}

/// One aggregate of a group-by request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Agg {
    /// The function.
    pub op: AggOp,
    /// The column it reads.
    pub column: String,
}

/// `POST /3/Frames/{id}/groupby`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct GroupByRequest {
    /// Columns to group by.
    pub by: Vec<String>,
    /// Aggregates to compute per group.
    pub aggs: Vec<Agg>,
    /// Id of the result frame [default: `<frame>_by_<columns>`].
    #[serde(default)]
    pub destination_frame: Option<String>,
    /// Copies of each chunk of the result, on distinct workers [default: the cloud's `--replicas`]; 2 keeps it through the loss of a worker.
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// What a group-by reads and keeps, worked out from the frame's schema and the request alike
/// on every node: the key columns, the aggregated columns (each once, however many aggregates
/// read it) and which keys are integers (kept as themselves; other keys are kept as text).
#[derive(Debug, Clone)]
pub struct Plan {
    by: Vec<usize>,
    columns: Vec<usize>,
    agg_column: Vec<usize>,
    key_is_int: Vec<bool>,
}

impl Plan {
    /// `by` and `aggs`: column indices of the frame (see [`indices`]).
    pub fn new(schema: &Schema, by: &[usize], aggs: &[usize]) -> Plan {
        let mut columns: Vec<usize> = Vec::new();
        let agg_column = aggs
            .iter()
            .map(|a| {
                columns.iter().position(|c| c == a).unwrap_or_else(|| {
                    columns.push(*a);
                    columns.len() - 1
                })
            })
            .collect();
        let key_is_int = by.iter().map(|&i| is_int(schema.field(i).data_type())).collect();
        Plan { by: by.to_vec(), columns, agg_column, key_is_int }
    }

    /// Whether key column `k` (of `by`) is an integer, kept and returned as one.
    pub fn key_is_int(&self, k: usize) -> bool {
        self.key_is_int.get(k).copied().unwrap_or(false)
    }

    /// The table of partial groups that workers send and the caller merges: the key columns,
    /// `nrow`, then count, sum, min and max of each aggregated column (min and max NaN where
    /// the count is 0).
    pub fn partial_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .key_is_int
            .iter()
            .enumerate()
            .map(|(k, int)| Field::new(format!("key{k}"), if *int { DataType::Int64 } else { DataType::Utf8 }, true))
            .collect();
        fields.push(Field::new("nrow", DataType::UInt64, false));
        for c in 0..self.columns.len() {
            fields.push(Field::new(format!("count{c}"), DataType::UInt64, false));
            for what in ["sum", "min", "max"] {
                fields.push(Field::new(format!("{what}{c}"), DataType::Float64, false));
            }
        }
        Arc::new(Schema::new(fields))
    }

    fn width(&self) -> usize {
        self.columns.len()
    }
}

/// Aggregated column `c`'s count, sum, min and max in a table of partial groups whose keys
/// take `key_width` columns (see [`Plan::partial_schema`]).
fn partial_states(table: &RecordBatch, key_width: usize, c: usize) -> (&[u64], &[f64], &[f64], &[f64]) {
    let base = key_width + 1 + 4 * c;
    let f64s = |i: usize| &table.column(base + i).as_primitive::<Float64Type>().values()[..];
    (&table.column(base).as_primitive::<UInt64Type>().values()[..], f64s(1), f64s(2), f64s(3))
}

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// The running aggregate of one column in one group. Min and max start as NaN, which
/// `f64::min` and `f64::max` pass over, so a value is pushed without a branch on "first value
/// yet?"; NaN values count and enter the sum, as they do in the summary.
#[derive(Debug, Clone, Copy)]
struct FoldState {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl FoldState {
    const EMPTY: FoldState = FoldState { count: 0, sum: 0.0, min: f64::NAN, max: f64::NAN };

    #[inline]
    fn push(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    #[inline]
    fn merge(&mut self, o: &FoldState) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// Resolves column names to indices, with a clear error for unknown ones.
pub fn indices(names: &[String], wanted: &[String]) -> FrameResult<Vec<usize>> {
    wanted
        .iter()
        .map(|w| {
            names.iter().position(|n| n == w).ok_or_else(|| FrameError::InvalidArgument {
                what: "column",
                reason: format!("no column {w:?}; the frame has [{}]", names.join(", ")),
            })
        })
        .collect()
}

fn as_f64(array: &ArrayRef) -> FrameResult<Float64Array> {
    let source = match array.data_type() {
        DataType::Timestamp(_, _) => cast(array, &DataType::Int64)?,
        DataType::Dictionary(_, _) | DataType::Utf8 => {
            return Ok(Float64Array::from(vec![None::<f64>; array.len()]));
        }
        _ => array.clone(),
    };
    let values = cast(&source, &DataType::Float64)?;
    values
        .as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| FrameError::Internal { what: "group-by", reason: "a cast to f64 gave another type".into() })
}

/// A group's key cell as the fold keeps it: integers as themselves, anything else (level
/// text, reals, times, booleans) as the id of its text in the column's interner. Text is made
/// once per dictionary entry of a batch (categoricals) or per row (other types), never per
/// row and group as a `String` key would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cell {
    Null,
    Int(i64),
    Text(u32),
}

/// Texts of one key column, each stored once.
#[derive(Default)]
struct Interner {
    ids: hashbrown::HashMap<String, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        id
    }
}

/// Groups being folded: a hash table from key cells to a slot, and per slot the key cells,
/// the row count and one state per aggregated column (count, sum, min and max of one column
/// share a state), all flat: slot `s`, key column `k` at `s * key_width + k`, aggregated column
/// `c` at `s * columns + c`.
#[derive(Default)]
struct Partial {
    key_width: usize,
    /// One integer key column: value to slot.
    ints: hashbrown::HashMap<i64, u32>,
    /// One key column of another kind (and the missing key): cell to slot.
    single: hashbrown::HashMap<Cell, u32>,
    /// Several key columns.
    multi: hashbrown::HashMap<Vec<Cell>, u32>,
    keys: Vec<Cell>,
    rows: Vec<u64>,
    states: Vec<FoldState>,
    interners: Vec<Interner>,
    /// Scratch of the dense path: a batch's integer key minus its minimum, to slot.
    dense: Vec<u32>,
}

/// Above this many slots per row of a batch, an integer key's range is looked up by hash.
const DENSE_SLOTS_PER_ROW: usize = 2;
/// Ranges up to this many values always take the dense path.
const DENSE_MIN_RANGE: usize = 1 << 16;

/// A key column of one batch: each row's cell, or (categoricals) each row's dictionary entry
/// and each entry's cell, so a slot is looked up once per entry, not per row.
enum KeyColumn {
    Ints(arrow::array::Int64Array),
    Cells(Vec<Cell>),
    Entries { rows: Vec<Option<usize>>, cells: Vec<Cell> },
}

impl KeyColumn {
    fn cell(&self, row: usize) -> Cell {
        match self {
            KeyColumn::Ints(ints) => {
                if ints.is_valid(row) {
                    Cell::Int(ints.value(row))
                } else {
                    Cell::Null
                }
            }
            KeyColumn::Cells(cells) => cells[row],
            KeyColumn::Entries { rows, cells } => rows[row].and_then(|e| cells.get(e).copied()).unwrap_or(Cell::Null),
        }
    }
}

impl Partial {
    fn new(key_width: usize) -> Self {
        Partial { key_width, ..Default::default() }
    }

    fn groups(&self) -> usize {
        self.rows.len()
    }

    fn new_slot(&mut self, key: &[Cell], columns: usize) -> u32 {
        let slot = self.rows.len() as u32;
        self.keys.extend_from_slice(key);
        self.rows.push(0);
        self.states.extend(std::iter::repeat_n(FoldState::EMPTY, columns));
        slot
    }

    #[inline]
    fn int_slot(&mut self, v: i64, columns: usize) -> u32 {
        if let Some(&slot) = self.ints.get(&v) {
            return slot;
        }
        let slot = self.new_slot(&[Cell::Int(v)], columns);
        self.ints.insert(v, slot);
        slot
    }

    /// Each row's slot for one integer key column: where the batch's values span a range not
    /// much larger than the batch, through a table indexed by value (one hash lookup per
    /// distinct value), else one hash lookup per row.
    fn int_slots(&mut self, ints: &arrow::array::Int64Array, columns: usize) -> Vec<u32> {
        let values = ints.values();
        let null_slot = (ints.null_count() > 0).then(|| self.slot(&[Cell::Null], columns));
        let range = match (arrow::compute::min(ints), arrow::compute::max(ints)) {
            (Some(lo), Some(hi)) => hi.checked_sub(lo).and_then(|r| usize::try_from(r).ok()).map(|r| (lo, r + 1)),
            _ => None,
        };
        let dense_limit = (values.len() * DENSE_SLOTS_PER_ROW).max(DENSE_MIN_RANGE);
        let mut out = Vec::with_capacity(values.len());
        match range {
            Some((lo, width)) if width <= dense_limit => {
                let mut dense = std::mem::take(&mut self.dense);
                dense.clear();
                dense.resize(width, u32::MAX);
                for (row, &v) in values.iter().enumerate() {
                    let slot = match null_slot {
                        Some(n) if ints.is_null(row) => n,
                        _ => {
                            let d = &mut dense[(v - lo) as usize];
                            if *d == u32::MAX {
                                *d = self.int_slot(v, columns);
                            }
                            *d
                        }
                    };
                    out.push(slot);
                }
                self.dense = dense;
            }
            _ => {
                for (row, &v) in values.iter().enumerate() {
                    let slot = match null_slot {
                        Some(n) if ints.is_null(row) => n,
                        _ => self.int_slot(v, columns),
                    };
                    out.push(slot);
                }
            }
        }
        out
    }

    fn slot(&mut self, key: &[Cell], columns: usize) -> u32 {
        if let [Cell::Int(v)] = key {
            return self.int_slot(*v, columns);
        }
        if let [cell] = key {
            if let Some(&slot) = self.single.get(cell) {
                return slot;
            }
            let slot = self.new_slot(key, columns);
            self.single.insert(*cell, slot);
            return slot;
        }
        if let Some(&slot) = self.multi.get(key) {
            return slot;
        }
        let slot = self.new_slot(key, columns);
        self.multi.insert(key.to_vec(), slot);
        slot
    }

    /// Column `array` as key cells, interning text as needed.
    fn key_column(&mut self, column: usize, array: &ArrayRef) -> FrameResult<KeyColumn> {
        if self.interners.len() <= column {
            self.interners.resize_with(column + 1, Interner::default);
        }
        let interner = &mut self.interners[column];
        let options = FormatOptions::default();
        Ok(match array.data_type() {
            t if is_int(t) => KeyColumn::Ints(cast(array, &DataType::Int64)?.as_primitive::<Int64Type>().clone()),
            DataType::Dictionary(_, _) => {
                let dict = array.as_any_dictionary();
                let values = ArrayFormatter::try_new(dict.values().as_ref(), &options)?;
                // One text per dictionary entry, not per row.
                let cells = (0..dict.values().len()).map(|i| Cell::Text(interner.id(&values.value(i).to_string()))).collect();
                let valid = dict.keys();
                let rows = dict.normalized_keys().into_iter().enumerate().map(|(row, k)| valid.is_valid(row).then_some(k)).collect();
                KeyColumn::Entries { rows, cells }
            }
            // Text is its own formatting: interned as it is, without a copy per row.
            DataType::Utf8 => {
                KeyColumn::Cells(array.as_string::<i32>().iter().map(|t| t.map_or(Cell::Null, |t| Cell::Text(interner.id(t)))).collect())
            }
            _ => {
                let f = ArrayFormatter::try_new(array.as_ref(), &options)?;
                KeyColumn::Cells(
                    (0..array.len())
                        .map(|row| if array.is_valid(row) { Cell::Text(interner.id(&f.value(row).to_string())) } else { Cell::Null })
                        .collect(),
                )
            }
        })
    }

    /// Each row's slot.
    fn row_slots(&mut self, batch: &RecordBatch, by: &[usize], columns: usize) -> FrameResult<Vec<u32>> {
        let keys: Vec<KeyColumn> = by.iter().enumerate().map(|(c, &i)| self.key_column(c, batch.column(i))).collect::<FrameResult<_>>()?;
        if let [KeyColumn::Ints(ints)] = keys.as_slice() {
            return Ok(self.int_slots(ints, columns));
        }
        if let [KeyColumn::Entries { rows, cells }] = keys.as_slice() {
            let entry_slots: Vec<u32> = cells.iter().map(|c| self.slot(&[*c], columns)).collect();
            let null_slot = rows.iter().any(Option::is_none).then(|| self.slot(&[Cell::Null], columns));
            return Ok(rows.iter().map(|e| e.map_or(null_slot.unwrap_or(0), |e| entry_slots[e])).collect());
        }
        let mut key = vec![Cell::Null; by.len()];
        Ok((0..batch.num_rows())
            .map(|row| {
                for (k, column) in key.iter_mut().zip(&keys) {
                    *k = column.cell(row);
                }
                self.slot(&key, columns)
            })
            .collect())
    }

    /// Pushes each row's values of the aggregated columns into its slot's states.
    fn push_values(&mut self, slots: &[u32], values: &[Float64Array]) {
        let width = values.len();
        for &slot in slots {
            self.rows[slot as usize] += 1;
        }
        for (c, values) in values.iter().enumerate() {
            let raw = values.values();
            let states = &mut self.states[..];
            match values.nulls().filter(|n| n.null_count() > 0) {
                None => {
                    for (&slot, &x) in slots.iter().zip(raw.iter()) {
                        states[slot as usize * width + c].push(x);
                    }
                }
                Some(valid) => {
                    for row in valid.valid_indices() {
                        states[slots[row] as usize * width + c].push(raw[row]);
                    }
                }
            }
        }
    }

    fn add(mut self, batch: &RecordBatch, by: &[usize], columns: &[usize]) -> FrameResult<Self> {
        let slots = self.row_slots(batch, by, columns.len())?;
        let values = columns.iter().map(|&i| as_f64(batch.column(i))).collect::<FrameResult<Vec<_>>>()?;
        self.push_values(&slots, &values);
        Ok(self)
    }

    /// Takes in the groups `other` folded (another thread's): by key, text cells found by
    /// their text, so that threads never meet as text-keyed maps.
    fn absorb(self, other: Partial, width: usize) -> Partial {
        let (mut big, small) = if self.groups() >= other.groups() { (self, other) } else { (other, self) };
        if big.interners.len() < small.interners.len() {
            big.interners.resize_with(small.interners.len(), Interner::default);
        }
        let kw = small.key_width;
        let mut key = Vec::with_capacity(kw);
        for slot in 0..small.groups() {
            key.clear();
            for (c, cell) in small.keys[slot * kw..(slot + 1) * kw].iter().enumerate() {
                key.push(match cell {
                    Cell::Text(id) => Cell::Text(big.interners[c].id(&small.interners[c].texts[*id as usize])),
                    other => *other,
                });
            }
            let into = big.slot(&key, width) as usize;
            big.rows[into] += small.rows[slot];
            for c in 0..width {
                let from = small.states[slot * width + c];
                big.states[into * width + c].merge(&from);
            }
        }
        big
    }

    /// Takes in a table of partial groups (see [`Plan::partial_schema`]), another node's.
    fn absorb_table(&mut self, table: &RecordBatch, width: usize) -> FrameResult<()> {
        let by: Vec<usize> = (0..self.key_width).collect();
        let slots = self.row_slots(table, &by, width)?;
        self.merge_rows(table, slots.iter().copied().enumerate(), width);
        Ok(())
    }

    /// Takes in some rows of a table of partial groups of one integer key.
    fn absorb_rows(&mut self, table: &RecordBatch, rows: &[u32], width: usize) {
        let keys = table.column(0).as_primitive::<Int64Type>();
        let slots: Vec<u32> = rows
            .iter()
            .map(|&r| if keys.is_null(r as usize) { self.slot(&[Cell::Null], width) } else { self.int_slot(keys.value(r as usize), width) })
            .collect();
        self.merge_rows(table, rows.iter().map(|&r| r as usize).zip(slots.iter().copied()), width);
    }

    /// Merges the row count and states of rows of a table of partial groups into slots, as
    /// `(row, slot)` pairs.
    fn merge_rows(&mut self, table: &RecordBatch, placed: impl Iterator<Item = (usize, u32)> + Clone, width: usize) {
        let nrow = table.column(self.key_width).as_primitive::<UInt64Type>().values();
        for (r, slot) in placed.clone() {
            self.rows[slot as usize] += nrow[r];
        }
        for c in 0..width {
            let (count, sum, min, max) = partial_states(table, self.key_width, c);
            for (r, slot) in placed.clone() {
                self.states[slot as usize * width + c].merge(&FoldState { count: count[r], sum: sum[r], min: min[r], max: max[r] });
            }
        }
    }

    /// The groups as a table of partial groups (see [`Plan::partial_schema`]), unordered.
    fn into_table(self, plan: &Plan) -> FrameResult<RecordBatch> {
        let (kw, width, n) = (self.key_width, plan.width(), self.groups());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(kw + 1 + 4 * width);
        for k in 0..kw {
            let cells = (0..n).map(|s| self.keys[s * kw + k]);
            columns.push(if plan.key_is_int(k) {
                Arc::new(cells.map(|c| if let Cell::Int(v) = c { Some(v) } else { None }).collect::<Int64Array>())
            } else {
                let texts = self.interners.get(k).map(|i| &i.texts[..]).unwrap_or_default();
                Arc::new(
                    cells
                        .map(|c| match c {
                            Cell::Text(id) => texts.get(id as usize).map(String::as_str),
                            Cell::Int(_) | Cell::Null => None,
                        })
                        .collect::<StringArray>(),
                )
            });
        }
        columns.push(Arc::new(UInt64Array::from(self.rows)));
        for c in 0..width {
            let states = || self.states.iter().skip(c).step_by(width.max(1));
            columns.push(Arc::new(states().map(|s| s.count).collect::<UInt64Array>()));
            columns.push(Arc::new(states().map(|s| s.sum).collect::<Float64Array>()));
            columns.push(Arc::new(states().map(|s| s.min).collect::<Float64Array>()));
            columns.push(Arc::new(states().map(|s| s.max).collect::<Float64Array>()));
        }
        Ok(RecordBatch::try_new_with_options(plan.partial_schema(), columns, &RecordBatchOptions::new().with_row_count(Some(n)))?)
    }
}

/// Rows partitioned per round of the radix fold: bounds the copy it makes.
const ROUND_ROWS: usize = 1 << 22;
/// The radix fold's partitions (by the top bits of a hash of the key), plus one for the
/// missing key.
const PARTITION_BITS: u32 = 8;
const PARTITIONS: usize = 1 << PARTITION_BITS;
/// Distinct keys among the first rows above which one integer key is folded by partitions.
const RADIX_MIN_DISTINCT: usize = 1 << 14;
/// Rows looked at to count distinct keys.
const RADIX_SAMPLE_ROWS: usize = 1 << 16;

#[inline]
fn partition_of(v: i64) -> usize {
    ((v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PARTITION_BITS)) as usize
}

/// One thread's rows of one round, copied out by partition: keys, and per aggregated column
/// the values and (once a missing value was seen) whether each is present.
struct Scattered {
    keys: Vec<Vec<i64>>,
    values: Vec<Vec<Vec<f64>>>,
    present: Vec<Option<Vec<Vec<bool>>>>,
}

impl Scattered {
    fn new(width: usize) -> Self {
        Scattered {
            keys: vec![Vec::new(); PARTITIONS + 1],
            values: vec![vec![Vec::new(); PARTITIONS + 1]; width],
            present: vec![None; width],
        }
    }

    fn add(&mut self, keys: &Int64Array, values: &[Float64Array]) {
        let raw = keys.values();
        let part: Vec<u16> = match keys.nulls() {
            None => raw.iter().map(|&v| partition_of(v) as u16).collect(),
            Some(valid) => raw.iter().zip(valid.iter()).map(|(&v, ok)| if ok { partition_of(v) } else { PARTITIONS } as u16).collect(),
        };
        for (&p, &v) in part.iter().zip(raw.iter()) {
            self.keys[p as usize].push(v);
        }
        for (c, column) in values.iter().enumerate() {
            if column.null_count() > 0 && self.present[c].is_none() {
                self.present[c] = Some(self.values[c].iter().map(|v| vec![true; v.len()]).collect());
            }
            let into = &mut self.values[c];
            for (&p, &x) in part.iter().zip(column.values().iter()) {
                into[p as usize].push(x);
            }
            if let Some(present) = &mut self.present[c] {
                for (row, &p) in part.iter().enumerate() {
                    present[p as usize].push(column.is_valid(row));
                }
            }
        }
    }

    /// Each partition's keys and aggregated columns, the copies moved into arrays.
    fn into_partitions(self) -> Vec<(Vec<i64>, Vec<Float64Array>)> {
        let mut columns: Vec<Vec<Float64Array>> = (0..=PARTITIONS).map(|_| Vec::with_capacity(self.values.len())).collect();
        for (values, present) in self.values.into_iter().zip(self.present) {
            let mut present = present.map(Vec::into_iter);
            for (p, v) in values.into_iter().enumerate() {
                let nulls = present.as_mut().and_then(Iterator::next).map(NullBuffer::from);
                columns[p].push(Float64Array::new(v.into(), nulls));
            }
        }
        self.keys.into_iter().zip(columns).collect()
    }
}

impl Partial {
    /// Folds one partition's rows: their keys (all missing for the missing key's partition)
    /// and aggregated columns.
    fn add_partition(&mut self, keys: &[i64], values: &[Float64Array], missing_key: bool, width: usize) {
        if keys.is_empty() {
            return;
        }
        let slots: Vec<u32> = if missing_key {
            let null = self.slot(&[Cell::Null], width);
            vec![null; keys.len()]
        } else {
            keys.iter().map(|&v| self.int_slot(v, width)).collect()
        };
        self.push_values(&slots, values);
    }
}

/// How a worker folds its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// One hash table per thread over its share of the batches, merged at the end: for keys of
    /// few groups, whose tables stay in cache.
    PerThread,
    /// One integer key with many groups: rows are first copied out by partition (top bits of a
    /// hash of the key), then each partition is folded on its own into a table small enough
    /// for the cache, and partitions never need merging. Random access into one table of a
    /// million groups was the time of the per-thread way.
    Partitioned,
}

/// Folds batches (in parallel) into a table of partial groups (see [`Plan::partial_schema`]).
/// Only the columns the group-by reads are widened from their stored (narrow) form, a batch
/// at a time.
pub fn fold(batches: &[&RecordBatch], schema: &SchemaRef, plan: &Plan) -> FrameResult<RecordBatch> {
    fold_with(batches, schema, plan, None)
}

fn fold_with(batches: &[&RecordBatch], schema: &SchemaRef, plan: &Plan, strategy: Option<Strategy>) -> FrameResult<RecordBatch> {
    let mut needed: Vec<usize> = plan.by.clone();
    needed.extend(plan.columns.iter().filter(|a| !plan.by.contains(a)));
    let local = |i: &usize| needed.iter().position(|n| n == i).unwrap_or(0);
    let (by, columns): (Vec<usize>, Vec<usize>) = (plan.by.iter().map(local).collect(), plan.columns.iter().map(local).collect());
    let projected = Arc::new(schema.project(&needed)?);
    let widen = |b: &RecordBatch| crate::store::narrow::widen(&b.project(&needed)?, &projected);
    let (kw, width) = (by.len(), plan.width());
    let strategy = match strategy {
        Some(s) => s,
        None if kw == 1 && plan.key_is_int(0) && many_distinct(batches, &widen)? => Strategy::Partitioned,
        None => Strategy::PerThread,
    };
    if strategy == Strategy::Partitioned {
        return fold_partitioned(batches, &widen, &columns, plan);
    }
    // One contiguous share of the batches per thread: each share's table holds up to every
    // group, so more shares than threads would only mean more merging.
    let per = batches.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
    batches
        .par_chunks(per)
        .map(|share| share.iter().try_fold(Partial::new(kw), |partial, b| partial.add(&widen(b)?, &by, &columns)))
        .try_reduce(|| Partial::new(kw), |a, b| Ok(a.absorb(b, width)))?
        .into_table(plan)
}

/// Whether the first rows hold many distinct keys (the first key column of widened batches).
fn many_distinct(batches: &[&RecordBatch], widen: &(dyn Fn(&RecordBatch) -> FrameResult<RecordBatch> + Sync)) -> FrameResult<bool> {
    let mut seen = hashbrown::HashSet::new();
    let mut rows = 0;
    for b in batches {
        if rows >= RADIX_SAMPLE_ROWS {
            break;
        }
        let keys = cast(widen(b)?.column(0), &DataType::Int64)?;
        let keys = keys.as_primitive::<Int64Type>();
        seen.extend(keys.iter().take(RADIX_SAMPLE_ROWS - rows).flatten());
        rows += keys.len();
    }
    Ok(seen.len() >= RADIX_MIN_DISTINCT)
}

fn fold_partitioned(
    batches: &[&RecordBatch],
    widen: &(dyn Fn(&RecordBatch) -> FrameResult<RecordBatch> + Sync),
    columns: &[usize],
    plan: &Plan,
) -> FrameResult<RecordBatch> {
    let width = plan.width();
    let mut parts: Vec<Partial> = (0..=PARTITIONS).map(|_| Partial::new(1)).collect();
    let threads = rayon::current_num_threads().max(1);
    let mut start = 0;
    while start < batches.len() {
        // A round: batches up to ROUND_ROWS rows (at least one).
        let mut end = start;
        let mut rows = 0;
        while end < batches.len() && (end == start || rows + batches[end].num_rows() <= ROUND_ROWS) {
            rows += batches[end].num_rows();
            end += 1;
        }
        let round = &batches[start..end];
        let per = round.len().div_ceil(threads).max(1);
        let scattered: Vec<Vec<(Vec<i64>, Vec<Float64Array>)>> = round
            .par_chunks(per)
            .map(|share| {
                let mut s = Scattered::new(width);
                for b in share {
                    let wide = widen(b)?;
                    let keys = cast(wide.column(0), &DataType::Int64)?;
                    let values = columns.iter().map(|&i| as_f64(wide.column(i))).collect::<FrameResult<Vec<_>>>()?;
                    s.add(keys.as_primitive::<Int64Type>(), &values);
                }
                Ok(s.into_partitions())
            })
            .collect::<FrameResult<_>>()?;
        parts.par_iter_mut().enumerate().for_each(|(p, part)| {
            for thread in &scattered {
                let (keys, values) = &thread[p];
                part.add_partition(keys, values, p == PARTITIONS, width);
            }
        });
        start = end;
    }
    // Partitions hold disjoint keys: their tables are put end to end.
    let tables = parts.into_par_iter().filter(|p| p.groups() > 0).map(|p| p.into_table(plan)).collect::<FrameResult<Vec<_>>>()?;
    Ok(concat_batches(&plan.partial_schema(), &tables)?)
}

/// Merges the tables of partial groups of several nodes (each node's in pages) into one.
pub fn merge(plan: &Plan, nodes: Vec<Vec<RecordBatch>>) -> FrameResult<RecordBatch> {
    let schema = plan.partial_schema();
    let nodes: Vec<Vec<RecordBatch>> = nodes.into_iter().filter(|pages| pages.iter().any(|p| p.num_rows() > 0)).collect();
    if nodes.len() <= 1 {
        // One node's groups are distinct already.
        return Ok(concat_batches(&schema, nodes.iter().flatten())?);
    }
    let pages: Vec<&RecordBatch> = nodes.iter().flatten().collect();
    if plan.by.len() == 1 && plan.key_is_int(0) && pages.iter().map(|p| p.num_rows()).sum::<usize>() >= RADIX_MIN_DISTINCT {
        return merge_partitioned(plan, &pages);
    }
    let mut all = Partial::new(plan.by.len());
    for page in pages {
        all.absorb_table(page, plan.width())?;
    }
    all.into_table(plan)
}

/// Merges many partial groups of one integer key as the partitioned fold folds rows: each
/// partition's rows of every page merged on their own, partitions in parallel.
fn merge_partitioned(plan: &Plan, pages: &[&RecordBatch]) -> FrameResult<RecordBatch> {
    let width = plan.width();
    let by_partition: Vec<Vec<Vec<u32>>> = pages
        .par_iter()
        .map(|page| {
            let mut rows = vec![Vec::new(); PARTITIONS + 1];
            for (r, k) in page.column(0).as_primitive::<Int64Type>().iter().enumerate() {
                rows[k.map_or(PARTITIONS, partition_of)].push(r as u32);
            }
            rows
        })
        .collect();
    let tables = (0..=PARTITIONS)
        .into_par_iter()
        .map(|p| {
            let mut part = Partial::new(1);
            for (page, rows) in pages.iter().zip(&by_partition) {
                part.absorb_rows(page, &rows[p], width);
            }
            part.into_table(plan)
        })
        .collect::<FrameResult<Vec<_>>>()?;
    Ok(concat_batches(&plan.partial_schema(), &tables)?)
}

/// Builds the result table from merged partial groups, ordered by key (missing keys first):
/// the key columns (integers as integers, others as text), `nrow`, then one column per
/// aggregate.
pub fn result_batch(plan: &Plan, request: &GroupByRequest, partial: &RecordBatch) -> FrameResult<RecordBatch> {
    let kw = plan.by.len();
    let options = Some(SortOptions { descending: false, nulls_first: true });
    let sort: Vec<SortColumn> = (0..kw).map(|k| SortColumn { values: partial.column(k).clone(), options }).collect();
    let order = match sort.as_slice() {
        [one] => sort_to_indices(&one.values, options, None)?,
        _ => lexsort_to_indices(&sort, None)?,
    };
    let sorted = take_record_batch(partial, &order)?;
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (k, name) in request.by.iter().enumerate() {
        fields.push(Field::new(name, sorted.column(k).data_type().clone(), true));
        columns.push(sorted.column(k).clone());
    }
    fields.push(Field::new("nrow", DataType::Int64, false));
    columns.push(cast(sorted.column(kw), &DataType::Int64)?);
    for (agg, &c) in request.aggs.iter().zip(&plan.agg_column) {
        let (count, sum, min, max) = partial_states(&sorted, kw, c);
        let values: Float64Array = (0..sorted.num_rows())
            .map(|r| {
                let (n, seen) = (count[r], count[r] > 0);
                match agg.op {
                    AggOp::Count => Some(n as f64),
                    AggOp::Sum => seen.then(|| sum[r]),
                    AggOp::Mean => seen.then(|| sum[r] / n as f64),
                    AggOp::Min => seen.then(|| min[r]),
                    AggOp::Max => seen.then(|| max[r]),
                }
            })
            .collect();
        let op = serde_json::to_value(agg.op).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        fields.push(Field::new(format!("{op}_{}", agg.column), DataType::Float64, true));
        columns.push(Arc::new(values));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Per aggregate: count, sum, min, max.
    type Expected = BTreeMap<Vec<Option<String>>, (u64, Vec<(u64, f64, Option<f64>, Option<f64>)>)>;

    /// A table of partial groups by key text, checking that no key appears twice.
    fn groups_of(plan: &Plan, table: &RecordBatch) -> Expected {
        let kw = plan.by.len();
        let options = FormatOptions::default();
        let formatters: Vec<ArrayFormatter> =
            (0..kw).map(|k| ArrayFormatter::try_new(table.column(k).as_ref(), &options).unwrap()).collect();
        let mut out = Expected::new();
        for r in 0..table.num_rows() {
            let key = (0..kw).map(|k| table.column(k).is_valid(r).then(|| formatters[k].value(r).to_string())).collect::<Vec<_>>();
            let rows = table.column(kw).as_primitive::<UInt64Type>().value(r);
            let states = plan
                .agg_column
                .iter()
                .map(|&c| {
                    let (count, sum, min, max) = partial_states(table, kw, c);
                    let n = count[r];
                    (n, sum[r], (n > 0).then(|| min[r]), (n > 0).then(|| max[r]))
                })
                .collect();
            assert!(out.insert(key.clone(), (rows, states)).is_none(), "key {key:?} twice");
        }
        out
    }

    #[test]
    fn groups_merge_across_batches() {
        let b1 = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["a", "b", "a"])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])) as ArrayRef),
        ])
        .unwrap();
        let b2 = RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(vec!["b", "a"])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(vec![Some(10.0), Some(-2.0)])) as ArrayRef),
        ])
        .unwrap();
        let plan = Plan::new(&b1.schema(), &[0], &[1, 1]);
        let table = fold(&[&b1, &b2], &b1.schema(), &plan).unwrap();
        let g = groups_of(&plan, &table);
        let a = &g[&vec![Some("a".to_string())]];
        assert_eq!(a.0, 3);
        assert_eq!(a.1[0], (3, 2.0, Some(-2.0), Some(3.0)));
        let request = GroupByRequest {
            by: vec!["k".into()],
            aggs: vec![Agg { op: AggOp::Mean, column: "v".into() }, Agg { op: AggOp::Count, column: "v".into() }],
            destination_frame: None,
            replicas: None,
        };
        let out = result_batch(&plan, &request, &table).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.schema().field(0).data_type(), &DataType::Utf8);
        let mean = out.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!((mean.value(0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(mean.value(1), 10.0);
        assert!(indices(&["k".into()], &["nope".into()]).unwrap_err().to_string().contains("no column \"nope\""));
    }

    #[test]
    fn levels_of_different_dictionaries_and_integer_keys_meet_in_one_group() {
        use arrow::array::{DictionaryArray, Int8Array};
        use arrow::datatypes::Int8Type;
        // The same levels under different dictionary codes in two batches, and an integer key.
        let d1: DictionaryArray<Int8Type> = vec![Some("x"), Some("y"), None, Some("x")].into_iter().collect();
        let d2 = DictionaryArray::<Int8Type>::try_new(
            Int8Array::from(vec![Some(0), Some(1), Some(1)]),
            Arc::new(StringArray::from(vec!["y", "x"])),
        )
        .unwrap();
        let b1 = RecordBatch::try_from_iter([
            ("k", Arc::new(d1) as ArrayRef),
            ("n", Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(2), None])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])) as ArrayRef),
        ])
        .unwrap();
        let b2 = RecordBatch::try_from_iter([
            ("k", Arc::new(d2) as ArrayRef),
            ("n", Arc::new(Int64Array::from(vec![Some(1), Some(1), None])) as ArrayRef),
            ("v", Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0])) as ArrayRef),
        ])
        .unwrap();
        let plan = Plan::new(&b1.schema(), &[0, 1], &[2]);
        let g = groups_of(&plan, &fold(&[&b1, &b2], &b1.schema(), &plan).unwrap());
        // Folded apart (as two nodes would) and merged: the same groups.
        let apart = vec![vec![fold(&[&b1], &b1.schema(), &plan).unwrap()], vec![fold(&[&b2], &b1.schema(), &plan).unwrap()]];
        assert_eq!(groups_of(&plan, &merge(&plan, apart).unwrap()), g);
        let key = |k: Option<&str>, n: Option<i64>| vec![k.map(String::from), n.map(|n| n.to_string())];
        let sums: Vec<(Vec<Option<String>>, u64, f64)> = g.iter().map(|(k, (n, s))| (k.clone(), *n, s[0].1)).collect();
        assert_eq!(
            sums,
            vec![
                (key(None, Some(2)), 1, 3.0),
                (key(Some("x"), None), 2, 34.0),
                (key(Some("x"), Some(1)), 2, 21.0),
                (key(Some("y"), Some(1)), 2, 12.0),
            ]
        );
    }

    /// Integer keys with nulls, values with nulls and NaN; `spread` multiplies the keys.
    fn integer_batch(rows: usize, distinct: i64, spread: i64) -> RecordBatch {
        let keys: Vec<Option<i64>> = (0..rows).map(|r| (r % 11 != 3).then(|| (r as i64 * 7919 % distinct) * spread - 40)).collect();
        let values: Vec<Option<f64>> =
            (0..rows).map(|r| (r % 17 != 5).then_some(if r % 101 == 0 { f64::NAN } else { r as f64 * 0.5 - 700.0 })).collect();
        RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(keys)) as ArrayRef),
            ("v", Arc::new(Float64Array::from(values)) as ArrayRef),
        ])
        .unwrap()
    }

    fn plain_fold(batches: &[&RecordBatch]) -> Expected {
        let mut expected = Expected::new();
        for b in batches {
            let keys = b.column(0).as_primitive::<Int64Type>();
            let values = b.column(1).as_primitive::<Float64Type>();
            for r in 0..b.num_rows() {
                let e =
                    expected.entry(vec![keys.is_valid(r).then(|| keys.value(r).to_string())]).or_insert((0, vec![(0, 0.0, None, None)]));
                e.0 += 1;
                if values.is_valid(r) {
                    let x = values.value(r);
                    let s = &mut e.1[0];
                    s.0 += 1;
                    s.1 += x;
                    s.2 = Some(s.2.map_or(x, |m: f64| m.min(x)));
                    s.3 = Some(s.3.map_or(x, |m: f64| m.max(x)));
                }
            }
        }
        expected
    }

    fn assert_same(got: &Expected, want: &Expected, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (k, (n, s)) in want {
            let (gn, gs) = &got[k];
            assert_eq!(gn, n, "{what} {k:?}");
            let (g, w) = (gs[0], s[0]);
            // min and max skip NaN; a group whose only values are NaN has NaN for both.
            let same = |a: Option<f64>, b: Option<f64>| a == b || a.zip(b).is_some_and(|(a, b)| a.is_nan() && b.is_nan());
            assert!(g.0 == w.0 && same(g.2, w.2) && same(g.3, w.3), "{what} {k:?}: {g:?} against {w:?}");
            assert!((g.1 - w.1).abs() < 1e-6 || (g.1.is_nan() && w.1.is_nan()), "{what} {k:?}: {g:?} against {w:?}");
        }
    }

    #[test]
    fn integer_keys_group_alike_by_table_by_hash_and_by_partitions() {
        // Narrow ranges take the table indexed by value, wide ones the hash; the partitioned
        // fold takes any; the groups must be those of a plain fold.
        let batch = integer_batch(5_000, 13, 1);
        for spread in [1i64, 1_000_000_000_000] {
            let batch = integer_batch(5_000, 13, spread);
            let slice = batch.slice(10, 2_000);
            let want = plain_fold(&[&batch, &slice]);
            let plan = Plan::new(&batch.schema(), &[0], &[1]);
            for strategy in [None, Some(Strategy::PerThread), Some(Strategy::Partitioned)] {
                let got = fold_with(&[&batch, &slice], &batch.schema(), &plan, strategy).unwrap();
                assert_same(&groups_of(&plan, &got), &want, &format!("spread {spread}, {strategy:?}"));
            }
        }
        // Many distinct keys take the partitioned fold unasked, with the same groups.
        let many = integer_batch(200_000, 150_000, 3);
        let plan = Plan::new(&many.schema(), &[0], &[1]);
        let batches: Vec<RecordBatch> = (0..4).map(|i| many.slice(i * 50_000, 50_000)).collect();
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        assert!(many_distinct(&refs, &|b: &RecordBatch| Ok(b.clone())).unwrap());
        assert!(!many_distinct(&[&batch], &|b: &RecordBatch| Ok(b.clone())).unwrap());
        let want = plain_fold(&refs);
        assert_same(&groups_of(&plan, &fold(&refs, &many.schema(), &plan).unwrap()), &want, "many");
        // Two nodes' partial groups merge into the same groups.
        let halves = [fold(&refs[..1], &many.schema(), &plan).unwrap(), fold(&refs[1..], &many.schema(), &plan).unwrap()];
        let pages = |t: &RecordBatch| (0..t.num_rows()).step_by(7_000).map(|s| t.slice(s, 7_000.min(t.num_rows() - s))).collect();
        let merged = merge(&plan, vec![pages(&halves[0]), pages(&halves[1]), Vec::new()]).unwrap();
        assert_same(&groups_of(&plan, &merged), &want, "merged");
        // The result is ordered by key as integers, the missing key first.
        let request = GroupByRequest {
            by: vec!["k".into()],
            aggs: vec![Agg { op: AggOp::Count, column: "v".into() }],
            destination_frame: None,
            replicas: None,
        };
        let out = result_batch(&plan, &request, &merged).unwrap();
        let keys = out.column(0).as_primitive::<Int64Type>();
        assert!(keys.is_null(0) && keys.null_count() == 1);
        assert!((2..keys.len()).all(|i| keys.value(i - 1) < keys.value(i)));
        assert_eq!(out.column(1).as_primitive::<Int64Type>().iter().flatten().sum::<i64>(), 200_000);
    }

    #[test]
    fn keys_without_a_missing_one_make_no_group_of_it() {
        let batch = integer_batch(1_000, 300, 1);
        let keys = arrow::compute::is_not_null(batch.column(0)).unwrap();
        let present = arrow::compute::filter_record_batch(&batch, &keys).unwrap();
        let plan = Plan::new(&batch.schema(), &[0], &[1]);
        for strategy in [Strategy::PerThread, Strategy::Partitioned] {
            let got = fold_with(&[&present], &batch.schema(), &plan, Some(strategy)).unwrap();
            assert_eq!((got.num_rows(), got.column(0).null_count()), (300, 0), "{strategy:?}");
        }
    }

    #[test]
    fn an_empty_frame_has_no_groups() {
        let batch = integer_batch(0, 1, 1);
        let plan = Plan::new(&batch.schema(), &[0], &[1]);
        let table = fold(&[], &batch.schema(), &plan).unwrap();
        assert_eq!(table.num_rows(), 0);
        assert_eq!(merge(&plan, vec![vec![table.clone()], Vec::new()]).unwrap().num_rows(), 0);
        let request = GroupByRequest {
            by: vec!["k".into()],
            aggs: vec![Agg { op: AggOp::Sum, column: "v".into() }],
            destination_frame: None,
            replicas: None,
        };
        assert_eq!(result_batch(&plan, &request, &table).unwrap().num_rows(), 0);
    }
}
