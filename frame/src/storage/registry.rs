//! The node's store registry: every store and file-system client this node opened, by what it
//! was opened with, and the settings of this node's environment that open them.
//!
//! One per node (in its [`crate::storage::StorageOptions`]): one S3 client and connection pool
//! per bucket, endpoint and region for the node's life instead of one per ranged read, one
//! HDFS client per `scheme://authority`, one NameNode IPC connection per address. Options that
//! arrive with a request are given the node's registry before use, so a worker reads with its
//! own credentials and Hadoop user, never the coordinator's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;

use eddy_hadoop_ipc::credentials::Credentials;

use crate::storage::hdfs::Hdfs;
use crate::{FrameError, FrameResult};

/// Shared by every clone; see the module documentation.
#[derive(Clone)]
pub struct StoreRegistry(Arc<Inner>);

struct Inner {
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    hdfs: Mutex<HashMap<String, Hdfs>>,
    namenodes: Mutex<HashMap<String, Arc<eddy_hadoop_ipc::client::IpcClient>>>,
    hadoop_user: String,
    kerberos_opt: Option<KerberosLogin>,
    token_file_opt: Option<std::path::PathBuf>,
    token_update: Mutex<()>,
    store_env: Vec<(String, String)>,
}

/// A Kerberos principal and the keytab its tickets are obtained from (`EDDY_KERBEROS_PRINCIPAL`,
/// `EDDY_KERBEROS_KEYTAB`). Without one, HDFS clients use the ticket cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosLogin {
    /// `user@REALM`.
    pub principal: String,
    /// The keytab's path.
    pub keytab: String,
}

impl Default for StoreRegistry {
    fn default() -> Self {
        Self::new(&eddy_common::env::Environment::default())
    }
}

impl StoreRegistry {
    /// A registry that opens stores with the settings in `env`: the Hadoop user
    /// (`HADOOP_USER_NAME`, else the login user), the Kerberos login (`EDDY_KERBEROS_PRINCIPAL`
    /// and `EDDY_KERBEROS_KEYTAB`, else the ticket cache) and the standard variables of each
    /// object store (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn new(env: &eddy_common::env::Environment) -> Self {
        let kerberos_opt = match (env.key(&eddy_common::keys::KERBEROS_PRINCIPAL), env.key(&eddy_common::keys::KERBEROS_KEYTAB)) {
            (Some(principal), Some(keytab)) => Some(KerberosLogin { principal: principal.to_string(), keytab: keytab.to_string() }),
            _ => None,
        };
        Self(Arc::new(Inner {
            stores: Mutex::default(),
            hdfs: Mutex::default(),
            namenodes: Mutex::default(),
            hadoop_user: env.hadoop_user(),
            kerberos_opt,
            // A YARN container's delegation tokens.
            token_file_opt: env.get("HADOOP_TOKEN_FILE_LOCATION").filter(|p| !p.is_empty()).map(std::path::PathBuf::from),
            token_update: Mutex::default(),
            store_env: env.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        }))
    }

    /// The user HDFS and YARN see.
    pub fn hadoop_user(&self) -> &str {
        &self.0.hadoop_user
    }

    /// The Kerberos principal and keytab HDFS clients log in with, if any.
    pub fn kerberos(&self) -> Option<&KerberosLogin> {
        self.0.kerberos_opt.as_ref()
    }

    /// The Hadoop token file of this process (`HADOOP_TOKEN_FILE_LOCATION`), if any.
    pub(crate) fn token_file(&self) -> Option<&std::path::Path> {
        self.0.token_file_opt.as_deref()
    }

    /// Puts new delegation tokens into this process's token file in place of those of the
    /// same alias; returns how many. hdfs-native and the NameNode client read the file for each
    /// new connection, so new connections use them. The file is written beside the old one and
    /// renamed over it, so no reader sees half a file.
    pub fn update_tokens(&self, update: &Credentials) -> FrameResult<usize> {
        let bad = |reason: String| FrameError::InvalidArgument { what: "token update", reason };
        let path = self.token_file().ok_or_else(|| {
            bad("this node has no Hadoop token file (HADOOP_TOKEN_FILE_LOCATION): only YARN containers take new tokens".into())
        })?;
        // One update at a time: each reads the file the previous one wrote.
        let _one = lock(&self.0.token_update);
        let mut current = Credentials::read_file(path).map_err(bad)?;
        for (alias, token) in &update.tokens {
            match current.tokens.iter_mut().find(|(a, _)| a == alias) {
                Some((_, old)) => *old = token.clone(),
                None => current.tokens.push((alias.clone(), token.clone())),
            }
        }
        let mut staged = path.as_os_str().to_owned();
        staged.push(format!(".eddy-new-{}", std::process::id()));
        let staged = std::path::PathBuf::from(staged);
        // A staged file left by a crash would keep its mode; a fresh one is created 0600.
        let _ = std::fs::remove_file(&staged);
        let written = current
            .write_file(&staged)
            .and_then(|()| std::fs::File::open(&staged)?.sync_all())
            .and_then(|()| std::fs::rename(&staged, path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&staged);
            bad(format!("cannot replace the token file {}: {e}", path.display()))
        })?;
        // Connections made with the old tokens stay until they break; the next ones use these.
        lock(&self.0.namenodes).clear();
        Ok(update.tokens.len())
    }

    /// The environment as object_store's builders take it: lower-cased names
    /// (`aws_access_key_id`, `google_service_account`, `azure_storage_account_name`, ...).
    pub(crate) fn store_env(&self) -> &[(String, String)] {
        &self.0.store_env
    }

    pub(crate) fn store(&self, key: String, open: impl FnOnce() -> FrameResult<Arc<dyn ObjectStore>>) -> FrameResult<Arc<dyn ObjectStore>> {
        get_or_open(&self.0.stores, key, open)
    }

    pub(crate) fn hdfs(&self, authority: &str, open: impl FnOnce() -> FrameResult<Hdfs>) -> FrameResult<Hdfs> {
        get_or_open(&self.0.hdfs, authority.to_string(), open)
    }

    pub(crate) fn namenode(&self, addr: &str) -> Option<Arc<eddy_hadoop_ipc::client::IpcClient>> {
        lock(&self.0.namenodes).get(addr).cloned()
    }

    pub(crate) fn keep_namenode(&self, addr: &str, client: Arc<eddy_hadoop_ipc::client::IpcClient>) {
        lock(&self.0.namenodes).insert(addr.to_string(), client);
    }

    /// Forgets a broken NameNode connection: the next caller opens a new one.
    pub(crate) fn drop_namenode(&self, addr: &str) {
        lock(&self.0.namenodes).remove(addr);
    }

    /// How many object stores are open (tests).
    pub fn len(&self) -> usize {
        lock(&self.0.stores).len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opened outside the lock: two first users may both open one, and one is kept.
fn get_or_open<T: Clone>(map: &Mutex<HashMap<String, T>>, key: String, open: impl FnOnce() -> FrameResult<T>) -> FrameResult<T> {
    if let Some(v) = lock(map).get(&key) {
        return Ok(v.clone());
    }
    let v = open()?;
    Ok(lock(map).entry(key).or_insert(v).clone())
}

impl std::fmt::Debug for StoreRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreRegistry({} open, user {})", self.len(), self.0.hadoop_user)
    }
}

/// Any two registries are alike: the registry is not a setting.
impl PartialEq for StoreRegistry {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StoreRegistry {}
