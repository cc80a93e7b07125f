use std::ops::Range;

/// Errors of frames, storage and parsing.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A URL or path could not be used.
    #[error("invalid path {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Nothing matched the URL.
    #[error("{url}: no such file, directory or matching files")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// The store failed.
    #[error("{url}: {source}")]
    Storage {
        /// The object.
        url: String,
        /// The cause.
        source: object_store::Error,
    },
    /// The file system or object store could not be reached.
    #[error("{url}: cannot reach the file system ({reason}); check that the NameNode or storage endpoint is up and that the URL's host and port are right (HDFS's default port is 8020)")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// The store refused who we are (Kerberos): what happened and what to do.
    #[error("{url}: {advice}")]
    Authentication {
        /// The URL.
        url: String,
        /// The failure in the library's words, and the remedy.
        advice: String,
    },
    /// Reading a range failed.
    #[error("{url} bytes {}..{}: {reason}", range.start, range.end)]
    Read {
        /// The object.
        url: String,
        /// The byte range.
        range: Range<u64>,
        /// Why.
        reason: String,
    },
    /// The data could not be parsed.
    #[error("{url}: {reason}")]
    Parse {
        /// The file.
        url: String,
        /// Why, with the line or offset where known.
        reason: String,
    },
    /// The memory budget would be exceeded.
    #[error("out of memory budget on {node}: {what} needs {needed} bytes, {available} of {budget} bytes are free; start the cloud with more --memory or more nodes")]
    OutOfMemory {
        /// Which node.
        node: String,
        /// What was being stored.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
        /// The budget.
        budget: u64,
    },
    /// No frame of that id.
    #[error("no frame {id:?}; GET /3/Frames lists the frames")]
    FrameNotFound {
        /// The id asked for.
        id: String,
    },
    /// A request was malformed.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Chunks of the frame were lost with a worker and cannot be read again.
    #[error("frame {id:?} lost data: {reason}; delete it (DELETE /3/Frames/{id}) and make it again")]
    FrameLost {
        /// The frame.
        id: String,
        /// What was lost, with which worker, and why it cannot be read again.
        reason: String,
    },
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The cloud cannot do work (unhealthy, or a worker stopped during the job).
    #[error("{reason}")]
    Cloud {
        /// Why, and what to do.
        reason: String,
    },
    /// A worker failed its part of a job.
    #[error("worker {node}: {reason}")]
    Worker {
        /// The worker.
        node: String,
        /// The worker's own words.
        reason: String,
    },
    /// The node runtime refused work.
    #[error(transparent)]
    Node(#[from] eddy_node::NodeError),
    /// Something that should not fail did (a bug, or a library's surprise).
    #[error("internal error: {what}: {reason}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

impl FrameError {
    /// Whether the same request may succeed if made again: storage that could not be reached or
    /// read, a node that could not be reached.
    pub fn is_retryable(&self) -> bool {
        match self {
            FrameError::Unreachable { .. } | FrameError::Read { .. } => true,
            FrameError::Node(e) => e.is_retryable(),
            FrameError::InvalidUrl { .. }
            | FrameError::NotFound { .. }
            | FrameError::Storage { .. }
            | FrameError::Authentication { .. }
            | FrameError::Parse { .. }
            | FrameError::OutOfMemory { .. }
            | FrameError::FrameNotFound { .. }
            | FrameError::FrameLost { .. }
            | FrameError::InvalidArgument { .. }
            | FrameError::Arrow(_)
            | FrameError::Cloud { .. }
            | FrameError::Worker { .. }
            | FrameError::Internal { .. } => false,
        }
    }
}

/// Result with [`FrameError`].
pub type FrameResult<T> = Result<T, FrameError>;
