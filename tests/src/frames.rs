//! Shared pieces of the frame tests that run a cloud and drive it over REST: a generated CSV
//! and its values, a watched cloud, an import through `/3/ImportFiles` and `/3/Jobs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{bin, cloud_pids, read_notify, wait_until, Proc};

/// A CSV with columns `id,value,kind` for rows `start..start + rows`.
pub fn csv_part(start: usize, rows: usize) -> String {
    let mut text = String::from("id,value,kind\n");
    for i in start..start + rows {
        text.push_str(&format!("{i},{},{}\n", (i % 97) as f64 * 0.5, ["a", "b", "c"][i % 3]));
    }
    text
}

/// The rows of such a CSV as values, not text (a writer prints 48.0 as 48).
pub fn csv_part_values(text: &str) -> Vec<(i64, f64, String)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].parse().unwrap(), c[1].parse().unwrap(), c[2].to_string())
        })
        .collect()
}

/// Rows in a Parquet file.
pub fn parquet_rows(bytes: Vec<u8>) -> usize {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
    reader.map(|b| b.unwrap().num_rows()).sum()
}

/// A running `eddy-driver local ... --notify FILE` and the REST base URL of its leader.
/// `eddy-driver local` with two workers of 256 MiB on free ports, logs under `log_dir`; add
/// `--check --import URL` or `--notify FILE` as the test needs.
pub fn local_driver(log_dir: &Path) -> Command {
    let mut cmd = Command::new(bin("eddy-driver"));
    cmd.args(["local", "--nodes", "2", "--port", "0", "--memory", "256m"]).arg("--log-dir").arg(log_dir);
    cmd
}

/// Imports through `base`'s `/3/ImportFiles` with `body` and waits (at most `timeout`) for the
/// job to end; returns the frame id (empty if the job failed) and the final job.
pub fn import_and_wait(http: &reqwest::blocking::Client, base: &str, body: Value, timeout: Duration) -> (String, Value) {
    let r: Value = http.post(format!("{base}/3/ImportFiles")).json(&body).send().unwrap().json().unwrap();
    let key = r["job"]["key"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let mut job = Value::Null;
    wait_until("import done", timeout, || {
        job = http.get(format!("{base}/3/Jobs/{key}")).send().unwrap().json().unwrap();
        job["jobs"][0]["status"] != "RUNNING"
    });
    (job["jobs"][0]["dest"].as_str().unwrap_or_default().to_string(), job)
}

/// `GET /3/Frames/{frame}`'s frame (rows, columns, chunks).
pub fn frame_info(http: &reqwest::blocking::Client, base: &str, frame: &str) -> Value {
    let info: Value = http.get(format!("{base}/3/Frames/{frame}")).send().unwrap().json().unwrap();
    if info["frame"].is_object() {
        info["frame"].clone()
    } else {
        info
    }
}

/// The IP address of the worker a chunk of [`frame_info`] names.
pub fn chunk_ip(chunk: &Value) -> String {
    let node = &chunk["node"];
    match node.as_str() {
        Some(s) => s.rsplit_once(':').map(|(ip, _)| ip.to_string()).unwrap_or_default(),
        None => node["ip"].as_str().unwrap_or_default().to_string(),
    }
}

pub struct WatchedCloud {
    pub driver: Proc,
    pub base: String,
    pub http: reqwest::blocking::Client,
}

impl WatchedCloud {
    /// Spawns `driver` (which must write its leader to `notify`) and waits until it watches
    /// the cloud; the workers are killed with the driver's `Proc`.
    pub fn start(driver: Command, notify: &Path, timeout: Duration) -> Self {
        let mut d = Proc::spawn(driver);
        d.wait_for_line("Watching the cloud", timeout);
        let notified = read_notify(notify);
        let base = format!("http://{}", notified.leader);
        d.extra_pids = cloud_pids(&notified.leader);
        let http = crate::client_with_token(notified.token_opt.as_deref(), Duration::from_secs(60));
        Self { driver: d, base, http }
    }

    /// POSTs `body` to `path` (e.g. `/3/Frames/x/export`) and returns the JSON answer.
    pub fn post(&self, path: &str, body: Value) -> Value {
        self.http.post(format!("{}{path}", self.base)).json(&body).send().unwrap().json().unwrap()
    }

    /// Imports through `/3/ImportFiles` with `body` and waits for the job to end; returns
    /// the frame id (empty if the job failed) and the final job.
    pub fn import(&self, body: Value, timeout: Duration) -> (String, Value) {
        import_and_wait(&self.http, &self.base, body, timeout)
    }

    /// Stops the cloud with SIGINT, as Ctrl-C would, and checks the driver stopped it in order
    /// (exit code 130, 128 + SIGINT, since the driver reports the signal as shells do).
    pub fn stop(mut self, timeout: Duration) {
        self.driver.signal(libc::SIGINT);
        let status = self.driver.wait_exit(timeout);
        assert_eq!(status.code(), Some(130), "{}", self.driver.output());
        assert!(self.driver.output().contains("Every worker has exited"), "{}", self.driver.output());
    }

    /// [`Self::stop`], then checks that every worker process (`extra_pids`) is gone.
    pub fn stop_leaving_no_process(self, timeout: Duration) {
        let pids = self.driver.extra_pids.clone();
        self.stop(timeout);
        for pid in pids {
            wait_until(&format!("worker {pid} exits"), timeout, || !crate::alive(pid));
        }
    }
}
