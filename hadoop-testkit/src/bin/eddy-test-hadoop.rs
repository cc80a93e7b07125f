//! The protocol-level test HDFS and YARN as a process, for clients that are not Rust (Spark's
//! own YARN client and ApplicationMaster, in `python/tests/test_spark_submit.py`).
//!
//!     eddy-test-hadoop DIR [NODE_MANAGERS] [SECONDS]
//!
//! Starts a NameNode with one DataNode and a ResourceManager with NODE_MANAGERS (default 2)
//! NodeManagers, all on 127.0.0.1, with work files under DIR; writes `core-site.xml` and
//! `yarn-site.xml` to DIR/conf and prints `HADOOP_CONF_DIR=DIR/conf`. Runs until its standard
//! input closes or SECONDS (default 900) pass, whichever is first.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use eddy_hadoop_testkit::yarn::MiniYarn;
use eddy_hadoop_testkit::MiniDfs;
use tokio::io::AsyncReadExt;

fn usage(problem: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{problem}\nusage: eddy-test-hadoop DIR [NODE_MANAGERS] [SECONDS]"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or_else(|| usage("missing DIR"))?);
    let node_managers: usize = args.get(1).map_or(Ok(2), |a| a.parse()).map_err(|_| usage("NODE_MANAGERS is a number"))?;
    let seconds: u64 = args.get(2).map_or(Ok(900), |a| a.parse()).map_err(|_| usage("SECONDS is a number"))?;
    std::fs::create_dir_all(&dir)?;
    let dfs = MiniDfs::builder().datanodes(1).replication(1).start().await?;
    let yarn = MiniYarn::builder().node_managers(node_managers).memory_mb(8192).vcores(4).start(&dir.join("yarn")).await?;
    let conf = yarn.write_conf(&dir.join("conf"), Some(&dfs.url()))?;
    println!("HADOOP_CONF_DIR={}", conf.display());
    std::io::stdout().flush()?;
    // Standard input at EOF (the test closed its end, or died) or the time limit: stop.
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let watch = async {
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(seconds), watch).await;
    drop(yarn);
    drop(dfs);
    Ok(())
}
