//! Protocol-level Hadoop test servers in one process, for tests on 127.0.0.1: a test HDFS
//! ([`MiniDfs`]) and a test YARN: ResourceManager and NodeManagers ([`yarn::MiniYarn`]).
//!
//! [`MiniDfs`] starts a NameNode that speaks Hadoop IPC (`ClientNamenodeProtocol`, SIMPLE
//! authentication) and DataNodes that speak `DataTransferProtocol`, written from Hadoop's
//! protocol definitions. Real HDFS clients (hdfs-native) connect to it as to a cluster:
//! files are split into blocks of the configured size, placed on several DataNodes with
//! replicas, read with CRC32C-checked packets and written through block pipelines.
//! Files live in memory.
//!
//! What it does not do: Kerberos or block tokens, erasure coding, encryption zones, snapshots,
//! replication pipelines longer than one node on write (seeded files can have any
//! replication), leases that expire.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let dfs = eddy_hadoop_testkit::MiniDfs::builder().datanodes(3).block_size(1 << 20).start().await?;
//! dfs.put("/data/a.csv", b"x,y\n1,2\n".to_vec());
//! println!("{}", dfs.url()); // hdfs://127.0.0.1:PORT
//! # Ok(()) }
//! ```

mod datanode;
mod namenode;
mod namespace;
pub mod yarn;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use eddy_hadoop_ipc::proto::hdfs::DatanodeIdProto;
use eddy_hadoop_ipc::server::{IpcServer, SaslOffer};

pub use datanode::BlockStore;
pub use namenode::CLIENT_PROTOCOL;

use datanode::DataNode;
use namenode::NameNodeHandler;
use namespace::{Inode, Namespace, NamespaceOptions};

/// Settings of a [`MiniDfs`].
#[derive(Debug, Clone)]
pub struct MiniDfsBuilder {
    datanodes: usize,
    block_size: u64,
    replication: usize,
    listing_limit: usize,
    datanode_ips: Vec<std::net::IpAddr>,
}

impl Default for MiniDfsBuilder {
    fn default() -> Self {
        Self { datanodes: 3, block_size: 1 << 20, replication: 2, listing_limit: 1000, datanode_ips: Vec::new() }
    }
}

impl MiniDfsBuilder {
    /// Number of DataNodes (default 3).
    pub fn datanodes(mut self, n: usize) -> Self {
        self.datanodes = n.max(1);
        self
    }
    /// Block size of files (default 1 MiB, so that small test files span several blocks).
    pub fn block_size(mut self, bytes: u64) -> Self {
        self.block_size = bytes.max(512);
        self
    }
    /// Replicas of each block of files placed with [`MiniDfs::put`] (default 2).
    pub fn replication(mut self, n: usize) -> Self {
        self.replication = n.max(1);
        self
    }
    /// Entries per `getListing` answer (Hadoop's `dfs.ls.limit`, default 1000); small values
    /// make clients page.
    pub fn listing_limit(mut self, n: usize) -> Self {
        self.listing_limit = n.max(1);
        self
    }

    /// Loopback addresses the DataNodes listen on, one per node in turn (default: all on
    /// 127.0.0.1); distinct addresses make DataNodes distinct "hosts" for locality tests.
    pub fn datanode_ips(mut self, ips: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.datanode_ips = ips.into_iter().collect();
        self
    }

    /// Starts the DataNodes and the NameNode on 127.0.0.1, on free ports.
    pub async fn start(self) -> std::io::Result<MiniDfs> {
        let mut datanodes = Vec::new();
        for i in 0..self.datanodes {
            let ip = if self.datanode_ips.is_empty() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                self.datanode_ips[i % self.datanode_ips.len()]
            };
            datanodes.push(DataNode::start(ip, Arc::new(BlockStore::default())).await?);
        }
        let ids = datanodes
            .iter()
            .enumerate()
            .map(|(i, dn)| DatanodeIdProto {
                ip_addr: dn.addr.ip().to_string(),
                host_name: "localhost".into(),
                datanode_uuid: format!("eddy-test-datanode-{i}"),
                xfer_port: u32::from(dn.addr.port()),
                info_port: 0,
                ipc_port: 0,
                info_secure_port: Some(0),
            })
            .collect();
        let stores = datanodes.iter().map(|d| Arc::clone(&d.store)).collect();
        let options = NamespaceOptions { block_size: self.block_size, write_replication: 1, listing_limit: self.listing_limit };
        let namespace = Arc::new(Mutex::new(Namespace::new(options, ids, stores)));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let handler = NameNodeHandler { namespace: Arc::clone(&namespace), calls: Arc::clone(&calls) };
        // Offer TOKEN and SIMPLE as an unsecured NameNode does (it always has a token manager).
        let namenode = IpcServer::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(handler), SaslOffer::TokenAndSimple).await?;
        Ok(MiniDfs { namenode, datanodes, namespace, calls, replication: self.replication })
    }
}

/// A running test HDFS; dropping it stops every server.
#[derive(Debug)]
pub struct MiniDfs {
    namenode: IpcServer,
    datanodes: Vec<DataNode>,
    namespace: Arc<Mutex<Namespace>>,
    calls: Arc<Mutex<Vec<String>>>,
    replication: usize,
}

impl MiniDfs {
    /// Settings, starting from the defaults.
    pub fn builder() -> MiniDfsBuilder {
        MiniDfsBuilder::default()
    }

    /// `hdfs://127.0.0.1:PORT`, the file system URL clients use.
    pub fn url(&self) -> String {
        format!("hdfs://{}", self.namenode.local_addr())
    }

    /// The NameNode's address.
    pub fn namenode_addr(&self) -> SocketAddr {
        self.namenode.local_addr()
    }

    fn ns(&self) -> std::sync::MutexGuard<'_, Namespace> {
        // A poisoned lock means a test already panicked; carry on with the data.
        self.namespace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Places a complete file (parents created), split into blocks with the configured
    /// replication. Panics on an invalid path, as test set-up should.
    pub fn put(&self, path: &str, data: impl Into<Bytes>) {
        let replication = self.replication;
        if let Err(e) = self.ns().seed(path, &data.into(), replication, "eddy-test") {
            #[allow(clippy::panic)]
            {
                panic!("cannot place {path}: {}", e.message)
            }
        }
    }

    /// Creates a directory and its parents.
    pub fn mkdirs(&self, path: &str) {
        let _ = self.ns().mkdirs(path, "eddy-test", true);
    }

    /// A complete file's bytes, read from the DataNodes' stores.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.ns().read(path)
    }

    /// Every file under `dir`, recursively, as absolute paths in name order.
    pub fn files_under(&self, dir: &str) -> Vec<String> {
        self.ns().files_under(dir)
    }

    /// The owner recorded for a file or directory (the user the client connected as).
    pub fn owner(&self, path: &str) -> Option<String> {
        let ns = self.ns();
        match ns.get(path)? {
            Inode::Dir { owner, .. } => Some(owner.clone()),
            Inode::File(f) => Some(f.owner.clone()),
        }
    }

    /// Number of blocks of a file.
    pub fn block_count(&self, path: &str) -> usize {
        match self.ns().get(path) {
            Some(Inode::File(f)) => f.blocks.len(),
            _ => 0,
        }
    }

    /// The DataNodes' stores, to see which nodes served reads.
    pub fn datanode_stores(&self) -> Vec<Arc<BlockStore>> {
        self.datanodes.iter().map(|d| Arc::clone(&d.store)).collect()
    }

    /// Stops DataNode `index` (its port refuses connections); the NameNode keeps listing it
    /// as a replica holder, as a real NameNode does until the node's heartbeats time out.
    pub fn stop_datanode(&self, index: usize) {
        if let Some(d) = self.datanodes.get(index) {
            d.stop();
        }
    }

    /// Stops the NameNode (its port refuses connections).
    pub fn stop_namenode(&self) {
        self.namenode.stop();
    }

    /// NameNode methods called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}
