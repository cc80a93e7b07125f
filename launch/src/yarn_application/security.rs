//! A Kerberized cluster (`hadoop.security.authentication` = `kerberos`): the driver proves who
//! it is with a ticket (`kinit`) or `--principal`/`--keytab`, and its application carries
//! delegation tokens, because containers have no ticket: an HDFS token for the NodeManagers'
//! localizers and the workers' reads and writes, and for a disowned master also a
//! ResourceManager token. The ResourceManager renews them while the application runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use eddy_common::env::Environment;
use eddy_common::ClusterSecret;
use eddy_hadoop_ipc::credentials::Credentials;
use eddy_hadoop_ipc::gssapi::Login;
use eddy_hadoop_ipc::proto::common::TokenProto;
use eddy_hadoop_ipc::IpcError;
use eddy_yarn_client::conf::HadoopConf;
use eddy_yarn_client::rm::{ResourceManager, RmAuth};
use eddy_yarn_client::tokens::{
    hdfs_delegation_token, hdfs_delegation_token_with_expiry, namenode_address, short_name, HDFS_DELEGATION_TOKEN,
};
use eddy_yarn_client::YarnError;
use prost::Message;

use super::RPC_TIMEOUT;
use crate::cloud::TokenSource;
use crate::{DriverError, DriverResult};

/// Kind of the ResourceManager's delegation tokens.
pub(super) const RM_DELEGATION_TOKEN: &str = "RM_DELEGATION_TOKEN";

/// The file in the staging directory through which the master container of an attached
/// Kerberized application hands its AMRMToken to the driver, sealed under the cluster secret.
///
/// Why a master container at all: measured on Apache Hadoop 3.4.3, the ResourceManager puts
/// an unmanaged master's AMRMToken into the application report only for a caller whose full
/// name equals the application's user (`ClientRMService.getApplicationReport` passes
/// `UserGroupInformation.getUserName()` to `RMAppImpl.createAndGetApplicationReport`, which
/// compares it with the user). A Kerberos caller is `alice@REALM` and the user `alice`, so
/// the token never came and the attempt waited until it timed out. A managed master gets
/// the token in its container's token file; it relays it, and the driver stays the master.
pub(super) const RELAY_FILE: &str = "am-token.sealed";

/// Appended to the relay file's name: the driver writes this file when the application ended.
pub(super) const RELAY_DONE_SUFFIX: &str = ".done";

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

/// The NameNode HDFS delegation tokens come from: `fs.defaultFS`'s.
fn token_namenode(conf: &HadoopConf) -> DriverResult<String> {
    let default_fs = conf.default_fs().unwrap_or_default();
    namenode_address(&default_fs).ok_or_else(|| DriverError::Yarn {
        reason: format!(
            "fs.defaultFS is {default_fs:?}: on a Kerberized cluster eddy-driver yarn obtains HDFS delegation tokens from an hdfs://host:port NameNode only (name services are not supported yet)"
        ),
    })
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
    let namenode = token_namenode(conf)?;
    let mut tokens = Vec::new();
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

/// New HDFS delegation tokens for the workers of an attached cloud whose driver logged in from
/// a keytab (a ticket cache expires, and tokens the driver obtained would then outlive no
/// longer than their renewal interval, where YARN renews the first ones for 7 days).
#[derive(Debug)]
pub(super) struct HdfsTokenSource {
    namenode: String,
    login: Login,
}

impl HdfsTokenSource {
    /// `None` unless the driver logs in from a keytab on a Kerberized cluster.
    pub(super) fn for_cluster(conf: &HadoopConf, identity: &Identity) -> DriverResult<Option<Self>> {
        let Identity::Kerberos(login @ Login::Keytab { .. }) = identity else { return Ok(None) };
        Ok(Some(Self { namenode: token_namenode(conf)?, login: login.clone() }))
    }
}

#[async_trait::async_trait]
impl TokenSource for HdfsTokenSource {
    async fn obtain(&self) -> DriverResult<(Credentials, SystemTime)> {
        let identity = Identity::Kerberos(self.login.clone());
        let (token, expiry_ms) = hdfs_delegation_token_with_expiry(&self.namenode, &self.login, RPC_TIMEOUT)
            .await
            .map_err(|e| rm_error(&format!("cannot obtain an HDFS delegation token from {}", self.namenode), e, &identity))?;
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_millis(expiry_ms);
        Ok((Credentials { tokens: vec![(token.service.clone(), token)], secrets: Vec::new() }, expiry))
    }
}

/// The HDFS delegation tokens among `tokens`: what worker containers carry.
pub(super) fn hdfs_tokens(tokens: &[(String, TokenProto)]) -> Vec<(String, TokenProto)> {
    tokens.iter().filter(|(_, t)| t.kind == HDFS_DELEGATION_TOKEN).cloned().collect()
}

/// The tokens as a container's token file holds them (no secrets).
pub(super) fn token_file(tokens: &[(String, TokenProto)]) -> Vec<u8> {
    Credentials { tokens: tokens.to_vec(), secrets: Vec::new() }.to_bytes()
}

/// Waits (until `timeout`, or the application's end) for the master container's sealed
/// AMRMToken at `relay`, opens it and removes the file.
pub(super) async fn await_relayed_token(
    rm: &ResourceManager,
    app: &eddy_hadoop_ipc::proto::yarn::ApplicationIdProto,
    relay: &str,
    secret: &ClusterSecret,
    storage: &eddy_frame::storage::StorageOptions,
    timeout: std::time::Duration,
) -> DriverResult<TokenProto> {
    use eddy_frame::storage;
    let deadline = std::time::Instant::now() + timeout;
    let app_text = eddy_yarn_client::rm::application_id_text(app);
    loop {
        if let Ok(Some(stat)) = storage::stat(relay, storage).await {
            let bytes = storage::read_range(relay, 0..stat.size, storage)
                .await
                .map_err(|e| DriverError::Yarn { reason: format!("cannot read the relayed AMRMToken {relay}: {e}") })?;
            let token = open_token(secret, &bytes)?;
            if let Err(e) = storage::delete_recursive(relay, storage).await {
                tracing::warn!("cannot remove {relay}: {e}");
            }
            return Ok(token);
        }
        let report = rm.report(app).await.map_err(|e| DriverError::Yarn { reason: format!("getApplicationReport: {e}") })?;
        let ended = super::is_final(report.yarn_application_state);
        if ended || std::time::Instant::now() >= deadline {
            let state = eddy_yarn_client::rm::state_name(report.yarn_application_state);
            let how = if ended { "ended before" } else { "timed out (--timeout) waiting for" };
            return Err(DriverError::NotFormed {
                reason: format!(
                    "YARN application {app_text} {how} its master container's AMRMToken (state {state}); queue {}: {}",
                    report.queue.unwrap_or_default(),
                    report.diagnostics.unwrap_or_default()
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The AMRMToken sealed under the cluster secret (ChaCha20-Poly1305, a random nonce first):
/// what the master container of an attached Kerberized application writes to the staging
/// directory for the driver, which only holders of the secret can read.
pub(super) fn seal_token(secret: &ClusterSecret, token: &TokenProto) -> DriverResult<Vec<u8>> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
    let failed = |what: &str| DriverError::InvalidArgument { reason: format!("cannot seal the AMRMToken: {what}") };
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &secret.derive_key(RELAY_KEY_LABEL)).map_err(|_| failed("key"))?);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| failed("no randomness"))?;
    let mut sealed = token.encode_to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed).map_err(|_| failed("seal"))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The AMRMToken of [`seal_token`], checked and decrypted.
pub(super) fn open_token(secret: &ClusterSecret, bytes: &[u8]) -> DriverResult<TokenProto> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
    let bad = || DriverError::Yarn {
        reason: "the relayed AMRMToken does not open under this cloud's secret (another application's file?)".into(),
    };
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &secret.derive_key(RELAY_KEY_LABEL)).map_err(|_| bad())?);
    if bytes.len() < NONCE_LEN {
        return Err(bad());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let mut sealed = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut sealed).map_err(|_| bad())?;
    TokenProto::decode(&plain[..]).map_err(|_| bad())
}

const RELAY_KEY_LABEL: &str = "yarn-amrm-token-relay";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_under_its_secret() {
        let secret = ClusterSecret::from_text("relay-test-secret-1").unwrap();
        let token =
            TokenProto { identifier: vec![1, 2, 3], password: vec![4; 20], kind: "YARN_AM_RM_TOKEN".into(), service: "rm:8030".into() };
        let sealed = seal_token(&secret, &token).unwrap();
        assert!(!sealed.windows(20).any(|w| w == [4; 20]), "the password is not in the clear");
        assert_eq!(open_token(&secret, &sealed).unwrap(), token);
        let other = ClusterSecret::from_text("relay-test-secret-2").unwrap();
        assert!(open_token(&other, &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(open_token(&secret, &tampered).is_err());
    }
}
