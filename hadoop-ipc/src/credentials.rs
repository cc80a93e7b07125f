//! Hadoop's token storage file (`Credentials`): what `HADOOP_TOKEN_FILE_LOCATION` names in a
//! YARN container. It carries the tokens (an ApplicationMaster's AMRMToken) and secrets (Eddy's
//! cluster secret) that the launcher put into the container launch context.
//!
//! Layout: the magic `HDTS`, a version byte, then either version 0 (Hadoop Writables: a
//! variable-length count, then alias and token fields) or version 1 (a length-delimited
//! `CredentialsProto`). Both are read; version 0 is written, as Hadoop's own default
//! (`writeTokenStorageToStream`) and as every NodeManager since Hadoop 2 reads it.

use bytes::Buf;
use prost::Message;

use crate::proto::common::{CredentialsKvProto, CredentialsProto, TokenProto};

/// Kind of the NameNode's delegation tokens.
pub const HDFS_DELEGATION_TOKEN: &str = "HDFS_DELEGATION_TOKEN";

const MAGIC: &[u8; 4] = b"HDTS";
const WRITABLE: u8 = 0;
const PROTOBUF: u8 = 1;

/// Tokens and secrets by alias.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    /// `(alias, token)`; YARN uses the token's service as the alias.
    pub tokens: Vec<(String, TokenProto)>,
    /// `(alias, secret bytes)`.
    pub secrets: Vec<(String, Vec<u8>)>,
}

impl Credentials {
    /// The first token of `kind` (e.g. `YARN_AM_RM_TOKEN`).
    pub fn token_of_kind(&self, kind: &str) -> Option<&TokenProto> {
        self.tokens.iter().map(|(_, t)| t).find(|t| t.kind == kind)
    }

    /// The secret stored under `alias`.
    pub fn secret(&self, alias: &str) -> Option<&[u8]> {
        self.secrets.iter().find(|(a, _)| a == alias).map(|(_, s)| s.as_slice())
    }

    /// The file's bytes (version 0, Writables).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(WRITABLE);
        write_vlong(&mut out, self.tokens.len() as i64);
        for (alias, t) in &self.tokens {
            write_bytes(&mut out, alias.as_bytes());
            write_bytes(&mut out, &t.identifier);
            write_bytes(&mut out, &t.password);
            write_bytes(&mut out, t.kind.as_bytes());
            write_bytes(&mut out, t.service.as_bytes());
        }
        write_vlong(&mut out, self.secrets.len() as i64);
        for (alias, secret) in &self.secrets {
            write_bytes(&mut out, alias.as_bytes());
            write_bytes(&mut out, secret);
        }
        out
    }

    /// The file's bytes in version 1 (a length-delimited `CredentialsProto`).
    pub fn to_protobuf_bytes(&self) -> Vec<u8> {
        let kv = |alias: &str, token: Option<TokenProto>, secret: Option<Vec<u8>>| CredentialsKvProto {
            alias: alias.to_string(),
            token,
            secret,
        };
        let proto = CredentialsProto {
            tokens: self.tokens.iter().map(|(a, t)| kv(a, Some(t.clone()), None)).collect(),
            secrets: self.secrets.iter().map(|(a, s)| kv(a, None, Some(s.clone()))).collect(),
        };
        let mut out = MAGIC.to_vec();
        out.push(PROTOBUF);
        out.extend(proto.encode_length_delimited_to_vec());
        out
    }

    /// Parses a token storage file of either version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 5 || &bytes[..4] != MAGIC {
            return Err("not a Hadoop token storage file (it does not begin with HDTS)".into());
        }
        let mut rest = &bytes[5..];
        match bytes[4] {
            PROTOBUF => {
                let proto = CredentialsProto::decode_length_delimited(rest).map_err(|e| format!("bad protobuf credentials: {e}"))?;
                Ok(Self {
                    tokens: proto.tokens.into_iter().filter_map(|kv| Some((kv.alias, kv.token?))).collect(),
                    secrets: proto.secrets.into_iter().map(|kv| (kv.alias, kv.secret.unwrap_or_default())).collect(),
                })
            }
            WRITABLE => {
                let mut c = Self::default();
                let n = read_vlong(&mut rest)?;
                for _ in 0..n {
                    let alias = read_text(&mut rest)?;
                    let identifier = read_bytes(&mut rest)?;
                    let password = read_bytes(&mut rest)?;
                    let kind = read_text(&mut rest)?;
                    let service = read_text(&mut rest)?;
                    c.tokens.push((alias, TokenProto { identifier, password, kind, service }));
                }
                let n = read_vlong(&mut rest)?;
                for _ in 0..n {
                    let alias = read_text(&mut rest)?;
                    let secret = read_bytes(&mut rest)?;
                    c.secrets.push((alias, secret));
                }
                Ok(c)
            }
            v => Err(format!("token storage version {v} is not known (0 and 1 are)")),
        }
    }

    /// Reads the file at `path`.
    pub fn read_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Self::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the file at `path`, readable by its owner only (it holds secrets).
    pub fn write_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path)?.write_all(&self.to_bytes())
    }
}

/// Hadoop's `WritableUtils.readVLong`: one byte for -112..=127, else a length byte (which
/// also carries the sign) and big-endian magnitude bytes.
fn read_vlong(buf: &mut &[u8]) -> Result<i64, String> {
    if !buf.has_remaining() {
        return Err("the token file ends early".into());
    }
    let first = buf.get_i8();
    if first >= -112 {
        return Ok(i64::from(first));
    }
    let negative = first < -120;
    let len = if negative { -120 - i32::from(first) } else { -112 - i32::from(first) } as usize;
    if buf.remaining() < len || len > 8 {
        return Err("the token file ends early".into());
    }
    let mut value: i64 = 0;
    for _ in 0..len {
        value = (value << 8) | i64::from(buf.get_u8());
    }
    Ok(if negative { !value } else { value })
}

/// Hadoop's `WritableUtils.writeVLong`, the inverse of [`read_vlong`].
fn write_vlong(out: &mut Vec<u8>, mut i: i64) {
    if (-112..=127).contains(&i) {
        out.push(i as u8);
        return;
    }
    let mut len: i32 = -112;
    if i < 0 {
        i = !i;
        len = -120;
    }
    let mut tmp = i;
    while tmp != 0 {
        tmp >>= 8;
        len -= 1;
    }
    out.push(len as u8);
    let n = if len < -120 { -(len + 120) } else { -(len + 112) };
    for idx in (1..=n).rev() {
        out.push((i >> ((idx - 1) * 8)) as u8);
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_vlong(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

fn read_bytes(buf: &mut &[u8]) -> Result<Vec<u8>, String> {
    let len = usize::try_from(read_vlong(buf)?).map_err(|_| "negative length in the token file".to_string())?;
    if buf.remaining() < len {
        return Err("the token file ends early".into());
    }
    let out = buf[..len].to_vec();
    buf.advance(len);
    Ok(out)
}

fn read_text(buf: &mut &[u8]) -> Result<String, String> {
    String::from_utf8(read_bytes(buf)?).map_err(|_| "a name in the token file is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenProto {
        TokenProto { identifier: vec![1, 2, 3], password: vec![9; 200], kind: "YARN_AM_RM_TOKEN".into(), service: "127.0.0.1:8030".into() }
    }

    #[test]
    fn both_versions_round_trip() {
        let c = Credentials { tokens: vec![("127.0.0.1:8030".into(), token())], secrets: vec![("eddy.secret".into(), b"s3cret".to_vec())] };
        assert_eq!(Credentials::from_bytes(&c.to_protobuf_bytes()).unwrap(), c);
        let back = Credentials::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.token_of_kind("YARN_AM_RM_TOKEN"), Some(&token()));
        assert_eq!(back.secret("eddy.secret"), Some(&b"s3cret"[..]));
    }

    #[test]
    fn writable_files_as_hadoop_writes_them_are_read() {
        let mut b = b"HDTS\0".to_vec();
        let text = |b: &mut Vec<u8>, s: &[u8]| {
            write_vlong(b, s.len() as i64);
            b.extend_from_slice(s);
        };
        write_vlong(&mut b, 1);
        let t = token();
        text(&mut b, t.service.as_bytes());
        text(&mut b, &t.identifier);
        text(&mut b, &t.password); // 200 bytes: a two-byte length
        text(&mut b, t.kind.as_bytes());
        text(&mut b, t.service.as_bytes());
        write_vlong(&mut b, 1);
        text(&mut b, b"eddy.secret");
        text(&mut b, b"s3cret");
        let c = Credentials::from_bytes(&b).unwrap();
        assert_eq!(c.tokens, vec![(t.service.clone(), t)]);
        assert_eq!(c.secret("eddy.secret"), Some(&b"s3cret"[..]));
        for v in [0i64, 127, 128, -112, -113, 300, 70_000, -70_000, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_vlong(&mut out, v);
            assert_eq!(read_vlong(&mut out.as_slice()).unwrap(), v);
        }
        assert!(Credentials::from_bytes(b"HDTS\0\x05").is_err());
        assert!(Credentials::from_bytes(b"nope").is_err());
    }
}
