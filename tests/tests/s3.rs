//! Import from a real S3 server (SeaweedFS on 127.0.0.1): a directory of parts, an s3a://
//! glob, and a missing object, through real driver and worker processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_tests::frames::{csv_part as part, csv_part_values, local_driver, parquet_rows, WatchedCloud};
use eddy_tests::s3::S3Server;
use eddy_tests::*;

const WAIT: Duration = Duration::from_secs(90);

fn import(server: &S3Server, url: &str) -> (bool, String) {
    import_with(server, url, &[])
}

fn import_with(server: &S3Server, url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = local_driver(dir.path());
    cmd.args(["--check", "--import", url]);
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    cmd.envs(env.iter().copied());
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    (status.success(), d.output())
}

#[test]
fn imports_directories_and_globs_from_s3_and_reports_missing_objects() {
    let server = S3Server::start("lake");
    server.put("tables/t1/part-0.csv", part(0, 3000).as_bytes());
    server.put("tables/t1/part-1.csv", part(3000, 2000).as_bytes());
    server.put("tables/t1/_SUCCESS", b"");
    server.put("tables/other.csv", part(0, 10).as_bytes());

    let (ok, out) = import(&server, "s3://lake/tables/t1");
    assert!(ok, "{out}");
    assert!(out.contains("rows x 3 columns") && out.contains(": 5000 rows"), "{out}");
    // id 0..5000: mean 2499.5, min 0, max 4999 (computed from how the parts were made).
    let id = out.lines().find(|l| l.starts_with("id ")).unwrap();
    let cells: Vec<&str> = id.split_whitespace().collect();
    assert_eq!(&cells[1..7], &["int", "5000", "0", "0", "4999", "2499.5000"], "{id}");
    let kind = out.lines().find(|l| l.starts_with("kind ")).unwrap();
    assert!(kind.contains("3 levels"), "{kind}");

    let (ok, out) = import(&server, "s3a://lake/tables/t1/part-*.csv");
    assert!(ok, "{out}");
    assert!(out.contains(": 5000 rows"), "{out}");

    // The same object over plain HTTP (the filer serves ranged GETs): object_store's http store.
    // The filer is on loopback, which http(s) imports refuse unless it is allowed by name (the
    // driver hands EDDY_HTTP_ALLOW_HOSTS to its workers).
    let http_url = format!("{}/buckets/lake/tables/t1/part-0.csv", server.filer_url);
    let (ok, out) = import(&server, &http_url);
    assert!(!ok && out.contains("loopback") && out.contains("EDDY_HTTP_ALLOW_HOSTS"), "{out}");
    let (ok, out) = import_with(&server, &http_url, &[("EDDY_HTTP_ALLOW_HOSTS", "127.0.0.1")]);
    assert!(ok, "{out}");
    assert!(out.contains(": 3000 rows"), "{out}");

    let (ok, out) = import(&server, "s3://lake/tables/nothing-here.csv");
    assert!(!ok);
    assert!(out.contains("s3://lake/tables/nothing-here.csv") && out.contains("no such file"), "{out}");
}

#[test]
fn frames_export_back_to_s3_as_csv_and_parquet() {
    let server = S3Server::start("out");
    server.put("in/data.csv", part(0, 4000).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = local_driver(&dir.path().join("logs"));
    cmd.arg("--notify").arg(&notify);
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    let cloud = WatchedCloud::start(cmd, &notify, WAIT);
    let (frame, job) = cloud.import(serde_json::json!({"path": "s3://out/in/data.csv"}), WAIT);
    assert!(!frame.is_empty(), "{job}");

    let one = cloud.post(
        &format!("/3/Frames/{frame}/export"),
        serde_json::json!({"path": "s3://out/export/all.csv", "format": "csv", "single_file": true}),
    );
    assert_eq!(one["export"]["files"][0], "s3://out/export/all.csv", "{one}");
    let exported = csv_part_values(&String::from_utf8(server.get("export/all.csv")).unwrap());
    let original = csv_part_values(&part(0, 4000));
    assert!(
        exported == original,
        "the CSV exported to S3 holds other values than the imported one ({} vs {} rows)",
        exported.len(),
        original.len()
    );

    let many = cloud.post(&format!("/3/Frames/{frame}/export"), serde_json::json!({"path": "s3://out/export/pq", "format": "parquet"}));
    let keys = server.list("export/pq");
    assert_eq!(keys.len(), many["export"]["files"].as_array().unwrap().len(), "{many}");
    let rows: usize = keys.iter().map(|k| parquet_rows(server.get(k))).sum();
    assert_eq!(rows, 4000);

    // An object of many MiB read as one split: the records come out whole and in order
    // (strict parsing fails on a record cut wrong).
    let rows = 1_200_000;
    let text = part(0, rows);
    assert!(text.len() > 8 << 20);
    server.put("in/big.csv", text.as_bytes());
    let (big, job) = cloud.import(serde_json::json!({"path": "s3://out/in/big.csv", "split_bytes": 64 << 20, "strict": true}), WAIT);
    assert!(!big.is_empty(), "{job}");
    let summary: serde_json::Value = cloud.http.get(format!("{}/3/Frames/{big}/summary", cloud.base)).send().unwrap().json().unwrap();
    let id = &summary["columns"][0];
    assert_eq!(
        (id["count"].as_u64(), id["min"].as_f64(), id["max"].as_f64()),
        (Some(rows as u64), Some(0.0), Some(rows as f64 - 1.0)),
        "{id}"
    );
    assert!((id["mean"].as_f64().unwrap() - (rows as f64 - 1.0) / 2.0).abs() < 1e-6, "{id}");
    cloud.stop(WAIT);
}
