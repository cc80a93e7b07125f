//! The YARN launcher: the driver is the application's ApplicationMaster (unmanaged: it runs
//! here, not in a container). It registers with the scheduler using the AMRMToken from the
//! application report, asks for one container per worker, starts `eddy-mapper` in each on
//! its NodeManager, and turns completed containers into worker exits with YARN's exit status
//! and diagnostics.
//!
//! One task owns the ApplicationMaster connection and heartbeats (`allocate`) for the whole
//! life of the application, as YARN expects; the launcher talks to it through commands.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eddy_common::keys;
use eddy_hadoop_ipc::credentials::Credentials;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn::am::{container_id_text, exit_status_text, node_address, ApplicationMaster, NodeManager};
use eddy_yarn::rm::{application_id_text, state_name, ResourceManager};
use tokio::sync::{mpsc, oneshot};

use super::{WorkerExit, WorkerLauncher, WorkerSpec};
use crate::{DriverError, DriverResult};

/// What the launcher needs to start containers.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// The staged mapper binary.
    pub mapper: LocalResourceProto,
    /// Memory and vcores of each container.
    pub capability: ResourceProto,
}

enum Command {
    Launch { id: String, spec: Box<WorkerSpec> },
    Stop { grace: Duration, done: oneshot::Sender<Vec<WorkerExit>> },
    Finish { status: FinalApplicationStatusProto, diagnostics: String, done: oneshot::Sender<String> },
    TrackingUrl(String),
}

/// When the set-up steps ended, from the driver's start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timeline {
    /// When the driver started.
    pub started: Option<std::time::Instant>,
    /// Mapper uploaded (or found) on the staging directory.
    pub staged: Duration,
    /// Application submitted.
    pub submitted: Duration,
    /// Registered as ApplicationMaster.
    pub registered: Duration,
}

/// What the heartbeat task has seen, for diagnostics.
#[derive(Debug, Default, Clone)]
struct Progress {
    all_allocated: Option<std::time::Instant>,
    all_started: Option<std::time::Instant>,
    asked: usize,
    allocated: usize,
    started: usize,
    headroom: ResourceProto,
    cluster_nodes: i32,
    start_failures: Vec<String>,
}

/// Workers in YARN containers.
pub struct YarnLauncher {
    app: ApplicationIdProto,
    rm: Arc<ResourceManager>,
    queue: String,
    plan: ContainerPlan,
    commands: mpsc::UnboundedSender<Command>,
    exits: mpsc::UnboundedReceiver<WorkerExit>,
    progress: Arc<Mutex<Progress>>,
    timeline: Timeline,
}

impl std::fmt::Debug for YarnLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YarnLauncher").field("app", &application_id_text(&self.app)).finish()
    }
}

struct Live {
    worker_id: String,
    container: ContainerProto,
}

impl YarnLauncher {
    /// Starts heartbeating as the registered master `am` of application `app`.
    pub fn start(
        app: ApplicationIdProto,
        rm: Arc<ResourceManager>,
        am: ApplicationMaster,
        queue: String,
        plan: ContainerPlan,
        timeline: Timeline,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let progress = Arc::new(Mutex::new(Progress::default()));
        tokio::spawn(heartbeat(am, plan.clone(), rx, exits_tx, Arc::clone(&progress)));
        Self { app, rm, queue, plan, commands, exits, progress, timeline }
    }

    /// The YARN application id.
    pub fn application_id(&self) -> String {
        application_id_text(&self.app)
    }

    /// Tells YARN where the cloud's REST API is (the application's tracking URL).
    pub fn set_tracking_url(&self, url: String) {
        let _ = self.commands.send(Command::TrackingUrl(url));
    }

    /// Unregisters with `status`; YARN ends the application and any container left.
    /// Returns the problem, if unregistering failed.
    pub async fn finish(&self, status: FinalApplicationStatusProto, diagnostics: &str) -> Option<String> {
        let (done, rx) = oneshot::channel();
        self.commands.send(Command::Finish { status, diagnostics: diagnostics.to_string(), done }).ok()?;
        rx.await.ok().filter(|e| !e.is_empty())
    }
}

/// mimalloc (the mapper's allocator) reserves 1 GiB of address space at start. A NodeManager
/// with Apache's defaults (`yarn.nodemanager.vmem-check-enabled`, `vmem-pmem-ratio` 2.1)
/// kills a container whose processes' virtual size passes 2.1 times its memory, so a worker
/// or master in a container below about 600 MiB died of address space it never used (a debug
/// worker: 1.27 GB virtual, 40 MB resident). Reserving 64 MiB at a time keeps the virtual size
/// near what is used.
pub(crate) const ALLOCATOR_ENV: (&str, &str) = ("MIMALLOC_ARENA_RESERVE", "64M");

/// Builds one worker's container: the staged mapper as a local resource, settings in the
/// environment, the cluster secret in the token file, output in the container's log dir.
fn launch_context(plan: &ContainerPlan, spec: &WorkerSpec) -> ContainerLaunchContextProto {
    let mut env = spec.env.clone();
    let secret = env.remove(keys::CLUSTER_SECRET.name).unwrap_or_default();
    env.entry(ALLOCATOR_ENV.0.to_string()).or_insert_with(|| ALLOCATOR_ENV.1.to_string());
    let credentials = Credentials { tokens: Vec::new(), secrets: vec![(eddy_yarn::CLUSTER_SECRET_ALIAS.into(), secret.into_bytes())] };
    let mut command = vec!["./eddy-mapper".to_string()];
    command.extend(spec.args.iter().cloned());
    command.extend(["1><LOG_DIR>/stdout".to_string(), "2><LOG_DIR>/stderr".to_string()]);
    ContainerLaunchContextProto {
        local_resources: vec![StringLocalResourceMapProto { key: Some("eddy-mapper".into()), value: Some(plan.mapper.clone()) }],
        tokens: Some(credentials.to_bytes()),
        environment: env.into_iter().map(|(k, v)| StringStringMapProto { key: Some(k), value: Some(v) }).collect(),
        command,
        ..Default::default()
    }
}

fn exit_of(live: &Live, status: &ContainerStatusProto) -> WorkerExit {
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

async fn heartbeat(
    mut am: ApplicationMaster,
    plan: ContainerPlan,
    mut commands: mpsc::UnboundedReceiver<Command>,
    exits: mpsc::UnboundedSender<WorkerExit>,
    progress: Arc<Mutex<Progress>>,
) {
    let mut pending: VecDeque<(String, WorkerSpec)> = VecDeque::new();
    let mut live: BTreeMap<String, Live> = BTreeMap::new();
    let mut asked: Option<usize> = None;
    let mut release: Vec<ContainerIdProto> = Vec::new();
    let mut tracking_url: Option<String> = None;
    // Quick while containers are coming, calm once every worker runs.
    let fast = Duration::from_millis(100);
    let slow = Duration::from_secs(1);
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<(String, Result<(), String>)>();
    let mut failures = 0u32;
    loop {
        // A new ask goes out at once (after a moment for the rest of a burst of launches).
        let interval = if asked != Some(pending.len()) && !pending.is_empty() {
            Duration::from_millis(10)
        } else if pending.is_empty() {
            slow
        } else {
            fast
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Launch { id, spec }) => {
                    pending.push_back((id, *spec));
                    continue;
                }
                Some(Command::TrackingUrl(url)) => {
                    tracking_url = Some(url);
                    continue;
                }
                Some(Command::Stop { grace, done }) => {
                    pending.clear();
                    let ended = stop_all(&mut am, &mut live, grace).await;
                    let _ = done.send(ended);
                    continue;
                }
                Some(Command::Finish { status, diagnostics, done }) => {
                    let url = tracking_url.clone().unwrap_or_default();
                    let result = am.finish(status, &diagnostics, &url).await;
                    let _ = done.send(result.err().map(|e| e.to_string()).unwrap_or_default());
                    return;
                }
                // The launcher is gone without finishing: YARN expires the attempt.
                None => return,
            },
            Some((container, result)) = started_rx.recv() => {
                match result {
                    Ok(()) => {
                        if let Ok(mut p) = progress.lock() {
                            p.started += 1;
                            if pending.is_empty() && p.started == live.len() {
                                p.all_started = Some(std::time::Instant::now());
                            }
                        }
                    }
                    Err(why) => {
                        if let Some(l) = live.remove(&container) {
                            if let Ok(mut p) = progress.lock() {
                                p.start_failures.push(format!("{container}: {why}"));
                            }
                            release.extend(l.container.id);
                            let _ = exits.send(WorkerExit {
                                worker_id: l.worker_id,
                                pid_opt: None,
                                success: false,
                                status: format!("could not be started in container {container}"),
                                log_tail_opt: Some(why),
                            });
                        }
                    }
                }
                continue;
            }
            _ = tokio::time::sleep(interval) => {}
        }
        let want = (asked != Some(pending.len())).then_some((pending.len() as i32, plan.capability));
        let allocation = match am.allocate(want, std::mem::take(&mut release), tracking_url.take()).await {
            Ok(a) => {
                failures = 0;
                if want.is_some() {
                    asked = Some(pending.len());
                }
                a
            }
            Err(e) => {
                failures += 1;
                tracing::warn!("YARN heartbeat failed ({failures} in a row): {e}");
                if failures >= 30 {
                    // The ResourceManager is gone: every worker is as good as lost.
                    for (_, l) in std::mem::take(&mut live) {
                        let _ = exits.send(WorkerExit {
                            worker_id: l.worker_id,
                            pid_opt: None,
                            success: false,
                            status: "was lost with the ResourceManager".into(),
                            log_tail_opt: Some(e.to_string()),
                        });
                    }
                    return;
                }
                continue;
            }
        };
        if let Ok(mut p) = progress.lock() {
            p.asked = pending.len() + live.len();
            p.allocated += allocation.allocated.len();
            p.headroom = allocation.headroom;
            p.cluster_nodes = allocation.cluster_nodes;
        }
        for container in allocation.allocated {
            let Some((worker_id, spec)) = pending.pop_front() else {
                // More than we asked for (asks cross in flight): give it back.
                release.extend(container.id);
                continue;
            };
            let text = container_id_text(container.id.as_ref());
            println!("  worker {worker_id}: container {text} on {}", node_address(container.node_id.as_ref()));
            let context = launch_context(&plan, &spec);
            let token = am.nm_token(&container);
            let started = started_tx.clone();
            let c = container.clone();
            let key = text.clone();
            tokio::spawn(async move {
                let result = async {
                    let nm = NodeManager::connect(&node_address(c.node_id.as_ref()), &token?, Duration::from_secs(30)).await?;
                    nm.start(&c, context).await
                }
                .await;
                let _ = started.send((key, result.map_err(|e| e.to_string())));
            });
            live.insert(text, Live { worker_id, container });
            if pending.is_empty() {
                if let Ok(mut p) = progress.lock() {
                    p.all_allocated.get_or_insert_with(std::time::Instant::now);
                }
            }
        }
        for status in allocation.completed {
            let text = container_id_text(status.container_id.as_ref());
            if let Some(l) = live.remove(&text) {
                let _ = exits.send(exit_of(&l, &status));
            }
        }
    }
}

/// Stops every live container and waits (heartbeating) until YARN reports them complete.
async fn stop_all(am: &mut ApplicationMaster, live: &mut BTreeMap<String, Live>, grace: Duration) -> Vec<WorkerExit> {
    let mut by_node: BTreeMap<String, Vec<ContainerProto>> = BTreeMap::new();
    for l in live.values() {
        by_node.entry(node_address(l.container.node_id.as_ref())).or_default().push(l.container.clone());
    }
    for (node, containers) in by_node {
        let Some(first) = containers.first() else { continue };
        let stopped = async {
            let nm = am.node_manager(first).await?;
            nm.stop(containers.iter().filter_map(|c| c.id).collect()).await
        };
        match stopped.await {
            Ok(refused) if refused.is_empty() => {}
            Ok(refused) => {
                let why: Vec<String> = refused.iter().map(|(id, why)| format!("{id}: {why}")).collect();
                tracing::warn!(node, "the NodeManager refused to stop {}", why.join("; "))
            }
            Err(e) => tracing::warn!(node, "cannot stop containers: {e}"),
        }
    }
    let mut ended = Vec::new();
    let deadline = tokio::time::Instant::now() + grace;
    while !live.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match am.allocate(None, Vec::new(), None).await {
            Ok(a) => {
                for status in a.completed {
                    if let Some(l) = live.remove(&container_id_text(status.container_id.as_ref())) {
                        ended.push(exit_of(&l, &status));
                    }
                }
            }
            Err(e) => {
                tracing::warn!("heartbeat while stopping: {e}");
                break;
            }
        }
    }
    ended
}

#[async_trait]
impl WorkerLauncher for YarnLauncher {
    fn name(&self) -> &'static str {
        "yarn"
    }

    async fn launch(&mut self, id: &str, spec: &WorkerSpec) -> DriverResult<()> {
        self.commands
            .send(Command::Launch { id: id.to_string(), spec: Box::new(spec.clone()) })
            .map_err(|_| DriverError::InvalidArgument("the YARN heartbeat task has ended".into()))
    }

    async fn next_exit(&mut self) -> WorkerExit {
        match self.exits.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    async fn stop(&mut self, grace: Duration) -> Vec<WorkerExit> {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Stop { grace, done }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    fn log_location(&self) -> String {
        format!("yarn logs -applicationId {} (or each NodeManager's container log directory)", self.application_id())
    }

    async fn formed(&mut self, rest_url: &str) {
        self.set_tracking_url(rest_url.to_string());
        let (Some(t0), Ok(p)) = (self.timeline.started, self.progress.lock()) else { return };
        let at = |i: Option<std::time::Instant>| i.map(|i| format!("{:.3}", (i - t0).as_secs_f64())).unwrap_or_else(|| "-".into());
        let t = self.timeline;
        println!(
            "YARN timeline (s from start): staged {:.3}, submitted {:.3}, registered {:.3}, allocated {}, launched {}, formed {:.3}",
            t.staged.as_secs_f64(),
            t.submitted.as_secs_f64(),
            t.registered.as_secs_f64(),
            at(p.all_allocated),
            at(p.all_started),
            t0.elapsed().as_secs_f64()
        );
    }

    async fn diagnose(&mut self) -> Option<String> {
        let p = self.progress.lock().map(|p| p.clone()).unwrap_or_default();
        let mb = self.plan.capability.memory.unwrap_or(0);
        let vcores = self.plan.capability.virtual_cores.unwrap_or(0);
        let mut lines = vec![format!("YARN application {}:", self.application_id())];
        match self.rm.report(&self.app).await {
            Ok(r) => {
                lines.push(format!("  state {}, queue {}", state_name(r.yarn_application_state), r.queue.unwrap_or_default()));
                if let Some(d) = r.diagnostics.filter(|d| !d.is_empty() && d != "N/A") {
                    lines.push(format!("  YARN says: {d}"));
                }
            }
            Err(e) => lines.push(format!("  (no application report: {e})")),
        }
        lines.push(format!(
            "  asked for {} containers of {mb} MiB and {vcores} vcores; {} allocated, {} started",
            p.asked.max(p.allocated),
            p.allocated,
            p.started
        ));
        lines.push(format!(
            "  free for this application (headroom): {} MiB and {} vcores on {} nodes",
            p.headroom.memory.unwrap_or(0),
            p.headroom.virtual_cores.unwrap_or(0),
            p.cluster_nodes
        ));
        if let Ok(q) = self.rm.queue(&self.queue).await {
            if let Some(s) = q.queue_statistics {
                lines.push(format!(
                    "  queue {}: {} MiB / {} vcores available, {} MiB / {} vcores allocated, {} containers pending",
                    self.queue,
                    s.available_memory_mb.unwrap_or(0),
                    s.available_v_cores.unwrap_or(0),
                    s.allocated_memory_mb.unwrap_or(0),
                    s.allocated_v_cores.unwrap_or(0),
                    s.pending_containers.unwrap_or(0)
                ));
            }
        }
        for f in &p.start_failures {
            lines.push(format!("  start failed: {f}"));
        }
        if p.allocated < p.asked {
            lines.push(format!(
                "  YARN found no room for {} more containers of {mb} MiB (free memory may be split across nodes): ask for fewer or smaller workers (--nodes, --memory, --extra-mem-percent), another --queue, or wait for the cluster to free up",
                p.asked - p.allocated
            ));
        }
        Some(lines.join("\n"))
    }
}
