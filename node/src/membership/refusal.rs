//! Why a node refuses another's heartbeat, as the refused node is told it.

use eddy_common::NodeAddr;

/// The gRPC metadata key of a heartbeat refusal's [`RefusalKind`].
pub const REFUSAL_METADATA_KEY: &str = "x-eddy-refusal";

/// What kind of refusal a refused node received: carried beside the message (gRPC metadata
/// [`REFUSAL_METADATA_KEY`]), so that nodes act on the kind, never on the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Another cloud's node.
    WrongCloud,
    /// The cloud is locked and we are not a member.
    Locked,
    /// The cloud is locked and we are a new process at a lost member's address.
    Replaced,
    /// The cloud removed us (we were silent past the heartbeat timeout); we must stop.
    Removed,
    /// Our heartbeat was malformed.
    Malformed,
    /// We speak another protocol version.
    Incompatible,
    /// The peer's TLS certificate is not of our CA (another secret).
    UntrustedPeer,
    /// The peer refused our credentials (another secret or cloud name), or said no more.
    Unauthenticated,
}

impl RefusalKind {
    /// Its name on the wire.
    pub fn code(self) -> &'static str {
        match self {
            RefusalKind::WrongCloud => "wrong-cloud",
            RefusalKind::Locked => "locked",
            RefusalKind::Replaced => "replaced",
            RefusalKind::Removed => "removed",
            RefusalKind::Malformed => "malformed",
            RefusalKind::Incompatible => "incompatible",
            RefusalKind::UntrustedPeer => "untrusted-peer",
            RefusalKind::Unauthenticated => "unauthenticated",
        }
    }

    /// The kind named `code`, if known.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::WrongCloud,
            Self::Locked,
            Self::Replaced,
            Self::Removed,
            Self::Malformed,
            Self::Incompatible,
            Self::UntrustedPeer,
            Self::Unauthenticated,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// Whether the cloud will never take us: locked against newcomers, we replaced a member, or
    /// the cloud removed us.
    pub fn is_locked_out(self) -> bool {
        matches!(self, RefusalKind::Locked | RefusalKind::Replaced | RefusalKind::Removed)
    }
}

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The sender belongs to another cloud.
    WrongCloud {
        /// Its cloud name.
        theirs: String,
    },
    /// The cloud is locked and the sender is not a member.
    Locked {
        /// Why the cloud locked.
        reason: String,
    },
    /// The sender is a new process at the address of a member of a cloud that holds data:
    /// the member it replaced is lost, and the newcomer cannot take its place.
    Replaced,
    /// The sender was a member, and the cloud removed it (why): it was silent past the
    /// heartbeat timeout, so its data was re-read elsewhere or reported lost.
    Removed {
        /// Why it was removed.
        reason: String,
    },
    /// The heartbeat is malformed.
    Malformed(String),
    /// The sender speaks another protocol version.
    Incompatible {
        /// Its protocol version (0: a node from before versions were sent).
        protocol: u32,
        /// Its Eddy release.
        release: String,
    },
}

impl Refusal {
    /// The message sent back to the refused node.
    pub fn message(&self, me: NodeAddr, cloud: &str) -> String {
        match self {
            Refusal::WrongCloud { theirs } => format!("{me} belongs to cloud {cloud:?}, not {theirs:?}"),
            Refusal::Locked { reason } => {
                format!("join refused: cloud {cloud:?} is locked ({reason}); start a new cloud, or restart this one to grow it")
            }
            Refusal::Replaced => format!(
                "join refused: cloud {cloud:?} is locked and had a member at this address; a new process cannot take its place (the old one's data is gone); start a new cloud"
            ),
            Refusal::Removed { reason } => format!(
                "cloud {cloud:?} removed this node ({reason}); its chunks were re-read on other workers or reported lost, so this process stops"
            ),
            Refusal::Malformed(m) => format!("malformed heartbeat: {m}"),
            Refusal::Incompatible { protocol, release } => format!(
                "{me} speaks protocol version {} (Eddy {}), the sender {protocol} (Eddy {release}); run the same Eddy release on every node",
                eddy_common::PROTOCOL_VERSION,
                eddy_common::VERSION
            ),
        }
    }

    /// Its kind, for the refused node to act on.
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::WrongCloud { .. } => RefusalKind::WrongCloud,
            Refusal::Locked { .. } => RefusalKind::Locked,
            Refusal::Replaced => RefusalKind::Replaced,
            Refusal::Removed { .. } => RefusalKind::Removed,
            Refusal::Malformed(_) => RefusalKind::Malformed,
            Refusal::Incompatible { .. } => RefusalKind::Incompatible,
        }
    }
}
