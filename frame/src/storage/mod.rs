//! Storage: every path is a URL, resolved by `object_store` (local files, S3, and what
//! object_store supports for free). A plain or relative path is a local file, resolved against
//! the current directory of the node that received it, and reported that way.
//!
//! S3 settings come from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...)
//! plus [`StorageOptions`] (endpoint, region, plain HTTP) for MinIO/SeaweedFS/Ceph, which use
//! path-style addressing.
//!
//! HDFS is in [`hdfs`]; the node's open stores and clients in [`registry`].

pub(crate) mod hdfs;
mod kerberos;
pub(crate) mod registry;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::{FrameError, FrameResult};

pub use crate::storage::registry::StoreRegistry;

/// Settings for object stores that are not in the URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorageOptions {
    /// S3 endpoint (`EDDY_S3_ENDPOINT`), e.g. `http://127.0.0.1:8333`.
    pub s3_endpoint_opt: Option<String>,
    /// S3 region (`AWS_REGION`), default us-east-1.
    pub s3_region_opt: Option<String>,
    /// Directories that `file://` imports and exports may use (`EDDY_IMPORT_ROOTS`); `None`:
    /// wherever this process's user may read and write. An empty list refuses every path.
    #[serde(default)]
    pub file_roots_opt: Option<Vec<PathBuf>>,
    /// Hosts that `http(s)://` imports may name (`EDDY_HTTP_ALLOW_HOSTS`). `None`: any host
    /// except those that resolve to a loopback, link-local or unspecified address (an open
    /// import endpoint must not reach the node's own services or a cloud's metadata server).
    #[serde(default)]
    pub http_allow_hosts_opt: Option<Vec<String>>,
    /// The node's open stores; never sent.
    #[serde(skip)]
    pub stores: StoreRegistry,
}

impl StorageOptions {
    /// A node's options from its environment: `EDDY_S3_ENDPOINT`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
    /// `EDDY_IMPORT_ROOTS`, `EDDY_HTTP_ALLOW_HOSTS`, and the registry's settings.
    pub fn from_env(env: &eddy_common::env::Environment) -> Self {
        let env_map = env.as_map();
        Self {
            s3_endpoint_opt: env.key(&eddy_common::keys::S3_ENDPOINT).map(str::to_string),
            s3_region_opt: env_map.get("AWS_REGION").or_else(|| env_map.get("AWS_DEFAULT_REGION")).filter(|s| !s.is_empty()).cloned(),
            file_roots_opt: env.get(eddy_common::keys::IMPORT_ROOTS.name).map(parse_roots),
            http_allow_hosts_opt: env
                .get(eddy_common::keys::HTTP_ALLOW_HOSTS.name)
                .map(|v| v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()),
            stores: StoreRegistry::new(env),
        }
    }
}

impl StorageOptions {
    /// A node whose REST API anyone may use (`--rest-auth none`) on an address others can
    /// reach must not serve its host's files: without import roots, local paths are then
    /// refused. Returns whether it did so (for a warning).
    pub fn close_files_of_an_open_node(&mut self, rest_is_open: bool, ip: std::net::IpAddr) -> bool {
        if rest_is_open && !ip.is_loopback() && self.file_roots_opt.is_none() {
            self.file_roots_opt = Some(Vec::new());
            return true;
        }
        false
    }
}

/// `DIR:DIR...` as canonical directories (a root that does not exist allows nothing).
pub fn parse_roots(text: &str) -> Vec<PathBuf> {
    text.split(':')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).canonicalize().unwrap_or_else(|_| PathBuf::from(d)))
        .collect()
}

/// `path` with links and `..` resolved as far as it exists (an export's target may not yet).
fn resolved(path: &Path) -> Option<PathBuf> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Some(out);
        }
        let name = existing.file_name()?;
        if name == ".." {
            return None;
        }
        rest.push(name.to_os_string());
        existing = existing.parent()?;
    }
}

/// Refuses `file://` paths outside the roots.
fn check_file_roots(url: &url::Url, path: &Path, options: &StorageOptions) -> FrameResult<()> {
    let Some(roots) = &options.file_roots_opt else { return Ok(()) };
    let real = resolved(path);
    if real.as_ref().is_some_and(|p| roots.iter().any(|root| p.starts_with(root))) {
        return Ok(());
    }
    let allowed = if roots.is_empty() {
        "no local directory is allowed".to_string()
    } else {
        format!("allowed: {}", roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", "))
    };
    Err(FrameError::InvalidUrl {
        url: url.to_string(),
        reason: format!(
            "local files outside the import roots are refused ({allowed}); start the cloud with --import-roots DIR to allow a directory"
        ),
    })
}

/// Refuses `http(s)://` hosts outside the allow-list, and hosts on loopback, link-local or
/// unspecified addresses unless the allow-list names them.
fn check_http_host(url: &url::Url, options: &StorageOptions) -> FrameResult<()> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let refuse = |reason: String| Err(FrameError::InvalidUrl { url: url.to_string(), reason });
    if let Some(allowed) = &options.http_allow_hosts_opt {
        return if allowed.contains(&host) {
            Ok(())
        } else {
            refuse(format!("{host} is not among the hosts http(s) imports may use (EDDY_HTTP_ALLOW_HOSTS={})", allowed.join(",")))
        };
    }
    use std::net::ToSocketAddrs;
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<std::net::IpAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(e) => return refuse(format!("cannot resolve {host}: {e}")),
    };
    // Loopback, link-local (169.254.169.254 is most clouds' metadata server), unspecified, and
    // the metadata servers elsewhere: Alibaba's 100.100.100.200 and AWS's fd00:ec2::254.
    let internal_v4 = |v4: std::net::Ipv4Addr| {
        v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200)
    };
    let internal = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => internal_v4(*v4),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || *v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.to_ipv4_mapped().is_some_and(internal_v4)
        }
    };
    match addresses.iter().find(|ip| internal(ip)) {
        Some(ip) => refuse(format!(
            "{host} is {ip}, a loopback or link-local address: imports from there are refused unless EDDY_HTTP_ALLOW_HOSTS names {host}"
        )),
        None => Ok(()),
    }
}

/// A located dataset file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Full URL of the file.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// HDFS block size, where the file lives on HDFS (splits are aligned with blocks).
    #[serde(default)]
    pub block_size: Option<u64>,
    /// Where the file's blocks are, where the NameNode told us (splits go to a worker on the
    /// same host where one exists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockLocation>,
}

/// One block of a file and the hosts (IP addresses) that hold a replica of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockLocation {
    /// First byte of the block in the file.
    pub offset: u64,
    /// Bytes in the block.
    pub length: u64,
    /// IP addresses of the DataNodes with a replica.
    pub hosts: Vec<String>,
}

/// An opened store and the path inside it.
#[derive(Debug, Clone)]
pub struct Located {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Path in the store.
    pub path: ObjectPath,
    /// `scheme://authority` prefix used to rebuild full URLs.
    pub base: String,
}

/// Normalises a user path to a URL: `s3a://` becomes `s3://`; plain paths become `file://`
/// URLs resolved against this process's current directory.
pub fn normalize(text: &str) -> FrameResult<url::Url> {
    let t = text.trim();
    if t.is_empty() {
        return Err(FrameError::InvalidUrl { url: text.into(), reason: "it is empty".into() });
    }
    if let Some(rest) = t.strip_prefix("s3a://").or_else(|| t.strip_prefix("s3n://")) {
        return url::Url::parse(&format!("s3://{rest}")).map_err(|e| FrameError::InvalidUrl { url: text.into(), reason: e.to_string() });
    }
    if t.contains("://") {
        return url::Url::parse(t).map_err(|e| FrameError::InvalidUrl { url: text.into(), reason: e.to_string() });
    }
    let path = PathBuf::from(t);
    let absolute = if path.is_absolute() {
        path
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| FrameError::InvalidUrl { url: text.into(), reason: format!("cannot read the current directory: {e}") })?;
        tracing::info!(path = t, resolved = %cwd.join(&path).display(), "relative path resolved on this node");
        cwd.join(path)
    };
    // `..` is not allowed inside object-store paths: resolve it (and links) when the file exists.
    let absolute = absolute.canonicalize().unwrap_or(absolute);
    url::Url::from_file_path(&absolute).map_err(|_| FrameError::InvalidUrl { url: text.into(), reason: "not a valid local path".into() })
}

/// Opens the store for `url`.
pub fn locate(url: &url::Url, options: &StorageOptions) -> FrameResult<Located> {
    let invalid = |reason: String| FrameError::InvalidUrl { url: url.to_string(), reason };
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|_| invalid("not a local path".into()))?;
            check_file_roots(url, &path, options)?;
            let path = ObjectPath::from_absolute_path(&path).map_err(|e| invalid(e.to_string()))?;
            Ok(Located { store: Arc::new(LocalFileSystem::new()), path, base: "file://".into() })
        }
        "s3" => {
            let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| invalid("no bucket: write s3://bucket/key".into()))?;
            let key = format!("s3|{bucket}|{:?}|{:?}", options.s3_endpoint_opt, options.s3_region_opt);
            let store = options.stores.store(key, || {
                // What AmazonS3Builder::from_env reads, from the node's environment snapshot.
                let mut builder = options
                    .stores
                    .store_env()
                    .iter()
                    .filter(|(k, _)| k.starts_with("aws_"))
                    .filter_map(|(k, v)| Some((k.parse::<object_store::aws::AmazonS3ConfigKey>().ok()?, v)))
                    .fold(AmazonS3Builder::new(), |b, (k, v)| b.with_config(k, v))
                    .with_bucket_name(bucket)
                    .with_region(options.s3_region_opt.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_retry(RetryConfig { max_retries: 5, retry_timeout: Duration::from_secs(60), ..Default::default() });
                if let Some(endpoint) = &options.s3_endpoint_opt {
                    // MinIO, SeaweedFS and Ceph speak path-style over plain HTTP.
                    builder = builder.with_endpoint(endpoint).with_allow_http(true).with_virtual_hosted_style_request(false);
                }
                let store = builder.build().map_err(|e| {
                    invalid(format!("{e}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and EDDY_S3_ENDPOINT for non-AWS servers)"))
                })?;
                Ok(Arc::new(store))
            })?;
            // URL paths are percent-encoded (`my%20file.csv`); object paths are not.
            let path = ObjectPath::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
            Ok(Located { store, path, base: format!("s3://{bucket}") })
        }
        "hdfs" | "viewfs" => {
            let authority = &url[..url::Position::BeforePath];
            let hdfs = crate::storage::hdfs::connect(authority, &options.stores)?;
            let path = ObjectPath::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
            Ok(Located { store: hdfs.store, path, base: authority.to_string() })
        }
        "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" | "http" | "https" => {
            if matches!(url.scheme(), "http" | "https") {
                check_http_host(url, options)?;
            }
            // What object_store gives for free, configured the standard way: its builders'
            // keys are the lower-cased environment variables (GOOGLE_SERVICE_ACCOUNT,
            // AZURE_STORAGE_ACCOUNT_NAME, ...).
            let mut options: Vec<(String, String)> = options.stores.store_env().to_vec();
            if url.scheme() == "http" {
                options.push(("allow_http".into(), "true".into()));
            }
            let (store, path) = object_store::parse_url_opts(url, options)
                .map_err(|e| invalid(format!("{e}; credentials come from the standard environment variables of the store")))?;
            // The store may be rooted below the authority (an Azure container or a path-style
            // bucket in an https URL): the base is the URL minus the object's own path.
            let whole = format!("{}{}", &url[..url::Position::BeforePath], url.path());
            let base = whole.strip_suffix(&encoded_path(&path)).unwrap_or(&url[..url::Position::BeforePath]).trim_end_matches('/').to_string();
            Ok(Located { store: Arc::from(store), path, base })
        }
        other => Err(invalid(format!(
            "the scheme {other}:// is not supported; use a plain path, file://, s3://, s3a://, hdfs://, viewfs://, gs://, az://, abfs:// or http(s)://"
        ))),
    }
}

/// `/a/b%20c`: an object path as a URL path, every segment percent-encoded.
fn encoded_path(path: &ObjectPath) -> String {
    let mut url = url::Url::parse("eddy://x/").unwrap_or_else(|_| unreachable!("a constant URL"));
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.clear().extend(path.parts().map(|p| p.as_ref().to_string()));
    }
    if path.parts().count() == 0 {
        return String::new();
    }
    url.path().to_string()
}

fn full_url(base: &str, path: &ObjectPath) -> String {
    format!("{base}{}", encoded_path(path))
}

/// Skips files that are not data: Hadoop's `_SUCCESS` markers, `.crc` checksums, hidden files.
fn is_data_file(path: &ObjectPath) -> bool {
    let name = path.filename().unwrap_or_default();
    !(name.starts_with('_') || name.starts_with('.') || name.ends_with(".crc"))
}

/// Lists the files a URL names: one file, every data file under a directory, or a glob
/// (`*`, `?`, `[..]` in the last segments). Sorted by URL.
pub async fn list(text: &str, options: &StorageOptions) -> FrameResult<Vec<FileEntry>> {
    let url = normalize(text)?;
    let glob_at = url.path().find(['*', '?', '[']);
    let (listing_url, matcher) = match glob_at {
        Some(i) => {
            let path = url.path();
            let dir_end = path[..i].rfind('/').unwrap_or(0);
            let mut dir_url = url.clone();
            dir_url.set_path(&path[..dir_end.max(1)]);
            let pattern = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            let glob = globset::Glob::new(pattern.trim_start_matches('/'))
                .map_err(|e| FrameError::InvalidUrl { url: text.into(), reason: format!("bad glob: {e}") })?
                .compile_matcher();
            (dir_url, Some(glob))
        }
        None => (url.clone(), None),
    };
    let loc = locate(&listing_url, options)?;
    if matcher.is_none() {
        match loc.store.head(&loc.path).await {
            Ok(meta) => {
                let entry = FileEntry { url: full_url(&loc.base, &meta.location), size: meta.size, block_size: None, blocks: Vec::new() };
                return Ok(with_block_sizes(&url, vec![entry], &options.stores).await);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage_error(&url, e)),
        }
    }
    let prefix = if loc.path.as_ref().is_empty() { None } else { Some(&loc.path) };
    let metas: Vec<object_store::ObjectMeta> = loc.store.list(prefix).try_collect().await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => FrameError::NotFound { url: url.to_string() },
        e => storage_error(&url, e),
    })?;
    let mut out: Vec<FileEntry> = metas
        .into_iter()
        .filter(|m| is_data_file(&m.location))
        .filter(|m| matcher.as_ref().is_none_or(|g| g.is_match(m.location.as_ref())))
        .map(|m| FileEntry { url: full_url(&loc.base, &m.location), size: m.size, block_size: None, blocks: Vec::new() })
        .collect();
    if out.is_empty() {
        return Err(FrameError::NotFound { url: url.to_string() });
    }
    out.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(with_block_sizes(&url, out, &options.stores).await)
}

/// A store error, told apart when it means the server is not there at all.
fn storage_error(url: &url::Url, e: object_store::Error) -> FrameError {
    if let Some(advice) = kerberos::explain(&e) {
        return FrameError::Authentication { url: url.to_string(), advice };
    }
    let text = e.to_string();
    if text.contains("Connection refused") || text.contains("connection refused") || text.contains("No route to host") {
        let reason = text.rsplit(": ").next().unwrap_or(&text).to_string();
        return FrameError::Unreachable { url: url.to_string(), reason };
    }
    FrameError::Storage { url: url.to_string(), source: e }
}

/// Fills in HDFS block sizes and locations (16 files at a time); other schemes have none.
async fn with_block_sizes(url: &url::Url, files: Vec<FileEntry>, registry: &StoreRegistry) -> Vec<FileEntry> {
    use futures::StreamExt;
    if !matches!(url.scheme(), "hdfs" | "viewfs") {
        return files;
    }
    let authority = url[..url::Position::BeforePath].to_string();
    futures::stream::iter(files)
        .map(|mut f| {
            let authority = authority.clone();
            async move {
                let path = f.url.strip_prefix(&authority).unwrap_or(&f.url).to_string();
                f.block_size = crate::storage::hdfs::block_size(&authority, &path, registry).await;
                f.blocks = crate::storage::hdfs::block_locations(&authority, &path, f.size, registry).await;
                f
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// Reads bytes `range` of the file at `url`.
pub async fn read_range(url: &str, range: Range<u64>, options: &StorageOptions) -> FrameResult<Bytes> {
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    let parsed = normalize(url)?;
    let loc = locate(&parsed, options)?;
    loc.store.get_range(&loc.path, range.clone()).await.map_err(|e| match kerberos::explain(&e) {
        Some(advice) => FrameError::Authentication { url: url.into(), advice },
        None => FrameError::Read { url: url.into(), range, reason: e.to_string() },
    })
}

/// Writes a whole object.
pub async fn write(url: &str, data: Bytes, options: &StorageOptions) -> FrameResult<()> {
    let parsed = normalize(url)?;
    let loc = locate(&parsed, options)?;
    loc.store.put(&loc.path, data.into()).await.map_err(|e| FrameError::Storage { url: url.into(), source: e })?;
    Ok(())
}

/// Size and modification time (milliseconds since the epoch) of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Bytes.
    pub size: u64,
    /// Modification time as the file system records it (HDFS: the NameNode's milliseconds,
    /// which YARN checks local resources against).
    pub modified_ms: i64,
}

/// Stats one file; `None` when it does not exist.
pub async fn stat(url: &str, options: &StorageOptions) -> FrameResult<Option<FileStat>> {
    let parsed = normalize(url)?;
    if matches!(parsed.scheme(), "hdfs" | "viewfs") {
        let hdfs = crate::storage::hdfs::connect(&parsed[..url::Position::BeforePath], &options.stores)?;
        return match hdfs.client.get_file_info(&percent_decoded(&parsed)).await {
            Ok(s) => Ok(Some(FileStat { size: s.length as u64, modified_ms: s.modification_time as i64 })),
            Err(hdfs_native::HdfsError::FileNotFound(_)) => Ok(None),
            Err(e) => Err(FrameError::Unreachable { url: url.into(), reason: e.to_string() }),
        };
    }
    let loc = locate(&parsed, options)?;
    match loc.store.head(&loc.path).await {
        Ok(meta) => Ok(Some(FileStat { size: meta.size, modified_ms: meta.last_modified.timestamp_millis() })),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(FrameError::Storage { url: url.into(), source: e }),
    }
}

/// Deletes a file or a directory with everything under it; `false` when nothing was there.
pub async fn delete_recursive(url: &str, options: &StorageOptions) -> FrameResult<bool> {
    let parsed = normalize(url)?;
    if matches!(parsed.scheme(), "hdfs" | "viewfs") {
        let hdfs = crate::storage::hdfs::connect(&parsed[..url::Position::BeforePath], &options.stores)?;
        return match hdfs.client.delete(&percent_decoded(&parsed), true).await {
            Ok(deleted) => Ok(deleted),
            Err(hdfs_native::HdfsError::FileNotFound(_)) => Ok(false),
            Err(e) => Err(FrameError::Unreachable { url: url.into(), reason: e.to_string() }),
        };
    }
    let loc = locate(&parsed, options)?;
    let storage = |source| FrameError::Storage { url: url.into(), source };
    let objects: Vec<_> = loc.store.list(Some(&loc.path)).map_ok(|m| m.location).try_collect().await.map_err(storage)?;
    let mut any = false;
    for path in objects.iter().chain(std::iter::once(&loc.path)) {
        match loc.store.delete(path).await {
            Ok(()) => any = true,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    if parsed.scheme() == "file" {
        // object_store leaves empty directories behind on local disks.
        if let Ok(p) = parsed.to_file_path() {
            any |= std::fs::remove_dir_all(&p).is_ok();
        }
    }
    Ok(any)
}

fn percent_decoded(url: &url::Url) -> String {
    ObjectPath::from_url_path(url.path()).map(|p| format!("/{p}")).unwrap_or_else(|_| url.path().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_roots_allow_their_trees_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.csv"), "x\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "x\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.csv")).unwrap();
        let options = StorageOptions { file_roots_opt: Some(parse_roots(&root.display().to_string())), ..Default::default() };
        let ok = |p: &Path| locate(&url::Url::from_file_path(p).unwrap(), &options).is_ok();
        assert!(ok(&root.join("sub/a.csv")));
        assert!(ok(&root.join("new/export.parquet")), "an export target that does not exist yet");
        assert!(!ok(&dir.path().join("secret.txt")));
        assert!(!ok(&root.join("link.csv")), "a link out of the root");
        let err = locate(&url::Url::parse("file:///etc/passwd").unwrap(), &options).unwrap_err().to_string();
        assert!(err.contains("--import-roots") && err.contains("data"), "{err}");
        let none = StorageOptions { file_roots_opt: Some(Vec::new()), ..Default::default() };
        assert!(locate(&url::Url::from_file_path(root.join("sub/a.csv")).unwrap(), &none).is_err());
        assert!(locate(&url::Url::parse("file:///etc/passwd").unwrap(), &StorageOptions::default()).is_ok(), "no roots: no limit");
    }

    #[test]
    fn http_imports_refuse_loopback_and_link_local_unless_allowed() {
        let open = StorageOptions::default();
        for url in [
            "http://127.0.0.1:54321/3/Frames",
            "http://localhost/x.csv",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/x",
            "http://[::ffff:0.0.0.0]/x",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://2130706433/x",
        ] {
            let err = locate(&url::Url::parse(url).unwrap(), &open).unwrap_err().to_string();
            assert!(err.contains("EDDY_HTTP_ALLOW_HOSTS"), "{url}: {err}");
        }
        let listed = StorageOptions { http_allow_hosts_opt: Some(vec!["127.0.0.1".into()]), ..Default::default() };
        assert!(locate(&url::Url::parse("http://127.0.0.1:8000/x.csv").unwrap(), &listed).is_ok());
        let err = locate(&url::Url::parse("http://192.0.2.7/x.csv").unwrap(), &listed).unwrap_err().to_string();
        assert!(err.contains("not among the hosts"), "{err}");
    }

    #[tokio::test]
    async fn lists_files_directories_and_globs_skipping_markers() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.csv", "b.csv", "c.txt", "_SUCCESS", ".hidden", "a.csv.crc"] {
            std::fs::write(dir.path().join(name), "x,y\n1,2\n").unwrap();
        }
        let opts = StorageOptions::default();
        let d = dir.path().display().to_string();
        let all = list(&d, &opts).await.unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let one = list(&format!("{d}/a.csv"), &opts).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].size, 8);
        let globbed = list(&format!("{d}/*.csv"), &opts).await.unwrap();
        assert_eq!(globbed.iter().map(|f| f.url.rsplit('/').next().unwrap().to_string()).collect::<Vec<_>>(), vec!["a.csv", "b.csv"]);
        let bytes = read_range(&one[0].url, 2..5, &opts).await.unwrap();
        assert_eq!(&bytes[..], b"y\n1");
        let missing = list(&format!("{d}/nope.csv"), &opts).await.unwrap_err().to_string();
        assert!(missing.contains("nope.csv") && missing.contains("no such file"), "{missing}");
    }

    #[test]
    fn urls_are_normalised() {
        assert_eq!(normalize("s3a://bucket/k/x.csv").unwrap().as_str(), "s3://bucket/k/x.csv");
        assert!(normalize("relative.csv").unwrap().as_str().starts_with("file:///"));
        assert!(locate(&normalize("ftp://x/y").unwrap(), &StorageOptions::default()).unwrap_err().to_string().contains("not supported"));
        // Locating does not connect: the NameNode is first asked on the first call.
        let hdfs = locate(&normalize("hdfs://nn:8020/dir/x.csv").unwrap(), &StorageOptions::default()).unwrap();
        assert_eq!((hdfs.base.as_str(), hdfs.path.as_ref()), ("hdfs://nn:8020", "dir/x.csv"));
    }

    #[test]
    fn an_s3_bucket_is_opened_once_per_node_and_settings() {
        let options = StorageOptions { s3_endpoint_opt: Some("http://127.0.0.1:9".into()), ..Default::default() };
        let url = |u: &str| url::Url::parse(u).unwrap();
        let a = locate(&url("s3://bucket/a.csv"), &options).unwrap();
        let b = locate(&url("s3://bucket/dir/b.csv"), &options).unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert_eq!(options.stores.len(), 1);
        locate(&url("s3://other/a.csv"), &options).unwrap();
        let elsewhere = StorageOptions { s3_endpoint_opt: Some("http://127.0.0.1:10".into()), ..options.clone() };
        let c = locate(&url("s3://bucket/a.csv"), &elsewhere).unwrap();
        assert!(!Arc::ptr_eq(&a.store, &c.store), "another endpoint is another client");
        assert_eq!(options.stores.len(), 3, "clones share the node's cache");
    }
}
