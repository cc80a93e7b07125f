use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_common::{members_hash, NodeAddr};
use eddy_proto::v1::{Heartbeat, LostMember, NodeStats};

use super::refusal::{Refusal, RefusalKind};
use super::view::{CloudView, LeftOut, LostView, MemberView};

/// Settings of [`Membership`].
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// This node.
    pub me: NodeAddr,
    /// The cloud name; heartbeats of other clouds are refused.
    pub cloud_name: String,
    /// Observer clients are never members.
    pub is_client: bool,
    /// Silence after which a member is unhealthy.
    pub heartbeat_timeout: Duration,
    /// This process's random identity (see `Heartbeat.incarnation`).
    pub incarnation: u64,
}

/// Something the runtime should log or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Consensus was reached for the first time.
    Formed {
        /// Number of members.
        size: usize,
        /// The leader.
        leader: NodeAddr,
    },
    /// A member went silent.
    Unhealthy {
        /// The member.
        node: NodeAddr,
        /// How long it has been silent.
        silent_for: Duration,
    },
    /// An unhealthy member is heard from again.
    Recovered {
        /// The member.
        node: NodeAddr,
    },
    /// A new member joined.
    Joined {
        /// The member.
        node: NodeAddr,
    },
    /// A member was removed from the cloud for good: silent past the heartbeat timeout (with
    /// a majority of the members still agreeing, or its address refusing connections), a new
    /// process at its address of a locked cloud, or another member removed it.
    Lost {
        /// The member's address.
        node: NodeAddr,
        /// Why.
        reason: String,
        /// The membership generation after the removal (removals so far).
        generation: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct Member {
    last_heard: Option<Instant>,
    last_heard_epoch_millis: u64,
    view_hash: Option<u64>,
    stats: Option<NodeStats>,
    refused_us: Option<(RefusalKind, String)>,
    reported_unhealthy: bool,
    /// The process first heard at this address (0: not yet, or a node that sends none).
    incarnation: u64,
    /// Why this member was removed, if it was: it is gone for good (that process; a new one
    /// at the address is refused once the cloud locked), no longer counted or heartbeated.
    lost: Option<String>,
    /// The last heartbeat to it found nothing listening at its address (connection refused):
    /// the process is gone, which silence alone cannot tell from a partition.
    refused_since: Option<Instant>,
    /// The members its last heartbeat reported silent (its votes for a removal).
    reports_silent: Vec<NodeAddr>,
    /// Never heard from by the formation timeout: the cloud formed without it. It rejoins if
    /// it turns up before the cloud locks.
    left_out: bool,
}

impl Member {
    /// Whether it is in the member list this node hashes, gossips and needs for consensus.
    fn counts(&self) -> bool {
        !self.left_out && self.lost.is_none()
    }

    /// Why a left-out peer was left out: what it answered when it refused us, or silence.
    fn left_out_reason(&self) -> String {
        self.refused_us.as_ref().map(|(_, why)| why.clone()).unwrap_or_else(|| "never heard from".into())
    }
}

#[derive(Debug, Clone)]
struct ClientSeen {
    last_heard: Instant,
    last_heard_epoch_millis: u64,
    stats: Option<NodeStats>,
}

/// The membership state machine.
#[derive(Debug)]
pub struct Membership {
    options: MembershipOptions,
    members: BTreeMap<NodeAddr, Member>,
    clients: BTreeMap<NodeAddr, ClientSeen>,
    locked: Option<String>,
    formed: bool,
    /// Discovery delivered the peer list; a node alone before that has not formed anything.
    peers_known: bool,
    my_stats: NodeStats,
    /// Events found while applying a heartbeat that was refused; `tick` hands them out.
    pending: Vec<Event>,
    /// A member told this node that it is a new process at a lost member's address, or that
    /// the cloud removed it: it must stop, even if it looked formed.
    evicted: Option<String>,
    /// Members removed so far: the membership generation.
    generation: u64,
    /// Members when the cloud formed: a locked cloud admits new workers up to this many, in
    /// place of lost ones.
    formed_size: usize,
    /// Lost members whose address a new worker took since.
    history: Vec<LostView>,
}

fn epoch_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Membership {
    /// A membership that knows only itself (workers) or nobody yet (clients).
    pub fn new(options: MembershipOptions) -> Self {
        let mut members = BTreeMap::new();
        if !options.is_client {
            members.insert(options.me, Member::default());
        }
        Self {
            options,
            members,
            clients: BTreeMap::new(),
            locked: None,
            formed: false,
            peers_known: false,
            my_stats: NodeStats::default(),
            pending: Vec::new(),
            evicted: None,
            generation: 0,
            formed_size: 0,
            history: Vec::new(),
        }
    }

    /// This node's address.
    pub fn me(&self) -> NodeAddr {
        self.options.me
    }

    /// Updates the stats this node reports.
    pub fn set_my_stats(&mut self, stats: NodeStats) {
        self.my_stats = stats;
    }

    /// Adds the peer list from discovery.
    pub fn add_peers(&mut self, peers: &[NodeAddr]) -> Vec<Event> {
        self.peers_known = true;
        let mut events = Vec::new();
        for p in peers {
            if (self.options.is_client || *p != self.options.me) && !self.members.contains_key(p) {
                self.members.insert(*p, Member::default());
                events.push(Event::Joined { node: *p });
            }
        }
        events
    }

    /// Locks the cloud (idempotent; the first reason stays).
    pub fn lock(&mut self, reason: &str) -> bool {
        if self.locked.is_some() {
            return false;
        }
        self.locked = Some(reason.to_string());
        true
    }

    /// Why the cloud is locked, if it is.
    pub fn locked(&self) -> Option<&str> {
        self.locked.as_deref()
    }

    /// The members this node counts (not those left out): what its heartbeats list and hash,
    /// so that nodes that disagree on who was left out cannot agree.
    fn member_list(&self) -> Vec<NodeAddr> {
        self.members.iter().filter(|(_, m)| m.counts()).map(|(a, _)| *a).collect()
    }

    /// Removes a member for good (its process; see [`Event::Lost`]) and returns the event.
    fn remove(&mut self, addr: NodeAddr, reason: String) -> Option<Event> {
        let m = self.members.get_mut(&addr)?;
        if m.lost.is_some() {
            return None;
        }
        m.lost = Some(reason.clone());
        m.reported_unhealthy = true;
        self.generation += 1;
        Some(Event::Lost { node: addr, reason, generation: self.generation })
    }

    /// Nodes this node heartbeats: every member but itself.
    pub fn targets(&self) -> Vec<NodeAddr> {
        // A lost member is gone; whatever answers at its address is not heartbeated. A
        // left-out peer is heartbeated only while it could still join (the cloud unlocked).
        let locked = self.locked.is_some();
        self.members
            .iter()
            .filter(|(a, m)| **a != self.options.me && m.lost.is_none() && !(m.left_out && locked))
            .map(|(a, _)| *a)
            .collect()
    }

    /// The heartbeat this node sends (and replies with).
    pub fn heartbeat(&self) -> Heartbeat {
        let members = self.member_list();
        Heartbeat {
            sender: Some(self.options.me.to_proto()),
            cloud_name: self.options.cloud_name.clone(),
            is_client: self.options.is_client,
            members_hash: members_hash(&members),
            members: members.iter().map(NodeAddr::to_proto).collect(),
            locked: self.locked.is_some(),
            stats: Some(self.my_stats.clone()),
            sent_at_millis: epoch_millis(),
            incarnation: self.options.incarnation,
            protocol_version: eddy_common::PROTOCOL_VERSION,
            silent: self
                .members
                .iter()
                .filter(|(a, m)| **a != self.options.me && m.counts() && m.reported_unhealthy)
                .map(|(a, _)| a.to_proto())
                .collect(),
            lost: self
                .members
                .iter()
                .filter_map(|(a, m)| {
                    m.lost.as_ref().map(|why| LostMember { addr: Some(a.to_proto()), incarnation: m.incarnation, reason: why.clone() })
                })
                .collect(),
        }
    }

    /// Takes the removals a member reports (they spread like the lock): a member of ours that
    /// it removed is removed here too, unless a newer process took its address before the
    /// lock. This node itself, listed, is evicted.
    fn apply_lost(&mut self, hb: &Heartbeat, sender: NodeAddr) -> Vec<Event> {
        let mut events = Vec::new();
        for l in &hb.lost {
            let Some(addr) = l.addr.as_ref().and_then(|a| NodeAddr::from_proto(a).ok()) else { continue };
            if addr == self.options.me {
                if !self.options.is_client && (l.incarnation == 0 || l.incarnation == self.options.incarnation) && self.evicted.is_none() {
                    self.evicted = Some(Refusal::Removed { reason: l.reason.clone() }.message(sender, &self.options.cloud_name));
                }
                continue;
            }
            let same_process =
                self.members.get(&addr).is_some_and(|m| m.incarnation == 0 || l.incarnation == 0 || m.incarnation == l.incarnation);
            if same_process {
                events.extend(self.remove(addr, format!("{} (removed by {sender})", l.reason)));
            }
        }
        events
    }

    /// Applies a heartbeat received as a call or as a reply.
    pub fn on_heartbeat(&mut self, hb: &Heartbeat, now: Instant) -> Result<Vec<Event>, Refusal> {
        if hb.cloud_name != self.options.cloud_name {
            return Err(Refusal::WrongCloud { theirs: hb.cloud_name.clone() });
        }
        if hb.protocol_version != eddy_common::PROTOCOL_VERSION {
            let release = hb.stats.as_ref().map(|s| s.version.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| "unknown".into());
            return Err(Refusal::Incompatible { protocol: hb.protocol_version, release });
        }
        let sender = hb.sender.as_ref().ok_or_else(|| Refusal::Malformed("no sender".into()))?;
        let sender = NodeAddr::from_proto(sender).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if hb.is_client {
            self.clients.insert(sender, ClientSeen { last_heard: now, last_heard_epoch_millis: epoch_millis(), stats: hb.stats.clone() });
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        if hb.locked && self.locked.is_none() && !self.options.is_client {
            // The lock carries the locking side's member list: a node that admitted a newcomer
            // just before it heard of the lock drops it again, so every view stays the same.
            let theirs: Vec<NodeAddr> = hb.members.iter().filter_map(|p| NodeAddr::from_proto(p).ok()).collect();
            let me = self.options.me;
            let dropped: Vec<NodeAddr> = self.members.keys().filter(|m| **m != me && !theirs.contains(m)).copied().collect();
            for d in &dropped {
                self.members.remove(d);
            }
            if !dropped.is_empty() {
                tracing::warn!(node = %me, dropped = ?dropped, locked_by = %sender, "the cloud locked without these nodes; they are no longer members");
            }
            self.locked = Some(format!("locked by {sender}"));
        }
        if !self.members.contains_key(&sender) {
            if let Some(reason) = &self.locked {
                // Observer clients follow the cloud's own view even when it is locked.
                if !self.options.is_client {
                    if !self.has_room() {
                        return Err(Refusal::Locked { reason: reason.clone() });
                    }
                    tracing::info!(node = %self.options.me, newcomer = %sender, "a new worker joins the locked cloud in place of a lost one");
                }
            }
            self.members.insert(sender, Member::default());
            events.push(Event::Joined { node: sender });
        }
        // Learn members the sender knows (gossip), unless locked.
        if self.locked.is_none() || self.options.is_client {
            for p in &hb.members {
                if let Ok(addr) = NodeAddr::from_proto(p) {
                    if addr != self.options.me && !self.members.contains_key(&addr) {
                        self.members.insert(addr, Member::default());
                        events.push(Event::Joined { node: addr });
                    } else if self.options.is_client && self.members.get(&addr).is_some_and(|m| m.lost.is_some()) {
                        // An observer follows the members: a member lists a new worker at a
                        // lost one's address (a replacement), whose process it learns when heard.
                        self.readmit(addr, 0, &mut events);
                    }
                }
            }
        }
        if hb.locked && self.locked.is_none() {
            self.locked = Some(format!("locked by {sender}"));
        }
        let locked = self.locked.is_some();
        let room = !locked || self.has_room();
        if let Some(m) = self.members.get(&sender) {
            if let Some(reason) = m.lost.clone() {
                match (m.incarnation, hb.incarnation) {
                    // A new process, before the cloud holds anything or in place of a lost
                    // worker: a member again.
                    (known, theirs) if theirs != 0 && known != theirs && room => self.readmit(sender, theirs, &mut events),
                    (known, theirs) if theirs != 0 && known != theirs => return Err(Refusal::Replaced),
                    _ => return Err(Refusal::Removed { reason }),
                }
            }
        }
        if let Some(m) = self.members.get_mut(&sender) {
            if m.left_out {
                if locked {
                    return Err(Refusal::Locked { reason: self.locked.clone().unwrap_or_default() });
                }
                // It turned up late, before any work: it is a member again.
                m.left_out = false;
                events.push(Event::Joined { node: sender });
            }
            let replaced = match (m.incarnation, hb.incarnation) {
                (_, 0) => false,
                (0, theirs) => {
                    m.incarnation = theirs;
                    false
                }
                (known, theirs) if known == theirs => false,
                (_, theirs) if !locked => {
                    // Before the cloud holds anything, a restarted node simply rejoins.
                    tracing::info!(node = %sender, "a new process answers at this member's address; the cloud holds no data yet, so it takes its place");
                    m.incarnation = theirs;
                    false
                }
                _ => true,
            };
            if replaced {
                // The old process is gone for good; the event reaches the runtime with the
                // next tick. The new one takes a lost worker's place if the cloud has room,
                // and is refused from its first heartbeat on otherwise, so that it never
                // believes it joined.
                let why = "restarted: a new process answers at its address, so this member's data is gone".to_string();
                if let Some(event) = self.remove(sender, why) {
                    self.pending.push(event);
                }
                if !self.has_room() {
                    return Err(Refusal::Replaced);
                }
                self.readmit(sender, hb.incarnation, &mut events);
            }
            let Some(m) = self.members.get_mut(&sender) else { return Ok(events) };
            if m.reported_unhealthy {
                m.reported_unhealthy = false;
                events.push(Event::Recovered { node: sender });
            }
            m.last_heard = Some(now);
            m.last_heard_epoch_millis = epoch_millis();
            m.view_hash = Some(hb.members_hash);
            m.stats = hb.stats.clone();
            m.refused_us = None;
            m.refused_since = None;
            m.reports_silent = hb.silent.iter().filter_map(|p| NodeAddr::from_proto(p).ok()).collect();
        }
        events.extend(self.apply_lost(hb, sender));
        Ok(events)
    }

    /// Whether a locked, formed cloud has room for a new worker in place of a lost one: fewer
    /// members than it formed with.
    fn has_room(&self) -> bool {
        self.formed && !self.options.is_client && self.member_list().len() < self.formed_size
    }

    /// Process `incarnation` becomes the member at `addr`, where a lost one was (kept in the
    /// history that the view lists).
    fn readmit(&mut self, addr: NodeAddr, incarnation: u64, events: &mut Vec<Event>) {
        if let Some(old) = self.members.get(&addr) {
            if let Some(reason) = &old.lost {
                self.history.push(LostView { addr, reason: reason.clone(), last_ping_epoch_millis: old.last_heard_epoch_millis });
            }
        }
        self.members.insert(addr, Member { incarnation, ..Member::default() });
        tracing::info!(node = %self.options.me, member = %addr, "a new process at a lost member's address joins in its place");
        events.push(Event::Joined { node: addr });
    }

    /// Records that a heartbeat to `peer` failed at `now`: `refused` when nothing listens at
    /// its address (the connection was refused), false for a timeout or another error.
    pub fn on_unreachable(&mut self, peer: NodeAddr, refused: bool, now: Instant) {
        if let Some(m) = self.members.get_mut(&peer) {
            m.refused_since = if refused { m.refused_since.or(Some(now)) } else { None };
        }
    }

    /// At the formation timeout: leaves out the peers never heard from (unreachable, or
    /// refusing us, e.g. started with another cloud name), if the members heard from (and
    /// this node) are a strict majority of the list, so that they can form without the rest.
    /// Returns who was left out (empty: nothing changed, e.g. nobody or only a minority
    /// answered, which stays an error).
    pub fn leave_out_silent(&mut self) -> Vec<LeftOut> {
        let me = self.options.me;
        let heard = self.members.iter().filter(|(a, m)| **a != me && m.last_heard.is_some() && !m.left_out).count();
        let listed = self.members.values().filter(|m| !m.left_out).count();
        // A strict majority of the list (this node included) must agree: two halves of a
        // partitioned list must never both form.
        if heard == 0 || 2 * (heard + 1) <= listed {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (addr, m) in self.members.iter_mut() {
            if *addr != me && m.last_heard.is_none() && !m.left_out {
                m.left_out = true;
                let reason = m.left_out_reason();
                out.push(LeftOut { addr: *addr, reason });
            }
        }
        out
    }

    /// Records that `peer` refused our heartbeat.
    pub fn on_refused(&mut self, peer: NodeAddr, kind: RefusalKind, message: &str) {
        if matches!(kind, RefusalKind::Replaced | RefusalKind::Removed) && self.evicted.is_none() {
            self.evicted = Some(message.to_string());
        }
        if let Some(m) = self.members.get_mut(&peer) {
            m.refused_us = Some((kind, message.to_string()));
        }
    }

    /// Whether every other member refused us because the cloud is locked (a late joiner).
    pub fn refused_by_locked_cloud(&self) -> Option<String> {
        if let Some(message) = &self.evicted {
            return Some(message.clone());
        }
        let others: Vec<&Member> = self.members.iter().filter(|(a, _)| **a != self.options.me).map(|(_, m)| m).collect();
        if others.is_empty() || self.formed {
            return None;
        }
        let all_refused = others.iter().all(|m| m.refused_us.as_ref().is_some_and(|(kind, _)| kind.is_locked_out()));
        if all_refused {
            others.first().and_then(|m| m.refused_us.as_ref().map(|(_, why)| why.clone()))
        } else {
            None
        }
    }

    fn healthy(&self, addr: &NodeAddr, m: &Member, now: Instant) -> bool {
        *addr == self.options.me
            || (m.lost.is_none() && m.last_heard.is_some_and(|t| now.duration_since(t) <= self.options.heartbeat_timeout))
    }

    /// Advances time: detects formation and health changes.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.pending);
        let timeout = self.options.heartbeat_timeout;
        let me = self.options.me;
        for (addr, m) in self.members.iter_mut() {
            if *addr == me || m.reported_unhealthy {
                continue;
            }
            if let Some(t) = m.last_heard {
                let silent_for = now.duration_since(t);
                if silent_for > timeout {
                    m.reported_unhealthy = true;
                    events.push(Event::Unhealthy { node: *addr, silent_for });
                }
            }
        }
        events.extend(self.remove_silent(now));
        // Observer clients that went silent are forgotten; they hold no data.
        self.clients.retain(|_, c| now.duration_since(c.last_heard) <= timeout * 3);
        if !self.formed && self.peers_known {
            let view = self.view(now);
            if view.consensus {
                self.formed = true;
                self.formed_size = view.members.len();
                if let Some(leader) = view.leader {
                    events.push(Event::Formed { size: view.members.len(), leader });
                }
            }
        }
        events
    }

    /// Removes the members of a formed cloud that have been silent past the heartbeat
    /// timeout, so that the rest carry on as a new generation. Silence alone does not tell a
    /// dead process from a partition, so it takes a strict majority of the members (this node
    /// and those it hears from): the smaller side of a partition never removes the larger,
    /// and two halves remove nobody. A member whose address refuses connections is gone
    /// whatever the count (that is how a survivor of two learns of the other's death).
    /// Observer clients only follow the members' removals.
    fn remove_silent(&mut self, now: Instant) -> Vec<Event> {
        if !self.formed || self.options.is_client {
            return Vec::new();
        }
        // (address, healthy, refused connections for, silent for: None if never heard)
        let counted: Vec<(NodeAddr, bool, Option<Duration>, Option<Duration>)> = self
            .members
            .iter()
            .filter(|(_, m)| m.counts())
            .map(|(a, m)| {
                let refused_for = m.refused_since.map(|t| now.duration_since(t));
                (*a, self.healthy(a, m, now), refused_for, m.last_heard.map(|t| now.duration_since(t)))
            })
            .collect();
        // A dead process is certain sooner than silence: its address refusing connections for
        // a fifth of the timeout (several heartbeats) is enough.
        let refusals_enough = self.options.heartbeat_timeout / 5;
        // Who vouches for a removal: this node, and each member heard within half the timeout
        // whose last heartbeat reported the candidate silent too. In a partition the other
        // side goes silent a few heartbeats apart, and links come back one by one when it
        // heals: a member about to time out, or one that still hears the candidate, must not
        // make a majority.
        let fresh = self.options.heartbeat_timeout / 2;
        let vouching: Vec<&Member> = self
            .members
            .iter()
            .filter(|(a, m)| **a != self.options.me && m.counts() && m.last_heard.is_some_and(|t| now.duration_since(t) <= fresh))
            .map(|(_, m)| m)
            .collect();
        let total = counted.len();
        let mut removals = Vec::new();
        for (addr, healthy, refused_for, silent_for) in counted {
            // A peer never heard from is a formation matter (`leave_out_silent`), not a loss.
            let Some(silent_for) = silent_for else { continue };
            let reason = match refused_for {
                Some(refused) if refused >= refusals_enough => Some(format!(
                    "nothing has listened at its address for {:.1} s (silent for {:.1} s): the process is gone",
                    refused.as_secs_f64(),
                    silent_for.as_secs_f64()
                )),
                _ => None,
            };
            if reason.is_none() && healthy {
                continue;
            }
            let votes = 1 + vouching.iter().filter(|m| m.reports_silent.contains(&addr)).count();
            let reason = if let Some(reason) = reason {
                reason
            } else if 2 * votes > total {
                format!(
                    "silent for {:.1} s (heartbeat timeout {:.0} s)",
                    silent_for.as_secs_f64(),
                    self.options.heartbeat_timeout.as_secs_f64()
                )
            } else {
                continue;
            };
            removals.push((addr, reason));
        }
        removals.into_iter().filter_map(|(addr, reason)| self.remove(addr, reason)).collect()
    }

    /// A snapshot of the cloud.
    pub fn view(&self, now: Instant) -> CloudView {
        let members: Vec<NodeAddr> = self.member_list();
        let my_hash = members_hash(&members);
        let me = self.options.me;
        let mut views = Vec::with_capacity(self.members.len());
        // Before discovery answered, a node that knows only itself has agreed with nobody: it
        // must not look formed, lead or answer ready.
        let mut consensus = !members.is_empty() && self.peers_known;
        let mut left_out = Vec::new();
        let mut lost = self.history.clone();
        for (addr, m) in &self.members {
            if let Some(reason) = &m.lost {
                lost.push(LostView { addr: *addr, reason: reason.clone(), last_ping_epoch_millis: m.last_heard_epoch_millis });
                continue;
            }
            if m.left_out {
                let reason = m.left_out_reason();
                left_out.push(LeftOut { addr: *addr, reason });
                continue;
            }
            let healthy = self.healthy(addr, m, now);
            if *addr != me && !(healthy && m.view_hash == Some(my_hash)) {
                consensus = false;
            }
            let (stats, last_ping) =
                if *addr == me { (Some(self.my_stats.clone()), epoch_millis()) } else { (m.stats.clone(), m.last_heard_epoch_millis) };
            views.push(MemberView {
                addr: *addr,
                healthy,
                last_ping_epoch_millis: last_ping,
                stats,
                refused_us: m.refused_us.as_ref().map(|(_, why)| why.clone()),
            });
        }
        let clients = self
            .clients
            .iter()
            .map(|(addr, c)| MemberView {
                addr: *addr,
                healthy: now.duration_since(c.last_heard) <= self.options.heartbeat_timeout,
                last_ping_epoch_millis: c.last_heard_epoch_millis,
                stats: c.stats.clone(),
                refused_us: None,
            })
            .collect();
        CloudView {
            me,
            is_client: self.options.is_client,
            healthy: views.iter().all(|v| v.healthy) && !views.is_empty(),
            leader: views.first().map(|v| v.addr),
            members: views,
            left_out,
            lost,
            generation: self.generation,
            clients,
            consensus,
            locked: self.locked.clone(),
            formed: self.formed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn addr(port: u16) -> NodeAddr {
        NodeAddr::with_default_grpc("127.0.0.1".parse().unwrap(), port).unwrap()
    }

    /// The process `incarnation` at `addr(port)`: another one is a restart at that address.
    fn node_incarnation(port: u16, incarnation: u64) -> Membership {
        Membership::new(MembershipOptions {
            me: addr(port),
            cloud_name: "c".into(),
            is_client: false,
            heartbeat_timeout: TIMEOUT,
            incarnation,
        })
    }

    fn node(port: u16) -> Membership {
        node_incarnation(port, u64::from(port))
    }

    fn client(port: u16) -> Membership {
        Membership::new(MembershipOptions {
            me: addr(port),
            cloud_name: "c".into(),
            is_client: true,
            heartbeat_timeout: TIMEOUT,
            incarnation: u64::from(port),
        })
    }

    /// Every node heartbeats every target once and applies the reply, as the runtime does.
    fn round(nodes: &mut [Membership], now: Instant) {
        for i in 0..nodes.len() {
            for target in nodes[i].targets() {
                let Some(j) = nodes.iter().position(|n| n.me() == target) else { continue };
                let hb = nodes[i].heartbeat();
                match nodes[j].on_heartbeat(&hb, now) {
                    Ok(_) => {
                        let reply = nodes[j].heartbeat();
                        nodes[i].on_heartbeat(&reply, now).unwrap();
                    }
                    Err(r) => {
                        let msg = r.message(target, "c");
                        nodes[i].on_refused(target, r.kind(), &msg);
                    }
                }
            }
        }
        for n in nodes.iter_mut() {
            n.tick(now);
        }
    }

    #[test]
    fn three_nodes_form_with_one_leader() {
        let peers = [addr(3), addr(1), addr(2)];
        let mut nodes: Vec<Membership> = peers.iter().map(|p| node(p.rest_port)).collect();
        let t0 = Instant::now();
        for n in nodes.iter_mut() {
            n.add_peers(&peers);
            assert!(!n.view(t0).consensus);
        }
        round(&mut nodes, t0);
        for n in &nodes {
            let v = n.view(t0);
            assert!(v.consensus && v.healthy && v.formed, "{v:?}");
            assert_eq!(v.leader, Some(addr(1)));
            assert_eq!(v.members.len(), 3);
        }
        assert!(nodes[1].view(t0).is_leader());
        assert!(!nodes[0].view(t0).is_leader());
    }

    #[test]
    fn a_node_alone_has_not_formed_until_discovery_answers() {
        let mut n = node(1);
        let t0 = Instant::now();
        assert!(n.tick(t0).is_empty());
        assert!(!n.view(t0).formed);
        assert_eq!(n.add_peers(&[addr(1)]), vec![]);
        assert_eq!(n.tick(t0), vec![Event::Formed { size: 1, leader: addr(1) }]);
    }

    #[test]
    fn formed_event_fires_once() {
        let mut nodes = [node(1), node(2)];
        let t0 = Instant::now();
        nodes[0].add_peers(&[addr(2)]);
        let hb = nodes[0].heartbeat();
        nodes[1].on_heartbeat(&hb, t0).unwrap();
        let reply = nodes[1].heartbeat();
        nodes[0].on_heartbeat(&reply, t0).unwrap();
        let ev = nodes[0].tick(t0);
        assert_eq!(ev, vec![Event::Formed { size: 2, leader: addr(1) }]);
        assert!(nodes[0].tick(t0).is_empty());
    }

    #[test]
    fn a_node_alone_before_discovery_answered_has_no_consensus_and_does_not_lead() {
        let mut n = node(1);
        let t0 = Instant::now();
        let v = n.view(t0);
        assert!(!v.consensus && !v.is_leader(), "{v:?}");
        n.add_peers(&[]);
        assert!(n.view(t0).is_leader());
    }

    #[test]
    fn peers_never_heard_from_are_left_out_and_rejoin_before_the_lock() {
        let mut nodes = vec![node(1), node(2)];
        // Both lists name 127.0.0.1:9, where nothing answers.
        nodes[0].add_peers(&[addr(2), addr(9)]);
        nodes[1].add_peers(&[addr(1), addr(9)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        assert!(!nodes[0].view(t0).consensus, "waits for 9 until the formation timeout");
        let left: Vec<NodeAddr> = nodes[0].leave_out_silent().iter().map(|l| l.addr).collect();
        assert_eq!(left, vec![addr(9)]);
        nodes[1].leave_out_silent();
        round(&mut nodes, t0);
        let v = nodes[0].view(t0);
        assert!(v.consensus && v.healthy && v.members.len() == 2, "{v:?}");
        assert_eq!(v.left_out.len(), 1);
        nodes[0].tick(t0);
        assert!(nodes[0].view(t0).formed);
        // It turns up before any work: a member again.
        let late = node(9);
        assert_eq!(nodes[0].on_heartbeat(&late.heartbeat(), t0).unwrap(), vec![Event::Joined { node: addr(9) }]);
        assert!(nodes[0].view(t0).left_out.is_empty());
        // Nobody heard at all: nothing is left out (a cloud of one from a list is an error).
        let mut alone = node(5);
        alone.add_peers(&[addr(6)]);
        assert!(alone.leave_out_silent().is_empty());
        // Half of a list of four (a partition into two pairs) is no majority: neither half forms.
        let mut pair = vec![node(11), node(12)];
        pair[0].add_peers(&[addr(12), addr(13), addr(14)]);
        pair[1].add_peers(&[addr(11), addr(13), addr(14)]);
        round(&mut pair, t0);
        assert!(pair[0].leave_out_silent().is_empty());
        // After the lock, a left-out peer is no longer heartbeated, and is refused.
        nodes[0].leave_out_silent();
        let mut locked = node(20);
        locked.add_peers(&[addr(21)]);
        let mut other = node(21);
        other.add_peers(&[addr(20)]);
        let mut both = vec![locked, other];
        round(&mut both, t0);
        both[0].add_peers(&[addr(29)]);
        both[1].add_peers(&[addr(29)]);
        round(&mut both, t0);
        assert_eq!(both[0].leave_out_silent().len(), 1);
        assert!(both[0].lock("work"));
        assert!(!both[0].targets().contains(&addr(29)));
        let r = both[0].on_heartbeat(&node(29).heartbeat(), t0);
        assert!(matches!(r, Err(Refusal::Locked { .. })), "{r:?}");
    }

    #[test]
    fn gossip_spreads_a_member_known_to_one_node() {
        // Node 3 knows only node 1; node 2 knows only node 1. They still converge.
        let mut nodes = vec![node(1), node(2), node(3)];
        // Every node's discovery answered; node 1's with itself alone.
        nodes[0].add_peers(&[]);
        nodes[1].add_peers(&[addr(1)]);
        nodes[2].add_peers(&[addr(1)]);
        let t0 = Instant::now();
        for k in 0..3 {
            round(&mut nodes, t0 + Duration::from_millis(k));
        }
        for n in &nodes {
            assert!(n.view(t0).consensus, "{:?}", n.view(t0));
            assert_eq!(n.view(t0).members.len(), 3);
        }
    }

    #[test]
    fn silent_member_makes_cloud_unhealthy_then_recovers() {
        let mut nodes = vec![node(1), node(2)];
        nodes[0].add_peers(&[addr(2)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        assert!(nodes[0].view(t0).healthy);
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        let ev = nodes[0].tick(later);
        assert!(matches!(ev.as_slice(), [Event::Unhealthy { node, .. }] if *node == addr(2)));
        let v = nodes[0].view(later);
        assert!(!v.healthy && !v.consensus);
        assert_eq!(v.unhealthy(), vec![addr(2)]);
        assert!(nodes[0].tick(later).is_empty(), "reported once");
        let hb = nodes[1].heartbeat();
        let ev = nodes[0].on_heartbeat(&hb, later).unwrap();
        assert_eq!(ev, vec![Event::Recovered { node: addr(2) }]);
        assert!(nodes[0].view(later).healthy);
    }

    #[test]
    fn a_new_process_at_a_members_address_of_a_locked_cloud_is_a_new_member_never_the_old_one() {
        let mut nodes = vec![node(1), node(2)];
        nodes[0].add_peers(&[addr(2)]);
        nodes[1].add_peers(&[addr(1)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        nodes[0].tick(t0);
        // Before any work a restart is harmless: the newcomer takes the place.
        let restarted = node_incarnation(2, 99);
        assert!(nodes[0].on_heartbeat(&restarted.heartbeat(), t0).is_ok());
        assert!(nodes[0].view(t0).healthy);
        assert!(nodes[0].lock("first work"));
        // After the lock the old process is lost (its data is gone), and the new one joins in
        // its place: the cloud has room for as many workers as it formed with.
        let again = node_incarnation(2, 7);
        assert_eq!(nodes[0].on_heartbeat(&again.heartbeat(), t0), Ok(vec![Event::Joined { node: addr(2) }]));
        let events = nodes[0].tick(t0);
        assert!(
            matches!(events.as_slice(), [Event::Lost { node, reason, generation: 1 }] if *node == addr(2) && reason.contains("restarted")),
            "{events:?}"
        );
        let view = nodes[0].view(t0);
        assert!(view.healthy && view.members.len() == 2 && view.generation == 1, "{view:?}");
        assert_eq!(view.lost.iter().map(|l| l.addr).collect::<Vec<_>>(), vec![addr(2)], "the old process stays listed");
        // The old process is never taken back: its heartbeat finds the new one's place.
        let old = node_incarnation(2, 99);
        assert!(nodes[0].on_heartbeat(&old.heartbeat(), t0).is_ok(), "a third process replaces the second");
        assert_eq!(nodes[0].view(t0).generation, 2);
        // A full cloud refuses a newcomer at another address, and it stops when told so.
        let late = node(3);
        let refusal = nodes[0].on_heartbeat(&late.heartbeat(), t0).unwrap_err();
        assert!(matches!(refusal, Refusal::Locked { .. }), "{refusal:?}");
        let message = Refusal::Replaced.message(addr(1), "c");
        assert!(message.contains("join refused"));
        let mut newcomer = late;
        newcomer.on_refused(addr(1), RefusalKind::Replaced, &message);
        assert_eq!(newcomer.refused_by_locked_cloud(), Some(message));
    }

    /// Formed, locked nodes at `ports`.
    fn formed(ports: &[u16], t0: Instant) -> Vec<Membership> {
        let peers: Vec<NodeAddr> = ports.iter().map(|p| addr(*p)).collect();
        let mut nodes: Vec<Membership> = ports.iter().map(|p| node(*p)).collect();
        for n in nodes.iter_mut() {
            n.add_peers(&peers);
        }
        round(&mut nodes, t0);
        for n in nodes.iter_mut() {
            n.lock("work");
            n.tick(t0);
            assert!(n.view(t0).consensus);
        }
        nodes
    }

    fn lost_nodes(events: &[Event]) -> Vec<NodeAddr> {
        events.iter().filter_map(|e| if let Event::Lost { node, .. } = e { Some(*node) } else { None }).collect()
    }

    #[test]
    fn a_silent_member_is_removed_by_the_majority_and_the_rest_carry_on() {
        let t0 = Instant::now();
        let mut nodes = formed(&[1, 2, 3], t0);
        let mut silent = nodes.pop().unwrap();
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        // Nodes 1 and 2 still hear each other and both report node 3 silent: two of three.
        for k in 0..3 {
            round(&mut nodes, later + Duration::from_millis(k));
        }
        for n in &nodes {
            let v = n.view(later);
            assert!(v.consensus && v.healthy && v.members.len() == 2 && v.generation == 1, "{v:?}");
            assert!(v.lost[0].reason.contains("silent for"), "{v:?}");
            assert!(!n.targets().contains(&addr(3)));
        }
        // The removed process comes back (SIGCONT): refused, it stops.
        let refusal = nodes[0].on_heartbeat(&silent.heartbeat(), later).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Removed);
        silent.on_refused(addr(1), refusal.kind(), &refusal.message(addr(1), "c"));
        assert!(silent.refused_by_locked_cloud().unwrap().contains("removed this node"));
        // A new process at its address joins in its place (the cloud formed with three).
        assert_eq!(nodes[0].on_heartbeat(&node_incarnation(3, 77).heartbeat(), later), Ok(vec![Event::Joined { node: addr(3) }]));
        let v = nodes[0].view(later);
        assert_eq!((v.members.len(), v.generation, v.lost.len()), (3, 1, 1), "{v:?}");
        // Full again: a newcomer at another address is refused.
        let full = node(4);
        assert!(matches!(nodes[0].on_heartbeat(&full.heartbeat(), later), Err(Refusal::Locked { .. })));
    }

    #[test]
    fn the_smaller_side_of_a_partition_removes_nobody_and_two_halves_wait_for_the_heal() {
        let t0 = Instant::now();
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        let mut nodes = formed(&[1, 2, 3], t0);
        let events = nodes[2].tick(later);
        assert!(lost_nodes(&events).is_empty(), "{events:?}");
        let v = nodes[2].view(later);
        assert!(!v.healthy && v.members.len() == 3 && v.generation == 0, "{v:?}");
        // Two against two: nobody has a majority, nobody is removed; healed, all recover.
        let mut four = formed(&[11, 12, 13, 14], t0);
        let (left, right) = four.split_at_mut(2);
        round(left, later);
        round(right, later);
        for n in &four {
            assert_eq!(n.view(later).generation, 0);
            assert!(!n.view(later).healthy);
        }
        round(&mut four, later + Duration::from_millis(1));
        for n in &four {
            let v = n.view(later + Duration::from_millis(1));
            assert!(v.healthy && v.consensus && v.members.len() == 4, "{v:?}");
        }
    }

    /// Regression (found by the partition test): the other half of a 2|2 partition goes silent
    /// a few heartbeats apart; counting the one not yet timed out made a "majority" that
    /// removed the first, and then the second.
    #[test]
    fn members_about_to_time_out_do_not_vouch_for_a_removal() {
        let t0 = Instant::now();
        let mut nodes = formed(&[1, 2, 3, 4], t0);
        // Node 4 last heard node 1 at t0 and node 2 a little later; node 3 all along.
        let hb2 = nodes[1].heartbeat();
        nodes[3].on_heartbeat(&hb2, t0 + Duration::from_millis(300)).unwrap();
        for k in [100, 400, 2_000] {
            let t = t0 + TIMEOUT + Duration::from_millis(k);
            let hb3 = nodes[2].heartbeat();
            nodes[3].on_heartbeat(&hb3, t).unwrap();
            let events = nodes[3].tick(t);
            assert!(lost_nodes(&events).is_empty(), "at +{k} ms: {events:?}");
            assert_eq!(nodes[3].view(t).generation, 0);
        }
    }

    #[test]
    fn a_survivor_of_two_removes_the_other_once_its_address_refuses_connections() {
        let t0 = Instant::now();
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        let mut nodes = formed(&[1, 2], t0);
        // Silence alone (a timeout): one of two is no majority.
        nodes[0].on_unreachable(addr(2), false, later);
        assert!(lost_nodes(&nodes[0].tick(later)).is_empty());
        // Nothing listens there: the process is gone, once that lasted a fifth of the timeout
        // (the timeout itself need not pass).
        let soon = t0 + Duration::from_secs(1);
        nodes[0].on_unreachable(addr(2), true, soon);
        assert!(lost_nodes(&nodes[0].tick(soon + TIMEOUT / 10)).is_empty(), "one refusal is not enough");
        let events = nodes[0].tick(soon + TIMEOUT / 5);
        assert_eq!(lost_nodes(&events), vec![addr(2)]);
        let v = nodes[0].view(soon + TIMEOUT / 5);
        assert!(v.healthy && v.consensus && v.members.len() == 1, "{v:?}");
        assert!(v.lost[0].reason.contains("nothing has listened at its address"), "{v:?}");
    }

    #[test]
    fn removals_spread_to_members_and_observers_and_evict_the_removed() {
        let t0 = Instant::now();
        let mut nodes = formed(&[1, 2, 3], t0);
        let mut c = client(9);
        c.add_peers(&[addr(1), addr(2), addr(3)]);
        nodes.push(c);
        round(&mut nodes, t0);
        // Node 2 finds node 3 silent and says so; with that second vote node 1 removes it,
        // before node 2 itself decided.
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        nodes[1].tick(later);
        let hb2 = nodes[1].heartbeat();
        assert!(hb2.silent.contains(&addr(3).to_proto()));
        nodes[0].on_heartbeat(&hb2, later).unwrap();
        assert_eq!(lost_nodes(&nodes[0].tick(later)), vec![addr(3)]);
        let hb1 = nodes[0].heartbeat();
        let events = nodes[1].on_heartbeat(&hb1, later).unwrap();
        assert_eq!(lost_nodes(&events), vec![addr(3)]);
        assert_eq!(nodes[1].view(later).generation, 1);
        let events = nodes[3].on_heartbeat(&hb1, later).unwrap();
        assert_eq!(lost_nodes(&events), vec![addr(3)], "the observer follows");
        assert_eq!(nodes[3].view(later).members.len(), 2);
        // Node 3 hears that it was removed: it stops.
        nodes[2].on_heartbeat(&hb1, later).unwrap();
        assert!(nodes[2].refused_by_locked_cloud().unwrap().contains("removed this node"));
    }

    #[test]
    fn locked_cloud_refuses_a_late_joiner_and_lock_spreads() {
        let mut nodes = vec![node(1), node(2)];
        nodes[0].add_peers(&[addr(2)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        assert!(nodes[0].lock("first work: network test"));
        assert!(!nodes[0].lock("again"));
        round(&mut nodes, t0);
        assert_eq!(nodes[1].locked(), Some("locked by 127.0.0.1:1"));
        let mut late = node(3);
        late.add_peers(&[addr(1), addr(2)]);
        nodes.push(late);
        round(&mut nodes, t0);
        let refusal = nodes[2].refused_by_locked_cloud().expect("refused");
        assert!(refusal.contains("join refused") && refusal.contains("locked"), "{refusal}");
        assert_eq!(nodes[0].view(t0).members.len(), 2);
    }

    /// Regression: a newcomer admitted by one node just before that node heard of the lock
    /// used to split the views for good (and the newcomer waited out its whole timeout).
    #[test]
    fn a_newcomer_admitted_just_before_the_lock_arrives_is_dropped_and_refused() {
        let mut nodes = vec![node(1), node(2)];
        nodes[0].add_peers(&[addr(2)]);
        nodes[1].add_peers(&[addr(1)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        nodes[0].lock("work");
        // The newcomer reaches node 2 before node 2 heard of the lock.
        let mut late = node(3);
        late.add_peers(&[addr(1), addr(2)]);
        let hb = late.heartbeat();
        nodes[1].on_heartbeat(&hb, t0).unwrap();
        assert_eq!(nodes[1].view(t0).members.len(), 3);
        nodes.push(late);
        for k in 1..4 {
            round(&mut nodes, t0 + Duration::from_millis(k));
        }
        for n in &nodes[..2] {
            let v = n.view(t0);
            assert_eq!(v.members.len(), 2, "{v:?}");
            assert!(v.consensus && v.locked.is_some());
        }
        assert!(nodes[2].refused_by_locked_cloud().is_some());
    }

    #[test]
    fn other_clouds_and_malformed_heartbeats_are_refused() {
        let mut a = node(1);
        let mut other = Membership::new(MembershipOptions {
            me: addr(2),
            cloud_name: "other".into(),
            is_client: false,
            heartbeat_timeout: TIMEOUT,
            incarnation: 2,
        });
        other.add_peers(&[addr(1)]);
        let hb = other.heartbeat();
        assert!(matches!(a.on_heartbeat(&hb, Instant::now()), Err(Refusal::WrongCloud { .. })));
        let mut older = node(3).heartbeat();
        older.protocol_version = eddy_common::PROTOCOL_VERSION - 1;
        let refusal = a.on_heartbeat(&older, Instant::now()).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Incompatible);
        assert!(refusal.message(addr(1), "c").contains("run the same Eddy release on every node"));
        let mut bad = a.heartbeat();
        bad.sender = None;
        assert!(matches!(a.on_heartbeat(&bad, Instant::now()), Err(Refusal::Malformed(_))));
        assert_eq!(a.view(Instant::now()).members.len(), 1);
    }

    #[test]
    fn observer_clients_are_listed_apart_and_never_counted() {
        let mut nodes = vec![node(1), node(2)];
        nodes[0].add_peers(&[addr(2)]);
        nodes[1].add_peers(&[addr(1)]);
        let t0 = Instant::now();
        round(&mut nodes, t0);
        nodes[0].lock("work");
        let mut c = client(9);
        c.add_peers(&[addr(1), addr(2)]);
        nodes.push(c);
        round(&mut nodes, t0);
        let v = nodes[0].view(t0);
        assert_eq!(v.members.len(), 2);
        assert_eq!(v.clients.len(), 1);
        let cv = nodes[2].view(t0);
        assert!(cv.is_client && cv.consensus && cv.healthy);
        assert_eq!(cv.members.len(), 2);
        assert_eq!(cv.leader, Some(addr(1)));
        assert!(!cv.is_leader());
    }
}
