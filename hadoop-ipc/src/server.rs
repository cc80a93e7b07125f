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
    rpc_sasl_proto::SaslState,
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
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Connections live in this set so that stopping the server drops them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            let handler = Arc::clone(&handler);
                            connections.spawn(async move {
                                if let Err(e) = serve_connection(stream, handler).await {
                                    debug!(%peer, "IPC connection ended: {e}");
                                }
                            });
                        }
                        Err(e) => {
                            warn!("IPC accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
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

fn protocol_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

async fn serve_connection(stream: TcpStream, handler: Arc<dyn RpcHandler>) -> std::io::Result<()> {
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
        AUTH_SASL => negotiate_simple(&mut reader, &mut writer).await?,
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
    let success = RpcSaslProto { state: SaslState::Success as i32, ..Default::default() };
    let buf = wire::frame(&[&response_header, &success]);
    writer.write_all(&buf).await
}
