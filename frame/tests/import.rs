//! Frames on an in-process cloud of two workers on 127.0.0.1, checked against values
//! computed independently from the CSV text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use eddy_frame::meta::JobStatus;
use eddy_frame::ImportRequest;
use support::{cloud, run};

/// A CSV with an integer, a float with gaps, and a category, plus its expected statistics
/// computed by a plain fold over the generated values.
fn dataset(rows: usize) -> (String, Vec<i64>, Vec<Option<f64>>, Vec<&'static str>) {
    let mut text = String::from("id,x,cat\n");
    let (mut ids, mut xs, mut cats) = (Vec::new(), Vec::new(), Vec::new());
    let levels = ["red", "green", "blue"];
    for i in 0..rows {
        let id = (i as i64 * 7919) % 1000 - 500;
        let x = if i % 13 == 0 { None } else { Some((i as f64) * 0.25 - 100.0) };
        let cat = levels[(i * 7 + i / 5) % 3];
        text.push_str(&format!("{id},{},{cat}\n", x.map(|v| v.to_string()).unwrap_or_default()));
        ids.push(id);
        xs.push(x);
        cats.push(cat);
    }
    (text, ids, xs, cats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_spreads_chunks_and_summary_matches_an_independent_fold() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, ids, xs, cats) = dataset(20_000);
    let path = dir.path().join("data.csv");
    std::fs::write(&path, &text).unwrap();
    let job =
        run(&c.frames[0], ImportRequest { path: path.display().to_string(), split_bytes: Some(16 << 10), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    // Progress in bytes ends at the input's size: splits read past their ends, but each
    // counts only its own range.
    assert_eq!((job.bytes_read, job.bytes_total), (text.len() as u64, text.len() as u64), "{job:?}");
    let id = job.dest.unwrap();
    // Every node knows the frame; both hold chunks.
    let info = c.frames[1].frame(&id).unwrap();
    assert_eq!(info.rows, 20_000);
    assert_eq!(info.nodes().len(), 2);
    assert!(info.chunks.len() > 2);

    let summary = c.frames[1].summary(&id, eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    let s_id = &summary[0];
    let n = ids.len() as f64;
    let mean = ids.iter().sum::<i64>() as f64 / n;
    let sd = (ids.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert_eq!(s_id.column_type, "int");
    assert_eq!(s_id.count, 20_000);
    assert_eq!(s_id.min, Some(*ids.iter().min().unwrap() as f64));
    assert_eq!(s_id.max, Some(*ids.iter().max().unwrap() as f64));
    assert!((s_id.mean.unwrap() - mean).abs() < 1e-9);
    assert!((s_id.sd.unwrap() - sd).abs() < 1e-6);
    assert_eq!(s_id.zeros, ids.iter().filter(|v| **v == 0).count() as u64);
    // The histogram is a second pass over both nodes' chunks: every value in one bin.
    let histogram = s_id.histogram.as_ref().expect("an int column has a histogram");
    assert_eq!(histogram.counts.len(), eddy_frame::summary::DEFAULT_BINS);
    assert_eq!(histogram.counts.iter().sum::<u64>(), 20_000);
    let first_bin_end = histogram.start + histogram.width;
    assert_eq!(histogram.counts[0], ids.iter().filter(|v| (**v as f64) < first_bin_end).count() as u64);

    let s_x = &summary[1];
    let present: Vec<f64> = xs.iter().flatten().copied().collect();
    assert_eq!(s_x.missing, (xs.len() - present.len()) as u64);
    assert!((s_x.mean.unwrap() - present.iter().sum::<f64>() / present.len() as f64).abs() < 1e-9);

    let s_c = &summary[2];
    assert_eq!(s_c.column_type, "enum");
    assert_eq!(s_c.cardinality, Some(3));
    let reds = cats.iter().filter(|c| **c == "red").count() as u64;
    assert!(s_c.top_levels.contains(&("red".to_string(), reds)), "{:?}", s_c.top_levels);

    // Rows come back in file order across chunks and nodes.
    let rows = c.frames[0].rows(&id, 4_999, 3).await.unwrap();
    assert_eq!(rows.len(), 3);
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row[0].as_deref(), Some(ids[4_999 + k].to_string().as_str()));
    }

    // Delete frees the memory on every node.
    c.frames[0].delete(&id).await.unwrap();
    assert!(c.frames[1].frame(&id).is_err());
    assert!(c.frames.iter().all(|f| f.frames().is_empty()));
    // The lock spreads with the heartbeats; give it a few rounds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !c.nodes.iter().all(|n| n.view().locked.is_some()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(c.nodes.iter().all(|n| n.view().locked.is_some()), "import is work: the cloud locks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_counted_and_strict_fails_without_leaving_a_frame() {
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    let mut text = String::from("a,b\n");
    for i in 0..500 {
        text.push_str(&format!("{i},{}.5\n", i * 2));
    }
    text.push_str("oops,1.0\n7\n");
    std::fs::write(&path, &text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.parse_report.bad_rows, 1, "{job:?}");
    assert_eq!(job.parse_report.bad_cells, 1);
    let offset = text.find("oops").unwrap() as u64;
    assert!(job.parse_report.examples.iter().any(|e| e.offset == offset && e.column.as_deref() == Some("a")), "{:?}", job.parse_report);
    let info = c.frames[0].frame(job.dest.as_ref().unwrap()).unwrap();
    assert_eq!(info.rows, 502);

    let strict = run(
        &c.frames[0],
        ImportRequest {
            path: path.display().to_string(),
            strict: true,
            destination_frame: Some("strict.hex".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(strict.status, JobStatus::Failed);
    assert!(strict.error.unwrap().contains("bad.csv"));
    assert!(c.frames.iter().all(|f| f.frame("strict.hex").is_err()), "nothing half-registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_empty_files_and_memory_limits_give_clear_answers() {
    let c = cloud(2, 1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = run(&c.frames[0], ImportRequest { path: dir.path().join("nope.csv").display().to_string(), ..Default::default() }).await;
    assert_eq!(missing.status, JobStatus::Failed);
    assert!(missing.error.unwrap().contains("nope.csv"));

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "a,b\n").unwrap();
    let job = run(&c.frames[0], ImportRequest { path: empty.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(c.frames[0].frame(job.dest.as_ref().unwrap()).unwrap().rows, 0);

    let big = dir.path().join("big.csv");
    let (text, ..) = dataset(200_000);
    std::fs::write(&big, text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: big.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Failed);
    let err = job.error.unwrap();
    assert!(err.contains("out of memory budget") && err.contains("--memory"), "{err}");
    assert!(c.frames.iter().all(|f| f.frames().len() == 1), "only the empty frame remains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_matches_an_independent_fold_and_export_reads_back() {
    use eddy_frame::codec::ExportFormat;
    use eddy_frame::groupby::{Agg, AggOp, GroupByRequest};
    use eddy_frame::ExportRequest;

    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, ids, xs, cats) = dataset(9_000);
    let path = dir.path().join("g.csv");
    std::fs::write(&path, &text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: path.display().to_string(), split_bytes: Some(8 << 10), ..Default::default() }).await;
    let id = job.dest.unwrap();

    let request = GroupByRequest {
        by: vec!["cat".into()],
        aggs: vec![
            Agg { op: AggOp::Mean, column: "x".into() },
            Agg { op: AggOp::Max, column: "id".into() },
            Agg { op: AggOp::Count, column: "x".into() },
        ],
        destination_frame: None,
        replicas: None,
    };
    let result = c.frames[1].group_by(&id, &request).await.unwrap();
    assert_eq!(result.rows, 3);
    let rows = c.frames[0].rows(&result.frame_id, 0, 10).await.unwrap();
    for row in rows {
        let cat = row[0].clone().unwrap();
        let members: Vec<usize> = (0..ids.len()).filter(|i| cats[*i] == cat).collect();
        let present: Vec<f64> = members.iter().filter_map(|i| xs[*i]).collect();
        assert_eq!(row[1].as_deref().unwrap().parse::<u64>().unwrap(), members.len() as u64, "nrow of {cat}");
        let mean: f64 = row[2].as_deref().unwrap().parse().unwrap();
        assert!((mean - present.iter().sum::<f64>() / present.len() as f64).abs() < 1e-9);
        let max: f64 = row[3].as_deref().unwrap().parse().unwrap();
        assert_eq!(max, members.iter().map(|i| ids[*i]).max().unwrap() as f64);
        assert_eq!(row[4].as_deref().unwrap().parse::<f64>().unwrap(), present.len() as f64);
    }
    let bad =
        c.frames[0].group_by(&id, &GroupByRequest { by: vec!["nope".into()], aggs: vec![], destination_frame: None, replicas: None }).await;
    assert!(bad.unwrap_err().to_string().contains("no column \"nope\""));

    // Export: one CSV file per chunk, written by the workers that hold them.
    let out = dir.path().join("out");
    let exported = c.frames[0]
        .export(&id, &ExportRequest { path: out.display().to_string(), format: ExportFormat::Csv, single_file: false })
        .await
        .unwrap();
    assert_eq!(exported.files.len(), c.frames[0].frame(&id).unwrap().chunks.len());
    let mut back_ids = Vec::new();
    for f in std::fs::read_dir(&out).unwrap() {
        let body = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(body.starts_with("id,x,cat\n"));
        back_ids.extend(body.lines().skip(1).map(|l| l.split(',').next().unwrap().parse::<i64>().unwrap()));
    }
    back_ids.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(back_ids, want);
    // Group-bys and exports are jobs of the node that ran them, failures included.
    let jobs = c.frames[0].jobs();
    let described = |prefix: &str| jobs.iter().filter(|j| j.description.starts_with(prefix)).collect::<Vec<_>>();
    let export = described("Export ");
    assert!(export.len() == 1 && export[0].status == JobStatus::Done && export[0].rows == 9_000, "{jobs:?}");
    let failed = described("Group ");
    assert!(failed.len() == 1 && failed[0].status == JobStatus::Failed, "{jobs:?}");
    assert!(failed[0].error.as_deref().unwrap_or_default().contains("nope"), "{jobs:?}");
    let grouped = c.frames[1].jobs();
    let grouped: Vec<_> = grouped.iter().filter(|j| j.description.starts_with("Group ")).collect();
    assert!(grouped.len() == 1 && grouped[0].dest.as_deref() == Some(result.frame_id.as_str()) && grouped[0].rows == 3, "{grouped:?}");

    // Export: a single Parquet file, read back with the parquet crate.
    let single = dir.path().join("all.parquet");
    c.frames[1]
        .export(&id, &ExportRequest { path: single.display().to_string(), format: ExportFormat::Parquet, single_file: true })
        .await
        .unwrap();
    let file = std::fs::File::open(&single).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 9_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_arrow_files_import_to_the_same_frame_and_corrupt_files_fail_cleanly() {
    use eddy_frame::codec::ExportFormat;
    use eddy_frame::ExportRequest;

    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, ids, ..) = dataset(6_000);
    let csv = dir.path().join("src.csv");
    std::fs::write(&csv, &text).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: csv.display().to_string(), split_bytes: Some(16 << 10), ..Default::default() }).await;
    let id = job.dest.unwrap();
    let original = c.frames[0].summary(&id, eddy_frame::summary::DEFAULT_BINS).await.unwrap();

    // Parquet: a directory of parts (several row groups in all) read back by row group.
    let pq_dir = dir.path().join("pq");
    c.frames[0]
        .export(&id, &ExportRequest { path: pq_dir.display().to_string(), format: ExportFormat::Parquet, single_file: false })
        .await
        .unwrap();
    let job = run(&c.frames[1], ImportRequest { path: pq_dir.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    assert_eq!(job.bytes_read, job.bytes_total, "{job:?}");
    assert_eq!(job.rows, ids.len() as u64, "{job:?}");
    let back = c.frames[1].frame(job.dest.as_ref().unwrap()).unwrap();
    assert_eq!(back.rows, ids.len() as u64);
    assert!(back.chunks.len() > 1, "one chunk per row group");
    let summary = c.frames[1].summary(&back.frame_id, eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    for (a, b) in original.iter().zip(&summary) {
        assert_eq!((a.count, a.missing, a.min, a.max), (b.count, b.missing, b.min, b.max), "{}", a.label);
        assert_eq!(a.cardinality, b.cardinality, "{}", a.label);
    }

    // Arrow IPC file written by arrow itself.
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "v",
        arrow::datatypes::DataType::Int32,
        true,
    )]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(arrow::array::Int32Array::from((0..1000).collect::<Vec<i32>>()))],
    )
    .unwrap();
    let ipc_path = dir.path().join("v.arrow");
    let mut w = arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(&ipc_path).unwrap(), &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    let job = run(&c.frames[0], ImportRequest { path: ipc_path.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let s = c.frames[0].summary(job.dest.as_ref().unwrap(), eddy_frame::summary::DEFAULT_BINS).await.unwrap();
    assert_eq!((s[0].column_type.as_str(), s[0].count, s[0].max), ("int", 1000, Some(999.0)));

    // Text columns written as plain strings (dictionary-encoded pages, as pyarrow and Spark
    // write them): the few-valued one becomes categorical, read as a dictionary, with every
    // row's level, missing ones included; the many-valued one stays text.
    let rows = 5_000usize;
    let kinds: Vec<Option<&str>> = (0..rows).map(|i| (i % 7 != 3).then_some(["red", "green", "blue"][i % 3])).collect();
    let names: Vec<String> = (0..rows).map(|i| format!("name-{i}")).collect();
    let text = arrow::array::RecordBatch::try_from_iter([
        ("kind", std::sync::Arc::new(arrow::array::StringArray::from(kinds.clone())) as arrow::array::ArrayRef),
        ("name", std::sync::Arc::new(arrow::array::StringArray::from(names.clone())) as arrow::array::ArrayRef),
    ])
    .unwrap();
    let text_path = dir.path().join("text.parquet");
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2_000)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&text_path).unwrap(), text.schema(), Some(props)).unwrap();
    w.write(&text).unwrap();
    w.close().unwrap();
    let job = run(&c.frames[0], ImportRequest { path: text_path.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let id = job.dest.unwrap();
    let s = c.frames[0].summary(&id, 0).await.unwrap();
    assert_eq!(
        (s[0].column_type.as_str(), s[0].cardinality, s[0].missing),
        ("enum", Some(3), kinds.iter().filter(|k| k.is_none()).count() as u64),
        "{:?}",
        s[0]
    );
    assert_eq!(s[1].column_type.as_str(), "string", "{:?}", s[1]);
    let back = c.frames[0].rows(&id, 0, rows as u64).await.unwrap();
    let got: Vec<(Option<String>, Option<String>)> = back.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let want: Vec<(Option<String>, Option<String>)> =
        kinds.iter().zip(&names).map(|(k, n)| (k.map(String::from), Some(n.clone()))).collect();
    assert!(got == want, "the rows read back differ from those written");

    // A truncated Parquet file fails the job with its name; nothing is left behind.
    let bad = dir.path().join("broken.parquet");
    std::fs::write(&bad, b"PAR1 this is not really parquet").unwrap();
    let frames_before = c.frames[0].frames().len();
    let job = run(&c.frames[0], ImportRequest { path: bad.display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.as_ref().unwrap().contains("broken.parquet"), "{job:?}");
    assert_eq!(c.frames[0].frames().len(), frames_before);
    assert!(c.nodes.iter().all(|n| n.view().healthy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_zstd_csv_are_read_whole_and_truncated_gzip_fails() {
    use std::io::Write;
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, ids, ..) = dataset(30_000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(dir.path().join("d.csv.gz"), &gz).unwrap();
    std::fs::write(dir.path().join("d.csv.zst"), zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    for name in ["d.csv.gz", "d.csv.zst"] {
        let job = run(&c.frames[0], ImportRequest { path: dir.path().join(name).display().to_string(), ..Default::default() }).await;
        assert_eq!(job.status, JobStatus::Done, "{name}: {job:?}");
        let s = c.frames[0].summary(job.dest.as_ref().unwrap(), eddy_frame::summary::DEFAULT_BINS).await.unwrap();
        assert_eq!(s[0].count, ids.len() as u64, "{name}");
        assert_eq!(s[0].max, Some(*ids.iter().max().unwrap() as f64));
    }
    std::fs::write(dir.path().join("cut.csv.gz"), &gz[..gz.len() * 2 / 3]).unwrap();
    let job = run(&c.frames[0], ImportRequest { path: dir.path().join("cut.csv.gz").display().to_string(), ..Default::default() }).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.as_ref().unwrap().contains("cut.csv.gz") && job.error.as_ref().unwrap().contains("decompress"), "{job:?}");
    assert!(c.nodes.iter().all(|n| n.view().healthy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_by_of_many_groups_pages_its_partials_and_spreads_its_result() {
    use eddy_frame::groupby::{Agg, AggOp, GroupByRequest};
    // 300,000 distinct keys: more groups than one page of partials holds, and a result of
    // more rows than one chunk of a result frame.
    let c = cloud(2, 1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = 300_000i64;
    let mut text = String::from("k,x\n");
    for i in 0..keys + 1_000 {
        text.push_str(&format!("{},{}\n", (i * 7919) % keys, i % 10));
    }
    let path = dir.path().join("many.csv");
    std::fs::write(&path, &text).unwrap();
    let job =
        run(&c.frames[0], ImportRequest { path: path.display().to_string(), split_bytes: Some(256 << 10), ..Default::default() }).await;
    let id = job.dest.unwrap();
    let request = GroupByRequest {
        by: vec!["k".into()],
        aggs: vec![Agg { op: AggOp::Sum, column: "x".into() }],
        destination_frame: Some("many_by_k".into()),
        replicas: None,
    };
    let result = c.frames[1].group_by(&id, &request).await.unwrap();
    assert_eq!(result.rows, keys as u64);
    assert_eq!(result.nodes().len(), 2, "the result's chunks are spread: {:?}", result.chunks);
    let total_rows: u64 = result.chunks.iter().map(|c| c.rows).sum();
    assert_eq!(total_rows, keys as u64);
    // The keys that the last 1,000 rows repeat have two rows; the others one.
    let summary = c.frames[0].summary("many_by_k", 0).await.unwrap();
    let nrow = summary.iter().find(|s| s.label == "nrow").unwrap();
    assert_eq!((nrow.min, nrow.max, nrow.count), (Some(1.0), Some(2.0), keys as u64));
    assert!((nrow.mean.unwrap() - (keys + 1_000) as f64 / keys as f64).abs() < 1e-12);
}
