//! HDFS (`hdfs://` and `viewfs://`) through hdfs-native, behind the same `object_store`
//! interface as every other scheme (the `hdfs-native-object-store` adapter: ranged reads,
//! listing, atomic writes by temporary file and rename come with it, so HDFS needs no code
//! path of its own in import and export).
//!
//! Configuration is Hadoop's: `HADOOP_CONF_DIR` (core-site.xml, hdfs-site.xml) for name
//! services, HA NameNodes, viewfs mount tables and `hadoop.security.authentication`; the user
//! is `HADOOP_USER_NAME` (else the login user); Kerberos tickets come from the credential cache.
//!
//! Clients are cached per `scheme://authority` and run their connections on one small runtime
//! of their own, so that a cached client outlives whichever runtime first asked for it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use hdfs_native::{Client, ClientBuilder};
use hdfs_native_object_store::HdfsObjectStore;
use object_store::ObjectStore;

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

static CLIENTS: LazyLock<Mutex<HashMap<String, Hdfs>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

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
pub(crate) fn connect(authority: &str) -> FrameResult<Hdfs> {
    let invalid = |reason: String| FrameError::InvalidUrl { url: authority.to_string(), reason };
    if let Some(h) = CLIENTS.lock().ok().and_then(|c| c.get(authority).cloned()) {
        return Ok(h);
    }
    let runtime = IO_RUNTIME.as_ref().map_err(|e| invalid(format!("cannot start the HDFS I/O runtime: {e}")))?;
    let config = HashMap::from([
        ("dfs.client.failover.max.attempts".to_string(), FAILOVER_ATTEMPTS.to_string()),
        ("dfs.client.failover.sleep.max.millis".to_string(), FAILOVER_SLEEP_MAX_MS.to_string()),
    ]);
    let client =
        ClientBuilder::new().with_url(authority).with_config(config).with_io_runtime(runtime.handle().clone()).build().map_err(|e| {
            invalid(format!("{e}; for a name service or viewfs mount table, set HADOOP_CONF_DIR to the cluster's configuration"))
        })?;
    let hdfs = Hdfs { store: Arc::new(HdfsObjectStore::new(client.clone())), client };
    if let Ok(mut c) = CLIENTS.lock() {
        c.insert(authority.to_string(), hdfs.clone());
    }
    Ok(hdfs)
}

/// The block size of a file, for aligning splits with blocks.
pub(crate) async fn block_size(authority: &str, path: &str) -> Option<u64> {
    let hdfs = connect(authority).ok()?;
    hdfs.client.get_file_info(path).await.ok()?.blocksize.filter(|b| *b > 0)
}
