//! The SASL security layer of a connection whose `hadoop.rpc.protection` is `integrity` or
//! `privacy`: after authentication every RPC byte is sealed (signed, or signed and encrypted)
//! and travels inside SASL `WRAP` messages, as Hadoop's `SaslRpcClient` wraps them.
//!
//! Two mechanisms seal:
//! - GSSAPI (Kerberos): MIT's `gss_wrap`/`gss_unwrap` do all of it.
//! - DIGEST-MD5 (tokens): RFC 2831 §2.3 and §2.4. Integrity is HMAC-MD5 over a sequence number
//!   and the message; privacy adds triple DES in CBC mode, the only cipher spoken here (Java's
//!   server offers it first, and hdfs-native speaks it too). The HMAC, DES and CBC are
//!   RustCrypto's; this file only places their bytes where the RFC says.
//!
//! A layer is split into a [`Sealer`] (the writer task's) and an [`Opener`] (the reader
//! task's): each direction keeps its own sequence number and cipher state.

use std::sync::{Arc, Mutex};

use cbc::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;

use crate::gssapi::Context;
use crate::sasl::md5;

type HmacMd5 = Hmac<Md5>;
type TdesEncryptor = cbc::Encryptor<des::TdesEde2>;
type TdesDecryptor = cbc::Decryptor<des::TdesEde2>;

/// Quality of protection, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Qop {
    /// `auth`: authentication only, no layer.
    Authentication,
    /// `auth-int`: every message signed.
    Integrity,
    /// `auth-conf`: every message signed and encrypted.
    Privacy,
}

impl Qop {
    /// The SASL name (`auth`, `auth-int`, `auth-conf`).
    pub fn sasl_name(self) -> &'static str {
        match self {
            Qop::Authentication => "auth",
            Qop::Integrity => "auth-int",
            Qop::Privacy => "auth-conf",
        }
    }

    /// Parses a SASL name.
    pub fn from_sasl_name(name: &str) -> Option<Self> {
        match name.trim() {
            "auth" => Some(Qop::Authentication),
            "auth-int" => Some(Qop::Integrity),
            "auth-conf" => Some(Qop::Privacy),
            _ => None,
        }
    }
}

/// Which end of the connection a DIGEST-MD5 layer is for; the two ends sign and encrypt with
/// each other's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that sent the response.
    Client,
    /// The side that sent the challenge.
    Server,
}

/// Bytes each sealed DIGEST-MD5 message adds at most: the 10-byte MAC, the 2-byte version, the
/// 4-byte sequence number, up to 8 bytes of padding.
const DIGEST_OVERHEAD: usize = 24;
/// Room left for a Kerberos wrap token's header, confounder, padding and checksum.
const GSS_OVERHEAD: usize = 128;
/// The largest plaintext sealed at once when the peer names no limit.
const DEFAULT_RAW_SIZE: usize = 64 * 1024;

/// The sealing half of a layer.
pub struct Sealer {
    kind: SealerKind,
    max_plain: usize,
}

enum SealerKind {
    Digest { sign_key: [u8; 16], sequence: u32, encryptor: Option<Box<TdesEncryptor>> },
    Gss { context: Arc<Mutex<Context>>, encrypt: bool },
}

/// The opening half of a layer.
pub struct Opener {
    kind: OpenerKind,
}

enum OpenerKind {
    Digest { verify_key: [u8; 16], sequence: u32, decryptor: Option<Box<TdesDecryptor>> },
    Gss { context: Arc<Mutex<Context>> },
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("max_plain", &self.max_plain).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").finish_non_exhaustive()
    }
}

/// Seven key bytes spread over eight DES key bytes, the low bit of each an odd parity bit
/// (RFC 2831 §2.4; Java's `DigestMD5Base.addDesParity`).
fn des_key(seven: &[u8]) -> [u8; 8] {
    let mut bits = [0u8; 8];
    bits[..7].copy_from_slice(&seven[..7]);
    // The 56 key bits at the top; each key byte takes the next seven.
    let bits = u64::from_be_bytes(bits);
    let mut key = [0u8; 8];
    for (i, byte) in key.iter_mut().enumerate() {
        let b = ((bits >> (56 - 7 * i)) as u8) & 0xfe;
        *byte = b | u8::from(b.count_ones().is_multiple_of(2));
    }
    key
}

/// The triple-DES (two keys) key and IV of a 16-byte sealing key: keys from bytes 0..7 and
/// 7..14, IV from bytes 8..16.
fn tdes_key_iv(sealing: &[u8; 16]) -> ([u8; 16], [u8; 8]) {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&des_key(&sealing[..7]));
    key[8..].copy_from_slice(&des_key(&sealing[7..14]));
    let mut iv = [0u8; 8];
    iv.copy_from_slice(&sealing[8..]);
    (key, iv)
}

fn mac(key: &[u8; 16], sequence: u32, message: &[u8]) -> [u8; 10] {
    // HMAC pads a key shorter than its 64-byte block with zeros (RFC 2104), so the padded key
    // is the same key.
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(key);
    let mut hmac = <HmacMd5 as KeyInit>::new(&block.into());
    hmac.update(&sequence.to_be_bytes());
    hmac.update(message);
    let full = hmac.finalize().into_bytes();
    let mut out = [0u8; 10];
    out.copy_from_slice(&full[..10]);
    out
}

/// A DIGEST-MD5 layer for one side, from `H(A1)` (the MD5 of A1 the response hashed).
pub fn digest_layer(ha1: &[u8; 16], qop: Qop, side: Side, peer_max_buffer: usize) -> Option<(Sealer, Opener)> {
    if qop == Qop::Authentication {
        return None;
    }
    let client_sign = md5(&[ha1, b"Digest session key to client-to-server signing key magic constant"]);
    let server_sign = md5(&[ha1, b"Digest session key to server-to-client signing key magic constant"]);
    let (sign_key, verify_key) = match side {
        Side::Client => (client_sign, server_sign),
        Side::Server => (server_sign, client_sign),
    };
    let (encryptor, decryptor) = if qop == Qop::Privacy {
        let client_seal = md5(&[ha1, b"Digest H(A1) to client-to-server sealing key magic constant"]);
        let server_seal = md5(&[ha1, b"Digest H(A1) to server-to-client sealing key magic constant"]);
        let (mine, theirs) = match side {
            Side::Client => (client_seal, server_seal),
            Side::Server => (server_seal, client_seal),
        };
        let (key, iv) = tdes_key_iv(&mine);
        let encryptor = Box::new(TdesEncryptor::new(&key.into(), &iv.into()));
        let (key, iv) = tdes_key_iv(&theirs);
        let decryptor = Box::new(TdesDecryptor::new(&key.into(), &iv.into()));
        (Some(encryptor), Some(decryptor))
    } else {
        (None, None)
    };
    let max_plain = peer_max_buffer.saturating_sub(DIGEST_OVERHEAD).max(1);
    Some((
        Sealer { kind: SealerKind::Digest { sign_key, sequence: 0, encryptor }, max_plain },
        Opener { kind: OpenerKind::Digest { verify_key, sequence: 0, decryptor } },
    ))
}

/// A GSSAPI layer over an established context; `peer_max` is the largest wrap token the
/// server takes (0: no limit named).
pub fn gss_layer(context: Context, encrypt: bool, peer_max: usize) -> (Sealer, Opener) {
    let context = Arc::new(Mutex::new(context));
    let max_plain = if peer_max == 0 { DEFAULT_RAW_SIZE } else { peer_max.saturating_sub(GSS_OVERHEAD).max(1) };
    (Sealer { kind: SealerKind::Gss { context: Arc::clone(&context), encrypt }, max_plain }, Opener { kind: OpenerKind::Gss { context } })
}

/// The version field of a sealed DIGEST-MD5 message.
const DIGEST_VERSION: [u8; 2] = [0, 1];

impl Sealer {
    /// The largest plaintext one sealed message may carry; longer data is sealed in pieces,
    /// which the peer reads as one stream.
    pub fn max_plain(&self) -> usize {
        self.max_plain
    }

    /// Seals one piece of the stream (at most [`Sealer::max_plain`] bytes).
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, String> {
        match &mut self.kind {
            SealerKind::Digest { sign_key, sequence, encryptor } => {
                let tag = mac(sign_key, *sequence, plain);
                let mut out = match encryptor {
                    None => [plain, &tag].concat(),
                    Some(encryptor) => {
                        let pad = 8 - (plain.len() + tag.len()) % 8;
                        let mut block = Vec::with_capacity(plain.len() + pad + tag.len() + 6);
                        block.extend_from_slice(plain);
                        block.resize(plain.len() + pad, pad as u8);
                        block.extend_from_slice(&tag);
                        for chunk in block.chunks_exact_mut(8) {
                            if let Ok(chunk) = <&mut Array<u8, _>>::try_from(chunk) {
                                encryptor.encrypt_block(chunk);
                            }
                        }
                        block
                    }
                };
                out.extend_from_slice(&DIGEST_VERSION);
                out.extend_from_slice(&sequence.to_be_bytes());
                *sequence = sequence.wrapping_add(1);
                Ok(out)
            }
            SealerKind::Gss { context, encrypt } => {
                let mut context = context.lock().map_err(|_| "the Kerberos context is unusable after a panic".to_string())?;
                context.wrap(plain, *encrypt).map_err(|e| format!("Kerberos could not wrap a message: {e}"))
            }
        }
    }
}

impl Opener {
    /// Opens one sealed message of the peer's, checking its signature and sequence number.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        match &mut self.kind {
            OpenerKind::Digest { verify_key, sequence, decryptor } => {
                if sealed.len() < 16 {
                    return Err(format!("a sealed DIGEST-MD5 message of {} bytes is too short", sealed.len()));
                }
                let (body, trailer) = sealed.split_at(sealed.len() - 6);
                if trailer[..2] != DIGEST_VERSION {
                    return Err("a sealed DIGEST-MD5 message has an unknown version".into());
                }
                let got_sequence = u32::from_be_bytes([trailer[2], trailer[3], trailer[4], trailer[5]]);
                if got_sequence != *sequence {
                    return Err(format!("a sealed DIGEST-MD5 message is out of order (number {got_sequence}, expected {sequence})"));
                }
                let (plain, tag) = match decryptor {
                    None => {
                        let (plain, tag) = body.split_at(body.len() - 10);
                        (plain.to_vec(), tag.to_vec())
                    }
                    Some(decryptor) => {
                        if body.len() % 8 != 0 {
                            return Err("an encrypted DIGEST-MD5 message is not a whole number of blocks".into());
                        }
                        let mut block = body.to_vec();
                        for chunk in block.chunks_exact_mut(8) {
                            if let Ok(chunk) = <&mut Array<u8, _>>::try_from(chunk) {
                                decryptor.decrypt_block(chunk);
                            }
                        }
                        let tag = block.split_off(block.len() - 10);
                        let pad = usize::from(*block.last().unwrap_or(&0));
                        if pad == 0 || pad > 8 || pad > block.len() || block[block.len() - pad..].iter().any(|b| usize::from(*b) != pad) {
                            return Err("an encrypted DIGEST-MD5 message has bad padding (a wrong key?)".into());
                        }
                        block.truncate(block.len() - pad);
                        (block, tag)
                    }
                };
                if mac(verify_key, got_sequence, &plain)[..] != tag[..] {
                    return Err("a DIGEST-MD5 message failed its integrity check".into());
                }
                *sequence = sequence.wrapping_add(1);
                Ok(plain)
            }
            OpenerKind::Gss { context } => {
                let mut context = context.lock().map_err(|_| "the Kerberos context is unusable after a panic".to_string())?;
                context.unwrap(sealed).map_err(|e| format!("Kerberos could not unwrap a message: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(qop: Qop) -> ((Sealer, Opener), (Sealer, Opener)) {
        let ha1 = md5(&[b"some A1"]);
        (digest_layer(&ha1, qop, Side::Client, 65536).unwrap(), digest_layer(&ha1, qop, Side::Server, 65536).unwrap())
    }

    #[test]
    fn both_qops_round_trip_in_both_directions_and_keep_order() {
        for qop in [Qop::Integrity, Qop::Privacy] {
            let ((mut client_seal, mut client_open), (mut server_seal, mut server_open)) = pair(qop);
            for (i, len) in [0usize, 1, 5, 6, 7, 8, 13, 100, 4000].into_iter().enumerate() {
                let message: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                let sealed = client_seal.seal(&message).unwrap();
                if qop == Qop::Privacy && len >= 8 {
                    assert!(!sealed.windows(8).any(|w| w == &message[..8]), "privacy leaves the message readable");
                }
                assert_eq!(server_open.open(&sealed).unwrap(), message, "{qop:?} {len}");
                let answer = server_seal.seal(&message).unwrap();
                assert_eq!(client_open.open(&answer).unwrap(), message);
            }
        }
    }

    #[test]
    fn tampered_replayed_or_misdirected_messages_are_refused() {
        // A failed open leaves the layer unusable (the connection is closed), so each case
        // gets a fresh pair.
        for qop in [Qop::Integrity, Qop::Privacy] {
            let ((mut client_seal, _), (_, mut server_open)) = pair(qop);
            let mut tampered = client_seal.seal(b"getApplicationReport of application_1").unwrap();
            tampered[0] ^= 1;
            assert!(server_open.open(&tampered).is_err(), "{qop:?}");

            // A message sealed by the client is not one the client accepts from the server.
            let ((mut client_seal, mut client_open), _) = pair(qop);
            assert!(client_open.open(&client_seal.seal(b"allocate").unwrap()).is_err(), "{qop:?}");

            let ((mut client_seal, _), (_, mut server_open)) = pair(qop);
            let first = client_seal.seal(b"allocate").unwrap();
            assert!(server_open.open(&first).is_ok());
            assert!(server_open.open(&first).unwrap_err().contains("out of order"), "{qop:?}");
        }
    }

    #[test]
    fn des_keys_get_odd_parity_and_keep_the_seven_bytes() {
        let key = des_key(&[0xff, 0, 0xff, 0, 0x12, 0x34, 0x56]);
        assert!(key.iter().all(|b| b.count_ones() % 2 == 1));
        let bits = key.iter().fold(0u64, |acc, b| (acc << 7) | u64::from(b >> 1));
        assert_eq!(bits, 0xff00ff00123456);
    }
}
