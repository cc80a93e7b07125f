//! Frames end to end: real driver and workers on 127.0.0.1 import files and answer REST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_tests::*;
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(60);

/// Independent statistics of a numeric column of a CSV file, by a plain fold over its text.
fn column_stats(text: &str, column: usize) -> (u64, u64, f64, f64, f64) {
    let (mut count, mut missing, mut sum) = (0u64, 0u64, 0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in text.lines().skip(1) {
        let cell = line.split(',').nth(column).unwrap();
        if cell.is_empty() {
            missing += 1;
            continue;
        }
        let v: f64 = cell.parse().unwrap();
        count += 1;
        sum += v;
        min = min.min(v);
        max = max.max(v);
    }
    (count, missing, min, max, sum / count as f64)
}

#[test]
fn local_check_imports_the_sample_and_prints_a_correct_summary() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample.csv");
    let text = std::fs::read_to_string(sample).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = eddy_tests::frames::local_driver(dir.path());
    cmd.args(["--check", "--import", sample]);
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(FORM);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("Frame sample.hex: 5000 rows x 11 columns"), "{out}");
    // f2 (column 5): count, missing, min, max, mean as printed by the driver.
    let (count, missing, min, max, mean) = column_stats(&text, 5);
    let line = out.lines().find(|l| l.starts_with("f2 ")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "real");
    assert_eq!(cells[2].parse::<u64>().unwrap(), count);
    assert_eq!(cells[3].parse::<u64>().unwrap(), missing);
    assert!((cells[4].parse::<f64>().unwrap() - min).abs() < 1e-3);
    assert!((cells[5].parse::<f64>().unwrap() - max).abs() < 1e-3);
    assert!((cells[6].parse::<f64>().unwrap() - mean).abs() < 1e-3);
    let c10 = out.lines().find(|l| l.starts_with("c10 ")).unwrap();
    assert!(c10.contains("enum") && c10.contains("10 levels"), "{c10}");
}

#[test]
fn rest_import_jobs_frames_summary_rows_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let data = dir.path().join("people.csv");
    // Eleven rows: ten ages are numbers, one is not (a bad cell), one is missing.
    let mut text = String::from("name,age,city\nann,34,paris\nbob,,rome\ncid,51,paris\ndan,x,rome\n");
    for (i, name) in ["eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lea"].iter().enumerate() {
        text.push_str(&format!("{name},{},{}\n", 20 + i, if i % 2 == 0 { "paris" } else { "rome" }));
    }
    std::fs::write(&data, text).unwrap();
    let mut cmd = eddy_tests::frames::local_driver(&dir.path().join("logs"));
    cmd.arg("--notify").arg(&notify);
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", FORM);
    let notified = read_notify(&notify);
    let leader = notified.leader.clone();
    d.extra_pids = cloud_pids(&leader);
    let base = format!("http://{leader}");
    let token = notified.token_opt.clone().expect("REST authentication is on by default");
    let http = client_with_token(Some(&token), Duration::from_secs(30));

    let setup: Value = http.post(format!("{base}/3/ParseSetup")).json(&json!({ "path": data })).send().unwrap().json().unwrap();
    assert_eq!(setup["setup"]["column_names"], json!(["name", "age", "city"]), "{setup}");
    assert_eq!(setup["setup"]["column_types"][1], "int");

    let r: Value = http.post(format!("{base}/3/ImportFiles")).json(&json!({ "path": data })).send().unwrap().json().unwrap();
    let key = r["job"]["key"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    wait_until("the import job finishes", FORM, || {
        job = http.get(format!("{base}/3/Jobs/{key}")).send().unwrap().json().unwrap();
        job["jobs"][0]["status"] != "RUNNING"
    });
    let job = &job["jobs"][0];
    assert_eq!(job["status"], "DONE", "{job}");
    assert_eq!(job["parse_report"]["bad_cells"], 1, "{job}");
    let frame = job["dest"].as_str().unwrap().to_string();

    let frames: Value = http.get(format!("{base}/3/Frames")).send().unwrap().json().unwrap();
    assert_eq!(frames["frames"][0]["frame_id"], frame.as_str());
    assert_eq!(frames["frames"][0]["rows"], 12);

    let summary: Value = http.get(format!("{base}/3/Frames/{frame}/summary")).send().unwrap().json().unwrap();
    let age = &summary["columns"][1];
    assert_eq!((age["count"].as_u64(), age["missing"].as_u64()), (Some(10), Some(2)), "{age}");
    let ages = [34.0, 51.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0];
    assert!((age["mean"].as_f64().unwrap() - ages.iter().sum::<f64>() / 10.0).abs() < 1e-9, "{age}");
    assert_eq!(summary["columns"][2]["cardinality"], 2);

    let rows: Value = http.get(format!("{base}/3/Frames/{frame}?row_offset=1&row_count=2")).send().unwrap().json().unwrap();
    assert_eq!(rows["rows"], json!([["bob", null, "rome"], ["cid", "51", "paris"]]));

    // The same frame through the CLI against the running cloud.
    let mut imp = Command::new(bin("eddy-driver"));
    imp.args(["import", "--cloud", &base, "--token", &token]).arg(&data);
    let mut imp = Proc::spawn(imp);
    assert!(imp.wait_exit(FORM).success(), "{}", imp.output());
    assert!(imp.output().contains("Frame people_2.hex: 12 rows x 3 columns"), "{}", imp.output());

    let del = http.delete(format!("{base}/3/Frames/{frame}")).send().unwrap();
    assert_eq!(del.status().as_u16(), 200);
    let gone = http.get(format!("{base}/3/Frames/{frame}/summary")).send().unwrap();
    assert_eq!(gone.status().as_u16(), 404);

    let missing: Value =
        http.post(format!("{base}/3/ImportFiles")).json(&json!({ "path": "/no/such/file.csv" })).send().unwrap().json().unwrap();
    let key = missing["job"]["key"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    wait_until("the failing job ends", FORM, || {
        job = http.get(format!("{base}/3/Jobs/{key}")).send().unwrap().json().unwrap();
        job["jobs"][0]["status"] != "RUNNING"
    });
    assert_eq!(job["jobs"][0]["status"], "FAILED");
    assert!(job["jobs"][0]["error"].as_str().unwrap().contains("/no/such/file.csv"));
    // The cloud is still healthy after a failed import.
    assert_eq!(get_json(&format!("{base}/3/Cloud")).unwrap()["cloud_healthy"], true);

    // The index lists every route the node serves, the frame routes too, and so does the
    // OpenAPI document generated from the same routes.
    let index = http.get(format!("{base}/")).send().unwrap().text().unwrap();
    let openapi = get_json(&format!("{base}/openapi.json")).unwrap();
    for (method, path) in [
        ("GET", "/3/Cloud"),
        ("POST", "/3/Shutdown"),
        ("POST", "/3/ImportFiles"),
        ("GET", "/3/Jobs/{id}"),
        ("GET", "/3/Frames"),
        ("DELETE", "/3/Frames/{id}"),
        ("GET", "/3/Frames/{id}/summary"),
        ("POST", "/3/Frames/{id}/groupby"),
        ("POST", "/3/Frames/{id}/export"),
        ("POST", "/3/Frames/{id}/commit"),
        ("POST", "/3/Frames/{id}/grant"),
    ] {
        assert!(index.lines().any(|l| l.split_whitespace().take(2).eq([method, path])), "{method} {path} missing from the index:\n{index}");
        assert!(openapi["paths"][path][method.to_lowercase()]["summary"].is_string(), "{method} {path} missing from {openapi}");
    }
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(FORM).code(), Some(130), "{}", d.output());
}

#[test]
fn import_roots_limit_local_files_and_http_imports_refuse_the_nodes_own_services() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.csv"), "a,b\n1,2\n3,4\n").unwrap();
    std::fs::write(dir.path().join("private.csv"), "secret,value\n1,2\n").unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = eddy_tests::frames::local_driver(&dir.path().join("logs"));
    cmd.arg("--notify").arg(&notify).arg("--import-roots").arg(&data);
    let cloud = eddy_tests::frames::WatchedCloud::start(cmd, &notify, Duration::from_secs(60));

    let (frame, job) = cloud.import(json!({ "path": data.join("in.csv") }), Duration::from_secs(60));
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    for outside in [dir.path().join("private.csv").display().to_string(), format!("{}/../private.csv", data.display())] {
        let (_, job) = cloud.import(json!({ "path": outside }), Duration::from_secs(60));
        let error = job["jobs"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains("outside the import roots") && error.contains("--import-roots"), "{outside}: {job}");
    }
    let export = cloud.post(&format!("/3/Frames/{frame}/export"), json!({ "path": dir.path().join("out.csv"), "format": "csv" }));
    assert!(export.to_string().contains("outside the import roots"), "{export}");
    assert!(!dir.path().join("out.csv").exists());
    // An import endpoint must not fetch the node's own REST API (or a metadata server).
    let (_, job) = cloud.import(json!({ "path": format!("{}/3/Cloud", cloud.base) }), Duration::from_secs(60));
    let error = job["jobs"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("loopback") && error.contains("EDDY_HTTP_ALLOW_HOSTS"), "{job}");
    cloud.stop(Duration::from_secs(30));
}

/// `GET /metrics` parsed by a Prometheus text-format parser (the `prometheus-parse` crate).
fn scrape(cloud: &eddy_tests::frames::WatchedCloud) -> Vec<prometheus_parse::Sample> {
    let response = cloud.http.get(format!("{}/metrics", cloud.base)).send().unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap().samples
}

fn value(samples: &[prometheus_parse::Sample], metric: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {metric} {label:?} in {:?}", samples.iter().map(|s| &s.metric).collect::<Vec<_>>()));
    match sample.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[test]
fn metrics_show_the_cloud_frames_jobs_and_requests_in_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = eddy_tests::frames::local_driver(&dir.path().join("logs"));
    cmd.arg("--notify").arg(&notify);
    let cloud = eddy_tests::frames::WatchedCloud::start(cmd, &notify, Duration::from_secs(60));
    let before = scrape(&cloud);
    assert_eq!(value(&before, "eddy_cloud_size", None), 2.0);
    assert_eq!(value(&before, "eddy_cloud_healthy", None), 1.0);
    assert_eq!(value(&before, "eddy_node_memory_budget_bytes", None), 256.0 * 1024.0 * 1024.0);
    assert_eq!(value(&before, "eddy_frames", None), 0.0);
    assert!(value(&before, "eddy_heartbeats_received_total", None) > 0.0);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample.csv");
    let (frame, _) = cloud.import(json!({ "path": sample }), Duration::from_secs(60));
    assert!(!frame.is_empty());
    let after = scrape(&cloud);
    assert_eq!(value(&after, "eddy_frames", None), 1.0);
    assert_eq!(value(&after, "eddy_frame_rows", None), 5000.0);
    assert_eq!(value(&after, "eddy_jobs", Some(("status", "done"))), 1.0);
    assert_eq!(value(&after, "eddy_import_rows_total", None), 5000.0);
    assert!(value(&after, "eddy_node_data_bytes", None) > 0.0);
    // The import's requests were counted by route pattern, not by path.
    assert!(value(&after, "eddy_rest_requests_total", Some(("route", "/3/Jobs/:id"))) >= 1.0);
    assert_eq!(value(&after, "eddy_rest_requests_total", Some(("route", "/3/ImportFiles"))), 1.0);
    // Like every endpoint but the health check, it wants the token.
    let anonymous = reqwest::blocking::get(format!("{}/metrics", cloud.base)).unwrap();
    assert_eq!(anonymous.status(), 401);
    cloud.stop(Duration::from_secs(30));
}
