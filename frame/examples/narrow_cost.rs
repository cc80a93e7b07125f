#![allow(clippy::unwrap_used, missing_docs)]
//! Times `narrow` on reference-like columns (1 M rows: four decimal reals, a time, two categoricals).
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampMillisecondArray};

fn main() {
    let n = 1_000_000usize;
    let mut x = 42u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let col = |digits: usize, scale: f64, next: &mut dyn FnMut() -> f64| -> ArrayRef {
        let v: Float64Array = (0..n).map(|_| Some(format!("{:.digits$}", next() * scale).parse::<f64>().unwrap_or(0.0))).collect();
        Arc::new(v)
    };
    let t: ArrayRef = Arc::new(TimestampMillisecondArray::from((0..n).map(|i| 1_600_000_000_000 + i as i64 * 1000).collect::<Vec<_>>()));
    let b = RecordBatch::try_from_iter([
        ("f1", col(6, 4.0, &mut next)),
        ("f2", col(3, 1000.0, &mut next)),
        ("f3", col(4, 300.0, &mut next)),
        ("f4", col(2, 20000.0, &mut next)),
        ("ts", t),
    ])
    .unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let narrow = eddy_frame::narrow::narrow(b.clone()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "narrow: {:.1} ms for {n} rows ({:.2} ns per value), {} -> {} bytes",
            secs * 1e3,
            secs * 1e9 / (5 * n) as f64,
            b.get_array_memory_size(),
            narrow.get_array_memory_size()
        );
    }
}
