//! TLS end to end with the real binaries: the internal channels (worker gRPC and Flight, the
//! driver's gather service) speak TLS with the cloud's own CA by default and refuse clients
//! that trust another CA or speak plain HTTP/2; with the user's CA and certificate the REST
//! API is HTTPS and the internal channels use that CA instead; `--internal-tls off` is plain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use eddy_common::tls::InternalTls;
use eddy_common::ClusterSecret;
use eddy_tests::frames::local_driver;
use eddy_tests::{bin, read_notify, Proc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// How a TLS handshake with `addr` went for a client that trusts `ca_pem` (PEM).
fn handshake(addr: &str, ca_pem: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let ip: std::net::IpAddr = addr.rsplit_once(':').unwrap().0.parse().unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(ip.into())).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a server answers to a cleartext HTTP/2 preface: an HTTP/2 server sends a SETTINGS
/// frame (type 4 in the fourth byte); a TLS server an alert or nothing.
fn speaks_plain_http2(addr: &str) -> bool {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    let mut buf = [0u8; 9];
    matches!(sock.read_exact(&mut buf), Ok(())) && buf[3] == 4
}

fn write_secret(dir: &Path) -> (std::path::PathBuf, ClusterSecret) {
    let path = dir.join("secret");
    let text = "tls-test-secret-0123456789abcdef";
    std::fs::write(&path, text).unwrap();
    (path, ClusterSecret::from_text(text).unwrap())
}

/// Worker `ip:grpc_port`s from the observer's view of the cloud.
fn worker_grpc(http: &reqwest::blocking::Client, base: &str) -> Vec<String> {
    let cloud: serde_json::Value = http.get(format!("{base}/3/Cloud")).send().unwrap().json().unwrap();
    let ip = |n: &serde_json::Value| n["ip_port"].as_str().unwrap().rsplit_once(':').unwrap().0.to_string();
    cloud["nodes"].as_array().unwrap().iter().map(|n| format!("{}:{}", ip(n), n["grpc_port"])).collect()
}

fn gather_address(driver: &mut Proc) -> String {
    let line = driver.wait_for_line("gather service on", Duration::from_secs(30));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn internal_channels_are_tls_with_the_clouds_own_ca_and_refuse_other_cas_and_plain_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_path, secret) = write_secret(dir.path());
    let notify = dir.path().join("notify");
    let mut cmd = local_driver(&dir.path().join("logs"));
    cmd.args(["--name", "tls-cloud"]).arg("--secret-file").arg(&secret_path).arg("--notify").arg(&notify);
    let mut driver = Proc::spawn(cmd);
    let gather = gather_address(&mut driver);
    driver.wait_for_line("Watching the cloud", Duration::from_secs(60));
    let notified = read_notify(&notify);
    let http = eddy_tests::client_with_token(notified.token_opt.as_deref(), Duration::from_secs(10));
    let base = format!("http://{}", notified.leader);

    // The CA that `eddy-driver cloud-ca` prints is the one every channel chains to.
    let out = Command::new(bin("eddy-driver")).args(["cloud-ca", "--secret-file"]).arg(&secret_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ca = String::from_utf8(out.stdout).unwrap();
    assert_eq!(ca, InternalTls::cloud_ca_pem(&secret).unwrap());
    let other_ca = InternalTls::cloud_ca_pem(&ClusterSecret::from_text("another-secret-entirely").unwrap()).unwrap();

    let workers = worker_grpc(&http, &base);
    assert_eq!(workers.len(), 2, "{workers:?}");
    for addr in workers.iter().chain([&gather]) {
        handshake(addr, &ca).unwrap_or_else(|e| panic!("{addr} refused a client of the cloud's CA: {e}"));
        let refused = handshake(addr, &other_ca).expect_err("a certificate of another CA was accepted");
        assert!(refused.contains("UnknownIssuer") || refused.contains("BadSignature"), "{addr}: {refused}");
        assert!(!speaks_plain_http2(addr), "{addr} answered cleartext HTTP/2");
    }
    // The cloud works over those channels: an import spreads chunks over both workers.
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, eddy_tests::frames::csv_part(0, 5000)).unwrap();
    let r: serde_json::Value = http
        .post(format!("{base}/3/ImportFiles"))
        .json(&serde_json::json!({"path": csv.display().to_string()}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = r["job"]["key"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let mut job = serde_json::Value::Null;
    eddy_tests::wait_until("import done", Duration::from_secs(60), || {
        job = http.get(format!("{base}/3/Jobs/{key}")).send().unwrap().json().unwrap();
        job["jobs"][0]["status"] != "RUNNING"
    });
    assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
    let frame: serde_json::Value = http.get(format!("{base}/3/Frames/data.hex/summary")).send().unwrap().json().unwrap();
    assert_eq!(frame["columns"][0]["count"], 5000, "{frame}");
    let log = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(!log.contains("tls-test-secret"), "the secret is in a log");
}

#[test]
fn with_internal_tls_off_the_channels_are_plain_http2() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let mut cmd = local_driver(&dir.path().join("logs"));
    cmd.args(["--internal-tls", "off"]).arg("--notify").arg(&notify);
    let mut driver = Proc::spawn(cmd);
    let gather = gather_address(&mut driver);
    driver.wait_for_line("Watching the cloud", Duration::from_secs(60));
    let notified = read_notify(&notify);
    let http = eddy_tests::client_with_token(notified.token_opt.as_deref(), Duration::from_secs(10));
    for addr in worker_grpc(&http, &format!("http://{}", notified.leader)).iter().chain([&gather]) {
        assert!(speaks_plain_http2(addr), "{addr} did not answer cleartext HTTP/2");
    }
}

/// A CA of the user's and a certificate it signed for 127.0.0.1, as PEM files in `dir`.
fn user_pki(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (dir.join(format!("{name}-ca.pem")), dir.join(format!("{name}-node.pem")), dir.join(format!("{name}-node.key")));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

fn https_client(ca: &Path, token: &str) -> reqwest::blocking::Client {
    let certs = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::blocking::Client::builder().tls_certs_only(certs).default_headers(headers).timeout(Duration::from_secs(10)).build().unwrap()
}

#[test]
fn with_the_users_ca_rest_is_https_and_the_internal_channels_trust_only_that_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = user_pki(dir.path(), "user");
    let (wrong_ca, _, _) = user_pki(dir.path(), "wrong");
    let notify = dir.path().join("notify");
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, eddy_tests::frames::csv_part(0, 300)).unwrap();
    let mut cmd = local_driver(&dir.path().join("logs"));
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key).arg("--tls-ca").arg(&ca).arg("--notify").arg(&notify);
    // The driver's own --import goes over HTTPS too, trusting --tls-ca.
    cmd.arg("--import").arg(&csv);
    let mut driver = Proc::spawn(cmd);
    let gather = gather_address(&mut driver);
    let url_line = driver.wait_for_line("REST API: ", Duration::from_secs(60));
    assert!(url_line.contains("REST API: https://127.0.0.1:"), "{url_line}");
    driver.wait_for_line("Watching the cloud", Duration::from_secs(120));
    assert!(driver.output().contains("300 rows"), "{}", driver.output());
    let notified = read_notify(&notify);
    let token = notified.token_opt.clone().unwrap();
    let base = format!("https://{}", notified.leader);

    let http = https_client(&ca, &token);
    let cloud: serde_json::Value = http.get(format!("{base}/3/Cloud")).send().unwrap().json().unwrap();
    assert_eq!(cloud["cloud_size"], 2, "{cloud}");
    // A browser's first visit with the token gets it back as a cookie only HTTPS carries.
    let first_visit = reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/?token={token}"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    let cookie = first_visit.headers().get("set-cookie").map(|c| c.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(cookie.contains("HttpOnly") && cookie.ends_with("; Secure"), "{cookie}");
    // A client that trusts another CA is refused; plain HTTP gets no answer.
    let refused = https_client(&wrong_ca, &token).get(format!("{base}/3/Cloud")).send().expect_err("another CA was trusted");
    assert!(eddy_common::error_chain(&refused).contains("UnknownIssuer"), "{}", eddy_common::error_chain(&refused));
    let plain =
        eddy_tests::client_with_token(Some(&token), Duration::from_secs(10)).get(format!("http://{}/3/Cloud", notified.leader)).send();
    assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP was served");

    // The internal channels present the user's certificate: its CA is trusted, the cloud's own is not.
    let user_ca_pem = std::fs::read_to_string(&ca).unwrap();
    for addr in worker_grpc(&http, &base).iter().chain([&gather]) {
        handshake(addr, &user_ca_pem).unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert!(handshake(addr, &std::fs::read_to_string(&wrong_ca).unwrap()).is_err(), "{addr} chained to the wrong CA");
    }

    // `eddy-driver import` over HTTPS: with --tls-ca it works; without, it says what to pass.
    let import = |extra: &[&str]| {
        let mut c = Command::new(bin("eddy-driver"));
        c.args(["import", "--cloud", &base, "--token", &token]).args(extra).arg(&csv);
        c.env_remove("EDDY_TLS_CA").output().unwrap()
    };
    let ok = import(&["--tls-ca", ca.to_str().unwrap()]);
    assert!(ok.status.success(), "{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    let untrusted = import(&[]);
    assert!(!untrusted.status.success());
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(said.contains("--tls-ca"), "{said}");
}

#[test]
fn a_wrong_tls_file_fails_before_any_worker_starts_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = user_pki(dir.path(), "user");
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let mut cmd = local_driver(&dir.path().join("logs"));
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&not_a_key);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not-a-key.pem") && said.contains("--tls-key"), "{said}");
    assert!(!said.contains("Starting a cloud"), "{said}");
}
