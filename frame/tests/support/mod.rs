//! An in-process cloud on 127.0.0.1 for the frame tests.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use eddy_common::{ClusterSecret, NodeAddr};
use eddy_frame::storage::StorageOptions;
use eddy_frame::FrameCloud;
use eddy_node::bind::bind;
use eddy_node::{NodeHandle, NodeOptions, Role};

/// Workers of one cloud, with their frame layers.
pub struct Cloud {
    pub nodes: Vec<NodeHandle>,
    pub frames: Vec<FrameCloud>,
    pub secret: ClusterSecret,
}

pub async fn cloud(n: usize, budget: u64) -> Cloud {
    let secret = ClusterSecret::generate().unwrap();
    let mut bound = Vec::new();
    for _ in 0..n {
        bound.push(bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, false).await.unwrap());
    }
    let peers: Vec<NodeAddr> = bound.iter().map(|l| l.addr).collect();
    let (mut nodes, mut frames) = (Vec::new(), Vec::new());
    for l in bound {
        let mut slot = None;
        let node = NodeHandle::start_with(l.addr, Some(l.rest), Some(l.grpc), NodeOptions::for_test(Role::Worker, secret.clone()), |h| {
            let f = FrameCloud::new(h, budget, StorageOptions::default());
            let ext = f.extensions();
            slot = Some(f);
            ext
        });
        node.add_peers(&peers);
        nodes.push(node);
        frames.push(slot.unwrap());
    }
    for n in &nodes {
        n.wait_formed(Duration::from_secs(20)).await.unwrap();
        // Stats with the memory budget arrive with the first heartbeats.
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Cloud { nodes, frames, secret }
}

/// Starts an import on `frames` and waits (at most 60 s) for its job to end.
pub async fn run(frames: &FrameCloud, request: eddy_frame::ImportRequest) -> eddy_frame::meta::JobState {
    let key = frames.start_import(request);
    for _ in 0..1200 {
        let job = frames.job(&key).unwrap();
        if job.status != eddy_frame::meta::JobStatus::Running {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import did not finish in 60 s");
}
