//! The delegation tokens a YARN application on a Kerberized cluster carries: containers have
//! no Kerberos ticket, so the submitter asks the NameNode for an HDFS delegation token (over
//! Kerberos) and puts it into every container's token file, where hdfs-native and the
//! NodeManager's localizer find it. The ResourceManager renews it while the application runs.

use std::time::Duration;

use eddy_hadoop_ipc::client::IpcClient;
use eddy_hadoop_ipc::gssapi::Login;
use eddy_hadoop_ipc::proto::common::{
    GetDelegationTokenRequestProto, GetDelegationTokenResponseProto, RenewDelegationTokenRequestProto, RenewDelegationTokenResponseProto,
    TokenProto,
};
use eddy_hadoop_ipc::protocols::CLIENT_NAMENODE;

use crate::{YarnError, YarnResult};

pub use eddy_hadoop_ipc::credentials::HDFS_DELEGATION_TOKEN;

/// An HDFS delegation token from the NameNode at `namenode` (`host:port`) that `renewer`
/// (the ResourceManager's principal) may renew. Its service is the NameNode's address as
/// written (`host:port`), the way Hadoop's clients and hdfs-native look tokens up.
pub async fn hdfs_delegation_token(namenode: &str, login: &Login, renewer: &str, timeout: Duration) -> YarnResult<TokenProto> {
    let ipc = IpcClient::connect_with_kerberos(namenode, CLIENT_NAMENODE, login, timeout).await?;
    delegation_token(&ipc, namenode, renewer).await
}

/// `getDelegationToken` on a NameNode connection, the token's service set to `namenode`.
async fn delegation_token(ipc: &IpcClient, namenode: &str, renewer: &str) -> YarnResult<TokenProto> {
    let request = GetDelegationTokenRequestProto { renewer: renewer.to_string() };
    let r: GetDelegationTokenResponseProto = ipc.call("getDelegationToken", &request).await?;
    let mut token = r.token.ok_or_else(|| YarnError::Incomplete { method: "getDelegationToken".into(), field: "token".into() })?;
    token.service = namenode.to_string();
    Ok(token)
}

/// The name Hadoop's default `auth_to_local` rule gives a principal of the default realm:
/// its first component (`alice@EXAMPLE.COM` and `alice/admin@EXAMPLE.COM` are `alice`).
pub fn short_name(principal: &str) -> String {
    principal.split(['/', '@']).next().unwrap_or(principal).to_string()
}

/// An HDFS delegation token that the caller renews itself, with the time (milliseconds since
/// the epoch) it expires unless renewed: obtained with the caller's short name as renewer and
/// renewed once, which is how a client learns the NameNode's renewal interval (Spark does the
/// same). For tokens handed out again before they expire.
pub async fn hdfs_delegation_token_with_expiry(namenode: &str, login: &Login, timeout: Duration) -> YarnResult<(TokenProto, u64)> {
    let ipc = IpcClient::connect_with_kerberos(namenode, CLIENT_NAMENODE, login, timeout).await?;
    let renewer = short_name(ipc.principal().unwrap_or_default());
    let token = delegation_token(&ipc, namenode, &renewer).await?;
    // The NameNode renews a token as its identifier says; the service is ours alone.
    let renewed: RenewDelegationTokenResponseProto =
        ipc.call("renewDelegationToken", &RenewDelegationTokenRequestProto { token: token.clone() }).await?;
    Ok((token, renewed.new_expiry_time))
}

/// The NameNode address (`host:port`, port 8020 when none is written) of an `hdfs://` file
/// system URL; `None` for other schemes and for name services (HA), whose tokens are not
/// obtained here.
pub fn namenode_address(default_fs: &str) -> Option<String> {
    let rest = default_fs.trim().strip_prefix("hdfs://")?;
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    if authority.contains(':') {
        Some(authority.to_string())
    } else if authority.contains('.') || authority == "localhost" {
        Some(format!("{authority}:8020"))
    } else {
        // A bare name is a name service (hdfs://mycluster).
        None
    }
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

    #[test]
    fn namenode_addresses_from_file_system_urls() {
        assert_eq!(namenode_address("hdfs://127.0.0.1:39020").as_deref(), Some("127.0.0.1:39020"));
        assert_eq!(namenode_address("hdfs://nn.example.com/").as_deref(), Some("nn.example.com:8020"));
        assert_eq!(namenode_address("hdfs://mycluster"), None);
        assert_eq!(namenode_address("s3a://bucket"), None);
    }
}
