//! The heartbeat loop: every interval (or at once when peers are added) each member is sent
//! this node's heartbeat; replies, refusals and untrusted certificates update the membership.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_common::NodeAddr;
use tonic::Code;

use crate::membership::{RefusalKind, REFUSAL_METADATA_KEY};
use crate::runtime::{Inner, StopReason};
use crate::NodeError;

async fn send_heartbeat(inner: Arc<Inner>, target: NodeAddr) {
    let hb = inner.my_heartbeat();
    let rpc_timeout = (inner.options.heartbeat_timeout / 2).max(Duration::from_millis(500));
    let result = match inner.pool.get(target) {
        Ok(mut client) => tokio::time::timeout(rpc_timeout, client.heartbeat(hb)).await,
        Err(status) => Ok(Err(status)),
    };
    inner.metrics.heartbeat_sent(matches!(result, Ok(Ok(_))));
    match result {
        Ok(Ok(reply)) => {
            // A refusal of the reply is already logged by apply_heartbeat.
            let _ = inner.apply_heartbeat(&reply.into_inner(), Instant::now());
        }
        Ok(Err(status)) if eddy_common::tls::is_untrusted_peer(&status) => {
            tracing::warn!(node = %inner.me, peer = %target, reason = %status.message(), "peer's TLS certificate is not of our CA");
            inner.membership().on_refused(target, RefusalKind::UntrustedPeer, eddy_common::tls::UNTRUSTED_PEER);
        }
        Ok(Err(status)) if matches!(status.code(), Code::FailedPrecondition | Code::Unauthenticated) => {
            tracing::warn!(node = %inner.me, peer = %target, reason = %status.message(), "peer refused our heartbeat");
            let kind = status
                .metadata()
                .get(REFUSAL_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(RefusalKind::from_code)
                .unwrap_or(RefusalKind::Unauthenticated);
            inner.membership().on_refused(target, kind, status.message());
        }
        Ok(Err(status)) => {
            let refused = connection_refused(&status);
            tracing::debug!(node = %inner.me, peer = %target, error = %status.message(), refused, "heartbeat failed");
            inner.membership().on_unreachable(target, refused, Instant::now());
        }
        Err(_) => {
            tracing::debug!(node = %inner.me, peer = %target, "heartbeat timed out");
            inner.membership().on_unreachable(target, false, Instant::now());
        }
    }
    inner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&target);
}

/// Whether the call failed because nothing listens at the peer's address (the host answered
/// the connection with a reset): the process is gone, which a timeout cannot tell.
fn connection_refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    // Bounded: error chains are short, and a cycle must not hang the heartbeat.
    for _ in 0..16 {
        let Some(e) = source else { return false };
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = e.source();
    }
    false
}

pub(crate) async fn heartbeat_loop(inner: Arc<Inner>) {
    let mut interval = tokio::time::interval(inner.options.heartbeat_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = inner.beat_now.notified() => {}
            _ = inner.stopped() => return,
        }
        inner.refresh_stats();
        let targets = inner.membership().targets();
        for target in targets {
            let fresh = inner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(target);
            // Skip a peer whose previous heartbeat is still in flight (a hung peer).
            if fresh {
                tokio::spawn(send_heartbeat(inner.clone(), target));
            }
        }
        inner.tick(Instant::now());
        let refusal = inner.membership().refused_by_locked_cloud();
        if let Some(message) = refusal {
            inner.stop(StopReason::Fatal(NodeError::JoinRefused { reason: message }.to_string()));
            return;
        }
    }
}
