//! The gather service over real gRPC on 127.0.0.1, with real `DriverCallback` clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_common::auth::AuthStamp;
use eddy_common::tls::InternalTls;
use eddy_common::{ClusterSecret, NodeAddr};
use eddy_embedded_config::gather::{Gather, GatherOptions};
use eddy_embedded_config::{Announcement, DriverCallback, DriverCallbackOptions, EmbeddedConfig, ExitRequest};
use eddy_proto::v1::gather_service_client::GatherServiceClient;
use eddy_proto::v1::RegisterRequest;
use tonic::Code;

const CLOUD: &str = "gather-test";

async fn serve(expected: usize, timeout: Duration) -> (Gather, std::net::SocketAddr, ClusterSecret) {
    let secret = ClusterSecret::generate().unwrap();
    let (gather, _events) = Gather::new(GatherOptions { expected, timeout, cloud_name: CLOUD.into(), secret: secret.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Over TLS with the cloud's CA, as the driver serves it.
    let tls = InternalTls::from_secret(&secret, &[addr.ip().to_string()]).unwrap();
    tokio::spawn(gather.clone().serve(listener, Some(std::sync::Arc::new(tls)), std::future::pending()));
    (gather, addr, secret)
}

fn callback(driver: std::net::SocketAddr, secret: ClusterSecret) -> DriverCallback {
    DriverCallback::new(DriverCallbackOptions {
        driver,
        secret: secret.clone(),
        cloud_name: CLOUD.into(),
        timeout: Duration::from_secs(5),
        driver_lost_grace: Duration::from_secs(1),
        tls: Some(std::sync::Arc::new(InternalTls::from_secret(&secret, &[]).unwrap())),
    })
    .unwrap()
}

fn tls_endpoint(addr: std::net::SocketAddr, secret: &ClusterSecret) -> tonic::transport::Endpoint {
    let tls = InternalTls::from_secret(secret, &[]).unwrap();
    eddy_common::tls::grpc_endpoint(&addr.to_string(), Some(&tls)).unwrap()
}

fn announcement(port: u16, id: &str) -> Announcement {
    Announcement {
        addr: NodeAddr::with_default_grpc("127.0.0.1".parse().unwrap(), port).unwrap(),
        worker_id: id.into(),
        stats: Default::default(),
    }
}

#[tokio::test]
async fn every_worker_gets_the_same_sorted_list_then_formation_and_exit() {
    let (gather, addr, secret) = serve(3, Duration::from_secs(10)).await;
    let mut tasks = Vec::new();
    for (port, id) in [(7004u16, "0"), (7000, "1"), (7002, "2")] {
        let cb = callback(addr, secret.clone());
        tasks.push(tokio::spawn(async move { cb.announce(&announcement(port, id)).await.unwrap() }));
    }
    let peers = gather.wait_for_peers().await.unwrap();
    assert_eq!(peers.iter().map(|p| p.rest_port).collect::<Vec<_>>(), vec![7000, 7002, 7004]);
    for t in tasks {
        assert_eq!(t.await.unwrap(), peers);
    }
    let cb = callback(addr, secret.clone());
    for p in &peers {
        cb.cloud_formed(*p, 3, peers[0]).await.unwrap();
    }
    assert_eq!(gather.wait_for_cloud().await.unwrap(), (3, peers[0]));
    let watcher = tokio::spawn(async move { cb.exit_requested(peers[1]).await });
    assert!(gather.wait_for_watchers(1, Duration::from_secs(5)).await);
    gather.tell_workers_exit("test over");
    let got = tokio::time::timeout(Duration::from_secs(5), watcher).await.unwrap().unwrap();
    assert_eq!(got, ExitRequest::Exit { reason: "test over".into() });
}

#[tokio::test]
async fn refusals_wrong_secret_duplicates_and_late_registrations() {
    let (gather, addr, secret) = serve(2, Duration::from_secs(10)).await;
    // Wrong secret: refused, never registered.
    let intruder = callback(addr, ClusterSecret::from_text("not-the-right-one").unwrap());
    let err = intruder.announce(&announcement(7100, "x")).await.unwrap_err().to_string();
    assert!(err.contains("cluster secret"), "{err}");
    // No token at all.
    // Plain HTTP/2 gets no answer from a TLS port.
    let mut plain = GatherServiceClient::connect(format!("http://{addr}")).await.unwrap();
    assert!(plain.register(RegisterRequest::default()).await.is_err());
    let mut raw = GatherServiceClient::new(tls_endpoint(addr, &secret).connect().await.unwrap());
    let status =
        raw.register(RegisterRequest { node: Some(announcement(7102, "y").addr.to_proto()), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(gather.registrations().is_empty());

    let first = tokio::spawn({
        let cb = callback(addr, secret.clone());
        async move { cb.announce(&announcement(7200, "0")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Same address twice.
    let mut stamped =
        GatherServiceClient::with_interceptor(tls_endpoint(addr, &secret).connect().await.unwrap(), AuthStamp::new(secret.clone(), CLOUD));
    let dup = RegisterRequest { node: Some(announcement(7200, "9").addr.to_proto()), worker_id: "9".into(), stats: None };
    let status = stamped.register(dup).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    // The second worker completes the set.
    callback(addr, secret.clone()).announce(&announcement(7202, "1")).await.unwrap();
    first.await.unwrap().unwrap();
    // After the list went out, registration is refused.
    let err = callback(addr, secret).announce(&announcement(7204, "2")).await.unwrap_err().to_string();
    assert!(err.contains("too late"), "{err}");
}

#[tokio::test]
async fn timeout_fails_every_waiting_worker_with_the_missing_count() {
    let (gather, addr, secret) = serve(2, Duration::from_millis(800)).await;
    gather.expect_worker_id("0");
    gather.expect_worker_id("1");
    let err = callback(addr, secret).announce(&announcement(7300, "0")).await.unwrap_err().to_string();
    assert!(err.contains("1 of 2 workers registered") && err.contains("never registered: worker 1"), "{err}");
    let err = gather.wait_for_peers().await.unwrap_err().to_string();
    assert!(err.contains("1 missing"), "{err}");
}
