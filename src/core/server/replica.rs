//! One replica of a key range: its parameters and the bookkeeping that
//! travels with them (clock table, dedup table, applied-push accounting,
//! log position); applying a log entry, reading for a pull (with the
//! pull filter's per-worker record), digests for replica comparison.
//!
//! May import: `crate::core` (its sibling modules), std and `xxhash_rust`
//! (digests). Never: a host (`crate::sim`, `crate::net`), madsim, tokio, a
//! clock or I/O.

use super::catch_up::Learner;
use super::serve::PendingPull;
use crate::core::bugs::Bug;
use crate::core::codec::{self, Payload};
use crate::core::config::ProtocolConfig;
use crate::core::floats::Floats;
use crate::core::gate::ClockTable;
use crate::core::ids::{Clock, NodeId, RangeId, Seq, WorkerId};
use crate::core::msg::{Entry, Keys, Op, RangeState};
use crate::core::view::Membership;
use std::collections::BTreeMap;
use std::ops::Range;
use xxhash_rust::xxh3::xxh3_64;

/// One replica of a key range: its parameters and the bookkeeping that must
/// travel with them (clock table, dedup table, applied-push accounting, log
/// position), plus its place in the chain.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The range.
    pub range: RangeId,
    /// Its keys.
    pub keys: Range<u32>,
    /// Parameter values, `params[i]` is key `keys.start + i`; shared with
    /// the pull answers and snapshots that read them (copied on the next
    /// write if one is still held).
    pub params: Floats,
    /// Which clocks of each worker are visible, and the members the gate
    /// counts (always those of `members`).
    pub table: ClockTable,
    /// The membership in force at this point of the log: the members the
    /// gate counts and the pushes the head refuses. Set only with the
    /// table's (see [`Replica::members`]).
    members: Membership,
    /// Per worker: highest push sequence number applied, and its log index
    /// (a worker sends its next push to a range only after the previous one
    /// is acknowledged, so a lower or equal `seq` is a retry).
    pub dedup: BTreeMap<WorkerId, (Seq, u64)>,
    /// Number of pushes applied to this state.
    pub applied: u64,
    /// Order-independent digest of the set of pushes applied (wrapping sum
    /// of a hash of each `(worker, seq)`).
    pub applied_digest: u64,
    /// Log entries applied (the index of the last one).
    pub log_index: u64,
    /// Live widenings applied: the values are the model's at this level
    /// (`crate::core::widen`).
    pub widened: u32,
    /// Whether this state was started over (the initial values or a checkpoint) after
    /// the range lost every replica: it may lack acknowledged updates, and
    /// takes a worker's pulls as evidence of its progress (see
    /// `ClockTable::record_progress`). A copy from a replica does not.
    pub lost_history: bool,
    /// Entries applied here that the successor has not acknowledged.
    pub(super) out: BTreeMap<u64, Entry>,
    /// Learners copying this replica.
    pub(super) learners: BTreeMap<NodeId, Learner>,
    /// Per successor: when we last repaired a gap of it with a snapshot.
    pub(super) repairs: BTreeMap<NodeId, std::time::Duration>,
    /// After this state was replaced by a repair (it holds entries it has
    /// no log of): how far the successor is known to hold them; until it
    /// acknowledges this state's whole log, no more is claimed acknowledged.
    pub(super) succ_floor: Option<u64>,
    pub(super) pending: Vec<PendingPull>,
    /// Pull filter: per worker, the values it holds after this replica's
    /// last answer, and their digest. Not replicated: another replica has
    /// no record, so its first answer is complete.
    pub(super) sent: BTreeMap<WorkerId, (u64, Vec<f32>)>,
}

impl Replica {
    /// A fresh replica of `range` holding the job's initial values
    /// ([`ProtocolConfig::initial_params`]: zeros for a linear model),
    /// counting `members`' starts.
    pub fn new(range: RangeId, cfg: &ProtocolConfig, members: &Membership) -> Replica {
        let keys = cfg.ranges.keys(range);
        Replica {
            range,
            params: cfg.initial_params(keys.clone()).into(),
            keys,
            table: ClockTable::from_membership(members),
            members: members.clone(),
            dedup: BTreeMap::new(),
            applied: 0,
            applied_digest: 0,
            log_index: 0,
            widened: 0,
            lost_history: false,
            out: BTreeMap::new(),
            learners: BTreeMap::new(),
            repairs: BTreeMap::new(),
            succ_floor: None,
            pending: Vec::new(),
            sent: BTreeMap::new(),
        }
    }

    /// A replica holding a copied (or checkpointed) state.
    pub fn from_state(range: RangeId, keys: Range<u32>, s: &RangeState) -> Replica {
        Replica {
            range,
            keys,
            params: s.params.clone(),
            table: ClockTable::from_entries(&s.table, &s.membership),
            members: s.membership.clone(),
            dedup: s.dedup.iter().map(|&(w, seq, i)| (w, (seq, i))).collect(),
            applied: s.applied,
            applied_digest: s.applied_digest,
            log_index: s.log_index,
            widened: s.widened,
            lost_history: false,
            out: BTreeMap::new(),
            learners: BTreeMap::new(),
            repairs: BTreeMap::new(),
            succ_floor: None,
            pending: Vec::new(),
            sent: BTreeMap::new(),
        }
    }

    /// The membership in force at this point of the log. Private so that
    /// it changes only together with the members the table counts.
    pub fn members(&self) -> &Membership {
        &self.members
    }

    /// The state to copy or checkpoint.
    pub fn state(&self) -> RangeState {
        RangeState {
            params: self.params.clone(),
            table: self.table_entries(),
            dedup: self.dedup_entries(),
            applied: self.applied,
            applied_digest: self.applied_digest,
            log_index: self.log_index,
            membership: self.members.clone(),
            widened: self.widened,
        }
    }

    /// Digest of the parameter bits, for replica comparison.
    pub fn params_digest(&self) -> u64 {
        let mut h = crate::core::hasher::BufXxh3::new();
        crate::core::msg::hash_values(&mut h, &self.params);
        h.into_digest()
    }

    /// Digests of the clock table and the dedup table, for replica
    /// comparison.
    pub fn table_digests(&self) -> (u64, u64) {
        (
            xxh3_64(format!("{:?}", self.table_entries()).as_bytes()),
            xxh3_64(format!("{:?}", self.dedup_entries()).as_bytes()),
        )
    }

    fn table_entries(&self) -> Vec<(WorkerId, u32, Clock)> {
        self.table
            .entries()
            .iter()
            .map(|(&w, &(inc, d))| (w, inc, d))
            .collect()
    }

    fn dedup_entries(&self) -> Vec<(WorkerId, Seq, u64)> {
        self.dedup.iter().map(|(&w, &(s, i))| (w, s, i)).collect()
    }

    /// Highest index that every replica after this one has applied.
    pub fn acked_upto(&self) -> u64 {
        let mine = self
            .out
            .first_key_value()
            .map_or(self.log_index, |(&i, _)| i - 1);
        mine.min(self.succ_floor.unwrap_or(u64::MAX))
    }

    /// Whether nothing is waiting to be replicated.
    pub fn is_quiet(&self) -> bool {
        self.out.is_empty() && self.learners.is_empty()
    }

    /// Applies entry `e` (the next in the log). Returns whether it was a
    /// push that changed the parameters, or a widening (false for a
    /// membership, and under the `ack_without_apply` bug).
    pub(super) fn apply(&mut self, e: &Entry, lr: f32, cfg: &ProtocolConfig) -> bool {
        debug_assert_eq!(e.index, self.log_index + 1);
        self.log_index = e.index;
        let p = match &e.op {
            Op::Push(p) => p,
            Op::Membership(m) => {
                self.adopt(m);
                return false;
            }
            &Op::Widen { level, .. } => {
                debug_assert_eq!(level, self.widened + 1, "widenings apply in order");
                let map = &cfg.widen.step(level).maps[self.range as usize];
                self.params = crate::core::widen::apply(map, &self.params).into();
                self.widened = level;
                // Every worker's copy has a new shape: answer in full.
                self.sent.clear();
                return true;
            }
        };
        self.table.record_push(p.worker, p.seq.incarnation, p.clock);
        self.dedup.insert(p.worker, (p.seq, e.index));
        if cfg.bugs.has(Bug::AckWithoutApply) && p.seq.n % 7 == 3 {
            return false; // Planted bug: recorded, acknowledged, never applied.
        }
        // A dense push is as long as the range, but for a push computed on
        // the model before a widening the head applied (only under the
        // `widen_early` bug: the head refuses those): its keys are the
        // first ones, which keep their positions.
        let n = match (&p.keys, &p.values) {
            (Keys::All, v) if cfg.bugs.has(Bug::WidenEarly) && v.len() < self.params.len() => {
                v.len()
            }
            _ => self.params.len(),
        };
        match (&p.keys, &p.values) {
            (Keys::All, Payload::Dense(v)) => {
                assert_eq!(v.len(), n, "dense push of the wrong length");
                for (x, g) in self.params.make_mut().iter_mut().zip(v.iter()) {
                    *x -= lr * g;
                }
            }
            (Keys::All, v) => {
                assert_eq!(v.len(), n, "dense push of the wrong length");
                let params = self.params.make_mut();
                v.for_each(|i, g| params[i] -= lr * g);
            }
            (Keys::List(ks), v) => {
                let (params, start) = (self.params.make_mut(), self.keys.start);
                v.for_each(|i, g| params[(ks[i] - start) as usize] -= lr * g);
            }
        }
        self.applied += 1;
        self.applied_digest = self.applied_digest.wrapping_add(push_hash(p.worker, p.seq));
        true
    }

    /// A membership takes effect here: the gate counts its members from
    /// their start clocks, and its fences hold from now on.
    pub(super) fn adopt(&mut self, m: &Membership) {
        if m.version <= self.members.version {
            return;
        }
        self.table.admit(m);
        let mut fences = std::mem::take(&mut self.members.fences);
        for (&w, &(inc, clock)) in &m.fences {
            let f = fences.entry(w).or_insert((inc, clock));
            *f = (*f).max((inc, clock));
        }
        self.members = Membership {
            version: m.version,
            members: m.members.clone(),
            fences,
        };
    }

    /// The answer to a pull of `keys` by `worker`, who holds values with
    /// digest `base`: under the pull filter (dense pulls), only the values
    /// that moved at least `threshold` since this replica's last answer
    /// to it, if the worker holds that answer; else every value. Also
    /// returns the digest of what the worker holds once it applied the
    /// answer (0: not filtered), and for a partial answer the digest of
    /// the copy it applies to.
    pub(super) fn read(
        &mut self,
        keys: &Keys,
        worker: WorkerId,
        base: u64,
        threshold: f32,
        bugs: crate::core::Bugs,
    ) -> (Payload, u64, u64) {
        match keys {
            Keys::All if threshold > 0.0 => {
                let trust = bugs.has(Bug::FilterIgnoresBase);
                let (p, held) = match self.sent.remove(&worker) {
                    Some((digest, mut held)) if digest == base || trust => {
                        (codec::filtered(&self.params, &mut held, threshold), held)
                    }
                    // The worker does not hold our last answer: all of it.
                    _ => (Payload::Dense(self.params.clone()), self.params.to_vec()),
                };
                let digest = codec::held_digest(&held);
                self.sent.insert(worker, (digest, held));
                let applies_to = if matches!(p, Payload::Dense(_)) {
                    0
                } else {
                    base
                };
                (p, digest, applies_to)
            }
            Keys::All => (Payload::Dense(self.params.clone()), 0, 0),
            Keys::List(ks) => (
                Payload::Dense(
                    ks.iter()
                        .map(|&k| self.params[(k - self.keys.start) as usize])
                        .collect(),
                ),
                0,
                0,
            ),
        }
    }
}

/// Hash of one push's identity, summed into [`Replica::applied_digest`].
pub fn push_hash(worker: WorkerId, seq: Seq) -> u64 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&worker.to_le_bytes());
    b[4..8].copy_from_slice(&seq.incarnation.to_le_bytes());
    b[8..].copy_from_slice(&seq.n.to_le_bytes());
    xxh3_64(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::msg::Push;
    use crate::core::Bugs;

    #[test]
    fn a_pull_answer_shares_the_parameters_and_keeps_what_it_read() {
        let cfg = ProtocolConfig::single_server(8);
        let mut rep = Replica::new(0, &cfg, &Membership::initial(1));
        let (answer, _, _) = rep.read(&Keys::All, 0, 0, 0.0, Bugs::NONE);
        let Payload::Dense(read) = &answer else {
            panic!("a full answer is dense: {answer:?}")
        };
        assert!(Floats::ptr_eq(read, &rep.params), "answered without a copy");
        let before = read.to_vec();
        let push = Entry {
            index: 1,
            op: Op::Push(Push {
                worker: 0,
                seq: Seq {
                    incarnation: 0,
                    n: 1,
                },
                clock: Clock(0),
                keys: Keys::All,
                values: Payload::Dense(vec![1.0; 8].into()),
                lr: 0.5,
            }),
        };
        assert!(rep.apply(&push, 0.5, &cfg));
        assert_eq!(*read, before, "the answer keeps the values it read");
        assert_eq!(rep.params[0], before[0] - 0.5, "the replica moved on");
        assert!(!Floats::ptr_eq(read, &rep.params));
        drop(answer);
        let moved = rep.params.as_ptr();
        assert!(rep.apply(&Entry { index: 2, ..push }, 0.5, &cfg));
        assert_eq!(rep.params.as_ptr(), moved, "unshared: applied in place");
    }
}
