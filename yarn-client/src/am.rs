//! The ApplicationMaster's side of YARN: `ApplicationMasterProtocol` towards the
//! ResourceManager's scheduler (with the AMRMToken) and `ContainerManagementProtocol` towards
//! NodeManagers (with the NMTokens `allocate` hands out).

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};

use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::protocols::{APPLICATION_MASTER, CONTAINER_MANAGEMENT};

use crate::{YarnError, YarnResult};

/// A container's exit status for people: YARN's name for its own statuses (why it ended),
/// otherwise the process's exit code.
pub fn exit_status_text(status: i32) -> String {
    use eddy_hadoop_ipc::yarn_ids::exit_status::*;
    let name = match status {
        SUCCESS => "SUCCESS",
        INVALID => "INVALID (the container could not be launched)",
        ABORTED => "ABORTED (released or lost)",
        DISKS_FAILED => "DISKS_FAILED",
        PREEMPTED => "PREEMPTED",
        KILLED_EXCEEDED_VMEM => "KILLED_EXCEEDED_VMEM (over its virtual memory limit)",
        KILLED_EXCEEDED_PMEM => "KILLED_EXCEEDED_PMEM (over its physical memory limit)",
        KILLED_BY_APPMASTER => "KILLED_BY_APPMASTER",
        KILLED_BY_RESOURCEMANAGER => "KILLED_BY_RESOURCEMANAGER",
        KILLED_AFTER_APP_COMPLETION => "KILLED_AFTER_APP_COMPLETION",
        KILLED_BY_CONTAINER_SCHEDULER => "KILLED_BY_CONTAINER_SCHEDULER",
        143 => "killed by SIGTERM",
        137 => "killed by SIGKILL",
        _ => return format!("exit code {status}"),
    };
    format!("{status} {name}")
}

pub use eddy_hadoop_ipc::yarn_ids::container_id_text;

/// `host:port` of a node id.
pub fn node_address(id: Option<&NodeIdProto>) -> String {
    id.map(|n| format!("{}:{}", n.host.as_deref().unwrap_or(""), n.port.unwrap_or(0))).unwrap_or_default()
}

/// What one `allocate` heartbeat brought.
#[derive(Debug, Default, Clone)]
pub struct Allocation {
    /// Containers newly allocated to us.
    pub allocated: Vec<ContainerProto>,
    /// Containers that ended since the last heartbeat, with YARN's exit status.
    pub completed: Vec<ContainerStatusProto>,
    /// What the cluster still has free for this application (its headroom).
    pub headroom: ResourceProto,
    /// Nodes in the cluster.
    pub cluster_nodes: i32,
    /// The ResourceManager told us to resync or shut down.
    pub command: Option<AmCommandProto>,
}

/// A registered ApplicationMaster.
#[derive(Debug)]
pub struct ApplicationMaster {
    ipc: IpcClient,
    response_id: i32,
    nm_tokens: BTreeMap<String, TokenProto>,
    timeout: Duration,
    /// The largest container the scheduler allows.
    pub max_capability: ResourceProto,
    /// The application's queue.
    pub queue: String,
}

impl ApplicationMaster {
    /// Connects to the scheduler at `addr` with the AMRMToken and registers.
    pub async fn register(addr: &str, token: &TokenProto, host: &str, tracking_url: &str, timeout: Duration) -> YarnResult<Self> {
        let mut token = token.clone();
        // YARN's client sets the token's service to the scheduler address it connects to.
        token.service = addr.to_string();
        let ipc = IpcClient::connect_with_token(addr, APPLICATION_MASTER, "", &token, timeout).await?;
        let request = RegisterApplicationMasterRequestProto {
            host: Some(host.to_string()),
            rpc_port: Some(-1),
            tracking_url: Some(tracking_url.to_string()),
        };
        let r: RegisterApplicationMasterResponseProto = ipc.call("registerApplicationMaster", &request).await?;
        Ok(Self {
            ipc,
            response_id: 0,
            nm_tokens: BTreeMap::new(),
            timeout,
            max_capability: r.maximum_capability.unwrap_or_default(),
            queue: r.queue.unwrap_or_default(),
        })
    }

    /// One heartbeat: asks for `want` containers of `capability` in total (YARN replaces the
    /// outstanding number with each ask), releases `release`, and reports `progress`.
    pub async fn allocate(
        &mut self,
        want: Option<(i32, ResourceProto)>,
        release: Vec<ContainerIdProto>,
        tracking_url: Option<String>,
    ) -> YarnResult<Allocation> {
        let ask = want
            .map(|(n, capability)| ResourceRequestProto {
                priority: Some(PriorityProto { priority: Some(1) }),
                resource_name: Some("*".into()),
                capability: Some(capability),
                num_containers: Some(n),
                relax_locality: Some(true),
                ..Default::default()
            })
            .into_iter()
            .collect();
        let request = AllocateRequestProto {
            ask,
            release,
            response_id: Some(self.response_id),
            progress: Some(0.5),
            tracking_url,
            ..Default::default()
        };
        let r: AllocateResponseProto = self.ipc.call("allocate", &request).await?;
        self.response_id = r.response_id.unwrap_or(self.response_id + 1);
        for t in r.nm_tokens {
            if let Some(token) = t.token {
                self.nm_tokens.insert(node_address(t.node_id.as_ref()), token);
            }
        }
        Ok(Allocation {
            allocated: r.allocated_containers,
            completed: r.completed_container_statuses,
            headroom: r.limit.unwrap_or_default(),
            cluster_nodes: r.num_cluster_nodes.unwrap_or(0),
            command: r.a_m_command.and_then(|c| AmCommandProto::try_from(c).ok()),
        })
    }

    /// Unregisters with a final status; YARN then ends the application and its containers.
    pub async fn finish(&self, status: FinalApplicationStatusProto, diagnostics: &str, tracking_url: &str) -> YarnResult<()> {
        let request = FinishApplicationMasterRequestProto {
            diagnostics: Some(diagnostics.to_string()),
            tracking_url: Some(tracking_url.to_string()),
            final_application_status: Some(status as i32),
        };
        // YARN may answer "not yet" while it saves the state; ask again a few times.
        let unregister = || async {
            let r: FinishApplicationMasterResponseProto = self.ipc.call("finishApplicationMaster", &request).await?;
            match r.is_unregistered {
                Some(true) => Ok(()),
                _ => Err(YarnError::NotYet { what: "unregistering the ApplicationMaster".into() }),
            }
        };
        unregister
            .retry(ConstantBuilder::new().with_delay(Duration::from_millis(100)).with_max_times(20))
            .when(YarnError::is_retryable)
            .await
    }

    /// The NMToken for `container`'s node, as `allocate` handed it out.
    pub fn nm_token(&self, container: &ContainerProto) -> YarnResult<TokenProto> {
        let addr = node_address(container.node_id.as_ref());
        self.nm_tokens
            .get(&addr)
            .cloned()
            .ok_or_else(|| YarnError::Incomplete { method: "allocate".into(), field: format!("NMToken for node {addr}") })
    }

    /// A NodeManager connection for `container`'s node, with the node's NMToken.
    pub async fn node_manager(&self, container: &ContainerProto) -> YarnResult<NodeManager> {
        NodeManager::connect(&node_address(container.node_id.as_ref()), &self.nm_token(container)?, self.timeout).await
    }
}

/// A connection to one NodeManager.
#[derive(Debug)]
pub struct NodeManager {
    ipc: IpcClient,
    addr: String,
}

fn failures(failed: Vec<ContainerExceptionMapProto>) -> Vec<(String, String)> {
    failed
        .into_iter()
        .map(|f| {
            let e = f.exception.unwrap_or_default();
            (container_id_text(f.container_id.as_ref()), format!("{}: {}", e.class_name.unwrap_or_default(), e.message.unwrap_or_default()))
        })
        .collect()
}

impl NodeManager {
    /// Connects to the NodeManager at `addr` (`host:port`) with its NMToken.
    pub async fn connect(addr: &str, token: &TokenProto, timeout: Duration) -> YarnResult<Self> {
        let ipc = IpcClient::connect_with_token(addr, CONTAINER_MANAGEMENT, "", token, timeout).await?;
        Ok(Self { ipc, addr: addr.to_string() })
    }

    /// The node's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Starts `container` with `context`; an error names why the NodeManager refused.
    pub async fn start(&self, container: &ContainerProto, context: ContainerLaunchContextProto) -> YarnResult<()> {
        let request = StartContainersRequestProto {
            start_container_request: vec![StartContainerRequestProto {
                container_launch_context: Some(context),
                container_token: container.container_token.clone(),
            }],
        };
        let r: StartContainersResponseProto = self.ipc.call("startContainers", &request).await?;
        if let Some((id, why)) = failures(r.failed_requests).into_iter().next() {
            return Err(YarnError::Refused { what: format!("starting {id} on {}", self.addr), why });
        }
        Ok(())
    }

    /// Stops containers; returns those the NodeManager refused to stop, with why.
    pub async fn stop(&self, ids: Vec<ContainerIdProto>) -> YarnResult<Vec<(String, String)>> {
        let r: StopContainersResponseProto = self.ipc.call("stopContainers", &StopContainersRequestProto { container_id: ids }).await?;
        Ok(failures(r.failed_requests))
    }

    /// The containers' statuses.
    pub async fn statuses(&self, ids: Vec<ContainerIdProto>) -> YarnResult<Vec<ContainerStatusProto>> {
        let r: GetContainerStatusesResponseProto =
            self.ipc.call("getContainerStatuses", &GetContainerStatusesRequestProto { container_id: ids }).await?;
        Ok(r.status)
    }
}
