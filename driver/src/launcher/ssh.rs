//! The SSH launcher: workers are `eddy-mapper` processes on plain hosts, started over one
//! SSH connection per host (`crate::ssh` prepared the hosts and copied the binary). Each
//! worker runs in its own session on its host, so it outlives the connection (`--disown`);
//! while the driver is attached, a remote shell per worker waits for it and reports its exit.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{LiveWorkers, WorkerExit, WorkerLauncher, WorkerSpec};
use crate::ssh::{Hosts, Remote};
use crate::{DriverError, DriverResult};

/// Starts workers on hosts over SSH.
pub struct SshLauncher {
    hosts: Hosts,
    workers_per_host: usize,
    cloud_name: String,
    /// Worker id → (host index, pid).
    workers: LiveWorkers<(usize, u32)>,
}

impl SshLauncher {
    /// Worker `i` goes to host `i / workers_per_host`.
    pub fn new(hosts: Hosts, workers_per_host: usize, cloud_name: String) -> Self {
        Self { hosts, workers_per_host: workers_per_host.max(1), cloud_name, workers: LiveWorkers::new() }
    }

    fn host_of(&self, id: &str) -> DriverResult<(usize, &Remote)> {
        let i = id.parse::<usize>().map_err(|_| DriverError::InvalidArgument { reason: format!("worker id {id:?} is not a number") })?;
        let h = i / self.workers_per_host;
        let remote =
            self.hosts.remotes.get(h).ok_or_else(|| DriverError::InvalidArgument { reason: format!("no host for worker {id}") })?;
        Ok((h, remote))
    }
}

#[async_trait]
impl WorkerLauncher for SshLauncher {
    fn name(&self) -> &'static str {
        "ssh"
    }

    /// A lost worker starts again on its host (its log goes on in the same file).
    fn replaces_lost_workers(&self) -> bool {
        true
    }

    async fn launch(&mut self, id: &str, spec: &WorkerSpec) -> DriverResult<()> {
        let (h, remote) = self.host_of(id)?;
        let mut env = spec.env.clone();
        // The secret goes on the channel's standard input into a 0600 file, not into settings.
        let secret = env.remove(eddy_common::keys::CLUSTER_SECRET.name).unwrap_or_default();
        env.remove(eddy_common::keys::SECRET_FILE.name);
        let lines = crate::ssh::remote::export_lines(&env);
        let host = remote.host.text.clone();
        let (pid, launched) =
            remote.launch(&self.cloud_name, id, &secret, &lines).await.map_err(|e| DriverError::Ssh { reason: format!("{host}: {e}") })?;
        tracing::debug!(worker = id, pid, %host, "worker started");
        let tx = self.workers.started(id, (h, pid));
        let worker_id = id.to_string();
        tokio::spawn(async move {
            let (success, status, log_tail_opt) = launched.ended().await;
            let status = format!("on {host} {status}");
            let _ = tx.send(WorkerExit { worker_id, pid_opt: Some(pid), success, status, log_tail_opt });
        });
        Ok(())
    }

    async fn next_exit(&mut self) -> WorkerExit {
        self.workers.next_exit().await
    }

    async fn stop(&mut self, grace: Duration) -> Vec<WorkerExit> {
        let mut exits = self.workers.reported();
        let mut by_host: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (h, pid) in self.workers.live.values() {
            by_host.entry(*h).or_default().push(*pid);
        }
        let stops = by_host.iter().map(|(h, pids)| {
            let remote = &self.hosts.remotes[*h];
            async move { (remote.host.text.clone(), remote.stop(grace, pids).await) }
        });
        for (host, result) in futures::future::join_all(stops).await {
            match result {
                Ok(killed) if !killed.is_empty() => tracing::warn!(%host, ?killed, "workers did not stop in time; killed them"),
                Ok(_) => {}
                Err(e) => eprintln!("{host}: cannot stop its workers: {e}"),
            }
        }
        // Their remote shells report the exits.
        self.workers.wait_for_exits(Duration::from_secs(10), &mut exits).await;
        exits
    }

    fn log_location(&self) -> String {
        let dirs: std::collections::BTreeSet<&str> = self.hosts.remotes.iter().map(|r| r.dir.as_str()).collect();
        let dirs: Vec<&str> = dirs.into_iter().collect();
        format!("{}/logs/worker-<id>.log on each host", dirs.join(" or "))
    }

    async fn formed(&mut self, rest_url: &str) {
        let cloud = self.cloud_name.as_str();
        let records = self.hosts.remotes.iter().map(|r| async move { (r.host.text.clone(), r.record(cloud, rest_url).await) });
        for (host, result) in futures::future::join_all(records).await {
            if let Err(e) = result {
                eprintln!("{host}: cannot record the cloud for `eddy-driver ssh status` ({e})");
            }
        }
    }
}
