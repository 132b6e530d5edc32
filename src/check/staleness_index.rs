//! What the staleness checker asks of a replica on every read, answered
//! without walking every member: per replica, kept in step with the events,
//!
//! - per worker life, the least clock *known* (applied somewhere, or
//!   acknowledged) that this replica's state does not hold: a read that
//!   needs clocks `<= L` misses nothing if no member's life has one `<= L`;
//! - per worker, where the gap-free run of clocks its latest life holds
//!   here ends (how far behind a read is).
//!
//! Both are ordered by clock, so a read looks at the least and skips only
//! the non-members below it: O(log n) in the number of workers, not a
//! walk over the members. A replica's summary is built from scratch the
//! first time a read asks about it and then updated as pushes are applied
//! and become known; the events that replace a replica's state wholesale
//! ([`Lineage`]: a server's crash, `replica_dropped`, `snapshot_installed`,
//! `restore`) discard it, and the next read builds it again.
//!
//! May import: `crate::check`, `crate::core` (events, ids), smallvec.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`: a checker
//! judges from events only.

use super::intervals::IntervalSet;
use super::life_map::{IdMap, LifeMap};
use super::lineage::Lineage;
use crate::core::{Event, NodeId, RangeId, WorkerId};
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// One worker life: (worker, incarnation).
pub type Life = (WorkerId, u32);

/// Per replica: per worker life, the clocks applied.
pub type Held = LifeMap<IntervalSet>;

/// Per range, per life: clocks known (applied at some replica, or
/// acknowledged).
pub type Known = IdMap<LifeMap<IntervalSet>>;

/// The summaries of the replicas reads asked about.
#[derive(Debug, Default)]
pub struct StalenessIndex {
    /// Per range, per replica.
    summaries: BTreeMap<RangeId, BTreeMap<NodeId, Summary>>,
}

/// One replica's summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Per life with a clock known but not held here: the least such clock.
    missing: LifeMap<u64>,
    /// The same, by clock.
    missing_order: BTreeSet<(u64, Life)>,
    /// Per worker whose latest life here holds something, the end of the
    /// first run of clocks it holds ([`latest_prefix`] of the state), by
    /// that end: the workers (in id order) whose run ends there. The ends
    /// of a run's workers lie within a few clocks of each other, so this
    /// has a few entries where a set of `(end, worker)` had one per worker,
    /// and moving a worker costs two small lookups, not two walks of a tree
    /// of every worker. A worker's end itself is not kept: the state says
    /// it (the caller reads it before a push changes it).
    prefix_order: BTreeMap<u64, SmallVec<[WorkerId; 8]>>,
}

/// The least clock of `known` not in `held`.
fn first_missing(known: &IntervalSet, held: Option<&IntervalSet>) -> Option<u64> {
    known.spans().find_map(|(a, b)| {
        let x = held.map_or(a, |h| h.first_missing(a));
        (x < b).then_some(x)
    })
}

/// Where the first run of clocks of `worker`'s latest life in `held` ends.
pub fn latest_prefix(held: &Held, worker: WorkerId) -> Option<u64> {
    held.lives(worker)
        .last()
        .and_then(|(_, set)| set.spans().next())
        .map(|(_, end)| end)
}

impl Summary {
    /// The summary of a replica holding `held`, for range `range`.
    fn build(range: RangeId, held: &Held, known: &Known) -> Summary {
        let mut s = Summary::default();
        for (life, set) in known.get(range).into_iter().flat_map(LifeMap::iter) {
            s.set_missing(life, first_missing(set, held.get(&life)));
        }
        for w in held.workers() {
            s.move_prefix(w, None, latest_prefix(held, w));
        }
        s
    }

    fn set_missing(&mut self, life: Life, clock: Option<u64>) {
        if let Some(old) = self.missing.remove(&life) {
            self.missing_order.remove(&(old, life));
        }
        if let Some(k) = clock {
            self.missing.insert(life, k);
            self.missing_order.insert((k, life));
        }
    }

    /// `worker`'s first run now ends at `end`; it ended at `old`.
    fn move_prefix(&mut self, worker: WorkerId, old: Option<u64>, end: Option<u64>) {
        if old == end {
            return;
        }
        if let Some(old) = old {
            let ws = self
                .prefix_order
                .get_mut(&old)
                .expect("a worker's prefix is in the order");
            let at = ws.binary_search(&worker).expect("listed at its end");
            ws.remove(at);
            if ws.is_empty() {
                self.prefix_order.remove(&old);
            }
        }
        if let Some(e) = end {
            let ws = self.prefix_order.entry(e).or_default();
            let at = ws.binary_search(&worker).unwrap_err();
            ws.insert(at, worker);
        }
    }

    /// Whether some life of a member has a clock `<= last_needed` known
    /// but not held here.
    pub fn misses(&self, last_needed: u64, is_member: impl Fn(WorkerId) -> bool) -> bool {
        self.missing_order
            .iter()
            .take_while(|&&(k, _)| k <= last_needed)
            .any(|&(_, (w, _))| is_member(w))
    }

    /// The least end of a first run of clocks over members whose latest
    /// life holds something here (`None`: no such member).
    pub fn least_prefix(&self, is_member: impl Fn(WorkerId) -> bool) -> Option<u64> {
        self.prefix_order
            .iter()
            .find(|(_, ws)| ws.iter().any(|&w| is_member(w)))
            .map(|(&end, _)| end)
    }
}

impl StalenessIndex {
    /// Discards the summaries of states the event replaces; call for
    /// every event, with [`Lineage::observe`].
    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::Crash { node } if node.server().is_some() => {
                for reps in self.summaries.values_mut() {
                    reps.remove(node);
                }
            }
            Event::ReplicaDropped { server, range }
            | Event::SnapshotInstalled { server, range, .. }
            | Event::Restore { server, range } => {
                if let Some(reps) = self.summaries.get_mut(range) {
                    reps.remove(server);
                }
            }
            _ => {}
        }
    }

    /// The summary of `server`'s replica of `range`, whose state is
    /// `held`, built if no read asked about it since its state was last
    /// replaced.
    pub fn summary(
        &mut self,
        server: NodeId,
        range: RangeId,
        held: &Held,
        known: &Known,
    ) -> &Summary {
        self.summaries
            .entry(range)
            .or_default()
            .entry(server)
            .or_insert_with(|| Summary::build(range, held, known))
    }

    /// `server` applied clock `k` of `life` to its replica of `range`
    /// (`held` and `known` already hold it; before it did, the worker's
    /// [`latest_prefix`] there was `old_prefix`).
    #[allow(clippy::too_many_arguments)]
    pub fn applied(
        &mut self,
        server: NodeId,
        range: RangeId,
        life: Life,
        k: u64,
        held: &Held,
        known: &IntervalSet,
        old_prefix: Option<u64>,
    ) {
        let Some(s) = self
            .summaries
            .get_mut(&range)
            .and_then(|r| r.get_mut(&server))
        else {
            return;
        };
        // (Nothing is missing here in most runs: no lookup then.)
        if !s.missing_order.is_empty() && s.missing.get(&life) == Some(&k) {
            s.set_missing(life, first_missing(known, held.get(&life)));
        }
        s.move_prefix(life.0, old_prefix, latest_prefix(held, life.0));
    }

    /// Clock `k` of `life`'s pushes to `range` is known for the first
    /// time: every replica not holding it now misses it.
    pub fn became_known(&mut self, range: RangeId, life: Life, k: u64, lineage: &Lineage<Held>) {
        let Some(reps) = self.summaries.get_mut(&range) else {
            return;
        };
        for (&node, s) in reps.iter_mut() {
            let held = lineage
                .get(node, range)
                .map(|t| &t.state)
                .expect("a summarized replica holds a state");
            if held.get(&life).is_some_and(|set| set.contains(k)) {
                continue;
            }
            let least = s.missing.get(&life).map_or(k, |&m| m.min(k));
            s.set_missing(life, Some(least));
        }
    }

    /// Whether every summary kept equals the one built from scratch now
    /// (and its replica holds a state).
    #[cfg(test)]
    pub fn audit(&self, lineage: &Lineage<Held>, known: &Known) -> Result<(), String> {
        for (&range, reps) in &self.summaries {
            for (&node, kept) in reps {
                let Some(t) = lineage.get(node, range) else {
                    return Err(format!("{node:?} range {range}: summary of no state"));
                };
                let built = Summary::build(range, &t.state, known);
                if *kept != built {
                    return Err(format!(
                        "{node:?} range {range}: kept {kept:?}, built {built:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[u64]) -> IntervalSet {
        let mut s = IntervalSet::default();
        for &x in xs {
            s.insert(x);
        }
        s
    }

    #[test]
    fn the_first_missing_clock_skips_clocks_known_nowhere() {
        // Clocks 3 and 4 were never pushed to this range (known has a gap).
        let known = set(&[0, 1, 2, 5, 6, 7]);
        assert_eq!(first_missing(&known, Some(&set(&[0, 1, 2, 5]))), Some(6));
        assert_eq!(first_missing(&known, Some(&set(&[0, 1, 2, 5, 6, 7]))), None);
        assert_eq!(first_missing(&known, None), Some(0));
    }

    #[test]
    fn non_members_below_the_threshold_are_skipped() {
        let mut held = Held::new();
        held.insert((0, 0), set(&[0, 1, 2, 3]));
        held.insert((1, 0), set(&[0]));
        let mut known = Known::default();
        let k0 = known.get_or_insert_with(0, LifeMap::new);
        k0.insert((0, 0), set(&[0, 1, 2, 3]));
        k0.insert((1, 0), set(&[0, 1, 2]));
        let s = Summary::build(0, &held, &known);
        assert!(s.misses(1, |_| true));
        assert!(!s.misses(0, |_| true));
        assert!(!s.misses(9, |w| w == 0));
        assert_eq!(s.least_prefix(|_| true), Some(1));
        assert_eq!(s.least_prefix(|w| w == 0), Some(4));
        assert_eq!(s.least_prefix(|_| false), None);
    }
}
