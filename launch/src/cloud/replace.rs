//! New workers in place of lost ones, for launchers that can start them (local, SSH, YARN) or
//! whose starter does (the Spark integration, told through the status file): once a worker's
//! process ended and the cloud removed its address, the same worker id is started again; the
//! gather service answers the new process with the peer list of the moment, and the locked
//! cloud admits it as a new member (never the old one), up to the size it formed with. At most
//! `--worker-restarts` times over the cloud's life.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use eddy_common::{ClusterSecret, NodeAddr};
use eddy_embedded_config::gather::Gather;

use super::CloudOptions;
use crate::launcher::WorkerLauncher;

pub(super) struct Replacer {
    gather_addr: SocketAddr,
    secret: ClusterSecret,
    /// Restarts still allowed.
    left: u32,
    /// Workers whose process ended, with the address they had (if they registered).
    ended: BTreeMap<String, Option<NodeAddr>>,
    /// Addresses the cloud removed.
    removed: BTreeSet<NodeAddr>,
}

impl Replacer {
    pub(super) fn new(gather_addr: SocketAddr, secret: &ClusterSecret, options: &CloudOptions) -> Self {
        Self { gather_addr, secret: secret.clone(), left: options.worker_restarts, ended: BTreeMap::new(), removed: BTreeSet::new() }
    }

    /// Worker `id` (at `node_opt`) ended.
    pub(super) fn worker_ended(&mut self, id: &str, node_opt: Option<NodeAddr>) {
        self.ended.insert(id.to_string(), node_opt);
    }

    /// The cloud removed the member at `node`.
    pub(super) fn member_removed(&mut self, node: NodeAddr) {
        self.removed.insert(node);
    }

    /// Starts the workers that ended and that the cloud removed, while restarts are left;
    /// returns the ids started again.
    pub(super) async fn start_due(&mut self, launcher: &mut dyn WorkerLauncher, options: &CloudOptions, gather: &Gather) -> Vec<String> {
        if !launcher.replaces_lost_workers() {
            return Vec::new();
        }
        // A worker that never registered is not in the cloud: nothing to wait for.
        let due: Vec<(String, Option<NodeAddr>)> =
            self.ended.iter().filter(|(_, node)| node.is_none_or(|n| self.removed.contains(&n))).map(|(id, n)| (id.clone(), *n)).collect();
        let mut started = Vec::new();
        for (id, node) in due {
            self.ended.remove(&id);
            let was = node.map_or_else(|| "a worker that never registered".to_string(), |n| n.to_string());
            if self.left == 0 {
                println!("No restarts left (--worker-restarts {}): worker {id} ({was}) is not started again", options.worker_restarts);
                continue;
            }
            self.left -= 1;
            gather.expect_replacement(&id);
            match launcher.launch(&id, &options.worker_spec(self.gather_addr, &self.secret, &id)).await {
                Ok(()) if launcher.sees_exits() => {
                    println!("Started worker {id} again in place of {was} ({} restarts left)", self.left);
                    started.push(id);
                }
                Ok(()) => {
                    println!("Waiting for worker {id} to be started again in place of {was} by its launcher ({} restarts left)", self.left);
                    started.push(id);
                }
                Err(e) => println!("Could not start worker {id} again: {e}"),
            }
        }
        started
    }
}
