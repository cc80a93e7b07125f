//! Several hosts on one machine: a network namespace per host, each joined by a veth pair to a
//! bridge in a namespace of its own (nothing appears in the machine's own network). A second
//! bridge without an address lets a test partition the network: hosts moved to it hear each
//! other and nobody else, until they are moved back.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Kills every process left in namespace `ns` (bounded: 10 s), then deletes the namespace.
pub fn kill_all_and_delete(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip").args(["netns", "pids", ns]).output();
        let pids: Vec<u32> =
            out.map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()).unwrap_or_default();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            crate::signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Hosts on one LAN, `PREFIX.2`, `PREFIX.3`, ... (the bridge is `PREFIX.1`).
pub struct Lan {
    bridge_ns: String,
    hosts: Vec<String>,
    /// Each host's veth end in the bridge namespace.
    ports: Vec<String>,
    /// Each host's address.
    pub addrs: Vec<String>,
}

impl Lan {
    /// `n` hosts on `prefix` (three octets, e.g. "10.79.0").
    pub fn start(n: usize, prefix: &str) -> Lan {
        let tag = format!("{}{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        let bridge_ns = format!("eddyl{tag}");
        ip(&["netns", "add", &bridge_ns]);
        let mut lan = Lan { bridge_ns: bridge_ns.clone(), hosts: Vec::new(), ports: Vec::new(), addrs: Vec::new() };
        ip(&["-n", &bridge_ns, "link", "set", "lo", "up"]);
        for (bridge, addr) in [("br0", Some(format!("{prefix}.1/24"))), ("br1", None)] {
            ip(&["-n", &bridge_ns, "link", "add", bridge, "type", "bridge"]);
            if let Some(addr) = addr {
                ip(&["-n", &bridge_ns, "addr", "add", &addr, "dev", bridge]);
            }
            ip(&["-n", &bridge_ns, "link", "set", bridge, "up"]);
        }
        for i in 0..n {
            let ns = format!("eddyl{tag}h{i}");
            let addr = format!("{prefix}.{}", i + 2);
            ip(&["netns", "add", &ns]);
            lan.hosts.push(ns.clone());
            let (inside, outside) = (format!("h{tag}x{i}"), format!("p{tag}x{i}"));
            ip(&["-n", &ns, "link", "add", &inside, "type", "veth", "peer", "name", &outside, "netns", &bridge_ns]);
            ip(&["-n", &bridge_ns, "link", "set", &outside, "master", "br0"]);
            ip(&["-n", &bridge_ns, "link", "set", &outside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            lan.ports.push(outside);
            lan.addrs.push(addr);
        }
        lan
    }

    /// `program` to run on host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i]]).arg(program);
        cmd
    }

    /// Cuts `group` off from the other hosts: they hear each other and nobody else.
    pub fn partition(&self, group: &[usize]) {
        for &i in group {
            ip(&["-n", &self.bridge_ns, "link", "set", &self.ports[i], "master", "br1"]);
        }
    }

    /// Every host back on one network.
    pub fn heal(&self) {
        for port in &self.ports {
            ip(&["-n", &self.bridge_ns, "link", "set", port, "master", "br0"]);
        }
    }

    /// An HTTP request from host `i` (curl, within 20 s) with the bearer `token`: the status
    /// and the JSON answer (Null if it was not JSON; status 0 if nothing answered).
    pub fn http(&self, i: usize, method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut cmd = self.command(i, "curl");
        cmd.args(["-s", "-m", "20", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", &format!("Authorization: Bearer {token}")]);
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(url).stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.bridge_ns)) {
            kill_all_and_delete(ns);
        }
    }
}
