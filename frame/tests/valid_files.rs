//! Valid files as users have them, each read exactly: quoted fields with newlines on one
//! worker and across many splits, a byte-order mark; and what is not CSV is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use eddy_frame::meta::JobStatus;
use eddy_frame::{FrameCloud, ImportRequest};
use support::{cloud, run};

/// Every row of a frame as text cells.
async fn all_rows(frames: &FrameCloud, id: &str) -> Vec<Vec<Option<String>>> {
    let rows = frames.frame(id).unwrap().rows;
    let mut out = Vec::new();
    while (out.len() as u64) < rows {
        out.extend(frames.rows(id, out.len() as u64, 10_000).await.unwrap());
    }
    out
}

/// RFC 4180 text: every tenth row's note holds a newline (some a CRLF), notes hold commas
/// and doubled quotes; with the values the rows hold.
fn quoted_dataset(rows: usize) -> (String, Vec<(i64, String)>) {
    let mut text = String::from("id,note,x\n");
    let mut expected = Vec::new();
    for i in 0..rows {
        let note = match i % 10 {
            0 => format!("line {i}\nnext \"line\""),
            5 => format!("crlf {i}\r\nand, comma"),
            3 => String::new(),
            _ => format!("plain {i}"),
        };
        let quoted = format!("\"{}\"", note.replace('"', "\"\""));
        text.push_str(&format!("{i},{quoted},{}\n", i % 7));
        expected.push((i as i64, note));
    }
    (text, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_newlines_are_one_record_on_one_worker_and_across_splits() {
    let dir = tempfile::tempdir().unwrap();
    let (text, expected) = quoted_dataset(4_000);
    let path = dir.path().join("notes.csv");
    std::fs::write(&path, &text).unwrap();
    for (workers, split_bytes) in [(1, None), (2, Some(4 << 10)), (2, Some(1500))] {
        let c = cloud(workers, 1 << 30).await;
        let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), split_bytes, ..Default::default() }).await;
        assert_eq!(job.status, JobStatus::Done, "{job:?}");
        assert_eq!((job.parse_report.bad_rows, job.parse_report.bad_cells), (0, 0), "{workers} workers: {:?}", job.parse_report);
        let id = job.dest.unwrap();
        let info = c.frames[0].frame(&id).unwrap();
        assert_eq!(info.rows, expected.len() as u64, "{workers} workers, splits of {split_bytes:?}");
        let rows = all_rows(&c.frames[0], &id).await;
        for (row, (i, note)) in rows.iter().zip(&expected) {
            assert_eq!(row[0].as_deref(), Some(i.to_string().as_str()));
            let want = (!note.is_empty()).then(|| note.clone());
            assert_eq!(row[1], want, "row {i}, {workers} workers, splits of {split_bytes:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_line_record_file_is_two_rows() {
    let c = cloud(1, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.csv");
    std::fs::write(&path, "a,b\n1,\"line1\nline2\"\n2,\"x\"\n").unwrap();
    let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.parse_report.bad_rows, 0, "{:?}", job.parse_report);
    let id = job.dest.unwrap();
    let rows = all_rows(&c.frames[0], &id).await;
    assert_eq!(rows, vec![vec![Some("1".into()), Some("line1\nline2".into())], vec![Some("2".into()), Some("x".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_order_mark_is_not_part_of_the_first_name_or_value() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let with_header = dir.path().join("bom.csv");
    std::fs::write(&with_header, "\u{feff}a,b\n1,x\n2,y\n").unwrap();
    let job = run(&c.frames[0], ImportRequest { path: with_header.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let info = c.frames[0].frame(job.dest.as_ref().unwrap()).unwrap();
    assert_eq!(info.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(info.rows, 2);

    let no_header = dir.path().join("bom_data.csv");
    std::fs::write(&no_header, "\u{feff}1,2\n3,4\n").unwrap();
    let job = run(&c.frames[0], ImportRequest { path: no_header.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.parse_report.bad_cells, 0, "{:?}", job.parse_report);
    let rows = all_rows(&c.frames[0], job.dest.as_ref().unwrap()).await;
    assert_eq!(rows[0][0].as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_input_and_unsupported_formats_are_refused_by_name() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x9e37_79b9_u32;
    let random: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let blob = dir.path().join("blob.csv");
    std::fs::write(&blob, &random).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: blob.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let err = job.error.unwrap();
    assert!(err.contains("blob.csv") && err.contains("not text"), "{err}");

    let orc = dir.path().join("part-0.orc");
    std::fs::write(&orc, b"ORC\x0a\x03\x00\x00\x00").unwrap();
    let job = run(&c.frames[0], ImportRequest { path: orc.display().to_string(), ..Default::default() }).await;
    assert!(job.error.unwrap().contains("ORC file"));
    assert!(c.frames[0].frames().is_empty(), "nothing was registered");
}

/// The reference dataset's shape: integers, two-decimal reals with gaps, a categorical of 10
/// levels and whole-second times; as CSV text and as one Arrow batch with plain strings.
fn reference_like(rows: usize) -> (String, arrow::array::RecordBatch) {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampSecondArray};
    use std::sync::Arc;
    let mut text = String::from("i1,f1,c10,ts\n");
    let (mut ints, mut reals, mut levels, mut times) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows as i64 {
        let int = (i * 7919) % 100_000;
        let real = (i % 101 != 0).then(|| ((i * 31) % 20_000) as f64 / 100.0);
        let level = format!("level{}", i % 10);
        let time = 1_600_000_000 + i * 17;
        let stamp = chrono::DateTime::from_timestamp(time, 0).unwrap().format("%Y-%m-%d %H:%M:%S");
        text.push_str(&format!("{int},{},{level},{stamp}\n", real.map(|r| r.to_string()).unwrap_or_default()));
        ints.push(int);
        reals.push(real);
        levels.push(level);
        times.push(time);
    }
    let batch = arrow::array::RecordBatch::try_from_iter([
        ("i1", Arc::new(Int64Array::from(ints)) as ArrayRef),
        ("f1", Arc::new(Float64Array::from(reals)) as ArrayRef),
        ("c10", Arc::new(StringArray::from(levels)) as ArrayRef),
        ("ts", Arc::new(TimestampSecondArray::from(times)) as ArrayRef),
    ])
    .unwrap();
    (text, batch)
}

fn write_parquet(path: &std::path::Path, batch: &arrow::array::RecordBatch, row_group_rows: usize) {
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_is_stored_as_narrow_as_csv_and_budgets_by_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let (text, batch) = reference_like(200_000);
    let csv = dir.path().join("ref.csv");
    std::fs::write(&csv, &text).unwrap();
    let pq = dir.path().join("ref.parquet");
    write_parquet(&pq, &batch, 50_000);
    let pq_size = std::fs::metadata(&pq).unwrap().len();
    // A budget under 4x the Parquet file per worker: row groups must be budgeted on their own.
    let c = cloud(2, pq_size * 3).await;
    let from_csv = run(&c.frames[0], ImportRequest { path: csv.display().to_string(), ..Default::default() }).await;
    assert_eq!(from_csv.status, JobStatus::Done, "{from_csv:?}");
    let csv_info = c.frames[0].frame(from_csv.dest.as_ref().unwrap()).unwrap();
    let from_pq = run(&c.frames[0], ImportRequest { path: pq.display().to_string(), ..Default::default() }).await;
    assert_eq!(from_pq.status, JobStatus::Done, "{from_pq:?}");
    let pq_info = c.frames[0].frame(from_pq.dest.as_ref().unwrap()).unwrap();
    assert_eq!(pq_info.rows, 200_000);
    assert_eq!(pq_info.chunks.len(), 4, "one chunk per row group");
    assert_eq!(pq_info.columns[2].column_type, eddy_frame::setup::ColumnType::Enum, "10 levels are a categorical, as in CSV");
    assert!(
        pq_info.bytes_in_memory <= csv_info.bytes_in_memory,
        "Parquet takes {} bytes, the same data from CSV {}",
        pq_info.bytes_in_memory,
        csv_info.bytes_in_memory
    );
    let (a, b) = (
        c.frames[0].summary(&csv_info.frame_id, eddy_frame::summary::DEFAULT_BINS).await.unwrap(),
        c.frames[0].summary(&pq_info.frame_id, eddy_frame::summary::DEFAULT_BINS).await.unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.count, x.missing, x.min, x.max, x.cardinality), (y.count, y.missing, y.min, y.max, y.cardinality), "{}", x.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_mixing_csv_and_parquet_is_refused_naming_both() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, batch) = reference_like(1_000);
    std::fs::write(dir.path().join("a.csv"), &text).unwrap();
    std::fs::write(dir.path().join("b.csv"), &text).unwrap();
    write_parquet(&dir.path().join("c"), &batch, 1_000);
    let job = run(&c.frames[0], ImportRequest { path: dir.path().display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let err = job.error.unwrap();
    assert!(err.contains("a.csv") && err.contains("/c is Parquet") && err.contains("mixes"), "{err}");
    assert!(c.frames[0].frames().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_infinities_are_summarised_not_a_failure() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inf.csv");
    let mut text = String::from("x,y\n");
    for i in 0..3000 {
        let x = match i % 100 {
            1 => "NaN".to_string(),
            2 => "inf".to_string(),
            3 => "-inf".to_string(),
            _ => format!("{}.5", i % 10),
        };
        text.push_str(&format!("{x},{i}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), split_bytes: Some(8 << 10), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let s = c.frames[1].summary(job.dest.as_ref().unwrap(), eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    let x = &s[0];
    assert_eq!((x.missing, x.positive_infinities, x.negative_infinities), (30, 30, 30), "{x:?}");
    assert_eq!(x.count, 2970);
    assert_eq!((x.min, x.max), (Some(0.5), Some(9.5)));
    let finite: Vec<f64> = (0..3000).filter(|i| !(1..=3).contains(&(i % 100))).map(|i| (i % 10) as f64 + 0.5).collect();
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    assert!((x.mean.unwrap() - mean).abs() < 1e-9, "{x:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_file_imports_every_column() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    let columns = 5_000;
    let mut text = (0..columns).map(|c| format!("c{c}")).collect::<Vec<_>>().join(",") + "\n";
    for r in 0..50 {
        text.push_str(&((0..columns).map(|c| ((r * c) % 97).to_string()).collect::<Vec<_>>().join(",") + "\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let info = c.frames[0].frame(job.dest.as_ref().unwrap()).unwrap();
    assert_eq!((info.rows, info.columns.len()), (50, columns));
    let s = c.frames[0].summary(&info.frame_id, eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    assert_eq!(s[columns - 1].max, Some(((0..50).map(|r| (r * (columns - 1)) % 97).max().unwrap()) as f64));
}
