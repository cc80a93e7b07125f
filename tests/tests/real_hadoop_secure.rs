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
use std::time::{Duration, Instant};

use eddy_tests::frames::{chunk_ip, csv_part, csv_part_values, frame_info, import_and_wait, local_driver, WatchedCloud};
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

/// A one-row CSV in a new test directory: the directory and the file's URL.
fn tiny_csv(h: &RealHadoop, name: &str) -> (String, String) {
    let dir = test_dir(name);
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/x.csv"), b"a,b\n1,2\n", 1, "127.0.0.1");
    let url = h.url(&format!("{dir}/x.csv"));
    (dir, url)
}

/// Runs `cmd`, which must fail; its output.
fn fails(cmd: Command) -> String {
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    out
}

fn rows(cloud: &WatchedCloud, frame: &str) -> Value {
    frame_info(&cloud.http, &cloud.base, frame)["rows"].clone()
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
    let (dir, url) = tiny_csv(&h, "no-ticket");

    // No ticket at all.
    let logs = tempfile::tempdir().unwrap();
    let mut cmd = secure_driver(&h, &k, logs.path(), &logs.path().join("none.cc"));
    cmd.arg("--import").arg(&url);
    let out = fails(cmd);
    assert!(out.contains("no Kerberos ticket") && out.contains("kinit") && out.contains("--keytab"), "{out}");
    assert!(!out.contains("GssMajorCodes"), "no library debug output: {out}");

    // A ticket that has expired (the KDC grants the short lifetime asked for; MIT's kinit
    // refused 4 s at times as too short).
    let cache = logs.path().join("short.cc");
    k.kinit(&cache, Some("15s"));
    std::thread::sleep(Duration::from_secs(17));
    let mut cmd = secure_driver(&h, &k, logs.path(), &cache);
    cmd.arg("--import").arg(&url);
    let out = fails(cmd);
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
    let out = fails(cmd);
    assert!(out.contains(&format!("has no keys for bob@EXAMPLE.COM (it holds {})", k.principal)), "{out}");
    assert!(!out.contains("registered"), "no worker started: {out}");
}

#[test]
fn an_unknown_principal_and_a_refused_token_say_what_to_do() {
    let Some((h, k)) = RealHadoop::secure_from_env("an_unknown_principal_and_a_refused_token_say_what_to_do") else {
        return;
    };
    let (dir, url) = tiny_csv(&h, "refused");
    let logs = tempfile::tempdir().unwrap();

    // A keytab for a principal the KDC has never heard of.
    let keytab = logs.path().join("bob.keytab");
    k.keytab_for("bob@EXAMPLE.COM", &keytab);
    let mut cmd = secure_driver(&h, &k, logs.path(), &logs.path().join("none.cc"));
    cmd.args(["--principal", "bob@EXAMPLE.COM"]).arg("--keytab").arg(&keytab).arg("--import").arg(&url);
    let out = fails(cmd);
    assert!(out.contains("the KDC does not know this principal") && out.contains("--principal"), "{out}");

    // A delegation token that was cancelled, as a container's would be past its lifetime:
    // workers with only that token (no ticket) are told why it ends and what to do.
    let token_file = logs.path().join("cancelled-token");
    let token_path = token_file.display().to_string();
    let fetcher = "org.apache.hadoop.hdfs.tools.DelegationTokenFetcher";
    let fetched = h.client_as("alice", &["class", fetcher, "--renewer", "alice", &token_path]);
    assert!(fetched.ok, "fetching a token: {}", fetched.stderr);
    let cancelled = h.client_as("alice", &["class", fetcher, "--cancel", &token_path]);
    assert!(cancelled.ok, "cancelling it: {}", cancelled.stderr);
    let mut cmd = secure_driver(&h, &k, logs.path(), &logs.path().join("none.cc"));
    cmd.env("HADOOP_TOKEN_FILE_LOCATION", &token_file).arg("--import").arg(&url);
    let out = fails(cmd);
    assert!(out.contains("refused this worker's HDFS delegation token") && out.contains("maximum lifetime"), "{out}");
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

/// The secure cluster's delegation token renewal interval (scripts/hadoop-cluster.sh env
/// prints it).
fn token_renew_interval() -> Option<Duration> {
    std::env::var("HADOOP_CLUSTER_TOKEN_RENEW_SECS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs)
}

/// `eddy-driver yarn` on the loopback network with free ports, `KRB5CCNAME` = `cache`.
fn secure_yarn(h: &RealHadoop, k: &Kerberos, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.args(["yarn", "--port", "0", "--network", "127.0.0.0/8"])
        .args(args)
        .env("HADOOP_CONF_DIR", &h.conf)
        .env("KRB5_CONFIG", &k.krb5_conf)
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
        .env_remove("HADOOP_USER_NAME")
        .env_remove("YARN_CONF_DIR");
    cmd
}

#[test]
fn a_disowned_yarn_cloud_reads_and_writes_hdfs_with_delegation_tokens_only() {
    let Some((h, k)) = RealHadoop::secure_from_env("a_disowned_yarn_cloud_reads_and_writes_hdfs_with_delegation_tokens_only") else {
        return;
    };
    // Two files of several 1 MiB blocks, each with one replica on one DataNode.
    let dir = test_dir("yarn");
    let (a, b) = (csv_part(0, 280_000), csv_part(280_000, 280_000));
    h.hdfs_ok(&["-mkdir", "-p", &format!("{dir}/in")]);
    h.put(&format!("{dir}/in/part-0.csv"), a.as_bytes(), 1, "127.0.0.2");
    h.put(&format!("{dir}/in/part-1.csv"), b.as_bytes(), 1, "127.0.0.3");
    let (blocks_a, blocks_b) = ((a.len() as u64).div_ceil(1 << 20) as usize, (b.len() as u64).div_ceil(1 << 20) as usize);

    // The driver submits with the user's ticket cache; containers get delegation tokens.
    let logs = tempfile::tempdir().unwrap();
    let notify = logs.path().join("notify.txt");
    let cache = logs.path().join("alice.cc");
    k.kinit(&cache, None);
    let mut cmd = secure_yarn(&h, &k, &cache, &["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--disown"]);
    cmd.arg("--notify").arg(&notify);
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Submitted YARN application", WAIT);
    let submitted = Instant::now();
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("as alice") && out.contains("Cloud of size 2 formed"), "{out}");
    let notified = read_notify(&notify);
    let app = notified.app_opt.clone().unwrap();
    for pid in eddy_tests::real_hadoop::container_processes(&app) {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("EDDY_KERBEROS_KEYTAB") && !environ.contains("KRB5CCNAME"), "a container got a login: {environ}");
    }

    // The workers have not touched HDFS yet. Past the cluster's token renewal interval their
    // delegation token works only if the ResourceManager renewed it (its renewer is the
    // ResourceManager's principal).
    match token_renew_interval() {
        Some(renew) => {
            let past = (renew * 3 / 2).saturating_sub(submitted.elapsed());
            println!("waiting {past:?}, past the {renew:?} token renewal interval");
            std::thread::sleep(past);
        }
        None => println!("HADOOP_CLUSTER_TOKEN_RENEW_SECS is not set: token renewal is not checked"),
    }
    let http = client_with_token(notified.token_opt.as_deref(), Duration::from_secs(60));
    let base = format!("http://{}", notified.leader);
    let (frame, job) = import_and_wait(&http, &base, json!({"path": h.url(&format!("{dir}/in")), "split_bytes": 1 << 20}), WAIT);
    assert!(!frame.is_empty(), "{job}");
    // Block locations came from the NameNode over the containers' delegation token: each
    // file's splits were read on the host of its blocks.
    let info = frame_info(&http, &base, &frame);
    assert_eq!(info["rows"], 560_000, "{info}");
    let hosts: Vec<String> = info["chunks"].as_array().unwrap().iter().map(chunk_ip).collect();
    let expected: Vec<&str> = std::iter::repeat_n("127.0.0.2", blocks_a).chain(std::iter::repeat_n("127.0.0.3", blocks_b)).collect();
    assert_eq!(hosts, expected, "chunks read on the hosts of their blocks: {info}");
    let out_path = format!("{dir}/out.csv");
    let r: Value = http
        .post(format!("{base}/3/Frames/{frame}/export"))
        .json(&json!({"path": h.url(&out_path), "format": "csv", "single_file": true}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(r["export"]["files"].is_array(), "{r}");
    let exported = csv_part_values(&h.hdfs_ok(&["-cat", &out_path]));
    assert!(exported == [csv_part_values(&a), csv_part_values(&b)].concat(), "the exported CSV holds other values");
    assert_eq!(h.hdfs_ok(&["-stat", "%u", &out_path]).trim(), "alice");

    // Ended with the keytab alone this time.
    let mut kill = Command::new(bin("eddy-driver"));
    kill.args(["yarn", "kill", &app, "--principal", &k.principal, "--keytab"])
        .arg(&k.keytab)
        .env("HADOOP_CONF_DIR", &h.conf)
        .env("KRB5_CONFIG", &k.krb5_conf)
        .env("KRB5CCNAME", format!("FILE:{}", logs.path().join("none.cc").display()))
        .env_remove("HADOOP_USER_NAME");
    let mut kill = Proc::spawn(kill);
    assert!(kill.wait_exit(WAIT).success(), "{}", kill.output());
    let report = h.application(&app);
    assert_eq!(report.get("State").map(String::as_str), Some("KILLED"), "{report:?}");
    assert_eq!(report.get("User").map(String::as_str), Some("alice"), "{report:?}");
    eddy_tests::real_hadoop::assert_no_container_left(&app, Duration::from_secs(30));
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}

#[test]
fn an_attached_yarn_cloud_relays_its_master_token_keeps_worker_tokens_fresh_and_ends_succeeded() {
    let Some((h, k)) =
        RealHadoop::secure_from_env("an_attached_yarn_cloud_relays_its_master_token_keeps_worker_tokens_fresh_and_ends_succeeded")
    else {
        return;
    };
    let dir = test_dir("attached");
    h.hdfs_ok(&["-mkdir", "-p", &dir]);
    h.put(&format!("{dir}/x.csv"), csv_part(0, 10_000).as_bytes(), 1, "127.0.0.1");
    // The driver logs in from the keytab alone, so it can obtain tokens for as long as it runs.
    let logs = tempfile::tempdir().unwrap();
    let notify = logs.path().join("notify.txt");
    let mut cmd = secure_yarn(
        &h,
        &k,
        &logs.path().join("none.cc"),
        &["--nodes", "2", "--memory", "256m", "--timeout", "120s", "--name", "secure-attached"],
    );
    cmd.arg("--notify").arg(&notify).arg("--principal").arg(&k.principal).arg("--keytab").arg(&k.keytab);
    let mut d = Proc::spawn(cmd);
    d.wait_for_line("Watching the cloud", WAIT);
    let notified = read_notify(&notify);
    let app = notified.app_opt.clone().unwrap();

    // The driver gives the workers tokens of its own as soon as it watches. Those first ones
    // must be in place before the file is read: a copy taken while they were being written
    // and cancelled then, with their log line printed just after, passed for the refresh the
    // test waits for below, and the import read with the cancelled token (seen in CI).
    let given = || d.output().lines().filter(|l| l.contains("new HDFS delegation tokens")).count();
    wait_until("the driver's first tokens given to the workers", WAIT, || given() >= 1);
    // The workers' current HDFS token is cancelled (as if past its maximum lifetime, which the
    // ResourceManager does not renew beyond); the driver, logged in from the keytab, gives
    // them new ones, so the import below reads with a token obtained after the cancellation.
    let worker_token_file = eddy_tests::real_hadoop::container_processes(&app)
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "eddy-mapper"))
        .find_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let environ = String::from_utf8_lossy(&environ).into_owned();
            let is_worker = environ.split('\0').any(|v| v.starts_with("CONTAINER_ID=") && !v.ends_with("_000001"));
            let file = environ.split('\0').find_map(|v| v.strip_prefix("HADOOP_TOKEN_FILE_LOCATION="))?.to_string();
            is_worker.then_some(file)
        })
        .expect("a worker container with a token file");
    let first_token = logs.path().join("first-token");
    std::fs::copy(&worker_token_file, &first_token).unwrap();
    let given_before = given();
    let cancel = h.client_as(
        "alice",
        &["class", "org.apache.hadoop.hdfs.tools.DelegationTokenFetcher", "--cancel", &first_token.display().to_string()],
    );
    assert!(cancel.ok, "cancelling the first token: {}", cancel.stderr);
    let renew = token_renew_interval().unwrap_or(Duration::from_secs(60));
    let asked = Instant::now();
    while given() == given_before {
        assert!(asked.elapsed() < renew * 3, "the driver gave no new tokens within {:?}; output:\n{}", renew * 3, d.output());
        std::thread::sleep(Duration::from_millis(200));
    }

    let http = client_with_token(notified.token_opt.as_deref(), Duration::from_secs(60));
    let base = format!("http://{}", notified.leader);
    let (_, job) = import_and_wait(&http, &base, json!({"path": h.url(&dir)}), WAIT);
    assert_eq!(job["jobs"][0]["rows"], 10_000, "{job}");
    let replaced = std::fs::read(&worker_token_file).unwrap();
    assert_ne!(replaced, std::fs::read(&first_token).unwrap(), "the worker's token file still holds the first token");

    assert_eq!(post(&format!("{base}/3/Shutdown")), 200);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains(&format!("{app} finished: SUCCEEDED")), "{out}");
    let report = h.application(&app);
    assert_eq!(report.get("Final-State").map(String::as_str), Some("SUCCEEDED"), "{report:?}");
    assert_eq!(report.get("User").map(String::as_str), Some("alice"), "{report:?}");
    // The master container that relayed the token left by itself, as did the workers.
    eddy_tests::real_hadoop::assert_no_container_left(&app, Duration::from_secs(30));
    assert!(!h.exists(&format!("/user/alice/.eddy/{app}")), "the staging directory is left");
    h.hdfs(&["-rm", "-r", "-skipTrash", &dir]);
}
