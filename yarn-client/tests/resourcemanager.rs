//! The ResourceManager client against the protocol-level test ResourceManager, through a
//! yarn-site.xml that points at it: every call crosses Hadoop IPC on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_hadoop_ipc::proto::yarn::{
    ApplicationSubmissionContextProto, ContainerLaunchContextProto, ResourceProto, YarnApplicationStateProto,
};
use eddy_hadoop_testkit::yarn::MiniYarn;
use eddy_yarn_client::conf::HadoopConf;
use eddy_yarn_client::rm::{application_id_text, ResourceManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_report_and_kill_an_application() {
    let dir = tempfile::tempdir().unwrap();
    let test_rm = MiniYarn::builder().node_managers(3).memory_mb(8192).vcores(4).start(&dir.path().join("yarn")).await.unwrap();
    // HA with a dead first ResourceManager: the client moves on to the live one.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(
        dir.path().join("yarn-site.xml"),
        format!(
            "<configuration>\
               <property><name>yarn.resourcemanager.ha.enabled</name><value>true</value></property>\
               <property><name>yarn.resourcemanager.ha.rm-ids</name><value>rm1,rm2</value></property>\
               <property><name>yarn.resourcemanager.address.rm1</name><value>{dead}</value></property>\
               <property><name>yarn.resourcemanager.address.rm2</name><value>{}</value></property>\
             </configuration>",
            test_rm.address()
        ),
    )
    .unwrap();
    let conf = HadoopConf::load(dir.path(), &Default::default()).unwrap();
    let rm = ResourceManager::connect(&conf.resource_manager_addresses(), "dora", Duration::from_secs(5)).await.unwrap();

    assert_eq!(rm.node_managers().await.unwrap(), 3);
    let app = rm.new_application().await.unwrap();
    assert_eq!((app.max_memory_mb, app.max_vcores), (8192, 4));
    assert!(application_id_text(&app.id).starts_with("application_"), "{:?}", app.id);

    let context = ApplicationSubmissionContextProto {
        application_id: Some(app.id),
        application_name: Some("sales-eddy".into()),
        queue: Some("analytics".into()),
        unmanaged_am: Some(true),
        resource: Some(ResourceProto { memory: Some(1024), virtual_cores: Some(1) }),
        application_type: Some("EDDY".into()),
        // Apache's ResourceManager needs a launch context even for an unmanaged master.
        am_container_spec: Some(ContainerLaunchContextProto::default()),
        ..Default::default()
    };
    rm.submit(context).await.unwrap();
    let report = rm.report(&app.id).await.unwrap();
    assert_eq!(report.yarn_application_state, Some(YarnApplicationStateProto::Accepted as i32));
    assert_eq!(report.user.as_deref(), Some("dora"));
    assert_eq!(report.queue.as_deref(), Some("analytics"));
    // The AMRMToken of an unmanaged master goes to the submitting user only.
    assert!(report.am_rm_token.is_some());
    let stranger = ResourceManager::connect(&conf.resource_manager_addresses(), "mallory", Duration::from_secs(5)).await.unwrap();
    assert!(stranger.report(&app.id).await.unwrap().am_rm_token.is_none());
    assert_eq!(test_rm.submission(app.id.id.unwrap()).unwrap().application_type.as_deref(), Some("EDDY"));

    assert!(rm.kill(&app.id, "stopped by the test").await.unwrap());
    let report = rm.report(&app.id).await.unwrap();
    assert_eq!(report.yarn_application_state, Some(YarnApplicationStateProto::Killed as i32));
    assert_eq!(report.diagnostics.as_deref(), Some("stopped by the test"));

    // An application the ResourceManager never saw: YARN's own exception, named.
    let mut other = app.id;
    other.id = Some(999);
    let err = rm.report(&other).await.unwrap_err().to_string();
    assert!(err.contains("ApplicationNotFoundException") && err.contains("_0999"), "{err}");
}

#[tokio::test]
async fn no_resource_manager_is_a_clear_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let err = ResourceManager::connect(std::slice::from_ref(&dead), "dora", Duration::from_secs(2)).await.unwrap_err().to_string();
    assert!(err.contains(&dead), "{err}");
}
