//! Starting a cloud and watching it, shared by both binaries: `eddy-driver` for every
//! launcher, and `eddy-mapper am`, the ApplicationMaster of a disowned YARN cloud, which
//! runs the same protocol inside its container.
//!
//! - [`cloud::drive`]: the driver's side of the callback protocol (gather service, peer
//!   list, observer client), the same for every [`launcher::WorkerLauncher`].
//! - [`launcher`]: the launcher trait, and [`launcher::YarnLauncher`], workers in YARN
//!   containers (the local, SSH and external launchers are `eddy-driver`'s own).
//! - [`yarn_application`]: an Eddy cloud as a YARN application: staging and submission on
//!   the edge node, then the ApplicationMaster, attached (the driver) or disowned (`eddy-mapper am`).
//! - [`args`]: the settings these take, as `eddy-driver` parses them.
//! - [`frames`]: `--import` and `eddy-driver import`: import, progress and summary.

pub mod args;
pub mod cloud;
mod cloud_options;
pub mod frames;
pub mod keytab;
pub mod launcher;
pub mod status;
pub mod yarn_application;

use std::path::PathBuf;

use eddy_common::env::Environment;

pub use cloud::Outcome;
pub use eddy_common::error_chain;

/// Errors of the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A setting is unusable.
    #[error("{reason}")]
    InvalidArgument {
        /// Which setting, what is wrong with it and what to do.
        reason: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we tried.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The cloud did not form.
    #[error("{reason}")]
    NotFormed {
        /// Who was missing or failed, and why.
        reason: String,
    },
    /// A worker died or went silent.
    #[error("{reason}")]
    WorkerLost {
        /// Which worker, how it ended and what happened to the cloud.
        reason: String,
    },
    /// Hosts reached over SSH failed (each named, with why).
    #[error("{reason}")]
    Ssh {
        /// The hosts and what each said.
        reason: String,
    },
    /// YARN refused or failed something.
    #[error("{reason}")]
    Yarn {
        /// What was asked of YARN and what it said.
        reason: String,
    },
    /// An import failed.
    #[error("import failed: {reason}")]
    Import {
        /// The cloud's words.
        reason: String,
    },
    /// A frame operation through this process's observer failed.
    #[error(transparent)]
    Frame(#[from] eddy_frame::FrameError),
    /// The cloud's REST API refused or failed a request.
    #[error("{request}: {reason}")]
    Rest {
        /// The request (`GET URL`).
        request: String,
        /// What the cloud answered.
        reason: String,
    },
    /// Gathering failed.
    #[error(transparent)]
    Gather(#[from] eddy_embedded_config::EmbeddedConfigError),
    /// The node runtime failed.
    #[error(transparent)]
    Node(#[from] eddy_node::NodeError),
    /// The shared vocabulary refused something.
    #[error(transparent)]
    Common(#[from] eddy_common::CommonError),
}

impl DriverError {
    /// Whether the same request may succeed if made again.
    pub fn is_retryable(&self) -> bool {
        match self {
            DriverError::Gather(e) => e.is_retryable(),
            DriverError::Node(e) => e.is_retryable(),
            DriverError::Common(e) => e.is_retryable(),
            DriverError::Frame(e) => e.is_retryable(),
            DriverError::Import { .. }
            | DriverError::InvalidArgument { .. }
            | DriverError::Io { .. }
            | DriverError::NotFormed { .. }
            | DriverError::WorkerLost { .. }
            | DriverError::Ssh { .. }
            | DriverError::Yarn { .. }
            | DriverError::Rest { .. } => false,
        }
    }
}

/// Result with [`DriverError`].
pub type DriverResult<T> = Result<T, DriverError>;

/// `eddy-<user>-<4 hex digits>`: a cloud name when the user gave none.
pub fn default_cloud_name(env: &Environment) -> String {
    let user = env.login_user();
    // Only tells one user's clouds apart; nothing secret depends on it.
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    format!("eddy-{user}-{:02x}{:02x}", bytes[0], bytes[1])
}

/// Finds `eddy-mapper`: the explicit path, else next to this executable, else on `PATH`.
pub fn find_mapper(explicit: Option<PathBuf>, env: &Environment) -> DriverResult<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p);
        }
        return Err(DriverError::InvalidArgument { reason: format!("the mapper binary {} does not exist", p.display()) });
    }
    let name = format!("eddy-mapper{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(paths) = env.get("PATH") {
        for dir in std::env::split_paths(paths) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(DriverError::InvalidArgument {
        reason: format!("cannot find {name} next to eddy-driver or on PATH; build it (cargo build -p eddy-mapper) or pass --mapper PATH"),
    })
}
