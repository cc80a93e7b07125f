//! What membership reports: the cloud as one node sees it.

use eddy_common::NodeAddr;
use eddy_proto::v1::NodeStats;

/// One member as shown in a [`CloudView`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Its address.
    pub addr: NodeAddr,
    /// Heard from within the timeout (always true for this node itself).
    pub healthy: bool,
    /// Epoch millis when last heard from (0 = never).
    pub last_ping_epoch_millis: u64,
    /// Its last reported stats.
    pub stats: Option<NodeStats>,
    /// Why it refused us, if it did.
    pub refused_us: Option<String>,
}

/// A member the cloud removed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostView {
    /// Its address.
    pub addr: NodeAddr,
    /// Why it was removed.
    pub reason: String,
    /// Epoch millis when last heard from (0 = never).
    pub last_ping_epoch_millis: u64,
}

/// A peer that the cloud formed without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Its address.
    pub addr: NodeAddr,
    /// Why: never heard from, or what it answered when it refused us.
    pub reason: String,
}

/// A snapshot of the cloud as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudView {
    /// This node.
    pub me: NodeAddr,
    /// Whether this node is an observer client.
    pub is_client: bool,
    /// Members, sorted (not those left out).
    pub members: Vec<MemberView>,
    /// Peers the cloud formed without (unreachable, or refusing: another cloud's name).
    pub left_out: Vec<LeftOut>,
    /// Members removed for good (silent past the timeout, restarted), never counted.
    pub lost: Vec<LostView>,
    /// Removals so far: the membership generation.
    pub generation: u64,
    /// Observer clients seen recently.
    pub clients: Vec<MemberView>,
    /// Every member agrees and is healthy.
    pub consensus: bool,
    /// Every member is healthy.
    pub healthy: bool,
    /// Why the cloud is locked, if it is.
    pub locked: Option<String>,
    /// The leader (lowest member address).
    pub leader: Option<NodeAddr>,
    /// Whether consensus was ever reached.
    pub formed: bool,
}

impl CloudView {
    /// Members that are not healthy.
    pub fn unhealthy(&self) -> Vec<NodeAddr> {
        self.members.iter().filter(|m| !m.healthy).map(|m| m.addr).collect()
    }

    /// Whether this node leads a formed cloud.
    pub fn is_leader(&self) -> bool {
        self.consensus && self.leader == Some(self.me)
    }
}
