//! Fixtures for end-to-end tests: the real binaries as child processes that are killed on
//! drop, bounded waits, free loopback ports, and a real DNS server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod dns;
pub mod frames;
pub mod real_hadoop;
pub mod s3;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where cargo put the binaries: next to the test executable's `deps` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests", path.display());
    path
}

/// A child process whose output is captured line by line and which is killed on drop.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub extra_pids: Vec<u32>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("EDDY_") || k.starts_with("H2O_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Proc { child, lines, extra_pids: Vec::new() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line contains `needle`; panics with the output so far after `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                    return l.clone();
                }
                panic!("process exited ({status}) before printing {needle:?}; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no line with {needle:?} within {timeout:?}; output:\n{}", self.output());
    }

    /// Waits for the process to exit; panics with its output after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("process did not exit within {timeout:?}; output:\n{}", self.output());
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        for pid in &self.extra_pids {
            signal(*pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: i32) {
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Polls `f` every 100 ms until true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within {timeout:?}");
}

/// A port P such that P and P+1 are free on `ip` right now. Chosen below Linux's ephemeral
/// range (32768+), so that processes binding port 0 in concurrent tests cannot be handed it
/// between this check and the bind of the process under test.
pub fn free_port_pair(ip: &str) -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id()
        ^ Instant::now().elapsed().subsec_nanos()
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for _ in 0..2000 {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = 20000 + ((seed.wrapping_add(k.wrapping_mul(7919))) % 12000) as u16;
        if TcpListener::bind((ip, p)).is_ok() && TcpListener::bind((ip, p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair on {ip}");
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn get_json(url: &str) -> Option<Value> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(url).send().ok()?.json().ok()
}

pub fn get_status(url: &str) -> Option<u16> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(url).send().ok().map(|r| r.status().as_u16())
}

pub fn post(url: &str) -> u16 {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.post(url).send().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The worker pids listed by a node's `/3/Cloud`.
pub fn cloud_pids(rest: &str) -> Vec<u32> {
    let v = get_json(&format!("http://{rest}/3/Cloud")).expect("cloud json");
    v["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect()
}
