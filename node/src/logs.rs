//! Every node's last log lines, gathered by the node a user asks (`GET /3/Logs`): each member
//! answers from its in-memory ring ([`crate::logging::recent_lines`]) over the internal
//! service, so the web UI shows all logs without the cluster manager's log store.

use std::time::Duration;

use eddy_proto::v1::LogTailRequest;
use futures::future::join_all;
use serde::Serialize;

use crate::NodeHandle;

/// Most lines one node returns.
pub const MAX_LINES: usize = crate::logging::KEPT_LINES;

/// One node's last log lines.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLog {
    /// `ip:port` of the node.
    pub node: String,
    /// `worker` or `observer`.
    pub role: &'static str,
    /// Oldest first.
    pub lines: Vec<String>,
    /// Why the lines could not be read, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NodeHandle {
    /// The last `lines` log lines of every member and observer client this node hears from.
    pub async fn cloud_logs(&self, lines: usize) -> Vec<NodeLog> {
        let lines = lines.min(MAX_LINES);
        let view = self.view();
        let me = self.addr();
        let workers = view.members.iter().map(|m| (m.addr, "worker"));
        let observers = view.clients.iter().map(|m| (m.addr, "observer"));
        let calls = workers.chain(observers).filter(|(a, _)| *a != me).map(|(peer, role)| async move {
            let asked = async {
                let mut client = self.inner.pool.get(peer).map_err(|s| s.message().to_string())?;
                let reply = client.log_tail(LogTailRequest { lines: lines as u32 }).await.map_err(|s| s.message().to_string())?;
                Ok::<_, String>(reply.into_inner().lines)
            };
            let (lines, error) = match tokio::time::timeout(Duration::from_secs(5), asked).await {
                Ok(Ok(lines)) => (lines, None),
                Ok(Err(e)) => (Vec::new(), Some(e)),
                Err(_) => (Vec::new(), Some("no answer within 5 s".to_string())),
            };
            NodeLog { node: peer.to_string(), role, lines, error }
        });
        let mut logs = join_all(calls).await;
        let mine = NodeLog {
            node: me.to_string(),
            role: if view.is_client { "observer" } else { "worker" },
            lines: crate::logging::recent_lines(lines),
            error: None,
        };
        logs.push(mine);
        // Workers first, then observers; by address within each.
        logs.sort_by(|a, b| (a.role != "worker", &a.node).cmp(&(b.role != "worker", &b.node)));
        logs
    }
}
