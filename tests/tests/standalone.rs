//! `eddy-mapper` without a driver: flatfile clouds, refusals, bad input, Kubernetes DNS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use eddy_tests::dns::DnsServer;
use eddy_tests::*;

const WAIT: Duration = Duration::from_secs(30);

fn mapper(dir: &Path, secret: &str, args: &[&str]) -> Command {
    standalone_mapper(Command::new(bin("eddy-mapper")), dir, secret, args)
}

fn flatfile(dir: &Path, ports: &[u16]) -> String {
    let path = dir.join("flatfile.txt");
    let mut text = String::from("# test cloud\n\n");
    for p in ports {
        text.push_str(&format!("127.0.0.1:{p}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn formed(rest: &str, size: u64) -> bool {
    get_json(&format!("http://{rest}/3/Cloud")).is_some_and(|v| v["cloud_size"] == size && v["consensus"] == true)
}

const SECRET: &str = "flatfile-test-secret";

/// Ports free on every one of `ips`, as pods use them: the REST port (and the internal one
/// above it) and the probe port, all distinct. A bounded search.
fn pod_ports(ips: &[Ipv4Addr]) -> (u16, u16) {
    let free_on_all = |p: u16| ips.iter().all(|ip| std::net::TcpListener::bind((ip.to_string().as_str(), p)).is_ok());
    let port = (0..200).map(|_| free_port_pair("127.0.0.1")).find(|&p| free_on_all(p) && free_on_all(p + 1));
    let port = port.expect("no port pair free on every pod address after 200 tries");
    let api = (0..200).map(|_| free_port_pair("127.0.0.1")).find(|&p| p != port && p != port + 1 && free_on_all(p));
    (port, api.expect("no probe port free on every pod address after 200 tries"))
}

#[test]
fn flatfile_cloud_locks_then_refuses_late_joiner_and_wrong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port_pair("127.0.0.1"), free_port_pair("127.0.0.1"));
    let ff = flatfile(dir.path(), &[p1, p2]);
    let _a = Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", &ff, "--ip", "127.0.0.1", "--port", &p1.to_string()]));
    let _b = Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", &ff, "--ip", "127.0.0.1", "--port", &p2.to_string()]));
    let rest = format!("127.0.0.1:{p1}");
    wait_until("flatfile cloud of 2", WAIT, || formed(&rest, 2));

    // A node with the wrong secret is refused and logged, never admitted.
    let p4 = free_port_pair("127.0.0.1");
    let ff_bad = dir.path().join("flat-bad.txt");
    std::fs::write(&ff_bad, format!("127.0.0.1:{p1}\n127.0.0.1:{p4}\n")).unwrap();
    let mut bad = Proc::spawn(mapper(
        dir.path(),
        "another-secret-entirely",
        &["--flatfile", ff_bad.to_str().unwrap(), "--ip", "127.0.0.1", "--port", &p4.to_string(), "--timeout", "3s"],
    ));
    assert_eq!(bad.wait_exit(WAIT).code(), Some(1));
    // Its TLS client finds our certificates of another CA (the CA comes from the secret), so
    // it never gets as far as a call: it says why, and the cloud never hears from it.
    assert!(bad.output().contains("another cluster secret"), "{}", bad.output());
    assert!(formed(&rest, 2));

    // First work locks the cloud; a late joiner is then refused with a clear error.
    let status = get_status(&format!("http://{rest}/3/NetworkTest")).unwrap();
    assert_eq!(status, 200);
    let p3 = free_port_pair("127.0.0.1");
    let ff3 = dir.path().join("flat3.txt");
    std::fs::write(&ff3, format!("127.0.0.1:{p1}\n127.0.0.1:{p2}\n127.0.0.1:{p3}\n")).unwrap();
    let mut late =
        Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", ff3.to_str().unwrap(), "--ip", "127.0.0.1", "--port", &p3.to_string()]));
    assert_eq!(late.wait_exit(WAIT).code(), Some(1), "{}", late.output());
    let out = late.output();
    assert!(out.contains("join refused") && out.contains("locked"), "{out}");
    // Refused by every member at once, not after waiting out its formation timeout.
    assert!(!out.contains("did not form"), "{out}");
    let v = get_json(&format!("http://{rest}/3/Cloud")).unwrap();
    assert_eq!(v["cloud_size"], 2);
    assert_eq!(v["locked"], true);
}

#[test]
fn a_worker_restarted_at_its_address_in_a_locked_cloud_is_a_new_member_never_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port_pair("127.0.0.1"), free_port_pair("127.0.0.1"));
    let ff = flatfile(dir.path(), &[p1, p2]);
    let args = |port: u16| vec!["--flatfile".to_string(), ff.clone(), "--ip".into(), "127.0.0.1".into(), "--port".into(), port.to_string()];
    let spawn = |port: u16| {
        let a = args(port);
        Proc::spawn(mapper(dir.path(), SECRET, &a.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let _a = spawn(p1);
    let mut b = spawn(p2);
    let rest = format!("127.0.0.1:{p1}");
    wait_until("flatfile cloud of 2", WAIT, || formed(&rest, 2));
    assert_eq!(get_status(&format!("http://{rest}/3/NetworkTest")), Some(200), "first work locks the cloud");

    // kill -9, and the same address comes back as a new process (a container restart): the old
    // member is lost for good (its data is gone), and the new process joins in its place.
    let old_pid = b.pid();
    signal(old_pid, libc::SIGKILL);
    b.wait_exit(WAIT);
    let _again = spawn(p2);
    let mut v = serde_json::Value::Null;
    wait_until("a cloud of 2 again, with the new process", WAIT, || {
        v = get_json(&format!("http://{rest}/3/Cloud")).unwrap_or_default();
        v["cloud_healthy"] == true
            && v["consensus"] == true
            && v["cloud_size"] == 2
            && v["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["pid"].as_u64() != Some(u64::from(old_pid))))
    });
    assert_eq!(v["generation"], 1, "{v}");
    let lost = &v["lost_nodes"][0];
    assert_eq!(lost["ip_port"], format!("127.0.0.1:{p2}"), "{v}");
    assert!(lost["reason"].as_str().unwrap_or_default().contains("restarted"), "{v}");
    assert_eq!(get_status(&format!("http://{rest}/3/NetworkTest")), Some(200));
    // The cloud is full again: a third process at another address is refused.
    let p3 = free_port_pair("127.0.0.1");
    let ff3 = dir.path().join("three.txt");
    std::fs::write(&ff3, format!("127.0.0.1:{p1}\n127.0.0.1:{p2}\n127.0.0.1:{p3}\n")).unwrap();
    let mut late =
        Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", ff3.to_str().unwrap(), "--ip", "127.0.0.1", "--port", &p3.to_string()]));
    assert_eq!(late.wait_exit(WAIT).code(), Some(1), "{}", late.output());
    assert!(late.output().contains("join refused"), "{}", late.output());
}

#[test]
fn bad_flatfiles_and_taken_ports_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ff = dir.path().join("flatfile.txt");
    std::fs::write(&ff, "# peers\n127.0.0.1:5000\n\n127.0.0.1\n").unwrap();
    let mut m = Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", ff.to_str().unwrap(), "--port", "5000"]));
    assert_ne!(m.wait_exit(WAIT).code(), Some(0));
    let out = m.output();
    assert!(out.contains("flatfile.txt:4: \"127.0.0.1\"") && out.contains("port is missing"), "{out}");

    let missing = dir.path().join("nope.txt");
    let mut m = Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", missing.to_str().unwrap()]));
    assert_ne!(m.wait_exit(WAIT).code(), Some(0));
    assert!(m.output().contains("nope.txt"), "{}", m.output());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    std::fs::write(&ff, format!("127.0.0.1:{port}\n")).unwrap();
    let mut m = Proc::spawn(mapper(dir.path(), SECRET, &["--flatfile", ff.to_str().unwrap(), "--ip", "127.0.0.1", "--port", &port]));
    assert_ne!(m.wait_exit(WAIT).code(), Some(0));
    let out = m.output();
    assert!(out.contains(&format!("cannot listen on 127.0.0.1:{port}")) && out.contains("--port"), "{out}");
}

#[test]
fn unreachable_driver_is_retried_then_reported() {
    let closed = free_port_pair("127.0.0.1");
    let mut cmd = Command::new(bin("eddy-mapper"));
    cmd.env("EDDY_DRIVER", format!("127.0.0.1:{closed}"))
        .env("EDDY_CLUSTER_SECRET", "driver-test-secret")
        .env("EDDY_TIMEOUT", "2s")
        .env("EDDY_TYPO_SETTING", "1")
        .args(["--port", "0"]);
    let mut m = Proc::spawn(cmd);
    assert_eq!(m.wait_exit(WAIT).code(), Some(1));
    let out = m.output();
    assert!(out.contains(&format!("driver at 127.0.0.1:{closed} unreachable")), "{out}");
    assert!(out.contains("EDDY_TYPO_SETTING") && out.contains("unknown environment variable"), "{out}");
}

#[test]
fn kubernetes_headless_service_dns_forms_a_cloud_with_one_ready_leader() {
    let ips = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let service = "eddy.default.svc.cluster.local";
    let dns = DnsServer::start(service, ips.to_vec());
    let (port, api) = pod_ports(&ips);
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Vec::new();
    for ip in ips {
        let mut cmd = mapper(dir.path(), SECRET, &["--ip", &ip.to_string(), "--port", &port.to_string()]);
        // The H2O spellings are accepted as aliases.
        cmd.env("H2O_KUBERNETES_SERVICE_DNS", service)
            .env("H2O_NODE_EXPECTED_COUNT", "3")
            .env("EDDY_NODE_LOOKUP_TIMEOUT", "20")
            .env("EDDY_KUBERNETES_API_PORT", api.to_string())
            .env("EDDY_KUBERNETES_DNS_SERVER", format!("127.0.0.1:{}", dns.port));
        procs.push(Proc::spawn(cmd));
    }
    for ip in ips {
        let rest = format!("{ip}:{port}");
        let start = std::time::Instant::now();
        while !formed(&rest, 3) {
            if start.elapsed() > WAIT {
                let logs: Vec<String> = procs.iter().map(Proc::output).collect();
                panic!("{rest} did not see a cloud of 3 within {WAIT:?}; mapper output:\n{}", logs.join("\n-----\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let statuses: Vec<u16> = ips.iter().map(|ip| get_status(&format!("http://{ip}:{api}/kubernetes/isLeaderNode")).unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 2, "{statuses:?}");
    assert_eq!(statuses[0], 200, "the lowest address leads");
}

#[test]
fn kubernetes_too_few_pods_fails_with_a_clear_error() {
    let service = "short.default.svc.cluster.local";
    let dns = DnsServer::start(service, vec![Ipv4Addr::new(127, 0, 0, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mapper(dir.path(), SECRET, &["--ip", "127.0.0.1", "--port", "0"]);
    cmd.env("EDDY_KUBERNETES_SERVICE_DNS", service)
        .env("EDDY_NODE_EXPECTED_COUNT", "2")
        .env("EDDY_NODE_LOOKUP_TIMEOUT", "2")
        .env("EDDY_KUBERNETES_API_PORT", free_port_pair("127.0.0.1").to_string())
        .env("EDDY_KUBERNETES_DNS_SERVER", format!("127.0.0.1:{}", dns.port));
    let mut m = Proc::spawn(cmd);
    assert_eq!(m.wait_exit(WAIT).code(), Some(1));
    let out = m.output();
    assert!(out.contains("found 1 of 2 pods behind short.default.svc.cluster.local"), "{out}");
}

/// Regression: with no expected count, a service that never resolved made every pod a
/// cloud of one (split brain behind one Service).
#[test]
fn kubernetes_unresolvable_service_is_an_error_not_a_cloud_of_one() {
    let dns = DnsServer::start("other.default.svc.cluster.local", vec![Ipv4Addr::new(127, 0, 0, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mapper(dir.path(), SECRET, &["--ip", "127.0.0.1", "--port", "0"]);
    cmd.env("EDDY_KUBERNETES_SERVICE_DNS", "missing.default.svc.cluster.local")
        .env("EDDY_NODE_LOOKUP_TIMEOUT", "2")
        .env("EDDY_KUBERNETES_API_PORT", free_port_pair("127.0.0.1").to_string())
        .env("EDDY_KUBERNETES_DNS_SERVER", format!("127.0.0.1:{}", dns.port));
    let mut m = Proc::spawn(cmd);
    assert_eq!(m.wait_exit(WAIT).code(), Some(1));
    assert!(m.output().contains("found 0 of 1 pods behind missing.default.svc.cluster.local"), "{}", m.output());
}

/// The outside report's case: without an expected count, the lookup timeout is how long pods
/// may keep appearing (H2O's meaning), and no pod answers ready, leads or counts as a cloud
/// while it looks. Pod 1 starts alone in the service; pod 2 appears in DNS 3 s later.
#[test]
fn kubernetes_without_an_expected_count_resolves_for_the_whole_lookup_timeout_and_is_not_ready_before() {
    let ips = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];
    let service = "late.default.svc.cluster.local";
    let dns = DnsServer::start(service, vec![ips[0]]);
    let (port, api) = pod_ports(&ips);
    let dir = tempfile::tempdir().unwrap();
    let start = |ip: Ipv4Addr| {
        let mut cmd = mapper(dir.path(), SECRET, &["--ip", &ip.to_string(), "--port", &port.to_string()]);
        cmd.env("EDDY_KUBERNETES_SERVICE_DNS", service)
            .env("EDDY_NODE_LOOKUP_TIMEOUT", "6")
            .env("EDDY_KUBERNETES_API_PORT", api.to_string())
            .env("EDDY_KUBERNETES_DNS_SERVER", format!("127.0.0.1:{}", dns.port));
        Proc::spawn(cmd)
    };
    let _first = start(ips[0]);
    let rest = format!("{}:{port}", ips[0]);
    wait_until("pod 1 serves REST", WAIT, || get_json(&format!("http://{rest}/3/Cloud")).is_some());
    // Looking up: not ready, not leading, no consensus, although only itself resolves.
    assert_eq!(get_status(&format!("http://{}:{api}/kubernetes/isLeaderNode", ips[0])), Some(404));
    let v = get_json(&format!("http://{rest}/3/Cloud")).unwrap();
    assert_eq!(v["consensus"], false, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get_status(&format!("http://{}:{api}/kubernetes/isLeaderNode", ips[0])), Some(404), "still looking after 2 s");

    let _second = start(ips[1]);
    dns.set_addresses(&ips);
    for ip in ips {
        let rest = format!("{ip}:{port}");
        wait_until(&format!("{rest} in a cloud of 2"), WAIT, || formed(&rest, 2));
    }
    let statuses: Vec<u16> = ips.iter().map(|ip| get_status(&format!("http://{ip}:{api}/kubernetes/isLeaderNode")).unwrap()).collect();
    assert_eq!(statuses, vec![200, 404], "the lowest address leads");
}

/// The outside report's case: one mistyped flatfile entry, or a node started with another
/// `--name`, kept every correctly named node from forming. Now a majority of the list forms
/// without them at the formation timeout and says who was left out; the wrongly named node
/// forms nothing.
#[test]
fn a_mistyped_flatfile_entry_and_a_wrongly_named_node_are_left_out_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let [p1, p2, p3, typo, other] = [(); 5].map(|()| free_port_pair("127.0.0.1"));
    let ff = flatfile(dir.path(), &[p1, p2, p3, typo, other]);
    let start = |port: u16, name: &str| {
        Proc::spawn(mapper(
            dir.path(),
            SECRET,
            &["--flatfile", &ff, "--ip", "127.0.0.1", "--port", &port.to_string(), "--timeout", "4s", "--name", name],
        ))
    };
    let _good: Vec<Proc> = [p1, p2, p3].into_iter().map(|p| start(p, "eddy")).collect();
    let mut stranger = start(other, "another-cloud");
    for port in [p1, p2, p3] {
        let rest = format!("127.0.0.1:{port}");
        wait_until(&format!("{rest} forms without the bad entries"), WAIT, || formed(&rest, 3));
    }
    let v = get_json(&format!("http://127.0.0.1:{p1}/3/Cloud")).unwrap();
    assert_eq!((v["cloud_size"].as_u64(), v["cloud_healthy"].as_bool()), (Some(3), Some(true)), "{v}");
    let left: Vec<(String, String)> = v["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["ip_port"].as_str().unwrap().to_string(), l["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(left.len(), 2, "{v}");
    assert!(left.iter().any(|(a, r)| *a == format!("127.0.0.1:{typo}") && r.contains("never heard")), "{left:?}");
    assert!(left.iter().any(|(a, r)| *a == format!("127.0.0.1:{other}") && r.contains("another-cloud")), "{left:?}");
    // The node of the other cloud was refused by everyone: it fails, it does not form alone.
    assert_eq!(stranger.wait_exit(WAIT).code(), Some(1), "{}", stranger.output());
    assert_eq!(get_status(&format!("http://127.0.0.1:{p1}/3/NetworkTest")), Some(200), "the cloud of 3 works");
}
