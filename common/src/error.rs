use std::path::PathBuf;

/// Errors of the shared vocabulary (addresses, secrets).
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    /// A value given by the user could not be used.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// What kind of value (e.g. "node address").
        what: &'static str,
        /// The offending text.
        value: String,
        /// Why it is wrong and what to do.
        reason: String,
    },
    /// No local interface matched the requested network.
    #[error("no local interface is in network {network}; local addresses are [{available}]; pass a --network that contains one of them, or --ip")]
    NoInterfaceInNetwork {
        /// The requested CIDR.
        network: String,
        /// The addresses this host has.
        available: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The operating system could not tell us something we asked for.
    #[error("{what}: {source}")]
    System {
        /// What we tried.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl CommonError {
    /// Whether the same request may succeed if made again: these are all about what the user
    /// gave or what this host has, which asking again does not change.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Result with [`CommonError`].
pub type CommonResult<T> = Result<T, CommonError>;
