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
    let leader = read_notify(&notify).leader;
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
fn with_fail_fast_a_killed_worker_is_named_and_the_driver_exits_non_zero() {
    let (mut d, leader, pids, _dir) = start(&["--nodes", "3", "--fail-fast"]);
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
fn the_survivor_of_two_removes_a_killed_worker_and_the_cloud_carries_on() {
    // One of two is no majority: the survivor removes the other because nothing listens at
    // its address any more (a dead process, not a partition).
    let (mut d, leader, _pids, _dir) = start(&["--nodes", "2", "--worker-restarts", "0"]);
    d.wait_for_line("Watching the cloud", FORM);
    let v = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    let other = v["nodes"].as_array().unwrap().iter().find(|n| n["ip_port"] != leader.as_str()).unwrap().clone();
    let victim = other["ip_port"].as_str().unwrap().to_string();
    signal(other["pid"].as_u64().unwrap() as u32, libc::SIGKILL);
    let line = d.wait_for_line("Worker lost", EXIT);
    assert!(line.contains(&victim), "{line}");
    let line = d.wait_for_line("was removed from the cloud", EXIT);
    assert!(
        line.contains(&victim) && line.contains("nothing has listened at its address") && line.contains("carries on with 1 workers"),
        "{line}"
    );
    wait_until("the leader sees a healthy cloud of one", EXIT, || {
        get_json(&format!("http://{leader}/3/Cloud")).is_some_and(|v| v["cloud_healthy"] == true && v["cloud_size"] == 1)
    });
    let v = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["lost_nodes"][0]["ip_port"], victim.as_str(), "{v}");
    // Work goes on.
    assert_eq!(get_status(&format!("http://{leader}/3/NetworkTest")), Some(200));
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
    let leader = read_notify(&notify).leader;
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
    let (mut d, leader, pids, _dir) = start(&["--nodes", "3", "--fail-fast"]);
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

/// Every endpoint of the index, with `{param}`s filled in: (method, path).
fn documented_endpoints(base: &str, token: &str) -> Vec<(String, String)> {
    let doc = client_with_token(Some(token), Duration::from_secs(10))
        .get(format!("{base}/openapi.json"))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    let mut all = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let filled: String =
            path.split('/').map(|part| if part.starts_with('{') { "no_such_thing" } else { part }).collect::<Vec<_>>().join("/");
        for method in methods.as_object().unwrap().keys() {
            all.push((method.to_uppercase(), filled.clone()));
        }
    }
    all
}

fn status_of(client: &reqwest::blocking::Client, method: &str, url: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method.clone(), url);
    if method == reqwest::Method::POST {
        request = request.json(&serde_json::json!({}));
    }
    request.send().unwrap().status().as_u16()
}

#[test]
fn every_rest_endpoint_wants_the_token_that_the_driver_prints() {
    let (mut d, leader, pids, dir) = start(&["--nodes", "2"]);
    let base = format!("http://{leader}");
    let token = read_notify(&dir.path().join("leader.txt")).token_opt.expect("the notify file holds the token");
    let out = d.wait_for_line("Access token:", FORM);
    assert!(out.contains(&token) && out.contains(&format!("{base}/?token={token}")), "{out}");
    let meta = std::fs::metadata(dir.path().join("leader.txt")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "the notify file holds a credential");
    // The workers get the secret in a file of their user's, not in their environment or
    // command line (both readable in /proc), and the token is in no worker's log.
    let mut secret_files = Vec::new();
    for pid in &pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("EDDY_CLUSTER_SECRET"), "worker {pid} has the secret in its environment");
        let file = environ.split('\0').find_map(|v| v.strip_prefix("EDDY_SECRET_FILE=")).expect("EDDY_SECRET_FILE").to_string();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{file} is readable by others");
        let secret = std::fs::read_to_string(&file).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(secret.trim()), "worker {pid} has the secret on its command line");
        secret_files.push(file);
    }

    let anonymous = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let wrong = client_with_token(Some(&"0".repeat(64)), Duration::from_secs(10));
    let right = client_with_token(Some(&token), Duration::from_secs(10));
    let endpoints = documented_endpoints(&base, &token);
    assert!(endpoints.len() > 15, "{endpoints:?}");
    let open = ["/3/Health", "/kubernetes/isLeaderNode"];
    for (method, path) in endpoints.iter().filter(|(_, p)| p != "/3/Shutdown") {
        let url = format!("{base}{path}");
        if open.contains(&path.as_str()) {
            assert_ne!(status_of(&anonymous, method, &url), 401, "{method} {path} is open");
            continue;
        }
        assert_eq!(status_of(&anonymous, method, &url), 401, "{method} {path} without a token");
        assert_eq!(status_of(&wrong, method, &url), 401, "{method} {path} with a wrong token");
        assert_ne!(status_of(&right, method, &url), 401, "{method} {path} with the token");
    }
    // What a refused caller is told, and the challenge.
    let refused = anonymous.get(format!("{base}/3/Frames")).send().unwrap();
    assert_eq!(refused.headers()["www-authenticate"], "Bearer realm=\"eddy\"");
    let msg = refused.json::<serde_json::Value>().unwrap()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("Authorization: Bearer") && msg.contains("--notify"), "{msg}");
    // The token in the query works; a browser's first visit trades it for a cookie.
    assert_eq!(anonymous.get(format!("{base}/3/Cloud?token={token}")).send().unwrap().status(), 200);
    let no_redirect = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let first = no_redirect.get(format!("{base}/?token={token}")).send().unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "./");
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with(&format!("eddy_token={token};")) && cookie.contains("HttpOnly"), "{cookie}");
    let with_cookie = no_redirect.get(format!("{base}/3/Cloud")).header("cookie", format!("eddy_token={token}")).send().unwrap();
    assert_eq!(with_cookie.status(), 200);
    // A browser gets the console with the cookie, a page asking for the token without it;
    // tools that do not ask for HTML keep getting the text index.
    let html = |c: &reqwest::blocking::Client, cookie: Option<&str>| {
        let mut r = c.get(format!("{base}/")).header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        if let Some(cookie) = cookie {
            r = r.header("cookie", cookie);
        }
        let reply = r.send().unwrap();
        (reply.status().as_u16(), reply.text().unwrap())
    };
    let (status, page) = html(&no_redirect, None);
    assert!(status == 401 && page.contains("access token") && !page.contains(&token), "{status} {page}");
    let (status, page) = html(&no_redirect, Some(&format!("eddy_token={token}")));
    assert!(status == 200 && page.contains("ui/app.js"), "{status} {page}");
    let index = right.get(format!("{base}/")).send().unwrap().text().unwrap();
    assert!(index.contains("/3/Logs") && index.contains("GET "), "{index}");
    // Shutdown too wants the token.
    assert_eq!(status_of(&anonymous, "POST", &format!("{base}/3/Shutdown")), 401);
    assert_eq!(get_status(&format!("{base}/3/Health")), Some(200));
    assert_eq!(status_of(&right, "POST", &format!("{base}/3/Shutdown")), 200);
    assert!(d.wait_exit(EXIT).success(), "{}", d.output());
    for file in &secret_files {
        assert!(!std::path::Path::new(file).exists(), "{file} is left after the driver exited");
    }
    for log in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        let text = std::fs::read_to_string(log.unwrap().path()).unwrap();
        assert!(!text.contains(&token), "the token is in a worker's log");
    }
}

/// `alice:correct horse`, bcrypt with the `$2y$` prefix that `htpasswd -B` writes (made with
/// PyPI's bcrypt 5.0.0, a different implementation from the one the node verifies with).
const HTPASSWD: &str = "# eddy test users\nalice:$2y$05$QsLbJ.1aXE41IXYIJgtLROHT34M/.gufVzqWg1sTShnRoyOiN4qHW\n";

#[test]
fn basic_authentication_with_an_htpasswd_file_and_none_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("users");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let path = htpasswd.to_str().unwrap();
    let (mut d, leader, _pids, _dir) = start(&["--nodes", "2", "--rest-auth", "basic", "--htpasswd", path]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let cloud = format!("http://{leader}/3/Cloud");
    let with = |user: &str, password: &str| client.get(&cloud).basic_auth(user, Some(password)).send().unwrap().status().as_u16();
    assert_eq!(with("alice", "correct horse"), 200);
    assert_eq!(with("alice", "wrong"), 401);
    assert_eq!(with("mallory", "correct horse"), 401);
    let refused = client.get(&cloud).send().unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("Basic realm=\"eddy\""));
    // The workers check it too, not only the driver's observer.
    let v: serde_json::Value = client.get(&cloud).basic_auth("alice", Some("correct horse")).send().unwrap().json().unwrap();
    for node in v["nodes"].as_array().unwrap() {
        let url = format!("http://{}/3/Frames", node["ip_port"].as_str().unwrap());
        assert_eq!(client.get(&url).send().unwrap().status(), 401, "{url}");
        assert_eq!(client.get(&url).basic_auth("alice", Some("correct horse")).send().unwrap().status(), 200, "{url}");
    }
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(EXIT).code(), Some(130));

    // A weak hash is refused before anything starts, with the command that makes a good one.
    std::fs::write(&htpasswd, "bob:$apr1$x$y\n").unwrap();
    let mut weak = Proc::spawn({
        let mut cmd = driver(&["--nodes", "1", "--rest-auth", "basic", "--htpasswd", path]);
        cmd.arg("--log-dir").arg(dir.path().join("logs"));
        cmd
    });
    assert!(!weak.wait_exit(EXIT).success());
    assert!(weak.output().contains("htpasswd -B"), "{}", weak.output());

    // --rest-auth none: open, and said so.
    let (mut d, leader, _pids, _dir) = start(&["--nodes", "1", "--rest-auth", "none"]);
    assert!(d.output().contains("REST authentication is off"), "{}", d.output());
    assert_eq!(client.get(format!("http://{leader}/3/Frames")).send().unwrap().status(), 200);
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(EXIT).code(), Some(130));
}

#[test]
fn the_status_file_follows_the_driver_through_its_phases() {
    let dir = tempfile::tempdir().unwrap();
    let status_path = dir.path().join("status.json");
    let read = || -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap() };
    let notify = dir.path().join("leader.txt");
    let mut cmd = driver(&["--nodes", "2", "--status-file"]);
    cmd.arg(&status_path).arg("--log-dir").arg(dir.path().join("logs")).arg("--notify").arg(&notify);
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", FORM);
    let token = read_notify(&notify).token_opt.unwrap();
    let watching = read();
    assert_eq!(watching["phase"], "watching", "{watching}");
    let workers = watching["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{watching}");
    let ids: Vec<&str> = workers.iter().map(|w| w["worker_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"0") && ids.contains(&"1"), "{watching}");
    // The observer and the leader answer where the file says.
    let observer = watching["observer_rest_url"].as_str().unwrap();
    remember_token(observer.trim_start_matches("http://"), &token);
    let cloud = get_json(&format!("{observer}/3/Cloud")).unwrap();
    assert_eq!(cloud["cloud_size"], 2);
    assert_eq!(format!("http://{}", watching["leader"].as_str().unwrap()), watching["rest_url"].as_str().unwrap());
    assert!(!std::fs::read_to_string(&status_path).unwrap().contains("token"), "no token in the status file");
    d.signal(libc::SIGTERM);
    d.wait_exit(EXIT);
    assert_eq!(read()["phase"], "stopped");

    // A cloud that cannot form ends "failed", with the reason.
    let broken = dir.path().join("broken-mapper.sh");
    std::fs::write(&broken, "#!/bin/sh\necho 'cannot open the frobnicator' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = driver(&["--nodes", "1", "--status-file"]);
    cmd.arg(&status_path).arg("--log-dir").arg(dir.path().join("logs2")).arg("--mapper").arg(&broken);
    let mut d = Proc::spawn(cmd);
    assert!(!d.wait_exit(EXIT).success());
    let failed = read();
    assert_eq!(failed["phase"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("cannot open the frobnicator"), "{failed}");
}

/// xorshift64: random-looking bytes without a dependency, the same in every run.
fn garbage(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn garbage_idle_and_slow_connections_leave_the_node_serving_its_cloud() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    let (mut d, leader, _pids, dir) = start(&["--nodes", "2"]);
    let token = read_notify(&dir.path().join("leader.txt")).token_opt.expect("a token");
    let base = format!("http://{leader}");
    let client = client_with_token(Some(&token), Duration::from_secs(30));
    let cloud_answer = || {
        let t = Instant::now();
        let c: serde_json::Value = client.get(format!("{base}/3/Cloud")).send().unwrap().json().unwrap();
        (t.elapsed(), c)
    };
    let (before, cloud) = cloud_answer();
    let me = cloud["nodes"].as_array().unwrap().iter().find(|n| n["ip_port"] == leader.as_str()).unwrap();
    let grpc = format!("{}:{}", leader.rsplit_once(':').unwrap().0, me["grpc_port"]);

    // Random bytes on the REST port and on the internal gRPC port.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for addr in [&leader, &grpc] {
        for _ in 0..100 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(&garbage(&mut seed, 4096));
        }
    }
    // Two thousand connections that say nothing, and fifty that send headers slowly.
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(&leader).unwrap()).collect();
    let mut slow: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(&leader).unwrap()).collect();
    for s in &mut slow {
        s.write_all(b"GET /3/Cloud HTTP/1.1\r\nhost: x\r\n").unwrap();
    }
    for _ in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(b"x-slow: 1\r\n");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (during, cloud) = cloud_answer();
    assert_eq!(cloud["cloud_healthy"], true, "{cloud}");
    assert_eq!(cloud["cloud_size"], 2, "{cloud}");
    println!("GET /3/Cloud took {before:?} before the flood and {during:?} during it");
    // A body over the limit is refused before it is read whole.
    let big = client.post(format!("{base}/3/ImportFiles")).header("content-type", "application/json").body(vec![b' '; 17 << 20]).send();
    assert_eq!(big.map(|r| r.status().as_u16()).unwrap_or(413), 413);

    // The node closes what sends no complete headers within its header timeout (10 s).
    for s in idle.iter().step_by(100).chain(slow.iter()) {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 256];
        let read = (&*s).read(&mut buf);
        assert!(read.is_ok(), "the node kept a silent connection open for 30 s: {read:?}");
    }
    drop(idle);
    drop(slow);
    let (_, cloud) = cloud_answer();
    assert_eq!(cloud["cloud_healthy"], true, "{cloud}");
    assert_eq!(post(&format!("{base}/3/Shutdown")), 200);
    assert!(d.wait_exit(EXIT).success(), "{}", d.output());
}
