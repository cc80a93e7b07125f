//! The driver's side of the callback protocol, the same for every launcher:
//! gather service up → launch N workers → every worker registered → peer list out →
//! every worker reports the same formed cloud → observe until shutdown or failure.

use std::net::SocketAddr;
use std::time::Duration;

use eddy_common::tls::{InternalTls, InternalTlsMode};
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_embedded_config::gather::{Gather, GatherEvent, GatherOptions};
use eddy_node::signal::Signal;

pub use crate::cloud_options::{CloudOptions, DEFAULT_NODES};
use crate::launcher::{WorkerExit, WorkerLauncher};
use crate::status::{Phase, StatusFile, WorkerStatus};
use crate::{DriverError, DriverResult};

mod interrupt;
mod observe;
mod replace;
mod tokens;

pub use tokens::TokenSource;

use interrupt::Interrupt;
use observe::{check, start_observer, watch};

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
        gather_addr,
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
    /// Where the gather service listens (workers started again register there).
    gather_addr: SocketAddr,
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
        s.workers = registered_workers(gather);
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
    let _refresher = options.token_source_opt.clone().map(|source| tokens::Refresher::start(source, frames.clone()));
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
    watch(launcher, run, gather_events, &observer).await
}

/// The registered workers as the status file lists them.
fn registered_workers(gather: &Gather) -> Vec<WorkerStatus> {
    gather.registrations().into_iter().map(|r| WorkerStatus { worker_id: r.worker_id, node: r.node.to_string(), pid: r.pid }).collect()
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
