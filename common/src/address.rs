//! Choosing the local address a node binds and advertises.
//!
//! The classic failure of H2O on multi-homed hosts is a worker that advertises an interface
//! its peers cannot reach. The order here: an explicit `--ip`; else the interface inside
//! `--network`; else the source address the OS would route toward the driver (or first
//! peer), found by connecting a UDP socket, which sends no packet; else loopback.
//!
//! Wherever an address is taken, a host name is taken too ([`resolve_host`]): Spark and YARN
//! name hosts (`spark.driver.host`, executor hosts), and a name resolves here as it does for
//! every other process of the cluster, through the system resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use ipnet::IpNet;

use crate::{CommonError, CommonResult};

/// How the user asked for the address to be chosen.
#[derive(Debug, Clone, Default)]
pub struct AddressChoice {
    /// `--ip`.
    pub ip_opt: Option<IpAddr>,
    /// `--network`.
    pub network_opt: Option<IpNet>,
}

/// Parses a `--network` value such as `10.0.0.0/8`.
pub fn parse_network(text: &str) -> CommonResult<IpNet> {
    text.trim().parse().map_err(|e: ipnet::AddrParseError| CommonError::InvalidArgument {
        what: "network",
        value: text.to_string(),
        reason: format!("{e}; expected CIDR notation such as 10.0.0.0/8"),
    })
}

/// An IP address, or a host name resolved by the system resolver. A name with both IPv4 and
/// IPv6 addresses gives the IPv4 one: `localhost` and most cluster hosts resolve to both,
/// and the rest of a Spark or YARN cluster usually talks IPv4.
pub fn resolve_host(text: &str) -> CommonResult<IpAddr> {
    let host = text.trim();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    let bad = |reason: String| CommonError::InvalidArgument { what: "host", value: text.to_string(), reason };
    if bare.is_empty() {
        return Err(bad("give an IP address or a host name".into()));
    }
    let addrs: Vec<SocketAddr> = (bare, 0u16)
        .to_socket_addrs()
        .map_err(|e| bad(format!("it is not an IP address and does not resolve ({e}); check the name or give an IP address")))?
        .collect();
    prefer_ipv4(&addrs).map(|a| a.ip()).ok_or_else(|| bad("the name resolves to no address; check the name or give an IP address".into()))
}

/// `host:port` (or `ip:port`, `[v6]:port`) with the host resolved as by [`resolve_host`].
pub fn resolve_host_port(text: &str) -> CommonResult<SocketAddr> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = |reason: &str| CommonError::InvalidArgument { what: "address", value: text.to_string(), reason: reason.to_string() };
    let (host, port) = t.rsplit_once(':').ok_or_else(|| bad("the port is missing; write host:port, e.g. driver.example.com:31000"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number between 0 and 65535; write host:port"))?;
    Ok(SocketAddr::new(resolve_host(host)?, port))
}

/// [`resolve_host`] for clap's `value_parser`.
pub fn parse_host(text: &str) -> Result<IpAddr, String> {
    resolve_host(text).map_err(|e| e.to_string())
}

fn prefer_ipv4(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs.iter().find(|a| a.is_ipv4()).or_else(|| addrs.first()).copied()
}

/// Picks the address per [`AddressChoice`], using `toward` (the driver or first peer) for
/// the routing rule.
pub fn choose_ip(choice: &AddressChoice, toward: Option<SocketAddr>) -> CommonResult<IpAddr> {
    if let Some(ip) = choice.ip_opt {
        return Ok(ip);
    }
    if let Some(net) = choice.network_opt {
        let addrs = local_addresses()?;
        return addrs.iter().copied().find(|ip| net.contains(ip)).ok_or_else(|| CommonError::NoInterfaceInNetwork {
            network: net.to_string(),
            available: addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        });
    }
    match toward {
        Some(target) => route_source(target),
        None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

/// The source address the OS picks for traffic to `target`.
pub fn route_source(target: SocketAddr) -> CommonResult<IpAddr> {
    if target.ip().is_loopback() {
        return Ok(target.ip());
    }
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|_| CommonError::InvalidArgument {
        what: "address",
        value: String::new(),
        reason: "unparsable wildcard".into(),
    })?;
    let socket = UdpSocket::bind(bind)
        .map_err(|source| CommonError::System { what: "cannot open a UDP socket to find the route".into(), source })?;
    // connect() on UDP only selects a route; nothing is sent.
    socket
        .connect(target)
        .map_err(|source| CommonError::System { what: format!("no route toward {target}; pass --ip or --network"), source })?;
    socket
        .local_addr()
        .map(|a| a.ip())
        .map_err(|source| CommonError::System { what: "cannot read the routed source address".into(), source })
}

/// Every address of every local interface.
pub fn local_addresses() -> CommonResult<Vec<IpAddr>> {
    let ifaces =
        if_addrs::get_if_addrs().map_err(|source| CommonError::System { what: "cannot list network interfaces".into(), source })?;
    Ok(ifaces.into_iter().map(|i| i.ip()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_ip_wins() {
        let c = AddressChoice { ip_opt: Some("127.0.0.9".parse().unwrap()), network_opt: Some(parse_network("10.0.0.0/8").unwrap()) };
        assert_eq!(choose_ip(&c, None).unwrap().to_string(), "127.0.0.9");
    }

    #[test]
    fn network_picks_loopback_interface() {
        let c = AddressChoice { ip_opt: None, network_opt: Some(parse_network("127.0.0.0/8").unwrap()) };
        assert!(choose_ip(&c, None).unwrap().is_loopback());
    }

    #[test]
    fn network_without_match_lists_addresses() {
        let c = AddressChoice { ip_opt: None, network_opt: Some(parse_network("203.0.113.0/24").unwrap()) };
        let msg = choose_ip(&c, None).unwrap_err().to_string();
        assert!(msg.contains("203.0.113.0/24") && msg.contains("127.0.0.1"), "{msg}");
    }

    #[test]
    fn host_names_resolve_and_addresses_pass_through() {
        assert_eq!(resolve_host("10.1.2.3").unwrap().to_string(), "10.1.2.3");
        assert_eq!(resolve_host("[::1]").unwrap().to_string(), "::1");
        assert_eq!(resolve_host(" localhost ").unwrap(), IpAddr::V4(Ipv4Addr::LOCALHOST), "IPv4 is preferred");
        assert_eq!(resolve_host_port("localhost:31000").unwrap().to_string(), "127.0.0.1:31000");
        assert_eq!(resolve_host_port("[::1]:9").unwrap().to_string(), "[::1]:9");
        let msg = resolve_host("no-such-host.invalid").unwrap_err().to_string();
        assert!(msg.contains("no-such-host.invalid") && msg.contains("give an IP address"), "{msg}");
        let msg = resolve_host_port("localhost").unwrap_err().to_string();
        assert!(msg.contains("port is missing"), "{msg}");
        assert!(parse_host("").is_err());
    }

    #[test]
    fn route_toward_loopback_is_loopback() {
        let ip = choose_ip(&AddressChoice::default(), Some("127.0.0.3:9000".parse().unwrap())).unwrap();
        assert_eq!(ip.to_string(), "127.0.0.3");
        assert!(parse_network("nonsense").is_err());
    }
}
