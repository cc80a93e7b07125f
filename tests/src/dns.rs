//! A real DNS server for tests: Debian's dnsmasq (unpacked under `target/tools/dnsmasq` by
//! `scripts/test.sh`, or `EDDY_DNSMASQ`), on 127.0.0.1 and a free UDP port, authoritative for
//! one name whose A records are the lines of a hosts file in a directory dnsmasq watches: the
//! set of "pods" can change while it runs, as a headless service's does. Names under
//! `cluster.local` that it does not know are NXDOMAIN; nothing is forwarded anywhere.
//! Stopped when dropped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DnsServer {
    pub port: u16,
    name: String,
    dir: tempfile::TempDir,
    child: Child,
}

/// The dnsmasq binary: `EDDY_DNSMASQ`, else where `scripts/test.sh` unpacks it.
fn dnsmasq() -> PathBuf {
    let path = std::env::var_os("EDDY_DNSMASQ")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/dnsmasq/usr/sbin/dnsmasq"));
    assert!(
        path.is_file(),
        "dnsmasq is missing at {}: scripts/test.sh unpacks Debian's dnsmasq there (scripts/lib/dnsmasq.sh), or set EDDY_DNSMASQ",
        path.display()
    );
    path
}

impl DnsServer {
    /// Serves `name` with `addrs` (in that order) as its A records.
    pub fn start(name: &str, addrs: Vec<Ipv4Addr>) -> DnsServer {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts.d");
        std::fs::create_dir(&hosts).unwrap();
        let name = name.trim_end_matches('.').to_string();
        write_hosts(&hosts, &name, &addrs);
        let binary = dnsmasq();
        // The unpacked libraries: usr/lib/<multiarch> (x86_64-linux-gnu, aarch64-linux-gnu, ...).
        let libs = binary
            .parent()
            .and_then(Path::parent)
            .and_then(|usr| std::fs::read_dir(usr.join("lib")).ok())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("-linux-gnu")))
            .unwrap_or_default();
        let started = Instant::now();
        loop {
            let port = crate::free_udp_port();
            let log = std::fs::File::create(dir.path().join("dnsmasq.log")).unwrap();
            let mut child = Command::new(&binary)
                .env("LD_LIBRARY_PATH", &libs)
                .args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll"])
                .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--except-interface=nonexistent"])
                .arg(format!("--port={port}"))
                .arg(format!("--hostsdir={}", hosts.display()))
                // Authoritative for the cluster's domain: unknown names there are NXDOMAIN.
                .arg("--local=/cluster.local/")
                .arg("--local-ttl=0")
                .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()))
                // Running as root, dnsmasq would switch to "nobody", who cannot read the files.
                .arg("--user=root")
                .arg("--log-facility=-")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            // Ready when it answers; a port taken in between makes it exit: try another.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if answers(port, &name) {
                    return DnsServer { port, name, dir, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(30), "dnsmasq did not start: {log}");
        }
    }

    /// Replaces the A records (dnsmasq reads the changed file by itself); returns once it
    /// answers with the new set.
    pub fn set_addresses(&self, addrs: &[Ipv4Addr]) {
        write_hosts(&self.dir.path().join("hosts.d"), &self.name, addrs);
        let want: std::collections::BTreeSet<Ipv4Addr> = addrs.iter().copied().collect();
        crate::wait_until("dnsmasq to serve the new records", Duration::from_secs(10), || lookup(self.port, &self.name) == want);
    }
}

/// Writes the hosts file whole, then renames it into place (dnsmasq sees a complete file).
fn write_hosts(dir: &Path, name: &str, addrs: &[Ipv4Addr]) {
    let text: String = addrs.iter().map(|ip| format!("{ip} {name}\n")).collect();
    let staged = dir.with_extension("tmp");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, dir.join("service")).unwrap();
}

fn answers(port: u16, name: &str) -> bool {
    query(port, name).is_some()
}

fn lookup(port: u16, name: &str) -> std::collections::BTreeSet<Ipv4Addr> {
    query(port, name).unwrap_or_default().into_iter().collect()
}

/// One A query with hickory's wire format; the addresses, or `None` without an answer.
fn query(port: u16, name: &str) -> Option<Vec<Ipv4Addr>> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(format!("{name}.")).ok()?, RecordType::A));
    message.metadata.recursion_desired = true;
    socket.send_to(&message.to_vec().ok()?, ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let reply = Message::from_vec(&buf[..len]).ok()?;
    Some(reply.answers.iter().filter_map(|r| if let RData::A(a) = &r.data { Some(a.0) } else { None }).collect())
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
