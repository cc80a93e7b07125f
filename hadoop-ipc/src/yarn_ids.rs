//! YARN's ids as YARN prints them, and its container exit statuses, for clients and test
//! servers alike.

use crate::proto::yarn::{ApplicationAttemptIdProto, ApplicationIdProto, ContainerIdProto};

/// `application_<cluster timestamp>_<id, 4 digits>`.
pub fn application_id_text(id: &ApplicationIdProto) -> String {
    format!("application_{}_{:04}", id.cluster_timestamp.unwrap_or(0), id.id.unwrap_or(0))
}

/// `appattempt_<ts>_<app>_<attempt, 6 digits>`, also the user name of an attempt's tokens.
pub fn attempt_id_text(a: &ApplicationAttemptIdProto) -> String {
    let app = a.application_id.unwrap_or_default();
    format!("appattempt_{}_{:04}_{:06}", app.cluster_timestamp.unwrap_or(0), app.id.unwrap_or(0), a.attempt_id.unwrap_or(0))
}

/// `container_<ts>_<app>_<attempt, 2 digits>_<n, 6 digits>`.
pub fn container_id_text(id: Option<&ContainerIdProto>) -> String {
    let Some(id) = id else { return "container_?".into() };
    let attempt = id.app_attempt_id.unwrap_or_default();
    let app = attempt.application_id.unwrap_or_default();
    format!(
        "container_{}_{:04}_{:02}_{:06}",
        app.cluster_timestamp.unwrap_or(0),
        app.id.unwrap_or(0),
        attempt.attempt_id.unwrap_or(0),
        id.id.unwrap_or(0)
    )
}

/// `ContainerExitStatus` (hadoop-yarn-api): what YARN reports for a container that ended.
pub mod exit_status {
    /// The process exited 0.
    pub const SUCCESS: i32 = 0;
    /// Never launched (localization or launch failed).
    pub const INVALID: i32 = -1000;
    /// Released by the master, or lost.
    pub const ABORTED: i32 = -100;
    /// The node's disks failed.
    pub const DISKS_FAILED: i32 = -101;
    /// Preempted by the scheduler.
    pub const PREEMPTED: i32 = -102;
    /// Over its virtual memory limit.
    pub const KILLED_EXCEEDED_VMEM: i32 = -103;
    /// Over its physical memory limit.
    pub const KILLED_EXCEEDED_PMEM: i32 = -104;
    /// Stopped by the ApplicationMaster.
    pub const KILLED_BY_APPMASTER: i32 = -105;
    /// Killed by the ResourceManager.
    pub const KILLED_BY_RESOURCEMANAGER: i32 = -106;
    /// Killed because the application ended.
    pub const KILLED_AFTER_APP_COMPLETION: i32 = -107;
    /// Killed by the NodeManager's container scheduler.
    pub const KILLED_BY_CONTAINER_SCHEDULER: i32 = -108;
}
