//! YARN without a JVM, the parts `eddy-driver yarn` builds on:
//!
//! - [`conf::HadoopConf`]: `core-site.xml` and `yarn-site.xml` from `HADOOP_CONF_DIR` /
//!   `YARN_CONF_DIR`, with Hadoop's defaults for the ResourceManager address.
//! - [`rm::ResourceManager`]: `ApplicationClientProtocol` (new application, submit, report,
//!   kill, cluster metrics, queue) over Hadoop IPC with SIMPLE authentication.
//! - [`am::ApplicationMaster`]: `ApplicationMasterProtocol` (register, allocate, finish) with the
//!   AMRMToken, and [`am::NodeManager`]: `ContainerManagementProtocol` with NMTokens.

pub mod am;
pub mod conf;
mod error;
pub mod rm;

pub use error::{YarnError, YarnResult};
