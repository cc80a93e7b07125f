//! `--status-file`: where the driver stands, as one JSON document replaced whole at every
//! step, for programs that start the driver (the Spark integration) instead of the lines it
//! prints for people. It holds no secret and no token (those stay in `--notify`).

use std::path::PathBuf;

use serde::Serialize;

use crate::{DriverError, DriverResult};

/// The driver's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The gather service listens; workers are being started and register.
    Gathering,
    /// Every worker reported the same cloud.
    Formed,
    /// The driver joined as an observer client and watches the cloud.
    Watching,
    /// The cloud was stopped (on purpose or after a signal).
    Stopped,
    /// The driver left the cloud running.
    Disowned,
    /// Something failed; see `error`.
    Failed,
}

/// A worker as the gather service saw it register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// The launcher-given id.
    pub worker_id: String,
    /// Its `ip:port` (REST; the internal port is one above).
    pub node: String,
    /// Its process id on its host.
    pub pid: u32,
}

/// The document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Where the driver stands.
    pub phase: Phase,
    /// The cloud's name.
    pub cloud_name: String,
    /// The gather service's `ip:port`.
    pub gather: Option<String>,
    /// Registered workers, by id (a worker started again in place of a lost one replaces
    /// the lost one's entry).
    pub workers: Vec<WorkerStatus>,
    /// Ids of lost workers the driver waits to see started again. Launchers outside the
    /// driver (the Spark integration) read this to know what to start, and where.
    pub replacing: Vec<String>,
    /// The leader's `ip:port`, once formed.
    pub leader: Option<String>,
    /// The leader's REST URL, once formed.
    pub rest_url: Option<String>,
    /// The observer client's REST URL, once it joined.
    pub observer_rest_url: Option<String>,
    /// Why the driver failed.
    pub error: Option<String>,
}

/// The status and the file it goes to (none: nothing is written).
#[derive(Debug)]
pub struct StatusFile {
    path_opt: Option<PathBuf>,
    status: Status,
}

impl StatusFile {
    /// Nothing written until the first [`StatusFile::update`].
    pub fn new(path_opt: Option<PathBuf>, cloud_name: &str) -> Self {
        let status = Status {
            phase: Phase::Gathering,
            cloud_name: cloud_name.to_string(),
            gather: None,
            workers: Vec::new(),
            replacing: Vec::new(),
            leader: None,
            rest_url: None,
            observer_rest_url: None,
            error: None,
        };
        Self { path_opt, status }
    }

    /// Changes the status and writes it whole (to a side file, then renamed over the old one,
    /// so a reader never sees half a document).
    pub fn update(&mut self, change: impl FnOnce(&mut Status)) -> DriverResult<()> {
        change(&mut self.status);
        let Some(path) = &self.path_opt else { return Ok(()) };
        let text = serde_json::to_string_pretty(&self.status).unwrap_or_default() + "\n";
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|source| DriverError::Io { what: format!("cannot write --status-file {}", path.display()), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_with_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut file = StatusFile::new(Some(path.clone()), "c");
        file.update(|s| s.gather = Some("127.0.0.1:5".into())).unwrap();
        let first: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!((first["phase"].as_str(), first["gather"].as_str()), (Some("gathering"), Some("127.0.0.1:5")));
        file.update(|s| {
            s.phase = Phase::Formed;
            s.workers.push(WorkerStatus { worker_id: "0".into(), node: "127.0.0.1:54321".into(), pid: 7 });
        })
        .unwrap();
        let second: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(second["phase"], "formed");
        assert_eq!(second["workers"][0]["node"], "127.0.0.1:54321");
        assert!(!path.with_extension("partial").exists());
    }
}
