use std::path::PathBuf;
use std::time::Duration;

/// Errors of discovery and of the gather service.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedConfigError {
    /// A flatfile line is not an address.
    #[error("{path}:{line}: {text:?} is not a peer address: {reason}; write one `ip:port`, `host:port` or `[v6]:port` per line")]
    FlatfileSyntax {
        /// The flatfile.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The driver could not be reached at all.
    #[error("driver at {driver} unreachable for {}: {last_error}; check that the driver still runs and that this host can reach it (firewall, --driver-ip)", eddy_common::human_duration(*waited))]
    DriverUnreachable {
        /// The gather address.
        driver: String,
        /// How long we tried.
        waited: Duration,
        /// The last failure.
        last_error: String,
    },
    /// The driver answered with an error.
    #[error("driver at {driver} refused {call}: {message}")]
    DriverRefused {
        /// The gather address.
        driver: String,
        /// The call ("registration", ...).
        call: &'static str,
        /// The driver's message.
        message: String,
    },
    /// Kubernetes discovery did not find enough pods.
    #[error("found {found} of {expected} pods behind {service} after {}: [{addresses}]; check the StatefulSet replicas and `publishNotReadyAddresses: true` on the headless service", eddy_common::human_duration(*waited))]
    NotEnoughPods {
        /// The service DNS name.
        service: String,
        /// How many were found.
        found: usize,
        /// How many were expected.
        expected: usize,
        /// How long we looked.
        waited: Duration,
        /// What was found.
        addresses: String,
    },
    /// A setting is unusable.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The shared vocabulary refused something.
    #[error(transparent)]
    Common(#[from] eddy_common::CommonError),
    /// The gather service failed to form a cloud.
    #[error("{reason}")]
    GatherFailed {
        /// Why, and what to do.
        reason: String,
    },
}

impl EmbeddedConfigError {
    /// Whether the same request may succeed if made again: a driver not reachable yet, a name
    /// not resolvable yet (its record may still be coming).
    pub fn is_retryable(&self) -> bool {
        match self {
            EmbeddedConfigError::DriverUnreachable { .. } | EmbeddedConfigError::Resolve { .. } => true,
            EmbeddedConfigError::Common(e) => e.is_retryable(),
            EmbeddedConfigError::FlatfileSyntax { .. }
            | EmbeddedConfigError::Io { .. }
            | EmbeddedConfigError::DriverRefused { .. }
            | EmbeddedConfigError::NotEnoughPods { .. }
            | EmbeddedConfigError::InvalidArgument { .. }
            | EmbeddedConfigError::GatherFailed { .. } => false,
        }
    }
}

/// Result with [`EmbeddedConfigError`].
pub type EmbeddedConfigResult<T> = Result<T, EmbeddedConfigError>;
