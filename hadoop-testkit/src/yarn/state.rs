//! The test cluster's state, shared by the ResourceManager and NodeManagers: applications,
//! nodes, containers, and the master key every token is signed with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::proto::yarn::*;
use hmac::{Hmac, Mac};
use prost::Message;

pub(crate) type Shared = Arc<Mutex<YarnState>>;

pub(crate) const AMRM_TOKEN_KIND: &str = "YARN_AM_RM_TOKEN";
pub(crate) const NM_TOKEN_KIND: &str = "NMToken";
pub(crate) const CONTAINER_TOKEN_KIND: &str = "ContainerToken";

pub(crate) use eddy_hadoop_ipc::yarn_ids::exit_status;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Debug, Clone)]
pub(crate) struct App {
    pub context: ApplicationSubmissionContextProto,
    pub user: String,
    pub state: YarnApplicationStateProto,
    pub final_status: FinalApplicationStatusProto,
    pub diagnostics: String,
    pub submitted: i64,
    pub finished: i64,
    pub registered: bool,
    pub host: String,
    pub rpc_port: i32,
    pub tracking_url: String,
    /// Containers asked for and not allocated yet, and their size.
    pub outstanding: i32,
    pub capability: ResourceProto,
    pub priority: PriorityProto,
    pub response_id: i32,
    pub new_allocations: Vec<ContainerProto>,
    pub completed: Vec<ContainerStatusProto>,
    /// Nodes whose NMToken this attempt already received.
    pub nm_tokens_sent: BTreeSet<usize>,
    pub am_container: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: NodeIdProto,
    /// Where this NodeManager keeps containers and logs.
    pub dir: std::path::PathBuf,
    pub used_mb: i64,
    pub used_vcores: i32,
}

#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub app: i32,
    pub node: usize,
    pub proto: ContainerProto,
    pub is_am: bool,
    pub started: bool,
    pub pid: Option<u32>,
    /// Why the container is being killed, once someone asked: exit status and diagnostics.
    pub kill_reason: Option<(i32, String)>,
    /// Exit status and diagnostics once complete.
    pub status: Option<(i32, String)>,
}

/// A container as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// `container_<cluster timestamp>_<app>_<attempt>_<n>`.
    pub id: String,
    /// The NodeManager's index.
    pub node: usize,
    /// Whether this is the ApplicationMaster's container.
    pub is_am: bool,
    /// The process id once launched.
    pub pid: Option<u32>,
    /// Exit status once complete.
    pub exit_status: Option<i32>,
}

impl Container {
    pub fn info(&self) -> ContainerInfo {
        ContainerInfo {
            id: container_id_text(self.proto.id.as_ref()),
            node: self.node,
            is_am: self.is_am,
            pid: self.pid,
            exit_status: self.status.as_ref().map(|s| s.0),
        }
    }
}

#[derive(Debug)]
pub(crate) struct YarnState {
    pub cluster_timestamp: i64,
    key: [u8; 32],
    pub next_app: i32,
    pub reserved: Vec<i32>,
    pub apps: BTreeMap<i32, App>,
    pub nodes: Vec<Node>,
    pub node_memory_mb: i64,
    pub node_vcores: i32,
    pub containers: BTreeMap<String, Container>,
    next_container: i64,
    pub scheduler_address: String,
    /// `yarn.nodemanager.vmem-pmem-ratio` when the virtual memory check is on.
    pub vmem_pmem_ratio: Option<f64>,
}

pub(crate) fn attempt_id(cluster_timestamp: i64, app: i32) -> ApplicationAttemptIdProto {
    ApplicationAttemptIdProto {
        application_id: Some(ApplicationIdProto { id: Some(app), cluster_timestamp: Some(cluster_timestamp) }),
        attempt_id: Some(1),
    }
}

pub(crate) use eddy_hadoop_ipc::yarn_ids::{attempt_id_text as attempt_text, container_id_text};

impl YarnState {
    pub fn new(node_memory_mb: i64, node_vcores: i32) -> Self {
        let mut key = [0u8; 32];
        let _ = getrandom::fill(&mut key);
        Self {
            cluster_timestamp: now_ms(),
            key,
            next_app: 0,
            reserved: Vec::new(),
            apps: BTreeMap::new(),
            nodes: Vec::new(),
            node_memory_mb,
            node_vcores,
            containers: BTreeMap::new(),
            next_container: 0,
            scheduler_address: String::new(),
            vmem_pmem_ratio: None,
        }
    }

    /// `SecretManager.createPassword`: HMAC-SHA1 of the identifier under the master key.
    pub fn password(&self, identifier: &[u8]) -> Vec<u8> {
        let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(identifier);
        mac.finalize().into_bytes().to_vec()
    }

    fn token(&self, identifier: Vec<u8>, kind: &str, service: String) -> TokenProto {
        TokenProto { password: self.password(&identifier), identifier, kind: kind.into(), service }
    }

    pub fn amrm_token(&self, app: i32) -> TokenProto {
        let id = AmrmTokenIdentifierProto { app_attempt_id: Some(attempt_id(self.cluster_timestamp, app)), key_id: Some(1) };
        // The report carries no service; the ApplicationMaster sets the scheduler address.
        self.token(id.encode_to_vec(), AMRM_TOKEN_KIND, String::new())
    }

    pub fn node_address(&self, node: usize) -> String {
        let id = &self.nodes[node].id;
        format!("{}:{}", id.host.as_deref().unwrap_or(""), id.port.unwrap_or(0))
    }

    pub fn nm_token(&self, app: i32, node: usize, user: &str) -> NmTokenProto {
        let node_id = self.nodes[node].id.clone();
        let id = NmTokenIdentifierProto {
            app_attempt_id: Some(attempt_id(self.cluster_timestamp, app)),
            node_id: Some(node_id.clone()),
            app_submitter: Some(user.to_string()),
            key_id: Some(1),
        };
        NmTokenProto { node_id: Some(node_id), token: Some(self.token(id.encode_to_vec(), NM_TOKEN_KIND, self.node_address(node))) }
    }

    pub fn free(&self, node: usize) -> (i64, i32) {
        let n = &self.nodes[node];
        (self.node_memory_mb - n.used_mb, self.node_vcores - n.used_vcores)
    }

    pub fn free_total(&self) -> ResourceProto {
        let (mb, vc) = (0..self.nodes.len()).map(|i| self.free(i)).fold((0, 0), |a, f| (a.0 + f.0, a.1 + f.1));
        ResourceProto { memory: Some(mb), virtual_cores: Some(vc) }
    }

    /// Allocates one container of `resource` for `app` on the node with the most free memory
    /// (containers spread over the cluster as node heartbeats spread them on a real one).
    pub fn allocate_one(&mut self, app: i32, resource: ResourceProto, priority: PriorityProto, is_am: bool) -> Option<ContainerProto> {
        let (mb, vc) = (resource.memory.unwrap_or(1024), resource.virtual_cores.unwrap_or(1));
        let node = (0..self.nodes.len())
            .filter(|&i| {
                let (free_mb, free_vc) = self.free(i);
                free_mb >= mb && free_vc >= vc
            })
            .max_by_key(|&i| (self.free(i).0, std::cmp::Reverse(i)))?;
        self.nodes[node].used_mb += mb;
        self.nodes[node].used_vcores += vc;
        self.next_container += 1;
        let user = self.apps.get(&app).map(|a| a.user.clone()).unwrap_or_default();
        let container_id = ContainerIdProto {
            app_id: attempt_id(self.cluster_timestamp, app).application_id,
            app_attempt_id: Some(attempt_id(self.cluster_timestamp, app)),
            id: Some(self.next_container),
        };
        let token_id = ContainerTokenIdentifierProto {
            container_id: Some(container_id),
            nm_host_addr: Some(self.node_address(node)),
            app_submitter: Some(user),
            resource: Some(resource),
            expiry_time_stamp: Some(now_ms() + 600_000),
            master_key_id: Some(1),
            rm_identifier: Some(self.cluster_timestamp),
            priority: Some(priority),
            creation_time: Some(now_ms()),
        };
        let proto = ContainerProto {
            id: Some(container_id),
            node_id: Some(self.nodes[node].id.clone()),
            node_http_address: Some(format!("{}:0", self.nodes[node].id.host.as_deref().unwrap_or(""))),
            resource: Some(resource),
            priority: Some(priority),
            container_token: Some(self.token(token_id.encode_to_vec(), CONTAINER_TOKEN_KIND, self.node_address(node))),
            ..Default::default()
        };
        let text = container_id_text(Some(&container_id));
        self.containers
            .insert(text, Container { app, node, proto: proto.clone(), is_am, started: false, pid: None, kill_reason: None, status: None });
        Some(proto)
    }

    /// Hands outstanding asks of running applications to nodes with room.
    pub fn schedule(&mut self) {
        let waiting: Vec<i32> = self.apps.iter().filter(|(_, a)| a.registered && a.outstanding > 0).map(|(id, _)| *id).collect();
        for id in waiting {
            while self.apps[&id].outstanding > 0 {
                let (capability, priority) = (self.apps[&id].capability, self.apps[&id].priority);
                let Some(c) = self.allocate_one(id, capability, priority, false) else { break };
                if let Some(app) = self.apps.get_mut(&id) {
                    app.outstanding -= 1;
                    app.new_allocations.push(c);
                }
            }
        }
    }

    /// A container ended: its resources go back to the node, its status to the master.
    pub fn complete(&mut self, container: &str, exit: i32, diagnostics: String) {
        let Some(c) = self.containers.get_mut(container) else { return };
        if c.status.is_some() {
            return;
        }
        c.status = Some((exit, diagnostics.clone()));
        let (app, node, is_am, resource, id) = (c.app, c.node, c.is_am, c.proto.resource.unwrap_or_default(), c.proto.id);
        self.nodes[node].used_mb -= resource.memory.unwrap_or(0);
        self.nodes[node].used_vcores -= resource.virtual_cores.unwrap_or(0);
        let Some(a) = self.apps.get_mut(&app) else { return };
        if is_am {
            if !is_final(a.state) {
                // The master died before unregistering: the attempt (and, with one attempt,
                // the application) failed.
                a.state = YarnApplicationStateProto::Failed;
                a.final_status = FinalApplicationStatusProto::AppFailed;
                a.finished = now_ms();
                a.diagnostics = format!(
                    "AM Container for {} exited with exitCode: {exit}\n{diagnostics}\nFailing this attempt. Failing the application.",
                    attempt_text(&attempt_id(self.cluster_timestamp, app))
                );
                self.stop_app_containers(app, exit_status::KILLED_AFTER_APP_COMPLETION, "Container killed on application failure");
            }
            return;
        }
        a.completed.push(ContainerStatusProto {
            container_id: id,
            state: Some(ContainerStateProto::CComplete as i32),
            diagnostics: Some(diagnostics),
            exit_status: Some(exit),
            capability: Some(resource),
            ..Default::default()
        });
    }

    /// Kills every live container of `app` (its application ended).
    pub fn stop_app_containers(&mut self, app: i32, exit: i32, why: &str) {
        let ids: Vec<String> =
            self.containers.iter().filter(|(_, c)| c.app == app && c.status.is_none()).map(|(id, _)| id.clone()).collect();
        for id in ids {
            self.kill_locked(&id, exit, why);
        }
    }

    /// Marks a container killed and signals its process (if any); completes it at once when
    /// it never started.
    pub fn kill_locked(&mut self, id: &str, exit: i32, diagnostics: &str) -> bool {
        let Some(c) = self.containers.get_mut(id) else { return false };
        if c.status.is_some() {
            return false;
        }
        c.kill_reason.get_or_insert((exit, diagnostics.to_string()));
        match c.pid {
            Some(pid) => {
                signal_group(pid, nix::sys::signal::Signal::SIGTERM);
                // YARN's grace before SIGKILL (yarn.nodemanager.sleep-delay-before-sigkill.ms).
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(250));
                    signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                });
            }
            None if !c.started => self.complete(id, exit, diagnostics.to_string()),
            // Starting (localizing): the launcher sees the kill reason before it spawns.
            None => {}
        }
        true
    }
}

pub(crate) fn is_final(s: YarnApplicationStateProto) -> bool {
    matches!(s, YarnApplicationStateProto::Finished | YarnApplicationStateProto::Failed | YarnApplicationStateProto::Killed)
}

/// Containers run in their own process group, as YARN's launcher puts them.
pub(crate) fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

pub(crate) fn kill(shared: &Shared, id: &str, exit: i32, diagnostics: &str) -> bool {
    shared.lock().map(|mut s| s.kill_locked(id, exit, diagnostics)).unwrap_or(false)
}

pub(crate) fn kill_all_processes(shared: &Shared) {
    if let Ok(s) = shared.lock() {
        for c in s.containers.values() {
            if let (Some(pid), None) = (c.pid, &c.status) {
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}
