//! The seam through which an Eddy node learns its peers (H2O calls it
//! `AbstractEmbeddedH2OConfig`), and the driver-side gather service behind the callback mode.
//!
//! A worker binds its ports, then asks its [`EmbeddedConfig`] for the peer list, reports when
//! the cloud formed, and waits to be told to exit. Implementations:
//! - [`DriverCallback`]: registers with the driver's gather service over gRPC (YARN, Spark, local).
//! - [`Flatfile`]: a file of `ip:port` lines (standalone hosts, H2O's `-flatfile`).
//! - [`KubernetesDns`]: the A records of a headless service.
//! - [`SingleNode`]: a cloud of one.

mod driver_callback;
mod error;
mod flatfile;
pub mod gather;
mod kubernetes;

use std::fmt;
use std::net::SocketAddr;

use async_trait::async_trait;
use eddy_common::NodeAddr;

pub use driver_callback::{DriverCallback, DriverCallbackOptions};
pub use error::{EmbeddedConfigError, EmbeddedConfigResult};
pub use flatfile::{parse_flatfile, Flatfile, FlatfileEntry};
pub use kubernetes::{KubernetesDns, KubernetesDnsOptions, DEFAULT_LOOKUP_TIMEOUT};

/// What a worker tells its environment about itself once its ports are bound.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The bound, advertised address.
    pub addr: NodeAddr,
    /// Launcher-given identity (YARN container id, Spark executor id, local index).
    pub worker_id: String,
    /// Resource facts.
    pub stats: eddy_proto::v1::NodeStats,
}

/// Why the environment wants the node to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitRequest {
    /// Told to exit on purpose (shutdown, Ctrl-C at the driver).
    Exit {
        /// The reason given.
        reason: String,
    },
    /// The controlling process vanished; exiting avoids orphans.
    ControllerLost {
        /// What was observed.
        reason: String,
    },
}

/// How a node learns its peers, reports formation, and is told to exit.
#[async_trait]
pub trait EmbeddedConfig: Send + Sync + fmt::Debug {
    /// A short name for logs and errors ("driver callback", "flatfile", ...).
    fn mode(&self) -> &'static str;

    /// Where traffic to the cloud goes (driver or first peer), for choosing the local address.
    fn route_target(&self) -> Option<SocketAddr>;

    /// Whether the node may move to another port when its port is taken. True where the
    /// peers learn the real port from us (the driver), false where they read it elsewhere.
    fn allows_port_search(&self) -> bool;

    /// Announces this node and returns the sorted, de-duplicated peer list (this node included).
    async fn announce(&self, me: &Announcement) -> EmbeddedConfigResult<Vec<NodeAddr>>;

    /// Reports that the cloud formed.
    async fn cloud_formed(&self, me: NodeAddr, size: usize, leader: NodeAddr) -> EmbeddedConfigResult<()>;

    /// Resolves when the environment tells this node to exit; pending forever where nothing
    /// outside the cloud controls it.
    async fn exit_requested(&self, me: NodeAddr) -> ExitRequest;

    /// Tells the environment this node is exiting, and why (best effort, bounded in time).
    async fn report_exit(&self, me: NodeAddr, reason: &str);
}

/// A cloud of one: no discovery at all.
#[derive(Debug, Default, Clone)]
pub struct SingleNode;

#[async_trait]
impl EmbeddedConfig for SingleNode {
    fn mode(&self) -> &'static str {
        "single node"
    }

    fn route_target(&self) -> Option<SocketAddr> {
        None
    }

    fn allows_port_search(&self) -> bool {
        true
    }

    async fn announce(&self, me: &Announcement) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        Ok(vec![me.addr])
    }

    async fn cloud_formed(&self, _me: NodeAddr, _size: usize, _leader: NodeAddr) -> EmbeddedConfigResult<()> {
        Ok(())
    }

    async fn exit_requested(&self, _me: NodeAddr) -> ExitRequest {
        std::future::pending().await
    }

    async fn report_exit(&self, _me: NodeAddr, _reason: &str) {}
}

/// Sorts and de-duplicates a peer list, making sure `me` is in it.
pub(crate) fn normalize_peers(mut peers: Vec<NodeAddr>, me: NodeAddr) -> Vec<NodeAddr> {
    peers.push(me);
    peers.sort();
    peers.dedup();
    peers
}
