//! `eddy-driver local` with real worker processes on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_tests::*;

const FORM: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(30);

fn driver(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.arg("local").args(["--port", "0", "--heartbeat-interval", "200ms", "--heartbeat-timeout", "2s", "--memory", "256m"]).args(args);
    cmd
}

/// Starts a cloud and returns the driver, the leader's REST address and the worker pids.
fn start(args: &[&str]) -> (Proc, String, Vec<u32>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = driver(args);
    cmd.arg("--notify").arg(&notify).arg("--log-dir").arg(dir.path().join("logs"));
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("formed [", FORM);
    let leader = std::fs::read_to_string(&notify).unwrap().trim().to_string();
    let pids = cloud_pids(&leader);
    d.extra_pids = pids.clone();
    (d, leader, pids, dir)
}

#[test]
fn three_workers_form_agree_and_shutdown_leaves_no_process() {
    let (mut d, leader, pids, _dir) = start(&["--nodes", "3"]);
    assert_eq!(pids.len(), 3);
    let line = d.wait_for_line("Cloud of size 3 formed [", FORM);
    assert!(line.contains("127.0.0.1:"), "{line}");
    let first = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let nodes: Vec<String> = first["nodes"].as_array().unwrap().iter().map(|n| n["ip_port"].as_str().unwrap().to_string()).collect();
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        let v = get_json(&format!("http://{node}/3/Cloud")).unwrap();
        assert_eq!(v["cloud_size"], 3, "{v}");
        assert_eq!(v["consensus"], true);
        assert_eq!(v["cloud_healthy"], true);
        let leader_idx = v["leader_idx"].as_u64().unwrap() as usize;
        assert_eq!(v["nodes"][leader_idx]["ip_port"], leader.as_str());
        // The driver is an observer client: listed apart, not counted.
        wait_until("the observer is listed", Duration::from_secs(10), || {
            get_json(&format!("http://{node}/3/Cloud")).is_some_and(|v| v["clients"].as_array().is_some_and(|c| c.len() == 1))
        });
    }
    assert_eq!(post(&format!("http://{leader}/3/Shutdown")), 200);
    let status = d.wait_exit(EXIT);
    assert!(status.success(), "driver: {status}\n{}", d.output());
    for pid in pids {
        wait_until(&format!("worker {pid} exits"), EXIT, || !alive(pid));
    }
}

#[test]
fn ctrl_c_at_the_driver_stops_every_worker_and_exits_130() {
    let (mut d, _leader, pids, _dir) = start(&["--nodes", "2"]);
    d.wait_for_line("Watching the cloud", FORM);
    d.signal(libc::SIGINT);
    let status = d.wait_exit(EXIT);
    // 128 + SIGINT, as shells report it, after a clean stop.
    assert_eq!(status.code(), Some(130), "driver: {status}\n{}", d.output());
    assert!(d.output().contains("Every worker has exited"), "{}", d.output());
    for pid in pids {
        wait_until(&format!("worker {pid} exits"), EXIT, || !alive(pid));
    }
}

#[test]
fn a_killed_worker_is_named_and_the_driver_exits_non_zero() {
    let (mut d, leader, pids, _dir) = start(&["--nodes", "3"]);
    d.wait_for_line("Watching the cloud", FORM);
    let v = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let victim = v["nodes"][1].clone();
    let victim_pid = victim["pid"].as_u64().unwrap() as u32;
    signal(victim_pid, libc::SIGKILL);
    let status = d.wait_exit(EXIT);
    assert_eq!(status.code(), Some(1), "{}", d.output());
    let out = d.output();
    assert!(out.contains(victim["ip_port"].as_str().unwrap()) && out.contains("killed by signal 9"), "{out}");
    for pid in pids {
        wait_until(&format!("worker {pid} exits"), EXIT, || !alive(pid));
    }
}

#[test]
fn keep_going_reports_the_lost_worker_and_the_cloud_turns_unhealthy() {
    let (mut d, leader, _pids, _dir) = start(&["--nodes", "3", "--keep-going"]);
    d.wait_for_line("Watching the cloud", FORM);
    let v = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let victim = v["nodes"][2]["ip_port"].as_str().unwrap().to_string();
    signal(v["nodes"][2]["pid"].as_u64().unwrap() as u32, libc::SIGKILL);
    let line = d.wait_for_line("Worker lost", EXIT);
    assert!(line.contains(&victim), "{line}");
    wait_until("the leader sees the cloud unhealthy", EXIT, || {
        get_json(&format!("http://{leader}/3/Cloud")).is_some_and(|v| v["cloud_healthy"] == false && v["bad_nodes"] == 1)
    });
    // Work fails fast and names the lost node.
    let client = reqwest::blocking::Client::new();
    let r = client.get(format!("http://{leader}/3/NetworkTest")).send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().unwrap().contains(&victim));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(EXIT).code(), Some(143), "128 + SIGTERM: {}", d.output());
}

#[test]
fn timeout_names_the_workers_that_never_registered() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("silent-mapper.sh");
    std::fs::write(&fake, "#!/bin/sh\nsleep 30\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = driver(&["--nodes", "2", "--timeout", "2s"]);
    cmd.arg("--mapper").arg(&fake).arg("--log-dir").arg(dir.path());
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(EXIT);
    assert_eq!(status.code(), Some(1));
    let out = d.output();
    assert!(out.contains("0 of 2 workers registered"), "{out}");
    assert!(out.contains("never registered: worker 0, worker 1"), "{out}");
}

#[test]
fn a_worker_that_fails_before_registering_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("broken-mapper.sh");
    std::fs::write(&fake, "#!/bin/sh\necho 'cannot open the frobnicator' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = driver(&["--nodes", "2"]);
    cmd.arg("--mapper").arg(&fake).arg("--log-dir").arg(dir.path());
    let mut d = Proc::spawn(cmd);
    assert_eq!(d.wait_exit(EXIT).code(), Some(1));
    let out = d.output();
    assert!(out.contains("exited with code 3") && out.contains("cannot open the frobnicator"), "{out}");
}

#[test]
fn disown_leaves_the_cloud_running_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("leader.txt");
    let mut cmd = driver(&["--nodes", "2", "--disown"]);
    cmd.arg("--notify").arg(&notify).arg("--log-dir").arg(dir.path());
    let mut d = Proc::spawn(cmd);
    assert!(d.wait_exit(FORM).success(), "{}", d.output());
    let leader = std::fs::read_to_string(&notify).unwrap().trim().to_string();
    let pids = cloud_pids(&leader);
    d.extra_pids = pids.clone();
    // Longer than the workers' driver-lost grace (the heartbeat timeout, 2 s).
    std::thread::sleep(Duration::from_secs(4));
    let v = get_json(&format!("http://{leader}/3/Cloud")).expect("cloud still up");
    assert_eq!(v["cloud_size"], 2);
    assert_eq!(v["cloud_healthy"], true);
    assert_eq!(post(&format!("http://{leader}/3/Shutdown")), 200);
    for pid in pids {
        wait_until(&format!("worker {pid} exits"), EXIT, || !alive(pid));
    }
}

#[test]
fn workers_outlive_no_crashed_driver() {
    let (d, _leader, pids, _dir) = start(&["--nodes", "2"]);
    // SIGKILL: the driver gets no chance to stop anyone; the workers notice it is gone.
    signal(d.pid(), libc::SIGKILL);
    for pid in &pids {
        wait_until(&format!("orphaned worker {pid} exits"), EXIT, || !alive(*pid));
    }
    drop(d);
}

/// Regression: one worker exiting cleanly on SIGTERM (reporting its exit) used to switch
/// off the driver's failure detection for the rest of the run.
#[test]
fn a_worker_stopped_by_sigterm_is_a_lost_worker() {
    let (mut d, leader, pids, _dir) = start(&["--nodes", "3"]);
    d.wait_for_line("Watching the cloud", FORM);
    let v = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let victim = v["nodes"][1]["ip_port"].as_str().unwrap().to_string();
    signal(v["nodes"][1]["pid"].as_u64().unwrap() as u32, libc::SIGTERM);
    let status = d.wait_exit(EXIT);
    assert_eq!(status.code(), Some(1), "{}", d.output());
    assert!(d.output().contains(&format!("Worker lost: worker 1 ({victim}")) || d.output().contains(&victim), "{}", d.output());
    for pid in pids {
        wait_until(&format!("worker {pid} exits"), EXIT, || !alive(pid));
    }
}
