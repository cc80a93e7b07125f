//! A running real Apache Hadoop cluster (`scripts/hadoop-cluster.sh start`) for the tests in
//! `tests/tests/real_hadoop.rs`: found through `EDDY_REAL_HADOOP_CONF` (its `HADOOP_CONF_DIR`),
//! driven with Hadoop's own clients (`scripts/hadoop-cluster.sh hdfs|yarn ...`) and with the
//! real `eddy-driver`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bin;

/// The variable that points the tests at a running cluster's `HADOOP_CONF_DIR`.
pub const CONF_VAR: &str = "EDDY_REAL_HADOOP_CONF";

/// The user the tests act as towards HDFS and YARN (SIMPLE authentication).
pub const USER: &str = "analyst";

/// A real Hadoop cluster started by `scripts/hadoop-cluster.sh`.
pub struct RealHadoop {
    /// Its `HADOOP_CONF_DIR`.
    pub conf: PathBuf,
    /// `fs.defaultFS`, e.g. `hdfs://127.0.0.1:29020`.
    pub fs: String,
    script: PathBuf,
    /// Kerberized clusters: the ticket cache Hadoop's client commands use.
    ccache_opt: Option<PathBuf>,
}

/// The Kerberos side of a secure cluster (`HADOOP_CLUSTER_SECURE=1 scripts/hadoop-cluster.sh
/// start`): its KDC's krb5.conf, the test user's principal and keytab, and MIT's `kinit`.
pub struct Kerberos {
    /// `alice@EXAMPLE.COM`.
    pub principal: String,
    /// The user's keytab.
    pub keytab: PathBuf,
    /// The KDC's krb5.conf (`KRB5_CONFIG`).
    pub krb5_conf: PathBuf,
    /// Debian's krb5-user unpacked (`EDDY_KRB5_TOOLS`, scripts/lib/krb5.sh).
    tools: PathBuf,
}

impl Kerberos {
    /// MIT's tools run with their unpacked libraries.
    fn tool(&self, name: &str) -> Command {
        let lib = std::fs::read_dir(self.tools.join("usr/lib"))
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.to_string_lossy().contains("-linux-gnu")))
            .unwrap_or_default();
        let mut cmd = Command::new(self.tools.join("usr/bin").join(name));
        cmd.env("LD_LIBRARY_PATH", lib).env("KRB5_CONFIG", &self.krb5_conf);
        cmd
    }

    /// A keytab at `path` with a key for `principal` made from a password (`ktutil`), whether
    /// or not the KDC knows the principal.
    pub fn keytab_for(&self, principal: &str, path: &Path) {
        use std::io::Write;
        let mut child =
            self.tool("ktutil").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ktutil runs");
        let script =
            format!("addent -password -p {principal} -k 1 -e aes256-cts-hmac-sha1-96\nnot-the-password\nwkt {}\nquit\n", path.display());
        child.stdin.take().expect("ktutil's stdin").write_all(script.as_bytes()).expect("ktutil takes its commands");
        let out = child.wait_with_output().expect("ktutil ends");
        assert!(out.status.success() && path.exists(), "ktutil: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A ticket for the user in the cache file `cache`, from the keytab (`kinit -kt`), valid
    /// for `lifetime` (kinit's syntax, e.g. `5s`) or the KDC's default.
    pub fn kinit(&self, cache: &Path, lifetime_opt: Option<&str>) {
        let mut cmd = self.tool("kinit");
        cmd.arg("-c").arg(format!("FILE:{}", cache.display()));
        if let Some(lifetime) = lifetime_opt {
            cmd.args(["-l", lifetime]);
        }
        let out = cmd.arg("-kt").arg(&self.keytab).arg(&self.principal).output().expect("kinit runs");
        assert!(out.status.success(), "kinit: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Output of a Hadoop client command.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl RealHadoop {
    /// The cluster `EDDY_REAL_HADOOP_CONF` names, or `None` (with the reason printed) when the
    /// variable is unset: the test is then skipped.
    pub fn from_env(test: &str) -> Option<RealHadoop> {
        let Some(conf) = std::env::var_os(CONF_VAR).map(PathBuf::from) else {
            println!("skipped {test}: {CONF_VAR} is not set (scripts/real-hadoop-test.sh starts a real Hadoop cluster and sets it)");
            return None;
        };
        let core = std::fs::read_to_string(conf.join("core-site.xml"))
            .unwrap_or_else(|e| panic!("{CONF_VAR}={}: cannot read core-site.xml: {e}", conf.display()));
        let fs = property(&core, "fs.defaultFS").unwrap_or_else(|| panic!("no fs.defaultFS in {}/core-site.xml", conf.display()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hadoop-cluster.sh");
        if property(&core, "hadoop.security.authentication").as_deref() == Some("kerberos") {
            println!("skipped {test}: the cluster is Kerberized (these tests are for a SIMPLE one; real_hadoop_secure.rs is for this one)");
            return None;
        }
        let h = RealHadoop { conf, fs: fs.trim_end_matches('/').to_string(), script, ccache_opt: None };
        h.home();
        Some(h)
    }

    /// A Kerberized cluster and its Kerberos side, or `None` (with the reason printed) when
    /// `EDDY_REAL_HADOOP_CONF` is unset or names a cluster without Kerberos. Hadoop's client
    /// commands use a ticket cache of their own, filled from the user's keytab.
    pub fn secure_from_env(test: &str) -> Option<(RealHadoop, Kerberos)> {
        let Some(conf) = std::env::var_os(CONF_VAR).map(PathBuf::from) else {
            println!("skipped {test}: {CONF_VAR} is not set (scripts/real-hadoop-test.sh starts a Kerberized Hadoop cluster and sets it)");
            return None;
        };
        let core = std::fs::read_to_string(conf.join("core-site.xml"))
            .unwrap_or_else(|e| panic!("{CONF_VAR}={}: cannot read core-site.xml: {e}", conf.display()));
        if property(&core, "hadoop.security.authentication").as_deref() != Some("kerberos") {
            println!("skipped {test}: the cluster at {} is not Kerberized", conf.display());
            return None;
        }
        let var =
            |name: &str| std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set (scripts/hadoop-cluster.sh env prints it)"));
        let kerberos = Kerberos {
            principal: var("HADOOP_CLUSTER_USER_PRINCIPAL").to_string_lossy().into_owned(),
            keytab: var("HADOOP_CLUSTER_USER_KEYTAB").into(),
            krb5_conf: var("KRB5_CONFIG").into(),
            tools: var("EDDY_KRB5_TOOLS").into(),
        };
        let fs = property(&core, "fs.defaultFS").unwrap_or_else(|| panic!("no fs.defaultFS in {}/core-site.xml", conf.display()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hadoop-cluster.sh");
        let ccache = std::env::temp_dir().join(format!("eddy-test-hadoop-client-{}.cc", std::process::id()));
        kerberos.kinit(&ccache, None);
        Some((RealHadoop { conf, fs: fs.trim_end_matches('/').to_string(), script, ccache_opt: Some(ccache) }, kerberos))
    }

    /// `/user/analyst`, created once per test process (as the superuser, who owns `/`).
    fn home(&self) {
        static HOME: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        HOME.get_or_init(|| {
            let dir = format!("/user/{USER}");
            let out = self.client_as("root", &["hdfs", "-mkdir", "-p", &dir]);
            assert!(out.ok, "mkdir {dir}: {}", out.stderr);
            let out = self.client_as("root", &["hdfs", "-chown", USER, &dir]);
            assert!(out.ok, "chown {dir}: {}", out.stderr);
        });
    }

    /// `scripts/hadoop-cluster.sh ARGS` as `user`, at most two minutes.
    pub fn client_as(&self, user: &str, args: &[&str]) -> Output {
        let out = Command::new("timeout")
            .arg("120")
            .arg(&self.script)
            .args(args)
            .env("HADOOP_USER_NAME", user)
            .envs(self.ccache_opt.iter().map(|c| ("KRB5CCNAME", format!("FILE:{}", c.display()))))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.script.display()));
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `hdfs dfs ARGS` as the test user.
    pub fn hdfs(&self, args: &[&str]) -> Output {
        let mut all = vec!["hdfs"];
        all.extend_from_slice(args);
        self.client_as(USER, &all)
    }

    /// `hdfs dfs ARGS` that must succeed; its standard output.
    pub fn hdfs_ok(&self, args: &[&str]) -> String {
        let out = self.hdfs(args);
        assert!(out.ok, "hdfs dfs {}: {}", args.join(" "), out.stderr);
        out.stdout
    }

    /// Whether `path` exists on HDFS.
    pub fn exists(&self, path: &str) -> bool {
        self.hdfs(&["-test", "-e", path]).ok
    }

    /// The full URL of an HDFS path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fs)
    }

    /// Puts `text` at `path` with the given replication, writing from `client_ip` (the
    /// NameNode places the first replica on a DataNode of the writer's address, so a file
    /// written from 127.0.0.2 with replication 1 has every block on that DataNode).
    pub fn put(&self, path: &str, text: &[u8], replication: u32, client_ip: &str) {
        let local = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(local.path(), text).unwrap();
        let replication = format!("dfs.replication={replication}");
        let bind = format!("eddy.socket.bind-address={client_ip}");
        let local_path = local.path().to_string_lossy().into_owned();
        self.hdfs_ok(&[
            "-D",
            &replication,
            "-D",
            "hadoop.rpc.socket.factory.class.default=dev.eddy.hadoop.BoundSocketFactory",
            "-D",
            &bind,
            "-put",
            &local_path,
            path,
        ]);
    }

    /// Each file's blocks under `path` with the IP addresses holding a replica, from
    /// `hdfs fsck -files -blocks -locations`, in file order.
    pub fn block_hosts(&self, path: &str) -> Vec<(String, Vec<Vec<String>>)> {
        let out = self.client_as(USER, &["hdfs", "fsck", path, "-files", "-blocks", "-locations"]);
        let mut files: Vec<(String, Vec<Vec<String>>)> = Vec::new();
        for line in out.stdout.lines() {
            if line.starts_with('/') && line.contains(" bytes") {
                files.push((line.split_whitespace().next().unwrap_or_default().to_string(), Vec::new()));
            } else if line.contains(" len=") && line.contains("DatanodeInfoWithStorage[") {
                let hosts =
                    line.split("DatanodeInfoWithStorage[").skip(1).filter_map(|s| s.split(':').next().map(str::to_string)).collect();
                if let Some(f) = files.last_mut() {
                    f.1.push(hosts);
                }
            }
        }
        files.sort();
        files
    }

    /// `yarn application -status APP` as a map of its fields (`State`, `Final-State`, ...).
    pub fn application(&self, app: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.client_as(USER, &["yarn", "application", "-status", app]);
        out.stdout.lines().filter_map(|l| l.split_once(" : ")).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
    }

    /// `eddy-driver ARGS` towards this cluster as the test user.
    pub fn driver(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("eddy-driver"));
        cmd.args(args).env("HADOOP_CONF_DIR", &self.conf).env("HADOOP_USER_NAME", USER).env_remove("YARN_CONF_DIR");
        cmd
    }

    /// `eddy-driver yarn` with free ports, on the loopback network, and `args`.
    pub fn yarn_driver(&self, args: &[&str]) -> Command {
        let mut cmd = self.driver(&["yarn", "--port", "0", "--network", "127.0.0.0/8"]);
        cmd.args(args);
        cmd
    }

    /// The default staging directory of an application.
    pub fn staging_dir(&self, app: &str) -> String {
        format!("/user/{USER}/.eddy/{app}")
    }
}

/// Processes working in a YARN container of `app` (their directory is the container's).
pub fn container_processes(app: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.to_string_lossy().contains(app)))
        .filter(|pid| crate::alive(*pid))
        .collect()
}

/// The `eddy-mapper` processes among [`container_processes`] (YARN's launch script and the
/// shell that runs the command are the others).
pub fn mappers_of(app: &str) -> usize {
    container_processes(app)
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "eddy-mapper"))
        .count()
}

/// The virtual size (KiB, `VmSize`) of each `eddy-mapper` process of `app`'s containers.
pub fn virtual_sizes(app: &str) -> Vec<(u32, u64)> {
    container_processes(app)
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "eddy-mapper"))
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
            Some((pid, line.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect()
}

/// The `application_..._NNNN` a driver's output names.
pub fn application_id(output: &str) -> Option<String> {
    let at = output.find("application_")?;
    let id: String = output[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    Some(id)
}

/// Waits (bounded) until no process of `app`'s containers is left.
pub fn assert_no_container_left(app: &str, timeout: Duration) {
    let start = std::time::Instant::now();
    loop {
        let left = container_processes(app);
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < timeout, "processes of {app} still running after {timeout:?}: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A property's value in a Hadoop site file (flat files, as scripts/hadoop-cluster.sh writes).
fn property(xml: &str, name: &str) -> Option<String> {
    let at = xml.find(&format!("<name>{name}</name>"))?;
    let rest = &xml[at..];
    let start = rest.find("<value>")? + "<value>".len();
    let end = rest.find("</value>")?;
    Some(rest[start..end].trim().to_string())
}
