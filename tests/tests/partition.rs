//! Network partitions between real workers, each on a host of its own (a network namespace on
//! a bridge; see `eddy_tests::netns`): one worker cut off, then half the cloud. A flatfile
//! cloud, no driver, heartbeat timeout 2 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use eddy_tests::frames::csv_part;
use eddy_tests::netns::Lan;
use eddy_tests::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "partition-test-secret";
const PORT: u16 = 54321;

struct Cloud {
    lan: Lan,
    workers: Vec<Proc>,
    token: String,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Cloud {
    /// `n` workers, one per host, that form one flatfile cloud.
    fn start(n: usize, prefix: &str) -> Cloud {
        let lan = Lan::start(n, prefix);
        let dir = tempfile::tempdir().unwrap();
        let flatfile = dir.path().join("flatfile.txt");
        std::fs::write(&flatfile, lan.addrs.iter().map(|a| format!("{a}:{PORT}\n")).collect::<String>()).unwrap();
        let workers = (0..n)
            .map(|i| {
                let args = ["--flatfile", flatfile.to_str().unwrap(), "--ip", &lan.addrs[i], "--port", &PORT.to_string()];
                Proc::spawn(standalone_mapper(lan.command(i, bin("eddy-mapper")), dir.path(), SECRET, &args))
            })
            .collect();
        let token = eddy_common::ClusterSecret::from_text(SECRET).unwrap().rest_token("eddy");
        let data = dir.path().join("data.csv");
        let cloud = Cloud { lan, workers, token, _dir: dir, data };
        wait_until(&format!("a cloud of {n}"), WAIT, || {
            (0..n).all(|i| {
                let v = cloud.view(i);
                v["cloud_size"] == n && v["consensus"] == true
            })
        });
        cloud
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}:{PORT}{path}", self.lan.addrs[i])
    }

    /// A request to worker `i`, made from its own host.
    fn call(&self, i: usize, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.lan.http(i, method, &self.url(i, path), &self.token, body)
    }

    fn view(&self, i: usize) -> Value {
        self.call(i, "GET", "/3/Cloud", None).1
    }

    /// Imports a CSV of `rows` rows in splits of 128 KiB through worker 0; the frame id.
    fn import(&self, rows: usize) -> String {
        std::fs::write(&self.data, csv_part(0, rows)).unwrap();
        let (_, r) = self.call(0, "POST", "/3/ImportFiles", Some(&json!({ "path": self.data, "split_bytes": 128 * 1024 })));
        let key = r["job"]["key"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
        let mut job = Value::Null;
        wait_until("the import ends", WAIT, || {
            job = self.call(0, "GET", &format!("/3/Jobs/{key}"), None).1;
            job["jobs"][0]["status"] != "RUNNING"
        });
        assert_eq!(job["jobs"][0]["status"], "DONE", "{job}");
        job["jobs"][0]["dest"].as_str().unwrap().to_string()
    }

    fn summary(&self, i: usize, frame: &str) -> (u16, Value) {
        let (status, v) = self.call(i, "GET", &format!("/3/Frames/{frame}/summary"), None);
        (status, if status == 200 { v["columns"].clone() } else { v })
    }

    /// Every worker `i` of `group` sees the cloud unhealthy, without removing anybody.
    fn waiting(&self, group: &[usize], size: usize) {
        for &i in group {
            let v = self.view(i);
            assert_eq!(v["cloud_healthy"], false, "worker {i}: {v}");
            assert_eq!(v["generation"], 0, "worker {i}: {v}");
            assert_eq!(v["cloud_size"], size, "worker {i}: {v}");
        }
    }
}

#[test]
fn a_partitioned_worker_is_removed_by_the_majority_and_stops_when_the_network_heals() {
    let mut c = Cloud::start(3, "10.79.0");
    let frame = c.import(100_000);
    let (_, before) = c.summary(0, &frame);
    let cut = format!("{}:{PORT}", c.lan.addrs[2]);

    c.lan.partition(&[2]);
    // The two that still hear each other are a majority of three: they remove the third and
    // read its chunks again.
    wait_until("the majority removes the cut-off worker", WAIT, || {
        let v = c.view(0);
        v["cloud_healthy"] == true && v["cloud_size"] == 2 && v["lost_nodes"][0]["ip_port"] == cut.as_str()
    });
    wait_until("the frame answers on the majority side", WAIT, || c.summary(0, &frame).0 == 200);
    assert_eq!(c.summary(0, &frame).1, before);
    assert_eq!(c.summary(1, &frame).1, before);
    // Alone, the cut-off worker removes nobody (one of three is no majority) and refuses work.
    c.waiting(&[2], 3);
    let (status, refusal) = c.summary(2, &frame);
    assert_eq!(status, 503, "{refusal}");

    c.lan.heal();
    // Back on the network it hears that it was removed, and stops on its own.
    let status = c.workers[2].wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{}", c.workers[2].output());
    assert!(c.workers[2].output().contains("removed this node"), "{}", c.workers[2].output());
    let v = c.view(0);
    assert_eq!((v["cloud_size"].as_u64(), v["generation"].as_u64(), v["cloud_healthy"].as_bool()), (Some(2), Some(1), Some(true)), "{v}");
    assert_eq!(c.summary(1, &frame).1, before);
}

#[test]
fn two_halves_remove_nobody_and_the_cloud_is_whole_again_when_the_network_heals() {
    let c = Cloud::start(4, "10.79.1");
    let frame = c.import(100_000);
    let (_, before) = c.summary(0, &frame);

    c.lan.partition(&[2, 3]);
    // Two against two: neither half is a majority. Both wait, unhealthy, and refuse work.
    wait_until("both halves notice", WAIT, || [0, 2].iter().all(|&i| c.view(i)["cloud_healthy"] == false));
    // Three heartbeat timeouts: long enough for a removal, had either half the right to one.
    std::thread::sleep(Duration::from_secs(6));
    c.waiting(&[0, 1, 2, 3], 4);
    assert_eq!(c.summary(0, &frame).0, 503);
    assert_eq!(c.summary(3, &frame).0, 503);

    c.lan.heal();
    wait_until("all four agree again", WAIT, || {
        (0..4).all(|i| {
            let v = c.view(i);
            v["cloud_healthy"] == true && v["consensus"] == true && v["cloud_size"] == 4
        })
    });
    for i in 0..4 {
        assert_eq!(c.view(i)["generation"], 0);
        assert_eq!(c.summary(i, &frame).1, before, "worker {i}");
    }
}
