//! The driver's own launchers: workers on this machine, on hosts over SSH, or started by
//! someone else (`attach`). The trait and the YARN containers are in `eddy_launch::launcher`.

mod external;
mod local;
mod ssh;

pub use eddy_launch::launcher::*;
pub use external::ExternalLauncher;
pub use local::LocalLauncher;
pub use ssh::SshLauncher;
