//! The YARN launcher: the driver is the application's ApplicationMaster (unmanaged: it runs
//! here, not in a container). It registers with the scheduler using the AMRMToken from the
//! application report, asks for one container per worker, starts `eddy-mapper` in each on
//! its NodeManager, and turns completed containers into worker exits with YARN's exit status
//! and diagnostics.
//!
//! One task owns the ApplicationMaster connection and heartbeats (`allocate`) for the whole
//! life of the application, as YARN expects; the launcher talks to it through commands. What
//! it keeps between heartbeats, and what YARN's answers mean, is `allocation.rs`, tested
//! without a network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eddy_common::keys;
use eddy_hadoop_ipc::credentials::Credentials;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn_client::am::{container_id_text, node_address, ApplicationMaster, NodeManager};
use eddy_yarn_client::rm::{application_id_text, state_name, ResourceManager};
use tokio::sync::{mpsc, oneshot};

use super::allocation::{exit_of, Allocations, Live, Progress};
use super::{WorkerExit, WorkerLauncher, WorkerSpec};
use crate::{DriverError, DriverResult};

/// What the launcher needs to start containers.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// The staged mapper binary.
    pub mapper: LocalResourceProto,
    /// Memory and vcores of each container.
    pub capability: ResourceProto,
    /// Delegation tokens every container carries (HDFS's, on a Kerberized cluster), by alias.
    pub tokens: Vec<(String, eddy_hadoop_ipc::proto::common::TokenProto)>,
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
/// environment, the cluster secret and delegation tokens in the token file, output in the
/// container's log dir. A keytab never goes to a container: workers use the tokens.
fn launch_context(plan: &ContainerPlan, spec: &WorkerSpec) -> ContainerLaunchContextProto {
    let mut env = spec.env.clone();
    let secret = env.remove(keys::CLUSTER_SECRET.name).unwrap_or_default();
    env.remove(keys::KERBEROS_PRINCIPAL.name);
    env.remove(keys::KERBEROS_KEYTAB.name);
    env.entry(ALLOCATOR_ENV.0.to_string()).or_insert_with(|| ALLOCATOR_ENV.1.to_string());
    let credentials =
        Credentials { tokens: plan.tokens.clone(), secrets: vec![(eddy_yarn_client::CLUSTER_SECRET_ALIAS.into(), secret.into_bytes())] };
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

/// The ApplicationMaster's heartbeat task: the I/O around [`Allocations`] (allocate calls,
/// NodeManager starts, the timer), for the life of the application.
async fn heartbeat(
    mut am: ApplicationMaster,
    plan: ContainerPlan,
    mut commands: mpsc::UnboundedReceiver<Command>,
    exits: mpsc::UnboundedSender<WorkerExit>,
    progress: Arc<Mutex<Progress>>,
) {
    let mut state = Allocations::new(plan.capability);
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<(String, Result<(), String>)>();
    let publish = |state: &Allocations| {
        if let Ok(mut p) = progress.lock() {
            *p = state.progress().clone();
        }
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Launch { id, spec }) => state.launch(id, *spec),
                Some(Command::TrackingUrl(url)) => state.set_tracking_url(url),
                Some(Command::Stop { grace, done }) => {
                    state.forget_pending();
                    let mut live = state.take_live();
                    let _ = done.send(stop_all(&mut am, &mut live, grace).await);
                }
                Some(Command::Finish { status, diagnostics, done }) => {
                    let result = am.finish(status, &diagnostics, state.tracking_url()).await;
                    let _ = done.send(result.err().map(|e| e.to_string()).unwrap_or_default());
                    return;
                }
                // The launcher is gone without finishing: YARN expires the attempt.
                None => return,
            },
            Some((container, result)) = started_rx.recv() => {
                if let Some(exit) = state.started(&container, result, Instant::now()) {
                    let _ = exits.send(exit);
                }
                publish(&state);
            }
            _ = tokio::time::sleep(state.interval()) => {
                let sent = state.heartbeat();
                let answer = match am.allocate(sent.want, sent.release.clone(), sent.tracking_url.clone()).await {
                    Ok(allocation) => state.answered(sent, allocation, Instant::now()),
                    Err(e) => {
                        let error = e.to_string();
                        tracing::warn!("YARN heartbeat failed ({} in a row): {error}", state.failures() + 1);
                        if let Some(lost) = state.failed(sent, &error) {
                            // The ResourceManager is gone: every worker is as good as lost.
                            for exit in lost {
                                let _ = exits.send(exit);
                            }
                            return;
                        }
                        continue;
                    }
                };
                publish(&state);
                for start in answer.starts {
                    println!("  worker {}: container {} on {}", start.worker_id, start.key, node_address(start.container.node_id.as_ref()));
                    let context = launch_context(&plan, &start.spec);
                    let token = am.nm_token(&start.container);
                    let started = started_tx.clone();
                    tokio::spawn(async move {
                        let c = start.container;
                        let result = async {
                            let nm = NodeManager::connect(&node_address(c.node_id.as_ref()), &token?, Duration::from_secs(30)).await?;
                            nm.start(&c, context).await
                        }
                        .await;
                        let _ = started.send((start.key, result.map_err(|e| e.to_string())));
                    });
                }
                for exit in answer.exits {
                    let _ = exits.send(exit);
                }
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

    fn replaces_lost_workers(&self) -> bool {
        // Launching again asks the ResourceManager for one more container.
        true
    }

    async fn launch(&mut self, id: &str, spec: &WorkerSpec) -> DriverResult<()> {
        self.commands
            .send(Command::Launch { id: id.to_string(), spec: Box::new(spec.clone()) })
            .map_err(|_| DriverError::InvalidArgument { reason: "the YARN heartbeat task has ended".into() })
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
