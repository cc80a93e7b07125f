//! A small Hadoop IPC client: SIMPLE authentication (with or without the SASL exchange), TOKEN
//! authentication (DIGEST-MD5) or KERBEROS authentication (GSSAPI, through MIT's library),
//! concurrent calls on one connection, a timeout on every call. Every quality of protection
//! (`hadoop.rpc.protection`) is spoken: with integrity or privacy the connection's bytes travel
//! sealed in SASL `WRAP` messages ([`crate::protection`]).
//!
//! It covers what Eddy calls itself (block locations for split placement, and the YARN
//! protocols); file data goes through hdfs-native.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::gssapi::{self, GssError, Login};
use crate::protection::{self, Opener, Sealer};
use crate::proto::common::{
    rpc_request_header_proto::OperationProto, rpc_response_header_proto::RpcStatusProto, rpc_sasl_proto::SaslAuth,
    rpc_sasl_proto::SaslState, IpcConnectionContextProto, RequestHeaderProto, RpcKindProto, RpcRequestHeaderProto, RpcResponseHeaderProto,
    RpcSaslProto, TokenProto, UserInformationProto,
};
use crate::sasl::{DigestClient, DEFAULT_REALM};
use crate::wire::{self, AUTH_SASL, CONNECTION_CONTEXT_CALL_ID, SASL_CALL_ID};
use crate::{IpcError, IpcResult};

type Pending = Arc<Mutex<Option<HashMap<i32, oneshot::Sender<IpcResult<Bytes>>>>>>;

/// One connection to a Hadoop IPC server, for one protocol and user.
#[derive(Debug)]
pub struct IpcClient {
    addr: String,
    protocol: String,
    client_id: Vec<u8>,
    next_call: AtomicI32,
    // Whole frames go to a writer task, so a caller that gives up mid-call never leaves half
    // a frame on the shared connection.
    frames: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    timeout: Duration,
    principal_opt: Option<String>,
}

/// How a connection proves who it is.
#[derive(Debug, Clone, Copy)]
enum Proof<'a> {
    Simple,
    Token(&'a TokenProto),
    Kerberos(&'a Login),
}

impl Drop for IpcClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The RPC header of one protobuf call on this connection.
fn request_header(client_id: &[u8], call_id: i32, retry_count: i32) -> RpcRequestHeaderProto {
    RpcRequestHeaderProto {
        rpc_kind: Some(RpcKindProto::RpcProtocolBuffer as i32),
        rpc_op: Some(OperationProto::RpcFinalPacket as i32),
        call_id,
        client_id: client_id.to_vec(),
        retry_count: Some(retry_count),
        ..Default::default()
    }
}

impl IpcClient {
    /// Connects to `addr` (`host:port`) for `protocol` (its Java interface name) as `user`,
    /// with SIMPLE authentication.
    pub async fn connect(addr: &str, protocol: &str, user: &str, timeout: Duration) -> IpcResult<Self> {
        Self::connect_as(addr, protocol, user, Proof::Simple, timeout).await
    }

    /// Connects with KERBEROS authentication (SASL GSSAPI) with the credentials of `login`;
    /// the server then knows us as that principal ([`IpcClient::principal`]).
    pub async fn connect_with_kerberos(addr: &str, protocol: &str, login: &Login, timeout: Duration) -> IpcResult<Self> {
        Self::connect_as(addr, protocol, "", Proof::Kerberos(login), timeout).await
    }

    /// Connects with TOKEN authentication: proves to the server that we hold `token` (an
    /// AMRMToken for the ResourceManager's scheduler, an NMToken for a NodeManager).
    pub async fn connect_with_token(addr: &str, protocol: &str, user: &str, token: &TokenProto, timeout: Duration) -> IpcResult<Self> {
        Self::connect_as(addr, protocol, user, Proof::Token(token), timeout).await
    }

    /// Connects in Hadoop's three phases: the preamble, SASL, the connection context; then
    /// starts the tasks that carry calls and answers.
    async fn connect_as(addr: &str, protocol: &str, user: &str, proof: Proof<'_>, timeout: Duration) -> IpcResult<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| IpcError::Timeout { addr: addr.into(), method: "connect".into(), secs: timeout.as_secs() })?
            .map_err(|source| IpcError::Io { addr: addr.to_string(), source })?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let mut setup = Setup { addr, client_id: new_client_id(), reader, writer, timeout };
        setup.send(&[&wire::preamble(AUTH_SASL)[..]]).await?;
        let (principal_opt, layer) = match proof {
            Proof::Simple => {
                setup.authenticate_simple().await?;
                (None, None)
            }
            Proof::Token(token) => (None, setup.authenticate_with_token(token).await?),
            Proof::Kerberos(login) => {
                let (principal, layer) = setup.authenticate_with_kerberos(login).await?;
                (Some(principal), layer)
            }
        };
        // With a token or a ticket the connection itself says who the user is, so Hadoop's
        // client names none (another user would be a proxy user, which needs the server's leave).
        let user_info = match proof {
            Proof::Simple => Some(UserInformationProto { effective_user: Some(user.to_string()), real_user: None }),
            Proof::Token(_) | Proof::Kerberos(_) => None,
        };
        let context = IpcConnectionContextProto { user_info, protocol: Some(protocol.to_string()) };
        let context = wire::frame(&[&request_header(&setup.client_id, CONNECTION_CONTEXT_CALL_ID, -1), &context]);

        let Setup { client_id, reader, writer, .. } = setup;
        let (sealer, opener) = layer.unzip();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader = spawn_reader(reader, Arc::clone(&pending), addr.to_string(), opener);
        let (frames, writer) = spawn_writer(writer, sealer, addr.to_string(), Arc::clone(&pending));
        // The context is the first frame through the writer, so a security layer seals it too.
        if frames.send(context).await.is_err() {
            reader.abort();
            writer.abort();
            return Err(IpcError::Protocol {
                addr: addr.to_string(),
                message: "the connection closed before the connection context was sent".into(),
            });
        }
        Ok(Self {
            addr: addr.to_string(),
            protocol: protocol.to_string(),
            client_id,
            next_call: AtomicI32::new(0),
            frames,
            pending,
            reader,
            writer,
            timeout,
            principal_opt,
        })
    }

    /// The Kerberos principal the server knows this connection as (`alice@EXAMPLE.COM`);
    /// `None` for SIMPLE and TOKEN connections.
    pub fn principal(&self) -> Option<&str> {
        self.principal_opt.as_deref()
    }

    /// Where this client is connected.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with `request` and decodes the response as `R`.
    pub async fn call<Q: Message, R: Message + Default>(&self, method: &str, request: &Q) -> IpcResult<R> {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let header = request_header(&self.client_id, call_id, 0);
        let request_header = RequestHeaderProto {
            method_name: method.to_string(),
            declaring_class_protocol_name: self.protocol.clone(),
            client_protocol_version: 1,
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().map_err(|_| self.closed(method))?;
            pending.as_mut().ok_or_else(|| self.closed(method))?.insert(call_id, tx);
        }
        let buf = wire::frame(&[&header, &request_header, request]);
        if self.frames.send(buf).await.is_err() {
            if let Ok(mut p) = self.pending.lock() {
                p.as_mut().map(|p| p.remove(&call_id));
            }
            return Err(self.closed(method));
        }
        let answer = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(self.closed(method)),
            Err(_) => {
                if let Ok(mut p) = self.pending.lock() {
                    p.as_mut().map(|p| p.remove(&call_id));
                }
                Err(IpcError::Timeout { addr: self.addr.clone(), method: method.into(), secs: self.timeout.as_secs() })
            }
        };
        let mut frame = answer.map_err(|e| match e {
            IpcError::Remote { addr, class, message, .. } => IpcError::Remote { addr, method: method.into(), class, message },
            other => other,
        })?;
        wire::next_message(&mut frame)
            .map_err(|e| IpcError::Protocol { addr: self.addr.clone(), message: format!("cannot decode the {method} response: {e}") })
    }

    fn closed(&self, method: &str) -> IpcError {
        IpcError::Protocol { addr: self.addr.clone(), message: format!("the connection closed before {method} was answered") }
    }
}

/// A client id only has to be unique per client; time and pid are enough for that.
fn new_client_id() -> Vec<u8> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut id = nanos.to_le_bytes().to_vec();
    id[12..16].copy_from_slice(&std::process::id().to_le_bytes());
    id
}

/// A connection being set up: the preamble and SASL, before calls may flow.
struct Setup<'a> {
    addr: &'a str,
    client_id: Vec<u8>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

impl Setup<'_> {
    async fn send(&mut self, parts: &[&[u8]]) -> IpcResult<()> {
        for part in parts {
            self.writer.write_all(part).await.map_err(|source| IpcError::Io { addr: self.addr.to_string(), source })?;
        }
        Ok(())
    }

    /// Set-up messages carry retry count -1, as Hadoop's client sends them.
    async fn send_message<M: Message>(&mut self, call_id: i32, message: &M) -> IpcResult<()> {
        let buf = wire::frame(&[&request_header(&self.client_id, call_id, -1), message]);
        self.send(&[&buf]).await
    }

    fn protocol_error(&self, message: String) -> IpcError {
        IpcError::Protocol { addr: self.addr.to_string(), message }
    }

    /// Asks for the methods on offer; one answer: SUCCESS (SIMPLE only), or NEGOTIATE with them.
    async fn negotiate(&mut self) -> IpcResult<RpcSaslProto> {
        let negotiate = RpcSaslProto { state: SaslState::Negotiate as i32, ..Default::default() };
        self.send_message(SASL_CALL_ID, &negotiate).await?;
        read_sasl_answer(&mut self.reader, self.addr, self.timeout).await
    }

    async fn authenticate_simple(&mut self) -> IpcResult<()> {
        let sasl = self.negotiate().await?;
        match SaslState::try_from(sasl.state) {
            // SIMPLE only: the server is done.
            Ok(SaslState::Success) => Ok(()),
            Ok(SaslState::Negotiate) => {
                let Some(simple) = sasl.auths.iter().find(|a| a.method == "SIMPLE") else {
                    if sasl.auths.iter().any(|a| a.method == "KERBEROS") {
                        return Err(IpcError::KerberosRequired { addr: self.addr.to_string(), offered: offered(&sasl.auths) });
                    }
                    return Err(self.protocol_error(format!(
                        "the server requires {} authentication and no token was given for it",
                        offered(&sasl.auths)
                    )));
                };
                let initiate = RpcSaslProto { state: SaslState::Initiate as i32, auths: vec![simple.clone()], ..Default::default() };
                // Hadoop's server switches to SIMPLE on this INITIATE without answering.
                self.send_message(SASL_CALL_ID, &initiate).await
            }
            _ => Err(self.protocol_error(format!("unexpected SASL state {} at negotiation", sasl.state))),
        }
    }

    /// TOKEN authentication: SASL DIGEST-MD5 with the token's identifier and password; the
    /// security layer agreed on, if any.
    async fn authenticate_with_token(&mut self, token: &TokenProto) -> IpcResult<Option<(Sealer, Opener)>> {
        let sasl = self.negotiate().await?;
        match SaslState::try_from(sasl.state) {
            Ok(SaslState::Success) => {
                return Err(self.protocol_error(
                    "the server accepted the connection without asking for the token (it runs SIMPLE authentication only?)".into(),
                ))
            }
            Ok(SaslState::Negotiate) => {}
            _ => return Err(self.protocol_error(format!("unexpected SASL state {} at negotiation", sasl.state))),
        }
        let Some(auth) = sasl.auths.iter().find(|a| a.method == "TOKEN" && a.mechanism == "DIGEST-MD5") else {
            return Err(self.protocol_error(format!("the server does not offer TOKEN authentication (it offers {})", offered(&sasl.auths))));
        };
        let mut digest = DigestClient::new(
            &token.identifier,
            &token.password,
            auth.protocol.as_deref().unwrap_or(""),
            auth.server_id.as_deref().unwrap_or(DEFAULT_REALM),
        );
        let challenge =
            auth.challenge.clone().ok_or_else(|| self.protocol_error("the TOKEN offer carries no DIGEST-MD5 challenge".into()))?;
        let response = digest.respond(&challenge).map_err(|m| self.protocol_error(m))?;
        let chosen = SaslAuth { challenge: None, ..auth.clone() };
        let initiate = RpcSaslProto { state: SaslState::Initiate as i32, auths: vec![chosen], token: Some(response), ..Default::default() };
        self.send_message(SASL_CALL_ID, &initiate).await?;
        let done = read_sasl_answer(&mut self.reader, self.addr, self.timeout).await?;
        if done.state != SaslState::Success as i32 {
            return Err(self.protocol_error(format!("unexpected SASL state {} after the DIGEST-MD5 response", done.state)));
        }
        digest.verify_server(done.token.as_deref().unwrap_or_default()).map_err(|m| self.protocol_error(m))?;
        Ok(digest.layer())
    }
}

impl Setup<'_> {
    /// KERBEROS authentication: SASL GSSAPI (RFC 4752) towards the principal the server names
    /// in its offer (`protocol/serverId`, e.g. `nn/namenode-host`). Returns our principal and
    /// the security layer agreed on, if any.
    async fn authenticate_with_kerberos(&mut self, login: &Login) -> IpcResult<(String, Option<(Sealer, Opener)>)> {
        let sasl = self.negotiate().await?;
        match SaslState::try_from(sasl.state) {
            Ok(SaslState::Success) => {
                return Err(
                    self.protocol_error("the server accepted the connection without Kerberos (it runs SIMPLE authentication only?)".into())
                )
            }
            Ok(SaslState::Negotiate) => {}
            _ => return Err(self.protocol_error(format!("unexpected SASL state {} at negotiation", sasl.state))),
        }
        let Some(auth) = sasl.auths.iter().find(|a| a.method == "KERBEROS" && a.mechanism == "GSSAPI") else {
            return Err(self.protocol_error(format!("the server does not offer Kerberos (it offers {})", offered(&sasl.auths))));
        };
        let (protocol, host) = (auth.protocol.clone().unwrap_or_default(), auth.server_id.clone().unwrap_or_default());
        let service = format!("{protocol}@{host}");
        let kerberos = |e: GssError| {
            let no_ticket = matches!(e, GssError::NoCredentials { .. });
            IpcError::Kerberos { addr: self.addr.to_string(), service: service.clone(), reason: e.to_string(), no_ticket }
        };
        let mut context = gssapi::Context::new(&protocol, &host, login).map_err(kerberos)?;
        let first = context.step(None).map_err(kerberos)?;
        let chosen = SaslAuth { challenge: None, ..auth.clone() };
        let initiate = RpcSaslProto { state: SaslState::Initiate as i32, auths: vec![chosen], token: Some(first), ..Default::default() };
        self.send_message(SASL_CALL_ID, &initiate).await?;
        let mut chosen = None;
        // Kerberos takes one or two round trips, then the security layer's one.
        for _ in 0..8 {
            let answer = read_sasl_answer(&mut self.reader, self.addr, self.timeout).await?;
            let token = answer.token.unwrap_or_default();
            match SaslState::try_from(answer.state) {
                Ok(SaslState::Challenge) => {
                    let reply = if context.is_established() {
                        let (reply, layer) = self.security_layer(&mut context, &token, &kerberos)?;
                        chosen = layer;
                        reply
                    } else {
                        context.step(Some(&token)).map_err(kerberos)?
                    };
                    let response = RpcSaslProto { state: SaslState::Response as i32, token: Some(reply), ..Default::default() };
                    self.send_message(SASL_CALL_ID, &response).await?;
                }
                Ok(SaslState::Success) => {
                    if !context.is_established() {
                        context.step(Some(&token)).map_err(kerberos)?;
                    }
                    let principal = context.principal().map_err(kerberos)?;
                    let layer = chosen.map(|c: GssLayer| protection::gss_layer(context, c.encrypt, c.peer_max));
                    return Ok((principal, layer));
                }
                _ => return Err(self.protocol_error(format!("unexpected SASL state {} during Kerberos authentication", answer.state))),
            }
        }
        Err(self.protocol_error("the Kerberos exchange did not end after 8 messages".into()))
    }

    /// The server's offer of security layers (RFC 4752 §3.1: a bit mask, then the largest
    /// message it takes) answered with the strongest one offered. Returns the reply and, for
    /// integrity or privacy, whether to encrypt and the server's largest message.
    fn security_layer(
        &self,
        context: &mut gssapi::Context,
        token: &[u8],
        kerberos: &impl Fn(GssError) -> IpcError,
    ) -> IpcResult<(Vec<u8>, Option<GssLayer>)> {
        const NO_LAYER: u8 = 1;
        const INTEGRITY: u8 = 2;
        const PRIVACY: u8 = 4;
        let offer = context.unwrap(token).map_err(kerberos)?;
        let [mask, m0, m1, m2] = offer[..] else {
            return Err(self.protocol_error(format!("the server's security layer offer has {} bytes, not 4", offer.len())));
        };
        let peer_max = usize::from(m0) << 16 | usize::from(m1) << 8 | usize::from(m2);
        // Our own largest message: as large as the field holds, since Hadoop's server wraps
        // whole responses.
        let (reply, layer) = if mask & PRIVACY != 0 {
            ([PRIVACY, 0xff, 0xff, 0xff], Some(GssLayer { encrypt: true, peer_max }))
        } else if mask & INTEGRITY != 0 {
            ([INTEGRITY, 0xff, 0xff, 0xff], Some(GssLayer { encrypt: false, peer_max }))
        } else if mask & NO_LAYER != 0 {
            ([NO_LAYER, 0, 0, 0], None)
        } else {
            return Err(self.protocol_error(format!("the server offers no security layer this client knows (mask {mask:#04x})")));
        };
        Ok((context.wrap(&reply, false).map_err(kerberos)?, layer))
    }
}

/// The GSSAPI security layer chosen: whether it encrypts, the server's largest message.
#[derive(Debug, Clone, Copy)]
struct GssLayer {
    encrypt: bool,
    peer_max: usize,
}

/// Reads answers and hands each to the call waiting for it; when the connection ends, every
/// waiting call fails with the reason. With a security layer the answers arrive sealed in SASL
/// `WRAP` messages whose opened bytes are a stream of ordinary frames.
fn spawn_reader(mut reader: OwnedReadHalf, pending: Pending, addr: String, mut opener: Option<Opener>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut opened = BytesMut::new();
        let end = loop {
            let frame = match wire::read_frame(&mut reader).await {
                Ok(Some(f)) => f,
                Ok(None) => break "the server closed the connection".to_string(),
                Err(e) => break e.to_string(),
            };
            let Some(opener) = opener.as_mut() else {
                match dispatch(frame, &pending, &addr) {
                    Ok(()) => continue,
                    Err(e) => break e,
                }
            };
            let mut peek = frame.clone();
            let Ok(header) = wire::next_message::<RpcResponseHeaderProto>(&mut peek) else {
                break "undecodable response header".to_string();
            };
            // Hadoop's server seals every answer on a protected connection, and its client
            // refuses any other: an unsealed one could have been put there by anyone on the way.
            if header.call_id as i32 != SASL_CALL_ID || header.status != RpcStatusProto::Success as i32 {
                break match (header.exception_class_name, header.error_msg) {
                    (Some(class), message) => {
                        format!("the server ended the protected connection: {class}: {}", remote_message(Some(&class), message.as_deref()))
                    }
                    _ => "the server sent an unsealed answer on a protected connection".to_string(),
                };
            }
            match wire::next_message::<RpcSaslProto>(&mut peek) {
                Ok(sasl) if sasl.state == SaslState::Wrap as i32 => match opener.open(sasl.token.as_deref().unwrap_or_default()) {
                    Ok(bytes) => opened.extend_from_slice(&bytes),
                    Err(e) => break format!("the server's message failed the security layer: {e}"),
                },
                _ => break "the server sent a SASL message other than WRAP on a protected connection".to_string(),
            }
            match dispatch_opened(&mut opened, &pending, &addr) {
                Ok(()) => {}
                Err(e) => break e,
            }
        };
        fail_all(&pending, &addr, &end);
    })
}

/// Fails every waiting call with `message` and takes no more: the connection is over.
fn fail_all(pending: &Pending, addr: &str, message: &str) {
    if let Some(map) = pending.lock().ok().and_then(|mut p| p.take()) {
        for (_, s) in map {
            let _ = s.send(Err(IpcError::Protocol { addr: addr.to_string(), message: message.to_string() }));
        }
    }
}

/// Dispatches every whole frame in the opened stream, leaving a partial one for later.
fn dispatch_opened(opened: &mut BytesMut, pending: &Pending, addr: &str) -> Result<(), String> {
    while opened.len() >= 4 {
        let len = u32::from_be_bytes([opened[0], opened[1], opened[2], opened[3]]) as usize;
        if len > wire::MAX_FRAME {
            return Err(format!("frame of {len} bytes is larger than the {}-byte limit", wire::MAX_FRAME));
        }
        if opened.len() < 4 + len {
            break;
        }
        opened.advance(4);
        dispatch(opened.split_to(len).freeze(), pending, addr)?;
    }
    Ok(())
}

/// Hands one answer frame to the call waiting for it.
fn dispatch(mut frame: Bytes, pending: &Pending, addr: &str) -> Result<(), String> {
    let header = wire::next_message::<RpcResponseHeaderProto>(&mut frame).map_err(|_| "undecodable response header".to_string())?;
    let call_id = header.call_id as i32;
    let sender = pending.lock().ok().and_then(|mut p| p.as_mut().and_then(|p| p.remove(&call_id)));
    let Some(sender) = sender else { return Ok(()) };
    let result = if header.status == RpcStatusProto::Success as i32 {
        Ok(frame)
    } else {
        Err(IpcError::Remote {
            addr: addr.to_string(),
            method: String::new(),
            message: remote_message(header.exception_class_name.as_deref(), header.error_msg.as_deref()),
            class: header.exception_class_name.unwrap_or_default(),
        })
    };
    let _ = sender.send(result);
    Ok(())
}

/// Writes whole frames in order, so a caller that gives up mid-call never leaves half a frame.
/// With a security layer the frames are sealed, in pieces the server takes, into SASL `WRAP`
/// messages; a failure to seal fails every waiting call with the reason and closes the
/// connection.
fn spawn_writer(
    mut writer: OwnedWriteHalf,
    mut sealer: Option<Sealer>,
    addr: String,
    pending: Pending,
) -> (mpsc::Sender<Vec<u8>>, JoinHandle<()>) {
    let (frames, mut outgoing) = mpsc::channel::<Vec<u8>>(64);
    let task = tokio::spawn(async move {
        while let Some(buf) = outgoing.recv().await {
            let buf = match sealer.as_mut() {
                None => buf,
                Some(sealer) => match sealed(sealer, &buf) {
                    Ok(sealed) => sealed,
                    Err(e) => {
                        let message = format!("cannot seal a call for the protected connection: {e}");
                        tracing::warn!(addr, "{message}");
                        fail_all(&pending, &addr, &message);
                        break;
                    }
                },
            };
            if writer.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    (frames, task)
}

/// `plain` sealed into as many SASL `WRAP` frames as the peer's message size asks for; their
/// header is Hadoop's client's (`SaslRpcClient.saslHeader`: the SASL call id, no client id).
fn sealed(sealer: &mut Sealer, plain: &[u8]) -> Result<Vec<u8>, String> {
    let header = request_header(&[], SASL_CALL_ID, -1);
    let mut out = Vec::with_capacity(plain.len() + 64);
    for piece in plain.chunks(sealer.max_plain()) {
        let message = RpcSaslProto { state: SaslState::Wrap as i32, token: Some(sealer.seal(piece)?), ..Default::default() };
        out.extend_from_slice(&wire::frame(&[&header, &message]));
    }
    Ok(out)
}

fn offered(auths: &[SaslAuth]) -> String {
    auths.iter().map(|a| format!("{}/{}", a.method, a.mechanism)).collect::<Vec<_>>().join(", ")
}

/// Reads the server's answer in the SASL exchange; an error answer (a refused token, a method
/// that is not enabled) becomes [`IpcError::Remote`] with the server's words.
async fn read_sasl_answer(reader: &mut OwnedReadHalf, addr: &str, timeout: Duration) -> IpcResult<RpcSaslProto> {
    let protocol_err = |message: String| IpcError::Protocol { addr: addr.to_string(), message };
    let mut frame = tokio::time::timeout(timeout, wire::read_frame(reader))
        .await
        .map_err(|_| IpcError::Timeout { addr: addr.into(), method: "SASL negotiation".into(), secs: timeout.as_secs() })?
        .map_err(|source| IpcError::Io { addr: addr.to_string(), source })?
        .ok_or_else(|| protocol_err("closed during SASL negotiation".into()))?;
    let response: RpcResponseHeaderProto = wire::next_message(&mut frame).map_err(|e| protocol_err(e.to_string()))?;
    if response.status != RpcStatusProto::Success as i32 {
        return Err(IpcError::Remote {
            addr: addr.into(),
            method: "SASL negotiation".into(),
            message: remote_message(response.exception_class_name.as_deref(), response.error_msg.as_deref()),
            class: response.exception_class_name.unwrap_or_default(),
        });
    }
    wire::next_message(&mut frame).map_err(|e| protocol_err(e.to_string()))
}

/// The message of a server's exception without its Java stack trace. Apache's servers send
/// `StringUtils.stringifyException` for unexpected exceptions (YARN's ResourceManager does for
/// `InvalidResourceRequestException`): the class again, the message, then `\tat ...` frames
/// that mean nothing to a user. The whole text goes to the debug log.
fn remote_message(class: Option<&str>, message: Option<&str>) -> String {
    let full = message.unwrap_or_default();
    if full.contains("\n\tat ") {
        tracing::debug!(class, "remote exception: {full}");
    }
    let text: Vec<&str> = full.lines().take_while(|l| !l.trim_start().starts_with("at ")).collect();
    let text = text.join("\n");
    let text = text.trim();
    match class {
        Some(c) if !c.is_empty() => text.strip_prefix(c).and_then(|t| t.strip_prefix(": ")).unwrap_or(text).to_string(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_exceptions_lose_their_java_stack_trace() {
        let class = "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException";
        let sent = format!("{class}: Invalid resource request! Requested resource=<memory:8192, vCores:1>\n\tat org.apache.hadoop.yarn.server.resourcemanager.scheduler.SchedulerUtils.throwInvalidResourceException(SchedulerUtils.java:528)\n\tat org.apache.hadoop.ipc.Server$Handler.run(Server.java:3198)\n");
        assert_eq!(remote_message(Some(class), Some(&sent)), "Invalid resource request! Requested resource=<memory:8192, vCores:1>");
        assert_eq!(remote_message(Some("java.io.FileNotFoundException"), Some("File /x does not exist")), "File /x does not exist");
        assert_eq!(remote_message(None, None), "");
    }
}
