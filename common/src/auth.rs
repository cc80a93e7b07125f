//! Request authentication with the cluster secret.
//!
//! Every gRPC call carries the metadata entry `x-eddy-auth: <millis>.<nonce>.<hex hmac>` where
//! the HMAC-SHA256 is keyed by the cluster secret over `eddy-v2|<cloud name>|<millis>|<nonce>`
//! and the nonce is 64 random bits. The secret itself never crosses the wire; a server
//! accepts each token once ([`ReplayGuard`]) and only within [`MAX_CLOCK_SKEW`] of its clock,
//! so a captured header cannot be sent again, nor used for any other cloud. The channels
//! run over TLS ([`crate::tls`]); with `--internal-tls off` a call is authenticated, not
//! encrypted, so someone who can intercept it can still read it or block it and send its
//! token first. Arrow Flight also takes a [`crate::grant`] in place of a token.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::{CommonError, CommonResult};

/// The gRPC metadata key that carries the authentication token.
pub const AUTH_METADATA_KEY: &str = "x-eddy-auth";

/// How far apart two nodes' clocks may be before their calls are refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// The shared secret of one cloud. Debug output never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    text: String,
    /// Keyed once; each token clones it.
    keyed: HmacSha256,
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ClusterSecret {}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// A fresh random secret (32 bytes from the OS).
    pub fn generate() -> CommonResult<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CommonError::System {
            what: "cannot get random bytes for the cluster secret".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Self::from_text(&hex::encode(bytes))
    }

    /// A secret given as text (environment variable or file). Surrounding white space is
    /// trimmed so that a trailing newline in a secret file does not matter.
    pub fn from_text(text: &str) -> CommonResult<Self> {
        let trimmed = text.trim();
        if trimmed.len() < 8 {
            return Err(CommonError::InvalidArgument {
                what: "cluster secret",
                value: "<redacted>".into(),
                reason: format!("it has {} characters; use at least 8 (e.g. `openssl rand -hex 32`)", trimmed.len()),
            });
        }
        let keyed = <HmacSha256 as Mac>::new_from_slice(trimmed.as_bytes()).map_err(|e| CommonError::InvalidArgument {
            what: "cluster secret",
            value: "<redacted>".into(),
            reason: e.to_string(),
        })?;
        Ok(Self { text: trimmed.to_string(), keyed })
    }

    /// Reads a secret file.
    pub fn from_file(path: &Path) -> CommonResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| CommonError::Io { path: path.to_path_buf(), source })?;
        Self::from_text(&text)
    }

    /// The secret as text, for handing to a child process in its environment.
    pub fn expose(&self) -> &str {
        &self.text
    }

    fn mac(&self, cloud_name: &str, millis: u64, nonce: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("eddy-v2|{cloud_name}|{millis}|{nonce}").as_bytes());
        mac
    }

    /// 32 bytes for `label` (an HMAC under the secret): keys that every holder of the secret
    /// derives alike and that do not reveal it (the cloud's TLS CA).
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(format!("eddy-derive-v1|{label}").as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn purpose_mac(&self, purpose: &str, data: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("eddy-sign-v1|{purpose}|").as_bytes());
        mac.update(data);
        mac
    }

    /// An HMAC under the secret of `data` for `purpose`: a signature every holder of the
    /// secret checks with [`Self::verify_signature`] (grants).
    pub fn sign(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        self.purpose_mac(purpose, data).finalize().into_bytes().into()
    }

    /// Whether `tag` is [`Self::sign`] of `data` for `purpose` (compared in constant time).
    pub fn verify_signature(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        self.purpose_mac(purpose, data).verify_slice(tag).is_ok()
    }

    fn rest_mac(&self, cloud_name: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("eddy-rest-v1|{cloud_name}").as_bytes());
        mac
    }

    /// The access token of the cloud's REST API (hex): an HMAC of the cloud name under the
    /// secret, so that every node, the driver and a Python context derive the same token
    /// without it travelling, and the token does not reveal the secret.
    pub fn rest_token(&self, cloud_name: &str) -> String {
        hex::encode(self.rest_mac(cloud_name).finalize().into_bytes())
    }

    /// The line that tells a user the token and how to send it (the driver and a cloud of one
    /// print it; nothing logs it).
    pub fn access_line(rest_url: &str, token: &str) -> String {
        format!("Access token: {token} (send `Authorization: Bearer <token>`, or open {rest_url}/?token={token} in a browser)")
    }

    /// Whether `presented` is the REST access token (compared in constant time).
    pub fn verify_rest_token(&self, cloud_name: &str, presented: &str) -> bool {
        hex::decode(presented.trim()).is_ok_and(|tag| self.rest_mac(cloud_name).verify_slice(&tag).is_ok())
    }

    /// The token for a call made now.
    pub fn token(&self, cloud_name: &str) -> String {
        let millis = now_millis();
        let mut nonce = [0u8; 8];
        // A failed read leaves zeros: the call is then refused as a replay, never accepted twice.
        let _ = getrandom::fill(&mut nonce);
        let nonce = hex::encode(nonce);
        let tag = self.mac(cloud_name, millis, &nonce).finalize().into_bytes();
        format!("{millis}.{nonce}.{}", hex::encode(tag))
    }

    /// Checks a token's HMAC and age (not whether it was used before: [`ReplayGuard`]).
    /// Returns its time and nonce; the error says why it was refused.
    pub fn verify(&self, cloud_name: &str, token: &str) -> Result<(u64, u64), String> {
        let malformed = || "malformed authentication token (from an older Eddy version?)".to_string();
        let mut parts = token.splitn(3, '.');
        let (Some(millis), Some(nonce), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { return Err(malformed()) };
        let millis: u64 = millis.parse().map_err(|_| malformed())?;
        let nonce_value = u64::from_str_radix(nonce, 16).map_err(|_| malformed())?;
        let skew = now_millis().abs_diff(millis);
        if skew > MAX_CLOCK_SKEW.as_millis() as u64 {
            return Err(format!("authentication token is {} s off this node's clock; synchronise the clocks", skew / 1000));
        }
        let tag = hex::decode(tag).map_err(|_| malformed())?;
        self.mac(cloud_name, millis, nonce).verify_slice(&tag).map_err(|_| "wrong cluster secret or cloud name".to_string())?;
        Ok((millis, nonce_value))
    }
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A tonic interceptor for clients: stamps every outgoing call with a fresh token.
#[derive(Clone, Debug)]
pub struct AuthStamp {
    secret: ClusterSecret,
    cloud_name: String,
}

impl AuthStamp {
    /// Stamps calls for `cloud_name` with `secret`.
    pub fn new(secret: ClusterSecret, cloud_name: impl Into<String>) -> Self {
        Self { secret, cloud_name: cloud_name.into() }
    }
}

impl tonic::service::Interceptor for AuthStamp {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = MetadataValue::try_from(self.secret.token(&self.cloud_name))
            .map_err(|_| Status::internal("cannot encode the authentication token"))?;
        request.metadata_mut().insert(AUTH_METADATA_KEY, value);
        Ok(request)
    }
}

/// The tokens a process accepted within the clock window, so that none is accepted twice,
/// whichever of its services it was sent to. Ordered by the token's time: tokens older than
/// [`MAX_CLOCK_SKEW`] are refused by age, so they are dropped here; the horizon never moves
/// back, so a clock stepped back cannot make a dropped token acceptable again. Memory: one
/// entry per call of the last 5 minutes (heartbeats, RPCs, Flight streams).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: std::collections::BTreeSet<(u64, u64)>,
    horizon: u64,
}

impl ReplayGuard {
    /// Records a token's (time, nonce); false if it was seen before or is older than what
    /// this guard still remembers.
    pub fn first_use(&mut self, millis: u64, nonce: u64) -> bool {
        self.horizon = self.horizon.max(now_millis().saturating_sub(MAX_CLOCK_SKEW.as_millis() as u64));
        if millis < self.horizon {
            return false;
        }
        while self.seen.first().is_some_and(|&(m, _)| m < self.horizon) {
            self.seen.pop_first();
        }
        self.seen.insert((millis, nonce))
    }
}

/// One guard per process: a token captured on its way to one service is refused by the others.
fn process_guard() -> std::sync::Arc<std::sync::Mutex<ReplayGuard>> {
    static GUARD: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<ReplayGuard>>> = std::sync::OnceLock::new();
    GUARD.get_or_init(Default::default).clone()
}

/// A tonic interceptor for servers: refuses (and logs) calls without a valid token, and
/// tokens used before in this process (one replay guard for all its services).
#[derive(Clone, Debug)]
pub struct AuthCheck {
    secret: ClusterSecret,
    cloud_name: String,
    service: &'static str,
    guard: std::sync::Arc<std::sync::Mutex<ReplayGuard>>,
    /// Whether a [`crate::grant::Grant`] may stand in for a token (Arrow Flight only).
    grants: bool,
}

impl AuthCheck {
    /// Checks calls to `service` against `secret` and `cloud_name`.
    pub fn new(secret: ClusterSecret, cloud_name: impl Into<String>, service: &'static str) -> Self {
        Self { secret, cloud_name: cloud_name.into(), service, guard: process_guard(), grants: false }
    }

    /// Also accepts calls that carry a grant instead of a token; the verified
    /// [`crate::grant::Grant`] goes into the request's extensions for the service to check
    /// against what the call does. Calls with a token carry no grant: they may do anything.
    pub fn accepting_grants(mut self) -> Self {
        self.grants = true;
        self
    }

    /// Whether `token` is valid and new.
    pub fn check(&self, token: &str) -> Result<(), String> {
        let (millis, nonce) = self.secret.verify(&self.cloud_name, token)?;
        let mut guard = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        if guard.first_use(millis, nonce) {
            Ok(())
        } else {
            Err("this authentication token was used before (a replayed call)".into())
        }
    }
}

impl tonic::service::Interceptor for AuthCheck {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let peer = request.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
        let token = request.metadata().get(AUTH_METADATA_KEY).and_then(|v| v.to_str().ok());
        let grant = if self.grants { request.metadata().get(crate::grant::GRANT_METADATA_KEY).and_then(|v| v.to_str().ok()) } else { None };
        let verdict = match (token, grant) {
            (Some(t), _) => self.check(t),
            (None, Some(g)) => crate::grant::Grant::verify(&self.secret, &self.cloud_name, g).map(|grant| {
                request.extensions_mut().insert(grant);
            }),
            (None, None) if self.grants => {
                Err("no authentication token or grant (a REST client asks POST /3/Frames/{id}/grant for one)".to_string())
            }
            (None, None) => Err("no authentication token (is the caller an Eddy node of this cloud?)".to_string()),
        };
        match verdict {
            Ok(()) => Ok(request),
            Err(why) => {
                tracing::warn!(service = self.service, %peer, reason = %why, "refused unauthenticated call");
                Err(Status::unauthenticated(format!("refused by {} of cloud {:?}: {why}", self.service, self.cloud_name)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_verifies_only_with_same_secret_and_cloud() {
        let s = ClusterSecret::generate().unwrap();
        let t = s.token("c1");
        assert!(s.verify("c1", &t).is_ok());
        assert!(s.verify("c2", &t).is_err());
        assert_ne!(s.token("c1"), s.token("c1"), "every token has its own nonce");
        let other = ClusterSecret::from_text("another-secret").unwrap();
        assert_eq!(other.verify("c1", &t).unwrap_err(), "wrong cluster secret or cloud name");
        assert!(s.verify("c1", "garbage").is_err());
        assert!(s.verify("c1", "123.zz").is_err());
    }

    #[test]
    fn stale_tokens_are_refused() {
        let s = ClusterSecret::from_text("0123456789").unwrap();
        let old = now_millis() - 10 * 60 * 1000;
        let tag = hex::encode(s.mac("c", old, "00").finalize().into_bytes());
        let err = s.verify("c", &format!("{old}.00.{tag}")).unwrap_err();
        assert!(err.contains("clock"), "{err}");
    }

    #[test]
    fn a_token_is_accepted_once() {
        let s = ClusterSecret::from_text("0123456789").unwrap();
        let check = AuthCheck::new(s.clone(), "c", "test");
        let t = s.token("c");
        assert!(check.check(&t).is_ok());
        let again = check.clone().check(&t).unwrap_err();
        assert!(again.contains("used before"), "{again}");
        assert!(check.check(&s.token("c")).is_ok());
        let old_format = t.split('.').next().unwrap().to_string() + "." + t.rsplit('.').next().unwrap();
        assert!(check.check(&old_format).unwrap_err().contains("malformed"));
    }

    #[test]
    fn short_secrets_are_refused_and_debug_is_redacted() {
        assert!(ClusterSecret::from_text(" short \n").is_err());
        let s = ClusterSecret::from_text("long-enough-secret\n").unwrap();
        assert_eq!(s.expose(), "long-enough-secret");
        assert!(!format!("{s:?}").contains("long"));
    }
}
