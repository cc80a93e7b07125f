//! A cloud that survives the loss of a worker: real driver and workers on 127.0.0.1, a worker
//! killed (SIGKILL) or stopped (SIGSTOP) past the heartbeat timeout. After each, every imported
//! frame's summary equals the one computed before the fault, a frame without a source is
//! reported lost, the cloud's view says who was removed, and no process is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_tests::frames::{csv_part, WatchedCloud};
use eddy_tests::*;
use serde_json::{json, Value};

const FORM: Duration = Duration::from_secs(90);
/// Detection (2 s of silence) plus reading chunks again, with room for a slow debug build.
const RECOVER: Duration = Duration::from_secs(90);

/// A watched local cloud of `nodes` workers with a heartbeat timeout of 2 s, which starts no
/// new worker in place of a lost one (the tests of that say so).
fn cloud(dir: &std::path::Path, nodes: usize) -> WatchedCloud {
    cloud_with(dir, nodes, &["--worker-restarts", "0"])
}

/// Such a cloud, with more `eddy-driver local` flags.
fn cloud_with(dir: &std::path::Path, nodes: usize, flags: &[&str]) -> WatchedCloud {
    let notify = dir.join("leader.txt");
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.args(["local", "--nodes", &nodes.to_string(), "--port", "0", "--memory", "256m", "--heartbeat-timeout", "2s"])
        .args(flags)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--notify")
        .arg(&notify);
    WatchedCloud::start(cmd, &notify, FORM)
}

/// `ip:port` of the worker a chunk of `GET /3/Frames/{id}` names.
fn chunk_node(chunk: &Value) -> String {
    format!("{}:{}", chunk["node"]["ip"].as_str().unwrap(), chunk["node"]["rest_port"])
}

fn frame(c: &WatchedCloud, base: &str, id: &str) -> Value {
    eddy_tests::frames::frame_info(&c.http, base, id)
}

/// The summary of every column, or the HTTP status and error of the refusal.
fn summary(c: &WatchedCloud, base: &str, id: &str) -> Result<Value, (u16, String)> {
    let r = c.http.get(format!("{base}/3/Frames/{id}/summary")).send().unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    if status == 200 {
        Ok(body["columns"].clone())
    } else {
        Err((status, body["error"].as_str().unwrap_or_default().to_string()))
    }
}

/// Imports a CSV of `rows` rows cut into splits of 128 KiB, so that every worker holds chunks.
fn import(c: &WatchedCloud, dir: &std::path::Path, rows: usize) -> String {
    let data = dir.join("data.csv");
    std::fs::write(&data, csv_part(0, rows)).unwrap();
    let (id, job) = c.import(json!({ "path": data, "split_bytes": 128 * 1024 }), FORM);
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    id
}

/// The cloud as `base` sees it.
fn cloud_view(base: &str) -> Value {
    get_json(&format!("{base}/3/Cloud")).unwrap()
}

/// A worker other than those named: (`ip:port`, pid).
fn worker_other_than(base: &str, not: &[&str]) -> (String, u32) {
    let v = cloud_view(base);
    let n = v["nodes"].as_array().unwrap().iter().find(|n| !not.contains(&n["ip_port"].as_str().unwrap())).unwrap();
    (n["ip_port"].as_str().unwrap().to_string(), n["pid"].as_u64().unwrap() as u32)
}

fn pid_of(base: &str, node: &str) -> u32 {
    let v = cloud_view(base);
    v["nodes"].as_array().unwrap().iter().find(|n| n["ip_port"] == node).unwrap()["pid"].as_u64().unwrap() as u32
}

/// Waits until `base` sees a healthy cloud of `size` with `victim` among the lost.
fn wait_removed(base: &str, victim: &str, size: usize) -> Value {
    let mut view = Value::Null;
    wait_until(&format!("{victim} is removed and {size} workers carry on"), RECOVER, || {
        view = cloud_view(base);
        view["cloud_healthy"] == true
            && view["cloud_size"] == size
            && view["lost_nodes"].as_array().is_some_and(|l| l.iter().any(|n| n["ip_port"] == victim))
    });
    view
}

/// Waits until the summary of `id` answers again (its lost chunks read again) and returns it.
fn summary_once_recovered(c: &WatchedCloud, base: &str, id: &str) -> Value {
    let mut last = Err((0, String::new()));
    wait_until(&format!("the summary of {id} answers again"), RECOVER, || {
        last = summary(c, base, id);
        last.is_ok()
    });
    last.unwrap()
}

#[test]
fn a_killed_worker_is_removed_its_imported_chunks_are_read_again_and_a_result_frame_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cloud(dir.path(), 3);
    let leader = c.base.trim_start_matches("http://").to_string();
    let id = import(&c, dir.path(), 200_000);
    let before = summary(&c, &c.base, &id).unwrap();
    // The driver's observer, which serves no calls, keeps its own view of what it imported.
    let observer = c.driver.wait_for_line("Observer client:", FORM);
    let observer = observer.split_whitespace().nth(2).unwrap().trim_end_matches("/3/Cloud").to_string();
    let data = dir.path().join("data.csv");
    let (seen_by_observer, job) =
        eddy_tests::frames::import_and_wait(&c.http, &observer, json!({ "path": data, "split_bytes": 128 * 1024 }), FORM);
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    let rows_before: Value = c.http.get(format!("{}/3/Frames/{id}?row_offset=0&row_count=5", c.base)).send().unwrap().json().unwrap();
    // A frame with no source to read again: a group-by result.
    let grouped: Value =
        c.post(&format!("/3/Frames/{id}/groupby"), json!({ "by": ["kind"], "aggs": [{ "op": "mean", "column": "value" }] }));
    let grouped_id = grouped["frame"]["frame_id"].as_str().unwrap_or_else(|| panic!("{grouped}")).to_string();
    let result_holder = chunk_node(&grouped["frame"]["chunks"][0]);
    // The victim holds chunks of both if it can, and is not the node we talk to.
    let info = frame(&c, &c.base, &id);
    let holders: Vec<String> = info["chunks"].as_array().unwrap().iter().map(chunk_node).collect();
    let victim = if result_holder != leader { result_holder.clone() } else { worker_other_than(&c.base, &[&leader]).0 };
    assert!(holders.contains(&victim), "every worker holds chunks of the import: {holders:?}");
    let lost_chunks = holders.iter().filter(|h| **h == victim).count();

    signal(pid_of(&c.base, &victim), libc::SIGKILL);
    let line = c.driver.wait_for_line("was removed from the cloud", RECOVER);
    assert!(line.contains(&victim) && line.contains("carries on with 2 workers"), "{line}");
    let view = wait_removed(&c.base, &victim, 2);
    assert_eq!(view["generation"], 1, "{view}");

    // The imported frame: every lost chunk read again elsewhere, the same summary and rows.
    assert_eq!(summary_once_recovered(&c, &c.base, &id), before);
    // The observer asks the members for the recovered frame instead of waiting for a push.
    assert_eq!(summary_once_recovered(&c, &observer, &seen_by_observer), before);
    let after: Value = c.http.get(format!("{}/3/Frames/{id}?row_offset=0&row_count=5", c.base)).send().unwrap().json().unwrap();
    assert_eq!(after["rows"], rows_before["rows"]);
    let info = frame(&c, &c.base, &id);
    assert!(info["chunks"].as_array().unwrap().iter().all(|ch| chunk_node(ch) != victim), "{info}");
    assert!(info.get("lost").is_none(), "{info}");
    let jobs: Value = c.http.get(format!("{}/3/Jobs", c.base)).send().unwrap().json().unwrap();
    let reread = jobs["jobs"].as_array().unwrap().iter().find(|j| j["description"].as_str().unwrap().starts_with("Read ")).cloned();
    let reread = reread.unwrap_or_else(|| panic!("no job read the chunks again: {jobs}"));
    assert_eq!(reread["status"], "DONE", "{reread}");
    assert!(reread["description"].as_str().unwrap().contains(&format!("{lost_chunks} chunks of {id}")), "{reread}");

    // The group-by result, if its chunk was on the victim, is lost: said clearly, per frame.
    if result_holder == victim {
        let mut refusal = (0, String::new());
        wait_until("the result frame is reported lost", RECOVER, || {
            refusal = summary(&c, &c.base, &grouped_id).unwrap_err();
            refusal.0 == 410
        });
        assert!(
            refusal.1.contains("lost data") && refusal.1.contains(&victim) && refusal.1.contains("not read from a source"),
            "{refusal:?}"
        );
        let listed = frame(&c, &c.base, &grouped_id);
        assert!(listed["lost"].as_str().unwrap().contains(&victim), "{listed}");
    }
    // Work goes on: a new group-by on the recovered frame, and deleting the lost one.
    let again: Value =
        c.post(&format!("/3/Frames/{id}/groupby"), json!({ "by": ["kind"], "aggs": [{ "op": "count", "column": "value" }] }));
    assert_eq!(again["frame"]["rows"], 3, "{again}");
    assert_eq!(c.http.delete(format!("{}/3/Frames/{grouped_id}", c.base)).send().unwrap().status().as_u16(), 200);
    c.stop_leaving_no_process(FORM);
}

#[test]
fn with_two_replicas_a_frame_without_a_source_survives_the_loss_of_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let c = cloud_with(dir.path(), 3, &["--replicas", "2", "--worker-restarts", "0"]);
    let id = import(&c, dir.path(), 50_000);
    let grouped: Value = c.post(&format!("/3/Frames/{id}/groupby"), json!({ "by": ["id"], "aggs": [{ "op": "sum", "column": "value" }] }));
    let grouped_id = grouped["frame"]["frame_id"].as_str().unwrap_or_else(|| panic!("{grouped}")).to_string();
    let info = frame(&c, &c.base, &grouped_id);
    // Every chunk has one copy, on another worker.
    for chunk in info["chunks"].as_array().unwrap() {
        let copies = chunk["replicas"].as_array().unwrap_or_else(|| panic!("no copies: {info}"));
        assert_eq!(copies.len(), 1, "{chunk}");
        assert_ne!(format!("{}:{}", copies[0]["ip"].as_str().unwrap(), copies[0]["rest_port"]), chunk_node(chunk));
    }
    let before = summary(&c, &c.base, &grouped_id).unwrap();
    // The worker holding the result's chunk is killed; we go on through another.
    let victim = chunk_node(&info["chunks"][0]);
    let base = format!("http://{}", worker_other_than(&c.base, &[&victim]).0);
    signal(pid_of(&c.base, &victim), libc::SIGKILL);
    wait_removed(&base, &victim, 2);
    assert_eq!(summary_once_recovered(&c, &base, &grouped_id), before);
    // No chunk or copy is left on the lost worker, and every chunk has its copy again.
    let copy_of = |chunk: &Value| chunk["replicas"].as_array().cloned().unwrap_or_default();
    let node_text = |n: &Value| format!("{}:{}", n["ip"].as_str().unwrap(), n["rest_port"]);
    let mut info = Value::Null;
    wait_until("every chunk has its copy again, none on the lost worker", RECOVER, || {
        info = frame(&c, &base, &grouped_id);
        info["chunks"].as_array().unwrap().iter().all(|ch| {
            let copies = copy_of(ch);
            chunk_node(ch) != victim && copies.len() == 1 && node_text(&copies[0]) != victim && node_text(&copies[0]) != chunk_node(ch)
        })
    });
    assert_eq!(summary(&c, &base, &grouped_id).unwrap(), before);
    assert_eq!(c.http.delete(format!("{base}/3/Frames/{grouped_id}")).send().unwrap().status().as_u16(), 200);
    c.stop(FORM);
}

#[test]
fn a_lost_local_worker_is_started_again_and_the_new_process_joins_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cloud_with(dir.path(), 3, &[]);
    let leader = c.base.trim_start_matches("http://").to_string();
    let id = import(&c, dir.path(), 100_000);
    let before = summary(&c, &c.base, &id).unwrap();
    let (victim, victim_pid) = worker_other_than(&c.base, &[&leader]);

    signal(victim_pid, libc::SIGKILL);
    let line = c.driver.wait_for_line("again in place of", RECOVER);
    assert!(line.contains(&victim) && line.contains("restarts left"), "{line}");
    let mut view = Value::Null;
    wait_until("a cloud of 3 again, with a new process", RECOVER, || {
        view = cloud_view(&c.base);
        view["cloud_healthy"] == true
            && view["consensus"] == true
            && view["cloud_size"] == 3
            && view["nodes"].as_array().unwrap().iter().all(|n| n["pid"].as_u64() != Some(u64::from(victim_pid)))
    });
    assert_eq!(view["generation"], 1, "{view}");
    assert_eq!(view["lost_nodes"][0]["ip_port"], victim.as_str(), "the lost process stays listed: {view}");
    let new_pid =
        view["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).find(|p| !c.driver.extra_pids.contains(p));
    let new_pid = new_pid.unwrap_or_else(|| panic!("no new process among the workers: {view}"));
    // The frame is whole (its lost chunks read again), the new worker knows it, and new work
    // uses every worker.
    assert_eq!(summary_once_recovered(&c, &c.base, &id), before);
    let newcomer = view["nodes"].as_array().unwrap().iter().find(|n| n["pid"] == new_pid).unwrap()["ip_port"].as_str().unwrap().to_string();
    let newcomer_base = format!("http://{newcomer}");
    wait_until("the new worker lists the frame", RECOVER, || {
        let frames: Value = c.http.get(format!("{newcomer_base}/3/Frames")).send().unwrap().json().unwrap();
        frames["frames"].as_array().is_some_and(|f| f.iter().any(|f| f["frame_id"] == id.as_str()))
    });
    assert_eq!(summary(&c, &newcomer_base, &id).unwrap(), before);
    let other = dir.path().join("other.csv");
    std::fs::write(&other, csv_part(0, 100_000)).unwrap();
    let (again, job) = c.import(json!({ "path": other, "split_bytes": 64 * 1024 }), FORM);
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    let holders: std::collections::BTreeSet<String> =
        frame(&c, &c.base, &again)["chunks"].as_array().unwrap().iter().map(chunk_node).collect();
    assert_eq!(holders.len(), 3, "{holders:?}");
    c.driver.extra_pids.push(new_pid);
    c.stop_leaving_no_process(FORM);
}

#[test]
fn a_worker_stopped_past_the_heartbeat_timeout_is_removed_and_stops_when_continued() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cloud(dir.path(), 3);
    let leader = c.base.trim_start_matches("http://").to_string();
    let id = import(&c, dir.path(), 100_000);
    let before = summary(&c, &c.base, &id).unwrap();
    let (victim, pid) = worker_other_than(&c.base, &[&leader]);

    signal(pid, libc::SIGSTOP);
    // Silence alone: the two others are a majority of three, so they remove it.
    let line = c.driver.wait_for_line("was removed from the cloud", RECOVER);
    assert!(line.contains(&victim) && line.contains("silent for"), "{line}");
    wait_removed(&c.base, &victim, 2);
    assert_eq!(summary_once_recovered(&c, &c.base, &id), before);

    // Continued, it is refused as removed and stops on its own: no orphan.
    signal(pid, libc::SIGCONT);
    wait_until("the stopped worker exits once continued", RECOVER, || !alive(pid));
    let line = c.driver.wait_for_line("Worker lost", RECOVER);
    assert!(line.contains(&victim), "{line}");
    let log = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find(|text| text.contains("removed this node"));
    assert!(log.is_some(), "no worker log says why it stopped");
    assert_eq!(summary(&c, &c.base, &id).unwrap(), before);
    c.stop(FORM);
}

#[test]
fn a_worker_killed_during_an_import_leaves_no_half_registered_frame() {
    let dir = tempfile::tempdir().unwrap();
    let c = cloud(dir.path(), 3);
    let leader = c.base.trim_start_matches("http://").to_string();
    let data = dir.path().join("big.csv");
    let rows = 1_500_000;
    std::fs::write(&data, csv_part(0, rows)).unwrap();
    let (victim, pid) = worker_other_than(&c.base, &[&leader]);
    let r = c.post("/3/ImportFiles", json!({ "path": data, "split_bytes": 256 * 1024, "destination_frame": "big.hex" }));
    let key = r["job"]["key"].as_str().unwrap().to_string();
    // Killed once the import is under way.
    wait_until("the import has started", FORM, || {
        let job: Value = c.http.get(format!("{}/3/Jobs/{key}", c.base)).send().unwrap().json().unwrap();
        job["jobs"][0]["progress"].as_f64().unwrap_or(0.0) > 0.0 || job["jobs"][0]["status"] != "RUNNING"
    });
    signal(pid, libc::SIGKILL);
    let mut job = Value::Null;
    wait_until("the import ends", RECOVER, || {
        job = c.http.get(format!("{}/3/Jobs/{key}", c.base)).send().unwrap().json().unwrap();
        job["jobs"][0]["status"] != "RUNNING"
    });
    let job = &job["jobs"][0];
    eprintln!("the import under the loss ended {}", job["status"]);
    wait_removed(&c.base, &victim, 2);
    let frames: Value = c.http.get(format!("{}/3/Frames", c.base)).send().unwrap().json().unwrap();
    let listed = frames["frames"].as_array().unwrap().iter().any(|f| f["frame_id"] == "big.hex");
    if job["status"] == "FAILED" {
        // Failed cleanly, naming the worker, and nothing of it stays registered.
        assert!(job["error"].as_str().unwrap().contains(&victim), "{job}");
        assert!(!listed, "{frames}");
    } else {
        // Finished before the loss was noticed: then it is whole after recovery.
        assert_eq!(job["status"], "DONE", "{job}");
        assert!(listed, "{frames}");
        let s = summary_once_recovered(&c, &c.base, "big.hex");
        assert_eq!(s[0]["count"], rows as u64, "{s}");
    }
    // The survivors import the same file whole.
    let (again, job) = c.import(json!({ "path": data, "split_bytes": 256 * 1024, "destination_frame": "again.hex" }), FORM);
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    let s = summary(&c, &c.base, &again).unwrap();
    assert_eq!(s[0]["count"], rows as u64, "{s}");
    assert_eq!(s[0]["max"], (rows - 1) as f64, "{s}");
    c.stop(FORM);
}
