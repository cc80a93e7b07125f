//! YARN without a JVM, the parts `eddy-driver yarn` builds on:
//!
//! - [`conf::HadoopConf`]: `core-site.xml` and `yarn-site.xml` from `HADOOP_CONF_DIR` /
//!   `YARN_CONF_DIR`, with Hadoop's defaults for the ResourceManager address.
//! - [`rm::ResourceManager`]: `ApplicationClientProtocol` (new application, submit, report,
//!   kill, cluster metrics) over Hadoop IPC with SIMPLE authentication.

pub mod conf;
mod error;
pub mod rm;

pub use error::{YarnError, YarnResult};
