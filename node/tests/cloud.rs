//! In-process clouds on 127.0.0.1: formation, REST, lock, refusals, health, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_common::ClusterSecret;
use eddy_node::testsuite::{wait_for, TestCloud};
use eddy_node::StopReason;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(20);

/// A client that sends the cloud's REST access token.
fn http(cloud: &TestCloud) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", cloud.rest_token()).parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

async fn get_json(cloud: &TestCloud, url: &str) -> Value {
    http(cloud).get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_on_cloud_json_everywhere() {
    let cloud = TestCloud::start(3).await.unwrap();
    let mut leaders = Vec::new();
    for (i, node) in cloud.nodes.iter().enumerate() {
        let v = get_json(&cloud, &format!("{}/3/Cloud", node.addr().rest_url())).await;
        assert_eq!(v["cloud_size"], 3, "{v}");
        assert_eq!(v["consensus"], true);
        assert_eq!(v["cloud_healthy"], true);
        assert_eq!(v["bad_nodes"], 0);
        assert_eq!(v["locked"], false);
        assert_eq!(v["is_client"], false);
        assert!(v["node_idx"].as_i64().unwrap() >= 0);
        for field in ["version", "cloud_name", "cloud_uptime_millis", "leader_idx"] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        for n in nodes {
            for field in
                ["ip_port", "healthy", "last_ping", "pid", "num_cpus", "cpus_allowed", "nthreads", "max_mem", "free_mem", "sys_load"]
            {
                assert!(n.get(field).is_some(), "node misses {field}: {n}");
            }
        }
        leaders.push(nodes[v["leader_idx"].as_u64().unwrap() as usize]["ip_port"].clone());
        // The alias answers the same document.
        let alias = get_json(&cloud, &format!("{}/Cloud.json", node.addr().rest_url())).await;
        assert_eq!(alias["cloud_size"], 3);
        let _ = i;
    }
    assert!(leaders.windows(2).all(|w| w[0] == w[1]), "one leader: {leaders:?}");
    // Exactly one node answers the readiness probe with 200.
    let mut ok = 0;
    for node in &cloud.nodes {
        let r = reqwest::get(format!("{}/kubernetes/isLeaderNode", node.addr().rest_url())).await.unwrap();
        if r.status() == 200 {
            ok += 1;
        } else {
            assert_eq!(r.status(), 404);
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_cloud_refuses_late_joiner_but_admits_observer() {
    let cloud = TestCloud::start(2).await.unwrap();
    // First work locks the cloud.
    let r = http(&cloud).get(format!("{}/3/NetworkTest", cloud.nodes[0].addr().rest_url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 3, "{body}");
    wait_for("lock spreads", WAIT, || cloud.nodes.iter().all(|n| n.view().locked.is_some())).await.unwrap();

    let late = cloud.start_joiner(cloud.secret.clone()).await.unwrap();
    let reason = tokio::time::timeout(WAIT, late.stopped()).await.expect("late joiner gives up");
    match reason {
        StopReason::Fatal(m) => assert!(m.contains("join refused") && m.contains("locked"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cloud.nodes[0].view().members.len(), 2);

    let client = cloud.start_client().await.unwrap();
    client.wait_formed(WAIT).await.unwrap();
    wait_for("client listed apart", WAIT, || cloud.nodes[0].view().clients.len() == 1).await.unwrap();
    let v = get_json(&cloud, &format!("{}/3/Cloud", cloud.nodes[0].addr().rest_url())).await;
    assert_eq!(v["cloud_size"], 2);
    assert_eq!(v["clients"].as_array().unwrap().len(), 1);
    let cv = get_json(&cloud, &format!("{}/3/Cloud", client.addr().rest_url())).await;
    assert_eq!(cv["is_client"], true);
    assert_eq!(cv["cloud_size"], 2);
    assert_eq!(cv["node_idx"], -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_and_never_admitted() {
    let cloud = TestCloud::start(2).await.unwrap();
    let intruder = cloud.start_joiner(ClusterSecret::from_text("not-the-secret").unwrap()).await.unwrap();
    let err = intruder.wait_formed(Duration::from_secs(3)).await.unwrap_err().to_string();
    assert!(err.contains("wrong cluster secret"), "{err}");
    assert_eq!(cloud.nodes[0].view().members.len(), 2);
    assert!(cloud.nodes.iter().all(|n| n.view().consensus));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_removed_and_the_others_carry_on_as_a_new_generation() {
    let cloud = TestCloud::start(3).await.unwrap();
    let lost = cloud.nodes[2].addr();
    cloud.nodes[2].stop(StopReason::Exit { reason: "test kills it".into() });
    let survivor = &cloud.nodes[0];
    wait_for("the lost node removed", WAIT, || {
        let v = survivor.view();
        v.consensus && v.members.len() == 2 && v.lost.iter().any(|l| l.addr == lost)
    })
    .await
    .unwrap();
    let v = get_json(&cloud, &format!("{}/3/Cloud", survivor.addr().rest_url())).await;
    assert_eq!(v["cloud_healthy"], true, "{v}");
    assert_eq!(v["bad_nodes"], 0, "{v}");
    assert_eq!(v["cloud_size"], 2, "{v}");
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["lost_nodes"][0]["ip_port"], lost.to_string(), "{v}");
    let results = survivor.network_test().await.unwrap();
    assert!(results.iter().all(|r| r.node == cloud.nodes[1].addr().to_string()), "the other survivor only: {results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_grpc_port_is_survived() {
    let cloud = TestCloud::start(2).await.unwrap();
    let target = cloud.nodes[0].addr();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(target.grpc()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage\xff\xfe").await.unwrap();
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cloud.nodes[0].view().consensus);
    let v = get_json(&cloud, &format!("{}/3/Cloud", target.rest_url())).await;
    assert_eq!(v["cloud_healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_on_one_node_stops_every_node() {
    let cloud = TestCloud::start(3).await.unwrap();
    let r = http(&cloud).post(format!("{}/3/Shutdown", cloud.nodes[1].addr().rest_url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for node in &cloud.nodes {
        let reason = tokio::time::timeout(WAIT, node.stopped()).await.expect("node stops");
        assert!(matches!(reason, StopReason::Shutdown { .. }), "{reason:?}");
    }
}
