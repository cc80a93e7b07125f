//! In-process test clouds: N worker nodes as tokio tasks in one process on 127.0.0.1, with
//! listeners pre-bound on port 0. Enabled by the `testsuite` feature.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use eddy_common::{ClusterSecret, NodeAddr};

use crate::bind::bind;
use crate::{NodeError, NodeHandle, NodeOptions, NodeResult, Role};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A cloud of in-process nodes.
#[derive(Debug)]
pub struct TestCloud {
    /// The nodes, in start order.
    pub nodes: Vec<NodeHandle>,
    /// The shared secret.
    pub secret: ClusterSecret,
}

impl TestCloud {
    /// The REST access token of the cloud's nodes (named "test", as `NodeOptions::for_test`).
    pub fn rest_token(&self) -> String {
        self.secret.rest_token("test")
    }

    /// Starts `n` workers that know each other, and waits until they formed.
    pub async fn start(n: usize) -> NodeResult<Self> {
        let secret = ClusterSecret::generate()?;
        let cloud = Self::start_with(n, secret, |_| {}).await?;
        for node in &cloud.nodes {
            node.wait_formed(Duration::from_secs(20)).await?;
        }
        Ok(cloud)
    }

    /// Starts `n` workers with adjusted options, without waiting for formation.
    pub async fn start_with(n: usize, secret: ClusterSecret, adjust: impl Fn(&mut NodeOptions)) -> NodeResult<Self> {
        let mut bound = Vec::with_capacity(n);
        for _ in 0..n {
            bound.push(bind(LOCALHOST, 0, false).await?);
        }
        let peers: Vec<NodeAddr> = bound.iter().map(|l| l.addr).collect();
        let mut nodes = Vec::with_capacity(n);
        for l in bound {
            let mut options = NodeOptions::for_test(Role::Worker, secret.clone());
            adjust(&mut options);
            let node = NodeHandle::start(l.addr, Some(l.rest), Some(l.grpc), options);
            node.add_peers(&peers);
            nodes.push(node);
        }
        Ok(Self { nodes, secret })
    }

    /// Starts one more worker that knows the current nodes (a late joiner).
    pub async fn start_joiner(&self, secret: ClusterSecret) -> NodeResult<NodeHandle> {
        let l = bind(LOCALHOST, 0, false).await?;
        let node = NodeHandle::start(l.addr, Some(l.rest), Some(l.grpc), NodeOptions::for_test(Role::Worker, secret));
        let peers: Vec<NodeAddr> = self.nodes.iter().map(NodeHandle::addr).collect();
        node.add_peers(&peers);
        Ok(node)
    }

    /// Starts an observer client of this cloud.
    pub async fn start_client(&self) -> NodeResult<NodeHandle> {
        let l = bind(LOCALHOST, 0, false).await?;
        let node = NodeHandle::start(l.addr, Some(l.rest), None, NodeOptions::for_test(Role::Client, self.secret.clone()));
        let peers: Vec<NodeAddr> = self.nodes.iter().map(NodeHandle::addr).collect();
        node.add_peers(&peers);
        Ok(node)
    }
}

/// Polls `predicate` every 50 ms until it holds or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut predicate: impl FnMut() -> bool) -> NodeResult<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if predicate() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(NodeError::Server { what: "test wait", reason: format!("{what} did not happen within {timeout:?}") })
}
