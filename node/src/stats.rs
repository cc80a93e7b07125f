//! Facts about this machine and process, reported in heartbeats and `GET /3/Cloud`.
//!
//! Linux-first: values come from `/proc` and cgroup files; elsewhere they fall back to
//! what the standard library knows, and missing values are 0 rather than errors.

use std::time::{SystemTime, UNIX_EPOCH};

use eddy_proto::v1::NodeStats;

use crate::{NodeError, NodeResult};

/// Parses a memory size the way JVM users write it: `6g`, `512m`, `1024k`, `1t` or plain bytes.
pub fn parse_memory(text: &str) -> NodeResult<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, unit): (&str, u64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = digits.trim().parse().map_err(|_| NodeError::InvalidArgument {
        what: "memory size",
        reason: format!("{text:?} is not a size; write e.g. 6g, 512m or 1073741824"),
    })?;
    if !(n.is_finite() && n > 0.0) {
        return Err(NodeError::InvalidArgument { what: "memory size", reason: format!("{text:?} must be positive") });
    }
    Ok((n * unit as f64) as u64)
}

/// Physical memory available to this process: the smaller of the machine's and the cgroup's limit.
pub fn memory_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kib| kib * 1024)
        .unwrap_or(4 << 30);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|s| s.trim().parse::<u64>().ok());
    cgroup.map_or(total, |c| c.min(total))
}

/// The default memory budget: three quarters of what this process may use, leaving room
/// for the runtime itself so that YARN or the kernel never kills the worker first.
pub fn default_memory_budget() -> u64 {
    memory_limit() / 4 * 3
}

/// Cores this process may run on (affinity and cgroup quota respected).
pub fn cpus_allowed() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

fn cpus_online() -> u32 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
        _ => cpus_allowed(),
    }
}

fn load_average() -> f32 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

fn resident_bytes() -> u64 {
    // Second field of statm: resident pages.
    let pages: u64 = std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| s.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().and_then(|p| u64::try_from(p).ok());
    pages * page.unwrap_or(4096)
}

/// The host name, for logs and registration.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// Samples this node's stats.
pub fn sample(memory_budget: u64, nthreads: u32, started_at_millis: u64) -> NodeStats {
    NodeStats {
        pid: std::process::id(),
        num_cpus: cpus_online(),
        cpus_allowed: cpus_allowed(),
        nthreads,
        max_mem: memory_budget,
        free_mem: memory_budget.saturating_sub(resident_bytes()),
        sys_load: load_average(),
        host: host_name(),
        version: eddy_common::VERSION.to_string(),
        started_at_millis,
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("6g").unwrap(), 6 << 30);
        assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1.5gb").unwrap(), 3 << 29);
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert!(parse_memory("lots").unwrap_err().to_string().contains("6g"));
        assert!(parse_memory("-1g").is_err());
    }

    #[test]
    fn sample_is_sane() {
        let s = sample(1 << 30, 2, 5);
        assert_eq!(s.pid, std::process::id());
        assert!(s.cpus_allowed >= 1 && s.num_cpus >= s.cpus_allowed.min(s.num_cpus));
        assert!(s.free_mem <= s.max_mem);
        assert!(default_memory_budget() > 0);
    }
}
