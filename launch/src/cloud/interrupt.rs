//! What stops the driver from outside the cloud: SIGINT, SIGTERM, or the end of standard
//! input (the process that started the driver is gone).

use eddy_node::signal::Signal;

/// Why the driver stops without being asked through the cloud.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stop {
    /// "interrupted", "terminated", ...
    pub(super) why: &'static str,
    pub(super) signal: Option<Signal>,
}

/// SIGINT/SIGTERM, caught once for the driver's whole life so that no phase can miss it.
#[derive(Clone)]
pub(super) struct Interrupt(tokio::sync::watch::Receiver<Option<Stop>>);

impl Interrupt {
    /// Signals, and with `stdin_eof` also the end of standard input (the process that
    /// started the driver and holds the other end of the pipe has gone, e.g. a notebook).
    pub(super) fn install(stdin_eof: bool) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let tx = std::sync::Arc::new(tx);
        let on_signal = std::sync::Arc::clone(&tx);
        tokio::spawn(async move {
            let signal = eddy_node::signal::stop_signal().await;
            on_signal.send_replace(Some(Stop { why: signal.verb(), signal: Some(signal) }));
        });
        if stdin_eof {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 256];
                while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
                tx.send_replace(Some(Stop { why: "left by the process that started it (standard input closed)", signal: None }));
            });
        }
        Self(rx)
    }

    /// Resolves once a signal arrived (or standard input closed).
    pub(super) async fn wait(&self) -> Stop {
        let mut rx = self.0.clone();
        let why = rx.wait_for(Option::is_some).await.ok().and_then(|w| *w);
        match why {
            Some(w) => w,
            None => std::future::pending().await,
        }
    }
}
