//! Eddy against a Kerberized real Apache Hadoop: `HADOOP_CLUSTER_SECURE=1
//! scripts/hadoop-cluster.sh start` runs a KDC (Hadoop's MiniKdc) and the daemons with
//! Kerberos, block access tokens, SASL data transfer protection and the
//! `hadoop.rpc.protection` of `HADOOP_CLUSTER_RPC_PROTECTION`. `scripts/real-hadoop-test.sh`
//! runs these tests once per protection (authentication, integrity, privacy); each is skipped
//! (saying why) without such a cluster.
//!
//! Clouds are local (`eddy-driver local`): their workers read and write HDFS with the user's
//! ticket cache or with `--principal` and `--keytab`. What they write is read back with
//! Hadoop's own client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use eddy_tests::frames::{csv_part, csv_part_values, local_driver, WatchedCloud};
use eddy_tests::real_hadoop::{Kerberos, RealHadoop};
use eddy_tests::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

/// A directory of its own for each test (and run).
fn test_dir(name: &str) -> String {
    format!("/secure/{name}-{}", std::process::id())
}

/// `eddy-driver local` towards the Kerberized cluster, with `KRB5CCNAME` = `cache` (which may
/// not exist: no ticket).
fn secure_driver(h: &RealHadoop, k: &Kerberos, logs: &Path, cache: &Path) -> Command {
    let mut cmd = local_driver(&logs.join("logs"));
    cmd.env("HADOOP_CONF_DIR", &h.conf)
        .env("KRB5_CONFIG", &k.krb5_conf)
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
        .env_remove("HADOOP_USER_NAME");
    cmd
}

fn rows(cloud: &WatchedCloud, frame: &str) -> Value {
    let info = cloud.http.get(format!("{}/3/Frames/{frame}", cloud.base)).send().unwrap().json::<Value>().unwrap();
    let info = if info["frame"].is_object() { info["frame"].clone() } else { info };
    info["rows"].clone()
}

#[test]
fn with_a_ticket_cache_workers_import_and_export_and_hadoop_reads_it_back() {
    let Some((h, k)) = RealHadoop::secure_from_env("with_a_ticket_cache_workers_import_and_export_and_hadoop_reads_it_back") else {
        return;
    };
    let dir = test_dir("cache");
    let (a, b) = (csv_part(0, 150_000), csv_part(150_000, 50_000));
    h.hdfs_ok(&["-mkdir", "-p", &format!("{dir}/in")]);
    h.put(&format!("{dir}/in/part-0.csv"), a.as_bytes(), 2, "127.0.0.1");
    h.put(&format!("{dir}/in/part-1.csv"), b.as_bytes(), 2, "127.0.0.1");

    let logs = tempfile::tempdir().unwrap();
    let cache = logs.path().join("alice.cc");
    k.kinit(&cache, None);
    let notify = logs.path().join("leader.txt");
    let mut cmd = secure_driver(&h, &k, logs.path(), &cache);
    cmd.arg("--notify").arg(&notify);
    let cloud = WatchedCloud::start(cmd, &notify, WAIT);
    // Split small: every worker reads blocks from the DataNodes over protected transfers.
    let (frame, job) = cloud.import(json!({"path": h.url(&format!("{dir}/in")), "split_bytes": 1 << 20}), WAIT);
    assert!(!frame.is_empty(), "{job}");
    assert_eq!(rows(&cloud, &frame), 200_000);

    let (glob, job) = cloud.import(json!({"path": h.url(&format!("{dir}/in/part-1*.csv"))}), WAIT);
    assert!(!glob.is_empty(), "{job}");
    let out = format!("{dir}/out/part-1.csv");
    let r = cloud.post(&format!("/3/Frames/{glob}/export"), json!({"path": h.url(&out), "format": "csv", "single_file": true}));
    assert!(r["export"]["files"].is_array(), "{r}");
    let text = h.hdfs_ok(&["-cat", &out]);
    assert!(csv_part_values(&text) == csv_part_values(&b), "the exported CSV holds other values");
    let owner = h.hdfs_ok(&["-stat", "%u", &out]);
    assert_eq!(owner.trim(), "alice", "files are written as the ticket's principal");
    cloud.stop(WAIT);
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

#[test]
fn with_a_keytab_no_ticket_cache_is_needed_or_touched() {
    let Some((h, k)) = RealHadoop::secure_from_env("with_a_keytab_no_ticket_cache_is_needed_or_touched") else { return };
    let dir = test_dir("keytab");
    let a = csv_part(0, 20_000);
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/part-0.csv"), a.as_bytes(), 1, "127.0.0.1");

    let logs = tempfile::tempdir().unwrap();
    let cache = logs.path().join("none.cc");
    let notify = logs.path().join("leader.txt");
    let mut cmd = secure_driver(&h, &k, logs.path(), &cache);
    cmd.arg("--notify").arg(&notify).arg("--principal").arg(&k.principal).arg("--keytab").arg(&k.keytab);
    let cloud = WatchedCloud::start(cmd, &notify, WAIT);
    let (frame, job) = cloud.import(json!({"path": h.url(&dir)}), WAIT);
    assert!(!frame.is_empty(), "{job}");
    assert_eq!(rows(&cloud, &frame), 20_000);
    let out = format!("{dir}/out.csv");
    let r = cloud.post(&format!("/3/Frames/{frame}/export"), json!({"path": h.url(&out), "format": "csv", "single_file": true}));
    assert!(r["export"]["files"].is_array(), "{r}");
    assert!(csv_part_values(&h.hdfs_ok(&["-cat", &out])) == csv_part_values(&a));
    cloud.stop(WAIT);
    assert!(!cache.exists(), "the user's ticket cache was written: tickets from a keytab stay in the process");
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

#[test]
fn without_a_ticket_or_with_an_expired_one_the_import_says_what_to_do() {
    let Some((h, k)) = RealHadoop::secure_from_env("without_a_ticket_or_with_an_expired_one_the_import_says_what_to_do") else {
        return;
    };
    let dir = test_dir("no-ticket");
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/x.csv"), b"a,b\n1,2\n", 1, "127.0.0.1");
    let url = h.url(&format!("{dir}/x.csv"));

    // No ticket at all.
    let logs = tempfile::tempdir().unwrap();
    let mut cmd = secure_driver(&h, &k, logs.path(), &logs.path().join("none.cc"));
    cmd.arg("--import").arg(&url);
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("no Kerberos ticket") && out.contains("kinit") && out.contains("--keytab"), "{out}");
    assert!(!out.contains("GssMajorCodes"), "no library debug output: {out}");

    // A ticket that has expired (the KDC grants the short lifetime asked for; MIT's kinit
    // refused 4 s at times as too short).
    let cache = logs.path().join("short.cc");
    k.kinit(&cache, Some("15s"));
    std::thread::sleep(Duration::from_secs(17));
    let mut cmd = secure_driver(&h, &k, logs.path(), &cache);
    cmd.arg("--import").arg(&url);
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("expired") && out.contains("kinit"), "{out}");
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

#[test]
fn a_keytab_without_the_principal_is_refused_before_any_worker_starts() {
    let Some((h, k)) = RealHadoop::secure_from_env("a_keytab_without_the_principal_is_refused_before_any_worker_starts") else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let mut cmd = secure_driver(&h, &k, logs.path(), &logs.path().join("none.cc"));
    cmd.args(["--principal", "bob@EXAMPLE.COM"]).arg("--keytab").arg(&k.keytab);
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains(&format!("has no keys for bob@EXAMPLE.COM (it holds {})", k.principal)), "{out}");
    assert!(!out.contains("registered"), "no worker started: {out}");

    // YARN needs Kerberos towards the ResourceManager, which is not spoken: said plainly.
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.args(["yarn", "--nodes", "1", "--memory", "256m", "--timeout", "20s"])
        .env("HADOOP_CONF_DIR", &h.conf)
        .env("KRB5_CONFIG", &k.krb5_conf)
        .env_remove("YARN_CONF_DIR");
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("requires Kerberos") && out.contains("does not speak yet"), "{out}");
}
