//! The local launcher: workers are `eddy-mapper` processes on this machine, each in its own
//! process group (so Ctrl-C reaches only the driver, which then stops the cloud in order),
//! with its output in `<log dir>/worker-<id>.log`. The cluster secret reaches them in a file
//! only their user can read (`EDDY_SECRET_FILE`), not in their environment, which
//! `/proc/PID/environ` shows; the file goes when the launcher does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::process::Command;

use super::{LiveWorkers, WorkerExit, WorkerLauncher, WorkerSpec};
use crate::{DriverError, DriverResult};

/// Starts workers as local processes.
#[derive(Debug)]
pub struct LocalLauncher {
    mapper: PathBuf,
    log_dir: PathBuf,
    /// Worker id → pid.
    workers: LiveWorkers<u32>,
    /// Private directory (mode 0700) of the secret file; removed on drop.
    secrets: tempfile::TempDir,
    /// The driver's own `EDDY_*` and `H2O_*` variables, which workers must not inherit.
    withheld: Vec<String>,
    /// Processes started per worker id (a lost worker is started again under its id).
    starts: BTreeMap<String, u32>,
}

impl LocalLauncher {
    /// Launches `mapper`, writing logs under `log_dir` (created if missing).
    /// `env` is the driver's environment, which the workers inherit except for its `EDDY_*`
    /// and `H2O_*` settings.
    pub fn new(mapper: PathBuf, log_dir: PathBuf, env: &eddy_common::env::Environment) -> DriverResult<Self> {
        std::fs::create_dir_all(&log_dir)
            .map_err(|source| DriverError::Io { what: format!("cannot create the log directory {}", log_dir.display()), source })?;
        let secrets = tempfile::Builder::new()
            .prefix("eddy-secret-")
            .tempdir()
            .map_err(|source| DriverError::Io { what: "cannot create a private directory for the cluster secret".into(), source })?;
        // Settings a user exported for their own shell must not leak into the workers.
        let withheld = env.iter().map(|(k, _)| k).filter(|k| k.starts_with("EDDY_") || k.starts_with("H2O_")).map(str::to_string).collect();
        Ok(Self { mapper, log_dir, workers: LiveWorkers::new(), secrets, withheld, starts: BTreeMap::new() })
    }

    /// Moves the secret from `env` into a file readable by this user only; its path goes in
    /// its place.
    fn secret_to_file(&self, env: &mut BTreeMap<String, String>) -> DriverResult<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let Some(secret) = env.remove(eddy_common::keys::CLUSTER_SECRET.name) else { return Ok(()) };
        let path = self.secrets.path().join("secret");
        let io = |source| DriverError::Io { what: format!("cannot write the secret file {}", path.display()), source };
        if !path.exists() {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
            file.write_all(secret.as_bytes()).map_err(io)?;
        }
        env.insert(eddy_common::keys::SECRET_FILE.name.to_string(), path.display().to_string());
        Ok(())
    }

    /// `worker-ID.log`; a worker started again in place of a lost one writes `worker-ID.N.log`
    /// (its N-th process), so the lost one's log stays.
    fn log_path(&self, id: &str, start: u32) -> PathBuf {
        match start {
            0 | 1 => self.log_dir.join(format!("worker-{id}.log")),
            n => self.log_dir.join(format!("worker-{id}.{n}.log")),
        }
    }
}

/// The last `n` lines of a file (read from its last 64 KiB only).
pub(crate) fn tail(path: &Path, n: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 << 10))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    Some(lines[start..].join("\n"))
}

fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "ended".to_string(),
    }
}

#[async_trait]
impl WorkerLauncher for LocalLauncher {
    fn name(&self) -> &'static str {
        "local"
    }

    fn replaces_lost_workers(&self) -> bool {
        true
    }

    async fn launch(&mut self, id: &str, spec: &WorkerSpec) -> DriverResult<()> {
        let start = {
            let n = self.starts.entry(id.to_string()).or_default();
            *n += 1;
            *n
        };
        let log_path = self.log_path(id, start);
        let log = std::fs::File::create(&log_path)
            .map_err(|source| DriverError::Io { what: format!("cannot create {}", log_path.display()), source })?;
        let log_err = log.try_clone().map_err(|source| DriverError::Io { what: "cannot duplicate the log handle".into(), source })?;
        let mut cmd = Command::new(&self.mapper);
        for name in &self.withheld {
            cmd.env_remove(name);
        }
        let mut env = spec.env.clone();
        self.secret_to_file(&mut env)?;
        cmd.args(&spec.args).envs(&env).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|source| DriverError::Io {
            what: format!("cannot start {} (set --mapper or EDDY_MAPPER_BIN)", self.mapper.display()),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        tracing::debug!(worker = id, pid, log = %log_path.display(), "worker started");
        let tx = self.workers.started(id, pid);
        let worker_id = id.to_string();
        tokio::spawn(async move {
            let (success, status) = match child.wait().await {
                Ok(s) => (s.success(), describe(s)),
                Err(e) => (false, format!("could not be waited for: {e}")),
            };
            let log_tail_opt = tokio::task::spawn_blocking(move || tail(&log_path, 15)).await.ok().flatten();
            let _ = tx.send(WorkerExit { worker_id, pid_opt: Some(pid), success, status, log_tail_opt });
        });
        Ok(())
    }

    async fn next_exit(&mut self) -> WorkerExit {
        self.workers.next_exit().await
    }

    async fn stop(&mut self, grace: Duration) -> Vec<WorkerExit> {
        let mut exits = self.workers.reported();
        for pid in self.workers.live.values() {
            signal(*pid, Signal::SIGTERM);
        }
        self.workers.wait_for_exits(grace, &mut exits).await;
        for (id, pid) in &self.workers.live {
            tracing::warn!(worker = %id, pid, "worker did not stop in time; killing it");
            signal(*pid, Signal::SIGKILL);
        }
        self.workers.wait_for_exits(Duration::from_secs(5), &mut exits).await;
        exits
    }

    fn log_location(&self) -> String {
        format!("{}/worker-<id>.log", self.log_dir.display())
    }
}

/// Signals a process we started and still track (a pid of 0 would mean our own group).
fn signal(pid: u32, sig: Signal) {
    match i32::try_from(pid) {
        Ok(pid) if pid > 0 => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
        _ => {}
    }
}
