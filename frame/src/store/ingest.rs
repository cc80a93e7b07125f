//! Data that arrives as Arrow batches (a Spark DataFrame sent over Arrow Flight): which frame
//! column each Arrow column becomes, and the batches in the form the store keeps.
//!
//! Every column keeps its exact Arrow type in [`ColumnInfo::arrow_type`] where that is not the
//! column type's default, so a frame goes back to Arrow (and Spark) as it came in: `Int32`
//! stays `Int32`, microsecond timestamps keep their unit and zone.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::import::setup::ColumnType;
use crate::store::meta::ColumnInfo;
use crate::{FrameError, FrameResult};

/// Frame columns for incoming data of `schema`, and the schema its batches are cast to before
/// they are narrowed. String columns named in `categorical` become categoricals.
pub fn columns_for(schema: &Schema, categorical: &[String]) -> FrameResult<(Vec<ColumnInfo>, SchemaRef)> {
    for name in categorical {
        if schema.field_with_name(name).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(FrameError::InvalidArgument {
                what: "categorical",
                reason: format!("no column {name:?}; the data has [{}]", names.join(", ")),
            });
        }
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    let mut stored = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let source = field.data_type();
        let wanted_categorical = categorical.iter().any(|c| c == field.name());
        let (column_type, storage) = match source {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => (ColumnType::Int, DataType::Int64),
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => (ColumnType::Int, DataType::Int64),
            DataType::Float32 | DataType::Float64 => (ColumnType::Real, DataType::Float64),
            // Exact decimals stay exact (Spark's DecimalType, up to 38 digits): stored as their
            // unscaled integers (narrow.rs), read back with precision and scale.
            DataType::Decimal128(_, _) => (ColumnType::Real, source.clone()),
            DataType::Boolean => (ColumnType::Bool, DataType::Boolean),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if wanted_categorical => {
                (ColumnType::Enum, ColumnType::Enum.arrow_type())
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (ColumnType::String, DataType::Utf8),
            DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8) => {
                (ColumnType::Enum, ColumnType::Enum.arrow_type())
            }
            // Times keep their unit and zone: Spark's are microseconds.
            DataType::Timestamp(_, _) | DataType::Date32 => (ColumnType::Time, source.clone()),
            DataType::Date64 => (ColumnType::Time, DataType::Timestamp(TimeUnit::Millisecond, None)),
            other => {
                return Err(FrameError::InvalidArgument {
                    what: "column type",
                    reason: format!(
                        "column {:?} is {other}; frames hold integers, reals, decimals, booleans, strings and times \
                         (cast it first, e.g. binary to string, in Spark `df.withColumn(name, col(name).cast(\"string\"))`)",
                        field.name()
                    ),
                })
            }
        };
        let mut info = ColumnInfo::new(field.name().clone(), column_type);
        info.not_null = !field.is_nullable();
        // Categoricals go back as strings of their source type; the rest as they came.
        let back = if column_type == ColumnType::Enum { None } else { Some(source.clone()) };
        if back.as_ref().is_some_and(|t| *t != column_type.arrow_type()) {
            info.arrow_type = back;
        }
        columns.push(info);
        stored.push(Field::new(field.name(), storage, field.is_nullable()));
    }
    Ok((columns, Arc::new(Schema::new(stored))))
}

/// A batch of `columns` that keeps `rows` even without columns (a Spark DataFrame of no
/// columns still has rows, and a frame of it keeps their number).
pub fn batch_of(schema: SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> FrameResult<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// `batch` cast to `target` (from [`columns_for`]), ready to be narrowed.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> FrameResult<RecordBatch> {
    if batch.num_columns() != target.fields().len() {
        return Err(FrameError::InvalidArgument {
            what: "batch",
            reason: format!("it has {} columns where the stream's schema has {}", batch.num_columns(), target.fields().len()),
        });
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<_, _>>()?;
    batch_of(target.clone(), columns, batch.num_rows())
}

/// Bytes the values of `batch` take, counting each array's own slice only (batches decoded
/// from one IPC message share its buffer, which `get_array_memory_size` counts per column).
pub fn slice_bytes(batch: &RecordBatch) -> u64 {
    batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or_else(|_| c.get_array_memory_size()) as u64).sum()
}

/// `batch` with every column in buffers of its own: columns that are slices of a larger
/// buffer (a decoded IPC message) are copied out, so the store neither keeps the message
/// alive nor counts it once per column.
pub fn compact(batch: RecordBatch) -> FrameResult<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let own = data.get_slice_memory_size().unwrap_or(0);
            if c.get_buffer_memory_size() <= own + own / 8 + 64 {
                return Ok(c.clone());
            }
            let mut copy = arrow::array::MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())?;
            Ok(arrow::array::make_array(copy.freeze()))
        })
        .collect::<FrameResult<_>>()?;
    batch_of(batch.schema(), columns, batch.num_rows())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::meta::{ChunkInfo, FrameInfo};
    use crate::store::narrow::{narrow, widen};
    use arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray,
        TimestampMicrosecondArray,
    };

    fn spark_like() -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(-1), Some(1_700_000_000_000_000)])
            .with_timezone("UTC");
        RecordBatch::try_from_iter([
            ("i16", Arc::new(Int16Array::from(vec![Some(-3), None, Some(300), Some(0)])) as ArrayRef),
            ("i32", Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None, Some(7)])) as ArrayRef),
            ("i64", Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(1), None, Some(i64::MAX)])) as ArrayRef),
            ("f32", Arc::new(Float32Array::from(vec![Some(0.1), Some(f32::NAN), None, Some(-0.0)])) as ArrayRef),
            ("f64", Arc::new(Float64Array::from(vec![Some(0.1), Some(f64::INFINITY), None, Some(-0.0)])) as ArrayRef),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true)])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec![Some("x"), Some(""), None, Some("ünï")])) as ArrayRef),
            ("ls", Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("b"), Some("a")])) as ArrayRef),
            ("cat", Arc::new(StringArray::from(vec![Some("lo"), Some("hi"), None, Some("lo")])) as ArrayRef),
            ("ts", Arc::new(ts) as ArrayRef),
            ("d", Arc::new(Date32Array::from(vec![Some(0), Some(19_000), None, Some(-5)])) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn spark_types_are_stored_narrow_and_come_back_exactly() {
        let b = spark_like();
        let (columns, target) = columns_for(&b.schema(), &["cat".to_string()]).unwrap();
        let types: Vec<ColumnType> = columns.iter().map(|c| c.column_type).collect();
        use ColumnType::*;
        assert_eq!(types, vec![Int, Int, Int, Real, Real, Bool, String, String, Enum, Time, Time]);
        assert_eq!(columns[2].arrow_type, None, "Int64 is the default for integers");
        assert_eq!(columns[1].arrow_type, Some(DataType::Int32));
        let stored = narrow(conform(&b, &target).unwrap()).unwrap();
        assert_eq!(stored.column(0).data_type(), &DataType::Int16, "-3..300 fits 16 bits");
        let node = eddy_common::NodeAddr::with_default_grpc([127, 0, 0, 1].into(), 1).unwrap();
        let info = FrameInfo::from_chunks("f", vec![], columns.clone(), vec![ChunkInfo::new(0, node, 4, 0)]);
        // The metadata survives its JSON form (every node reads it from there).
        let info: FrameInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
        assert_eq!(info.columns, columns);
        let back = widen(&stored, &info.schema()).unwrap();
        for (i, f) in b.schema().fields().iter().enumerate() {
            if f.name() == "cat" {
                let as_text = cast(back.column(i), &DataType::Utf8).unwrap();
                assert_eq!(as_text.to_data(), b.column(i).to_data());
                continue;
            }
            assert_eq!(back.schema().field(i).data_type(), f.data_type(), "type of {}", f.name());
            assert_eq!(back.column(i).to_data(), b.column(i).to_data(), "values of {}", f.name());
        }
    }

    #[test]
    fn whole_second_micros_are_stored_as_seconds_and_widen_back() {
        let ts = TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None, Some(0)]).with_timezone("Europe/Paris");
        let b = RecordBatch::try_from_iter([("t", Arc::new(ts) as ArrayRef)]).unwrap();
        let (columns, target) = columns_for(&b.schema(), &[]).unwrap();
        let stored = narrow(conform(&b, &target).unwrap()).unwrap();
        assert_eq!(stored.column(0).data_type(), &DataType::Int32);
        let schema = Arc::new(Schema::new(vec![Field::new("t", columns[0].data_type(), true)]));
        assert_eq!(widen(&stored, &schema).unwrap().column(0).to_data(), b.column(0).to_data());
    }

    #[test]
    fn spark_decimals_are_kept_exact_with_precision_and_scale() {
        use arrow::array::Decimal128Array;
        let dec =
            |v: Vec<Option<i128>>, p: u8, s: i8| Arc::new(Decimal128Array::from(v).with_precision_and_scale(p, s).unwrap()) as ArrayRef;
        let b = RecordBatch::try_from_iter([
            ("half", dec(vec![Some(5), Some(-15), None], 22, 1)),
            ("max", dec(vec![Some(10i128.pow(38) - 1), None, Some(-(10i128.pow(38) - 1))], 38, 10)),
        ])
        .unwrap();
        let (columns, target) = columns_for(&b.schema(), &[]).unwrap();
        assert_eq!(columns[0].column_type, ColumnType::Real);
        assert_eq!(columns[0].arrow_type, Some(DataType::Decimal128(22, 1)));
        let stored = narrow(conform(&b, &target).unwrap()).unwrap();
        let node = eddy_common::NodeAddr::with_default_grpc([127, 0, 0, 1].into(), 1).unwrap();
        let info = FrameInfo::from_chunks("f", vec![], columns, vec![ChunkInfo::new(0, node, 3, 0)]);
        let info: FrameInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
        assert_eq!(widen(&stored, &info.schema()).unwrap(), b);
    }

    #[test]
    fn batches_without_columns_keep_their_rows() {
        let b = batch_of(Arc::new(Schema::empty()), vec![], 7).unwrap();
        let (columns, target) = columns_for(&b.schema(), &[]).unwrap();
        assert!(columns.is_empty());
        let stored = compact(narrow(conform(&b, &target).unwrap()).unwrap()).unwrap();
        assert_eq!(stored.num_rows(), 7);
        assert_eq!(widen(&stored, &Arc::new(Schema::empty())).unwrap().num_rows(), 7);
        let both = arrow::compute::concat_batches(&target, [&stored, &stored]).unwrap();
        assert_eq!(both.num_rows(), 14);
    }

    #[test]
    fn slices_of_one_message_are_counted_once_and_copied_out() {
        let b = spark_like();
        let bytes = crate::service::codec::to_ipc(&b.schema(), std::slice::from_ref(&b)).unwrap();
        let decoded = crate::service::codec::from_ipc(&bytes).unwrap().remove(0);
        let own = slice_bytes(&decoded);
        assert!(own < decoded.get_array_memory_size() as u64, "the columns share the message");
        let compacted = compact(decoded.clone()).unwrap();
        assert_eq!(compacted, decoded);
        assert!(compacted.get_array_memory_size() as u64 <= own + 64 * 11 * 3, "{} vs {own}", compacted.get_array_memory_size());
    }

    #[test]
    fn unsupported_types_and_unknown_categoricals_are_named() {
        let s = Schema::new(vec![Field::new("blob", DataType::Binary, true)]);
        let err = columns_for(&s, &[]).unwrap_err().to_string();
        assert!(err.contains("\"blob\"") && err.contains("Binary") && err.contains("cast"), "{err}");
        let s = Schema::new(vec![Field::new("a", DataType::Utf8, true)]);
        let err = columns_for(&s, &["b".into()]).unwrap_err().to_string();
        assert!(err.contains("no column \"b\""), "{err}");
    }
}
