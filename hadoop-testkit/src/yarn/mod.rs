//! A protocol-level test YARN: a ResourceManager (the client protocol on one port, the
//! ApplicationMaster protocol on the scheduler port) and NodeManagers, in this process, on
//! 127.0.0.1, speaking Hadoop IPC with YARN's authentication rules:
//!
//! - the scheduler port and the NodeManagers take TOKEN authentication only (DIGEST-MD5),
//!   as YARN's daemons do even in an unsecured cluster: an AMRMToken for the scheduler, an
//!   NMToken for a NodeManager, each checked against the ResourceManager's master key;
//! - `startContainers` checks each container token, that it was issued for this node and for
//!   the application of the NMToken.
//!
//! Containers are local processes. A NodeManager downloads the launch context's local
//! resources from HDFS with a real HDFS client (checking size and timestamp, as YARN does),
//! writes `container_tokens` (Hadoop's token file), a `launch_container.sh` with the
//! environment, and runs the command with `<LOG_DIR>` expanded. Exits, kills and their exit
//! statuses reach the ApplicationMaster through `allocate`, as on a real cluster.
//!
//! Scheduling: one queue (`default`), `*` requests only, first node with room. Unmanaged
//! ApplicationMasters get their AMRMToken in the application report; managed ones are
//! launched in a container with the token in `HADOOP_TOKEN_FILE_LOCATION`.

mod nodemanager;
mod resourcemanager;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::server::{IpcServer, SaslOffer};

pub use state::ContainerInfo;

use nodemanager::NodeManager;
use state::{Shared, YarnState};

/// Settings of a [`MiniYarn`].
#[derive(Debug, Clone)]
pub struct MiniYarnBuilder {
    node_managers: usize,
    memory_mb: i64,
    vcores: i32,
    vmem_pmem_ratio: Option<f64>,
}

impl Default for MiniYarnBuilder {
    fn default() -> Self {
        Self { node_managers: 2, memory_mb: 4096, vcores: 4, vmem_pmem_ratio: None }
    }
}

impl MiniYarnBuilder {
    /// Number of NodeManagers (default 2).
    pub fn node_managers(mut self, n: usize) -> Self {
        self.node_managers = n.max(1);
        self
    }
    /// Memory each NodeManager offers, MiB (default 4096); also the largest container.
    pub fn memory_mb(mut self, mb: i64) -> Self {
        self.memory_mb = mb.max(1);
        self
    }
    /// Vcores each NodeManager offers (default 4).
    pub fn vcores(mut self, n: i32) -> Self {
        self.vcores = n.max(1);
        self
    }

    /// Kill a container whose processes' virtual memory passes `ratio` times its memory
    /// (exit status -103, KILLED_EXCEEDED_VMEM), as a NodeManager does with Apache's defaults
    /// (`yarn.nodemanager.vmem-check-enabled` true, `vmem-pmem-ratio` 2.1). Off unless asked:
    /// JVM containers (Spark's) pass it at small sizes, so clusters often turn it off.
    pub fn vmem_check(mut self, ratio: f64) -> Self {
        self.vmem_pmem_ratio = Some(ratio);
        self
    }

    /// Starts the ResourceManager and NodeManagers; containers live under `work_dir`.
    pub async fn start(self, work_dir: &Path) -> std::io::Result<MiniYarn> {
        let mut state = YarnState::new(self.memory_mb, self.vcores);
        state.vmem_pmem_ratio = self.vmem_pmem_ratio;
        let shared: Shared = Arc::new(Mutex::new(state));
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut node_managers = Vec::new();
        for i in 0..self.node_managers {
            let dir = work_dir.join(format!("nm-{i}"));
            node_managers.push(NodeManager::start(Arc::clone(&shared), i, dir).await?);
        }
        let client = resourcemanager::ClientService { shared: Arc::clone(&shared) };
        let client_rpc = IpcServer::bind_with(localhost, Arc::new(client), SaslOffer::TokenAndSimple).await?;
        let secrets = resourcemanager::AmrmSecrets { shared: Arc::clone(&shared) };
        let masters = resourcemanager::MasterService { shared: Arc::clone(&shared) };
        let scheduler_rpc = IpcServer::bind_with(localhost, Arc::new(masters), SaslOffer::TokenOnly(Arc::new(secrets))).await?;
        if let Ok(mut s) = shared.lock() {
            s.scheduler_address = scheduler_rpc.local_addr().to_string();
        }
        Ok(MiniYarn { client_rpc, scheduler_rpc, node_managers, shared })
    }
}

/// A running test YARN; dropping it stops the servers and kills every container process.
#[derive(Debug)]
pub struct MiniYarn {
    client_rpc: IpcServer,
    scheduler_rpc: IpcServer,
    node_managers: Vec<NodeManager>,
    shared: Shared,
}

impl MiniYarn {
    /// Settings, starting from the defaults.
    pub fn builder() -> MiniYarnBuilder {
        MiniYarnBuilder::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, YarnState> {
        // A poisoned lock means a test already panicked; carry on with the data.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `yarn.resourcemanager.address`.
    pub fn address(&self) -> String {
        self.client_rpc.local_addr().to_string()
    }

    /// `yarn.resourcemanager.scheduler.address`.
    pub fn scheduler_address(&self) -> String {
        self.scheduler_rpc.local_addr().to_string()
    }

    /// Writes `yarn-site.xml` (and `core-site.xml` with `fs.defaultFS` if given) into `dir`,
    /// a `HADOOP_CONF_DIR` for clients of this cluster.
    pub fn write_conf(&self, dir: &Path, default_fs: Option<&str>) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let property = |k: &str, v: &str| format!("  <property><name>{k}</name><value>{v}</value></property>\n");
        let yarn = format!(
            "<configuration>\n{}{}</configuration>\n",
            property("yarn.resourcemanager.address", &self.address()),
            property("yarn.resourcemanager.scheduler.address", &self.scheduler_address())
        );
        std::fs::write(dir.join("yarn-site.xml"), yarn)?;
        if let Some(fs) = default_fs {
            std::fs::write(dir.join("core-site.xml"), format!("<configuration>\n{}</configuration>\n", property("fs.defaultFS", fs)))?;
        }
        Ok(dir.to_path_buf())
    }

    /// The state of application `id` (the number after the cluster timestamp), if submitted.
    pub fn application_state(&self, id: i32) -> Option<YarnApplicationStateProto> {
        self.state().apps.get(&id).map(|a| a.state)
    }

    /// The final status the application's master reported (or YARN decided), if submitted.
    pub fn final_status(&self, id: i32) -> Option<FinalApplicationStatusProto> {
        self.state().apps.get(&id).map(|a| a.final_status)
    }

    /// The application's diagnostics.
    pub fn diagnostics(&self, id: i32) -> Option<String> {
        self.state().apps.get(&id).map(|a| a.diagnostics.clone())
    }

    /// The submission context of application `id`, as the client sent it.
    pub fn submission(&self, id: i32) -> Option<ApplicationSubmissionContextProto> {
        self.state().apps.get(&id).map(|a| a.context.clone())
    }

    /// Ids of every submitted application.
    pub fn applications(&self) -> Vec<i32> {
        self.state().apps.keys().copied().collect()
    }

    /// Every container of application `id`, in allocation order.
    pub fn containers(&self, id: i32) -> Vec<ContainerInfo> {
        self.state().containers.values().filter(|c| c.app == id).map(|c| c.info()).collect()
    }

    /// Container processes still running, across the cluster.
    pub fn running_processes(&self) -> usize {
        self.state().containers.values().filter(|c| c.pid.is_some() && c.status.is_none()).count()
    }

    /// Kills a container as a NodeManager does (e.g. `-104` and "running beyond physical memory
    /// limits" for the memory monitor): the process is signalled and its application master
    /// hears `exit_status` and `diagnostics` on its next `allocate`.
    pub fn kill_container(&self, container_id: &str, exit_status: i32, diagnostics: &str) -> bool {
        state::kill(&self.shared, container_id, exit_status, diagnostics)
    }
}

impl Drop for MiniYarn {
    fn drop(&mut self) {
        self.client_rpc.stop();
        self.scheduler_rpc.stop();
        for nm in &self.node_managers {
            nm.stop();
        }
        state::kill_all_processes(&self.shared);
    }
}
