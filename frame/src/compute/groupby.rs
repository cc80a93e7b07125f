//! Group-by as a map-reduce: every worker folds its chunks into per-group partial
//! aggregates (rayon over batches), the caller merges them and builds the result frame.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compute::summary::{max_of, min_of};
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

/// The mergeable state of one aggregate in one group.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct AggState {
    /// Present values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl AggState {
    fn empty() -> Self {
        Self { count: 0, sum: 0.0, min: None, max: None }
    }

    fn merge(&mut self, o: &AggState) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = min_of(self.min, o.min);
        self.max = max_of(self.max, o.max);
    }
}

/// An [`AggState`] as a fold keeps it: min and max start as NaN, which `f64::min` and
/// `f64::max` pass over, so a value is pushed without a branch on "first value yet?".
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

    fn merge(&mut self, o: &FoldState) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    fn state(&self) -> AggState {
        let seen = self.count > 0;
        AggState { count: self.count, sum: self.sum, min: seen.then_some(self.min), max: seen.then_some(self.max) }
    }
}

/// Per group: the group's key cells, its row count, and one state per aggregate. Unordered;
/// [`result_batch`] sorts the groups by their keys once.
pub type Groups = hashbrown::HashMap<Vec<Option<String>>, (u64, Vec<AggState>)>;

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

/// The groups one thread folded: a hash table from key cells to a slot, and per slot the row
/// count and one state per aggregated column (count, sum, min and max of one column share a
/// state), flat: slot `s`, column `c` at `s * columns + c`.
#[derive(Default)]
struct Partial {
    /// One integer key column: value to slot.
    ints: hashbrown::HashMap<i64, u32>,
    /// One key column of another kind (and the missing key): cell to slot.
    single: hashbrown::HashMap<Cell, u32>,
    /// Several key columns.
    multi: hashbrown::HashMap<Vec<Cell>, u32>,
    keys: Vec<Vec<Cell>>,
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
    fn new_slot(&mut self, key: Vec<Cell>, columns: usize) -> u32 {
        let slot = self.keys.len() as u32;
        self.keys.push(key);
        self.rows.push(0);
        self.states.extend(std::iter::repeat_n(FoldState::EMPTY, columns));
        slot
    }

    fn int_slot(&mut self, v: i64, columns: usize) -> u32 {
        if let Some(&slot) = self.ints.get(&v) {
            return slot;
        }
        let slot = self.new_slot(vec![Cell::Int(v)], columns);
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
            let slot = self.new_slot(key.to_vec(), columns);
            self.single.insert(*cell, slot);
            return slot;
        }
        if let Some(&slot) = self.multi.get(key) {
            return slot;
        }
        let slot = self.new_slot(key.to_vec(), columns);
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
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                KeyColumn::Ints(cast(array, &DataType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().clone())
            }
            DataType::Dictionary(_, _) => {
                let dict = array.as_any_dictionary();
                let values = ArrayFormatter::try_new(dict.values().as_ref(), &options)?;
                // One text per dictionary entry, not per row.
                let cells = (0..dict.values().len()).map(|i| Cell::Text(interner.id(&values.value(i).to_string()))).collect();
                let valid = dict.keys();
                let rows = dict.normalized_keys().into_iter().enumerate().map(|(row, k)| valid.is_valid(row).then_some(k)).collect();
                KeyColumn::Entries { rows, cells }
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

    fn add(mut self, batch: &RecordBatch, by: &[usize], columns: &[usize]) -> FrameResult<Self> {
        let width = columns.len();
        let slots = self.row_slots(batch, by, width)?;
        for &slot in &slots {
            self.rows[slot as usize] += 1;
        }
        for (c, &i) in columns.iter().enumerate() {
            let values = as_f64(batch.column(i))?;
            let raw = values.values();
            let states = &mut self.states[..];
            match values.nulls() {
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
        Ok(self)
    }

    /// Takes in the groups `other` folded (another thread's): by key, text cells found by
    /// their text, so that threads never meet as text-keyed maps.
    fn absorb(self, other: Partial, width: usize) -> Partial {
        let (mut big, small) = if self.keys.len() >= other.keys.len() { (self, other) } else { (other, self) };
        if big.interners.len() < small.interners.len() {
            big.interners.resize_with(small.interners.len(), Interner::default);
        }
        let mut key = Vec::new();
        for (slot, small_key) in small.keys.iter().enumerate() {
            key.clear();
            for (c, cell) in small_key.iter().enumerate() {
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

    /// The groups with their key cells as text (integers printed as arrow prints them), with
    /// one state per requested aggregate (`aggs[i]` is the index of its column's state).
    fn into_groups(self, aggs: &[usize], width: usize) -> Groups {
        let mut out = Groups::with_capacity(self.keys.len());
        for (slot, (key, rows)) in self.keys.iter().zip(&self.rows).enumerate() {
            let cells = key
                .iter()
                .enumerate()
                .map(|(c, cell)| match cell {
                    Cell::Null => None,
                    Cell::Int(v) => Some(v.to_string()),
                    Cell::Text(id) => self.interners.get(c).and_then(|i| i.texts.get(*id as usize)).cloned(),
                })
                .collect();
            let states = aggs.iter().map(|&a| self.states[slot * width + a].state()).collect();
            out.insert(cells, (*rows, states));
        }
        out
    }
}

/// Merges two workers' groups (the smaller into the larger).
pub fn merge(a: Groups, b: Groups) -> Groups {
    let (mut a, b) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (k, (n, states)) in b {
        let entry = a.entry(k).or_insert_with(|| (0, vec![AggState::empty(); states.len()]));
        entry.0 += n;
        for (x, y) in entry.1.iter_mut().zip(&states) {
            x.merge(y);
        }
    }
    a
}

/// Folds batches (in parallel, one hash table per thread, merged once) into groups. Only the
/// columns the group-by reads are widened from their stored (narrow) form, a batch at a time.
pub fn fold(batches: &[&RecordBatch], schema: &arrow::datatypes::SchemaRef, by: &[usize], aggs: &[usize]) -> FrameResult<Groups> {
    // The aggregated columns, each once; `agg_column[i]` is aggregate i's.
    let mut columns: Vec<usize> = Vec::new();
    let agg_column: Vec<usize> = aggs
        .iter()
        .map(|a| {
            columns.iter().position(|c| c == a).unwrap_or_else(|| {
                columns.push(*a);
                columns.len() - 1
            })
        })
        .collect();
    let mut needed: Vec<usize> = by.to_vec();
    needed.extend(columns.iter().filter(|a| !by.contains(a)));
    let local = |i: &usize| needed.iter().position(|n| n == i).unwrap_or(0);
    let (by_local, columns_local): (Vec<usize>, Vec<usize>) = (by.iter().map(local).collect(), columns.iter().map(local).collect());
    let projected = Arc::new(schema.project(&needed)?);
    let width = columns.len();
    batches
        .par_iter()
        .try_fold(Partial::default, |partial, b| {
            let wide = crate::store::narrow::widen(&b.project(&needed)?, &projected)?;
            partial.add(&wide, &by_local, &columns_local)
        })
        .try_reduce(Partial::default, |a, b| Ok(a.absorb(b, width)))
        .map(|partial| partial.into_groups(&agg_column, width))
}

/// Builds the result table: the key columns (text), `nrow`, then one column per aggregate.
pub fn result_batch(groups: &Groups, request: &GroupByRequest) -> FrameResult<RecordBatch> {
    let mut sorted: Vec<_> = groups.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let keys = || sorted.iter().map(|(k, _)| *k);
    let values = || sorted.iter().map(|(_, v)| *v);
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, name) in request.by.iter().enumerate() {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(keys().map(|k| k[i].as_deref()).collect::<StringArray>()));
    }
    fields.push(Field::new("nrow", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from(values().map(|(n, _)| *n as i64).collect::<Vec<_>>())));
    for (j, agg) in request.aggs.iter().enumerate() {
        let name =
            format!("{}_{}", serde_json::to_value(agg.op).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(), agg.column);
        let values: Vec<Option<f64>> = values()
            .map(|(_, s)| {
                let s = s.get(j).copied()?;
                match agg.op {
                    AggOp::Count => Some(s.count as f64),
                    AggOp::Sum => (s.count > 0).then_some(s.sum),
                    AggOp::Mean => (s.count > 0).then(|| s.sum / s.count as f64),
                    AggOp::Min => s.min,
                    AggOp::Max => s.max,
                }
            })
            .collect();
        fields.push(Field::new(name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(values)));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let g = fold(&[&b1, &b2], &b1.schema(), &[0], &[1, 1]).unwrap();
        let a = &g[&vec![Some("a".to_string())]];
        assert_eq!(a.0, 3);
        assert_eq!((a.1[0].count, a.1[0].sum, a.1[0].min, a.1[0].max), (3, 2.0, Some(-2.0), Some(3.0)));
        let request = GroupByRequest {
            by: vec!["k".into()],
            aggs: vec![Agg { op: AggOp::Mean, column: "v".into() }, Agg { op: AggOp::Count, column: "v".into() }],
            destination_frame: None,
            replicas: None,
        };
        let out = result_batch(&g, &request).unwrap();
        assert_eq!(out.num_rows(), 2);
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
        let g = fold(&[&b1, &b2], &b1.schema(), &[0, 1], &[2]).unwrap();
        let key = |k: Option<&str>, n: Option<i64>| vec![k.map(String::from), n.map(|n| n.to_string())];
        let mut sums: Vec<(Vec<Option<String>>, u64, f64)> = g.iter().map(|(k, (n, s))| (k.clone(), *n, s[0].sum)).collect();
        sums.sort_by(|a, b| a.0.cmp(&b.0));
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
    #[test]
    fn integer_keys_group_alike_by_table_and_by_hash() {
        // Narrow ranges take the table indexed by value, wide ones the hash; nulls and NaN
        // values in both; the groups must be the same as a plain fold computes them.
        let rows = 5_000usize;
        for spread in [7i64, 1_000_000_000_000] {
            let keys: Vec<Option<i64>> = (0..rows).map(|r| (r % 11 != 3).then(|| (r as i64 * 7919 % 13) * spread - 40)).collect();
            let values: Vec<Option<f64>> =
                (0..rows).map(|r| (r % 17 != 5).then_some(if r % 101 == 0 { f64::NAN } else { r as f64 * 0.5 - 700.0 })).collect();
            let batch = RecordBatch::try_from_iter([
                ("k", Arc::new(Int64Array::from(keys.clone())) as ArrayRef),
                ("v", Arc::new(Float64Array::from(values.clone())) as ArrayRef),
            ])
            .unwrap();
            let g = fold(&[&batch, &batch.slice(10, 2_000)], &batch.schema(), &[0], &[1]).unwrap();
            let mut expected: std::collections::BTreeMap<Vec<Option<String>>, (u64, AggState)> = std::collections::BTreeMap::new();
            for (k, v) in keys.iter().zip(&values).chain(keys[10..2_010].iter().zip(&values[10..2_010])) {
                let e = expected.entry(vec![k.map(|k| k.to_string())]).or_insert((0, AggState::empty()));
                e.0 += 1;
                if let Some(x) = v {
                    e.1.merge(&AggState { count: 1, sum: *x, min: Some(*x), max: Some(*x) });
                }
            }
            assert_eq!(g.len(), expected.len(), "spread {spread}");
            for (k, (n, state)) in &expected {
                let (gn, gs) = &g[k];
                assert_eq!(gn, n, "{k:?}");
                assert_eq!((gs[0].count, gs[0].min, gs[0].max), (state.count, state.min, state.max), "{k:?}");
                assert!((gs[0].sum - state.sum).abs() < 1e-6 || (gs[0].sum.is_nan() && state.sum.is_nan()), "{k:?}");
            }
        }
    }
}
