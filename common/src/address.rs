//! Choosing the local address a node binds and advertises.
//!
//! The classic failure of H2O on multi-homed hosts is a worker that advertises an interface
//! its peers cannot reach. The order here: an explicit `--ip`; else the interface inside
//! `--network`; else the source address the OS would route toward the driver (or first
//! peer), found by connecting a UDP socket, which sends no packet; else loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

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
    fn route_toward_loopback_is_loopback() {
        let ip = choose_ip(&AddressChoice::default(), Some("127.0.0.3:9000".parse().unwrap())).unwrap();
        assert_eq!(ip.to_string(), "127.0.0.3");
        assert!(parse_network("nonsense").is_err());
    }
}
