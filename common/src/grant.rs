//! Grants: what a REST client may do over Arrow Flight without holding the cluster secret.
//!
//! A Python client that connects with the REST access token (or a user and password) reads
//! and writes frames in parallel from the workers over Flight, whose calls otherwise need an
//! `x-eddy-auth` HMAC only secret holders can make. The REST API, once it has authenticated
//! the client, hands out a grant: access to one frame (read, or stage chunks of it) until a
//! time, signed with a key derived from the secret, so any worker checks it alone. A grant
//! travels in `x-eddy-grant`. It is not single-use, as `x-eddy-auth` tokens are: a client
//! makes one call per chunk with it; it is scoped to one frame and expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ClusterSecret;

/// What grant signatures are for, so that no other signature under the secret passes as one.
const PURPOSE: &str = "grant-v1";

/// The gRPC metadata key that carries a grant.
pub const GRANT_METADATA_KEY: &str = "x-eddy-grant";

/// How long a grant lasts: long enough to read or write a large frame chunk by chunk.
pub const GRANT_LIFETIME: Duration = Duration::from_secs(3600);

/// What a grant allows on its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantAccess {
    /// `DoGet` of the frame's chunks.
    Read,
    /// `DoPut` of chunks of the frame (not yet registered), to commit over REST.
    Write,
}

impl GrantAccess {
    fn word(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// A verified grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// What it allows.
    pub access: GrantAccess,
    /// The one frame it is for.
    pub frame_id: String,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub expires_millis: u64,
}

impl Grant {
    /// A grant of `access` to `frame_id` for [`GRANT_LIFETIME`] from now.
    pub fn new(access: GrantAccess, frame_id: &str) -> Self {
        Self { access, frame_id: frame_id.to_string(), expires_millis: now_millis() + GRANT_LIFETIME.as_millis() as u64 }
    }

    /// `Ok` if this grant allows `access` to `frame_id`; else why not, for the caller.
    pub fn allows(&self, access: GrantAccess, frame_id: &str) -> Result<(), String> {
        if self.frame_id != frame_id {
            return Err(format!(
                "the grant is for frame {:?}, not {frame_id:?}; ask the REST API for a grant of this frame",
                self.frame_id
            ));
        }
        if self.access != access {
            return Err(format!("the grant allows {} access, not {}", self.access.word(), access.word()));
        }
        Ok(())
    }

    /// What the signature covers; the frame id is hex-encoded so that no id can shift the
    /// fields' boundaries.
    fn signed_text(&self, cloud_name: &str) -> String {
        format!("{cloud_name}|{}|{}|{}", self.access.word(), self.expires_millis, hex::encode(&self.frame_id))
    }

    /// The grant as text for `x-eddy-grant`: `g1.ACCESS.EXPIRES.HEX(FRAME).HEX(HMAC)`.
    pub fn sign(&self, secret: &ClusterSecret, cloud_name: &str) -> String {
        let tag = hex::encode(secret.sign(PURPOSE, self.signed_text(cloud_name).as_bytes()));
        format!("g1.{}.{}.{}.{tag}", self.access.word(), self.expires_millis, hex::encode(&self.frame_id))
    }

    /// Reads and checks a grant's text; the error says why it is refused.
    pub fn verify(secret: &ClusterSecret, cloud_name: &str, text: &str) -> Result<Self, String> {
        let malformed = || "malformed grant; ask the REST API for a new one".to_string();
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [version, access, expires, frame, tag] = parts.as_slice() else { return Err(malformed()) };
        if *version != "g1" {
            return Err(malformed());
        }
        let access = match *access {
            "read" => GrantAccess::Read,
            "write" => GrantAccess::Write,
            _ => return Err(malformed()),
        };
        let expires_millis: u64 = expires.parse().map_err(|_| malformed())?;
        let frame_id = hex::decode(frame).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(malformed)?;
        let tag = hex::decode(tag).map_err(|_| malformed())?;
        let grant = Self { access, frame_id, expires_millis };
        if !secret.verify_signature(PURPOSE, grant.signed_text(cloud_name).as_bytes(), &tag) {
            return Err("the grant is not signed by this cloud".into());
        }
        let now = now_millis();
        if now > expires_millis {
            return Err(format!("the grant expired {} s ago; ask the REST API for a new one", (now - expires_millis) / 1000));
        }
        Ok(grant)
    }
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_verifies_for_its_cloud_frame_and_access_only() {
        let secret = ClusterSecret::from_text("0123456789").unwrap();
        let grant = Grant::new(GrantAccess::Read, "a.b|c.hex");
        let text = grant.sign(&secret, "cloud");
        let back = Grant::verify(&secret, "cloud", &text).unwrap();
        assert_eq!(back, grant);
        assert!(back.allows(GrantAccess::Read, "a.b|c.hex").is_ok());
        assert!(back.allows(GrantAccess::Write, "a.b|c.hex").unwrap_err().contains("not write"));
        assert!(back.allows(GrantAccess::Read, "other").unwrap_err().contains("not \"other\""));
        assert!(Grant::verify(&secret, "another cloud", &text).unwrap_err().contains("not signed"));
        let other = ClusterSecret::from_text("another-secret").unwrap();
        assert!(Grant::verify(&other, "cloud", &text).unwrap_err().contains("not signed"));
        // A changed field breaks the signature.
        let widened = text.replacen("read", "write", 1);
        assert!(Grant::verify(&secret, "cloud", &widened).unwrap_err().contains("not signed"));
        assert!(Grant::verify(&secret, "cloud", "g1.read").unwrap_err().contains("malformed"));
    }

    #[test]
    fn an_expired_grant_is_refused() {
        let secret = ClusterSecret::from_text("0123456789").unwrap();
        let grant = Grant { access: GrantAccess::Write, frame_id: "f".into(), expires_millis: now_millis() - 5_000 };
        let err = Grant::verify(&secret, "c", &grant.sign(&secret, "c")).unwrap_err();
        assert!(err.contains("expired 5 s ago"), "{err}");
    }
}
