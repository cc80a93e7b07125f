//! The driver as an observer of the formed cloud: its own node that holds no data, the
//! `--check` report, and the watch until shutdown, a signal or a lost worker.

use std::collections::BTreeSet;
use std::time::Duration;

use eddy_common::tls::InternalTls;
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_embedded_config::gather::{Gather, GatherEvent};
use eddy_node::membership::Event;
use eddy_node::rest_auth::RestAuthMode;
use eddy_node::{bind, NodeHandle, NodeOptions, Role, StopReason};
use tokio::sync::broadcast;

use super::replace::Replacer;
use super::{died_message, node_of, print_progress, registered_workers, CloudOptions, Outcome, Run};
use crate::launcher::WorkerLauncher;
use crate::status::StatusFile;
use crate::{DriverError, DriverResult};

pub(super) async fn start_observer(
    options: &CloudOptions,
    secret: &ClusterSecret,
    peers: &[NodeAddr],
) -> DriverResult<(NodeHandle, eddy_frame::FrameCloud)> {
    // After the workers, so the observer's REST port never takes a worker's.
    let listeners = bind::bind(options.driver_ip, options.worker_port, true).await?;
    let mut storage = eddy_frame::storage::StorageOptions::from_env(&options.env.with(options.kerberos_env()));
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
            frames.set_replicas(options.replicas);
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

pub(super) async fn check(observer: &NodeHandle, leader: NodeAddr) -> DriverResult<Outcome> {
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

pub(super) async fn watch(
    launcher: &mut dyn WorkerLauncher,
    run: &mut Run<'_>,
    gather_events: &mut tokio::sync::mpsc::UnboundedReceiver<GatherEvent>,
    observer: &NodeHandle,
) -> DriverResult<Outcome> {
    let (options, gather, interrupt) = (run.options, run.gather, run.interrupt);
    let status = &mut run.status;
    let replacer = &mut Replacer::new(run.gather_addr, run.secret, options);
    let mut membership_events = observer.subscribe_events();
    let mut ended: BTreeSet<String> = BTreeSet::new();
    // Only a cloud-wide shutdown makes worker exits expected; one worker leaving on its own
    // (a signal, preemption) is a lost worker like any other.
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            Some(event) = gather_events.recv() => {
                match &event {
                    GatherEvent::Exited { reason, .. } if reason.starts_with("shutdown requested") => stopping = true,
                    // A worker started again in place of a lost one.
                    GatherEvent::Registered { registration, .. } => {
                        let id = registration.worker_id.clone();
                        status.update(|s| {
                            s.workers = registered_workers(gather);
                            s.replacing.retain(|r| *r != id);
                        })?;
                    }
                    _ => {}
                }
                print_progress(&event, options.nodes);
            }
            exit = launcher.next_exit() => {
                ended.insert(exit.worker_id.clone());
                let node = node_of(gather, &exit.worker_id);
                if !(stopping && exit.success) {
                    let msg = died_message(&exit, node);
                    println!("Worker lost: {msg}");
                    if options.fail_fast && !stopping {
                        return Err(stop_for_lost_worker(observer, "a worker died", msg).await);
                    }
                    if !stopping {
                        replacer.worker_ended(&exit.worker_id, node);
                        start_due(launcher, options, gather, replacer, status, &mut ended).await?;
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
                    if options.fail_fast {
                        return Err(stop_for_lost_worker(observer, "a worker went silent", msg).await);
                    }
                }
                Ok(Event::Lost { node, reason, generation }) if !stopping => {
                    let msg = format!("worker {node} was removed from the cloud: {reason}");
                    let left = observer.view().members.len();
                    println!("{msg}; the cloud carries on with {left} workers (membership generation {generation})");
                    if options.fail_fast {
                        return Err(stop_for_lost_worker(observer, "a worker was lost", msg).await);
                    }
                    replacer.member_removed(node);
                    // Workers started elsewhere end unseen: the removal is all there is to know.
                    if !launcher.sees_exits() {
                        if let Some(r) = gather.registrations().into_iter().find(|r| r.node == node) {
                            replacer.worker_ended(&r.worker_id, Some(node));
                        }
                    }
                    start_due(launcher, options, gather, replacer, status, &mut ended).await?;
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

/// Starts the lost workers that are due again, and lists them in the status file until they
/// register.
async fn start_due(
    launcher: &mut dyn WorkerLauncher,
    options: &CloudOptions,
    gather: &Gather,
    replacer: &mut Replacer,
    status: &mut StatusFile,
    ended: &mut BTreeSet<String>,
) -> DriverResult<()> {
    let started = replacer.start_due(launcher, options, gather).await;
    if started.is_empty() {
        return Ok(());
    }
    for id in &started {
        ended.remove(id);
    }
    status.update(|s| {
        for id in started {
            if !s.replacing.contains(&id) {
                s.replacing.push(id);
            }
        }
    })
}

/// `--fail-fast`: a lost worker stops the whole cloud.
async fn stop_for_lost_worker(observer: &NodeHandle, why: &str, msg: String) -> DriverError {
    observer.shutdown_cloud(why).await;
    DriverError::WorkerLost {
        reason: format!("{msg}\nthe cloud was stopped (--fail-fast; without it the cloud carries on without the worker)"),
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
