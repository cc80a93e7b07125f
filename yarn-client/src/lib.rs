//! YARN without a JVM, the parts `eddy-driver yarn` builds on:
//!
//! - [`conf::HadoopConf`]: `core-site.xml` and `yarn-site.xml` from `HADOOP_CONF_DIR` /
//!   `YARN_CONF_DIR`, with Hadoop's defaults for the ResourceManager address.
//! - [`rm::ResourceManager`]: `ApplicationClientProtocol` (new application, submit, report,
//!   kill, cluster metrics, queue, delegation tokens) over Hadoop IPC with SIMPLE, Kerberos or
//!   delegation-token authentication.
//! - [`tokens`]: the HDFS delegation token a Kerberized application's containers carry.
//! - [`am::ApplicationMaster`]: `ApplicationMasterProtocol` (register, allocate, finish) with the
//!   AMRMToken, and [`am::NodeManager`]: `ContainerManagementProtocol` with NMTokens.

pub mod am;
pub mod conf;
mod error;
pub mod rm;
pub mod tokens;

pub use error::{YarnError, YarnResult};

/// The alias under which the launcher puts the cluster secret into a container's token file
/// (`HADOOP_TOKEN_FILE_LOCATION`), so that it is neither on a command line nor in the
/// environment the NodeManager shows.
pub const CLUSTER_SECRET_ALIAS: &str = "eddy.cluster.secret";

/// Parses `application_<cluster timestamp>_<id>`.
pub fn parse_application_id(text: &str) -> Option<eddy_hadoop_ipc::proto::yarn::ApplicationIdProto> {
    let mut parts = text.trim().strip_prefix("application_")?.split('_');
    let ts = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(eddy_hadoop_ipc::proto::yarn::ApplicationIdProto { id: Some(id), cluster_timestamp: Some(ts) })
}
