//! `eddy-driver yarn` end to end against the protocol-level test YARN and HDFS from
//! `eddy-hadoop-testkit` on 127.0.0.1: the driver uploads the mapper to the test HDFS,
//! submits to the test ResourceManager, registers as ApplicationMaster with the AMRMToken,
//! starts containers on test NodeManagers with NMTokens; the NodeManagers download the mapper
//! from HDFS and run it as local processes, which form the cloud.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::time::Duration;

use eddy_hadoop_ipc::proto::yarn::{FinalApplicationStatusProto, YarnApplicationStateProto};
use eddy_hadoop_testkit::yarn::MiniYarn;
use eddy_hadoop_testkit::MiniDfs;
use eddy_tests::frames::csv_part;
use eddy_tests::*;

const WAIT: Duration = Duration::from_secs(120);

struct Cluster {
    rt: tokio::runtime::Runtime,
    dfs: MiniDfs,
    yarn: MiniYarn,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(node_managers: usize, memory_mb: i64) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Large blocks: the mapper binary is tens of MB.
        let dfs = rt.block_on(MiniDfs::builder().datanodes(2).block_size(32 << 20).replication(1).start()).unwrap();
        // The virtual memory check on, as Apache's NodeManager has it by default.
        let yarn = rt
            .block_on(MiniYarn::builder().node_managers(node_managers).memory_mb(memory_mb).vmem_check(2.1).start(&dir.path().join("yarn")))
            .unwrap();
        yarn.write_conf(&dir.path().join("conf"), Some(&dfs.url())).unwrap();
        Cluster { rt, dfs, yarn, dir }
    }

    fn driver(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("eddy-driver"));
        cmd.arg("yarn")
            .args(["--port", "0", "--network", "127.0.0.0/8", "--driver-ip", "127.0.0.1"])
            .args(args)
            .env("HADOOP_CONF_DIR", self.dir.path().join("conf"))
            .env("HADOOP_USER_NAME", "analyst")
            .env_remove("YARN_CONF_DIR");
        cmd
    }

    fn only_app(&self) -> i32 {
        let apps = self.yarn.applications();
        assert_eq!(apps.len(), 1, "{apps:?}");
        apps[0]
    }

    fn assert_nothing_left(&self, app: i32) {
        wait_until("container processes gone", Duration::from_secs(20), || self.yarn.running_processes() == 0);
        assert!(self.dfs.files_under("/user/analyst/.eddy").is_empty(), "staging left behind: {:?}", self.dfs.files_under("/user/analyst"));
        assert!(!self.yarn.containers(app).is_empty());
    }
}

#[test]
fn a_yarn_cloud_imports_from_hdfs_and_finishes_the_application() {
    let c = Cluster::start(2, 4096);
    c.dfs.put("/data/part-0.csv", csv_part(0, 5000));
    let url = format!("{}/data/part-0.csv", c.dfs.url());
    let mut d =
        Proc::spawn(c.driver(&["--nodes", "3", "--memory", "256m", "--cores", "1", "--name", "sales-eddy", "--check", "--import", &url]));
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("Cloud of size 3 formed"), "{out}");
    assert!(out.contains(": 5000 rows"), "{out}");
    let app = c.only_app();
    assert!(out.contains(&format!("_{app:04} finished: SUCCEEDED")), "{out}");
    assert_eq!(c.yarn.application_state(app), Some(YarnApplicationStateProto::Finished));
    assert_eq!(c.yarn.final_status(app), Some(FinalApplicationStatusProto::AppSucceeded));
    let submitted = c.yarn.submission(app).unwrap();
    assert_eq!(submitted.application_name.as_deref(), Some("sales-eddy"));
    assert_eq!(submitted.unmanaged_am, Some(true));
    // Three worker containers of 256 MiB + 10 %, spread over both NodeManagers.
    let containers = c.yarn.containers(app);
    assert_eq!(containers.len(), 3, "{containers:?}");
    assert!(containers.iter().any(|x| x.node == 0) && containers.iter().any(|x| x.node == 1), "{containers:?}");
    c.assert_nothing_left(app);
    drop(c.rt);
}

#[test]
fn with_fail_fast_a_container_killed_by_yarn_fails_the_application_with_its_exit_status() {
    let c = Cluster::start(2, 4096);
    let notify = c.dir.path().join("leader.txt");
    // The gather service takes the first free port of --driver-port-range.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = taken.local_addr().unwrap().port();
    let range = format!("{first}-{}", first.saturating_add(50));
    let mut cmd = c.driver(&["--nodes", "2", "--memory", "256m", "--driver-port-range", &range, "--fail-fast"]);
    cmd.arg("--notify").arg(&notify);
    let mut d = Proc::spawn(cmd);
    let line = d.wait_for_line("gather service on", WAIT);
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    assert!(port > first && port <= first + 50, "{line}");
    d.wait_for_line("Watching the cloud", WAIT);
    let app = c.only_app();
    let notified = read_notify(&notify);
    assert!(notified.app_opt.as_deref().unwrap().ends_with(&format!("_{app:04}")), "the notify file names the application: {notified:?}");

    let victim = c.yarn.containers(app)[0].id.clone();
    assert!(c.yarn.kill_container(&victim, -104, "Container is running beyond physical memory limits. Current usage: 300 MB of 282 MB"));
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains(&victim) && out.contains("-104 KILLED_EXCEEDED_PMEM") && out.contains("beyond physical memory"), "{out}");
    assert_eq!(c.yarn.application_state(app), Some(YarnApplicationStateProto::Finished));
    assert_eq!(c.yarn.final_status(app), Some(FinalApplicationStatusProto::AppFailed));
    assert!(c.yarn.diagnostics(app).unwrap().contains("KILLED_EXCEEDED_PMEM"));
    c.assert_nothing_left(app);
    drop(c.rt);
}

#[test]
fn ctrl_c_ends_the_application_killed_and_cleans_up() {
    let c = Cluster::start(2, 4096);
    let mut d = Proc::spawn(c.driver(&["--nodes", "2", "--memory", "256m"]));
    d.wait_for_line("Watching the cloud", WAIT);
    let app = c.only_app();
    assert_eq!(c.yarn.running_processes(), 2);
    d.signal(libc::SIGINT);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert_eq!(status.code(), Some(130), "an orderly stop on Ctrl-C exits 128 + SIGINT: {out}");
    assert!(out.contains(&format!("_{app:04} finished: KILLED")), "{out}");
    assert_eq!(c.yarn.application_state(app), Some(YarnApplicationStateProto::Finished));
    assert_eq!(c.yarn.final_status(app), Some(FinalApplicationStatusProto::AppKilled));
    c.assert_nothing_left(app);
    drop(c.rt);
}

#[test]
fn a_cluster_without_room_times_out_with_yarn_diagnostics() {
    // Two nodes of 1 GiB hold two 660 MiB containers, not three.
    let c = Cluster::start(2, 1024);
    // The timeout leaves the two containers that fit time to start on a loaded machine.
    let mut d = Proc::spawn(c.driver(&["--nodes", "3", "--memory", "600m", "--timeout", "40s"]));
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(!status.success(), "{out}");
    assert!(out.contains("asked for 3 containers of 660 MiB and 1 vcores; 2 allocated"), "{out}");
    assert!(out.contains("headroom") && out.contains("no room for 1 more containers of 660 MiB"), "{out}");
    assert!(out.contains("never registered: worker 2"), "{out}");
    let app = c.only_app();
    assert_eq!(c.yarn.final_status(app), Some(FinalApplicationStatusProto::AppFailed));
    c.assert_nothing_left(app);

    // A master larger than any container: YARN refuses the submission; its staging is removed.
    let mut d = Proc::spawn(c.driver(&["--nodes", "1", "--memory", "256m", "--disown", "--am-memory-mb", "2048"]));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains("submitApplication") && out.contains("InvalidResourceRequestException"), "{out}");
    assert!(out.contains("Removed the staging directory"), "{out}");
    c.assert_nothing_left(app);

    // Larger than any container YARN allows: refused before anything is submitted.
    let mut d = Proc::spawn(c.driver(&["--nodes", "1", "--memory", "2g"]));
    assert!(!d.wait_exit(WAIT).success());
    let out = d.output();
    assert!(out.contains("largest container YARN allows (1024 MiB"), "{out}");
    assert_eq!(c.yarn.applications().len(), 1, "neither refused request made an application");
    drop(c.rt);
}

#[test]
fn a_disowned_cloud_runs_under_its_own_application_master_until_yarn_kill() {
    let c = Cluster::start(2, 4096);
    let notify = c.dir.path().join("leader.txt");
    let mut cmd = c.driver(&["--nodes", "2", "--memory", "256m", "--disown"]);
    cmd.arg("--notify").arg(&notify);
    let mut d = Proc::spawn(cmd);
    let status = d.wait_exit(WAIT);
    let out = d.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("Cloud of size 2 formed"), "{out}");
    let app = c.only_app();
    assert_eq!(c.yarn.application_state(app), Some(YarnApplicationStateProto::Running));
    let submitted = c.yarn.submission(app).unwrap();
    assert_eq!(submitted.unmanaged_am, Some(false));
    // The master's container plus two workers, all running after the driver left.
    let containers = c.yarn.containers(app);
    assert_eq!(containers.iter().filter(|x| x.is_am).count(), 1, "{containers:?}");
    assert_eq!(c.yarn.running_processes(), 3, "{containers:?}");
    let notified = read_notify(&notify);
    let leader = notified.leader.clone();
    let app_text = notified.app_opt.clone().unwrap();
    assert!(app_text.ends_with(&format!("_{app:04}")), "{notified:?}");
    let cloud = get_json(&format!("http://{leader}/3/Cloud")).unwrap();
    assert_eq!(cloud["cloud_size"], 2, "{cloud}");

    let yarn_kill = |id: &str| {
        let mut kill = Command::new(bin("eddy-driver"));
        kill.args(["yarn", "kill", id]).env("HADOOP_CONF_DIR", c.dir.path().join("conf")).env("HADOOP_USER_NAME", "analyst");
        let mut k = Proc::spawn(kill);
        (k.wait_exit(WAIT).success(), k.output())
    };
    // Garbage is refused clearly.
    let (ok, out) = yarn_kill("not-an-id");
    assert!(!ok && out.contains("is not an application id"), "{out}");
    let (ok, out) = yarn_kill(&app_text);
    assert!(ok, "{out}");
    assert_eq!(c.yarn.application_state(app), Some(YarnApplicationStateProto::Killed));
    c.assert_nothing_left(app);
    drop(c.rt);
}
