//! Valid files as users have them, each read exactly: quoted fields with newlines on one
//! worker and across many splits, a byte-order mark; and what is not CSV is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Duration;

use eddy_frame::meta::{JobState, JobStatus};
use eddy_frame::{FrameCloud, ImportRequest};
use support::cloud;

async fn run(frames: &FrameCloud, request: ImportRequest) -> JobState {
    let key = frames.start_import(request);
    for _ in 0..1200 {
        let job = frames.job(&key).unwrap();
        if job.status != JobStatus::Running {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import did not finish");
}

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
