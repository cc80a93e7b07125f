//! TLS for the internal channels (node to node, worker to driver, Flight) and the REST API.
//!
//! By default every channel inside a cloud is encrypted with the cloud's own certificate
//! authority. Its key is derived from the cluster secret, so every process that holds the
//! secret (workers, the driver, a Python context) builds the same CA without one travelling,
//! whatever launched it (driver, flatfile, Kubernetes, Spark). Each process then makes a
//! certificate for the names it is reached by, signed by that CA, with a fresh key of its
//! own. Who holds the secret can already join the cloud, so the CA adds no new trust; what
//! it adds is that nobody without the secret can read or alter the traffic.
//!
//! A user's own CA replaces it when `EDDY_TLS_CA` names one: each node then presents
//! `EDDY_TLS_CERT`/`EDDY_TLS_KEY` and trusts only that CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::{ClusterSecret, CommonError, CommonResult};

/// How long a TLS handshake may take before the connection is dropped (slow or garbage peers).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which certificates secure the internal channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalTlsMode {
    /// The cloud's CA derived from the cluster secret (the default).
    Cloud,
    /// The user's CA and this node's certificate and key, from PEM files.
    UserCa {
        /// The CA every peer's certificate must chain to.
        ca: PathBuf,
        /// This node's certificate (chain).
        cert: PathBuf,
        /// This node's private key.
        key: PathBuf,
    },
    /// Plain TCP (`EDDY_INTERNAL_TLS=off`): for measuring TLS's cost or networks already encrypted.
    Off,
}

impl InternalTlsMode {
    /// Reads the mode from its settings: `on`/`off` and the optional user CA files.
    pub fn from_settings(internal: &str, ca: Option<PathBuf>, cert: Option<PathBuf>, key: Option<PathBuf>) -> CommonResult<Self> {
        match internal.trim() {
            "off" => return Ok(Self::Off),
            "on" | "" => {}
            other => {
                return Err(CommonError::InvalidArgument {
                    what: "internal TLS setting",
                    value: other.to_string(),
                    reason: "write `on` (the default) or `off`".into(),
                })
            }
        }
        match (ca, cert, key) {
            (None, _, _) => Ok(Self::Cloud),
            (Some(ca), Some(cert), Some(key)) => Ok(Self::UserCa { ca, cert, key }),
            (Some(ca), _, _) => Err(CommonError::InvalidArgument {
                what: "TLS CA",
                value: ca.display().to_string(),
                reason: "a node that trusts your CA must also present a certificate from it: give --tls-cert and --tls-key too".into(),
            }),
        }
    }
}

/// The TLS material of one process for the internal channels: the CA it trusts and the
/// certificate it presents.
#[derive(Clone)]
pub struct InternalTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for InternalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalTls(<certificates>)")
    }
}

/// Fixed start of an RFC 8410 PKCS#8 v1 Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

fn tls_error(what: &str, e: impl std::fmt::Display) -> CommonError {
    CommonError::InvalidArgument { what: "TLS material", value: what.to_string(), reason: e.to_string() }
}

/// The cloud's CA: an Ed25519 key from the secret and a certificate with fixed fields, so
/// every process makes the same one (Ed25519 signatures are deterministic).
///
/// Not bound to the cloud's name: a node of another name but the same secret gets through TLS
/// to the membership check, which tells it which cloud it reached.
fn cloud_ca(secret: &ClusterSecret) -> CommonResult<(CertificateParams, KeyPair, String)> {
    let seed = secret.derive_key("eddy-tls-ca-v1");
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &PKCS_ED25519).map_err(|e| tls_error("cloud CA key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "Eddy");
    // Names the key (not the secret): two clouds' CAs are told apart in error messages.
    params.distinguished_name.push(DnType::CommonName, format!("Eddy cloud CA {}", hex::encode(&seed[24..])));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from_slice(&seed[..8]));
    let cert = params.self_signed(&key).map_err(|e| tls_error("cloud CA certificate", e))?;
    Ok((params, key, cert.pem()))
}

impl InternalTls {
    /// The cloud's CA certificate (PEM), for clients that hold the secret but run no node
    /// (the Python context hands it to Spark executors).
    pub fn cloud_ca_pem(secret: &ClusterSecret) -> CommonResult<String> {
        Ok(cloud_ca(secret)?.2)
    }

    /// A fresh certificate for `names` (IP addresses or host names this process is reached
    /// by) signed by the cloud's CA.
    pub fn from_secret(secret: &ClusterSecret, names: &[String]) -> CommonResult<Self> {
        let (ca_params, ca_key, ca_pem) = cloud_ca(secret)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().map_err(|e| tls_error("node key", e))?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(|e| tls_error("node certificate names", e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, format!("Eddy node {}", names.first().map(String::as_str).unwrap_or("")));
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).map_err(|e| tls_error("node certificate", e))?;
        Ok(Self { ca_pem, cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The user's CA and this node's certificate and key (PEM files), checked now so that a
    /// wrong file fails at start with its name, not at the first handshake.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> CommonResult<Self> {
        let ca_pem = read_pem_certificates(ca, "--tls-ca")?;
        let cert_pem = read_pem_certificates(cert, "--tls-cert")?;
        let key_pem = read_pem_key(key)?;
        Ok(Self { ca_pem, cert_pem, key_pem })
    }

    /// The material for `mode`; `None` for plain TCP. `names`: how peers reach this process.
    pub fn for_mode(mode: &InternalTlsMode, secret: &ClusterSecret, names: &[String]) -> CommonResult<Option<Arc<Self>>> {
        Ok(match mode {
            InternalTlsMode::Off => None,
            InternalTlsMode::Cloud => Some(Arc::new(Self::from_secret(secret, names)?)),
            InternalTlsMode::UserCa { ca, cert, key } => Some(Arc::new(Self::from_files(ca, cert, key)?)),
        })
    }

    /// The CA certificate(s) this process trusts, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The certificate this process presents, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// For a tonic server.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem)).timeout(HANDSHAKE_TIMEOUT)
    }

    /// For a plain rustls server (the Arrow stream connections on the internal port): the
    /// same certificate as [`Self::server_config`].
    pub fn rustls_server_config(&self) -> CommonResult<Arc<rustls::ServerConfig>> {
        let here = Path::new("internal TLS certificate");
        let certs = parse_certificates(&self.cert_pem, here, "--tls-cert")?;
        let key = parse_key(&self.key_pem, here)?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error("internal TLS certificate and key", e))?;
        Ok(Arc::new(config))
    }

    /// For a tonic client: trusts only the CA, checks the peer's name against the address dialled.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)).timeout(HANDSHAKE_TIMEOUT)
    }
}

/// What a node or worker is told when a peer's certificate does not chain to the CA it trusts.
pub const UNTRUSTED_PEER: &str =
    "its TLS certificate is not of the CA this node trusts: it has another cluster secret (or another --tls-ca)";

/// Whether a failed gRPC call failed because the peer's certificate is not trusted: with the
/// cloud's own CA that means another secret, which no retry mends.
pub fn is_untrusted_peer(status: &tonic::Status) -> bool {
    // The handshake's own error, found among the causes tonic keeps.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    for _ in 0..16 {
        let Some(e) = cause else { break };
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(rustls::Error::InvalidCertificate(_)) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// A gRPC endpoint for `host_port`: `https` with `tls`, plain `http` without.
pub fn grpc_endpoint(host_port: &str, tls: Option<&InternalTls>) -> CommonResult<Endpoint> {
    let bad = |e: &dyn std::fmt::Display| CommonError::InvalidArgument {
        what: "gRPC address",
        value: host_port.to_string(),
        reason: e.to_string(),
    };
    match tls {
        Some(tls) => {
            Endpoint::from_shared(format!("https://{host_port}")).map_err(|e| bad(&e))?.tls_config(tls.client_config()).map_err(|e| bad(&e))
        }
        None => Endpoint::from_shared(format!("http://{host_port}")).map_err(|e| bad(&e)),
    }
}

/// The REST server's TLS settings from the user's certificate and key (PEM).
pub fn rest_server_config(cert: &Path, key: &Path) -> CommonResult<Arc<rustls::ServerConfig>> {
    let certs = parse_certificates(&read_text(cert, "--tls-cert", "certificates")?, cert, "--tls-cert")?;
    let key_der = parse_key(&read_text(key, "--tls-key", "a private key")?, key)?;
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key_der).map_err(|e| {
        CommonError::InvalidArgument {
            what: "TLS certificate and key",
            value: format!("{} and {}", cert.display(), key.display()),
            reason: format!("{e}; give the key that belongs to the certificate"),
        }
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_error(path: &Path, flag: &str, want: &str, e: impl std::fmt::Display) -> CommonError {
    CommonError::InvalidArgument {
        what: "TLS file",
        value: path.display().to_string(),
        reason: format!("{flag} must name a PEM file holding {want} ({e})"),
    }
}

fn read_text(path: &Path, flag: &str, want: &str) -> CommonResult<String> {
    std::fs::read_to_string(path).map_err(|e| pem_error(path, flag, want, e))
}

fn parse_certificates(pem: &str, path: &Path, flag: &str) -> CommonResult<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, flag, "certificates", e))?;
    if certs.is_empty() {
        return Err(pem_error(path, flag, "certificates", "it holds none"));
    }
    Ok(certs)
}

fn parse_key(pem: &str, path: &Path) -> CommonResult<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| pem_error(path, "--tls-key", "a private key", e))
}

/// A PEM file of certificates as text, checked to hold at least one.
fn read_pem_certificates(path: &Path, flag: &str) -> CommonResult<String> {
    let pem = read_text(path, flag, "certificates")?;
    parse_certificates(&pem, path, flag)?;
    Ok(pem)
}

/// A PEM file of a private key as text, checked to hold one.
fn read_pem_key(path: &Path) -> CommonResult<String> {
    let pem = read_text(path, "--tls-key", "a private key")?;
    parse_key(&pem, path)?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_holder_of_the_secret_makes_the_same_ca_and_others_a_different_one() {
        let secret = ClusterSecret::from_text("0123456789abcdef").unwrap();
        let a = InternalTls::cloud_ca_pem(&secret).unwrap();
        assert_eq!(a, InternalTls::cloud_ca_pem(&secret).unwrap());
        let other = ClusterSecret::from_text("fedcba9876543210").unwrap();
        assert_ne!(a, InternalTls::cloud_ca_pem(&other).unwrap());
        let node = InternalTls::from_secret(&secret, &["127.0.0.1".into()]).unwrap();
        assert_eq!(node.ca_pem(), a);
        assert!(node.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn a_ca_without_a_certificate_is_refused_with_what_to_add() {
        let err = InternalTlsMode::from_settings("on", Some("ca.pem".into()), None, None).unwrap_err().to_string();
        assert!(err.contains("--tls-cert and --tls-key"), "{err}");
        assert_eq!(InternalTlsMode::from_settings("off", None, None, None).unwrap(), InternalTlsMode::Off);
        assert!(InternalTlsMode::from_settings("maybe", None, None, None).is_err());
    }
}
