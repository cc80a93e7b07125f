use thiserror::Error;

/// Errors of Hadoop IPC connections and calls.
#[derive(Debug, Error)]
pub enum IpcError {
    /// The TCP connection failed or broke.
    #[error("Hadoop IPC connection to {addr}: {source}")]
    Io {
        /// The peer.
        addr: String,
        /// What the socket said.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent bytes that are not Hadoop IPC (or a version we do not speak).
    #[error("Hadoop IPC protocol error with {addr}: {message}")]
    Protocol {
        /// The peer.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// The server answered the call with an exception.
    #[error("{method} failed on {addr}: {class}: {message}")]
    Remote {
        /// The peer.
        addr: String,
        /// The method called.
        method: String,
        /// The Java exception class the server named (e.g. `java.io.FileNotFoundException`).
        class: String,
        /// The server's message.
        message: String,
    },
    /// The server requires Kerberos and this connection offered SIMPLE.
    #[error("the server at {addr} requires Kerberos ({offered} offered): point HADOOP_CONF_DIR at the cluster's configuration, whose core-site.xml sets hadoop.security.authentication=kerberos")]
    KerberosRequired {
        /// The peer.
        addr: String,
        /// The methods the server offered.
        offered: String,
    },
    /// Kerberos could not authenticate us to the server (no ticket, an expired one, a server
    /// principal the KDC does not know, the GSS-API library missing).
    #[error("Kerberos authentication to {addr} ({service}) failed: {reason}")]
    Kerberos {
        /// The peer.
        addr: String,
        /// The server's principal, as `service@host`.
        service: String,
        /// The library's words.
        reason: String,
        /// No usable ticket: the remedy is `kinit` or a keytab.
        no_ticket: bool,
    },
    /// No answer within the call timeout.
    #[error("{method} on {addr} got no answer within {secs} s; is the server up and reachable?")]
    Timeout {
        /// The peer.
        addr: String,
        /// The method called.
        method: String,
        /// The timeout.
        secs: u64,
    },
}

impl IpcError {
    /// Whether the same call may succeed if made again: after a broken connection (on a new
    /// one), or when the server says so itself (Hadoop's `RetriableException`, a standby's
    /// `StandbyException`). A call that timed out already waited as long as a caller would.
    pub fn is_retryable(&self) -> bool {
        match self {
            IpcError::Io { .. } => true,
            IpcError::Remote { class, .. } => class.ends_with(".RetriableException") || class.ends_with(".StandbyException"),
            IpcError::Protocol { .. } | IpcError::Timeout { .. } | IpcError::Kerberos { .. } | IpcError::KerberosRequired { .. } => false,
        }
    }
}

/// Result alias of this crate.
pub type IpcResult<T> = Result<T, IpcError>;
