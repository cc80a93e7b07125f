//! Workers that someone else starts (Spark executors, through the Python integration): the
//! driver only gathers and watches them. It cannot see their processes, so a lost worker
//! shows as missed heartbeats or a refused address, not as an exit status; the driver then
//! lists its id under `replacing` in the status file, and their starter starts it again.

use std::time::Duration;

use async_trait::async_trait;

use super::{WorkerExit, WorkerLauncher, WorkerSpec};
use crate::DriverResult;

/// Expects workers started elsewhere.
#[derive(Debug, Default)]
pub struct ExternalLauncher;

#[async_trait]
impl WorkerLauncher for ExternalLauncher {
    fn name(&self) -> &'static str {
        "external"
    }

    fn sees_exits(&self) -> bool {
        false
    }

    fn replaces_lost_workers(&self) -> bool {
        true
    }

    async fn launch(&mut self, _id: &str, _spec: &WorkerSpec) -> DriverResult<()> {
        // Started by someone else: at the start, as they were told; later, as the status file says.
        Ok(())
    }

    async fn next_exit(&mut self) -> WorkerExit {
        std::future::pending().await
    }

    async fn stop(&mut self, _grace: Duration) -> Vec<WorkerExit> {
        // The workers were told to exit through their watch streams; nothing else to stop.
        Vec::new()
    }

    fn log_location(&self) -> String {
        "wherever their starter put them (the Spark integration: eddy-mapper-<n>.log in each executor's work directory)".into()
    }
}
