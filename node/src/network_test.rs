//! `GET /3/NetworkTest` and the driver's `--check`: gRPC round trips to every member.

use std::time::{Duration, Instant};

use eddy_common::NodeAddr;
use eddy_proto::v1::PingRequest;

use crate::{NodeError, NodeHandle, NodeResult};

/// Round-trip figures of [`NodeHandle::network_test`] for one peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetworkTestResult {
    /// The peer.
    pub node: String,
    /// Payload size in bytes.
    pub bytes: usize,
    /// Median round trip in microseconds.
    pub median_micros: u64,
    /// Throughput implied by the median, both directions counted, in MB/s.
    pub mb_per_sec: f64,
}

impl NodeHandle {
    /// Measures round trips from this node to every other member: a task on the whole
    /// cloud, so it counts as work and locks the cloud.
    pub async fn network_test(&self) -> NodeResult<Vec<NetworkTestResult>> {
        let view = self.require_healthy()?;
        self.lock("first work: network test");
        // The members, not every address heartbeated (peers left out are heartbeated too).
        let targets: Vec<NodeAddr> = view.members.iter().map(|m| m.addr).filter(|a| *a != view.me).collect();
        let mut out = Vec::new();
        for t in targets {
            for bytes in [1usize, 1 << 10, 1 << 20] {
                let mut client =
                    self.inner.pool.get(t).map_err(|s| NodeError::Unavailable { node: t.to_string(), reason: s.message().to_string() })?;
                let mut samples = Vec::with_capacity(5);
                for _ in 0..5 {
                    let req = PingRequest { payload: vec![0u8; bytes] };
                    let t0 = Instant::now();
                    tokio::time::timeout(Duration::from_secs(10), client.ping(req))
                        .await
                        .map_err(|_| NodeError::Unavailable { node: t.to_string(), reason: "ping timed out".into() })?
                        .map_err(|s| NodeError::Unavailable { node: t.to_string(), reason: s.message().to_string() })?;
                    samples.push(t0.elapsed());
                }
                samples.sort();
                let median = samples[samples.len() / 2];
                let secs = median.as_secs_f64().max(1e-9);
                out.push(NetworkTestResult {
                    node: t.to_string(),
                    bytes,
                    median_micros: median.as_micros() as u64,
                    mb_per_sec: (2 * bytes) as f64 / secs / 1e6,
                });
            }
        }
        Ok(out)
    }
}
