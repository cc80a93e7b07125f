//! The test ResourceManager's two services: `ApplicationClientProtocol` (SIMPLE, for clients
//! that submit) and `ApplicationMasterProtocol` (TOKEN, for masters holding an AMRMToken).

use async_trait::async_trait;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::protocols::{APPLICATION_CLIENT, APPLICATION_MASTER};
use eddy_hadoop_ipc::server::{reply, Call, CallResult, RpcException, RpcHandler, TokenSecrets};
use prost::Message;

use super::nodemanager;
use super::state::{attempt_id, attempt_text, exit_status, is_final, now_ms, App, Shared, YarnState};

const APP_NOT_FOUND: &str = "org.apache.hadoop.yarn.exceptions.ApplicationNotFoundException";
const INVALID_REQUEST: &str = "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException";
const NOT_REGISTERED: &str = "org.apache.hadoop.yarn.exceptions.ApplicationMasterNotRegisteredException";
const INVALID_TOKEN: &str = "org.apache.hadoop.security.token.SecretManager$InvalidToken";

fn io_error(message: &str) -> RpcException {
    RpcException::new("java.io.IOException", message)
}

fn lock(shared: &Shared) -> Result<std::sync::MutexGuard<'_, YarnState>, RpcException> {
    shared.lock().map_err(|_| io_error("state lock poisoned"))
}

fn app_id(id: Option<&ApplicationIdProto>) -> Result<i32, RpcException> {
    id.and_then(|a| a.id).ok_or_else(|| RpcException::new(INVALID_REQUEST, "the request names no application id"))
}

/// `ApplicationClientProtocol`.
#[derive(Debug)]
pub(crate) struct ClientService {
    pub shared: Shared,
}

/// What a submission starts besides bookkeeping: a managed master's container.
struct AmLaunch {
    node: usize,
    container: String,
    context: ContainerLaunchContextProto,
    token: TokenProto,
    dir: std::path::PathBuf,
}

impl ClientService {
    fn serve(&self, call: &Call) -> Result<(Vec<u8>, Option<AmLaunch>), RpcException> {
        call.expect_protocol(APPLICATION_CLIENT)?;
        let mut s = lock(&self.shared)?;
        let without_launch = |r: CallResult| r.map(|b| (b, None));
        match call.method.as_str() {
            "getNewApplication" => without_launch(get_new_application(&mut s, call)),
            "submitApplication" => submit_application(&mut s, call),
            "getApplicationReport" => without_launch(application_report(&s, call)),
            "forceKillApplication" => without_launch(kill_application(&mut s, call)),
            "getClusterMetrics" => without_launch(cluster_metrics(&s, call)),
            "getQueueInfo" => without_launch(queue_info(&s, call)),
            _ => Err(call.no_such_method(
                "the test ResourceManager serves getNewApplication, submitApplication, getApplicationReport, forceKillApplication, getClusterMetrics, getQueueInfo",
            )),
        }
    }
}

fn not_found(ts: i64, id: i32) -> RpcException {
    RpcException::new(APP_NOT_FOUND, format!("Application with id 'application_{ts}_{id:04}' doesn't exist in RM."))
}

/// `getNewApplication`.
fn get_new_application(s: &mut YarnState, call: &Call) -> CallResult {
    let ts = s.cluster_timestamp;
    let _: GetNewApplicationRequestProto = call.decode()?;
    s.next_app += 1;
    let id = s.next_app;
    s.reserved.push(id);
    reply(&GetNewApplicationResponseProto {
        application_id: Some(ApplicationIdProto { id: Some(id), cluster_timestamp: Some(ts) }),
        maximum_capability: Some(ResourceProto { memory: Some(s.node_memory_mb), virtual_cores: Some(s.node_vcores) }),
    })
}

/// `submitApplication`.
fn submit_application(s: &mut YarnState, call: &Call) -> Result<(Vec<u8>, Option<AmLaunch>), RpcException> {
    let ts = s.cluster_timestamp;
    let q: SubmitApplicationRequestProto = call.decode()?;
    let context = q.application_submission_context.ok_or_else(|| RpcException::new(INVALID_REQUEST, "no submission context"))?;
    let id = app_id(context.application_id.as_ref())?;
    if context.am_container_spec.is_none() {
        // As Apache's ClientRMService.submitApplication, which reads the master's
        // launch context (its tokens) for unmanaged masters too.
        return Err(RpcException::new(
                "java.lang.NullPointerException",
                "Cannot invoke \"org.apache.hadoop.yarn.api.records.ContainerLaunchContext.getTokensConf()\" because the return value of \"org.apache.hadoop.yarn.api.records.ApplicationSubmissionContext.getAMContainerSpec()\" is null",
            ));
    }
    let am = context.resource.unwrap_or_default();
    let too_big = am.memory.unwrap_or(0) > s.node_memory_mb || am.virtual_cores.unwrap_or(0) > s.node_vcores;
    if !context.unmanaged_am.unwrap_or(false) && too_big {
        // As Apache's RMAppManager, which validates the master's request at submission.
        return Err(RpcException::new(
                INVALID_REQUEST,
                format!(
                    "Invalid resource request! Cannot allocate containers as requested resource is greater than maximum allowed allocation. Requested resource=<memory:{}, vCores:{}>, maximum allowed allocation=<memory:{}, vCores:{}>",
                    am.memory.unwrap_or(0),
                    am.virtual_cores.unwrap_or(0),
                    s.node_memory_mb,
                    s.node_vcores
                ),
            ));
    }
    if s.apps.contains_key(&id) {
        // Submitting twice is accepted, as YARN does for a retried call.
        return Ok((reply(&SubmitApplicationResponseProto {})?, None));
    }
    let Some(pos) = s.reserved.iter().position(|r| *r == id) else { return Err(not_found(ts, id)) };
    s.reserved.remove(pos);
    let managed = !context.unmanaged_am.unwrap_or(false);
    let am_resource = context.resource.unwrap_or(ResourceProto { memory: Some(1024), virtual_cores: Some(1) });
    let app = App {
        context: context.clone(),
        user: call.user.clone(),
        state: YarnApplicationStateProto::Accepted,
        final_status: FinalApplicationStatusProto::AppUndefined,
        diagnostics: String::new(),
        submitted: now_ms(),
        finished: 0,
        registered: false,
        host: String::new(),
        rpc_port: -1,
        tracking_url: String::new(),
        outstanding: 0,
        capability: ResourceProto::default(),
        priority: PriorityProto::default(),
        response_id: 0,
        new_allocations: Vec::new(),
        completed: Vec::new(),
        nm_tokens_sent: Default::default(),
        am_container: None,
    };
    s.apps.insert(id, app);
    let mut launch = None;
    if managed {
        match s.allocate_one(id, am_resource, PriorityProto { priority: Some(0) }, true) {
            Some(c) => {
                let container = super::state::container_id_text(c.id.as_ref());
                let node = s.containers[&container].node;
                let mut token = s.amrm_token(id);
                token.service = s.scheduler_address.clone();
                if let Some(a) = s.apps.get_mut(&id) {
                    a.am_container = Some(container.clone());
                }
                launch = Some(AmLaunch {
                    node,
                    container,
                    context: context.am_container_spec.clone().unwrap_or_default(),
                    token,
                    dir: s.nodes[node].dir.clone(),
                });
            }
            None => {
                if let Some(a) = s.apps.get_mut(&id) {
                    a.diagnostics = "[Test RM] the ApplicationMaster's container does not fit on any node".into();
                }
            }
        }
    }
    Ok((reply(&SubmitApplicationResponseProto {})?, launch))
}

/// `getApplicationReport`.
fn application_report(s: &YarnState, call: &Call) -> CallResult {
    let ts = s.cluster_timestamp;
    let q: GetApplicationReportRequestProto = call.decode()?;
    let id = app_id(q.application_id.as_ref())?;
    let app = s.apps.get(&id).ok_or_else(|| not_found(ts, id))?;
    let unmanaged = app.context.unmanaged_am.unwrap_or(false);
    // As YARN: the AMRMToken of an unmanaged master goes to the submitting user,
    // while the attempt is live.
    let am_rm_token = (unmanaged && !is_final(app.state) && call.user == app.user).then(|| s.amrm_token(id));
    let used: Vec<_> =
        s.containers.values().filter(|c| c.app == id && c.status.is_none()).map(|c| c.proto.resource.unwrap_or_default()).collect();
    let usage = ApplicationResourceUsageReportProto {
        num_used_containers: Some(used.len() as i32),
        used_resources: Some(ResourceProto {
            memory: Some(used.iter().map(|r| r.memory.unwrap_or(0)).sum()),
            virtual_cores: Some(used.iter().map(|r| r.virtual_cores.unwrap_or(0)).sum()),
        }),
        ..Default::default()
    };
    reply(&GetApplicationReportResponseProto {
        application_report: Some(ApplicationReportProto {
            application_id: Some(ApplicationIdProto { id: Some(id), cluster_timestamp: Some(ts) }),
            user: Some(app.user.clone()),
            queue: app.context.queue.clone(),
            name: app.context.application_name.clone(),
            host: Some(app.host.clone()),
            rpc_port: Some(app.rpc_port),
            yarn_application_state: Some(app.state as i32),
            final_application_status: Some(app.final_status as i32),
            diagnostics: Some(app.diagnostics.clone()),
            // As Apache's RM: once the attempt runs, the tracking URL is the RM's web
            // proxy for the application; what the master set is the original one.
            tracking_url: Some(if app.state == YarnApplicationStateProto::Running {
                format!("http://localhost:8088/proxy/application_{ts}_{id:04}/")
            } else {
                app.tracking_url.clone()
            }),
            original_tracking_url: Some(app.tracking_url.clone()),
            start_time: Some(app.submitted),
            submit_time: Some(app.submitted),
            finish_time: Some(app.finished),
            application_type: app.context.application_type.clone(),
            unmanaged_application: app.context.unmanaged_am,
            current_application_attempt_id: Some(attempt_id(ts, id)),
            am_rm_token,
            app_resource_usage: Some(usage),
            ..Default::default()
        }),
    })
}

/// `forceKillApplication`.
fn kill_application(s: &mut YarnState, call: &Call) -> CallResult {
    let ts = s.cluster_timestamp;
    let q: KillApplicationRequestProto = call.decode()?;
    let id = app_id(q.application_id.as_ref())?;
    let app = s.apps.get_mut(&id).ok_or_else(|| not_found(ts, id))?;
    if !is_final(app.state) {
        app.state = YarnApplicationStateProto::Killed;
        app.final_status = FinalApplicationStatusProto::AppKilled;
        app.diagnostics = q.diagnostics.unwrap_or_else(|| format!("Application killed by user {}", call.user));
        app.finished = now_ms();
        s.stop_app_containers(id, exit_status::KILLED_BY_RESOURCEMANAGER, "Container killed by the ResourceManager (application killed)");
    }
    reply(&KillApplicationResponseProto { is_kill_completed: Some(true) })
}

/// `getClusterMetrics`.
fn cluster_metrics(s: &YarnState, call: &Call) -> CallResult {
    let _: GetClusterMetricsRequestProto = call.decode()?;
    let n = s.nodes.len() as i32;
    reply(&GetClusterMetricsResponseProto {
        cluster_metrics: Some(YarnClusterMetricsProto { num_node_managers: Some(n), num_active_nms: Some(n), ..Default::default() }),
    })
}

/// `getQueueInfo`.
fn queue_info(s: &YarnState, call: &Call) -> CallResult {
    let q: GetQueueInfoRequestProto = call.decode()?;
    let name = q.queue_name.unwrap_or_else(|| "default".into());
    if name != "default" {
        return Err(io_error(&format!("Unknown queue: {name}")));
    }
    let free = s.free_total();
    let total_mb = s.node_memory_mb * s.nodes.len() as i64;
    let total_vc = i64::from(s.node_vcores) * s.nodes.len() as i64;
    let running = s.apps.values().filter(|a| !is_final(a.state)).count() as i64;
    let pending: i64 = s.apps.values().map(|a| i64::from(a.outstanding)).sum();
    reply(&GetQueueInfoResponseProto {
        queue_info: Some(QueueInfoProto {
            queue_name: Some(name),
            capacity: Some(1.0),
            maximum_capacity: Some(1.0),
            state: Some(QueueStateProto::QRunning as i32),
            queue_statistics: Some(QueueStatisticsProto {
                num_apps_running: Some(running),
                available_memory_mb: free.memory,
                allocated_memory_mb: Some(total_mb - free.memory.unwrap_or(0)),
                available_v_cores: free.virtual_cores.map(i64::from),
                allocated_v_cores: Some(total_vc - i64::from(free.virtual_cores.unwrap_or(0))),
                pending_containers: Some(pending),
                ..Default::default()
            }),
            ..Default::default()
        }),
    })
}

#[async_trait]
impl RpcHandler for ClientService {
    async fn call(&self, call: Call) -> CallResult {
        let (answer, launch) = self.serve(&call)?;
        if let Some(l) = launch {
            let extra = vec![(l.token.service.clone(), l.token)];
            nodemanager::spawn_launch(self.shared.clone(), l.node, l.container, l.context, extra, l.dir);
        }
        Ok(answer)
    }
}

/// The AMRMToken secret manager: tokens of live attempts only.
#[derive(Debug)]
pub(crate) struct AmrmSecrets {
    pub shared: Shared,
}

fn amrm_app(identifier: &[u8]) -> Result<i32, String> {
    let id = AmrmTokenIdentifierProto::decode(identifier).map_err(|_| "not an AMRMToken identifier".to_string())?;
    id.app_attempt_id.and_then(|a| a.application_id).and_then(|a| a.id).ok_or_else(|| "an AMRMToken without an attempt".into())
}

impl TokenSecrets for AmrmSecrets {
    fn password(&self, identifier: &[u8]) -> Result<Vec<u8>, String> {
        let app = amrm_app(identifier)?;
        let s = self.shared.lock().map_err(|_| "state lock poisoned".to_string())?;
        match s.apps.get(&app) {
            Some(a) if !is_final(a.state) => Ok(s.password(identifier)),
            Some(_) => {
                Err(format!("{} has finished; its AMRMToken is no longer valid", attempt_text(&attempt_id(s.cluster_timestamp, app))))
            }
            None => Err(format!("Application attempt for application {app} not found")),
        }
    }
}

/// `ApplicationMasterProtocol`, for the attempt named by the connection's AMRMToken.
#[derive(Debug)]
pub(crate) struct MasterService {
    pub shared: Shared,
}

impl MasterService {
    fn serve(&self, call: &Call) -> CallResult {
        call.expect_protocol(APPLICATION_MASTER)?;
        let identifier = call.token_identifier.as_ref().ok_or_else(|| RpcException::new(INVALID_TOKEN, "no AMRMToken"))?;
        let id = amrm_app(identifier).map_err(|e| RpcException::new(INVALID_TOKEN, e))?;
        let mut s = lock(&self.shared)?;
        let attempt = attempt_text(&attempt_id(s.cluster_timestamp, id));
        let max_mb = s.node_memory_mb;
        let max_vc = s.node_vcores;
        let app = s.apps.get_mut(&id).ok_or_else(|| RpcException::new(APP_NOT_FOUND, format!("no application for {attempt}")))?;
        match call.method.as_str() {
            "registerApplicationMaster" => {
                let q: RegisterApplicationMasterRequestProto = call.decode()?;
                if is_final(app.state) {
                    return Err(RpcException::new(INVALID_TOKEN, format!("{attempt} has finished")));
                }
                app.registered = true;
                app.state = YarnApplicationStateProto::Running;
                app.host = q.host.unwrap_or_default();
                app.rpc_port = q.rpc_port.unwrap_or(-1);
                app.tracking_url = q.tracking_url.unwrap_or_default();
                reply(&RegisterApplicationMasterResponseProto {
                    maximum_capability: Some(ResourceProto { memory: Some(max_mb), virtual_cores: Some(max_vc) }),
                    queue: app.context.queue.clone(),
                    ..Default::default()
                })
            }
            "allocate" => {
                let q: AllocateRequestProto = call.decode()?;
                if !app.registered {
                    return Err(RpcException::new(
                        NOT_REGISTERED,
                        format!("Application Master is not registered for known application: {attempt}"),
                    ));
                }
                if let Some(url) = q.tracking_url.filter(|u| !u.is_empty()) {
                    app.tracking_url = url;
                }
                for ask in q.ask.iter().filter(|a| a.resource_name.as_deref() == Some("*")) {
                    let capability = ask.capability.unwrap_or_default();
                    if capability.memory.unwrap_or(0) > max_mb || capability.virtual_cores.unwrap_or(0) > max_vc {
                        return Err(RpcException::new(
                            INVALID_REQUEST,
                            format!(
                                "Invalid resource request, requested resource type=[memory-mb] < 0 or greater than maximum allowed allocation. Requested resource={capability:?}, maximum allowed allocation=<memory:{max_mb}, vCores:{max_vc}>"
                            ),
                        ));
                    }
                    // As YARN: the number in an ask replaces the outstanding number.
                    app.outstanding = ask.num_containers.unwrap_or(0).max(0);
                    app.capability = capability;
                    app.priority = ask.priority.unwrap_or_default();
                }
                for released in &q.release {
                    let text = super::state::container_id_text(Some(released));
                    s.kill_locked(&text, exit_status::ABORTED, "Container released by application");
                }
                s.schedule();
                let limit = s.free_total();
                let nodes = s.nodes.len() as i32;
                let user = s.apps[&id].user.clone();
                let Some(app) = s.apps.get_mut(&id) else { return Err(io_error("application vanished")) };
                app.response_id += 1;
                let allocated = std::mem::take(&mut app.new_allocations);
                let completed = std::mem::take(&mut app.completed);
                let response_id = app.response_id;
                let mut new_nodes = Vec::new();
                for c in &allocated {
                    let node = s.nodes.iter().position(|n| Some(&n.id) == c.node_id.as_ref()).unwrap_or(0);
                    if s.apps.get_mut(&id).is_some_and(|a| a.nm_tokens_sent.insert(node)) {
                        new_nodes.push(node);
                    }
                }
                let nm_tokens = new_nodes.into_iter().map(|n| s.nm_token(id, n, &user)).collect();
                reply(&AllocateResponseProto {
                    response_id: Some(response_id),
                    allocated_containers: allocated,
                    completed_container_statuses: completed,
                    limit: Some(limit),
                    num_cluster_nodes: Some(nodes),
                    nm_tokens,
                    ..Default::default()
                })
            }
            "finishApplicationMaster" => {
                let q: FinishApplicationMasterRequestProto = call.decode()?;
                if !is_final(app.state) {
                    app.state = YarnApplicationStateProto::Finished;
                    app.final_status = q
                        .final_application_status
                        .and_then(|f| FinalApplicationStatusProto::try_from(f).ok())
                        .unwrap_or(FinalApplicationStatusProto::AppUndefined);
                    app.diagnostics = q.diagnostics.unwrap_or_default();
                    app.finished = now_ms();
                    if let Some(url) = q.tracking_url {
                        app.tracking_url = url;
                    }
                    app.outstanding = 0;
                    s.stop_app_containers(id, exit_status::KILLED_AFTER_APP_COMPLETION, "Container killed on application completion");
                }
                reply(&FinishApplicationMasterResponseProto { is_unregistered: Some(true) })
            }
            _ => Err(call.no_such_method(
                "the test ResourceManager's scheduler serves registerApplicationMaster, allocate, finishApplicationMaster",
            )),
        }
    }
}

#[async_trait]
impl RpcHandler for MasterService {
    async fn call(&self, call: Call) -> CallResult {
        self.serve(&call)
    }
}
