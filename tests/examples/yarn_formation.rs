//! Time from `eddy-driver yarn` start to "Cloud formed", split into staging (mapper upload),
//! submission, registration as ApplicationMaster, allocation of every container, their launch,
//! and clouding. Against the protocol-level test YARN and HDFS on 127.0.0.1, or, with
//! `EDDY_REAL_HADOOP_CONF` set to its `HADOOP_CONF_DIR`, against a running real Hadoop cluster
//! (`scripts/hadoop-cluster.sh start`; the user `bench` needs a home there).
//!
//!     cargo build --release --bins
//!     cargo run --release -p eddy-tests --example yarn_formation -- [RUNS] [N...]
//!
//! Uses the binaries in target/release (or $EDDY_BIN_DIR). `EDDY_BENCH_STAGING_DIR=URL` passes
//! `--staging-dir URL` (the mapper is uploaded once and reused by later runs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Instant;

use eddy_hadoop_testkit::yarn::MiniYarn;
use eddy_hadoop_testkit::MiniDfs;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let sizes: Vec<usize> = if args.len() > 1 { args[1..].iter().map(|a| a.parse().unwrap()).collect() } else { vec![3, 8] };
    let bin_dir = std::env::var("EDDY_BIN_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release").into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The test servers live as long as `_test_cluster`; a real cluster runs by itself.
    let (conf, _test_cluster) = match std::env::var_os("EDDY_REAL_HADOOP_CONF") {
        Some(conf) => (std::path::PathBuf::from(conf), None),
        None => {
            let dfs = rt.block_on(MiniDfs::builder().datanodes(2).block_size(64 << 20).replication(1).start()).unwrap();
            let yarn =
                rt.block_on(MiniYarn::builder().node_managers(4).memory_mb(16384).vcores(16).start(&dir.path().join("yarn"))).unwrap();
            let conf = yarn.write_conf(&dir.path().join("conf"), Some(&dfs.url())).unwrap();
            (conf, Some((dfs, yarn)))
        }
    };
    let staging: Vec<String> = std::env::var("EDDY_BENCH_STAGING_DIR").map(|d| vec!["--staging-dir".into(), d]).unwrap_or_default();
    println!(
        "{:>3} {:>4} {:>8} {:>9} {:>10} {:>9} {:>8} {:>7} {:>7}",
        "N", "run", "staged", "submitted", "registered", "allocated", "launched", "formed", "wall"
    );
    for &n in &sizes {
        for run in 1..=runs {
            let started = Instant::now();
            let out = Command::new(format!("{bin_dir}/eddy-driver"))
                .args(["yarn", "--nodes", &n.to_string(), "--memory", "256m", "--check", "--port", "0"])
                .args(["--network", "127.0.0.0/8", "--driver-ip", "127.0.0.1"])
                .args(&staging)
                .env("HADOOP_CONF_DIR", &conf)
                .env("HADOOP_USER_NAME", "bench")
                .output()
                .unwrap();
            let wall = started.elapsed().as_secs_f64();
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            let line = text.lines().find(|l| l.starts_with("YARN timeline")).unwrap_or_else(|| panic!("no timeline in {text}"));
            let value =
                |key: &str| line.split(&format!("{key} ")).nth(1).and_then(|r| r.split([',', ' ']).next()).unwrap_or("-").to_string();
            println!(
                "{n:>3} {run:>4} {:>8} {:>9} {:>10} {:>9} {:>8} {:>7} {wall:>7.3}",
                value("staged"),
                value("submitted"),
                value("registered"),
                value("allocated"),
                value("launched"),
                value("formed")
            );
        }
    }
}
