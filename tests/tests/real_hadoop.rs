//! Eddy against real Apache Hadoop daemons: a NameNode, DataNodes on 127.0.0.2 and 127.0.0.3,
//! a ResourceManager and NodeManagers on 127.0.0.2 and 127.0.0.3, as `scripts/hadoop-cluster.sh`
//! runs them. Each test runs only when `EDDY_REAL_HADOOP_CONF` names the cluster's
//! `HADOOP_CONF_DIR` and is skipped (saying why) otherwise; `scripts/real-hadoop-test.sh` starts
//! the cluster once, runs them one at a time and stops it.
//!
//! What is checked is read back with Hadoop's own clients (`hdfs dfs`, `hdfs fsck`,
//! `yarn application -status`), not with Eddy's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_tests::frames::{chunk_ip, csv_part, csv_part_values, frame_info, import_and_wait, local_driver, parquet_rows, WatchedCloud};
use eddy_tests::real_hadoop::{application_id, assert_no_container_left, mappers_of, virtual_sizes, RealHadoop, USER};
use eddy_tests::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(180);
const MIB: u64 = 1 << 20;

/// A directory of its own for each test (and run), under the test user's home.
fn test_dir(name: &str) -> String {
    format!("/user/{USER}/{name}-{}", std::process::id())
}

#[test]
fn a_yarn_cloud_forms_in_real_containers_imports_next_to_the_blocks_and_succeeds() {
    let Some(h) = RealHadoop::from_env("a_yarn_cloud_forms_in_real_containers_imports_next_to_the_blocks_and_succeeds") else {
        return;
    };
    // Two files of several 1 MiB blocks, each written with one replica from one DataNode's address.
    let dir = test_dir("yarn-import");
    let (a, b) = (csv_part(0, 280_000), csv_part(280_000, 280_000));
    assert!(a.len() as u64 > 3 * MIB && b.len() as u64 > 3 * MIB, "{} and {} bytes", a.len(), b.len());
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/part-0.csv"), a.as_bytes(), 1, "127.0.0.2");
    h.put(&format!("{dir}/part-1.csv"), b.as_bytes(), 1, "127.0.0.3");
    h.hdfs_ok(&["-touchz", &format!("{dir}/_SUCCESS")]);
    let blocks = h.block_hosts(&dir);
    let csv_blocks: Vec<&Vec<String>> = blocks.iter().filter(|(f, _)| f.ends_with(".csv")).flat_map(|(_, b)| b).collect();
    let expected = (a.len() as u64).div_ceil(MIB) + (b.len() as u64).div_ceil(MIB);
    assert_eq!(csv_blocks.len() as u64, expected, "{blocks:?}");
    assert!(csv_blocks.iter().all(|h| h.len() == 1), "one replica each: {blocks:?}");

    let notify = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--name", "real-yarn"]);
    cmd.arg("--notify").arg(notify.path());
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", WAIT);
    let out = d.output();
    assert!(out.contains("Cloud of size 2 formed"), "{out}");
    let app = application_id(&out).expect("an application id");
    let notified = read_notify(notify.path());
    let leader = notified.leader.clone();
    let cloud = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let mut ips: Vec<String> =
        cloud["nodes"].as_array().unwrap().iter().map(|n| n["ip_port"].as_str().unwrap().split(':').next().unwrap().to_string()).collect();
    ips.sort();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3"], "workers take their NodeManager's address: {cloud}");
    assert_eq!(mappers_of(&app), 2, "two worker containers run");
    // A NodeManager with Apache's defaults (vmem-check-enabled, vmem-pmem-ratio 2.1) kills a
    // container whose virtual size passes 2.1 x its memory; this cluster does not check, so
    // the test does: 256 MiB + 10 % containers.
    for (pid, vm_kib) in virtual_sizes(&app) {
        assert!(vm_kib < 282 * 1024 * 21 / 10, "worker {pid} has {vm_kib} KiB of address space, more than YARN's default allows");
    }

    // The directory (its _SUCCESS skipped), one split per block, each read on a replica's host.
    let http = client_with_token(notified.token_opt.as_deref(), Duration::from_secs(60));
    let base = format!("http://{leader}");
    let (frame, job) = import_and_wait(&http, &base, json!({"path": h.url(&dir), "split_bytes": MIB}), WAIT);
    assert!(!frame.is_empty(), "{job}");
    let info = frame_info(&http, &base, &frame);
    assert_eq!(info["rows"], 560_000, "{info}");
    let chunks = info["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), csv_blocks.len(), "one split per block: {info}");
    let placed: Vec<(String, &Vec<String>)> = chunks.iter().map(chunk_ip).zip(csv_blocks.iter().copied()).collect();
    assert!(placed.iter().all(|(ip, hosts)| hosts.contains(ip)), "chunks read on / blocks held on: {placed:?}");

    // POST /3/Shutdown: SUCCEEDED as Hadoop's own client reports it, nothing left behind.
    assert_eq!(post(&format!("{base}/3/Shutdown")), 200);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains(&format!("{app} finished: SUCCEEDED")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("State").map(String::as_str), Some("FINISHED"), "{report:?}");
    assert_eq!(report.get("Final-State").map(String::as_str), Some("SUCCEEDED"), "{report:?}");
    assert_eq!(report.get("User").map(String::as_str), Some(USER), "{report:?}");
    assert_eq!(report.get("Application-Name").map(String::as_str), Some("real-yarn"), "{report:?}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    assert_no_container_left(&app, Duration::from_secs(30));
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

#[test]
fn a_disowned_cloud_runs_under_its_master_container_until_yarn_kill() {
    let Some(h) = RealHadoop::from_env("a_disowned_cloud_runs_under_its_master_container_until_yarn_kill") else { return };
    let notify = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--disown"]);
    cmd.arg("--notify").arg(notify.path());
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("Cloud of size 2 formed"), "{out}");
    let notified = read_notify(notify.path());
    let (leader, app) = (notified.leader.clone(), notified.app_opt.clone().unwrap());
    let cloud = get_json(&format!("http://{leader}/3/Cloud")).unwrap_or_else(|| panic!("no cloud at {leader}: {out}"));
    assert_eq!(cloud["cloud_size"], 2, "{cloud}");
    assert_eq!(mappers_of(&app), 3, "the master and two workers run after the driver left");
    for (pid, vm_kib) in virtual_sizes(&app) {
        assert!(vm_kib < 256 * 1024 * 21 / 10, "process {pid} has {vm_kib} KiB of address space, more than YARN's default allows");
    }
    let report = h.application(&app);
    assert_eq!(report.get("State").map(String::as_str), Some("RUNNING"), "{report:?}");
    assert!(report.get("Tracking-URL").is_some_and(|u| u.contains(&leader)), "the tracking URL is the leader's REST API: {report:?}");
    // The master in its container watches as an attached driver does: a killed worker gets a
    // new container, and the cloud is whole again.
    let victim = cloud["nodes"].as_array().unwrap().iter().find(|n| n["ip_port"] != leader.as_str()).unwrap().clone();
    signal(victim["pid"].as_u64().unwrap() as u32, libc::SIGKILL);
    wait_until("two workers again, one of them in a new container", WAIT, || {
        get_json(&format!("http://{leader}/3/Cloud")).is_some_and(|v| {
            v["cloud_size"] == 2
                && v["consensus"] == true
                && v["nodes"].as_array().unwrap().iter().all(|n| n["pid"] != victim["pid"])
                && v["lost_nodes"].as_array().is_some_and(|l| l.iter().any(|n| n["ip_port"] == victim["ip_port"]))
        })
    });
    assert_eq!(mappers_of(&app), 3, "the master, the survivor and the new worker");

    let kill = |id: &str| {
        let mut k = Proc::spawn(h.driver(&["yarn", "kill", id]));
        let ok = k.wait_exit(WAIT).success();
        (ok, k.output())
    };
    let (ok, out) = kill(&app);
    assert!(ok && out.contains(&format!("Killed {app} (it was RUNNING)")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("Final-State").map(String::as_str), Some("KILLED"), "{report:?}");
    assert_no_container_left(&app, Duration::from_secs(30));
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    // Again: it says what became of the application instead of claiming to kill it.
    let (ok, out) = kill(&app);
    assert!(ok && out.contains("had already ended: KILLED (final status KILLED)"), "{out}");
}

#[test]
fn impossible_requests_fail_with_the_schedulers_facts() {
    let Some(h) = RealHadoop::from_env("impossible_requests_fail_with_the_schedulers_facts") else { return };
    // Above the largest container: refused before anything is staged or submitted.
    let mut d = Proc::spawn(h.yarn_driver(&["--nodes", "1", "--memory", "64g"]));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains("more than the largest container YARN allows (4096 MiB"), "{out}");
    assert!(!out.contains("Submitted"), "{out}");

    // A master larger than any container: the ResourceManager refuses the submission, and the
    // mapper staged for it is removed.
    let mut d = Proc::spawn(h.yarn_driver(&["--nodes", "1", "--memory", "256m", "--disown", "--am-memory-mb", "8192"]));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains("submitApplication") && out.contains("InvalidResourceRequestException"), "{out}");
    assert!(!out.contains("\tat org.apache"), "the ResourceManager's Java stack trace is not the user's business: {out}");
    let app = application_id(&out).expect("an application id");
    assert!(out.contains(&format!("Removed the staging directory {}", h.url(&h.staging_dir(&app)))), "{out}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");

    // More workers than two NodeManagers of 4 GiB hold: the timeout names YARN's facts.
    let mut d = Proc::spawn(h.yarn_driver(&["--nodes", "5", "--memory", "1800m", "--timeout", "25s"]));
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    let app = application_id(&out).expect("an application id");
    assert!(out.contains("asked for 5 containers of 1980 MiB and 1 vcores; 4 allocated"), "{out}");
    assert!(out.contains("headroom") && out.contains("no room for 1 more containers of 1980 MiB"), "{out}");
    assert!(out.contains("never registered: worker 4"), "{out}");
    assert!(out.contains(&format!("{app} finished: FAILED")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("Final-State").map(String::as_str), Some("FAILED"), "{report:?}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    assert_no_container_left(&app, Duration::from_secs(30));
}

#[test]
fn with_fail_fast_a_worker_killed_with_sigkill_fails_the_application_with_yarns_exit_status() {
    let Some(h) = RealHadoop::from_env("with_fail_fast_a_worker_killed_with_sigkill_fails_the_application_with_yarns_exit_status") else {
        return;
    };
    let notify = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--fail-fast"]);
    cmd.arg("--notify").arg(notify.path());
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", WAIT);
    let app = application_id(&d.output()).unwrap();
    let leader = read_notify(notify.path()).leader;
    let victim = *cloud_pids(&leader).first().unwrap();
    signal(victim, libc::SIGKILL);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("YARN exit status 137 killed by SIGKILL"), "{out}");
    assert!(out.contains(&format!("container_{}", app.trim_start_matches("application_"))), "the container is named: {out}");
    assert!(out.contains(&format!("{app} finished: FAILED")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("Final-State").map(String::as_str), Some("FAILED"), "{report:?}");
    assert!(report.get("Diagnostics").is_some_and(|d| d.contains("137")), "{report:?}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    assert_no_container_left(&app, Duration::from_secs(30));
}

#[test]
fn a_killed_worker_is_replaced_by_a_new_container_and_its_chunks_are_read_again() {
    let Some(h) = RealHadoop::from_env("a_killed_worker_is_replaced_by_a_new_container_and_its_chunks_are_read_again") else { return };
    let dir = test_dir("replaced");
    let text = csv_part(0, 20_000);
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/data.csv"), text.as_bytes(), 1, "127.0.0.2");
    let notify = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--heartbeat-timeout", "3s"]);
    cmd.arg("--notify").arg(notify.path());
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", WAIT);
    let app = application_id(&d.output()).unwrap();
    let notified = read_notify(notify.path());
    let base = format!("http://{}", notified.leader);
    let http = client_with_token(notified.token_opt.as_deref(), Duration::from_secs(60));
    let (frame, job) = import_and_wait(&http, &base, json!({ "path": h.url(&format!("{dir}/data.csv")), "split_bytes": 64 * 1024 }), WAIT);
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    let summary = |base: &str| -> Option<Value> {
        let r = http.get(format!("{base}/3/Frames/{frame}/summary")).send().ok()?;
        (r.status().as_u16() == 200).then(|| r.json::<Value>().ok().map(|v| v["columns"].clone())).flatten()
    };
    let before = summary(&base).unwrap();
    // The worker that is not the leader is killed; YARN reports its container ended, the
    // survivor removes it, and the driver asks YARN for a new container in its place.
    let cloud: Value = get_json(&format!("{base}/3/Cloud")).unwrap();
    let victim = cloud["nodes"].as_array().unwrap().iter().find(|n| n["ip_port"] != notified.leader.as_str()).unwrap().clone();
    signal(victim["pid"].as_u64().unwrap() as u32, libc::SIGKILL);
    let line = d.wait_for_line("again in place of", WAIT);
    assert!(line.contains(victim["ip_port"].as_str().unwrap()), "{line}");
    wait_until("two workers again, one of them in a new container", WAIT, || {
        get_json(&format!("{base}/3/Cloud")).is_some_and(|v| {
            v["cloud_size"] == 2 && v["consensus"] == true && v["nodes"].as_array().unwrap().iter().all(|n| n["pid"] != victim["pid"])
        })
    });
    let mut after = None;
    wait_until("the frame answers again", WAIT, || {
        after = summary(&base);
        after.is_some()
    });
    assert_eq!(after.unwrap(), before);
    // The survivor and the new container's worker.
    assert_eq!(mappers_of(&app), 2, "live mappers of {app}");
    d.signal(libc::SIGINT);
    let status = d.wait_exit(WAIT);
    assert_eq!(status.code(), Some(130), "{}", d.output());
    assert!(d.output().contains(&format!("{app} finished: KILLED")), "{}", d.output());
    assert_no_container_left(&app, Duration::from_secs(30));
}

#[test]
fn ctrl_c_ends_the_application_killed_before_and_after_the_cloud_formed() {
    let Some(h) = RealHadoop::from_env("ctrl_c_ends_the_application_killed_before_and_after_the_cloud_formed") else { return };
    // After: the cloud is stopped in order, the application ends KILLED.
    let mut d = Proc::spawn(h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s"]));
    d.wait_for_line("Watching the cloud", WAIT);
    let app = application_id(&d.output()).unwrap();
    d.signal(libc::SIGINT);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains(&format!("{app} finished: KILLED")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("Final-State").map(String::as_str), Some("KILLED"), "{report:?}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    assert_no_container_left(&app, Duration::from_secs(30));

    // Before: right after submission the application is killed and its staging removed.
    let mut d = Proc::spawn(h.yarn_driver(&["--nodes", "2", "--memory", "256m", "--timeout", "120s"]));
    let line = d.wait_for_line("Submitted YARN application", WAIT);
    let app = application_id(&line).unwrap();
    d.signal(libc::SIGINT);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted before the cloud formed"), "{out}");
    // KILLED by the driver during set-up, or (signalled once it was the master) FINISHED
    // with the final status KILLED.
    let report = h.application(&app);
    assert!(matches!(report.get("State").map(String::as_str), Some("KILLED" | "FINISHED")), "{report:?}");
    assert_eq!(report.get("Final-State").map(String::as_str), Some("KILLED"), "{report:?}");
    assert!(!h.exists(&h.staging_dir(&app)), "the staging directory is left");
    assert_no_container_left(&app, Duration::from_secs(30));
}

#[test]
fn hdfs_imports_and_exports_read_back_with_hadoops_client() {
    let Some(h) = RealHadoop::from_env("hdfs_imports_and_exports_read_back_with_hadoops_client") else { return };
    let dir = test_dir("hdfs");
    let (a, b) = (csv_part(0, 200_000), csv_part(200_000, 100_000));
    h.hdfs_ok(&["-mkdir", "-p", &format!("{dir}/in")]);
    h.put(&format!("{dir}/in/part-0.csv"), a.as_bytes(), 2, "127.0.0.1");
    h.put(&format!("{dir}/in/part-1.csv"), b.as_bytes(), 2, "127.0.0.1");
    h.hdfs_ok(&["-touchz", &format!("{dir}/in/_SUCCESS")]);
    let blocks = h.block_hosts(&format!("{dir}/in"));
    let block_count: usize = blocks.iter().map(|(_, b)| b.len()).sum();
    assert!(block_count >= 4, "several blocks: {blocks:?}");

    let logs = tempfile::tempdir().unwrap();
    let notify = logs.path().join("leader.txt");
    let mut cmd = local_driver(&logs.path().join("logs"));
    cmd.arg("--notify").arg(&notify).env("HADOOP_CONF_DIR", &h.conf).env("HADOOP_USER_NAME", USER);
    let cloud = WatchedCloud::start(cmd, &notify, WAIT);

    // A directory with _SUCCESS: split at block boundaries, one chunk per block.
    let (frame, job) = cloud.import(json!({"path": h.url(&format!("{dir}/in")), "split_bytes": MIB}), WAIT);
    assert!(!frame.is_empty(), "{job}");
    let info = frame_info(&cloud.http, &cloud.base, &frame);
    assert_eq!(info["rows"], 300_000, "{info}");
    assert_eq!(info["chunks"].as_array().unwrap().len(), block_count, "one split per block: {info}");
    // A glob of one of the files.
    let (glob, job) = cloud.import(json!({"path": h.url(&format!("{dir}/in/part-1*.csv"))}), WAIT);
    assert!(!glob.is_empty(), "{job}");
    let info = frame_info(&cloud.http, &cloud.base, &glob);
    assert_eq!(info["rows"], 100_000, "{info}");

    // Export as one CSV and as Parquet; Hadoop's client reads them back, owned by the user.
    let csv_out = format!("{dir}/out/all.csv");
    let r = cloud.post(&format!("/3/Frames/{glob}/export"), json!({"path": h.url(&csv_out), "format": "csv", "single_file": true}));
    assert!(r["export"]["files"].is_array(), "{r}");
    let text = h.hdfs_ok(&["-cat", &csv_out]);
    assert!(csv_part_values(&text) == csv_part_values(&b), "the exported CSV holds other values");
    let owner = h.hdfs_ok(&["-stat", "%u", &csv_out]);
    assert_eq!(owner.trim(), USER, "files are written as HADOOP_USER_NAME");
    let pq_out = format!("{dir}/out/all.parquet");
    let r = cloud.post(&format!("/3/Frames/{frame}/export"), json!({"path": h.url(&pq_out), "format": "parquet", "single_file": true}));
    assert!(r["export"]["files"].is_array(), "{r}");
    let local = tempfile::tempdir().unwrap();
    let copy = local.path().join("all.parquet");
    h.hdfs_ok(&["-get", &pq_out, &copy.to_string_lossy()]);
    assert_eq!(parquet_rows(std::fs::read(&copy).unwrap()), 300_000);

    // Parquet from the real HDFS: the file just exported, imported again.
    let (pq, job) = cloud.import(json!({"path": h.url(&pq_out)}), WAIT);
    assert!(!pq.is_empty(), "{job}");
    let summary = cloud.http.get(format!("{}/3/Frames/{pq}/summary", cloud.base)).send().unwrap().json::<Value>().unwrap();
    assert!(summary.to_string().contains("299999"), "the id column ends at 299999: {summary}");
    cloud.stop(WAIT);
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}
