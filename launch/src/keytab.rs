//! The principals a Kerberos keytab holds, read from the file (MIT's keytab format, version
//! 0x502, as `ktutil`, `kadmin ktadd` and Active Directory's `ktpass` write it), so that a
//! wrong `--keytab` or `--principal` fails before any worker starts, naming what the keytab has.

use std::path::{Path, PathBuf};

use crate::{DriverError, DriverResult};

/// `--principal` and `--keytab` (clap makes them come together), checked: the principal and
/// the keytab's absolute path; `None` without them.
pub fn login_from_flags(principal: Option<&String>, keytab: Option<&PathBuf>) -> DriverResult<Option<(String, PathBuf)>> {
    match (principal, keytab) {
        (Some(principal), Some(keytab)) => Ok(Some((principal.clone(), checked_keytab(principal, keytab)?))),
        _ => Ok(None),
    }
}

/// A login of [`login_from_flags`] as the environment keys a node's stores read
/// (`EDDY_KERBEROS_PRINCIPAL`, `EDDY_KERBEROS_KEYTAB`); none without one.
pub fn login_env(login: Option<&(String, PathBuf)>) -> Vec<(String, String)> {
    use eddy_common::keys::{KERBEROS_KEYTAB, KERBEROS_PRINCIPAL};
    login
        .map(|(principal, keytab)| {
            vec![(KERBEROS_PRINCIPAL.name.to_string(), principal.clone()), (KERBEROS_KEYTAB.name.to_string(), keytab.display().to_string())]
        })
        .unwrap_or_default()
}

/// `--keytab` made absolute, after checking that it holds keys for `principal` (`user@REALM`,
/// or `user` in the keytab's realm).
pub fn checked_keytab(principal: &str, keytab: &Path) -> DriverResult<PathBuf> {
    let path = std::path::absolute(keytab).map_err(|source| DriverError::Io { what: "cannot resolve the --keytab path".into(), source })?;
    let bytes =
        std::fs::read(&path).map_err(|source| DriverError::Io { what: format!("cannot read the keytab {}", path.display()), source })?;
    let held = principals(&bytes).map_err(|reason| DriverError::InvalidArgument {
        reason: format!(
            "{} is not a Kerberos keytab ({reason}); make one with `ktutil` or `kadmin -q \"ktadd -k FILE {principal}\"`",
            path.display()
        ),
    })?;
    let wanted =
        |held: &String| held == principal || (!principal.contains('@') && held.split_once('@').is_some_and(|(name, _)| name == principal));
    if !held.iter().any(wanted) {
        let list = if held.is_empty() { "no keys".to_string() } else { held.join(", ") };
        return Err(DriverError::InvalidArgument {
            reason: format!("the keytab {} has no keys for {principal} (it holds {list}); pass --principal as it appears there (`klist -kt {}` lists them)", path.display(), path.display()),
        });
    }
    Ok(path)
}

/// Every principal with a key in the keytab, `name/instance@REALM`, once each, in file order.
fn principals(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut r = Reader { bytes, at: 0 };
    match r.u16()? {
        0x0502 => {}
        0x0501 => return Err("version 0x501 keytabs are not read; write a version 0x502 keytab".into()),
        v => return Err(format!("unknown version {v:#x}")),
    }
    let mut out: Vec<String> = Vec::new();
    while r.at < bytes.len() {
        let size = r.i32()?;
        let start = r.at;
        let end = start.checked_add(size.unsigned_abs() as usize).filter(|&e| e <= bytes.len()).ok_or("an entry runs past the end")?;
        // A negative size is a hole left by a deleted entry.
        if size > 0 {
            let components = r.u16()?;
            let realm = r.text()?;
            let names = (0..components).map(|_| r.text()).collect::<Result<Vec<_>, _>>()?;
            let principal = format!("{}@{realm}", names.join("/"));
            if !out.contains(&principal) {
                out.push(principal);
            }
        }
        r.at = end;
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let slice = self.bytes.get(self.at..self.at + n).ok_or("the file ends inside an entry")?;
        self.at += n;
        Ok(slice)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn text(&mut self) -> Result<String, String> {
        let n = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One version 0x502 entry: principal, name type, timestamp, kvno, key type and key.
    fn entry(realm: &str, names: &[&str]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend((names.len() as u16).to_be_bytes());
        for part in std::iter::once(realm).chain(names.iter().copied()) {
            e.extend((part.len() as u16).to_be_bytes());
            e.extend(part.as_bytes());
        }
        e.extend(1u32.to_be_bytes());
        e.extend(0u32.to_be_bytes());
        e.push(1);
        e.extend(18u16.to_be_bytes());
        e.extend(32u16.to_be_bytes());
        e.extend([7u8; 32]);
        let mut out = (e.len() as i32).to_be_bytes().to_vec();
        out.extend(e);
        out
    }

    fn keytab(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut k = vec![0x05, 0x02];
        for e in entries {
            k.extend(e);
        }
        k
    }

    #[test]
    fn principals_are_read_once_each_and_holes_skipped() {
        let hole = {
            let mut h = (-8i32).to_be_bytes().to_vec();
            h.extend([0u8; 8]);
            h
        };
        let bytes =
            keytab(&[entry("EXAMPLE.COM", &["alice"]), hole, entry("EXAMPLE.COM", &["alice"]), entry("EXAMPLE.COM", &["nn", "localhost"])]);
        assert_eq!(principals(&bytes).unwrap(), ["alice@EXAMPLE.COM", "nn/localhost@EXAMPLE.COM"]);
    }

    #[test]
    fn a_wrong_file_or_principal_is_refused_naming_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.keytab");
        std::fs::write(&path, keytab(&[entry("EXAMPLE.COM", &["alice"])])).unwrap();
        assert_eq!(checked_keytab("alice@EXAMPLE.COM", &path).unwrap(), path);
        assert_eq!(checked_keytab("alice", &path).unwrap(), path);
        let e = checked_keytab("bob@EXAMPLE.COM", &path).unwrap_err().to_string();
        assert!(e.contains("has no keys for bob@EXAMPLE.COM (it holds alice@EXAMPLE.COM)"), "{e}");
        std::fs::write(&path, b"not a keytab").unwrap();
        let e = checked_keytab("alice", &path).unwrap_err().to_string();
        assert!(e.contains("is not a Kerberos keytab"), "{e}");
        let e = checked_keytab("alice", &dir.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("cannot read the keytab"), "{e}");
    }
}
