use std::net::SocketAddr;
use std::time::Duration;

/// Errors of the node runtime.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A port is taken.
    #[error("cannot listen on {addr}: {source}; pick another --port, or --port 0 for free ports")]
    PortInUse {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// No free port pair was found while searching.
    #[error("no free port pair found on {ip} in {first}..={last}; free some ports or pass --port 0")]
    NoFreePort {
        /// The IP.
        ip: std::net::IpAddr,
        /// First port tried.
        first: u16,
        /// Last port tried.
        last: u16,
    },
    /// A setting is unusable.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The setting.
        what: &'static str,
        /// Why and what to do.
        reason: String,
    },
    /// The cloud did not form in time.
    #[error("the cloud did not form within {}: {detail}", eddy_common::human_duration(*waited))]
    FormationTimeout {
        /// How long we waited.
        waited: Duration,
        /// Who was missing or refused us.
        detail: String,
    },
    /// A locked cloud refused to let this node in.
    #[error("{reason}")]
    JoinRefused {
        /// The cloud's words: who refused, and why.
        reason: String,
    },
    /// A node could not be reached.
    #[error("node {node} is unavailable: {reason}")]
    Unavailable {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The cloud is unhealthy, so work is refused.
    #[error("the cloud is unhealthy: lost {nodes}; work is refused until the cloud is restarted")]
    Unhealthy {
        /// The lost nodes.
        nodes: String,
    },
    /// A server failed.
    #[error("{what}: {reason}")]
    Server {
        /// Which server.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The shared vocabulary refused something.
    #[error(transparent)]
    Common(#[from] eddy_common::CommonError),
}

impl NodeError {
    /// Whether the same request may succeed if made again: a node that could not be reached.
    pub fn is_retryable(&self) -> bool {
        match self {
            NodeError::Unavailable { .. } => true,
            NodeError::Common(e) => e.is_retryable(),
            NodeError::PortInUse { .. }
            | NodeError::NoFreePort { .. }
            | NodeError::InvalidArgument { .. }
            | NodeError::FormationTimeout { .. }
            | NodeError::JoinRefused { .. }
            | NodeError::Unhealthy { .. }
            | NodeError::Server { .. } => false,
        }
    }
}

/// Result with [`NodeError`].
pub type NodeResult<T> = Result<T, NodeError>;
