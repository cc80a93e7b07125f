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

mod state;

pub use state::{CloudView, Event, MemberView, Membership, MembershipOptions, Refusal};
