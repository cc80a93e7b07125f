//! Import from and export to HDFS through real driver and worker processes, against the
//! protocol-level test HDFS (a NameNode speaking Hadoop IPC and DataNodes speaking
//! DataTransferProtocol on 127.0.0.1, from `eddy-hadoop-testkit`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_hadoop_testkit::MiniDfs;
use eddy_tests::frames::{csv_part as part, csv_part_values, parquet_rows, WatchedCloud};
use eddy_tests::*;

const WAIT: Duration = Duration::from_secs(90);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn driver(args: &[&str], log_dir: &std::path::Path) -> Command {
    let mut cmd = eddy_tests::frames::local_driver(log_dir);
    cmd.args(args);
    cmd.env("HADOOP_USER_NAME", "eddy-analyst").env_remove("HADOOP_CONF_DIR");
    cmd
}

#[test]
fn imports_multi_block_directories_from_hdfs_and_reports_missing_paths() {
    let rt = runtime();
    let dfs = rt.block_on(MiniDfs::builder().datanodes(3).block_size(64 * 1024).replication(2).start()).unwrap();
    let (a, b) = (part(0, 20_000), part(20_000, 10_000));
    dfs.put("/warehouse/t1/part-0.csv", a.clone());
    dfs.put("/warehouse/t1/part-1.csv", b.clone());
    dfs.put("/warehouse/t1/_SUCCESS", Vec::new());
    dfs.put("/warehouse/t1/.part-0.csv.crc", b"not data".to_vec());
    assert!(dfs.block_count("/warehouse/t1/part-0.csv") >= 4, "the test file should span several blocks");
    let logs = tempfile::tempdir().unwrap();

    let url = format!("{}/warehouse/t1", dfs.url());
    let mut d = Proc::spawn(driver(&["--check", "--import", &url], logs.path()));
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("rows x 3 columns") && out.contains(": 30000 rows"), "{out}");
    // id 0..30000: min 0, max 29999, mean 14999.5 (from how the parts were made).
    let id = out.lines().find(|l| l.starts_with("id ")).unwrap();
    let cells: Vec<&str> = id.split_whitespace().collect();
    assert_eq!(&cells[1..7], &["int", "30000", "0", "0", "29999", "14999.5000"], "{id}");
    let served: Vec<u64> = dfs.datanode_stores().iter().map(|s| s.bytes_served()).collect();
    assert!(served.iter().filter(|&&n| n > 0).count() >= 2, "blocks were read from one DataNode only: {served:?}");
    assert!(served.iter().sum::<u64>() >= (a.len() + b.len()) as u64, "{served:?}");

    let missing = format!("{}/warehouse/nothing-here.csv", dfs.url());
    let mut d = Proc::spawn(driver(&["--check", "--import", &missing], logs.path()));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains(&missing) && out.contains("no such file"), "{out}");

    // A NameNode that is down: a clear error naming the URL, not a hang.
    dfs.stop_namenode();
    let mut d = Proc::spawn(driver(&["--check", "--import", &url], logs.path()));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains(&url) && out.contains("cannot reach the file system"), "{out}");
    assert!(!out.contains("WARN"), "retries should not be logged as warnings: {out}");
    drop(rt);
}

#[test]
fn frames_export_to_hdfs_as_the_hadoop_user() {
    let rt = runtime();
    let dfs = rt.block_on(MiniDfs::builder().datanodes(2).block_size(32 * 1024).start()).unwrap();
    let text = part(0, 6000);
    dfs.put("/in/data.csv", text.clone());
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = driver(&[], &dir.path().join("logs"));
    cmd.arg("--notify").arg(&notify);
    let cloud = WatchedCloud::start(cmd, &notify, WAIT);
    let (frame, job) = cloud.import(serde_json::json!({"path": format!("{}/in/data.csv", dfs.url()), "split_bytes": 40_000}), WAIT);
    assert!(!frame.is_empty(), "{job}");

    let one = cloud.post(
        &format!("/3/Frames/{frame}/export"),
        serde_json::json!({"path": format!("{}/out/all.csv", dfs.url()), "format": "csv", "single_file": true}),
    );
    assert_eq!(one["export"]["files"][0], format!("{}/out/all.csv", dfs.url()), "{one}");
    let exported = csv_part_values(&String::from_utf8(dfs.read("/out/all.csv").expect("no /out/all.csv on HDFS")).unwrap());
    assert!(exported == csv_part_values(&text), "the CSV exported to HDFS holds other values ({} rows)", exported.len());
    assert_eq!(dfs.owner("/out/all.csv").as_deref(), Some("eddy-analyst"), "files are written as HADOOP_USER_NAME");
    assert!(dfs.block_count("/out/all.csv") >= 2, "the export should span several blocks");

    let many =
        cloud.post(&format!("/3/Frames/{frame}/export"), serde_json::json!({"path": format!("{}/out/pq", dfs.url()), "format": "parquet"}));
    let files = dfs.files_under("/out/pq");
    assert!(files.len() >= 2, "one file per chunk expected: {files:?}");
    assert_eq!(files.len(), many["export"]["files"].as_array().unwrap().len(), "{many}");
    assert!(files.iter().all(|f| !f.contains(".tmp")), "temporary files left behind: {files:?}");
    let rows: usize = files.iter().map(|f| parquet_rows(dfs.read(f).unwrap())).sum();
    assert_eq!(rows, 6000);
    cloud.stop(WAIT);
    drop(rt);
}
