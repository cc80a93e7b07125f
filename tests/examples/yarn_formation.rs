//! Time from `eddy-driver yarn` start to "Cloud formed" against the protocol-level test YARN
//! and HDFS on 127.0.0.1, split into staging (mapper upload), submission, registration as
//! ApplicationMaster, allocation of every container, their launch, and clouding.
//!
//!     cargo build --release --bins
//!     cargo run --release -p eddy-tests --example yarn_formation -- [RUNS] [N...]
//!
//! Uses the binaries in target/release (or $EDDY_BIN_DIR).
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
    let dfs = rt.block_on(MiniDfs::builder().datanodes(2).block_size(64 << 20).replication(1).start()).unwrap();
    let yarn = rt.block_on(MiniYarn::builder().node_managers(4).memory_mb(16384).vcores(16).start(&dir.path().join("yarn"))).unwrap();
    let conf = yarn.write_conf(&dir.path().join("conf"), Some(&dfs.url())).unwrap();
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
