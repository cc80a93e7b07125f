//! The test ResourceManager: YARN's `ApplicationClientProtocol` over Hadoop IPC, with
//! applications held in memory. This is the client-facing part only (new application,
//! submit, report, kill, cluster metrics); the ApplicationMaster and NodeManager protocols
//! come with the YARN launcher (issue 5).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::server::{reply, Call, CallResult, IpcServer, RpcException, RpcHandler, SaslOffer};

use eddy_hadoop_ipc::protocols::APPLICATION_CLIENT as APPLICATION_CLIENT_PROTOCOL;
const APP_NOT_FOUND: &str = "org.apache.hadoop.yarn.exceptions.ApplicationNotFoundException";
const INVALID_REQUEST: &str = "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Debug, Clone)]
struct App {
    context: ApplicationSubmissionContextProto,
    user: String,
    state: YarnApplicationStateProto,
    final_status: FinalApplicationStatusProto,
    diagnostics: String,
    submitted: i64,
    finished: i64,
}

#[derive(Debug)]
struct RmState {
    cluster_timestamp: i64,
    next_id: i32,
    /// Ids handed out by getNewApplication and not submitted yet.
    reserved: Vec<i32>,
    apps: BTreeMap<i32, App>,
    node_managers: i32,
    max_memory_mb: i64,
    max_vcores: i32,
}

#[derive(Debug)]
struct Handler {
    state: Arc<Mutex<RmState>>,
}

fn app_id(id: Option<&ApplicationIdProto>) -> Result<i32, RpcException> {
    id.and_then(|a| a.id).ok_or_else(|| RpcException::new(INVALID_REQUEST, "the request names no application id"))
}

impl Handler {
    fn serve(&self, call: &Call) -> CallResult {
        call.expect_protocol(APPLICATION_CLIENT_PROTOCOL)?;
        let mut s = self.state.lock().map_err(|_| RpcException::new("java.io.IOException", "state lock poisoned"))?;
        let cluster_timestamp = s.cluster_timestamp;
        let not_found = |id: i32| {
            RpcException::new(APP_NOT_FOUND, format!("Application with id 'application_{cluster_timestamp}_{id:04}' doesn't exist in RM."))
        };
        match call.method.as_str() {
            "getNewApplication" => {
                let _: GetNewApplicationRequestProto = call.decode()?;
                s.next_id += 1;
                let id = s.next_id;
                s.reserved.push(id);
                reply(&GetNewApplicationResponseProto {
                    application_id: Some(ApplicationIdProto { id: Some(id), cluster_timestamp: Some(cluster_timestamp) }),
                    maximum_capability: Some(ResourceProto { memory: Some(s.max_memory_mb), virtual_cores: Some(s.max_vcores) }),
                })
            }
            "submitApplication" => {
                let q: SubmitApplicationRequestProto = call.decode()?;
                let context = q.application_submission_context.ok_or_else(|| RpcException::new(INVALID_REQUEST, "no submission context"))?;
                let id = app_id(context.application_id.as_ref())?;
                if s.apps.contains_key(&id) {
                    // Submitting twice is accepted, as YARN does for a retried call.
                    return reply(&SubmitApplicationResponseProto {});
                }
                let Some(pos) = s.reserved.iter().position(|r| *r == id) else { return Err(not_found(id)) };
                s.reserved.remove(pos);
                let app = App {
                    context,
                    user: call.user.clone(),
                    state: YarnApplicationStateProto::Accepted,
                    final_status: FinalApplicationStatusProto::AppUndefined,
                    diagnostics: String::new(),
                    submitted: now_ms(),
                    finished: 0,
                };
                s.apps.insert(id, app);
                reply(&SubmitApplicationResponseProto {})
            }
            "getApplicationReport" => {
                let q: GetApplicationReportRequestProto = call.decode()?;
                let id = app_id(q.application_id.as_ref())?;
                let app = s.apps.get(&id).ok_or_else(|| not_found(id))?;
                reply(&GetApplicationReportResponseProto {
                    application_report: Some(ApplicationReportProto {
                        application_id: Some(ApplicationIdProto { id: Some(id), cluster_timestamp: Some(cluster_timestamp) }),
                        user: Some(app.user.clone()),
                        queue: app.context.queue.clone(),
                        name: app.context.application_name.clone(),
                        yarn_application_state: Some(app.state as i32),
                        final_application_status: Some(app.final_status as i32),
                        diagnostics: Some(app.diagnostics.clone()),
                        start_time: Some(app.submitted),
                        submit_time: Some(app.submitted),
                        finish_time: Some(app.finished),
                        application_type: app.context.application_type.clone(),
                        unmanaged_application: app.context.unmanaged_am,
                        ..Default::default()
                    }),
                })
            }
            "forceKillApplication" => {
                let q: KillApplicationRequestProto = call.decode()?;
                let id = app_id(q.application_id.as_ref())?;
                let app = s.apps.get_mut(&id).ok_or_else(|| not_found(id))?;
                if !matches!(app.state, YarnApplicationStateProto::Finished | YarnApplicationStateProto::Failed | YarnApplicationStateProto::Killed) {
                    app.state = YarnApplicationStateProto::Killed;
                    app.final_status = FinalApplicationStatusProto::AppKilled;
                    app.diagnostics = q.diagnostics.unwrap_or_else(|| format!("Application killed by user {}", call.user));
                    app.finished = now_ms();
                }
                reply(&KillApplicationResponseProto { is_kill_completed: Some(true) })
            }
            "getClusterMetrics" => {
                let _: GetClusterMetricsRequestProto = call.decode()?;
                reply(&GetClusterMetricsResponseProto {
                    cluster_metrics: Some(YarnClusterMetricsProto {
                        num_node_managers: Some(s.node_managers),
                        num_active_nms: Some(s.node_managers),
                        ..Default::default()
                    }),
                })
            }
            _ => Err(call.no_such_method(
                "the test ResourceManager serves getNewApplication, submitApplication, getApplicationReport, forceKillApplication, getClusterMetrics",
            )),
        }
    }
}

#[async_trait]
impl RpcHandler for Handler {
    async fn call(&self, call: Call) -> CallResult {
        self.serve(&call)
    }
}

/// A running test ResourceManager on 127.0.0.1.
#[derive(Debug)]
pub struct TestResourceManager {
    server: IpcServer,
    state: Arc<Mutex<RmState>>,
}

impl TestResourceManager {
    /// Starts a ResourceManager for `node_managers` nodes, each offering `memory_mb` and `vcores`.
    pub async fn start(node_managers: i32, memory_mb: i64, vcores: i32) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(RmState {
            cluster_timestamp: now_ms(),
            next_id: 0,
            reserved: Vec::new(),
            apps: BTreeMap::new(),
            node_managers,
            max_memory_mb: memory_mb,
            max_vcores: vcores,
        }));
        let handler = Arc::new(Handler { state: Arc::clone(&state) });
        let server = IpcServer::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), handler, SaslOffer::TokenAndSimple).await?;
        Ok(Self { server, state })
    }

    /// `127.0.0.1:PORT`, the value of `yarn.resourcemanager.address`.
    pub fn address(&self) -> String {
        self.server.local_addr().to_string()
    }

    /// The state of application `id` (the number after the cluster timestamp), if submitted.
    pub fn application_state(&self, id: i32) -> Option<YarnApplicationStateProto> {
        self.state.lock().ok()?.apps.get(&id).map(|a| a.state)
    }

    /// The submission context of application `id`, as the client sent it.
    pub fn submission(&self, id: i32) -> Option<ApplicationSubmissionContextProto> {
        self.state.lock().ok()?.apps.get(&id).map(|a| a.context.clone())
    }
}
