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

/// What the server offers when a client starts SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaslOffer {
    /// Only SIMPLE is enabled: NEGOTIATE is answered with SUCCESS at once.
    #[default]
    SimpleOnly,
    /// TOKEN (DIGEST-MD5) and SIMPLE are offered, as an unsecured NameNode does (it always has a
    /// delegation token manager); a client choosing SIMPLE sends INITIATE and gets no answer.
    TokenAndSimple,
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
        let task = spawn_accept_loop(listener, "IPC", move |stream| serve_connection(stream, Arc::clone(&handler), offer));
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
    match preamble[6] {
        AUTH_NONE => {}
        AUTH_SASL => negotiate_simple(&mut reader, &mut writer, offer).await?,
        other => return Err(protocol_error(format!("unknown auth protocol {other}"))),
    }

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
        let call =
            Call { protocol: request.declaring_class_protocol_name, method: request.method_name, user: user.clone(), request: frame };
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

/// With only SIMPLE authentication enabled, Hadoop's server answers the client's NEGOTIATE
/// with SUCCESS right away; the user then comes from the connection context.
async fn negotiate_simple(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    offer: SaslOffer,
) -> std::io::Result<()> {
    let mut frame = wire::read_frame(reader).await?.ok_or_else(|| protocol_error("closed during SASL negotiation"))?;
    let header: RpcRequestHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL header: {e}")))?;
    let sasl: RpcSaslProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL message: {e}")))?;
    if header.call_id != SASL_CALL_ID || sasl.state != SaslState::Negotiate as i32 {
        return Err(protocol_error(format!("expected SASL NEGOTIATE, got call {} state {}", header.call_id, sasl.state)));
    }
    let response_header = RpcResponseHeaderProto {
        call_id: SASL_CALL_ID as u32,
        status: RpcStatusProto::Success as i32,
        server_ipc_version_num: Some(u32::from(IPC_VERSION)),
        ..Default::default()
    };
    if offer == SaslOffer::SimpleOnly {
        let success = RpcSaslProto { state: SaslState::Success as i32, ..Default::default() };
        let buf = wire::frame(&[&response_header, &success]);
        return writer.write_all(&buf).await;
    }
    let auth = |method: &str, mechanism: &str| SaslAuth { method: method.into(), mechanism: mechanism.into(), ..Default::default() };
    let negotiate = RpcSaslProto {
        state: SaslState::Negotiate as i32,
        auths: vec![
            SaslAuth { protocol: Some(String::new()), server_id: Some("default".into()), ..auth("TOKEN", "DIGEST-MD5") },
            auth("SIMPLE", ""),
        ],
        ..Default::default()
    };
    let buf = wire::frame(&[&response_header, &negotiate]);
    writer.write_all(&buf).await?;
    let mut frame = wire::read_frame(reader).await?.ok_or_else(|| protocol_error("closed during SASL negotiation"))?;
    let _: RpcRequestHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL header: {e}")))?;
    let initiate: RpcSaslProto = wire::next_message(&mut frame).map_err(|e| protocol_error(format!("bad SASL message: {e}")))?;
    match initiate.auths.first() {
        Some(a) if initiate.state == SaslState::Initiate as i32 && a.method == "SIMPLE" => Ok(()),
        other => Err(protocol_error(format!(
            "this test server accepts SIMPLE only; the client chose {:?}",
            other.map(|a| format!("{}/{}", a.method, a.mechanism))
        ))),
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
            let server = IpcServer::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(WhoAmI), offer).await.unwrap();
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
}
