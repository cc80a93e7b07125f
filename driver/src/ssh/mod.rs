//! `eddy-driver ssh`: a cloud on plain hosts. Connects to every host of the hosts file in
//! parallel, prepares the install directory, copies `eddy-mapper` where its hash differs,
//! then runs the same protocol as every launcher ([`crate::cloud::drive`]) with the
//! [`crate::launcher::SshLauncher`]. `status`, `stop` and `restart` work from the state the
//! install directory keeps (`run/workers`: cloud, worker id, pid; `run/cloud`: cloud, REST URL).

pub mod hosts;
pub mod remote;

use std::time::Duration;

use eddy_common::ClusterSecret;
use sha2::Digest;

use crate::cli::{SshAction, SshArgs, SshHostArgs, SshStartArgs};
use crate::cloud::{self, CloudOptions, Outcome};
use crate::launcher::SshLauncher;
use crate::{DriverError, DriverResult};
pub use remote::Remote;

/// Open connections to hosts. Dropping it ends every master connection before the directory
/// of their control sockets goes (a master left behind would keep its connection forever).
pub struct Hosts {
    /// The connected ones, in the order of the hosts file.
    pub remotes: Vec<Remote>,
    /// Every host of the file, as written (for reports in the file's order).
    pub listed: Vec<String>,
    control_dir: Option<tempfile::TempDir>,
}

impl Hosts {
    /// Sorts a report as the hosts file lists the hosts.
    fn in_file_order(&self, report: &mut Report) {
        report.sort_by_key(|(h, _)| self.listed.iter().position(|l| l == h));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for r in &self.remotes {
            r.close_master();
        }
        if let Some(dir) = self.control_dir.take() {
            let _ = dir.close();
        }
    }
}

/// Runs `eddy-driver ssh ...`.
pub async fn run(args: SshArgs, env: &eddy_common::env::Environment) -> DriverResult<Outcome> {
    match args.action {
        None => start(args.start, None, env).await,
        Some(SshAction::Status(hosts)) => status(&hosts).await,
        Some(SshAction::Stop { hosts, grace }) => stop(&hosts, grace).await,
        Some(SshAction::Restart(start_args)) => restart(*start_args, env).await,
    }
}

/// "1 host", "3 hosts".
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Per host: what happened, for the summary every command ends with.
type Report = Vec<(String, Result<String, String>)>;

/// Prints one line per host; an error naming the failed hosts if any failed.
fn summarize(what: &str, report: &Report) -> DriverResult<()> {
    for (host, r) in report {
        match r {
            Ok(text) => println!("  {host}: {text}"),
            Err(reason) => println!("  {host}: FAILED: {reason}"),
        }
    }
    let failed: Vec<&str> = report.iter().filter(|(_, r)| r.is_err()).map(|(h, _)| h.as_str()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(DriverError::Ssh {
        reason: format!("{what}: {} of {} hosts failed ({}); the reasons are above", failed.len(), report.len(), failed.join(", ")),
    })
}

/// Connects to every host in parallel; the open connections and a report of the others.
async fn connect_all(args: &SshHostArgs) -> DriverResult<(Hosts, Report)> {
    let path = args.hosts.as_deref().ok_or_else(|| DriverError::InvalidArgument { reason: "--hosts FILE is required".into() })?;
    let list = hosts::read_hosts(path)?;
    remote::known_hosts(&args.host_key_check).map_err(|reason| DriverError::InvalidArgument { reason })?;
    let control_dir = remote::control_dir()
        .map_err(|source| DriverError::Io { what: "cannot create a directory for SSH control sockets".into(), source })?;
    println!("Connecting to {} over SSH", plural(list.len(), "host"));
    let connects = list.iter().map(|h| Remote::connect(h.clone(), args, control_dir.path()));
    let results = futures::future::join_all(connects).await;
    let mut remotes = Vec::new();
    let mut report = Report::new();
    for (host, result) in list.iter().zip(results) {
        match result {
            Ok(r) => remotes.push(r),
            Err(e) => report.push((host.text.clone(), Err(e))),
        }
    }
    let listed = list.into_iter().map(|h| h.text).collect();
    Ok((Hosts { remotes, listed, control_dir: Some(control_dir) }, report))
}

/// Starts a cloud (`reuse`: the name and secret of the cloud `restart` stopped).
async fn start(args: SshStartArgs, reuse: Option<(String, ClusterSecret)>, env: &eddy_common::env::Environment) -> DriverResult<Outcome> {
    let mapper = crate::find_mapper(args.mapper.clone(), env)?;
    let hash = {
        let path = mapper.clone();
        tokio::task::spawn_blocking(move || std::fs::read(&path).map(|b| hex::encode(sha2::Sha256::digest(&b))))
            .await
            .map_err(|e| DriverError::InvalidArgument { reason: format!("hashing eddy-mapper failed: {e}") })?
            .map_err(|source| DriverError::Io { what: format!("cannot read {}", mapper.display()), source })?
    };
    let wph = usize::from(args.workers_per_host);
    let (mut hosts, mut report) = connect_all(&args.hosts).await?;
    let total = hosts.remotes.len() + report.len();
    if let Some(n) = args.cloud.nodes {
        if usize::from(n) != total * wph {
            return Err(DriverError::InvalidArgument {
                reason: format!(
                    "--nodes {n}, but {total} hosts x --workers-per-host {wph} make {} workers; leave --nodes out",
                    total * wph
                ),
            });
        }
    }
    // Prepare (and copy where needed) on every connected host at once.
    let binary = mapper.as_path();
    let hosts_file = args.hosts.hosts.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    let prepares = hosts.remotes.iter_mut().map(|r| {
        let hash = hash.as_str();
        let hosts_file = hosts_file.as_str();
        async move {
            let p = r.prepare().await?;
            if !p.running.is_empty() {
                let (cloud, _, _) = &p.running[0];
                let pids: Vec<String> = p.running.iter().map(|(_, _, pid)| pid.to_string()).collect();
                return Err(format!(
                    "workers of cloud {cloud} still run here (pids {}): `eddy-driver ssh stop --hosts {hosts_file}` first, or choose another --install-dir",
                    pids.join(", ")
                ));
            }
            let copied = if p.hash_opt.as_deref() == Some(hash) {
                "eddy-mapper is up to date".to_string()
            } else {
                r.upload(binary, hash).await?;
                "copied eddy-mapper".to_string()
            };
            Ok((p.client_ip_opt, format!("{copied} in {}", p.dir)))
        }
    });
    let prepared = futures::future::join_all(prepares).await;
    let mut client_ip_opt = None;
    let mut ready = Vec::new();
    for (r, result) in hosts.remotes.iter().zip(prepared) {
        match result {
            Ok((ip, text)) => {
                client_ip_opt = client_ip_opt.or(ip);
                ready.push((r.host.text.clone(), Ok(text)));
            }
            Err(e) => ready.push((r.host.text.clone(), Err(e))),
        }
    }
    report.extend(ready);
    hosts.in_file_order(&mut report);
    println!("Hosts:");
    summarize("the cloud cannot start", &report)?;

    let cloud_name = match &reuse {
        Some((name, _)) => name.clone(),
        None => args.cloud.name.clone().unwrap_or_else(|| crate::default_cloud_name(env)),
    };
    let mut options = CloudOptions::from_args(&args.cloud, cloud_name.clone(), env)?;
    options.nodes = hosts.remotes.len() * wph;
    if let Some((_, secret)) = reuse {
        options.secret_opt = Some(secret);
    }
    if args.cloud.driver_ip.is_none() {
        options.driver_ip = client_ip_opt.ok_or_else(|| DriverError::InvalidArgument {
            reason: "cannot tell which address the hosts reach this machine at (no SSH_CONNECTION on the first host): pass --driver-ip"
                .into(),
        })?;
    }
    let mut launcher = SshLauncher::new(hosts, wph, cloud_name);
    cloud::drive(&mut launcher, options).await
}

/// `ssh status`.
async fn status(args: &SshHostArgs) -> DriverResult<Outcome> {
    let (hosts, mut report) = connect_all(args).await?;
    let states = futures::future::join_all(hosts.remotes.iter().map(Remote::status)).await;
    for (r, state) in hosts.remotes.iter().zip(states) {
        let line = state.map(|s| {
            let mut parts = Vec::new();
            if let Some((cloud, url)) = &s.cloud_opt {
                parts.push(format!("last cloud {cloud} ({url})"));
            }
            if s.workers.is_empty() {
                parts.push("no workers".into());
            }
            for w in &s.workers {
                parts.push(format!("worker {} of {} pid {} {}", w.id, w.cloud, w.pid, if w.running { "running" } else { "gone" }));
            }
            parts.join("; ")
        });
        report.push((r.host.text.clone(), line));
    }
    hosts.in_file_order(&mut report);
    println!("Hosts:");
    summarize("status", &report)?;
    Ok(Outcome::Stopped)
}

/// `ssh stop`.
async fn stop(args: &SshHostArgs, grace: Duration) -> DriverResult<Outcome> {
    let (hosts, mut report) = connect_all(args).await?;
    report.extend(stop_all(&hosts, grace).await);
    hosts.in_file_order(&mut report);
    println!("Hosts:");
    summarize("stop", &report)?;
    Ok(Outcome::Stopped)
}

async fn stop_all(hosts: &Hosts, grace: Duration) -> Report {
    let stops = hosts.remotes.iter().map(|r| async move {
        let before = r.status().await?;
        let running: Vec<u32> = before.workers.iter().filter(|w| w.running).map(|w| w.pid).collect();
        let killed = r.stop(grace, &[]).await?;
        Ok(match (running.len(), killed.len()) {
            (0, _) => "no workers running".to_string(),
            (n, 0) => format!("stopped {}", plural(n, "worker")),
            (n, k) => format!("stopped {} ({k} needed SIGKILL after {grace:?})", plural(n, "worker")),
        })
    });
    let results = futures::future::join_all(stops).await;
    hosts.remotes.iter().map(|r| r.host.text.clone()).zip(results).collect()
}

/// `ssh restart`: refuses while a job runs; stops; starts the same cloud (name, secret) again.
async fn restart(args: SshStartArgs, env: &eddy_common::env::Environment) -> DriverResult<Outcome> {
    let (hosts, report) = connect_all(&args.hosts).await?;
    summarize("restart", &report)?;
    let states = futures::future::join_all(hosts.remotes.iter().map(Remote::status)).await;
    let mut names = std::collections::BTreeSet::new();
    let mut url_opt = None;
    let mut failed = Report::new();
    for (r, s) in hosts.remotes.iter().zip(states) {
        match s {
            Ok(s) => {
                names.extend(s.workers.iter().map(|w| w.cloud.clone()));
                if let Some((name, url)) = s.cloud_opt {
                    names.insert(name);
                    url_opt = url_opt.or(Some(url));
                }
            }
            Err(e) => failed.push((r.host.text.clone(), Err(e))),
        }
    }
    summarize("restart", &failed)?;
    let name =
        match names.len() {
            1 => names.into_iter().next().unwrap_or_default(),
            0 => return Err(DriverError::Ssh {
                reason:
                    "restart: no cloud was started in the install directory of these hosts; start one with `eddy-driver ssh --hosts FILE`"
                        .into(),
            }),
            _ => {
                return Err(DriverError::Ssh {
                    reason: format!(
                        "restart: the hosts ran different clouds ({}); stop them with `eddy-driver ssh stop` and start one",
                        names.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        };
    let mut secret_opt = None;
    for r in &hosts.remotes {
        if let Ok(s) = r.secret().await {
            if let Ok(secret) = ClusterSecret::from_text(&s) {
                secret_opt = Some(secret);
                break;
            }
        }
    }
    let secret =
        secret_opt.ok_or_else(|| DriverError::Ssh { reason: format!("restart: no host keeps the secret of cloud {name} (run/secret)") })?;
    if let Some(url) = &url_opt {
        if let Some(busy) = running_job(url, &secret.rest_token(&name)).await {
            return Err(DriverError::Ssh { reason: format!("restart refused: {busy}; wait for it, or `eddy-driver ssh stop` to end it") });
        }
    }
    println!("Stopping cloud {name}");
    summarize("restart", &stop_all(&hosts, Duration::from_secs(10)).await)?;
    drop(hosts);
    println!("Starting cloud {name} again");
    start(args, Some((name, secret)), env).await
}

/// A job that runs on any node of the cloud at `url`, described; `None` if none does or the
/// cloud does not answer (then nothing can be running on it).
async fn running_job(url: &str, token: &str) -> Option<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
    let get = |u: String| {
        let client = client.clone();
        async move { client.get(u).bearer_auth(token).send().await.ok()?.json::<serde_json::Value>().await.ok() }
    };
    let cloud = get(format!("{url}/3/Cloud")).await?;
    let scheme = if url.starts_with("https://") { "https" } else { "http" };
    let nodes: Vec<String> = cloud["nodes"].as_array()?.iter().filter_map(|n| n["ip_port"].as_str().map(str::to_string)).collect();
    for node in nodes {
        let Some(jobs) = get(format!("{scheme}://{node}/3/Jobs")).await else { continue };
        for job in jobs["jobs"].as_array().into_iter().flatten() {
            if job["status"] == "RUNNING" {
                return Some(format!(
                    "job {} ({}) is running on {node}",
                    job["key"].as_str().unwrap_or("?"),
                    job["description"].as_str().unwrap_or("")
                ));
            }
        }
    }
    None
}
