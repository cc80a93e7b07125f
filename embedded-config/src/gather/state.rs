//! The gather service's state machine: registrations in, one peer list out, formation reports,
//! exits. Synchronous and free of I/O so that every rule is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eddy_common::NodeAddr;

/// A worker that registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its address.
    pub node: NodeAddr,
    /// Its launcher-given id.
    pub worker_id: String,
    /// Its process id.
    pub pid: u32,
}

/// Where the gathering stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for registrations.
    Collecting,
    /// The peer list went out.
    Sent(Vec<NodeAddr>),
    /// Gathering failed; every waiting caller gets this message.
    Failed(String),
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Same address or worker id twice.
    Duplicate(String),
    /// The list was already sent or gathering failed.
    TooLate(String),
}

#[derive(Debug)]
pub(crate) struct GatherState {
    expected: usize,
    known_ids: BTreeSet<String>,
    registered: BTreeMap<NodeAddr, Registration>,
    pub(crate) phase: Phase,
    formed: BTreeMap<NodeAddr, (usize, NodeAddr)>,
    /// The cloud formed and every worker agreed (later reports come from replacements).
    agreed: bool,
    /// Worker ids that may register again after the list went out: new processes in place of
    /// lost ones.
    replacements: BTreeSet<String>,
    pub(crate) exited: BTreeMap<NodeAddr, String>,
}

impl GatherState {
    pub(crate) fn new(expected: usize) -> Self {
        Self {
            expected,
            known_ids: BTreeSet::new(),
            registered: BTreeMap::new(),
            phase: Phase::Collecting,
            formed: BTreeMap::new(),
            agreed: false,
            replacements: BTreeSet::new(),
            exited: BTreeMap::new(),
        }
    }

    /// Lets worker `id` register once more after the list went out (a new process in place
    /// of a lost one): it replaces the old registration and gets the list as it is then.
    pub(crate) fn expect_replacement(&mut self, id: &str) {
        self.replacements.insert(id.to_string());
    }

    pub(crate) fn expect_worker_id(&mut self, id: &str) {
        self.known_ids.insert(id.to_string());
    }

    pub(crate) fn registrations(&self) -> Vec<Registration> {
        self.registered.values().cloned().collect()
    }

    /// Records a registration; returns the peer list when it completes the set.
    pub(crate) fn register(&mut self, reg: Registration) -> Result<Option<Vec<NodeAddr>>, Refusal> {
        // The same process asking again (its connection dropped while it waited) is answered,
        // not refused.
        if self.registered.get(&reg.node) == Some(&reg) {
            return Ok(match &self.phase {
                Phase::Sent(peers) => Some(peers.clone()),
                _ => None,
            });
        }
        match &self.phase {
            Phase::Collecting => {}
            Phase::Sent(_) if self.replacements.remove(&reg.worker_id) => {
                self.registered.retain(|_, r| r.worker_id != reg.worker_id);
                self.formed.retain(|node, _| self.registered.contains_key(node));
                if let Some(prev) = self.registered.get(&reg.node) {
                    return Err(Refusal::Duplicate(format!(
                        "{} is already registered by worker {:?}; two workers cannot share an address",
                        reg.node, prev.worker_id
                    )));
                }
                self.registered.insert(reg.node, reg);
                let peers: Vec<NodeAddr> = self.registered.keys().copied().collect();
                self.phase = Phase::Sent(peers.clone());
                return Ok(Some(peers));
            }
            Phase::Sent(peers) => {
                return Err(Refusal::TooLate(format!(
                    "the peer list was already sent to {} workers; {} (worker {:?}) registered too late (a restarted container, or a worker of another run?)",
                    peers.len(),
                    reg.node,
                    reg.worker_id
                )))
            }
            Phase::Failed(msg) => return Err(Refusal::TooLate(msg.clone())),
        }
        if let Some(prev) = self.registered.get(&reg.node) {
            return Err(Refusal::Duplicate(format!(
                "{} is already registered by worker {:?}; two workers cannot share an address",
                reg.node, prev.worker_id
            )));
        }
        if !reg.worker_id.is_empty() {
            if let Some(prev) = self.registered.values().find(|r| r.worker_id == reg.worker_id) {
                return Err(Refusal::Duplicate(format!(
                    "worker {:?} is already registered as {}; {} is a second process with the same id",
                    reg.worker_id, prev.node, reg.node
                )));
            }
        }
        self.registered.insert(reg.node, reg);
        if self.registered.len() < self.expected {
            return Ok(None);
        }
        let peers: Vec<NodeAddr> = self.registered.keys().copied().collect();
        self.phase = Phase::Sent(peers.clone());
        Ok(Some(peers))
    }

    /// Moves to `Failed` with a message that names who registered and who never came.
    pub(crate) fn fail_registration_timeout(&mut self, waited: Duration) -> Phase {
        if self.phase != Phase::Collecting {
            return self.phase.clone();
        }
        let registered: Vec<String> = self.registered.values().map(|r| format!("{} (worker {})", r.node, r.worker_id)).collect();
        let came: BTreeSet<&str> = self.registered.values().map(|r| r.worker_id.as_str()).collect();
        let never: Vec<&str> = self.known_ids.iter().map(String::as_str).filter(|id| !came.contains(id)).collect();
        let mut msg = format!(
            "the cloud did not form within {}: {} of {} workers registered [{}]; {} missing",
            eddy_common::human_duration(waited),
            self.registered.len(),
            self.expected,
            registered.join(", "),
            self.expected.saturating_sub(self.registered.len())
        );
        if !never.is_empty() {
            msg.push_str(&format!(" (never registered: worker {})", never.join(", worker ")));
        }
        msg.push_str("; check the workers' logs, that they can reach the driver, and --timeout");
        self.phase = Phase::Failed(msg);
        self.phase.clone()
    }

    /// Records a formation report; returns the agreed (size, leader) once every worker reported
    /// the same thing.
    pub(crate) fn cloud_formed(&mut self, node: NodeAddr, size: usize, leader: NodeAddr) -> Result<Option<(usize, NodeAddr)>, String> {
        if !self.registered.contains_key(&node) {
            return Err(format!("{node} reported a formed cloud but never registered"));
        }
        self.formed.insert(node, (size, leader));
        if self.agreed || self.formed.len() < self.registered.len() {
            return Ok(None);
        }
        let views: BTreeSet<(usize, NodeAddr)> = self.formed.values().copied().collect();
        match views.len() {
            1 => {
                self.agreed = true;
                Ok(views.into_iter().next())
            }
            _ => Err(format!(
                "workers disagree about the cloud: {}",
                self.formed.iter().map(|(n, (s, l))| format!("{n} sees size {s} led by {l}")).collect::<Vec<_>>().join("; ")
            )),
        }
    }

    /// Workers that have not yet reported a formed cloud.
    pub(crate) fn not_formed(&self) -> Vec<NodeAddr> {
        self.registered.keys().filter(|n| !self.formed.contains_key(n)).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(port: u16, id: &str) -> Registration {
        Registration { node: NodeAddr::with_default_grpc("127.0.0.1".parse().unwrap(), port).unwrap(), worker_id: id.into(), pid: 1 }
    }

    #[test]
    fn list_goes_out_when_the_last_worker_registers() {
        let mut s = GatherState::new(3);
        assert_eq!(s.register(reg(5000, "0")).unwrap(), None);
        assert_eq!(s.register(reg(4000, "1")).unwrap(), None);
        let peers = s.register(reg(6000, "2")).unwrap().unwrap();
        assert_eq!(peers.iter().map(|p| p.rest_port).collect::<Vec<_>>(), vec![4000, 5000, 6000]);
        assert!(matches!(s.register(reg(7000, "3")), Err(Refusal::TooLate(m)) if m.contains("too late")));
    }

    #[test]
    fn the_same_process_may_register_again() {
        let mut s = GatherState::new(2);
        assert_eq!(s.register(reg(5000, "0")).unwrap(), None);
        assert_eq!(s.register(reg(5000, "0")).unwrap(), None);
        let peers = s.register(reg(5002, "1")).unwrap().unwrap();
        assert_eq!(s.register(reg(5000, "0")).unwrap(), Some(peers.clone()));
        // After the list went out, a late registration still fails even at the deadline.
        assert_eq!(s.fail_registration_timeout(Duration::from_secs(1)), Phase::Sent(peers));
    }

    #[test]
    fn a_replacement_registers_after_the_list_went_out_and_gets_the_list_as_it_is() {
        let mut s = GatherState::new(2);
        s.register(reg(1, "a")).unwrap();
        s.register(reg(2, "b")).unwrap();
        assert_eq!(s.cloud_formed(reg(1, "a").node, 2, reg(1, "a").node), Ok(None));
        assert!(s.cloud_formed(reg(2, "b").node, 2, reg(1, "a").node).unwrap().is_some());
        // Not expected: too late.
        assert!(matches!(s.register(reg(3, "b")), Err(Refusal::TooLate(_))));
        s.expect_replacement("b");
        let peers = s.register(reg(3, "b")).unwrap().unwrap();
        assert_eq!(peers, vec![reg(1, "a").node, reg(3, "b").node]);
        assert_eq!(s.registrations().len(), 2);
        // Once only, and its formation report is taken without starting over.
        assert!(matches!(s.register(reg(4, "b")), Err(Refusal::TooLate(_))));
        assert_eq!(s.cloud_formed(reg(3, "b").node, 2, reg(1, "a").node), Ok(None));
    }

    #[test]
    fn duplicates_are_refused() {
        let mut s = GatherState::new(3);
        s.register(reg(5000, "0")).unwrap();
        assert!(matches!(s.register(reg(5000, "1")), Err(Refusal::Duplicate(m)) if m.contains("share an address")));
        assert!(matches!(s.register(reg(5002, "0")), Err(Refusal::Duplicate(m)) if m.contains("same id")));
    }

    #[test]
    fn timeout_names_the_missing_workers() {
        let mut s = GatherState::new(3);
        for id in ["0", "1", "2"] {
            s.expect_worker_id(id);
        }
        s.register(reg(5000, "0")).unwrap();
        let Phase::Failed(msg) = s.fail_registration_timeout(Duration::from_secs(120)) else { panic!("not failed") };
        assert!(msg.contains("1 of 3 workers registered [127.0.0.1:5000 (worker 0)]"), "{msg}");
        assert!(msg.contains("2 missing (never registered: worker 1, worker 2)"), "{msg}");
        assert!(matches!(s.register(reg(5002, "1")), Err(Refusal::TooLate(_))));
    }

    #[test]
    fn formation_needs_every_worker_to_agree() {
        let mut s = GatherState::new(2);
        let (a, b) = (reg(5000, "0"), reg(5002, "1"));
        s.register(a.clone()).unwrap();
        s.register(b.clone()).unwrap();
        assert_eq!(s.cloud_formed(a.node, 2, a.node).unwrap(), None);
        assert_eq!(s.not_formed(), vec![b.node]);
        assert_eq!(s.cloud_formed(b.node, 2, a.node).unwrap(), Some((2, a.node)));
        let mut s2 = GatherState::new(2);
        s2.register(a.clone()).unwrap();
        s2.register(b.clone()).unwrap();
        s2.cloud_formed(a.node, 2, a.node).unwrap();
        assert!(s2.cloud_formed(b.node, 2, b.node).unwrap_err().contains("disagree"));
        assert!(s2.cloud_formed(reg(1, "x").node, 1, a.node).is_err());
    }
}
