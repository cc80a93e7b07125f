//! `--exit-with-pid`: the process a worker lives and ends with. A worker started from a Spark
//! executor runs in its own session (so that the executor's Python worker may end first), so
//! nothing else would stop it when the executor dies; its cloud then keeps a member that no
//! executor owns, and the replacement executor gets none.

use std::time::Duration;

use crate::{MapperError, MapperResult};

/// How often the owner is looked at: a loss is noticed within this, well under any heartbeat
/// timeout.
const POLL: Duration = Duration::from_millis(500);

/// A process, known by its id and its start time (so that a reused id is not taken for it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pid: u32,
    started: u64,
}

impl Owner {
    /// The running process `pid`.
    pub(crate) fn find(pid: u32) -> MapperResult<Self> {
        match start_time(pid) {
            Some(started) => Ok(Self { pid, started }),
            None => Err(MapperError::Config {
                reason: format!("--exit-with-pid {pid} (EDDY_EXIT_WITH_PID): no process {pid} is running; the worker would stop at once"),
            }),
        }
    }

    /// Resolves once the process has ended, with the reason a worker stops for.
    pub(crate) async fn ended(self) -> String {
        loop {
            tokio::time::sleep(POLL).await;
            if start_time(self.pid) != Some(self.started) {
                return format!("process {} that this worker ends with (--exit-with-pid) has ended", self.pid);
            }
        }
    }
}

/// The start time (clock ticks since boot) of a running process; `None` once it is gone or a
/// zombie.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field 3 is the state, field 22 the start time (fields[0] and fields[19] here).
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_and_a_missing_one_is_refused() {
        let me = Owner::find(std::process::id()).unwrap();
        assert_eq!(start_time(std::process::id()), Some(me.started));
        let err = Owner::find(u32::MAX - 1).unwrap_err().to_string();
        assert!(err.contains("no process"), "{err}");
    }

    #[tokio::test]
    async fn the_end_of_the_owner_is_noticed() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let owner = Owner::find(child.id()).unwrap();
        child.kill().unwrap();
        // Reaped, as the owner's parent would; a zombie counts as ended too.
        child.wait().unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(10), owner.ended()).await.expect("noticed within 10 s");
        assert!(reason.contains("has ended"), "{reason}");
    }
}
