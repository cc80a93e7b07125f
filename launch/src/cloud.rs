//! The driver's side of the callback protocol, the same for every launcher:
//! gather service up → launch N workers → every worker registered → peer list out →
//! every worker reports the same formed cloud → observe until shutdown or failure.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use eddy_common::tls::{InternalTls, InternalTlsMode};
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_embedded_config::gather::{Gather, GatherEvent, GatherOptions};
use eddy_node::membership::Event;
use eddy_node::rest_auth::RestAuthMode;
use eddy_node::signal::Signal;
use eddy_node::{bind, NodeHandle, NodeOptions, Role, StopReason};
use tokio::sync::broadcast;

pub use crate::cloud_options::{CloudOptions, DEFAULT_NODES};
use crate::launcher::{WorkerExit, WorkerLauncher};
use crate::status::{Phase, StatusFile, WorkerStatus};
use crate::{DriverError, DriverResult};

/// How the driver ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cloud was stopped on purpose and every worker exited.
    Stopped,
    /// The driver left the cloud running (`--disown`).
    Disowned,
    /// Interrupted before the cloud formed, by this signal (`None`: standard input closed).
    Interrupted(Option<Signal>),
    /// Interrupted (Ctrl-C, SIGTERM, standard input closed) after the cloud formed; the cloud
    /// was stopped in order.
    Signalled(Option<Signal>),
}

impl Outcome {
    /// The process exit code: 0 for a stop on purpose, 128 + the signal's number after a
    /// signal (130 for SIGINT, 143 for SIGTERM), as shells report a process a signal ended.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Interrupted(Some(s)) | Outcome::Signalled(Some(s)) => 128 + s.number(),
            _ => 0,
        }
    }
}

/// Why the driver stops without being asked through the cloud.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// "interrupted", "terminated", ...
    why: &'static str,
    signal: Option<Signal>,
}

/// SIGINT/SIGTERM, caught once for the driver's whole life so that no phase can miss it.
#[derive(Clone)]
struct Interrupt(tokio::sync::watch::Receiver<Option<Stop>>);

impl Interrupt {
    /// Signals, and with `stdin_eof` also the end of standard input (the process that
    /// started the driver and holds the other end of the pipe has gone, e.g. a notebook).
    fn install(stdin_eof: bool) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let tx = std::sync::Arc::new(tx);
        let on_signal = std::sync::Arc::clone(&tx);
        tokio::spawn(async move {
            let signal = eddy_node::signal::stop_signal().await;
            on_signal.send_replace(Some(Stop { why: signal.verb(), signal: Some(signal) }));
        });
        if stdin_eof {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 256];
                while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
                tx.send_replace(Some(Stop { why: "left by the process that started it (standard input closed)", signal: None }));
            });
        }
        Self(rx)
    }

    /// Resolves once a signal arrived (or standard input closed).
    async fn wait(&self) -> Stop {
        let mut rx = self.0.clone();
        let why = rx.wait_for(Option::is_some).await.ok().and_then(|w| *w);
        match why {
            Some(w) => w,
            None => std::future::pending().await,
        }
    }
}

/// The gather service's listener: `--driver-port`, or the first free port of
/// `--driver-port-range`.
async fn bind_gather(options: &CloudOptions) -> DriverResult<tokio::net::TcpListener> {
    let (from, to) = options.driver_port_range_opt.unwrap_or((options.driver_port, options.driver_port));
    let mut last = None;
    for port in from..=to {
        let at = SocketAddr::new(options.driver_ip, port);
        match tokio::net::TcpListener::bind(at).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    let source = last.unwrap_or_else(|| std::io::Error::other("empty port range"));
    Err(DriverError::Io {
        what: format!(
            "cannot listen on {} port {from}..={to} for the gather service (--driver-ip/--driver-port/--driver-port-range)",
            options.driver_ip
        ),
        source,
    })
}

fn died_message(exit: &WorkerExit, node_opt: Option<NodeAddr>) -> String {
    let who = match node_opt {
        Some(n) => format!("worker {} ({n}, pid {})", exit.worker_id, exit.pid_opt.unwrap_or_default()),
        None => format!("worker {} (pid {})", exit.worker_id, exit.pid_opt.unwrap_or_default()),
    };
    let mut msg = format!("{who} {}", exit.status);
    if let Some(tail) = exit.log_tail_opt.as_deref().filter(|t| !t.trim().is_empty()) {
        msg.push_str(&format!("\n--- last lines of its log ---\n{tail}\n---"));
    }
    msg
}

/// The `--notify` file: the leader's `ip:port` on the first line (as H2O writes it), then
/// `extra` (the YARN application id), then `token=TOKEN` when REST authentication is on.
/// Readable by its owner only, since it holds the token.
pub(crate) fn write_notify(path: &std::path::Path, leader: &str, extra: Option<&str>, token: Option<&str>) -> DriverResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = format!("{leader}\n");
    if let Some(e) = extra {
        text.push_str(&format!("{e}\n"));
    }
    if let Some(t) = token {
        text.push_str(&format!("token={t}\n"));
    }
    let io = |source| DriverError::Io { what: format!("cannot write --notify file {}", path.display()), source };
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io)?;
    // `mode` applies only to a new file; an old one may have been readable by others.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// Runs the whole protocol with `launcher`.
pub async fn drive(launcher: &mut dyn WorkerLauncher, options: CloudOptions) -> DriverResult<Outcome> {
    let interrupt = Interrupt::install(options.stop_on_stdin_eof);
    let secret = match &options.secret_opt {
        Some(s) => s.clone(),
        None => ClusterSecret::generate()?,
    };
    let (gather, mut gather_events) = Gather::new(GatherOptions {
        expected: options.nodes,
        timeout: options.timeout,
        cloud_name: options.cloud_name.clone(),
        secret: secret.clone(),
    });
    let listener = bind_gather(&options).await?;
    let gather_addr = listener.local_addr().map_err(|source| DriverError::Io { what: "gather address".into(), source })?;
    if let Some(path) = &options.gather_file_opt {
        // Written whole and renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, format!("{gather_addr}\n"))
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|source| DriverError::Io { what: format!("cannot write --gather-file {}", path.display()), source })?;
    }
    let gather_tls = InternalTls::for_mode(&options.internal_tls, &secret, &[gather_addr.ip().to_string()])?;
    let (stop_gather_tx, stop_gather_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gather.clone().serve(listener, gather_tls, async move {
        let _ = stop_gather_rx.await;
    }));
    println!("Starting a cloud of {} workers ({} launcher), gather service on {gather_addr}", options.nodes, launcher.name());
    println!("Worker logs: {}", launcher.log_location());
    let mut launched = Ok(());
    for i in 0..options.nodes {
        let id = i.to_string();
        gather.expect_worker_id(&id);
        launched = launcher.launch(&id, &options.worker_spec(gather_addr, &secret, &id)).await;
        if launched.is_err() {
            break;
        }
    }
    let mut run = Run {
        options: &options,
        gather: &gather,
        secret: &secret,
        interrupt: &interrupt,
        status: StatusFile::new(options.status_file_opt.clone(), &options.cloud_name),
    };
    run.status.update(|s| s.gather = Some(gather_addr.to_string()))?;
    let result = match launched {
        Ok(()) => form_and_watch(launcher, &mut run, &mut gather_events).await,
        Err(e) => Err(e),
    };
    // A cloud that did not form: add what the cluster manager knows (free resources, state).
    let result = match result {
        Err(e @ (DriverError::Gather(_) | DriverError::NotFormed { reason: _ })) => match launcher.diagnose().await {
            Some(d) => Err(DriverError::NotFormed { reason: format!("{e}\n{d}") }),
            None => Err(e),
        },
        other => other,
    };
    if !matches!(result, Ok(Outcome::Disowned)) {
        gather.tell_workers_exit("the driver is stopping");
        for exit in launcher.stop(Duration::from_secs(10)).await {
            tracing::debug!(worker = %exit.worker_id, status = %exit.status, "worker ended");
        }
    }
    let _ = stop_gather_tx.send(());
    let ended = run.status.update(|s| match &result {
        Ok(Outcome::Disowned) => s.phase = Phase::Disowned,
        Ok(_) => s.phase = Phase::Stopped,
        Err(e) => {
            s.phase = Phase::Failed;
            s.error = Some(e.to_string());
        }
    });
    if let Err(e) = ended {
        tracing::warn!(error = %e, "cannot write the final status");
    }
    result
}

/// What the phases of one run share.
struct Run<'a> {
    options: &'a CloudOptions,
    gather: &'a Gather,
    secret: &'a ClusterSecret,
    interrupt: &'a Interrupt,
    /// `--status-file`.
    status: StatusFile,
}

async fn form_and_watch(
    launcher: &mut dyn WorkerLauncher,
    run: &mut Run<'_>,
    gather_events: &mut tokio::sync::mpsc::UnboundedReceiver<GatherEvent>,
) -> DriverResult<Outcome> {
    let (options, gather, secret, interrupt) = (run.options, run.gather, run.secret, run.interrupt);
    // Phase 1: every worker registers; the peer list goes out.
    let peers = loop {
        tokio::select! {
            biased;
            Some(event) = gather_events.recv() => print_progress(&event, options.nodes),
            peers = gather.wait_for_peers() => break peers?,
            exit = launcher.next_exit() => {
                let msg = format!("the cloud cannot form: {}", died_message(&exit, None));
                gather.fail(&msg);
                return Err(DriverError::NotFormed { reason: msg });
            }
            stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
        }
    };
    // Phase 2: every worker reports the same formed cloud.
    let (size, leader) = loop {
        tokio::select! {
            biased;
            Some(event) = gather_events.recv() => print_progress(&event, options.nodes),
            formed = gather.wait_for_cloud() => break formed?,
            exit = launcher.next_exit() => {
                let node = node_of(gather, &exit.worker_id);
                return Err(DriverError::NotFormed { reason: format!("the cloud cannot form: {}", died_message(&exit, node)) });
            }
            stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
        }
    };
    println!("Cloud of size {size} formed [{}]", peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    println!("REST API: {}/3/Cloud (leader {leader})", options.rest_url(&leader));
    let token_opt = options.rest_auth.token(secret, &options.cloud_name);
    match &token_opt {
        Some(_) if !options.print_token => {}
        Some(token) => println!("{}", ClusterSecret::access_line(&options.rest_url(&leader), token)),
        None => {
            println!("REST authentication is off (--rest-auth none): anyone who can reach the workers' ports can read and stop this cloud")
        }
    }
    run.status.update(|s| {
        s.phase = Phase::Formed;
        s.workers = gather
            .registrations()
            .into_iter()
            .map(|r| WorkerStatus { worker_id: r.worker_id, node: r.node.to_string(), pid: r.pid })
            .collect();
        s.leader = Some(leader.rest().to_string());
        s.rest_url = Some(options.rest_url(&leader));
    })?;
    // The tracking URL stays without the token: YARN shows it to every user of the cluster.
    launcher.formed(&options.rest_url(&leader)).await;
    if let Some(path) = &options.notify_opt {
        write_notify(path, &leader.rest().to_string(), options.notify_extra_opt.as_deref(), token_opt.as_deref())?;
    }

    if options.disown {
        let watching = tokio::select! {
            w = gather.wait_for_watchers(options.nodes, Duration::from_secs(10)) => w,
            stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
        };
        if !watching {
            return Err(DriverError::NotFormed {
                reason: "cannot disown: not every worker is watching the driver, so some would not learn that the driver left on purpose"
                    .into(),
            });
        }
        // The import runs before the driver leaves: through the leader's REST API, as a user would.
        if let Some(path) = &options.import_opt {
            let import = crate::args::ImportArgs {
                cloud: options.rest_url(&leader),
                path: path.clone(),
                strict: options.strict,
                timeout: Duration::from_secs(3600),
                token: token_opt.clone(),
                tls_ca: match &options.internal_tls {
                    InternalTlsMode::UserCa { ca, .. } => Some(ca.clone()),
                    _ => None,
                },
            };
            tokio::select! {
                r = crate::frames::import_over_rest(import) => r?,
                stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
            }
        }
        gather.disown();
        // Give the watch streams a moment to carry the event before the process exits.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let auth = if token_opt.is_some() { "-H \"Authorization: Bearer $TOKEN\" " } else { "" };
        println!("Driver exits; the cloud keeps running. Stop it with: curl -X POST {auth}{}/3/Shutdown", options.rest_url(&leader));
        return Ok(Outcome::Disowned);
    }

    let (observer, frames) = tokio::select! {
        o = start_observer(options, secret, &peers) => o?,
        stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
    };
    run.status.update(|s| {
        s.phase = Phase::Watching;
        s.observer_rest_url = Some(options.rest_url(&observer.addr()));
    })?;
    if let Some(path) = &options.import_opt {
        let imported = tokio::select! {
            r = crate::frames::import_here(&frames, path, options.strict) => r,
            stop = interrupt.wait() => return Ok(Outcome::Interrupted(stop.signal)),
        };
        if let Err(e) = imported {
            if options.check {
                observer.shutdown_cloud("eddy-driver --check failed").await;
            }
            return Err(e);
        }
    }
    if options.check {
        return tokio::select! {
            r = check(&observer, leader) => r,
            stop = interrupt.wait() => Ok(Outcome::Interrupted(stop.signal)),
        };
    }
    println!("Watching the cloud; Ctrl-C or POST /3/Shutdown stops it.");
    watch(launcher, options, gather, gather_events, &observer, interrupt).await
}

fn node_of(gather: &Gather, worker_id: &str) -> Option<NodeAddr> {
    gather.registrations().into_iter().find(|r| r.worker_id == worker_id).map(|r| r.node)
}

fn print_progress(event: &GatherEvent, expected: usize) {
    match event {
        GatherEvent::Registered { registration, count } => {
            println!("  worker {} registered as {} ({count}/{expected})", registration.worker_id, registration.node)
        }
        GatherEvent::Formed { node } => tracing::debug!(%node, "worker reports the cloud formed"),
        GatherEvent::Exited { node, reason } => println!("  worker {node} is exiting: {reason}"),
    }
}

async fn start_observer(
    options: &CloudOptions,
    secret: &ClusterSecret,
    peers: &[NodeAddr],
) -> DriverResult<(NodeHandle, eddy_frame::FrameCloud)> {
    // After the workers, so the observer's REST port never takes a worker's.
    let listeners = bind::bind(options.driver_ip, options.worker_port, true).await?;
    let mut storage = eddy_frame::storage::StorageOptions::from_env(&options.env);
    if let Some(roots) = &options.import_roots_opt {
        storage.file_roots_opt = Some(eddy_frame::storage::parse_roots(roots));
    }
    storage.close_files_of_an_open_node(matches!(options.rest_auth, RestAuthMode::None), options.driver_ip);
    let mut frames_opt = None;
    let node = NodeHandle::start_with(
        listeners.addr,
        Some(listeners.rest),
        None,
        NodeOptions {
            role: Role::Client,
            cloud_name: options.cloud_name.clone(),
            secret: secret.clone(),
            heartbeat_interval: options.heartbeat_interval,
            heartbeat_timeout: options.heartbeat_timeout,
            memory_budget: 0,
            rest_auth: options.rest_auth.clone(),
            internal_tls: InternalTls::for_mode(&options.internal_tls, secret, &[listeners.addr.ip.to_string()])?,
            rest_tls: options.rest_tls_config_opt.clone(),
        },
        |n| {
            // The observer holds no data: a budget of zero.
            let frames = eddy_frame::FrameCloud::new(n, 0, storage);
            let ext = frames.extensions();
            frames_opt = Some(frames);
            ext
        },
    );
    let Some(frames) = frames_opt else {
        return Err(DriverError::InvalidArgument { reason: "the observer's frame service did not start".into() });
    };
    node.add_peers(peers);
    if let Err(e) = node.wait_formed(options.timeout).await {
        return Err(DriverError::NotFormed { reason: format!("the driver could not join the cloud as an observer: {e}") });
    }
    println!("Observer client: {}/3/Cloud", options.rest_url(&listeners.addr));
    Ok((node, frames))
}

async fn check(observer: &NodeHandle, leader: NodeAddr) -> DriverResult<Outcome> {
    let view = observer.view();
    println!("{:<22} {:>7} {:>8} {:>5} {:>10}  healthy", "node", "pid", "cpus", "load", "max_mem");
    for m in &view.members {
        let s = m.stats.clone().unwrap_or_default();
        println!(
            "{:<22} {:>7} {:>8} {:>5.2} {:>9}M  {}",
            m.addr.to_string(),
            s.pid,
            s.cpus_allowed,
            s.sys_load,
            s.max_mem >> 20,
            m.healthy
        );
    }
    let results = observer.network_test().await?;
    println!("Network test from the observer (median of 5 round trips):");
    for r in results {
        println!("  {:<22} {:>8} B  {:>7} us  {:>8.1} MB/s", r.node, r.bytes, r.median_micros, r.mb_per_sec);
    }
    println!("Check passed; stopping the cloud (leader was {leader}).");
    observer.shutdown_cloud("eddy-driver --check finished").await;
    Ok(Outcome::Stopped)
}

async fn watch(
    launcher: &mut dyn WorkerLauncher,
    options: &CloudOptions,
    gather: &Gather,
    gather_events: &mut tokio::sync::mpsc::UnboundedReceiver<GatherEvent>,
    observer: &NodeHandle,
    interrupt: &Interrupt,
) -> DriverResult<Outcome> {
    let mut membership_events = observer.subscribe_events();
    let mut ended: BTreeSet<String> = BTreeSet::new();
    // Only a cloud-wide shutdown makes worker exits expected; one worker leaving on its own
    // (a signal, preemption) is a lost worker like any other.
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            Some(event) = gather_events.recv() => {
                if let GatherEvent::Exited { reason, .. } = &event {
                    if reason.starts_with("shutdown requested") {
                        stopping = true;
                    }
                }
                print_progress(&event, options.nodes);
            }
            exit = launcher.next_exit() => {
                ended.insert(exit.worker_id.clone());
                let node = node_of(gather, &exit.worker_id);
                if !(stopping && exit.success) {
                    let msg = died_message(&exit, node);
                    println!("Worker lost: {msg}");
                    if !options.keep_going && !stopping {
                        observer.shutdown_cloud("a worker died").await;
                        return Err(DriverError::WorkerLost { reason: format!("{msg}\nthe cloud was stopped (use --keep-going to keep it running)") });
                    }
                }
                if ended.len() == options.nodes {
                    println!("Every worker has exited.");
                    return Ok(Outcome::Stopped);
                }
            }
            event = membership_events.recv() => match event {
                Ok(Event::Unhealthy { node, silent_for }) if !stopping => {
                    let msg = format!("worker {node} missed heartbeats for {:.1} s; the cloud is unhealthy", silent_for.as_secs_f64());
                    println!("{msg}");
                    if !options.keep_going {
                        observer.shutdown_cloud("a worker went silent").await;
                        return Err(DriverError::WorkerLost { reason: format!("{msg}\nthe cloud was stopped (use --keep-going to keep it running)") });
                    }
                }
                Ok(Event::Replaced { node }) if !stopping => {
                    let msg = format!("worker {node} was restarted: a new process answers at its address, and the old one's data is gone; the cloud is unhealthy");
                    println!("{msg}");
                    if !options.keep_going {
                        observer.shutdown_cloud("a worker was replaced").await;
                        return Err(DriverError::WorkerLost { reason: format!("{msg}\nthe cloud was stopped (use --keep-going to keep it running)") });
                    }
                }
                Ok(Event::Recovered { node }) => println!("worker {node} is heard from again"),
                Err(broadcast::error::RecvError::Closed) => {}
                _ => {}
            },
            reason = observer.stopped() => {
                if let StopReason::Shutdown { .. } = reason {
                    println!("Shutdown requested ({reason}); waiting for the workers to exit.");
                }
                if wait_for_exits(launcher, &mut ended, options.nodes, Duration::from_secs(15)).await {
                    println!("Every worker has exited.");
                }
                return Ok(Outcome::Stopped);
            }
            stop = interrupt.wait() => {
                let why = stop.why;
                println!("Driver {why}: stopping the cloud.");
                gather.tell_workers_exit(&format!("the driver was {why}"));
                observer.shutdown_cloud(&format!("the driver was {why}")).await;
                if wait_for_exits(launcher, &mut ended, options.nodes, Duration::from_secs(15)).await {
                    println!("Every worker has exited.");
                }
                return Ok(Outcome::Signalled(stop.signal));
            }
        }
    }
}

async fn wait_for_exits(launcher: &mut dyn WorkerLauncher, ended: &mut BTreeSet<String>, n: usize, within: Duration) -> bool {
    if !launcher.sees_exits() {
        // Workers started elsewhere: their exits cannot be seen, only their goodbyes.
        return false;
    }
    let deadline = tokio::time::Instant::now() + within;
    while ended.len() < n {
        match tokio::time::timeout_at(deadline, launcher.next_exit()).await {
            Ok(exit) => {
                ended.insert(exit.worker_id);
            }
            Err(_) => return false,
        }
    }
    true
}
