//! Fixtures for end-to-end tests: the real binaries as child processes that are killed on
//! drop, bounded waits, free loopback ports, and a real DNS server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod dns;
pub mod frames;
pub mod netns;
pub mod real_hadoop;
pub mod s3;
pub mod sshd;

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
    if let (Ok(pid), Ok(sig)) = (i32::try_from(pid), nix::sys::signal::Signal::try_from(sig)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
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

/// REST access tokens of the clouds this test process started, by node `ip:port`: the
/// helpers below send the right one to whichever node a URL names.
static TOKENS: Mutex<Option<std::collections::HashMap<String, String>>> = Mutex::new(None);

/// Sends `token` with every helper request to the node at `authority` (`ip:port`).
pub fn remember_token(authority: &str, token: &str) {
    TOKENS.lock().unwrap().get_or_insert_with(Default::default).insert(authority.to_string(), token.to_string());
}

/// The token remembered for the node a URL names.
pub fn token_for(url: &str) -> Option<String> {
    let authority = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default();
    TOKENS.lock().unwrap().as_ref()?.get(authority).cloned()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

fn authorized(request: reqwest::blocking::RequestBuilder, url: &str) -> reqwest::blocking::RequestBuilder {
    match token_for(url) {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// `GET url` with the node's token, the whole response.
pub fn get_response(url: &str) -> reqwest::blocking::Response {
    authorized(client().get(url), url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A client that sends `token_opt` (Bearer) with every request.
pub fn client_with_token(token_opt: Option<&str>, timeout: Duration) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token_opt {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    }
    reqwest::blocking::Client::builder().timeout(timeout).default_headers(headers).build().unwrap()
}

pub fn get_json(url: &str) -> Option<Value> {
    authorized(client().get(url), url).send().ok()?.json().ok()
}

pub fn get_status(url: &str) -> Option<u16> {
    authorized(client().get(url), url).send().ok().map(|r| r.status().as_u16())
}

pub fn post(url: &str) -> u16 {
    authorized(client().post(url), url).send().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The worker pids listed by a node's `/3/Cloud`.
pub fn cloud_pids(rest: &str) -> Vec<u32> {
    let v = get_json(&format!("http://{rest}/3/Cloud")).expect("cloud json");
    v["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect()
}

/// What a driver's `--notify` file says.
#[derive(Debug, Clone)]
pub struct Notified {
    /// The leader's `ip:port` (first line, as H2O writes it).
    pub leader: String,
    /// The YARN application id, where there is one.
    pub app_opt: Option<String>,
    /// The REST access token (`token=` line), unless authentication is off.
    pub token_opt: Option<String>,
}

/// Reads a `--notify` file (waiting, bounded, for the driver to have written it) and
/// remembers its token for every node of the cloud.
pub fn read_notify(path: &std::path::Path) -> Notified {
    let mut text = String::new();
    wait_until(&format!("the notify file {}", path.display()), Duration::from_secs(20), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    let mut lines = text.lines();
    let leader = lines.next().unwrap_or_else(|| panic!("empty notify file {}", path.display())).trim().to_string();
    let (mut app_opt, mut token_opt) = (None, None);
    for line in lines {
        match line.strip_prefix("token=") {
            Some(token) => token_opt = Some(token.trim().to_string()),
            None if line.starts_with("application_") => app_opt = Some(line.trim().to_string()),
            None => panic!("unexpected line in the notify file: {line:?}"),
        }
    }
    if let Some(token) = &token_opt {
        remember_token(&leader, token);
        if let Some(cloud) = get_json(&format!("http://{leader}/3/Cloud")) {
            for node in cloud["nodes"].as_array().into_iter().flatten() {
                if let Some(addr) = node["ip_port"].as_str() {
                    remember_token(addr, token);
                }
            }
        }
    }
    Notified { leader, app_opt, token_opt }
}

/// `eddy-mapper` without a driver (flatfile or Kubernetes discovery), as `cmd` starts it (the
/// binary itself, or `ip netns exec NS` and the binary), with a fast heartbeat (200 ms, 2 s
/// timeout), 128 MiB and the cluster secret in a file of its own under `dir`; `args` add the
/// discovery. Its REST token is remembered for the `get_*` helpers.
pub fn standalone_mapper(mut cmd: Command, dir: &std::path::Path, secret: &str, args: &[&str]) -> Command {
    // One file per mapper: rewriting a shared file truncates it under a mapper that is
    // reading it at that moment (seen as an "empty secret" in CI).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let secret_file = dir.join(format!("secret-{n}"));
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    // The helpers send this node its cloud's REST token.
    let flag = |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]);
    if let (Some(port), Ok(s)) = (flag("--port"), eddy_common::ClusterSecret::from_text(secret)) {
        let ip = flag("--ip").unwrap_or("127.0.0.1");
        remember_token(&format!("{ip}:{port}"), &s.rest_token(flag("--name").unwrap_or("eddy")));
    }
    cmd.args(["--heartbeat-interval", "200ms", "--heartbeat-timeout", "2s", "--timeout", "20s", "--memory", "128m"])
        .arg("--secret-file")
        .arg(secret_file)
        .args(args);
    cmd
}
