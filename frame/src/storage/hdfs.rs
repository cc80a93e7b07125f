//! HDFS (`hdfs://` and `viewfs://`) through hdfs-native, behind the same `object_store`
//! interface as every other scheme (the `hdfs-native-object-store` adapter: ranged reads,
//! listing, atomic writes by temporary file and rename come with it, so HDFS needs no code
//! path of its own in import and export).
//!
//! Configuration is Hadoop's: `HADOOP_CONF_DIR` (core-site.xml, hdfs-site.xml) for name
//! services, HA NameNodes, viewfs mount tables and `hadoop.security.authentication`; the user
//! is `HADOOP_USER_NAME` (else the login user). On a Kerberized cluster tickets come from the
//! node's keytab (`EDDY_KERBEROS_PRINCIPAL` and `EDDY_KERBEROS_KEYTAB`; MIT Kerberos obtains
//! them again before they expire) or else from the ticket cache (`kinit`, `KRB5CCNAME`).
//!
//! Clients are kept in the node's [`StoreRegistry`] per `scheme://authority` and run their
//! connections on one small runtime of their own, so that a kept client outlives whichever
//! runtime first asked for it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use hdfs_native::{Client, ClientBuilder};
use hdfs_native_object_store::HdfsObjectStore;
use object_store::ObjectStore;

use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::gssapi::Login;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::protocols::CLIENT_NAMENODE;
use eddy_hadoop_ipc::{IpcError, IpcResult};

use crate::storage::registry::{KerberosLogin, StoreRegistry};
use crate::{FrameError, FrameResult};

/// Failover attempts against the NameNode(s) before an error is reported. hdfs-native's
/// default (15, with sleeps growing to 15 s) keeps an import of an unreachable NameNode
/// silent for minutes; 4 attempts still ride over an HA failover.
const FAILOVER_ATTEMPTS: &str = "4";
const FAILOVER_SLEEP_MAX_MS: &str = "4000";

static IO_RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eddy-hdfs-io")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

/// A connected file system.
#[derive(Clone)]
pub(crate) struct Hdfs {
    pub client: Client,
    pub store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Hdfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hdfs")
    }
}

/// The (cached) client for `authority` (`hdfs://nn:8020`, `hdfs://nameservice`, `viewfs://cluster`).
pub(crate) fn connect(authority: &str, registry: &StoreRegistry) -> FrameResult<Hdfs> {
    registry.hdfs(authority, || open(authority, registry.kerberos()))
}

fn open(authority: &str, kerberos_opt: Option<&KerberosLogin>) -> FrameResult<Hdfs> {
    let invalid = |reason: String| FrameError::InvalidUrl { url: authority.to_string(), reason };
    let runtime = IO_RUNTIME.as_ref().map_err(|e| invalid(format!("cannot start the HDFS I/O runtime: {e}")))?;
    let config = HashMap::from([
        ("dfs.client.failover.max.attempts".to_string(), FAILOVER_ATTEMPTS.to_string()),
        ("dfs.client.failover.sleep.max.millis".to_string(), FAILOVER_SLEEP_MAX_MS.to_string()),
    ]);
    let mut builder = ClientBuilder::new().with_url(authority).with_config(config).with_io_runtime(runtime.handle().clone());
    if let Some(login) = kerberos_opt {
        // A memory cache of this process's own: MIT Kerberos fills it from the keytab (and
        // again before the tickets expire), and the user's ticket cache is left alone.
        builder = builder
            .with_kerberos_principal(&login.principal)
            .with_kerberos_keytab(&login.keytab)
            .with_kerberos_cache(format!("MEMORY:eddy-{}", login.principal));
    }
    let client = builder.build().map_err(|e| {
        invalid(format!("{e}; for a name service or viewfs mount table, set HADOOP_CONF_DIR to the cluster's configuration"))
    })?;
    Ok(Hdfs { store: Arc::new(HdfsObjectStore::new(client.clone())), client })
}

/// Where a file's blocks are, asked of the NameNode with our own IPC client
/// (`getBlockLocations`; hdfs-native keeps block locations private).
///
/// Only for `hdfs://host:port` URLs: a name service or viewfs would need the HA and
/// mount-table resolution hdfs-native does. Anything that fails means "no locality", never
/// a failed import.
pub(crate) async fn block_locations(
    authority: &str,
    path: &str,
    size: u64,
    registry: &StoreRegistry,
) -> Vec<crate::storage::BlockLocation> {
    use eddy_hadoop_ipc::proto::hdfs::{GetBlockLocationsRequestProto, GetBlockLocationsResponseProto};
    let Some(addr) = authority.strip_prefix("hdfs://").filter(|a| a.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())) else {
        return Vec::new();
    };
    let ask = async {
        let client = namenode_client(addr, registry).await?;
        let request = GetBlockLocationsRequestProto { src: path.to_string(), offset: 0, length: size };
        let answer = client.call::<_, GetBlockLocationsResponseProto>("getBlockLocations", &request).await;
        if matches!(answer, Err(eddy_hadoop_ipc::IpcError::Io { .. } | eddy_hadoop_ipc::IpcError::Protocol { .. })) {
            // A broken connection: the next file gets a new one.
            registry.drop_namenode(addr);
        }
        answer
    };
    match ask.await {
        Ok(response) => response
            .locations
            .map(|l| l.blocks)
            .unwrap_or_default()
            .into_iter()
            .map(|b| crate::storage::BlockLocation {
                offset: b.offset,
                length: b.b.num_bytes.unwrap_or(0),
                hosts: b.locs.into_iter().map(|d| d.id.ip_addr).collect(),
            })
            .collect(),
        Err(e) => {
            tracing::debug!(authority, path, "no block locations, splits are placed by size only: {e}");
            Vec::new()
        }
    }
}

/// One IPC connection per NameNode, shared by every file of every import; its tasks run on
/// the HDFS I/O runtime so that it outlives the runtime that first asked.
async fn namenode_client(addr: &str, registry: &StoreRegistry) -> eddy_hadoop_ipc::IpcResult<Arc<eddy_hadoop_ipc::client::IpcClient>> {
    if let Some(c) = registry.namenode(addr) {
        return Ok(c);
    }
    let user = registry.hadoop_user().to_string();
    let unavailable = |message: String| eddy_hadoop_ipc::IpcError::Protocol { addr: addr.to_string(), message };
    let runtime = IO_RUNTIME.as_ref().map_err(|e| unavailable(e.clone()))?;
    let target = addr.to_string();
    let login = match registry.kerberos() {
        Some(k) => Login::Keytab { principal: k.principal.clone(), keytab: k.keytab.clone() },
        None => Login::TicketCache,
    };
    let token_opt = registry.token_file().and_then(|f| delegation_token(f, addr));
    let client = runtime
        .spawn(async move { connect_namenode(&target, &user, &login, token_opt.as_ref()).await })
        .await
        .map_err(|e| unavailable(e.to_string()))??;
    let client = Arc::new(client);
    registry.keep_namenode(addr, Arc::clone(&client));
    Ok(client)
}

/// SIMPLE first; a Kerberized NameNode then with the process's delegation token for it (a
/// YARN container's), else with Kerberos (the node's keytab or ticket cache).
async fn connect_namenode(addr: &str, user: &str, login: &Login, token_opt: Option<&TokenProto>) -> IpcResult<IpcClient> {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    match IpcClient::connect(addr, CLIENT_NAMENODE, user, TIMEOUT).await {
        Err(IpcError::KerberosRequired { .. }) => match token_opt {
            Some(token) => IpcClient::connect_with_token(addr, CLIENT_NAMENODE, user, token, TIMEOUT).await,
            None => IpcClient::connect_with_kerberos(addr, CLIENT_NAMENODE, login, TIMEOUT).await,
        },
        other => other,
    }
}

/// The HDFS delegation token for the NameNode at `addr` in a Hadoop token file.
fn delegation_token(file: &std::path::Path, addr: &str) -> Option<TokenProto> {
    let credentials = eddy_hadoop_ipc::credentials::Credentials::read_file(file).ok()?;
    credentials
        .tokens
        .into_iter()
        .map(|(_, t)| t)
        .find(|t| t.kind == eddy_hadoop_ipc::credentials::HDFS_DELEGATION_TOKEN && t.service == addr)
}

/// The block size of a file, for aligning splits with blocks.
pub(crate) async fn block_size(authority: &str, path: &str, registry: &StoreRegistry) -> Option<u64> {
    let hdfs = connect(authority, registry).ok()?;
    hdfs.client.get_file_info(path).await.ok()?.blocksize.filter(|b| *b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn block_sizes_and_locations_come_from_the_namenode() {
        let ips = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]].map(std::net::IpAddr::from);
        let dfs =
            eddy_hadoop_testkit::MiniDfs::builder().datanodes(3).block_size(1024).replication(2).datanode_ips(ips).start().await.unwrap();
        dfs.put("/d/f.csv", vec![b'x'; 2500]);
        let url = dfs.url();
        let registry = StoreRegistry::default();
        assert_eq!(block_size(&url, "/d/f.csv", &registry).await, Some(1024));
        let blocks = block_locations(&url, "/d/f.csv", 2500, &registry).await;
        let offsets: Vec<u64> = blocks.iter().map(|b| b.offset).collect();
        assert_eq!(offsets, [0, 1024, 2048]);
        assert_eq!(blocks[2].length, 452);
        assert_eq!(blocks[0].hosts, ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(blocks[1].hosts, ["127.0.0.3", "127.0.0.4"]);
        // No such file, or no NameNode: no locality, and no error.
        assert!(block_locations(&url, "/nope", 1, &registry).await.is_empty());
        assert!(block_locations("hdfs://nameservice1", "/d/f.csv", 1, &registry).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_with_spaces_and_accents_list_and_read_back() {
        let dfs = eddy_hadoop_testkit::MiniDfs::builder().datanodes(2).block_size(1024).start().await.unwrap();
        dfs.put("/lake/ts=2024-01-01 00:00/données 1.csv", b"a,b\n1,2\n".to_vec());
        let storage = crate::storage::StorageOptions::default();
        let files = crate::storage::list(&format!("{}/lake", dfs.url()), &storage).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].url, format!("{}/lake/ts=2024-01-01%2000:00/donn%C3%A9es%201.csv", dfs.url()));
        let bytes = crate::storage::read_range(&files[0].url, 0..files[0].size, &storage).await.unwrap();
        assert_eq!(&bytes[..], b"a,b\n1,2\n");
        // A glob over the same names.
        let globbed = crate::storage::list(&format!("{}/lake/ts=*/donn*.csv", dfs.url()), &storage).await.unwrap();
        assert_eq!(globbed, files);
    }
}
