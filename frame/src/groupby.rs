//! Group-by as a map-reduce: every worker folds its chunks into per-group partial
//! aggregates (rayon over batches), the caller merges them and builds the result frame.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::summary::{max_of, min_of};
use crate::{FrameError, FrameResult};

/// An aggregate function.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Agg {
    /// The function.
    pub op: AggOp,
    /// The column it reads.
    pub column: String,
}

/// `POST /3/Frames/{id}/groupby`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupByRequest {
    /// Columns to group by.
    pub by: Vec<String>,
    /// Aggregates to compute per group.
    pub aggs: Vec<Agg>,
    /// Id of the result frame [default: `<frame>_by_<columns>`].
    #[serde(default)]
    pub destination_frame: Option<String>,
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

    fn push(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.min = min_of(self.min, Some(x));
        self.max = max_of(self.max, Some(x));
    }

    fn merge(&mut self, o: &AggState) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = min_of(self.min, o.min);
        self.max = max_of(self.max, o.max);
    }
}

/// Per group: the group's key cells, its row count, and one state per aggregate.
pub type Groups = BTreeMap<Vec<Option<String>>, (u64, Vec<AggState>)>;

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
    values.as_any().downcast_ref::<Float64Array>().cloned().ok_or_else(|| FrameError::Internal("cast to f64".into()))
}

fn fold_batch(batch: &RecordBatch, by: &[usize], aggs: &[usize]) -> FrameResult<Groups> {
    let options = FormatOptions::default();
    let keys: Vec<&ArrayRef> = by.iter().map(|i| batch.column(*i)).collect();
    let formatters: Vec<ArrayFormatter<'_>> =
        keys.iter().map(|a| ArrayFormatter::try_new(a.as_ref(), &options)).collect::<Result<_, _>>()?;
    let values: Vec<Float64Array> = aggs.iter().map(|i| as_f64(batch.column(*i))).collect::<FrameResult<_>>()?;
    let mut groups = Groups::new();
    for row in 0..batch.num_rows() {
        let key: Vec<Option<String>> =
            keys.iter().zip(&formatters).map(|(a, f)| a.is_valid(row).then(|| f.value(row).to_string())).collect();
        let entry = groups.entry(key).or_insert_with(|| (0, vec![AggState::empty(); aggs.len()]));
        entry.0 += 1;
        for (state, v) in entry.1.iter_mut().zip(&values) {
            if v.is_valid(row) {
                state.push(v.value(row));
            }
        }
    }
    Ok(groups)
}

/// Merges `b` into `a`.
pub fn merge(mut a: Groups, b: Groups) -> Groups {
    for (k, (n, states)) in b {
        let entry = a.entry(k).or_insert_with(|| (0, vec![AggState::empty(); states.len()]));
        entry.0 += n;
        for (x, y) in entry.1.iter_mut().zip(&states) {
            x.merge(y);
        }
    }
    a
}

/// Folds batches (in parallel) into groups.
/// Batches are widened one at a time from their stored (narrow) form to the frame's `schema`.
pub fn fold(batches: &[&RecordBatch], schema: &arrow::datatypes::SchemaRef, by: &[usize], aggs: &[usize]) -> FrameResult<Groups> {
    batches.par_iter().map(|b| fold_batch(&crate::narrow::widen(b, schema)?, by, aggs)).try_reduce(Groups::new, |a, b| Ok(merge(a, b)))
}

/// Builds the result table: the key columns (text), `nrow`, then one column per aggregate.
pub fn result_batch(groups: &Groups, request: &GroupByRequest) -> FrameResult<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, name) in request.by.iter().enumerate() {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(groups.keys().map(|k| k[i].clone()).collect::<Vec<_>>())));
    }
    fields.push(Field::new("nrow", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from(groups.values().map(|(n, _)| *n as i64).collect::<Vec<_>>())));
    for (j, agg) in request.aggs.iter().enumerate() {
        let name =
            format!("{}_{}", serde_json::to_value(agg.op).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(), agg.column);
        let values: Vec<Option<f64>> = groups
            .values()
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
        };
        let out = result_batch(&g, &request).unwrap();
        assert_eq!(out.num_rows(), 2);
        let mean = out.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!((mean.value(0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(mean.value(1), 10.0);
        assert!(indices(&["k".into()], &["nope".into()]).unwrap_err().to_string().contains("no column \"nope\""));
    }
}
