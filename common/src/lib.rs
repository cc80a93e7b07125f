//! Vocabulary shared by every Eddy crate.
//!
//! - [`NodeAddr`]: where a node listens (IP, REST port, internal gRPC port).
//! - [`ClusterSecret`] and [`auth`]: every node-to-node and worker-to-driver call carries an
//!   HMAC of the cluster secret; the secret itself never crosses the wire or the command line.
//! - [`grant`]: a REST client's signed access to one frame over Arrow Flight.
//! - [`keys`]: every `EDDY_*` environment variable, declared once; [`env::Environment`]: the
//!   process environment, read once by a binary and handed to libraries.
//! - [`address`]: choosing the local address a node advertises.
//! - [`tls`]: the cloud's certificate authority and TLS settings of every channel.

pub mod address;
pub mod auth;
pub mod env;
mod error;
pub mod grant;
pub mod keys;
mod node_addr;
pub mod tls;

pub use auth::ClusterSecret;
pub use error::{CommonError, CommonResult};
pub use node_addr::{members_hash, NodeAddr};

/// The Eddy version every node reports and compares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the node-to-node and frame protocols: nodes of another refuse each other
/// at join. Raise it with any change a node of the previous version would misread.
pub const PROTOCOL_VERSION: u32 = 3;

/// A duration for people: tenths of a second below 10 s ("2s 500ms"), whole seconds above
/// ("2m 5s"), in the notation [`parse_duration`] reads back.
pub fn human_duration(d: std::time::Duration) -> String {
    let rounded = if d < std::time::Duration::from_secs(10) {
        std::time::Duration::from_millis((d.as_millis() as u64).div_ceil(100) * 100)
    } else {
        std::time::Duration::from_secs(d.as_secs())
    };
    humantime::format_duration(rounded).to_string()
}

/// An error with its causes, for a user's message: a client library's own words (ssh's, a
/// TLS verifier's "invalid peer certificate: UnknownIssuer") sit in the sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Parses a duration as users write it: `10s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(std::time::Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(t).map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 10s, 500ms, 2m or a number of seconds"))
}

#[cfg(test)]
mod duration_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_back_as_written() {
        assert_eq!(human_duration(Duration::from_millis(2450)), "2s 500ms");
        assert_eq!(human_duration(Duration::from_millis(125_700)), "2m 5s");
        assert_eq!(human_duration(Duration::ZERO), "0s");
        let d = Duration::from_millis(7300);
        assert_eq!(parse_duration(&human_duration(d)).unwrap(), d);
    }
}
