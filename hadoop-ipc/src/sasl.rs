//! SASL DIGEST-MD5 (RFC 2831) as Hadoop uses it for TOKEN authentication: the AMRMToken
//! between an ApplicationMaster and the ResourceManager, the NMToken towards NodeManagers,
//! delegation tokens towards the NameNode.
//!
//! Hadoop's conventions on top of the RFC (`SaslRpcServer`, `SaslRpcClient`):
//! - user name = base64 of the token identifier, password = base64 of the token password;
//! - realm and server id are `default`, the SASL protocol is empty, so the digest URI is
//!   `/default`;
//! - the server puts its first challenge into the NEGOTIATE message, the client answers with
//!   INITIATE carrying its response, the server answers SUCCESS carrying `rspauth`.
//!
//! The client takes the strongest quality of protection the server offers (`auth`, `auth-int`
//! or `auth-conf`, from `hadoop.rpc.protection`); with integrity or privacy the exchange ends
//! in a security layer ([`crate::protection`]). The test server here speaks `auth` only.

use base64::Engine as _;
use md5::{Digest, Md5};

use crate::protection::{self, Opener, Qop, Sealer, Side};

/// Realm and server id of Hadoop token authentication (`SaslRpcServer.SASL_DEFAULT_REALM`).
pub const DEFAULT_REALM: &str = "default";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// MD5 of the parts joined.
pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `key=value,key="quoted \"value\""` directives.
pub fn parse_directives(text: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the DIGEST-MD5 message is not UTF-8".to_string())?;
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(format!("a DIGEST-MD5 directive has no name in {text:?}"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value of {key} in {text:?}"));
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
}

fn directive<'a>(directives: &'a [(String, String)], key: &str) -> Option<&'a str> {
    directives.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The values both sides hash in one exchange.
struct Exchange<'a> {
    user: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nc: &'a str,
    uri: &'a str,
    qop: Qop,
}

impl Exchange<'_> {
    /// `H(A1)` for `algorithm=md5-sess`, which the response and the layer's keys hash.
    fn ha1(&self) -> [u8; 16] {
        let secret = md5(&[self.user.as_bytes(), b":", self.realm.as_bytes(), b":", self.password.as_bytes()]);
        md5(&[&secret, b":", self.nonce.as_bytes(), b":", self.cnonce.as_bytes()])
    }

    /// The `response` (or, with `rspauth`, the server's proof) value of RFC 2831 §2.1.2.1.
    fn value(&self, rspauth: bool) -> String {
        let method: &[u8] = if rspauth { b"" } else { b"AUTHENTICATE" };
        // With a security layer A2 ends in a zero entity-body hash (§2.1.2.1).
        let tail: &[u8] = if self.qop == Qop::Authentication { b"" } else { b":00000000000000000000000000000000" };
        let a2 = md5(&[method, b":", self.uri.as_bytes(), tail]);
        let (nonce, nc, cnonce) = (self.nonce.as_bytes(), self.nc.as_bytes(), self.cnonce.as_bytes());
        let qop = self.qop.sasl_name().as_bytes();
        hex(&md5(&[hex(&self.ha1()).as_bytes(), b":", nonce, b":", nc, b":", cnonce, b":", qop, b":", hex(&a2).as_bytes()]))
    }
}

/// The only cipher spoken for `auth-conf` (see [`crate::protection`]).
const CIPHER: &str = "3des";
/// The largest message a peer that names no `maxbuf` takes (RFC 2831).
const DEFAULT_MAX_BUFFER: usize = 65536;

fn random_nonce() -> String {
    let mut bytes = [0u8; 24];
    // A failed RNG leaves zeros; the nonce then only loses freshness, never correctness.
    let _ = getrandom::fill(&mut bytes);
    b64(&bytes)
}

/// The client's side of one DIGEST-MD5 exchange.
#[derive(Debug)]
pub struct DigestClient {
    user: String,
    password: String,
    uri: String,
    expected_rspauth: Option<String>,
    /// What the layer needs once the server has proved itself: H(A1), the quality of
    /// protection, the server's largest message.
    layer: Option<([u8; 16], Qop, usize)>,
}

impl DigestClient {
    /// A client for a token; `protocol` and `server_id` come from the server's NEGOTIATE
    /// (empty and `default` for Hadoop token authentication).
    pub fn new(identifier: &[u8], password: &[u8], protocol: &str, server_id: &str) -> Self {
        Self { user: b64(identifier), password: b64(password), uri: format!("{protocol}/{server_id}"), expected_rspauth: None, layer: None }
    }

    /// Answers the server's challenge.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        let d = parse_directives(challenge)?;
        let nonce = directive(&d, "nonce").ok_or("the DIGEST-MD5 challenge has no nonce")?;
        let realm = directive(&d, "realm").unwrap_or(DEFAULT_REALM);
        let qops = directive(&d, "qop").unwrap_or("auth");
        let ciphers = directive(&d, "cipher").unwrap_or("");
        let has_cipher = ciphers.split(',').any(|c| c.trim() == CIPHER);
        // The strongest offered that can be spoken: privacy only with our cipher.
        let offered: Vec<Qop> = qops.split(',').filter_map(Qop::from_sasl_name).collect();
        let qop = offered.iter().copied().filter(|q| *q != Qop::Privacy || has_cipher).max().ok_or_else(|| {
            if offered.contains(&Qop::Privacy) {
                format!("the server requires privacy (hadoop.rpc.protection=privacy) with ciphers {ciphers:?}; Eddy speaks {CIPHER} only")
            } else {
                format!("the server offers no SASL quality of protection Eddy knows ({qops:?})")
            }
        })?;
        let max_buffer = directive(&d, "maxbuf").and_then(|m| m.parse().ok()).unwrap_or(DEFAULT_MAX_BUFFER);
        if let Some(alg) = directive(&d, "algorithm") {
            if alg != "md5-sess" {
                return Err(format!("unsupported DIGEST-MD5 algorithm {alg}"));
            }
        }
        let cnonce = random_nonce();
        let nc = "00000001";
        let exchange = Exchange { user: &self.user, realm, password: &self.password, nonce, cnonce: &cnonce, nc, uri: &self.uri, qop };
        let response = exchange.value(false);
        self.expected_rspauth = Some(exchange.value(true));
        self.layer = Some((exchange.ha1(), qop, max_buffer));
        let charset = if directive(&d, "charset").is_some() { "charset=utf-8," } else { "" };
        let cipher = if qop == Qop::Privacy { format!(",cipher={CIPHER}") } else { String::new() };
        Ok(format!(
            "{charset}username={},realm={},nonce={},nc={nc},cnonce={},digest-uri={},maxbuf={DEFAULT_MAX_BUFFER},response={response},qop={}{cipher}",
            quote(&self.user),
            quote(realm),
            quote(nonce),
            quote(&cnonce),
            quote(&self.uri),
            qop.sasl_name(),
        )
        .into_bytes())
    }

    /// Checks the server's `rspauth`, which proves it knew the password too.
    pub fn verify_server(&self, message: &[u8]) -> Result<(), String> {
        let d = parse_directives(message)?;
        match (directive(&d, "rspauth"), &self.expected_rspauth) {
            (Some(got), Some(want)) if got == want => Ok(()),
            (Some(_), Some(_)) => Err("the server's DIGEST-MD5 rspauth is wrong: it does not know the token's password".into()),
            _ => Err("the server ended DIGEST-MD5 without proving it knows the token's password".into()),
        }
    }

    /// The security layer the exchange agreed on (`None` for `qop=auth`); call after
    /// [`DigestClient::verify_server`].
    pub fn layer(&self) -> Option<(Sealer, Opener)> {
        let (ha1, qop, max_buffer) = self.layer?;
        protection::digest_layer(&ha1, qop, Side::Client, max_buffer)
    }
}

/// The server's side of one DIGEST-MD5 exchange.
#[derive(Debug)]
pub struct DigestServer {
    nonce: String,
    realm: String,
    uri: String,
}

/// A client authenticated with a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The token identifier the client proved it holds the password of.
    pub identifier: Vec<u8>,
    /// The `rspauth` message for the SUCCESS answer.
    pub rspauth: Vec<u8>,
}

impl DigestServer {
    /// A fresh exchange for `protocol`/`server_id` (empty and `default` for tokens).
    pub fn new(protocol: &str, server_id: &str) -> Self {
        Self { nonce: random_nonce(), realm: server_id.to_string(), uri: format!("{protocol}/{server_id}") }
    }

    /// The first challenge.
    pub fn challenge(&self) -> Vec<u8> {
        format!("realm={},nonce={},qop=\"auth\",charset=utf-8,algorithm=md5-sess", quote(&self.realm), quote(&self.nonce)).into_bytes()
    }

    /// Checks the client's response; `password_of` gives the password of a token identifier
    /// (or why the token is refused).
    pub fn verify(&self, response: &[u8], password_of: impl Fn(&[u8]) -> Result<Vec<u8>, String>) -> Result<Authenticated, String> {
        let d = parse_directives(response)?;
        let get = |k: &str| directive(&d, k).ok_or_else(|| format!("the DIGEST-MD5 response has no {k}"));
        let user = get("username")?;
        if get("nonce")? != self.nonce {
            return Err("the DIGEST-MD5 response answers another nonce".into());
        }
        if get("digest-uri")? != self.uri {
            return Err(format!("the DIGEST-MD5 response is for {:?}, not {:?}", get("digest-uri")?, self.uri));
        }
        if directive(&d, "qop").unwrap_or("auth") != "auth" {
            return Err("this server speaks qop=auth only".into());
        }
        let identifier = base64::engine::general_purpose::STANDARD
            .decode(user)
            .map_err(|_| "the DIGEST-MD5 user name is not a base64 token identifier".to_string())?;
        let password = b64(&password_of(&identifier)?);
        let realm = directive(&d, "realm").unwrap_or(&self.realm);
        let (cnonce, nc) = (get("cnonce")?, get("nc")?);
        let exchange =
            Exchange { user, realm, password: &password, nonce: &self.nonce, cnonce, nc, uri: &self.uri, qop: Qop::Authentication };
        if get("response")? != exchange.value(false) {
            return Err("DIGEST-MD5: the token's password does not match (a token of another cluster, or a stale one)".into());
        }
        let rspauth = exchange.value(true);
        Ok(Authenticated { identifier, rspauth: format!("rspauth={rspauth}").into_bytes() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2831_example_response() {
        // RFC 2831 §4: user chris, password secret, realm elwood.innosoft.com, IMAP.
        // Its `response` uses algorithm md5-sess and qop auth, as ours does.
        let exchange = Exchange {
            user: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            nc: "00000001",
            uri: "imap/elwood.innosoft.com",
            qop: Qop::Authentication,
        };
        assert_eq!(exchange.value(false), "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(exchange.value(true), "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn client_and_server_agree_and_wrong_passwords_fail() {
        let server = DigestServer::new("", DEFAULT_REALM);
        let mut client = DigestClient::new(b"id-1", b"pw-1", "", DEFAULT_REALM);
        let response = client.respond(&server.challenge()).unwrap();
        let ok = server.verify(&response, |id| if id == b"id-1" { Ok(b"pw-1".to_vec()) } else { Err("unknown".into()) }).unwrap();
        assert_eq!(ok.identifier, b"id-1");
        client.verify_server(&ok.rspauth).unwrap();

        let mut wrong = DigestClient::new(b"id-1", b"guess", "", DEFAULT_REALM);
        let response = wrong.respond(&server.challenge()).unwrap();
        let err = server.verify(&response, |_| Ok(b"pw-1".to_vec())).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(client.verify_server(b"rspauth=00").is_err());
    }

    #[test]
    fn directives_parse_quotes_and_the_strongest_protection_is_chosen() {
        let d = parse_directives(br#"realm="a\"b",nonce="x,y",qop="auth-int",charset=utf-8"#).unwrap();
        assert_eq!(directive(&d, "realm"), Some("a\"b"));
        assert_eq!(directive(&d, "nonce"), Some("x,y"));
        assert!(parse_directives(br#"realm="open"#).is_err());

        let mut c = DigestClient::new(b"i", b"p", "", DEFAULT_REALM);
        let response = c.respond(br#"realm="default",nonce="n",qop="auth,auth-int""#).unwrap();
        let d = parse_directives(&response).unwrap();
        assert_eq!(directive(&d, "qop"), Some("auth-int"));
        assert!(directive(&d, "cipher").is_none());

        let response = c.respond(br#"realm="default",nonce="n",qop="auth-conf",cipher="rc4,3des""#).unwrap();
        let d = parse_directives(&response).unwrap();
        assert_eq!((directive(&d, "qop"), directive(&d, "cipher")), (Some("auth-conf"), Some("3des")));

        // Privacy without our cipher falls back to integrity where that is offered too.
        let response = c.respond(br#"realm="default",nonce="n",qop="auth-int,auth-conf",cipher="rc4""#).unwrap();
        assert_eq!(directive(&parse_directives(&response).unwrap(), "qop"), Some("auth-int"));
        let err = c.respond(br#"realm="default",nonce="n",qop="auth-conf",cipher="rc4""#).unwrap_err();
        assert!(err.contains("hadoop.rpc.protection=privacy") && err.contains("rc4"), "{err}");
    }
}
