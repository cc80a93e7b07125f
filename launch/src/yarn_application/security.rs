//! A Kerberized cluster (`hadoop.security.authentication` = `kerberos`): the driver proves who
//! it is with a ticket (`kinit`) or `--principal`/`--keytab`, and its application carries
//! delegation tokens, because containers have no ticket: an HDFS token for the NodeManagers'
//! localizers and the workers' reads and writes, and for a disowned master also a
//! ResourceManager token. The ResourceManager renews them while the application runs.

use std::sync::Arc;

use eddy_common::env::Environment;
use eddy_hadoop_ipc::credentials::Credentials;
use eddy_hadoop_ipc::gssapi::Login;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::IpcError;
use eddy_yarn_client::conf::HadoopConf;
use eddy_yarn_client::rm::{ResourceManager, RmAuth};
use eddy_yarn_client::tokens::{hdfs_delegation_token, namenode_address, HDFS_DELEGATION_TOKEN};
use eddy_yarn_client::YarnError;

use super::RPC_TIMEOUT;
use crate::{DriverError, DriverResult};

/// Kind of the ResourceManager's delegation tokens.
pub(super) const RM_DELEGATION_TOKEN: &str = "RM_DELEGATION_TOKEN";

/// Why an attached driver cannot be the master of a Kerberized application, and what to do.
/// Measured on Apache Hadoop 3.4.3: the ResourceManager puts an unmanaged master's AMRMToken
/// into the application report only for a caller whose full name equals the application's
/// user (`RMAppImpl.createAndGetApplicationReport`, given `UserGroupInformation.getUserName`);
/// a Kerberos caller is `alice@REALM`, the application's user `alice`, so the token never
/// comes and the attempt waits until it times out.
pub(super) const ATTACHED_ON_KERBEROS: &str = "on a Kerberized cluster the cloud's ApplicationMaster must run in a YARN container: add \
    --disown (the driver submits, waits until the cloud formed, prints its address and exits; `eddy-driver yarn kill APP_ID` ends it). \
    An attached driver cannot be the master there: YARN hands an unmanaged master's token only to a caller named exactly as the \
    application's user, and a Kerberos caller is named user@REALM";

/// Who the driver is towards the cluster.
#[derive(Debug, Clone)]
pub(super) enum Identity {
    /// SIMPLE authentication: a name, believed.
    Simple,
    /// Kerberos: the login, and the short name YARN and HDFS know the principal by.
    Kerberos(Login),
}

impl Identity {
    /// Kerberos when the cluster runs it: with `--principal`/`--keytab` (`kerberos_opt`) or
    /// else the ticket cache.
    pub(super) fn for_cluster(conf: &HadoopConf, kerberos_opt: Option<&(String, std::path::PathBuf)>) -> Self {
        if !conf.kerberos() {
            return Identity::Simple;
        }
        match kerberos_opt {
            Some((principal, keytab)) => {
                Identity::Kerberos(Login::Keytab { principal: principal.clone(), keytab: keytab.display().to_string() })
            }
            None => Identity::Kerberos(Login::TicketCache),
        }
    }
}

/// Connects to the first ResourceManager that answers; returns it and the user YARN knows us
/// as (the principal's short name with Kerberos, else `HADOOP_USER_NAME` or the login name).
pub(super) async fn connect_rm(conf: &HadoopConf, identity: &Identity, env: &Environment) -> DriverResult<(Arc<ResourceManager>, String)> {
    let addresses = conf.resource_manager_addresses();
    let auth = match identity {
        Identity::Simple => RmAuth::Simple { user: env.hadoop_user() },
        Identity::Kerberos(login) => RmAuth::Kerberos(login.clone()),
    };
    let rm = ResourceManager::connect_with(&addresses, &auth, RPC_TIMEOUT)
        .await
        .map_err(|e| rm_error(&format!("cannot reach the ResourceManager at {}", addresses.join(", ")), e, identity))?;
    let user = match rm.principal() {
        Some(principal) => short_name(principal),
        None => env.hadoop_user(),
    };
    Ok((Arc::new(rm), user))
}

/// A YARN failure, with what to do when it is Kerberos's.
pub(super) fn rm_error(context: &str, e: YarnError, identity: &Identity) -> DriverError {
    let advice = match (&e, identity) {
        (YarnError::Ipc(IpcError::Kerberos { no_ticket: true, .. }), Identity::Kerberos(Login::TicketCache)) => {
            "; run `kinit user@REALM`, or pass --principal and --keytab"
        }
        (YarnError::Ipc(IpcError::Kerberos { no_ticket: true, .. }), _) => "; check --principal and --keytab (`klist -kt KEYTAB`)",
        (YarnError::Ipc(IpcError::Kerberos { .. }), _) => "; check krb5.conf (KRB5_CONFIG), the ticket (`klist`) and the clocks",
        _ => "",
    };
    DriverError::Yarn { reason: format!("{context}: {e}{advice}") }
}

/// The name Hadoop's default `auth_to_local` rule gives a principal of the default realm:
/// its first component (`alice@EXAMPLE.COM` and `alice/admin@EXAMPLE.COM` are `alice`).
pub(super) fn short_name(principal: &str) -> String {
    principal.split(['/', '@']).next().unwrap_or(principal).to_string()
}

/// The delegation tokens the application's containers need, by alias (their service), or
/// none on a SIMPLE cluster: an HDFS token for `fs.defaultFS`, and a ResourceManager token
/// when `disowned` (its master talks to the ResourceManager from a container).
pub(super) async fn application_tokens(
    conf: &HadoopConf,
    identity: &Identity,
    rm: &ResourceManager,
    disowned: bool,
) -> DriverResult<Vec<(String, TokenProto)>> {
    let Identity::Kerberos(login) = identity else { return Ok(Vec::new()) };
    let renewer = conf.resource_manager_principal(rm.addr()).ok_or_else(|| DriverError::Yarn {
        reason: "the cluster runs Kerberos but yarn.resourcemanager.principal is not set in yarn-site.xml: the delegation tokens need it as their renewer".into(),
    })?;
    let mut tokens = Vec::new();
    let default_fs = conf.default_fs().unwrap_or_default();
    let namenode = namenode_address(&default_fs).ok_or_else(|| DriverError::Yarn {
        reason: format!(
            "fs.defaultFS is {default_fs:?}: on a Kerberized cluster eddy-driver yarn obtains HDFS delegation tokens from an hdfs://host:port NameNode only (name services are not supported yet)"
        ),
    })?;
    let hdfs = hdfs_delegation_token(&namenode, login, &renewer, RPC_TIMEOUT)
        .await
        .map_err(|e| rm_error(&format!("cannot obtain an HDFS delegation token from {namenode}"), e, identity))?;
    tokens.push((hdfs.service.clone(), hdfs));
    if disowned {
        let token =
            rm.delegation_token(&renewer).await.map_err(|e| rm_error("cannot obtain a ResourceManager delegation token", e, identity))?;
        tokens.push((token.service.clone(), token));
    }
    Ok(tokens)
}

/// The HDFS delegation tokens among `tokens`: what worker containers carry.
pub(super) fn hdfs_tokens(tokens: &[(String, TokenProto)]) -> Vec<(String, TokenProto)> {
    tokens.iter().filter(|(_, t)| t.kind == HDFS_DELEGATION_TOKEN).cloned().collect()
}

/// The tokens as a container's token file holds them (no secrets).
pub(super) fn token_file(tokens: &[(String, TokenProto)]) -> Vec<u8> {
    Credentials { tokens: tokens.to_vec(), secrets: Vec::new() }.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_follow_hadoops_default_rule() {
        assert_eq!(short_name("alice@EXAMPLE.COM"), "alice");
        assert_eq!(short_name("alice/admin@EXAMPLE.COM"), "alice");
        assert_eq!(short_name("alice"), "alice");
    }
}
