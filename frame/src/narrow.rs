//! Narrow integer storage: each batch keeps an integer column in the smallest type that holds
//! that batch's values (8, 16, 32 or 64 bits). The frame's logical type stays `int`; readers
//! that need the logical type (IPC between nodes, export) widen with [`widen`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, max, min};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};

use crate::FrameResult;

fn narrowest(lo: i64, hi: i64) -> DataType {
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

/// Stores every Int64 column of `batch` in the narrowest integer type that fits it.
pub fn narrow(batch: RecordBatch) -> FrameResult<RecordBatch> {
    if !batch.schema().fields().iter().any(|f| f.data_type() == &DataType::Int64) {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = match column.data_type() {
            DataType::Int64 => {
                let values = column.as_primitive::<Int64Type>();
                match (min(values), max(values)) {
                    (Some(lo), Some(hi)) => narrowest(lo, hi),
                    // All missing: the smallest type holds the nulls just as well.
                    _ => DataType::Int8,
                }
            }
            other => other.clone(),
        };
        columns.push(if &target == column.data_type() { column.clone() } else { cast(column, &target)? });
        fields.push(Field::new(field.name(), target, field.is_nullable()));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Casts a stored batch back to the frame's logical schema.
pub fn widen(batch: &RecordBatch, schema: &SchemaRef) -> FrameResult<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

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
}
