//! Hadoop IPC as it is on the wire, written from Hadoop's protocol definitions.
//!
//! - [`proto`]: our own subset of Hadoop's `.proto` files (same names and field numbers).
//! - [`wire`]: the connection preamble and the length-prefixed frames both sides use.
//! - [`server`]: an IPC server that dispatches calls to an [`server::RpcHandler`]; the
//!   protocol-level test NameNode (and later ResourceManager) are handlers on top of it.
//! - [`client`]: a small IPC client (SIMPLE, TOKEN or KERBEROS authentication) for the calls Eddy makes itself.
//! - [`credentials`]: Hadoop's token storage file (`HADOOP_TOKEN_FILE_LOCATION`).
//! - [`sasl`]: DIGEST-MD5, the SASL mechanism of Hadoop's TOKEN authentication.
//! - [`gssapi`]: Kerberos through MIT's GSS-API library, for KERBEROS authentication.
//! - [`yarn_ids`]: YARN's application, attempt and container ids as text.
//! - [`protocols`]: the Java protocol names servers dispatch on.

pub mod client;
pub mod credentials;
mod error;
pub mod gssapi;
pub mod protection;
pub mod protocols;
pub mod sasl;
pub mod server;
pub mod wire;
pub mod yarn_ids;

pub use error::{IpcError, IpcResult};

/// Generated code for Hadoop's protobuf messages.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    /// `hadoop.common`: the IPC envelope (headers, SASL, connection context, tokens).
    pub mod common {
        include!(concat!(env!("OUT_DIR"), "/hadoop.common.rs"));
    }
    /// `hadoop.hdfs`: NameNode and DataNode messages.
    pub mod hdfs {
        include!(concat!(env!("OUT_DIR"), "/hadoop.hdfs.rs"));
    }
    /// `hadoop.yarn`: ResourceManager, ApplicationMaster and NodeManager messages.
    pub mod yarn {
        include!(concat!(env!("OUT_DIR"), "/hadoop.yarn.rs"));
    }
}
