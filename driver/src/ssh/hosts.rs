//! The hosts file of `eddy-driver ssh`: one `[user@]host[:port]` per line.

use std::path::Path;

use crate::{DriverError, DriverResult};

/// One line of the hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The line as written (how the host is named in every message).
    pub text: String,
    /// `user@`, if the line names one.
    pub user_opt: Option<String>,
    /// Host name, address or `~/.ssh/config` alias (IPv6 without brackets).
    pub name: String,
    /// `:port`, if the line names one.
    pub port_opt: Option<u16>,
}

/// Reads and checks a hosts file.
pub fn read_hosts(path: &Path) -> DriverResult<Vec<Host>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DriverError::Io { what: format!("cannot read the hosts file {}", path.display()), source })?;
    parse_hosts(&text).map_err(|e| DriverError::InvalidArgument { reason: format!("{}: {e}", path.display()) })
}

/// Parses hosts-file text: blank lines and `#` comments are skipped; a host twice is refused.
pub fn parse_hosts(text: &str) -> Result<Vec<Host>, String> {
    let mut hosts: Vec<Host> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let host = parse_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some(twin) = hosts.iter().find(|h| h.name == host.name && h.port_opt == host.port_opt) {
            return Err(format!(
                "line {}: {line:?} is the same host as {:?}; use --workers-per-host for several workers on one host",
                n + 1,
                twin.text
            ));
        }
        hosts.push(host);
    }
    if hosts.is_empty() {
        return Err("no hosts in it: write one [user@]host[:port] per line".into());
    }
    Ok(hosts)
}

fn parse_line(line: &str) -> Result<Host, String> {
    if line.contains(char::is_whitespace) {
        return Err(format!("{line:?} has spaces: one [user@]host[:port] per line"));
    }
    let (user_opt, rest) = match line.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        Some(_) => return Err(format!("{line:?} has an empty user name before @")),
        None => (None, line),
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{p:?} in {line:?} is not a port"));
    let (name, port_opt) = if let Some(bracketed) = rest.strip_prefix('[') {
        // [IPv6]:port
        let (addr, after) = bracketed.split_once(']').ok_or_else(|| format!("{line:?} opens [ without closing it"))?;
        match after.strip_prefix(':') {
            Some(p) => (addr.to_string(), Some(port(p)?)),
            None if after.is_empty() => (addr.to_string(), None),
            None => return Err(format!("{line:?}: only :port may follow ]")),
        }
    } else if rest.matches(':').count() > 1 {
        // A bare IPv6 address.
        (rest.to_string(), None)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(port(p)?)),
            None => (rest.to_string(), None),
        }
    };
    if name.is_empty() {
        return Err(format!("{line:?} has no host name"));
    }
    Ok(Host { text: line.to_string(), user_opt, name, port_opt })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_user_host_and_port() {
        let hosts = parse_hosts("# cluster\n10.0.0.1\nubuntu@node2:2222  # comment\n\n[::1]:22\nfe80::1\n").unwrap();
        let got: Vec<_> = hosts.iter().map(|h| (h.user_opt.as_deref(), h.name.as_str(), h.port_opt)).collect();
        assert_eq!(
            got,
            vec![(None, "10.0.0.1", None), (Some("ubuntu"), "node2", Some(2222)), (None, "::1", Some(22)), (None, "fe80::1", None)]
        );
        assert_eq!(hosts[1].text, "ubuntu@node2:2222");
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert!(parse_hosts("\n# nothing\n").unwrap_err().contains("no hosts"));
        assert!(parse_hosts("a\nb:99999\n").unwrap_err().starts_with("line 2:"));
        assert!(parse_hosts("a b\n").unwrap_err().contains("spaces"));
        assert!(parse_hosts("@a\n").unwrap_err().contains("empty user"));
        let twin = parse_hosts("a\nu@a\n").unwrap_err();
        assert!(twin.contains("--workers-per-host"), "{twin}");
        assert_eq!(parse_hosts("a:22\na:23\n").unwrap().len(), 2);
    }
}
