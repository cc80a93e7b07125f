//! The REST API (axum). Field names follow H2O's `CloudV3` so that existing scripts and
//! readiness checks keep working.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::membership::{CloudView, MemberView};
use crate::routes::Routes;
use crate::NodeHandle;

/// One node in `GET /3/Cloud`.
#[derive(Debug, Serialize)]
pub struct NodeV3 {
    /// `/ip:port`, H2O's node name.
    pub h2o: String,
    /// `ip:port`.
    pub ip_port: String,
    /// The internal gRPC port (frame service and Arrow Flight); an Eddy addition to H2O's shape.
    pub grpc_port: u16,
    /// Heard from within the heartbeat timeout.
    pub healthy: bool,
    /// Epoch millis of the last heartbeat from it.
    pub last_ping: u64,
    /// Process id.
    pub pid: u32,
    /// CPUs of the machine.
    pub num_cpus: u32,
    /// CPUs this process may use.
    pub cpus_allowed: u32,
    /// Worker threads.
    pub nthreads: u32,
    /// Memory budget in bytes.
    pub max_mem: u64,
    /// Budget not in use, in bytes.
    pub free_mem: u64,
    /// One-minute load average.
    pub sys_load: f32,
    /// Eddy version of the node.
    pub node_version: String,
    /// Host name.
    pub host: String,
    /// Why it refused this node's heartbeats, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_us: Option<String>,
}

/// `GET /3/Cloud`.
#[derive(Debug, Serialize)]
pub struct CloudV3 {
    /// Eddy version.
    pub version: String,
    /// Cloud name.
    pub cloud_name: String,
    /// Number of worker nodes (observer clients never count).
    pub cloud_size: usize,
    /// Milliseconds since this node started.
    pub cloud_uptime_millis: u64,
    /// Every member is healthy.
    pub cloud_healthy: bool,
    /// Number of unhealthy members.
    pub bad_nodes: usize,
    /// Every member agrees on the member list.
    pub consensus: bool,
    /// The cloud refuses newcomers.
    pub locked: bool,
    /// Why it locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_reason: Option<String>,
    /// This node is an observer client.
    pub is_client: bool,
    /// Index of the leader in `nodes` (-1 before consensus).
    pub leader_idx: i64,
    /// Index of this node in `nodes` (-1 for clients).
    pub node_idx: i64,
    /// Worker nodes, sorted.
    pub nodes: Vec<NodeV3>,
    /// Peers the cloud formed without (`ip_port` and why), never counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOutV3>,
    /// Members the cloud removed for good (`ip_port`, why, last heard), never counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_nodes: Vec<LostV3>,
    /// The membership generation: members removed so far (0 while the cloud is as it formed).
    pub generation: u64,
    /// Observer clients seen recently (listed apart, never counted).
    pub clients: Vec<NodeV3>,
}

/// A member the cloud removed.
#[derive(Debug, Serialize)]
pub struct LostV3 {
    /// `ip:port`.
    pub ip_port: String,
    /// Why it was removed.
    pub reason: String,
    /// Epoch millis when last heard from (0 = never).
    pub last_ping: u64,
}

fn node_v3(m: &MemberView) -> NodeV3 {
    let s = m.stats.clone().unwrap_or_default();
    NodeV3 {
        h2o: format!("/{}", m.addr),
        ip_port: m.addr.to_string(),
        grpc_port: m.addr.grpc_port,
        healthy: m.healthy,
        last_ping: m.last_ping_epoch_millis,
        pid: s.pid,
        num_cpus: s.num_cpus,
        cpus_allowed: s.cpus_allowed,
        nthreads: s.nthreads,
        max_mem: s.max_mem,
        free_mem: s.free_mem,
        sys_load: s.sys_load,
        node_version: s.version,
        host: s.host,
        refused_us: m.refused_us.clone(),
    }
}

/// A peer the cloud formed without.
#[derive(Debug, Serialize)]
pub struct LeftOutV3 {
    /// `ip:port`.
    pub ip_port: String,
    /// Why it was left out.
    pub reason: String,
}

/// Builds the H2O-shaped cloud description from a view.
pub fn cloud_v3(view: &CloudView, cloud_name: &str, uptime_millis: u64) -> CloudV3 {
    let leader_idx = match (view.consensus, view.leader) {
        (true, Some(l)) => view.members.iter().position(|m| m.addr == l).map_or(-1, |i| i as i64),
        _ => -1,
    };
    let node_idx = if view.is_client { -1 } else { view.members.iter().position(|m| m.addr == view.me).map_or(-1, |i| i as i64) };
    CloudV3 {
        version: eddy_common::VERSION.to_string(),
        cloud_name: cloud_name.to_string(),
        cloud_size: view.members.len(),
        cloud_uptime_millis: uptime_millis,
        cloud_healthy: view.healthy,
        bad_nodes: view.members.iter().filter(|m| !m.healthy).count(),
        consensus: view.consensus,
        locked: view.locked.is_some(),
        locked_reason: view.locked.clone(),
        is_client: view.is_client,
        leader_idx,
        node_idx,
        nodes: view.members.iter().map(node_v3).collect(),
        left_out: view.left_out.iter().map(|l| LeftOutV3 { ip_port: l.addr.to_string(), reason: l.reason.clone() }).collect(),
        lost_nodes: view
            .lost
            .iter()
            .map(|l| LostV3 { ip_port: l.addr.to_string(), reason: l.reason.clone(), last_ping: l.last_ping_epoch_millis })
            .collect(),
        generation: view.generation,
        clients: view.clients.iter().map(node_v3).collect(),
    }
}

/// The node's REST routes.
pub fn routes(node: NodeHandle) -> Routes {
    let stateful = |r: axum::routing::MethodRouter<NodeHandle>| r.with_state(node.clone());
    Routes::new()
        .route("/3/Cloud", stateful(get(cloud)), &[("GET", "the cloud: members, health, leader, lock (H2O's field names)")])
        .route("/Cloud.json", stateful(get(cloud)), &[("GET", "alias of /3/Cloud")])
        .route("/3/Shutdown", stateful(post(shutdown)), &[("POST", "stop every node of the cloud")])
        .route("/3/NetworkTest", stateful(get(network_test)), &[("GET", "round trips from this node to every other (locks the cloud)")])
        .route(
            "/3/Health",
            stateful(get(health)),
            &[("GET", "200 when the cloud is formed and healthy, else 503; needs no authentication")],
        )
        .route(
            "/metrics",
            stateful(get(crate::metrics::scrape)),
            &[("GET", "this node's metrics in the Prometheus/OpenMetrics text format (cloud, memory, heartbeats, REST, frames, jobs)")],
        )
        .route("/3/Logs", stateful(get(logs)), &[("GET", "the last log lines of every node (lines, default 200, at most 1000)")])
        .route("/kubernetes/isLeaderNode", stateful(get(is_leader)), &[("GET", "200 on the leader of a formed cloud, else 404 (text)")])
        .query("GET", "/3/Logs", &[("lines", "integer", "lines per node [default: 200, at most 1000]")])
}

/// Only the readiness probe, for the Kubernetes API port.
pub fn kubernetes_router(node: NodeHandle) -> Router {
    Router::new().route("/kubernetes/isLeaderNode", get(is_leader)).with_state(node)
}

async fn cloud(State(node): State<NodeHandle>) -> Json<CloudV3> {
    Json(cloud_v3(&node.view(), &node.options().cloud_name, node.uptime().as_millis() as u64))
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    lines: Option<usize>,
}

async fn logs(State(node): State<NodeHandle>, axum::extract::Query(q): axum::extract::Query<LogsQuery>) -> Json<serde_json::Value> {
    let logs = node.cloud_logs(q.lines.unwrap_or(200)).await;
    Json(serde_json::json!({ "nodes": logs }))
}

async fn health(State(node): State<NodeHandle>) -> Response {
    let view = node.view();
    let healthy = view.healthy;
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "cloud_healthy": healthy }))).into_response()
}

async fn is_leader(State(node): State<NodeHandle>) -> Response {
    if node.view().is_leader() {
        (StatusCode::OK, "leader\n").into_response()
    } else {
        (StatusCode::NOT_FOUND, "not the leader of a formed cloud\n").into_response()
    }
}

#[derive(Serialize)]
struct ShutdownV3 {
    /// H2O answers with the shutdown's "job"; we answer with who shut down and why.
    origin: String,
    reason: String,
}

async fn shutdown(State(node): State<NodeHandle>) -> Json<ShutdownV3> {
    let origin = node.addr().to_string();
    let reason = "POST /3/Shutdown".to_string();
    // Reply first, then stop: the caller should see the answer.
    let n = node.clone();
    let r = reason.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        n.shutdown_cloud(&r).await;
    });
    Json(ShutdownV3 { origin, reason })
}

#[derive(Serialize)]
struct ErrorV3 {
    error: String,
}

async fn network_test(State(node): State<NodeHandle>) -> Response {
    match node.network_test().await {
        Ok(results) => Json(serde_json::json!({ "from": node.addr().to_string(), "results": results })).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(ErrorV3 { error: e.to_string() })).into_response(),
    }
}
