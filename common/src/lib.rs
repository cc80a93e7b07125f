//! Vocabulary shared by every Eddy crate.
//!
//! - [`NodeAddr`]: where a node listens (IP, REST port, internal gRPC port).
//! - [`ClusterSecret`] and [`auth`]: every node-to-node and worker-to-driver call carries an
//!   HMAC of the cluster secret; the secret itself never crosses the wire or the command line.
//! - [`keys`]: every `EDDY_*` environment variable, declared once.
//! - [`address`]: choosing the local address a node advertises.

pub mod address;
pub mod auth;
mod error;
pub mod keys;
mod node_addr;

pub use auth::ClusterSecret;
pub use error::{CommonError, CommonResult};
pub use node_addr::{members_hash, NodeAddr};

/// The Eddy version every node reports and compares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
