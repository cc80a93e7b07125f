//! The REST port's server: axum's router on hyper, with limits that keep a node answering
//! its cloud when somebody floods the port with garbage, thousands of idle connections or
//! headers sent a byte at a time. (`axum::serve` sets no timer, so a connection that never
//! finishes its headers stays open for ever, and every one holds a file descriptor that the
//! heartbeats and the frame service need too.)
//!
//! The limits, documented in the README:
//! - [`HttpLimits::max_connections`] connections at once (at most 4096, and a quarter of the
//!   process's file descriptor limit); one more is answered `503` and closed at once.
//! - [`HttpLimits::header_read_timeout`]: a request's headers must arrive within 10 s, and a
//!   kept-alive connection that sends nothing for that long is closed.
//! - [`HttpLimits::max_body_bytes`]: request bodies up to 16 MiB (imports name files; data
//!   travels over Arrow Flight, not REST); larger ones get `413`.
//!
//! With the user's certificate (`--tls-cert`/`--tls-key`) every connection is TLS (rustls);
//! the handshake must finish within the header timeout too.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// What one REST port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to receive a request's headers, and the longest a kept-alive connection may idle.
    pub header_read_timeout: Duration,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_connections: connection_cap(), header_read_timeout: Duration::from_secs(10), max_body_bytes: 16 << 20 }
    }
}

/// At most 4096 REST connections, and no more than a quarter of the descriptors this process
/// may open: the rest stay for the internal service, storage and logs.
fn connection_cap() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).unwrap_or(1024);
    usize::try_from(soft / 4).unwrap_or(usize::MAX).clamp(64, 4096)
}

/// What a connection over the limit reads before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 49\r\n\r\ntoo many connections to this node; try again soon\n";

/// Connections refused because the limit was reached, over this process's life.
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Serves `router` on `listener` with `limits` (over TLS with `tls`) until `stop` completes;
/// then open connections finish the request they are in and close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let router = router.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    // HTTP/1.1 only: browsers and clients speak it without TLS, and hyper-util's HTTP/2
    // detection reads the first bytes with no timeout (a silent connection would wait for ever).
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: wait instead of spinning on the error.
                    tracing::warn!(error = %e, "the REST port cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                tracing::warn!(limit = limits.max_connections, "REST connections at their limit: refusing new ones with 503");
            }
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let closing = closing_rx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(stream, &builder, service, closing).await,
                Some(acceptor) => match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_connection(tls_stream, &builder, service, closing).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "a REST client failed the TLS handshake"),
                    Err(_) => tracing::debug!("a REST client did not finish the TLS handshake in time"),
                },
            }
        });
    }
    let _ = closing_tx.send(true);
}

async fn serve_connection<IO>(io: IO, builder: &http1::Builder, service: TowerToHyperService<Router>, mut closing: watch::Receiver<bool>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.wait_for(|closing| *closing) => connection.as_mut().graceful_shutdown(),
    }
    // The request in progress may finish; a connection that does not is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn connections_over_the_limit_get_503_and_silent_ones_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = HttpLimits { max_connections: 3, header_read_timeout: Duration::from_millis(500), max_body_bytes: 1024 };
        let router =
            Router::new().route("/", axum::routing::get(|| async { "ok" }).post(|body: String| async move { body.len().to_string() }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, None, async move {
            let _ = stop_rx.await;
        }));
        // Three silent connections take every place; the fourth is told so and closed.
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let answer = read_all(&mut fourth).await;
        assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("too many connections"), "{answer}");
        // Silence past the header timeout closes them, which frees the places.
        for s in &mut silent {
            let _ = read_all(s).await;
        }
        let mut request = TcpStream::connect(addr).await.unwrap();
        request.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let answer = read_all(&mut request).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
        // Bodies over the limit are refused.
        let mut big = TcpStream::connect(addr).await.unwrap();
        let body = "x".repeat(2048);
        let head = format!("POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n", body.len());
        big.write_all(head.as_bytes()).await.unwrap();
        let _ = big.write_all(body.as_bytes()).await;
        let answer = read_all(&mut big).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_rest() {
        let cap = HttpLimits::default().max_connections;
        assert!((64..=4096).contains(&cap), "{cap}");
    }
}
