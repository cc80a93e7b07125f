//! The ApplicationMaster and NodeManager clients against the test YARN, every call over Hadoop
//! IPC with TOKEN authentication: register with the AMRMToken from the report, get
//! containers, start processes on NodeManagers with NMTokens, hear of their ends with YARN's
//! exit statuses, finish.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::proto::yarn::*;
use eddy_hadoop_ipc::protocols::APPLICATION_MASTER;
use eddy_hadoop_testkit::yarn::MiniYarn;
use eddy_yarn_client::am::{container_id_text, ApplicationMaster};
use eddy_yarn_client::rm::ResourceManager;

const T: Duration = Duration::from_secs(10);

async fn submitted(yarn: &MiniYarn) -> (ResourceManager, ApplicationIdProto) {
    let rm = ResourceManager::connect(&[yarn.address()], "dora", T).await.unwrap();
    let app = rm.new_application().await.unwrap();
    let context = ApplicationSubmissionContextProto {
        application_id: Some(app.id),
        application_name: Some("am-test".into()),
        unmanaged_am: Some(true),
        // Apache's ResourceManager needs a launch context even for an unmanaged master.
        am_container_spec: Some(ContainerLaunchContextProto::default()),
        ..Default::default()
    };
    rm.submit(context).await.unwrap();
    (rm, app.id)
}

fn sleeper(seconds: u32) -> ContainerLaunchContextProto {
    ContainerLaunchContextProto {
        environment: vec![StringStringMapProto { key: Some("GREETING".into()), value: Some("hello from {{USER}}".into()) }],
        command: vec![format!("echo \"$GREETING $CONTAINER_ID\" 1><LOG_DIR>/stdout; exec sleep {seconds}")],
        ..Default::default()
    }
}

async fn allocate_all(am: &mut ApplicationMaster, n: i32) -> Vec<ContainerProto> {
    let capability = ResourceProto { memory: Some(512), virtual_cores: Some(1) };
    let mut got = Vec::new();
    for _ in 0..100 {
        let a = am.allocate(Some((n - got.len() as i32, capability)), Vec::new(), None).await.unwrap();
        got.extend(a.allocated);
        if got.len() as i32 == n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("only {} of {n} containers allocated", got.len());
}

async fn completed(am: &mut ApplicationMaster, n: usize) -> Vec<ContainerStatusProto> {
    let mut done = Vec::new();
    for _ in 0..250 {
        done.extend(am.allocate(None, Vec::new(), None).await.unwrap().completed);
        if done.len() >= n {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("only {} of {n} containers completed: {done:?}", done.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmanaged_master_runs_containers_and_hears_how_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let yarn = MiniYarn::builder().node_managers(2).memory_mb(1024).start(dir.path()).await.unwrap();
    let (rm, app) = submitted(&yarn).await;
    let token = rm.report(&app).await.unwrap().am_rm_token.unwrap();

    let mut am = ApplicationMaster::register(&yarn.scheduler_address(), &token, "127.0.0.1", "", T).await.unwrap();
    assert_eq!(am.max_capability.memory, Some(1024));
    assert_eq!(yarn.application_state(app.id.unwrap()), Some(YarnApplicationStateProto::Running));

    // Four containers of 512 MiB fill two nodes of 1 GiB: of two more asked, one comes.
    let containers = allocate_all(&mut am, 3).await;
    let a = am.allocate(Some((2, ResourceProto { memory: Some(512), virtual_cores: Some(1) })), Vec::new(), None).await.unwrap();
    assert_eq!((a.allocated.len(), a.headroom.memory), (1, Some(0)));
    // Released unused, its room comes back.
    let a = am.allocate(Some((0, ResourceProto::default())), vec![a.allocated[0].id.unwrap()], None).await.unwrap();
    assert_eq!(a.headroom.memory, Some(512));
    assert_eq!(completed(&mut am, 0).await.len() + a.completed.len(), 1, "the released container is reported complete");

    for c in &containers {
        am.node_manager(c).await.unwrap().start(c, sleeper(60)).await.unwrap();
    }
    // Starting the same container twice is refused by the NodeManager.
    let again = am.node_manager(&containers[0]).await.unwrap().start(&containers[0], sleeper(1)).await.unwrap_err();
    assert!(again.to_string().contains("already started"), "{again}");

    for _ in 0..250 {
        if yarn.running_processes() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(yarn.running_processes(), 3);

    let nm = am.node_manager(&containers[2]).await.unwrap();
    let statuses = nm.statuses(vec![containers[2].id.unwrap()]).await.unwrap();
    assert_eq!(statuses[0].state, Some(ContainerStateProto::CRunning as i32), "{statuses:?}");

    // The memory monitor kills one, the master stops another.
    let victim = container_id_text(containers[0].id.as_ref());
    assert!(yarn.kill_container(&victim, -104, "Container is running beyond physical memory limits."));
    let nm = am.node_manager(&containers[1]).await.unwrap();
    assert!(nm.stop(vec![containers[1].id.unwrap()]).await.unwrap().is_empty());
    let done = completed(&mut am, 2).await;
    let status_of = |id: &str| done.iter().find(|s| container_id_text(s.container_id.as_ref()) == id).unwrap().clone();
    let killed = status_of(&victim);
    assert_eq!(killed.exit_status, Some(-104));
    assert!(killed.diagnostics.unwrap().contains("physical memory"));
    assert_eq!(status_of(&container_id_text(containers[1].id.as_ref())).exit_status, Some(-105));

    // The third one's log shows the environment arrived, with {{USER}} expanded by the shell.
    let third = container_id_text(containers[2].id.as_ref());
    // The process runs from the moment it is counted; its shell may not have echoed yet.
    let expected = format!("hello from dora {third}");
    let mut greeting = String::new();
    for _ in 0..500 {
        let log = walk(dir.path()).into_iter().find(|p| p.ends_with(format!("{third}/stdout")));
        greeting = log.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        if greeting.trim() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(greeting.trim(), expected);

    am.finish(FinalApplicationStatusProto::AppSucceeded, "done", "").await.unwrap();
    let report = rm.report(&app).await.unwrap();
    assert_eq!(report.yarn_application_state, Some(YarnApplicationStateProto::Finished as i32));
    assert_eq!(report.final_application_status, Some(FinalApplicationStatusProto::AppSucceeded as i32));
    for _ in 0..250 {
        if yarn.running_processes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(yarn.running_processes(), 0, "finishing the application stops its containers");
    // A finished attempt's token no longer opens the scheduler.
    let err = ApplicationMaster::register(&yarn.scheduler_address(), &token, "h", "", T).await.unwrap_err();
    assert!(err.to_string().contains("no longer valid"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_and_node_managers_refuse_connections_without_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let yarn = MiniYarn::builder().node_managers(1).start(dir.path()).await.unwrap();
    let (rm, app) = submitted(&yarn).await;
    let err = IpcClient::connect(&yarn.scheduler_address(), APPLICATION_MASTER, "dora", T).await.unwrap_err();
    assert!(err.to_string().contains("TOKEN"), "{err}");

    let mut forged = rm.report(&app).await.unwrap().am_rm_token.unwrap();
    forged.password[0] ^= 1;
    let err = ApplicationMaster::register(&yarn.scheduler_address(), &forged, "h", "", T).await.unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    let token = rm.report(&app).await.unwrap().am_rm_token.unwrap();
    let mut am = ApplicationMaster::register(&yarn.scheduler_address(), &token, "h", "", T).await.unwrap();
    let c = allocate_all(&mut am, 1).await.remove(0);
    // A container token altered in transit is refused by the NodeManager.
    let mut tampered = c.clone();
    tampered.container_token.as_mut().unwrap().password[0] ^= 1;
    let err = am.node_manager(&c).await.unwrap().start(&tampered, sleeper(1)).await.unwrap_err();
    assert!(err.to_string().contains("password is wrong"), "{err}");
    let err = IpcClient::connect(&eddy_yarn_client::am::node_address(c.node_id.as_ref()), "x", "dora", T).await.unwrap_err();
    assert!(err.to_string().contains("TOKEN"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
