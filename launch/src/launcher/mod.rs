//! Launchers start worker processes somewhere (this machine, hosts over SSH, YARN
//! containers, Spark executors) and report when they end. The driver's protocol logic is the
//! same for all. This crate holds the trait and YARN's containers (the ApplicationMaster in
//! `eddy-mapper am` uses them); `eddy-driver` holds the local, SSH and external launchers.

mod allocation;
mod yarn_containers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub(crate) use yarn_containers::ALLOCATOR_ENV;
pub use yarn_containers::{ContainerPlan, Timeline, YarnLauncher};

use crate::DriverResult;

/// What every worker is started with.
#[derive(Debug, Clone, Default)]
pub struct WorkerSpec {
    /// Environment for the worker (settings and the secret; never on the command line).
    pub env: BTreeMap<String, String>,
    /// Command-line arguments of `eddy-mapper`.
    pub args: Vec<String>,
}

/// A worker process that ended.
#[derive(Debug, Clone)]
pub struct WorkerExit {
    /// The launcher-given id.
    pub worker_id: String,
    /// Its process id, if known.
    pub pid_opt: Option<u32>,
    /// Whether it exited with success.
    pub success: bool,
    /// How it ended, for people ("exited with code 1", "killed by signal 9").
    pub status: String,
    /// The end of its log, if the launcher has it.
    pub log_tail_opt: Option<String>,
}

/// The workers a launcher started (with what it needs to stop each, `T`) and the exits that
/// their watchers report; shared by the launchers that see their workers end.
#[derive(Debug)]
pub struct LiveWorkers<T> {
    /// Worker id → how to reach its process.
    pub live: BTreeMap<String, T>,
    tx: tokio::sync::mpsc::UnboundedSender<WorkerExit>,
    rx: tokio::sync::mpsc::UnboundedReceiver<WorkerExit>,
}

impl<T> Default for LiveWorkers<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LiveWorkers<T> {
    /// None yet.
    pub fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self { live: BTreeMap::new(), tx, rx }
    }

    /// Tracks worker `id`; its watcher reports the exit through the returned sender.
    pub fn started(&mut self, id: &str, how: T) -> tokio::sync::mpsc::UnboundedSender<WorkerExit> {
        self.live.insert(id.to_string(), how);
        self.tx.clone()
    }

    /// The next exit (the worker is forgotten); pending while none comes.
    pub async fn next_exit(&mut self) -> WorkerExit {
        match self.rx.recv().await {
            Some(exit) => {
                self.live.remove(&exit.worker_id);
                exit
            }
            // The sender lives in self, so this cannot end; stay pending to be safe.
            None => std::future::pending().await,
        }
    }

    /// Exits already reported (those workers forgotten, so no signal reaches a reused pid).
    pub fn reported(&mut self) -> Vec<WorkerExit> {
        let mut exits = Vec::new();
        while let Ok(exit) = self.rx.try_recv() {
            self.live.remove(&exit.worker_id);
            exits.push(exit);
        }
        exits
    }

    /// Waits for exits until every worker ended or `within` passed.
    pub async fn wait_for_exits(&mut self, within: Duration, exits: &mut Vec<WorkerExit>) {
        let deadline = Instant::now() + within;
        while !self.live.is_empty() && Instant::now() < deadline {
            if let Ok(exit) = tokio::time::timeout(deadline - Instant::now(), self.next_exit()).await {
                exits.push(exit);
            }
        }
    }
}

/// Starts and stops workers.
#[async_trait]
pub trait WorkerLauncher: Send {
    /// A short name ("local", "yarn").
    fn name(&self) -> &'static str;

    /// Starts worker `id`.
    async fn launch(&mut self, id: &str, spec: &WorkerSpec) -> DriverResult<()>;

    /// Whether a lost worker can be started again with [`WorkerLauncher::launch`] under its
    /// id (a new process, which joins the cloud in the lost one's place).
    fn replaces_lost_workers(&self) -> bool {
        false
    }

    /// Whether [`WorkerLauncher::next_exit`] ever reports anything (not for workers started
    /// by someone else).
    fn sees_exits(&self) -> bool {
        true
    }

    /// Resolves when a launched worker ends; pending while none has.
    async fn next_exit(&mut self) -> WorkerExit;

    /// Stops every remaining worker: a polite signal, then force after `grace`.
    async fn stop(&mut self, grace: Duration) -> Vec<WorkerExit>;

    /// Where a person finds the workers' logs.
    fn log_location(&self) -> String;

    /// The cloud formed; `rest_url` is the leader's REST API (YARN shows it as the tracking URL,
    /// the SSH launcher records it on the hosts for `ssh status|restart`).
    async fn formed(&mut self, _rest_url: &str) {}

    /// What the cluster manager says when the cloud does not form (state, free resources).
    async fn diagnose(&mut self) -> Option<String> {
        None
    }
}
