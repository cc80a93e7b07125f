//! `GET /metrics`: the node in the Prometheus/OpenMetrics text format, through the
//! `prometheus-client` crate. Counters live as long as the node (REST requests and their
//! latency, heartbeats); gauges are read from the node's state when scraped, so they cannot
//! go stale. Layers above the node (frames, jobs) add theirs through [`MetricsSource`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::NodeHandle;

/// Labels of a REST request: method, route (the pattern, not the path: bounded), status.
type RestLabels = Vec<(String, String)>;

/// Something that adds metrics to every scrape.
pub trait MetricsSource: Send + Sync {
    /// Registers its metrics (with their current values) in `registry`.
    fn register(&self, registry: &mut Registry);
}

/// The node's own counters.
#[derive(Clone)]
pub struct NodeMetrics {
    rest_requests: Family<RestLabels, Counter>,
    rest_seconds: Family<RestLabels, Histogram>,
    heartbeats_received: Counter,
    heartbeats_sent: Counter,
    heartbeats_failed: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self {
            rest_requests: Family::default(),
            // 100 µs to ~26 s.
            rest_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 4.0, 10))),
            heartbeats_received: Counter::default(),
            heartbeats_sent: Counter::default(),
            heartbeats_failed: Counter::default(),
        }
    }
}

impl NodeMetrics {
    /// A heartbeat from a peer arrived.
    pub fn heartbeat_received(&self) {
        self.heartbeats_received.inc();
    }

    /// A heartbeat to a peer was answered (`ok`) or not.
    pub fn heartbeat_sent(&self, ok: bool) {
        if ok {
            self.heartbeats_sent.inc();
        } else {
            self.heartbeats_failed.inc();
        }
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn gauge_in(registry: &mut Registry, name: &str, help: &str, unit: Unit, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register_with_unit(name, help, unit, g);
}

/// The text of one scrape.
pub fn render(node: &NodeHandle) -> String {
    let mut registry = Registry::with_prefix("eddy");
    let view = node.view();
    let m = &node.inner.metrics;
    gauge(&mut registry, "cloud_size", "Members of the cloud this node sees (observers not counted)", view.members.len() as i64);
    gauge(&mut registry, "cloud_healthy", "1 when every member was heard from within the heartbeat timeout", i64::from(view.healthy));
    gauge(
        &mut registry,
        "cloud_unhealthy_nodes",
        "Members not heard from within the heartbeat timeout",
        view.members.iter().filter(|m| !m.healthy).count() as i64,
    );
    gauge(&mut registry, "cloud_consensus", "1 when every member agrees on the member list", i64::from(view.consensus));
    gauge(&mut registry, "cloud_locked", "1 once the cloud did its first work and takes no newcomers", i64::from(view.locked.is_some()));
    gauge(&mut registry, "node_is_leader", "1 on the cloud's leader", i64::from(view.leader == Some(node.addr())));
    gauge(&mut registry, "node_is_client", "1 on an observer client (holds no data)", i64::from(view.is_client));
    gauge_in(&mut registry, "node_uptime", "Time since this node started", Unit::Seconds, node.uptime().as_secs() as i64);
    gauge_in(
        &mut registry,
        "node_memory_budget",
        "Memory this node may use for data (--memory)",
        Unit::Bytes,
        i64::try_from(node.options().memory_budget).unwrap_or(i64::MAX),
    );
    gauge_in(
        &mut registry,
        "node_data",
        "Bytes of data this node holds",
        Unit::Bytes,
        i64::try_from(node.data_bytes()).unwrap_or(i64::MAX),
    );
    registry.register("heartbeats_received", "Heartbeats from peers", m.heartbeats_received.clone());
    registry.register("heartbeats_sent", "Heartbeats to peers that were answered", m.heartbeats_sent.clone());
    registry.register("heartbeats_failed", "Heartbeats to peers that failed or were refused", m.heartbeats_failed.clone());
    registry.register("rest_requests", "REST requests by method, route and status", m.rest_requests.clone());
    registry.register_with_unit(
        "rest_request_duration",
        "REST request latency by method, route and status",
        Unit::Seconds,
        m.rest_seconds.clone(),
    );
    for source in node.inner.metrics_sources.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        source.register(&mut registry);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

/// `GET /metrics`.
pub async fn scrape(State(node): State<NodeHandle>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], render(&node)).into_response()
}

/// Counts every REST request and its latency (the route pattern as label, so an id in a path
/// does not make a new series).
pub async fn count_requests(State(metrics): State<Arc<NodeMetrics>>, request: Request, next: Next) -> Response {
    // `/3/Jobs/:id`: braces in label values trip simple scrapers' parsers.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replace('{', ":").replace('}', ""))
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels =
        vec![("method".to_string(), method), ("route".to_string(), route), ("status".to_string(), response.status().as_u16().to_string())];
    metrics.rest_requests.get_or_create(&labels).inc();
    metrics.rest_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}
