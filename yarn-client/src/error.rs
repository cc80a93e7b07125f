use thiserror::Error;

/// Errors of YARN configuration and calls.
#[derive(Debug, Error)]
pub enum YarnError {
    /// A configuration file could not be read or parsed.
    #[error("Hadoop configuration {file}: {reason}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// No configuration directory was given or found.
    #[error("no Hadoop configuration: set HADOOP_CONF_DIR (or YARN_CONF_DIR) to the directory with yarn-site.xml and core-site.xml")]
    NoConfDir,
    /// A call to the ResourceManager failed.
    #[error(transparent)]
    Ipc(#[from] eddy_hadoop_ipc::IpcError),
    /// A NodeManager or the ResourceManager refused a request.
    #[error("YARN refused {what}: {why}")]
    Refused {
        /// What was asked.
        what: String,
        /// YARN's reason.
        why: String,
    },
    /// The ResourceManager answered without something it must send.
    #[error("the ResourceManager's {method} answer has no {field}")]
    Incomplete {
        /// The method.
        method: String,
        /// The missing field.
        field: String,
    },
    /// YARN has not finished an operation yet and asks to be asked again.
    #[error("YARN has not finished {what} yet")]
    NotYet {
        /// The operation.
        what: String,
    },
}

impl YarnError {
    /// Whether the same request may succeed if made again.
    pub fn is_retryable(&self) -> bool {
        match self {
            YarnError::Ipc(e) => e.is_retryable(),
            YarnError::NotYet { .. } => true,
            YarnError::Config { .. } | YarnError::NoConfDir | YarnError::Refused { .. } | YarnError::Incomplete { .. } => false,
        }
    }
}

/// Result alias of this crate.
pub type YarnResult<T> = Result<T, YarnError>;
