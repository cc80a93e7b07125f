//! Plain byte streams on the internal gRPC port, for clients without a gRPC stack (the Spark
//! connector's JVM tasks stream Arrow IPC this way). A connection that opens with
//! [`STREAM_MAGIC`] is not gRPC: after the magic comes TLS (when the cloud's internal channels
//! use it) and then the handler's own protocol. Every other connection goes to the gRPC server
//! unchanged, so a worker keeps one port and peers need to learn nothing new.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The first bytes of a stream connection, sent in the clear before any TLS.
pub const STREAM_MAGIC: &[u8; 8] = b"EDDYARW1";

/// How long a new connection may take to show whether it is a stream or gRPC, and a stream
/// its TLS handshake.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's byte stream, after the magic and TLS.
pub trait StreamIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> StreamIo for T {}

/// Serves stream connections; registered through [`crate::Extensions::stream`].
pub trait StreamHandler: Send + Sync + 'static {
    /// Serves one connection until its protocol ends; errors are the handler's to report.
    fn serve(&self, io: Box<dyn StreamIo>, peer: SocketAddr) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Accepts on `listener`: stream connections go to `handler` (through TLS when `tls` is set),
/// gRPC connections come out of the returned stream for tonic.
pub(crate) fn split_incoming(
    listener: TcpListener,
    handler: Arc<dyn StreamHandler>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> ReceiverStream<std::io::Result<TcpStream>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            // Until tonic stops taking connections (the node stopped): then the port closes.
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: tonic decides, as it did before.
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let (grpc, handler, acceptor) = (tx.clone(), handler.clone(), acceptor.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(CLASSIFY_TIMEOUT, opens_with_magic(&socket)).await {
                    Ok(Ok(true)) => serve_stream(socket, peer, handler, acceptor).await,
                    Ok(Ok(false)) | Err(_) => {
                        let _ = grpc.send(Ok(socket)).await;
                    }
                    Ok(Err(_)) => {} // closed before it said anything
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Whether the peer's first bytes are [`STREAM_MAGIC`], without taking them from the socket.
async fn opens_with_magic(socket: &TcpStream) -> std::io::Result<bool> {
    let mut head = [0u8; STREAM_MAGIC.len()];
    // A TLS ClientHello or the HTTP/2 preface differ from the magic in their first byte; a
    // magic split over segments needs a few looks. Bounded by the caller's timeout too.
    for _ in 0..200 {
        let n = socket.peek(&mut head).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if head[..n] != STREAM_MAGIC[..n] {
            return Ok(false);
        }
        if n == STREAM_MAGIC.len() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(false)
}

async fn serve_stream(
    mut socket: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn StreamHandler>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut magic = [0u8; STREAM_MAGIC.len()];
    if socket.read_exact(&mut magic).await.is_err() {
        return;
    }
    let io: Box<dyn StreamIo> = match acceptor {
        Some(acceptor) => match tokio::time::timeout(CLASSIFY_TIMEOUT, acceptor.accept(socket)).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "refused a stream connection: its TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "refused a stream connection: no TLS handshake within 10 s");
                return;
            }
        },
        None => Box::new(socket),
    };
    handler.serve(io, peer).await;
}
