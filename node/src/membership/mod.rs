//! Membership: who is in the cloud, who is healthy, whether everyone agrees, who leads.
//!
//! [`Membership`] is a synchronous state machine with time passed in; the runtime feeds it
//! heartbeats (incoming calls and replies alike) and ticks, and reads [`CloudView`]s.
//!
//! Rules:
//! - Members are the peer list from discovery plus any node of the same cloud that heartbeats
//!   us (or that a member lists) while the cloud is unlocked. Observer clients are kept apart.
//! - A member is healthy once heard from and until silent for `heartbeat_timeout`.
//! - Consensus: every other member is healthy and reports the same member-set hash as ours.
//! - The leader is the lowest address of the sorted member list (deterministic everywhere).
//! - The lock is monotonic and spreads through heartbeats; a locked cloud refuses newcomers.
//! - Peers never heard from by the formation timeout can be left out (flatfile and DNS
//!   discovery without an expected count), so that the members that agree form without them;
//!   they rejoin if they turn up before the lock.
//! - Every process has an incarnation: a new process at a member's address of a locked cloud
//!   is a lost member, never the old one.
//! - A member of a formed cloud silent past the timeout is removed (lost), if this node and
//!   those it hears from are a strict majority of the members or its address refuses
//!   connections; removals spread through heartbeats, and a removed process is refused and
//!   stops. Each removal starts a new membership generation.

mod refusal;
mod state;
mod view;

pub use refusal::{Refusal, RefusalKind, REFUSAL_METADATA_KEY};
pub use state::{Event, Membership, MembershipOptions};
pub use view::{CloudView, LeftOut, LostView, MemberView};
