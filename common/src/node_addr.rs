//! Node addresses. A node is identified by the address peers use to reach it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{CommonError, CommonResult};

/// Where a node listens: its advertised IP, REST port and internal gRPC port.
///
/// Ordering is by (ip, rest_port, grpc_port); the sorted member list decides the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeAddr {
    /// Advertised IP address.
    pub ip: IpAddr,
    /// REST port (H2O's "port", default 54321).
    pub rest_port: u16,
    /// Internal gRPC port (by convention `rest_port + 1`).
    pub grpc_port: u16,
}

impl NodeAddr {
    /// An address whose gRPC port follows the convention `rest_port + 1`.
    pub fn with_default_grpc(ip: IpAddr, rest_port: u16) -> CommonResult<Self> {
        let grpc_port = rest_port.checked_add(1).ok_or_else(|| CommonError::InvalidArgument {
            what: "port",
            value: rest_port.to_string(),
            reason: "the internal port is the REST port + 1, so the REST port must be below 65535".into(),
        })?;
        Ok(Self { ip, rest_port, grpc_port })
    }

    /// `ip:rest_port`, the form H2O shows as `ip_port`.
    pub fn rest(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.rest_port)
    }

    /// The socket address of the internal gRPC service.
    pub fn grpc(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.grpc_port)
    }

    /// `http://ip:grpc_port`, the endpoint a tonic channel connects to.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc())
    }

    /// `http://ip:rest_port`, the REST base URL.
    pub fn rest_url(&self) -> String {
        self.rest_base(false)
    }

    /// The REST base URL, `https://` for a node serving its REST API over TLS.
    pub fn rest_base(&self, https: bool) -> String {
        format!("{}://{}", if https { "https" } else { "http" }, self.rest())
    }

    /// Converts from the wire form, refusing malformed addresses.
    pub fn from_proto(p: &eddy_proto::v1::NodeAddr) -> CommonResult<Self> {
        let bad = |reason: &str| CommonError::InvalidArgument {
            what: "node address",
            value: format!("{}:{}/{}", p.ip, p.rest_port, p.grpc_port),
            reason: reason.to_string(),
        };
        let ip = p.ip.parse().map_err(|_| bad("not an IP address"))?;
        let rest_port = u16::try_from(p.rest_port).map_err(|_| bad("REST port out of range"))?;
        let grpc_port = u16::try_from(p.grpc_port).map_err(|_| bad("gRPC port out of range"))?;
        if rest_port == 0 || grpc_port == 0 {
            return Err(bad("port 0 is not a listening port"));
        }
        Ok(Self { ip, rest_port, grpc_port })
    }

    /// Converts to the wire form.
    pub fn to_proto(&self) -> eddy_proto::v1::NodeAddr {
        eddy_proto::v1::NodeAddr { ip: self.ip.to_string(), rest_port: u32::from(self.rest_port), grpc_port: u32::from(self.grpc_port) }
    }
}

impl fmt::Display for NodeAddr {
    /// Shown as `ip:rest_port` (H2O's `ip_port`), the way users name nodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rest())
    }
}

/// A stable hash of a sorted member list (FNV-1a over the canonical text), identical on
/// every platform and build so that nodes can compare views by hash.
pub fn members_hash(sorted_members: &[NodeAddr]) -> u64 {
    debug_assert!(sorted_members.windows(2).all(|w| w[0] < w[1]), "members must be sorted and unique");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in sorted_members {
        for b in format!("{}/{};", m.rest(), m.grpc_port).bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> NodeAddr {
        let sa: SocketAddr = s.parse().unwrap();
        NodeAddr::with_default_grpc(sa.ip(), sa.port()).unwrap()
    }

    #[test]
    fn proto_round_trip_and_validation() {
        let a = addr("10.0.0.5:54321");
        assert_eq!(NodeAddr::from_proto(&a.to_proto()).unwrap(), a);
        let mut bad = a.to_proto();
        bad.rest_port = 70000;
        assert!(NodeAddr::from_proto(&bad).is_err());
        bad = a.to_proto();
        bad.ip = "nope".into();
        assert!(NodeAddr::from_proto(&bad).is_err());
    }

    #[test]
    fn hash_depends_on_every_member() {
        let a = vec![addr("127.0.0.1:1000"), addr("127.0.0.1:1002")];
        let b = vec![addr("127.0.0.1:1000"), addr("127.0.0.1:1004")];
        assert_ne!(members_hash(&a), members_hash(&b));
        assert_eq!(members_hash(&a), members_hash(&a.clone()));
    }

    #[test]
    fn max_port_has_no_grpc_port() {
        assert!(NodeAddr::with_default_grpc("127.0.0.1".parse().unwrap(), 65535).is_err());
    }
}
