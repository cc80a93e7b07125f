//! What the YARN ApplicationMaster keeps between heartbeats, without a network: the workers
//! waiting for a container, the containers that run workers, what to ask for and to release
//! on the next `allocate`, and what YARN's answers mean for the workers. The heartbeat task
//! in `yarn_containers.rs` does the I/O (allocate calls, NodeManager starts, the timer) and
//! feeds the results in, as `membership/state.rs` does for the cloud's membership.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn_client::am::{container_id_text, exit_status_text, node_address, Allocation};

use super::{WorkerExit, WorkerSpec};

/// Heartbeat failures in a row after which the ResourceManager counts as gone.
pub(crate) const MAX_HEARTBEAT_FAILURES: u32 = 30;

/// What the heartbeat task has seen, for diagnostics.
#[derive(Debug, Default, Clone)]
pub(crate) struct Progress {
    pub all_allocated: Option<Instant>,
    pub all_started: Option<Instant>,
    pub asked: usize,
    pub allocated: usize,
    pub started: usize,
    pub headroom: ResourceProto,
    pub cluster_nodes: i32,
    pub start_failures: Vec<String>,
}

/// A container that runs (or is being started as) a worker.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub worker_id: String,
    pub container: ContainerProto,
}

/// One `allocate` call to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heartbeat {
    /// A new total ask, when it changed since the last answered one.
    pub want: Option<(i32, ResourceProto)>,
    pub release: Vec<ContainerIdProto>,
    pub tracking_url: Option<String>,
}

/// A worker to start in a container YARN gave us.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    /// The container's id as text: the key of [`Allocations::started`].
    pub key: String,
    pub worker_id: String,
    pub container: ContainerProto,
    pub spec: WorkerSpec,
}

/// What to do after an `allocate` answer.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub starts: Vec<Start>,
    pub exits: Vec<WorkerExit>,
}

/// The ApplicationMaster's allocation state.
#[derive(Debug)]
pub(crate) struct Allocations {
    capability: ResourceProto,
    pending: VecDeque<(String, WorkerSpec)>,
    live: BTreeMap<String, Live>,
    /// The outstanding ask YARN last acknowledged.
    asked: Option<usize>,
    release: Vec<ContainerIdProto>,
    /// The last tracking URL, and whether YARN has it yet.
    tracking_url: Option<String>,
    tracking_url_sent: bool,
    failures: u32,
    progress: Progress,
}

impl Allocations {
    /// Nothing asked yet; every container will have `capability`.
    pub fn new(capability: ResourceProto) -> Self {
        Self {
            capability,
            pending: VecDeque::new(),
            live: BTreeMap::new(),
            asked: None,
            release: Vec::new(),
            tracking_url: None,
            tracking_url_sent: false,
            failures: 0,
            progress: Progress::default(),
        }
    }

    /// A worker wants a container.
    pub fn launch(&mut self, id: String, spec: WorkerSpec) {
        self.pending.push_back((id, spec));
    }

    /// The cloud's REST API, for YARN's tracking URL.
    pub fn set_tracking_url(&mut self, url: String) {
        self.tracking_url = Some(url);
        self.tracking_url_sent = false;
    }

    /// The tracking URL to report when the application finishes.
    pub fn tracking_url(&self) -> &str {
        self.tracking_url.as_deref().unwrap_or("")
    }

    /// Workers still waiting for a container are no longer wanted.
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// The running containers, handed over to be stopped.
    pub fn take_live(&mut self) -> BTreeMap<String, Live> {
        std::mem::take(&mut self.live)
    }

    /// What diagnostics show.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// How long to wait before the next heartbeat: a new ask goes out almost at once (after a
    /// moment for the rest of a burst of launches), quick while containers are coming, calm
    /// once every worker has one.
    pub fn interval(&self) -> Duration {
        if self.asked != Some(self.pending.len()) && !self.pending.is_empty() {
            Duration::from_millis(10)
        } else if self.pending.is_empty() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        }
    }

    /// The next `allocate` call.
    pub fn heartbeat(&mut self) -> Heartbeat {
        let want = (self.asked != Some(self.pending.len())).then_some((self.pending.len() as i32, self.capability));
        let tracking_url = if self.tracking_url_sent { None } else { self.tracking_url.clone() };
        Heartbeat { want, release: std::mem::take(&mut self.release), tracking_url }
    }

    /// YARN answered `sent`: containers become worker starts (any beyond the ask are released),
    /// completed containers become worker exits.
    pub fn answered(&mut self, sent: Heartbeat, allocation: Allocation, now: Instant) -> Answer {
        self.failures = 0;
        if sent.want.is_some() {
            self.asked = Some(self.pending.len());
        }
        if sent.tracking_url.is_some() {
            self.tracking_url_sent = true;
        }
        let p = &mut self.progress;
        p.asked = self.pending.len() + self.live.len();
        p.allocated += allocation.allocated.len();
        p.headroom = allocation.headroom;
        p.cluster_nodes = allocation.cluster_nodes;
        let mut answer = Answer::default();
        for container in allocation.allocated {
            let Some((worker_id, spec)) = self.pending.pop_front() else {
                // More than we asked for (asks cross in flight): give it back.
                self.release.extend(container.id);
                continue;
            };
            let key = container_id_text(container.id.as_ref());
            self.live.insert(key.clone(), Live { worker_id: worker_id.clone(), container: container.clone() });
            answer.starts.push(Start { key, worker_id, container, spec });
            if self.pending.is_empty() {
                self.progress.all_allocated.get_or_insert(now);
            }
        }
        for status in allocation.completed {
            if let Some(l) = self.live.remove(&container_id_text(status.container_id.as_ref())) {
                answer.exits.push(exit_of(&l, &status));
            }
        }
        answer
    }

    /// The heartbeat `sent` failed with `error`: it is sent again next time; after
    /// [`MAX_HEARTBEAT_FAILURES`] in a row every worker is lost with the ResourceManager
    /// (`Some`, and the task ends).
    pub fn failed(&mut self, sent: Heartbeat, error: &str) -> Option<Vec<WorkerExit>> {
        self.release.extend(sent.release);
        self.failures += 1;
        if self.failures < MAX_HEARTBEAT_FAILURES {
            return None;
        }
        let lost = std::mem::take(&mut self.live).into_values().map(|l| WorkerExit {
            worker_id: l.worker_id,
            pid_opt: None,
            success: false,
            status: "was lost with the ResourceManager".into(),
            log_tail_opt: Some(error.to_string()),
        });
        Some(lost.collect())
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The NodeManager started (or refused to start) the worker in container `key`; a refusal
    /// releases the container and ends the worker.
    pub fn started(&mut self, key: &str, result: Result<(), String>, now: Instant) -> Option<WorkerExit> {
        match result {
            Ok(()) => {
                self.progress.started += 1;
                if self.pending.is_empty() && self.progress.started == self.live.len() {
                    self.progress.all_started = Some(now);
                }
                None
            }
            Err(why) => {
                let l = self.live.remove(key)?;
                self.progress.start_failures.push(format!("{key}: {why}"));
                self.release.extend(l.container.id);
                Some(WorkerExit {
                    worker_id: l.worker_id,
                    pid_opt: None,
                    success: false,
                    status: format!("could not be started in container {key}"),
                    log_tail_opt: Some(why),
                })
            }
        }
    }
}

/// A completed container as the worker's exit, with YARN's exit status and diagnostics.
pub(crate) fn exit_of(live: &Live, status: &ContainerStatusProto) -> WorkerExit {
    let code = status.exit_status.unwrap_or(eddy_hadoop_ipc::yarn_ids::exit_status::INVALID);
    let node = node_address(live.container.node_id.as_ref());
    let diagnostics = status.diagnostics.clone().unwrap_or_default();
    WorkerExit {
        worker_id: live.worker_id.clone(),
        pid_opt: None,
        success: code == 0,
        status: format!(
            "in container {} on {node} ended with YARN exit status {}",
            container_id_text(live.container.id.as_ref()),
            exit_status_text(code)
        ),
        log_tail_opt: Some(diagnostics).filter(|d| !d.trim().is_empty() && d != "N/A"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capability() -> ResourceProto {
        ResourceProto { memory: Some(1024), virtual_cores: Some(1) }
    }

    fn container(n: i64) -> ContainerProto {
        let app = ApplicationIdProto { id: Some(7), cluster_timestamp: Some(1_700_000_000_000) };
        let attempt = ApplicationAttemptIdProto { application_id: Some(app), attempt_id: Some(1) };
        ContainerProto {
            id: Some(ContainerIdProto { app_id: Some(app), app_attempt_id: Some(attempt), id: Some(n) }),
            node_id: Some(NodeIdProto { host: Some("127.0.0.2".into()), port: Some(45454) }),
            ..Default::default()
        }
    }

    fn allocation(allocated: Vec<ContainerProto>, completed: Vec<ContainerStatusProto>) -> Allocation {
        Allocation { allocated, completed, headroom: capability(), cluster_nodes: 2, command: None }
    }

    fn with_workers(n: usize) -> Allocations {
        let mut a = Allocations::new(capability());
        for i in 0..n {
            a.launch(format!("w{i}"), WorkerSpec::default());
        }
        a
    }

    #[test]
    fn asks_once_for_every_pending_worker_and_again_only_when_that_changes() {
        let mut a = with_workers(3);
        assert_eq!(a.interval(), Duration::from_millis(10), "a new ask goes out at once");
        let sent = a.heartbeat();
        assert_eq!(sent.want, Some((3, capability())));
        a.answered(sent, allocation(vec![], vec![]), Instant::now());
        assert_eq!(a.interval(), Duration::from_millis(100), "waiting for containers");
        assert_eq!(a.heartbeat().want, None, "YARN keeps the outstanding ask");
        a.launch("w3".into(), WorkerSpec::default());
        assert_eq!(a.heartbeat().want, Some((4, capability())));
    }

    #[test]
    fn containers_start_workers_in_order_and_extra_ones_go_back() {
        let mut a = with_workers(2);
        let sent = a.heartbeat();
        let answer = a.answered(sent, allocation(vec![container(1), container(2), container(3)], vec![]), Instant::now());
        let started: Vec<&str> = answer.starts.iter().map(|s| s.worker_id.as_str()).collect();
        assert_eq!(started, ["w0", "w1"]);
        assert!(a.progress().all_allocated.is_some());
        assert_eq!(a.interval(), Duration::from_secs(1), "calm once every worker has a container");
        let next = a.heartbeat();
        assert_eq!(next.release.len(), 1, "the third container is released");
        assert_eq!(next.release[0].id, Some(3));
        assert_eq!(next.want, Some((0, capability())), "nothing more is wanted");
    }

    #[test]
    fn completed_containers_end_their_workers_with_yarns_words() {
        let mut a = with_workers(1);
        let sent = a.heartbeat();
        let answer = a.answered(sent, allocation(vec![container(1)], vec![]), Instant::now());
        assert!(a.started(&answer.starts[0].key, Ok(()), Instant::now()).is_none());
        assert!(a.progress().all_started.is_some());
        let done = ContainerStatusProto {
            container_id: container(1).id,
            exit_status: Some(-104),
            diagnostics: Some("Container killed on request. Exit code is 137".into()),
            ..Default::default()
        };
        let sent = a.heartbeat();
        let answer = a.answered(sent, allocation(vec![], vec![done]), Instant::now());
        assert_eq!(answer.exits.len(), 1);
        let exit = &answer.exits[0];
        assert_eq!(exit.worker_id, "w0");
        assert!(!exit.success);
        assert!(exit.status.contains("on 127.0.0.2:45454"), "{}", exit.status);
        assert_eq!(exit.log_tail_opt.as_deref(), Some("Container killed on request. Exit code is 137"));
        assert!(a.take_live().is_empty());
    }

    #[test]
    fn a_refused_start_releases_the_container_and_ends_the_worker() {
        let mut a = with_workers(1);
        let sent = a.heartbeat();
        let answer = a.answered(sent, allocation(vec![container(5)], vec![]), Instant::now());
        let exit = a.started(&answer.starts[0].key, Err("NMToken expired".into()), Instant::now()).unwrap();
        assert_eq!((exit.worker_id.as_str(), exit.log_tail_opt.as_deref()), ("w0", Some("NMToken expired")));
        assert_eq!(a.heartbeat().release[0].id, Some(5));
        assert_eq!(a.progress().start_failures.len(), 1);
        assert!(a.started(&answer.starts[0].key, Err("again".into()), Instant::now()).is_none(), "reported once");
    }

    #[test]
    fn a_failed_heartbeat_keeps_its_releases_and_too_many_lose_every_worker() {
        let mut a = with_workers(2);
        let sent = a.heartbeat();
        a.answered(sent, allocation(vec![container(1), container(2), container(3)], vec![]), Instant::now());
        let sent = a.heartbeat();
        assert_eq!(sent.release.len(), 1);
        assert!(a.failed(sent, "connection refused").is_none());
        let sent = a.heartbeat();
        assert_eq!(sent.release.len(), 1, "sent again after a failure");
        assert!(a.failed(sent, "connection refused").is_none());
        for _ in 2..MAX_HEARTBEAT_FAILURES - 1 {
            let sent = a.heartbeat();
            assert!(a.failed(sent, "connection refused").is_none());
        }
        let sent = a.heartbeat();
        let lost = a.failed(sent, "connection refused").unwrap();
        assert_eq!(lost.len(), 2);
        assert!(lost.iter().all(|e| e.status.contains("lost with the ResourceManager")));
    }

    #[test]
    fn the_tracking_url_is_sent_until_yarn_has_it_and_kept_for_the_finish() {
        let mut a = with_workers(0);
        a.set_tracking_url("http://127.0.0.1:54321".into());
        let sent = a.heartbeat();
        assert_eq!(sent.tracking_url.as_deref(), Some("http://127.0.0.1:54321"));
        assert!(a.failed(sent, "timeout").is_none());
        let sent = a.heartbeat();
        assert!(sent.tracking_url.is_some(), "not acknowledged yet");
        a.answered(sent, allocation(vec![], vec![]), Instant::now());
        assert!(a.heartbeat().tracking_url.is_none());
        assert_eq!(a.tracking_url(), "http://127.0.0.1:54321");
    }
}
