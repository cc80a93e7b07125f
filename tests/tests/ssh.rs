//! `eddy-driver ssh` against real sshd servers, one per network namespace (tests/src/sshd.rs):
//! clouds of 3 hosts x 1 worker (disowned: status, restart, stop) and 2 hosts x 2 workers
//! (attached: Ctrl-C stops them), and hosts that fail in different ways, each named.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use eddy_tests::sshd::{HostKind, SshHosts};
use eddy_tests::{read_notify, wait_until, Proc};

const MINUTE: Duration = Duration::from_secs(60);

fn sample() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample.csv").to_string()
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn three_hosts_disowned_then_status_restart_and_stop() {
    let hosts = SshHosts::start(&[HostKind::Good; 3]);
    let notify = hosts.dir.path().join("leader.txt");
    let notify_text = notify.display().to_string();
    let (ok, out) = hosts.run_driver(&["ssh", "--disown", "--notify", &notify_text, "--import", &sample()], 3 * MINUTE);
    assert!(ok, "{out}");
    assert!(out.contains("Cloud of size 3 formed"), "{out}");
    assert_eq!(count(&out, "copied eddy-mapper"), 3, "{out}");
    assert!(out.contains("Frame sample.hex: 5000 rows x 11 columns"), "the import's summary: {out}");
    let first = read_notify(&notify);
    let token = first.token_opt.clone().expect("a token in the notify file");
    let mut pids = Vec::new();
    for i in 0..3 {
        let on_host = hosts.mappers_on(i);
        assert_eq!(on_host.len(), 1, "one worker on host {i}");
        // The secret is in a file only its owner reads, not on a command line or in the environment.
        let secret_file = hosts.host_install(i).join("run/secret");
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
        let secret = std::fs::read_to_string(&secret_file).unwrap().trim().to_string();
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", on_host[0])).unwrap();
        let environ = std::fs::read(format!("/proc/{}/environ", on_host[0])).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&secret) && !String::from_utf8_lossy(&environ).contains(&secret));
        pids.push(on_host[0]);
    }

    let (ok, out) = hosts.run_driver(&["ssh", "status"], MINUTE);
    assert!(ok, "{out}");
    assert_eq!(count(&out, " running"), 3, "{out}");

    // A second cloud into the same install directories is refused, naming the running one.
    let (ok, out) = hosts.run_driver(&["ssh"], MINUTE);
    assert!(!ok, "{out}");
    assert_eq!(count(&out, "still run here"), 3, "{out}");

    // A job that cannot end on its own: importing a named pipe nobody writes yet (job_1 was
    // the sample's import).
    let fifo = hosts.dir.path().join("pipe.csv");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let url = format!("http://{}", first.leader);
    let mut import = Proc::spawn(hosts.driver(&["import", "--cloud", &url, "--token", &token, &fifo.display().to_string()]));
    wait_until("the import job to run", MINUTE, || {
        let out = hosts.output_in_driver_ns(&["curl", "-s", "-H", &format!("Authorization: Bearer {token}"), &format!("{url}/3/Jobs")]);
        out.contains("\"RUNNING\"")
    });
    let (ok, out) = hosts.run_driver(&["ssh", "restart"], MINUTE);
    assert!(!ok && out.contains("restart refused: job job_2 (Import"), "{out}");
    assert_eq!(hosts.mappers_on(0), vec![pids[0]], "a refused restart leaves the workers alone");
    // Let the import end: write the pipe (again for each time it is opened; bounded).
    let writer_path = fifo.clone();
    std::thread::spawn(move || {
        for _ in 0..5 {
            let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&writer_path) else { return };
            let _ = std::io::Write::write_all(&mut pipe, b"a,b\n1,2\n");
        }
    });
    import.wait_exit(MINUTE);

    let again = hosts.dir.path().join("again.txt");
    let (ok, out) = hosts.run_driver(&["ssh", "restart", "--disown", "--notify", &again.display().to_string()], 3 * MINUTE);
    assert!(ok, "{out}");
    assert!(out.contains("Cloud of size 3 formed"), "{out}");
    assert_eq!(count(&out, "eddy-mapper is up to date"), 3, "the binary is not copied twice: {out}");
    // The same cloud: its name and secret, so its token, are kept.
    assert_eq!(read_notify(&again).token_opt.as_deref(), Some(token.as_str()));
    for (i, old) in pids.iter().enumerate() {
        let now = hosts.mappers_on(i);
        assert_eq!(now.len(), 1, "one worker on host {i} after the restart");
        assert_ne!(now[0], *old, "host {i}'s worker was restarted");
    }

    let (ok, out) = hosts.run_driver(&["ssh", "stop"], MINUTE);
    assert!(ok, "{out}");
    assert_eq!(count(&out, "stopped 1 worker"), 3, "{out}");
    for i in 0..3 {
        assert!(hosts.mappers_on(i).is_empty(), "no worker left on host {i}");
    }
    let (ok, out) = hosts.run_driver(&["ssh", "status"], MINUTE);
    assert!(ok && count(&out, "no workers") == 3, "{out}");
}

#[test]
fn two_hosts_two_workers_each_attached_and_stopped_by_ctrl_c() {
    let hosts = SshHosts::start(&[HostKind::Good; 2]);
    let notify = hosts.dir.path().join("leader.txt");
    let mut driver = Proc::spawn(hosts.driver(&["ssh", "--workers-per-host", "2", "--notify", &notify.display().to_string()]));
    driver.wait_for_line("Cloud of size 4 formed", 3 * MINUTE);
    for i in 0..2 {
        assert_eq!(hosts.mappers_on(i).len(), 2, "two workers on host {i}");
    }
    let notified = read_notify(&notify);
    let url = format!("http://{}", notified.leader);
    let token = notified.token_opt.clone().expect("a token");
    let (ok, out) = hosts.run_driver(&["import", "--cloud", &url, "--token", &token, &sample()], MINUTE);
    assert!(ok && out.contains("Frame sample.hex: 5000 rows x 11 columns"), "{out}");
    // A worker killed on its host is started again there and joins the cloud in its place.
    // Not on the leader's host: the test talks to the leader.
    let on = if notified.leader.starts_with(&format!("{}:", hosts.addrs[1])) { 0 } else { 1 };
    let victim = hosts.mappers_on(on)[0];
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let line = driver.wait_for_line("again in place of", 2 * MINUTE);
    let ids = if on == 0 { ["0", "1"] } else { ["2", "3"] };
    assert!(ids.iter().any(|id| line.starts_with(&format!("Started worker {id} again"))), "{line}");
    wait_until("two workers on the host again", MINUTE, || hosts.mappers_on(on).len() == 2 && !hosts.mappers_on(on).contains(&victim));
    let auth = format!("Authorization: Bearer {token}");
    let mut cloud = serde_json::Value::Null;
    wait_until("a cloud of 4 again, the lost worker listed", MINUTE, || {
        let text = hosts.output_in_driver_ns(&["curl", "-s", "-H", &auth, &format!("{url}/3/Cloud")]);
        cloud = serde_json::from_str(&text).unwrap_or_default();
        cloud["cloud_size"] == 4 && cloud["cloud_healthy"] == true && cloud["lost_nodes"].as_array().is_some_and(|l| l.len() == 1)
    });
    // The frame the lost worker held part of was read again and answers.
    let summary = hosts.output_in_driver_ns(&["curl", "-s", "-H", &auth, &format!("{url}/3/Frames/sample.hex/summary")]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    assert_eq!(summary["columns"].as_array().map(Vec::len), Some(11), "{summary} after {cloud}");
    driver.signal(libc::SIGINT);
    let status = driver.wait_exit(MINUTE);
    assert_eq!(status.code(), Some(130), "{}", driver.output());
    for i in 0..2 {
        assert!(hosts.mappers_on(i).is_empty(), "no worker left on host {i}: {}", driver.output());
    }
}

#[test]
fn failing_hosts_are_each_named_with_the_reason() {
    let hosts = SshHosts::start(&[HostKind::Good, HostKind::Down, HostKind::WrongKey, HostKind::ReadOnlyInstall, HostKind::FullInstall]);
    let (ok, out) = hosts.run_driver(&["ssh", "--ssh-timeout", "20s"], 2 * MINUTE);
    assert!(!ok, "{out}");
    let a = &hosts.addrs;
    assert!(out.contains(&format!("{}: copied eddy-mapper", a[0])), "{out}");
    assert!(out.contains(&format!("{}: FAILED: unreachable", a[1])), "{out}");
    assert!(out.contains(&format!("{}: FAILED: authentication failed", a[2])), "{out}");
    assert!(out.contains(&format!("{}: FAILED: preparing the install directory: the install directory is not writable", a[3])), "{out}");
    assert!(out.contains(&format!("{}: FAILED: copying eddy-mapper: no space in the install directory", a[4])), "{out}");
    assert!(out.contains("4 of 5 hosts failed"), "{out}");
    assert!(hosts.mappers_on(0).is_empty(), "no worker starts when a host failed");
}

#[test]
fn a_worker_that_cannot_start_is_named_with_its_host_and_log() {
    let hosts = SshHosts::start(&[HostKind::Good]);
    // No interface of the host is in this network (lo has 127.0.0.1 only): the worker exits at once.
    let (ok, out) = hosts.run_driver(&["ssh", "--network", "127.255.255.0/24"], 2 * MINUTE);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("on {} exited with code", hosts.addrs[0])), "{out}");
    assert!(out.contains("--- last lines of its log ---") && out.contains("127.255.255.0/24"), "{out}");
    assert!(hosts.mappers_on(0).is_empty());
}

#[test]
fn the_users_ssh_configuration_names_hosts_and_jumps() {
    let hosts = SshHosts::start(&[HostKind::Good, HostKind::Good]);
    // Names only the configuration knows; the second host is reached through the first. (The
    // jump's own ssh takes its options from the configuration only, not from the driver's
    // command line: the configuration's StrictHostKeyChecking accept-new is what lets it
    // meet the first host's key.)
    hosts.prepend_ssh_config(&format!(
        "Host alpha\n  HostName {}\nHost beta\n  HostName {}\n  ProxyJump alpha\n",
        hosts.addrs[0], hosts.addrs[1]
    ));
    std::fs::write(hosts.dir.path().join("hosts.txt"), "alpha\nbeta\n").unwrap();
    let (ok, out) = hosts.run_driver(&["ssh", "--check"], 2 * MINUTE);
    assert!(ok, "{out}\n--- alpha's sshd ---\n{}\n--- beta's sshd ---\n{}", hosts.sshd_log(0), hosts.sshd_log(1));
    assert!(out.contains("alpha: copied eddy-mapper") && out.contains("beta: copied eddy-mapper"), "{out}");
    assert!(out.contains("Cloud of size 2 formed"), "{out}");
    // The jump shows in the second host's sshd log: its client is the first host.
    let log = hosts.sshd_log(1);
    assert!(log.contains(&format!("Accepted publickey for root from {}", hosts.addrs[0])), "{log}");
    assert!(!log.contains("from 10.77.0.1 "), "beta was reached directly: {log}");
    for i in 0..2 {
        assert!(hosts.mappers_on(i).is_empty(), "--check stops the workers");
    }
}
