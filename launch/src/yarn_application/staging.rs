//! The application's staging directory on the cluster's file system: the mapper uploaded
//! once per content, and the directory removed when the application ends.

use std::time::Instant;

use eddy_frame::storage::{self, StorageOptions};
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_yarn_client::conf::HadoopConf;
use sha2::Digest;

use crate::{DriverError, DriverResult};

/// Removes a staging directory and everything in it.
pub(super) async fn remove_staging_dir(dir: &str, storage: &StorageOptions) -> Result<bool, eddy_frame::FrameError> {
    storage::delete_recursive(dir, storage).await
}

/// Uploads the mapper to `dir` (reusing an identical one already there) and describes it as
/// a YARN local resource, with the size and timestamp the NodeManagers will check.
pub(super) async fn stage_mapper(
    mapper: &std::path::Path,
    dir: &str,
    options: &StorageOptions,
) -> DriverResult<(LocalResourceProto, bool)> {
    let bytes = tokio::fs::read(mapper)
        .await
        .map_err(|source| DriverError::Io { what: format!("cannot read the mapper binary {}", mapper.display()), source })?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let target = format!("{}/eddy-mapper", dir.trim_end_matches('/'));
    let sidecar = format!("{target}.sha256");
    let staging = |e: eddy_frame::FrameError| DriverError::Yarn { reason: format!("staging the mapper in {dir}: {e}") };
    let existing = storage::stat(&target, options).await.map_err(staging)?;
    let same = match existing {
        Some(s) if s.size == bytes.len() as u64 => {
            let sum = storage::read_range(&sidecar, 0..64, options).await.ok();
            sum.as_deref() == Some(digest.as_bytes())
        }
        _ => false,
    };
    if same {
        println!("Reusing the identical mapper already at {target}");
    } else {
        let started = Instant::now();
        let size = bytes.len();
        storage::write(&target, bytes.into(), options).await.map_err(staging)?;
        storage::write(&sidecar, digest.into_bytes().into(), options).await.map_err(staging)?;
        println!("Uploaded the mapper ({:.1} MB) to {target} in {:.2} s", size as f64 / 1e6, started.elapsed().as_secs_f64());
    }
    let stat = storage::stat(&target, options).await.map_err(staging)?.ok_or_else(|| {
        staging(eddy_frame::FrameError::InvalidUrl { url: target.clone(), reason: "the uploaded file is not there".into() })
    })?;
    let url = url::Url::parse(&target).map_err(|e| DriverError::InvalidArgument { reason: format!("--staging-dir {dir}: {e}") })?;
    let resource = LocalResourceProto {
        resource: Some(UrlProto {
            scheme: Some(url.scheme().to_string()),
            host: url.host_str().map(str::to_string),
            port: Some(url.port().map(i32::from).unwrap_or(-1)),
            file: Some(url.path().to_string()),
            user_info: None,
        }),
        size: Some(stat.size as i64),
        timestamp: Some(stat.modified_ms),
        r#type: Some(LocalResourceTypeProto::File as i32),
        visibility: Some(LocalResourceVisibilityProto::Application as i32),
        ..Default::default()
    };
    Ok((resource, same))
}

pub(super) fn default_staging_dir(conf: &HadoopConf, user: &str, app_text: &str) -> DriverResult<String> {
    let fs = conf.default_fs().ok_or_else(|| DriverError::InvalidArgument {
        reason: "core-site.xml sets no fs.defaultFS: pass --staging-dir hdfs://NAMENODE:PORT/DIR".into(),
    })?;
    Ok(format!("{}/user/{user}/.eddy/{app_text}", fs.trim_end_matches('/')))
}
