//! What a Kerberos failure of an HDFS client means for a user, and what to do about it.
//!
//! hdfs-native reports GSS-API failures as `HdfsError::GSSAPIError(major, minor, message)`.
//! The major status's routine error tells "no credentials" and "expired credentials" apart;
//! for the rest the minor status is MIT Kerberos's error code, whose protocol errors (RFC 4120
//! section 7.5.9) sit at a fixed offset in MIT's error table.

use hdfs_native::HdfsError;

/// GSS-API routine errors (RFC 2744, `GSS_S_*` >> 16).
const GSS_S_NO_CRED: u32 = 7;
const GSS_S_CREDENTIALS_EXPIRED: u32 = 11;

/// `ERROR_TABLE_BASE_krb5` of MIT Kerberos: its code for protocol error N is this + N.
const KRB5_ERROR_BASE: i64 = -1_765_328_384;
const KDC_ERR_C_PRINCIPAL_UNKNOWN: i64 = 6;
const KDC_ERR_S_PRINCIPAL_UNKNOWN: i64 = 7;
const KDC_ERR_PREAUTH_FAILED: i64 = 24;
const KRB_AP_ERR_TKT_EXPIRED: i64 = 32;
const KRB_AP_ERR_SKEW: i64 = 37;

/// Advice for running with a ticket cache or a keytab; shared by the errors below.
const LOGIN: &str = "run `kinit user@REALM` as the user the workers run as, or start the cloud with --principal and --keytab";

/// The Kerberos failure among `error`'s causes, explained: what happened (with the library's
/// own words) and what to do. `None` when the failure is not Kerberos's.
pub(crate) fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        match e.downcast_ref::<HdfsError>() {
            Some(HdfsError::GSSAPIError(major, minor, message)) => return Some(advice(major.raw(), *minor, message)),
            Some(HdfsError::RPCError(class, message) | HdfsError::FatalRPCError(class, message)) if class.ends_with("InvalidToken") => {
                return Some(token_advice(message))
            }
            _ => {}
        }
        cause = e.source();
    }
    None
}

/// A delegation token the NameNode refused: what a YARN container reads HDFS with.
fn token_advice(message: &str) -> String {
    format!(
        "the NameNode refused this worker's HDFS delegation token ({}): it expired, was cancelled, or is past its maximum lifetime (dfs.namenode.delegation.token.max-lifetime, 7 days by default). An attached eddy-driver gives its workers new tokens while it runs; a disowned cloud (--disown) keeps its first ones, so start a new cloud",
        message.trim()
    )
}

fn advice(major: u32, minor: u32, message: &str) -> String {
    let routine = (major >> 16) & 0xff;
    // The minor status is a signed com_err code carried in an unsigned integer.
    let code = i64::from(minor as i32) - KRB5_ERROR_BASE;
    let message = message.trim();
    // The KDC's own reasons first: a keytab login the KDC refused also reads as "no
    // credentials" in the major status.
    match (routine, code) {
        (GSS_S_CREDENTIALS_EXPIRED, _) | (_, KRB_AP_ERR_TKT_EXPIRED) => {
            format!("the Kerberos ticket has expired ({message}): run `kinit` again, or start the cloud with --principal and --keytab so that tickets are obtained again before they expire")
        }
        (_, KDC_ERR_C_PRINCIPAL_UNKNOWN) => {
            format!("the KDC does not know this principal ({message}): check --principal (user@REALM, the realm in capitals) and the realm's KDC in krb5.conf")
        }
        (_, KDC_ERR_S_PRINCIPAL_UNKNOWN) => format!(
            "the KDC does not know the server's principal ({message}): the NameNode's principal (dfs.namenode.kerberos.principal) must exist in the realm with the host name the NameNode announces, and krb5.conf must map that host to the realm ([domain_realm])"
        ),
        (_, KDC_ERR_PREAUTH_FAILED) => {
            format!("the KDC refused the key ({message}): the keytab's key is not the principal's current one (`klist -kt KEYTAB` shows its entries); export a fresh keytab")
        }
        (_, KRB_AP_ERR_SKEW) => {
            format!("this host's clock and the KDC's or server's differ too much ({message}): synchronise the clocks (NTP); Kerberos allows 5 minutes by default")
        }
        (GSS_S_NO_CRED, _) => format!("no Kerberos ticket ({message}): {LOGIN}"),
        _ => format!("Kerberos authentication failed ({message}): check the ticket (`klist`), krb5.conf (KRB5_CONFIG) and the principal; {LOGIN}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_CRED: u32 = GSS_S_NO_CRED << 16;
    const FAILURE: u32 = 13 << 16;

    fn minor(code: i64) -> u32 {
        (KRB5_ERROR_BASE + code) as i32 as u32
    }

    #[test]
    fn a_refused_token_says_why_tokens_end_and_what_to_do() {
        let e = HdfsError::FatalRPCError(
            "org.apache.hadoop.security.token.SecretManager$InvalidToken".into(),
            "Token for real user: , can't be found in cache".into(),
        );
        let advice = explain(&e).unwrap();
        assert!(
            advice.contains("can't be found in cache") && advice.contains("maximum lifetime") && advice.contains("--disown"),
            "{advice}"
        );
        assert!(explain(&HdfsError::RPCError("java.io.FileNotFoundException".into(), "x".into())).is_none());
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let no_ticket = advice(NO_CRED, 2_529_639_053, "No Kerberos credentials available (default cache: FILE:/tmp/x)");
        assert!(no_ticket.starts_with("no Kerberos ticket (No Kerberos credentials available"), "{no_ticket}");
        assert!(no_ticket.contains("kinit") && no_ticket.contains("--keytab"), "{no_ticket}");
        assert!(advice(FAILURE, minor(KRB_AP_ERR_TKT_EXPIRED), "Ticket expired").contains("has expired"));
        // Seen from a keytab login: the KDC's refusal arrives with "no credentials" as the major.
        let unknown = advice(NO_CRED, minor(KDC_ERR_C_PRINCIPAL_UNKNOWN), "Client 'bob@EXAMPLE.COM' not found in Kerberos database");
        assert!(unknown.starts_with("the KDC does not know this principal"), "{unknown}");
        assert!(advice(GSS_S_CREDENTIALS_EXPIRED << 16, 0, "").contains("has expired"));
        assert!(advice(FAILURE, minor(KRB_AP_ERR_SKEW), "Clock skew too great").contains("synchronise the clocks"));
        assert!(advice(FAILURE, minor(KDC_ERR_S_PRINCIPAL_UNKNOWN), "Server not found").contains("dfs.namenode.kerberos.principal"));
        assert!(advice(FAILURE, minor(KDC_ERR_C_PRINCIPAL_UNKNOWN), "Client not found").contains("check --principal"));
        assert!(advice(FAILURE, minor(KDC_ERR_PREAUTH_FAILED), "Preauthentication failed").contains("klist -kt"));
        assert!(advice(FAILURE, 1, "odd").starts_with("Kerberos authentication failed (odd)"));
    }

    #[test]
    fn only_kerberos_failures_are_explained() {
        let io = std::io::Error::other("connection reset");
        assert!(explain(&io).is_none());
        let wrapped = object_store::Error::Generic { store: "HdfsObjectStore", source: Box::new(HdfsError::FileNotFound("/x".into())) };
        assert!(explain(&wrapped).is_none());
    }
}
