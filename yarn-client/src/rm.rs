//! A ResourceManager client: YARN's `ApplicationClientProtocol` over Hadoop IPC.

use std::time::Duration;

use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::gssapi::Login;
use eddy_hadoop_ipc::proto::common::{GetDelegationTokenRequestProto, GetDelegationTokenResponseProto, TokenProto};
use eddy_hadoop_ipc::proto::yarn::*;

use crate::{YarnError, YarnResult};

use eddy_hadoop_ipc::protocols::APPLICATION_CLIENT as APPLICATION_CLIENT_PROTOCOL;

/// A new application's id and the largest container the cluster allows.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApplication {
    /// The id to submit with.
    pub id: ApplicationIdProto,
    /// Largest container memory, MiB.
    pub max_memory_mb: i64,
    /// Largest container vcores.
    pub max_vcores: i32,
}

pub use eddy_hadoop_ipc::yarn_ids::application_id_text;

/// A connection to one ResourceManager.
#[derive(Debug)]
pub struct ResourceManager {
    ipc: IpcClient,
}

/// How the client proves who it is to the ResourceManager.
#[derive(Debug, Clone)]
pub enum RmAuth {
    /// SIMPLE: the user's name, believed.
    Simple {
        /// The user.
        user: String,
    },
    /// Kerberos, with the credentials of the login.
    Kerberos(Login),
    /// A ResourceManager delegation token (what a disowned master in a container holds).
    Token(TokenProto),
}

impl ResourceManager {
    /// Connects to the first of `addresses` that answers, as `user` (SIMPLE).
    pub async fn connect(addresses: &[String], user: &str, timeout: Duration) -> YarnResult<Self> {
        Self::connect_with(addresses, &RmAuth::Simple { user: user.to_string() }, timeout).await
    }

    /// Connects to the first of `addresses` that answers, proving who we are with `auth`.
    pub async fn connect_with(addresses: &[String], auth: &RmAuth, timeout: Duration) -> YarnResult<Self> {
        let mut last = None;
        for addr in addresses {
            let connected = match auth {
                RmAuth::Simple { user } => IpcClient::connect(addr, APPLICATION_CLIENT_PROTOCOL, user, timeout).await,
                RmAuth::Kerberos(login) => IpcClient::connect_with_kerberos(addr, APPLICATION_CLIENT_PROTOCOL, login, timeout).await,
                RmAuth::Token(token) => IpcClient::connect_with_token(addr, APPLICATION_CLIENT_PROTOCOL, "", token, timeout).await,
            };
            match connected {
                Ok(ipc) => return Ok(Self { ipc }),
                Err(e) => {
                    tracing::debug!(addr, "ResourceManager not reachable: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.map(YarnError::from).unwrap_or(YarnError::NoConfDir))
    }

    /// The Kerberos principal this connection authenticated as, if Kerberos.
    pub fn principal(&self) -> Option<&str> {
        self.ipc.principal()
    }

    /// The address of the ResourceManager this client is connected to.
    pub fn addr(&self) -> &str {
        self.ipc.addr()
    }

    /// A ResourceManager delegation token that `renewer` may renew, its service this
    /// ResourceManager's address (for a master in a container, which has no Kerberos ticket).
    pub async fn delegation_token(&self, renewer: &str) -> YarnResult<TokenProto> {
        let request = GetDelegationTokenRequestProto { renewer: renewer.to_string() };
        let r: GetDelegationTokenResponseProto = self.ipc.call("getDelegationToken", &request).await?;
        let mut token = r.token.ok_or_else(|| incomplete("getDelegationToken", "token"))?;
        token.service = self.ipc.addr().to_string();
        Ok(token)
    }

    /// A new application id.
    pub async fn new_application(&self) -> YarnResult<NewApplication> {
        let r: GetNewApplicationResponseProto = self.ipc.call("getNewApplication", &GetNewApplicationRequestProto {}).await?;
        let id = r.application_id.ok_or_else(|| incomplete("getNewApplication", "application_id"))?;
        let max = r.maximum_capability.unwrap_or_default();
        Ok(NewApplication { id, max_memory_mb: max.memory.unwrap_or(0), max_vcores: max.virtual_cores.unwrap_or(0) })
    }

    /// Submits an application.
    pub async fn submit(&self, context: ApplicationSubmissionContextProto) -> YarnResult<()> {
        let request = SubmitApplicationRequestProto { application_submission_context: Some(context) };
        let _: SubmitApplicationResponseProto = self.ipc.call("submitApplication", &request).await?;
        Ok(())
    }

    /// The application's report.
    pub async fn report(&self, id: &ApplicationIdProto) -> YarnResult<ApplicationReportProto> {
        let request = GetApplicationReportRequestProto { application_id: Some(*id) };
        let r: GetApplicationReportResponseProto = self.ipc.call("getApplicationReport", &request).await?;
        r.application_report.ok_or_else(|| incomplete("getApplicationReport", "application_report"))
    }

    /// Kills the application; `true` once YARN says the kill completed.
    pub async fn kill(&self, id: &ApplicationIdProto, diagnostics: &str) -> YarnResult<bool> {
        let request = KillApplicationRequestProto { application_id: Some(*id), diagnostics: Some(diagnostics.to_string()) };
        let r: KillApplicationResponseProto = self.ipc.call("forceKillApplication", &request).await?;
        Ok(r.is_kill_completed.unwrap_or(false))
    }

    /// The queue's state and statistics (free and used memory and vcores, pending containers).
    pub async fn queue(&self, name: &str) -> YarnResult<QueueInfoProto> {
        let request = GetQueueInfoRequestProto { queue_name: Some(name.to_string()), ..Default::default() };
        let r: GetQueueInfoResponseProto = self.ipc.call("getQueueInfo", &request).await?;
        r.queue_info.ok_or_else(|| incomplete("getQueueInfo", "queueInfo"))
    }

    /// Number of NodeManagers in the cluster.
    pub async fn node_managers(&self) -> YarnResult<i32> {
        let r: GetClusterMetricsResponseProto = self.ipc.call("getClusterMetrics", &GetClusterMetricsRequestProto {}).await?;
        Ok(r.cluster_metrics.and_then(|m| m.num_node_managers).unwrap_or(0))
    }
}

/// YARN's name of an application state as `yarn application -status` prints it (`RUNNING`,
/// `FAILED`, ...), `UNKNOWN` when the report carries none.
pub fn state_name(state: Option<i32>) -> &'static str {
    state.and_then(|s| YarnApplicationStateProto::try_from(s).ok()).map(|s| s.as_str_name()).unwrap_or("UNKNOWN")
}

/// YARN's name of a final application status (`SUCCEEDED`, `FAILED`, `KILLED`, `UNDEFINED`).
pub fn final_status_name(status: Option<i32>) -> &'static str {
    match status.and_then(|s| FinalApplicationStatusProto::try_from(s).ok()) {
        Some(FinalApplicationStatusProto::AppSucceeded) => "SUCCEEDED",
        Some(FinalApplicationStatusProto::AppFailed) => "FAILED",
        Some(FinalApplicationStatusProto::AppKilled) => "KILLED",
        Some(FinalApplicationStatusProto::AppEnded) => "ENDED",
        Some(FinalApplicationStatusProto::AppUndefined) | None => "UNDEFINED",
    }
}

fn incomplete(method: &str, field: &str) -> YarnError {
    YarnError::Incomplete { method: method.into(), field: field.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_yarn_prints_them() {
        assert_eq!(state_name(Some(YarnApplicationStateProto::Failed as i32)), "FAILED");
        assert_eq!(state_name(Some(YarnApplicationStateProto::NewSaving as i32)), "NEW_SAVING");
        assert_eq!(state_name(None), "UNKNOWN");
        assert_eq!(final_status_name(Some(FinalApplicationStatusProto::AppKilled as i32)), "KILLED");
    }
}
