//! Flatfile discovery: a file of peers, one `ip:port`, `host:port` or `[v6]:port` per line.
//!
//! Blank lines and lines starting with `#` are ignored. The port is the REST port; the
//! internal port is REST + 1 on every host, as with `--port`. Host names are resolved once,
//! when the node announces itself.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use eddy_common::NodeAddr;

use crate::{normalize_peers, Announcement, EmbeddedConfig, EmbeddedConfigError, EmbeddedConfigResult, ExitRequest};

/// One parsed flatfile line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlatfileEntry {
    /// A literal address.
    Addr(SocketAddr),
    /// A host name to resolve, and its port.
    Host(String, u16),
}

/// Parses flatfile text; errors name `path`, the line number and the offending text.
pub fn parse_flatfile(path: &Path, text: &str) -> EmbeddedConfigResult<Vec<FlatfileEntry>> {
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: &str| EmbeddedConfigError::FlatfileSyntax {
            path: path.to_path_buf(),
            line: idx + 1,
            text: line.to_string(),
            reason: reason.to_string(),
        };
        if let Ok(sa) = line.parse::<SocketAddr>() {
            if sa.port() == 0 || sa.port() == u16::MAX {
                return Err(err("the port must be between 1 and 65534 (the internal port is port + 1)"));
            }
            out.push(FlatfileEntry::Addr(sa));
            continue;
        }
        if line.parse::<IpAddr>().is_ok() {
            return Err(err("the port is missing (e.g. `:54321`)"));
        }
        let Some((host, port)) = line.rsplit_once(':') else {
            return Err(err("the port is missing (e.g. `:54321`)"));
        };
        let port: u16 = port.parse().map_err(|_| err("the port is not a number between 1 and 65534"))?;
        if port == 0 || port == u16::MAX {
            return Err(err("the port must be between 1 and 65534 (the internal port is port + 1)"));
        }
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            && !host.starts_with('-');
        if !valid_host {
            return Err(err("not an IP address or host name (IPv6 addresses go in brackets: `[::1]:54321`)"));
        }
        out.push(FlatfileEntry::Host(host.to_string(), port));
    }
    Ok(out)
}

/// Flatfile discovery.
#[derive(Debug, Clone)]
pub struct Flatfile {
    path: PathBuf,
    entries: Vec<FlatfileEntry>,
    resolve_timeout: Duration,
}

impl Flatfile {
    /// Reads and parses the flatfile.
    pub fn load(path: &Path, resolve_timeout: Duration) -> EmbeddedConfigResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EmbeddedConfigError::Io { path: path.to_path_buf(), source })?;
        let entries = parse_flatfile(path, &text)?;
        if entries.is_empty() {
            return Err(EmbeddedConfigError::InvalidArgument {
                what: "flatfile",
                reason: format!("{} lists no peers; write one `ip:port` per line", path.display()),
            });
        }
        Ok(Self { path: path.to_path_buf(), entries, resolve_timeout })
    }

    async fn resolve(&self) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        let mut out = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let sa = match entry {
                FlatfileEntry::Addr(sa) => *sa,
                FlatfileEntry::Host(host, port) => {
                    let lookup = tokio::time::timeout(self.resolve_timeout, tokio::net::lookup_host((host.as_str(), *port)));
                    let addrs: Vec<SocketAddr> = match lookup.await {
                        Ok(Ok(a)) => a.collect(),
                        Ok(Err(e)) => return Err(EmbeddedConfigError::Resolve { host: host.clone(), reason: e.to_string() }),
                        Err(_) => return Err(EmbeddedConfigError::Resolve { host: host.clone(), reason: "timed out".into() }),
                    };
                    // Prefer IPv4, as the OS's own ordering may put IPv6 first.
                    let pick = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied();
                    pick.ok_or_else(|| EmbeddedConfigError::Resolve { host: host.clone(), reason: "no addresses".into() })?
                }
            };
            out.push(NodeAddr::with_default_grpc(sa.ip(), sa.port())?);
        }
        Ok(out)
    }
}

#[async_trait]
impl EmbeddedConfig for Flatfile {
    fn mode(&self) -> &'static str {
        "flatfile"
    }

    fn route_target(&self) -> Option<SocketAddr> {
        self.entries.iter().find_map(|e| match e {
            FlatfileEntry::Addr(sa) => Some(*sa),
            FlatfileEntry::Host(..) => None,
        })
    }

    fn allows_port_search(&self) -> bool {
        false
    }

    async fn announce(&self, me: &Announcement) -> EmbeddedConfigResult<Vec<NodeAddr>> {
        let peers = self.resolve().await?;
        if !peers.contains(&me.addr) {
            tracing::warn!(node = %me.addr, flatfile = %self.path.display(), "this node is not in the flatfile; it joins anyway, but the other nodes will only learn of it from its heartbeats");
        }
        Ok(normalize_peers(peers, me.addr))
    }

    async fn cloud_formed(&self, _me: NodeAddr, _size: usize, _leader: NodeAddr) -> EmbeddedConfigResult<()> {
        Ok(())
    }

    async fn exit_requested(&self, _me: NodeAddr) -> ExitRequest {
        std::future::pending().await
    }

    async fn report_exit(&self, _me: NodeAddr, _reason: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EmbeddedConfigResult<Vec<FlatfileEntry>> {
        parse_flatfile(Path::new("flat.txt"), text)
    }

    #[test]
    fn accepts_every_documented_form() {
        let got = parse("# peers\n\n 10.0.0.5:54321 \nnode-2.example.com:54321\n[::1]:54321\n").unwrap();
        assert_eq!(
            got,
            vec![
                FlatfileEntry::Addr("10.0.0.5:54321".parse().unwrap()),
                FlatfileEntry::Host("node-2.example.com".into(), 54321),
                FlatfileEntry::Addr("[::1]:54321".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn errors_name_file_line_and_text() {
        for (text, needle) in [
            ("10.0.0.1:1\n10.0.0.5\n", "port is missing"),
            ("10.0.0.1:1\n\nhost:99999\n", "not a number"),
            ("a b:12\n", "not an IP address or host name"),
            ("::1:54321\n", "brackets"),
            ("10.0.0.1:0\n", "between 1 and 65534"),
            ("h:65535\n", "between 1 and 65534"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with("flat.txt:"), "{msg}");
            assert!(msg.contains(needle), "{text:?} -> {msg}");
        }
        let msg = parse("10.0.0.1:1\n\n10.0.0.5\n").unwrap_err().to_string();
        assert!(msg.starts_with("flat.txt:3: \"10.0.0.5\""), "{msg}");
    }

    #[tokio::test]
    async fn announce_resolves_sorts_and_includes_me() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.txt");
        std::fs::write(&path, "127.0.0.1:7002\nlocalhost:7000\n").unwrap();
        let ff = Flatfile::load(&path, Duration::from_secs(5)).unwrap();
        let me = NodeAddr::with_default_grpc("127.0.0.1".parse().unwrap(), 7004).unwrap();
        let ann = Announcement { addr: me, worker_id: String::new(), stats: Default::default() };
        let peers = ff.announce(&ann).await.unwrap();
        let ports: Vec<u16> = peers.iter().map(|p| p.rest_port).collect();
        assert_eq!(ports, vec![7000, 7002, 7004]);
        assert!(Flatfile::load(&dir.path().join("missing"), Duration::from_secs(1)).unwrap_err().to_string().contains("missing"));
    }
}
