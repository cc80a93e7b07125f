//! Binding a node's two listeners: REST on `port`, internal gRPC on `port + 1`.
//!
//! With `search`, a taken pair moves up by two ports (H2O's rule), so several workers on one
//! host each find a pair; where peers read the port from a flatfile or DNS, it must be exact.

use std::net::{IpAddr, SocketAddr};

use eddy_common::NodeAddr;
use tokio::net::TcpListener;

use crate::{NodeError, NodeResult};

/// How many port pairs a search tries.
pub const PORT_SEARCH_ATTEMPTS: u16 = 100;

/// A node's bound listeners and the address they make.
#[derive(Debug)]
pub struct Listeners {
    /// The advertised address.
    pub addr: NodeAddr,
    /// REST listener.
    pub rest: TcpListener,
    /// Internal gRPC listener.
    pub grpc: TcpListener,
}

/// Binds REST and gRPC listeners on `ip`. `port` 0 picks two free ports.
pub async fn bind(ip: IpAddr, port: u16, search: bool) -> NodeResult<Listeners> {
    if port == 0 {
        let rest = listen(SocketAddr::new(ip, 0)).await?;
        let grpc = listen(SocketAddr::new(ip, 0)).await?;
        return finish(ip, rest, grpc);
    }
    let attempts = if search { PORT_SEARCH_ATTEMPTS } else { 1 };
    let mut last_err = None;
    for i in 0..attempts {
        let Some(p) = port.checked_add(i * 2).filter(|p| *p < u16::MAX) else { break };
        match bind_pair(ip, p).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                if i + 1 < attempts {
                    tracing::debug!(ip = %ip, port = p, error = %e, "port pair taken; trying the next");
                }
                last_err = Some(e);
            }
        }
    }
    match (search, last_err) {
        (false, Some(e)) => Err(e),
        _ => Err(NodeError::NoFreePort { ip, first: port, last: port.saturating_add((attempts - 1) * 2) }),
    }
}

async fn bind_pair(ip: IpAddr, port: u16) -> NodeResult<Listeners> {
    let rest = listen(SocketAddr::new(ip, port)).await?;
    let grpc = listen(SocketAddr::new(ip, port + 1)).await?;
    finish(ip, rest, grpc)
}

async fn listen(addr: SocketAddr) -> NodeResult<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| NodeError::PortInUse { addr, source })
}

fn finish(ip: IpAddr, rest: TcpListener, grpc: TcpListener) -> NodeResult<Listeners> {
    let port_of =
        |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| NodeError::Server { what: "listener", reason: e.to_string() });
    let addr = NodeAddr { ip, rest_port: port_of(&rest)?, grpc_port: port_of(&grpc)? };
    Ok(Listeners { addr, rest, grpc })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn search_skips_a_taken_pair_and_exact_mode_reports_it() {
        let first = bind(LOCAL, 0, false).await.unwrap();
        let taken = first.addr.rest_port;
        // Port search from a taken port moves on by two.
        match bind(LOCAL, taken, true).await {
            Ok(l) => assert!(l.addr.rest_port > taken && (l.addr.rest_port - taken) % 2 == 0),
            Err(e) => panic!("search failed: {e}"),
        }
        let msg = bind(LOCAL, taken, false).await.unwrap_err().to_string();
        assert!(msg.contains(&taken.to_string()) && msg.contains("--port"), "{msg}");
    }
}
