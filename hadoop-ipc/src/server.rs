//! A Hadoop IPC server: accepts connections, speaks the preamble, answers SASL negotiation
//! for SIMPLE authentication the way Hadoop's `Server` does when only SIMPLE is enabled, reads
//! the connection context (protocol and user), and hands every call to an [`RpcHandler`].
//! Calls on one connection run concurrently, as Hadoop clients multiplex them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::proto::common::{
    rpc_response_header_proto::{RpcErrorCodeProto, RpcStatusProto},
    rpc_sasl_proto::{SaslAuth, SaslState},
    IpcConnectionContextProto, RequestHeaderProto, RpcRequestHeaderProto, RpcResponseHeaderProto, RpcSaslProto,
};
use crate::sasl::{DigestServer, DEFAULT_REALM};
use crate::wire::{self, AUTH_NONE, AUTH_SASL, CONNECTION_CONTEXT_CALL_ID, IPC_VERSION, MAGIC, PING_CALL_ID, SASL_CALL_ID};

/// One call as the handler sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The protocol named in the request header (e.g. `org.apache.hadoop.hdfs.protocol.ClientProtocol`).
    pub protocol: String,
    /// The method (e.g. `getFileInfo`).
    pub method: String,
    /// The effective user from the connection context.
    pub user: String,
    /// The request message, still length-delimited as it came.
    pub request: Bytes,
    /// With TOKEN authentication: the identifier of the token the client proved it holds.
    pub token_identifier: Option<Bytes>,
}

impl Call {
    /// Decodes the request message.
    pub fn decode<M: Message + Default>(&self) -> Result<M, RpcException> {
        M::decode_length_delimited(self.request.clone())
            .map_err(|e| RpcException::new("java.io.IOException", format!("cannot decode the {} request: {e}", self.method)))
    }

    /// Hadoop's answer to a call for another protocol than `served`, if it is one.
    pub fn expect_protocol(&self, served: &str) -> Result<(), RpcException> {
        if self.protocol == served {
            return Ok(());
        }
        Err(RpcException::new("org.apache.hadoop.ipc.RpcNoSuchProtocolException", format!("Unknown protocol: {}", self.protocol)))
    }

    /// Hadoop's answer to a method the handler does not serve; `serves` says what it does.
    pub fn no_such_method(&self, serves: &str) -> RpcException {
        RpcException::new(
            "org.apache.hadoop.ipc.RpcNoSuchMethodException",
            format!("Unknown method {} called on {} ({serves})", self.method, self.protocol),
        )
    }
}

/// An exception a handler answers a call with; the client sees Hadoop's class name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcException {
    /// Java class name, e.g. `java.io.FileNotFoundException`.
    pub class: String,
    /// Message.
    pub message: String,
}

impl RpcException {
    /// An exception of `class` with `message`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self { class: class.into(), message: message.into() }
    }
}

/// What a call returns: the encoded response message (not length-delimited).
pub type CallResult = Result<Vec<u8>, RpcException>;

/// Serves the calls of one protocol (or several).
#[async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    /// Answers one call.
    async fn call(&self, call: Call) -> CallResult;
}

/// Encodes a response message for [`CallResult`].
pub fn reply<M: Message>(m: &M) -> CallResult {
    Ok(m.encode_to_vec())
}

/// Passwords of the tokens a server accepts (the secret manager of a Hadoop daemon).
pub trait TokenSecrets: Send + Sync + 'static {
    /// The password of the token with `identifier`, or why it is refused (unknown, expired,
    /// of another application).
    fn password(&self, identifier: &[u8]) -> Result<Vec<u8>, String>;
}

/// What the server offers when a client starts SASL.
#[derive(Clone, Default)]
pub enum SaslOffer {
    /// Only SIMPLE is enabled: NEGOTIATE is answered with SUCCESS at once.
    #[default]
    SimpleOnly,
    /// TOKEN (DIGEST-MD5) and SIMPLE are offered, as an unsecured NameNode does (it always has a
    /// delegation token manager); a client choosing SIMPLE sends INITIATE and gets no answer.
    /// This server takes SIMPLE only.
    TokenAndSimple,
    /// Only TOKEN is enabled, as on YARN's ApplicationMasterService and NodeManagers even in an
    /// unsecured cluster: a client must prove it holds a token these secrets know.
    TokenOnly(Arc<dyn TokenSecrets>),
}

impl std::fmt::Debug for SaslOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SimpleOnly => "SimpleOnly",
            Self::TokenAndSimple => "TokenAndSimple",
            Self::TokenOnly(_) => "TokenOnly",
        })
    }
}

/// A running IPC server; dropping it (or [`IpcServer::stop`]) closes the listener and every
/// connection, as a killed server would.
#[derive(Debug)]
pub struct IpcServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl IpcServer {
    /// Binds `addr` (use port 0 for a free port) and serves `handler`.
    pub async fn bind(addr: SocketAddr, handler: Arc<dyn RpcHandler>) -> std::io::Result<Self> {
        Self::bind_with(addr, handler, SaslOffer::SimpleOnly).await
    }

    /// Like [`IpcServer::bind`], choosing what SASL negotiation offers.
    pub async fn bind_with(addr: SocketAddr, handler: Arc<dyn RpcHandler>, offer: SaslOffer) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = spawn_accept_loop(listener, "IPC", move |stream| serve_connection(stream, Arc::clone(&handler), offer.clone()));
        Ok(Self { addr, task })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections on `listener` (with TCP_NODELAY) and serves each with `serve` until the
/// returned task is aborted; the connections live in the task, so aborting it drops them all,
/// as a killed server would.
pub fn spawn_accept_loop<F, Fut>(listener: TcpListener, what: &'static str, serve: F) -> JoinHandle<()>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let connection = serve(stream);
                        connections.spawn(async move {
                            if let Err(e) = connection.await {
                                debug!(%peer, "{what} connection ended: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        warn!("{what} accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

fn protocol_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

async fn serve_connection(stream: TcpStream, handler: Arc<dyn RpcHandler>, offer: SaslOffer) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let mut preamble = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(30), reader.read_exact(&mut preamble))
        .await
        .map_err(|_| protocol_error("no preamble within 30 s"))??;
    if &preamble[..4] != MAGIC {
        return Err(protocol_error(format!("not Hadoop IPC: the connection began with {:?}", &preamble[..4])));
    }
    if preamble[4] != IPC_VERSION {
        return Err(protocol_error(format!("IPC version {} is not supported (this server speaks {IPC_VERSION})", preamble[4])));
    }
    let token_identifier = match (preamble[6], &offer) {
        (AUTH_NONE, SaslOffer::TokenOnly(_)) => {
            let e = RpcException::new(ACCESS_CONTROL, "SIMPLE authentication is not enabled.  Available:[TOKEN]");
            {
                let buf = fatal_frame(e);
                writer.write_all(&buf).await
            }?;
            return Err(protocol_error("a client without SASL was refused: this server requires TOKEN authentication"));
        }
        (AUTH_NONE, _) => None,
        (AUTH_SASL, _) => negotiate(&mut reader, &mut writer, &offer).await?,
        (other, _) => return Err(protocol_error(format!("unknown auth protocol {other}"))),
    };

    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if writer.write_all(&buf).await.is_err() {
                break;
            }
        }
    });

    let mut user = String::new();
    let mut calls = JoinSet::new();
    let result = loop {
        let Some(mut frame) = wire::read_frame(&mut reader).await? else { break Ok(()) };
        let header: RpcRequestHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad RPC header: {e}")))?;
        match header.call_id {
            CONNECTION_CONTEXT_CALL_ID => {
                let context: IpcConnectionContextProto =
                    wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad connection context: {e}")))?;
                user = context.user_info.and_then(|u| u.effective_user).unwrap_or_default();
                debug!(user, protocol = context.protocol.as_deref().unwrap_or(""), "IPC connection context");
                continue;
            }
            PING_CALL_ID => continue,
            id if id < 0 => break Err(protocol_error(format!("unexpected reserved call id {id}"))),
            _ => {}
        }
        let request: RequestHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad request header: {e}")))?;
        let call = Call {
            protocol: request.declaring_class_protocol_name,
            method: request.method_name,
            user: user.clone(),
            request: frame,
            token_identifier: token_identifier.clone(),
        };
        let handler = Arc::clone(&handler);
        let tx = tx.clone();
        calls.spawn(async move {
            let result = handler.call(call).await;
            let _ = tx.send(response_frame(&header, result)).await;
        });
        while calls.try_join_next().is_some() {}
    };
    // Let calls already running answer before the writer goes.
    while calls.join_next().await.is_some() {}
    drop(tx);
    let _ = writer_task.await;
    result
}

fn response_frame(request: &RpcRequestHeaderProto, result: CallResult) -> Vec<u8> {
    let mut header = RpcResponseHeaderProto {
        call_id: request.call_id as u32,
        status: RpcStatusProto::Success as i32,
        server_ipc_version_num: Some(u32::from(IPC_VERSION)),
        client_id: Some(request.client_id.clone()),
        retry_count: request.retry_count,
        ..Default::default()
    };
    match result {
        Ok(body) => wire::frame_with_body(&[&header], &body),
        Err(e) => {
            header.status = RpcStatusProto::Error as i32;
            header.exception_class_name = Some(e.class);
            header.error_msg = Some(e.message);
            header.error_detail = Some(RpcErrorCodeProto::ErrorApplication as i32);
            wire::frame(&[&header])
        }
    }
}

const ACCESS_CONTROL: &str = "org.apache.hadoop.security.AccessControlException";

/// The answer that ends a connection whose SASL exchange failed, as Hadoop's server sends it.
fn fatal_frame(e: RpcException) -> Vec<u8> {
    let header = RpcResponseHeaderProto {
        call_id: SASL_CALL_ID as u32,
        status: RpcStatusProto::Fatal as i32,
        server_ipc_version_num: Some(u32::from(IPC_VERSION)),
        exception_class_name: Some(e.class),
        error_msg: Some(e.message),
        error_detail: Some(RpcErrorCodeProto::FatalUnauthorized as i32),
        ..Default::default()
    };
    wire::frame(&[&header])
}

async fn read_sasl(reader: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<RpcSaslProto> {
    let mut frame = wire::read_frame(reader).await?.ok_or_else(|| protocol_error("closed during SASL negotiation"))?;
    let header: RpcRequestHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL header: {e}")))?;
    if header.call_id != SASL_CALL_ID {
        return Err(protocol_error(format!("expected a SASL message, got call {}", header.call_id)));
    }
    wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL message: {e}")))
}

/// The SASL exchange. With only SIMPLE enabled, Hadoop's server answers the client's NEGOTIATE
/// with SUCCESS right away; otherwise it lists the methods it offers (with the first DIGEST-MD5
/// challenge for TOKEN), the client INITIATEs one, and a TOKEN client is answered SUCCESS with
/// `rspauth` once its response checks out. Returns the token identifier of a TOKEN client.
async fn negotiate(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    offer: &SaslOffer,
) -> std::io::Result<Option<Bytes>> {
    let sasl = read_sasl(reader).await?;
    if sasl.state != SaslState::Negotiate as i32 {
        return Err(protocol_error(format!("expected SASL NEGOTIATE, got state {}", sasl.state)));
    }
    let response_header = RpcResponseHeaderProto {
        call_id: SASL_CALL_ID as u32,
        status: RpcStatusProto::Success as i32,
        server_ipc_version_num: Some(u32::from(IPC_VERSION)),
        ..Default::default()
    };
    let auth = |method: &str, mechanism: &str| SaslAuth { method: method.into(), mechanism: mechanism.into(), ..Default::default() };
    let token_auth = || SaslAuth { protocol: Some(String::new()), server_id: Some(DEFAULT_REALM.into()), ..auth("TOKEN", "DIGEST-MD5") };
    let (auths, digest) = match offer {
        SaslOffer::SimpleOnly => {
            let success = RpcSaslProto { state: SaslState::Success as i32, ..Default::default() };
            {
                let buf = wire::frame(&[&response_header, &success]);
                writer.write_all(&buf).await
            }?;
            return Ok(None);
        }
        SaslOffer::TokenAndSimple => (vec![token_auth(), auth("SIMPLE", "")], None),
        SaslOffer::TokenOnly(secrets) => {
            let digest = DigestServer::new("", DEFAULT_REALM);
            (vec![SaslAuth { challenge: Some(digest.challenge()), ..token_auth() }], Some((digest, secrets)))
        }
    };
    let negotiate = RpcSaslProto { state: SaslState::Negotiate as i32, auths, ..Default::default() };
    {
        let buf = wire::frame(&[&response_header, &negotiate]);
        writer.write_all(&buf).await
    }?;

    let initiate = read_sasl(reader).await?;
    let chosen = initiate.auths.first().filter(|_| initiate.state == SaslState::Initiate as i32);
    match (chosen, digest) {
        (Some(a), None) if a.method == "SIMPLE" => Ok(None),
        (Some(a), Some((digest, secrets))) if a.method == "TOKEN" => {
            let response = initiate.token.unwrap_or_default();
            match digest.verify(&response, |id| secrets.password(id)) {
                Ok(ok) => {
                    let success = RpcSaslProto { state: SaslState::Success as i32, token: Some(ok.rspauth), ..Default::default() };
                    {
                        let buf = wire::frame(&[&response_header, &success]);
                        writer.write_all(&buf).await
                    }?;
                    Ok(Some(Bytes::from(ok.identifier)))
                }
                Err(why) => {
                    writer
                        .write_all(&fatal_frame(RpcException::new(ACCESS_CONTROL, format!("token authentication failed: {why}"))))
                        .await?;
                    Err(protocol_error(format!("token authentication failed: {why}")))
                }
            }
        }
        (chosen, digest) => {
            let method = chosen.map(|a| format!("{}/{}", a.method, a.mechanism)).unwrap_or_else(|| "nothing".into());
            let available = if digest.is_some() { "[TOKEN]" } else { "[SIMPLE]" };
            let name = chosen.map(|a| a.method.clone()).unwrap_or_default();
            let e = RpcException::new(ACCESS_CONTROL, format!("{name} authentication is not enabled.  Available:{available}"));
            {
                let buf = fatal_frame(e);
                writer.write_all(&buf).await
            }?;
            Err(protocol_error(format!("the client chose {method}; this server takes {available}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::IpcClient;
    use crate::proto::common::UserInformationProto;

    /// Answers every call with the caller's user, to show the connection context arrived.
    struct WhoAmI;

    #[async_trait]
    impl RpcHandler for WhoAmI {
        async fn call(&self, call: Call) -> CallResult {
            match call.method.as_str() {
                "whoami" => reply(&UserInformationProto { effective_user: Some(call.user), real_user: None }),
                _ => Err(call.no_such_method("this test serves whoami")),
            }
        }
    }

    #[tokio::test]
    async fn our_client_speaks_simple_whichever_way_the_server_negotiates() {
        for offer in [SaslOffer::SimpleOnly, SaslOffer::TokenAndSimple] {
            let server = IpcServer::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(WhoAmI), offer.clone()).await.unwrap();
            let client = IpcClient::connect(&server.local_addr().to_string(), "p", "carol", Duration::from_secs(5)).await.unwrap();
            let me: UserInformationProto = client.call("whoami", &UserInformationProto::default()).await.unwrap();
            assert_eq!(me.effective_user.as_deref(), Some("carol"), "{offer:?}");
            let err = client.call::<_, UserInformationProto>("nope", &UserInformationProto::default()).await.unwrap_err();
            assert!(err.to_string().contains("RpcNoSuchMethodException"), "{err}");
            // Calls still work after an error, and several at once.
            let q = UserInformationProto::default();
            let (a, b) =
                tokio::join!(client.call::<_, UserInformationProto>("whoami", &q), client.call::<_, UserInformationProto>("whoami", &q));
            assert!(a.is_ok() && b.is_ok());
        }
    }

    /// Knows one token: identifier `app-1`, password `pw`.
    struct OneToken;

    impl TokenSecrets for OneToken {
        fn password(&self, identifier: &[u8]) -> Result<Vec<u8>, String> {
            if identifier == b"app-1" {
                Ok(b"pw".to_vec())
            } else {
                Err(format!("unknown token {}", String::from_utf8_lossy(identifier)))
            }
        }
    }

    /// Answers with the token identifier the connection authenticated with.
    struct WhichToken;

    #[async_trait]
    impl RpcHandler for WhichToken {
        async fn call(&self, call: Call) -> CallResult {
            let id = call.token_identifier.map(|t| String::from_utf8_lossy(&t).into_owned());
            reply(&UserInformationProto { effective_user: id, real_user: None })
        }
    }

    #[tokio::test]
    async fn token_only_servers_take_a_valid_token_and_refuse_everything_else() {
        use crate::proto::common::TokenProto;
        let offer = SaslOffer::TokenOnly(Arc::new(OneToken));
        let server = IpcServer::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(WhichToken), offer).await.unwrap();
        let addr = server.local_addr().to_string();
        let t = Duration::from_secs(5);
        let token = |id: &[u8], pw: &[u8]| TokenProto {
            identifier: id.to_vec(),
            password: pw.to_vec(),
            kind: "YARN_AM_RM_TOKEN".into(),
            service: addr.clone(),
        };

        let client = IpcClient::connect_with_token(&addr, "p", "u", &token(b"app-1", b"pw"), t).await.unwrap();
        let who: UserInformationProto = client.call("who", &UserInformationProto::default()).await.unwrap();
        assert_eq!(who.effective_user.as_deref(), Some("app-1"));

        let err = IpcClient::connect_with_token(&addr, "p", "u", &token(b"app-1", b"guess"), t).await.unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = IpcClient::connect_with_token(&addr, "p", "u", &token(b"app-2", b"pw"), t).await.unwrap_err();
        assert!(err.to_string().contains("unknown token app-2"), "{err}");
        let err = IpcClient::connect(&addr, "p", "u", t).await.unwrap_err();
        assert!(err.to_string().contains("requires TOKEN/DIGEST-MD5 authentication"), "{err}");
        // A SIMPLE-only server is not fooled into skipping the token check either way.
        let simple = IpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(WhoAmI)).await.unwrap();
        let err = IpcClient::connect_with_token(&simple.local_addr().to_string(), "p", "u", &token(b"app-1", b"pw"), t).await.unwrap_err();
        assert!(err.to_string().contains("SIMPLE authentication only"), "{err}");
    }
}
