//! Several SSH hosts on one machine: one network namespace per host, each with its own
//! address on a bridge, running Debian's real `sshd` (unpacked under `target/tools/openssh`
//! by `scripts/test.sh`, or `EDDY_SSHD`). The driver runs in a namespace of its own that holds
//! the bridge, so every address the tests use exists only inside namespaces they create.
//!
//! Every host sees its own install directory: its sshd runs in a mount namespace where a
//! per-host directory is bound over the same path (read-only for the "read-only" host). The
//! mount namespace also gives sshd the privilege-separation user it insists on (a copy of
//! /etc/passwd with `sshd` added, bound over /etc/passwd there) and a private /run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Proc;

/// What a host is like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// sshd accepts the test's key; the install directory is writable.
    Good,
    /// Nothing listens on port 22.
    Down,
    /// sshd knows another key only.
    WrongKey,
    /// The install directory is a read-only mount.
    ReadOnlyInstall,
    /// The install directory is a file system of 1 MiB: no room for the binary.
    FullInstall,
}

/// The driver's namespace, the hosts' namespaces and their sshd processes; all removed on drop.
pub struct SshHosts {
    pub dir: tempfile::TempDir,
    /// `ip netns exec <driver_ns>` runs a command where the driver lives.
    pub driver_ns: String,
    pub host_ns: Vec<String>,
    /// The hosts' addresses, in order.
    pub addrs: Vec<String>,
    sshds: Vec<Proc>,
}

fn tools() -> PathBuf {
    std::env::var_os("EDDY_SSHD")
        .map(|p| PathBuf::from(p).parent().and_then(Path::parent).and_then(Path::parent).unwrap().to_path_buf())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/openssh"))
}

fn sshd() -> PathBuf {
    let path = tools().join("usr/sbin/sshd");
    assert!(
        path.is_file(),
        "sshd is missing at {}: scripts/test.sh unpacks Debian's openssh-server there (scripts/lib/sshd.sh), or set EDDY_SSHD",
        path.display()
    );
    path
}

fn lib_dir() -> String {
    let lib = tools().join("usr/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().contains("-linux-gnu")))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The PATH for the driver: the unpacked OpenSSH client first.
pub fn ssh_path() -> String {
    format!("{}:{}", tools().join("usr/bin").display(), std::env::var("PATH").unwrap_or_default())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn keygen(path: &Path) {
    let keygen = tools().join("usr/bin/ssh-keygen");
    run(Command::new(keygen).args(["-q", "-t", "ed25519", "-N", "", "-C", "eddy-test", "-f"]).arg(path));
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl SshHosts {
    /// Starts one host per kind on 10.77.0.2, .3, ...; the driver's side is 10.77.0.1.
    pub fn start(kinds: &[HostKind]) -> SshHosts {
        let sshd = sshd();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let tag = format!("{}{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        let driver_ns = format!("eddyd{tag}");
        ip(&["netns", "add", &driver_ns]);
        let mut hosts = SshHosts { dir, driver_ns: driver_ns.clone(), host_ns: Vec::new(), addrs: Vec::new(), sshds: Vec::new() };
        ip(&["-n", &driver_ns, "link", "set", "lo", "up"]);
        ip(&["-n", &driver_ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &driver_ns, "addr", "add", "10.77.0.1/24", "dev", "br0"]);
        ip(&["-n", &driver_ns, "link", "set", "br0", "up"]);
        keygen(&d.join("client_key"));
        keygen(&d.join("other_key"));
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host *\n  User root\n  IdentityFile {0}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {0}/known_hosts\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n",
                d.display()
            ),
        )
        .unwrap();
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        if !passwd.lines().any(|l| l.starts_with("sshd:")) {
            passwd.push_str("sshd:x:74:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin\n");
        }
        std::fs::write(d.join("passwd"), passwd).unwrap();
        std::fs::create_dir(d.join("install")).unwrap();
        for (i, kind) in kinds.iter().enumerate() {
            let ns = format!("eddyh{tag}x{i}");
            let addr = format!("10.77.0.{}", i + 2);
            ip(&["netns", "add", &ns]);
            hosts.host_ns.push(ns.clone());
            hosts.addrs.push(addr.clone());
            let (inside, outside) = (format!("e{tag}x{i}"), format!("b{tag}x{i}"));
            // Created inside the namespaces: nothing appears in the machine's own.
            ip(&["-n", &ns, "link", "add", &inside, "type", "veth", "peer", "name", &outside, "netns", &driver_ns]);
            ip(&["-n", &driver_ns, "link", "set", &outside, "master", "br0"]);
            ip(&["-n", &driver_ns, "link", "set", &outside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            if *kind == HostKind::Down {
                continue;
            }
            let host_dir = d.join(format!("host{i}"));
            std::fs::create_dir_all(host_dir.join("install")).unwrap();
            keygen(&host_dir.join("host_key"));
            let key = if *kind == HostKind::WrongKey { "other_key.pub" } else { "client_key.pub" };
            std::fs::copy(d.join(key), host_dir.join("authorized_keys")).unwrap();
            std::fs::write(
                host_dir.join("sshd_config"),
                format!(
                    "ListenAddress {addr}\nPort 22\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     UsePAM no\nStrictModes no\nPidFile none\nMaxStartups 100\nMaxSessions 100\n",
                    host_dir.display()
                ),
            )
            .unwrap();
            let ro = if *kind == HostKind::ReadOnlyInstall {
                format!(" && mount -o remount,bind,ro '{}'", d.join("install").display())
            } else {
                String::new()
            };
            let install = d.join("install").display().to_string();
            let mount_install = if *kind == HostKind::FullInstall {
                format!("mount -t tmpfs -o size=1m tmpfs '{install}'")
            } else {
                format!("mount --bind '{}' '{install}'", host_dir.join("install").display())
            };
            let script = format!(
                "mount --bind '{passwd}' /etc/passwd && mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd \
                 && {mount_install}{ro} && LD_LIBRARY_PATH='{lib}' exec '{sshd}' -D -e -f '{config}'",
                passwd = d.join("passwd").display(),
                lib = lib_dir(),
                sshd = sshd.display(),
                config = host_dir.join("sshd_config").display(),
            );
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &ns, "sh", "-c", &script]);
            let mut proc = Proc::spawn(cmd);
            proc.wait_for_line("Server listening", Duration::from_secs(30));
            hosts.sshds.push(proc);
        }
        hosts
    }

    /// The hosts file: one address per line, unless a test wrote its own.
    pub fn hosts_file(&self) -> PathBuf {
        let path = self.dir.path().join("hosts.txt");
        if !path.exists() {
            std::fs::write(&path, self.addrs.iter().map(|a| format!("{a}\n")).collect::<String>()).unwrap();
        }
        path
    }

    /// Puts `text` before the client configuration's catch-all `Host *` (ssh takes the first
    /// value it finds for each option).
    pub fn prepend_ssh_config(&self, text: &str) {
        let path = self.dir.path().join("ssh_config");
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n{old}")).unwrap();
    }

    /// The install directory (each host sees its own at this path).
    pub fn install_dir(&self) -> PathBuf {
        self.dir.path().join("install")
    }

    /// Host `i`'s own install directory, as the test sees it.
    pub fn host_install(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("host{i}/install"))
    }

    /// `eddy-driver` in the driver's namespace with the test's SSH client and configuration.
    pub fn driver(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.driver_ns]).arg(crate::bin("eddy-driver")).args(args);
        if args.first() == Some(&"ssh") {
            cmd.arg("--ssh-config").arg(self.dir.path().join("ssh_config"));
            cmd.arg("--hosts").arg(self.hosts_file()).arg("--install-dir").arg(self.install_dir());
        }
        cmd.env("PATH", ssh_path()).env("RUST_LOG", "warn");
        cmd
    }

    /// Runs `eddy-driver` to its end (bounded): (success, output).
    pub fn run_driver(&self, args: &[&str], timeout: Duration) -> (bool, String) {
        let mut proc = Proc::spawn(self.driver(args));
        let status = proc.wait_exit(timeout);
        // Shown with the test's output when it fails.
        println!("$ eddy-driver {} ({status})\n{}", args.join(" "), proc.output());
        (status.success(), proc.output())
    }

    /// What the `n`-th sshd started (hosts of kind `Down` have none) has logged.
    pub fn sshd_log(&self, n: usize) -> String {
        self.sshds[n].output()
    }

    /// A command's standard output, run in the driver's namespace (bounded by its own timeouts).
    pub fn output_in_driver_ns(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.driver_ns]).args(args).stdin(Stdio::null()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `eddy-mapper` processes alive on host `i` (by namespace).
    pub fn mappers_on(&self, i: usize) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.host_ns[i]]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "eddy-mapper"))
            .collect()
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for ns in self.host_ns.iter().chain(std::iter::once(&self.driver_ns)) {
            // Everything left in the namespace (workers, sshd, ssh masters), then the namespace.
            crate::netns::kill_all_and_delete(ns);
        }
        self.sshds.clear();
    }
}
