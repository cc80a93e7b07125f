//! Import from a real S3 server (SeaweedFS on 127.0.0.1): a directory of parts, an s3a://
//! glob, and a missing object, through real driver and worker processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_tests::s3::S3Server;
use eddy_tests::*;

const WAIT: Duration = Duration::from_secs(90);

fn part(start: usize, rows: usize) -> String {
    let mut text = String::from("id,value,kind\n");
    for i in start..start + rows {
        text.push_str(&format!("{i},{},{}\n", (i % 97) as f64 * 0.5, ["a", "b", "c"][i % 3]));
    }
    text
}

fn import(server: &S3Server, url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.args(["local", "--nodes", "2", "--port", "0", "--memory", "256m", "--check", "--import", url]).arg("--log-dir").arg(dir.path());
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    (status.success(), d.output())
}

#[test]
fn imports_directories_and_globs_from_s3_and_reports_missing_objects() {
    let server = S3Server::start("lake");
    server.put("tables/t1/part-0.csv", part(0, 3000).as_bytes());
    server.put("tables/t1/part-1.csv", part(3000, 2000).as_bytes());
    server.put("tables/t1/_SUCCESS", b"");
    server.put("tables/other.csv", part(0, 10).as_bytes());

    let (ok, out) = import(&server, "s3://lake/tables/t1");
    assert!(ok, "{out}");
    assert!(out.contains("rows x 3 columns") && out.contains(": 5000 rows"), "{out}");
    // id 0..5000: mean 2499.5, min 0, max 4999 (computed from how the parts were made).
    let id = out.lines().find(|l| l.starts_with("id ")).unwrap();
    let cells: Vec<&str> = id.split_whitespace().collect();
    assert_eq!(&cells[1..7], &["int", "5000", "0", "0", "4999", "2499.5000"], "{id}");
    let kind = out.lines().find(|l| l.starts_with("kind ")).unwrap();
    assert!(kind.contains("3 levels"), "{kind}");

    let (ok, out) = import(&server, "s3a://lake/tables/t1/part-*.csv");
    assert!(ok, "{out}");
    assert!(out.contains(": 5000 rows"), "{out}");

    let (ok, out) = import(&server, "s3://lake/tables/nothing-here.csv");
    assert!(!ok);
    assert!(out.contains("s3://lake/tables/nothing-here.csv") && out.contains("no such file"), "{out}");
}
