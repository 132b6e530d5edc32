//! `staleness_bound`: no read breaks the SSP bound in force, exactly as
//! ../shared/scenario-format.md (version 2, "Staleness, exactly") states
//! it.
//!
//! A push *counts* if it was acknowledged to its worker, or if it is in the
//! state of some `final` replica at the end. For a read (`pull_answered`)
//! by a worker that is a member when it is answered, at clock `c` under
//! bound `s`, answered by a replica of range `r`: every push to `r` that
//! counts, made by a worker that is a member when the read is answered,
//! for any clock `k <= c - s - 1` — whichever life of the worker made it —
//! must already be applied in the state that answers. So:
//!
//! - **missing at the read**: a push applied somewhere (or acknowledged)
//!   before the read but not in the answering state;
//! - **late**: a push applied anywhere for the first time only after such
//!   a read, even if its worker was removed and re-admitted in between.
//!
//! Both are violations if the push counts, which is known only at the end
//! (a push that vanished unacknowledged does not count), so candidates are
//! judged then. There is no excuse for a replica that lost its history,
//! for a reader's or a replica's view, or for an admission clock.
//!
//! The checker rebuilds what each replica holds from `push_applied`
//! events, through crashes, snapshots, checkpoints and restores
//! ([`Lineage`]), and membership from `worker_admitted` /
//! `worker_removed`; it never looks at a server's own clock table.
//!
//! A read costs O(log n) in the number of workers, not a walk over the
//! members: a [`StalenessIndex`] says whether the state read misses a
//! push it needs of any member (only then, the rare case, are the members
//! walked to name what is missing, as before) and how far behind the read
//! is; the read a late push is judged against is kept per range since the
//! membership last changed, and per worker only for earlier reads
//! ([`Coverage`]). The walk this replaced is kept as a test-only reference
//! (`staleness_reference.rs`) that random traces must agree with.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::intervals::IntervalSet;
use super::life_map::{IdMap, LifeMap};
use super::lineage::Lineage;
use super::staleness_index::{latest_prefix, Held, Known, Life, StalenessIndex};
use super::{Report, Violation, Violations};
use crate::core::{Clock, Event, NodeId, RangeId, WorkerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// A push that breaks the bound if it counts: its range, life and clock,
/// and the violation it is.
type Candidate = (RangeId, Life, u64, Violation);

/// A read that missed only pushes not acknowledged at the time: the
/// violation it is if one of them counts, its range, and those pushes.
type Deferred = (Violation, RangeId, Vec<(Life, u64)>);

/// A read, for reporting a late update against it.
#[derive(Clone, Copy, Debug)]
struct Read {
    t: Duration,
    server: NodeId,
    reader: WorkerId,
    clock: Clock,
    bound: u32,
}

/// Per (range, worker): the read with the highest last needed clock
/// (the latest of equals) among reads of the range made while the worker
/// was a member: a push of the worker first known later breaks the bound
/// for it if its clock is at most that. Kept in two parts, so a read
/// updates one entry and not one per member: the best read of each range
/// since the membership last changed (every member now was a member
/// then), and per worker the best of earlier reads, settled when the
/// membership changes.
#[derive(Debug, Default)]
struct Coverage {
    /// Per range: the best read since the membership last changed.
    current: BTreeMap<RangeId, (u64, Read)>,
    /// Per (range, worker): the best read before that, while a member.
    settled: BTreeMap<(RangeId, WorkerId), (u64, Read)>,
}

/// The best of `earlier` and `later`: the higher last needed clock, the
/// later read of equals.
fn best(earlier: Option<(u64, Read)>, later: Option<(u64, Read)>) -> Option<(u64, Read)> {
    match (earlier, later) {
        (Some(e), Some(l)) => Some(if l.0 >= e.0 { l } else { e }),
        (e, l) => l.or(e),
    }
}

impl Coverage {
    /// A read of `range` by a member needing clocks `<= last_needed`.
    fn read(&mut self, range: RangeId, last_needed: u64, read: Read) {
        let c = self.current.entry(range).or_insert((last_needed, read));
        if last_needed >= c.0 {
            *c = (last_needed, read);
        }
    }

    /// The membership is about to change: the reads so far count for the
    /// workers that are members until now.
    fn settle(&mut self, members: &IdMap<u32>) {
        for (range, read) in std::mem::take(&mut self.current) {
            for (w, _) in members.iter() {
                let e = self.settled.get(&(range, w)).copied();
                if let Some(b) = best(e, Some(read)) {
                    self.settled.insert((range, w), b);
                }
            }
        }
    }

    /// The best read of `range` for `worker` (a member now or not).
    fn get(&self, range: RangeId, worker: WorkerId, member: bool) -> Option<(u64, Read)> {
        let current = if member {
            self.current.get(&range).copied()
        } else {
            None
        };
        best(self.settled.get(&(range, worker)).copied(), current)
    }
}

/// The checker.
#[derive(Debug)]
pub struct StalenessCheck {
    /// Members now (worker index; any life of it counts).
    members: IdMap<u32>,
    /// Per replica: what its state holds.
    applied: Lineage<Held>,
    /// Per (range, life): clocks applied at some replica, or acknowledged,
    /// so far.
    known: Known,
    /// Per (range, life): clocks acknowledged so far.
    acked: IdMap<LifeMap<IntervalSet>>,
    /// Per replica: what a read asks of it, kept in step.
    index: StalenessIndex,
    /// Per (range, worker): the read a late push is judged against.
    covered: Coverage,
    /// Late pushes: they break the bound if they count.
    candidates: Vec<Candidate>,
    /// Reads that missed pushes not acknowledged then.
    deferred: Vec<Deferred>,
    /// Reads that missed an acknowledged push.
    violations: Violations,
    reads: u64,
    /// Per reader: how many clocks behind its own each read was (see
    /// [`StalenessCheck::histogram`]).
    behind: BTreeMap<(WorkerId, u32), u64>,
    /// The final replicas (from `final` events).
    finals: Vec<(NodeId, RangeId)>,
    /// Reads the index cleared without walking the members, and reads
    /// that walked them (tests).
    #[cfg(test)]
    paths: (u64, u64),
}

impl StalenessCheck {
    /// A checker for a job of `workers` workers. Membership comes from the
    /// trace (its initial `worker_admitted` events); the workers are
    /// assumed members until the first such event, for traces without them.
    pub fn new(workers: u32) -> StalenessCheck {
        StalenessCheck {
            members: {
                let mut m = IdMap::default();
                for w in 0..workers {
                    m.insert(w, 0);
                }
                m
            },
            applied: Lineage::default(),
            known: Known::default(),
            acked: IdMap::default(),
            index: StalenessIndex::default(),
            covered: Coverage::default(),
            candidates: Vec::new(),
            deferred: Vec::new(),
            violations: Violations::default(),
            reads: 0,
            behind: BTreeMap::new(),
            finals: Vec::new(),
            #[cfg(test)]
            paths: (0, 0),
        }
    }

    /// Observes one event.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        self.applied.observe(ev);
        self.index.observe(ev);
        match *ev {
            Event::WorkerAdmitted {
                worker,
                incarnation,
                ..
            } => {
                self.covered.settle(&self.members);
                self.members.insert(worker, incarnation);
            }
            Event::WorkerRemoved { worker, .. } => {
                self.covered.settle(&self.members);
                self.members.remove(worker);
            }
            Event::Final { server, range, .. } => self.finals.push((server, range)),
            Event::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
                ..
            } => {
                let life = (worker, seq.incarnation);
                let k = u64::from(clock.0);
                // (`first_known` does not look at what replicas hold.)
                let first = self.first_known(t, range, life, clock, server);
                let held = &mut self.applied.get_mut(server, range).state;
                let old_prefix = latest_prefix(held, worker);
                held.entry(life).insert(k);
                let known = self
                    .known
                    .get(range)
                    .and_then(|m| m.get(&life))
                    .expect("first_known records it");
                self.index
                    .applied(server, range, life, k, held, known, old_prefix);
                if first {
                    self.index.became_known(range, life, k, &self.applied);
                }
            }
            Event::PushAcked {
                worker,
                range,
                seq,
                clock,
            } => {
                let life = (worker, seq.incarnation);
                self.acked
                    .get_or_insert_with(range, LifeMap::new)
                    .entry(life)
                    .insert(u64::from(clock.0));
                // An acknowledged push counts even if no replica applied it.
                if self.first_known(t, range, life, clock, NodeId::Worker(worker)) {
                    let k = u64::from(clock.0);
                    self.index.became_known(range, life, k, &self.applied);
                }
            }
            Event::PullAnswered {
                server,
                range,
                worker,
                clock,
                bound,
            } => {
                if self.members.get(worker).is_none() {
                    // The bound is promised to members.
                    return;
                }
                self.record_behind(server, range, worker, clock);
                let Some(bound) = bound else { return };
                self.reads += 1;
                let Some(last_needed) = clock.0.checked_sub(bound + 1) else {
                    return;
                };
                let read = Read {
                    t,
                    server,
                    reader: worker,
                    clock,
                    bound,
                };
                self.judge_read(range, u64::from(last_needed), read);
            }
            _ => {}
        }
    }

    /// A push becomes known (applied somewhere, or acknowledged): if it
    /// was known nowhere before, every read already made that needed it
    /// missed it — a late update if it counts. Returns whether it was
    /// known nowhere before.
    fn first_known(
        &mut self,
        t: Duration,
        range: RangeId,
        life: Life,
        clock: Clock,
        at: NodeId,
    ) -> bool {
        let k = u64::from(clock.0);
        if !self
            .known
            .get_or_insert_with(range, LifeMap::new)
            .entry(life)
            .insert(k)
        {
            return false;
        }
        let worker = life.0;
        let member = self.members.get(worker).is_some();
        if let Some((last_needed, read)) = self.covered.get(range, worker, member) {
            if k <= last_needed {
                self.candidates.push((
                    range,
                    life,
                    k,
                    Violation::LateUpdate {
                        t: read.t,
                        server: read.server,
                        range,
                        reader: read.reader,
                        clock: read.clock,
                        bound: read.bound,
                        worker,
                        missing_clock: clock,
                        applied_t: t,
                        applied_at: at,
                    },
                ));
            }
        }
        true
    }

    /// Checks one read against every member's pushes known so far, and
    /// remembers it for pushes that arrive later. A missing push already
    /// acknowledged makes the read a violation at once; one not (yet)
    /// acknowledged is judged at the end. The members are walked only if
    /// the index says the state misses something a member pushed.
    fn judge_read(&mut self, range: RangeId, last_needed: u64, read: Read) {
        self.covered.read(range, last_needed, read);
        let held = self.applied.get_mut(read.server, range);
        let members = &self.members;
        let misses = self
            .index
            .summary(read.server, range, &held.state, &self.known)
            .misses(last_needed, |w| members.get(w).is_some());
        if !misses {
            #[cfg(test)]
            {
                self.paths.0 += 1;
            }
            return;
        }
        #[cfg(test)]
        {
            self.paths.1 += 1;
        }
        let empty = IntervalSet::default();
        let mut deferred = Vec::new();
        let mut first_acked = None;
        let (known, acked) = (self.known.get(range), self.acked.get(range));
        for (w, _) in self.members.iter() {
            // Every life of `w` with pushes to this range known so far.
            for &(life, ref known) in known.map_or(&[][..], |m| m.lives(w)) {
                let have = held.state.get(&(w, life)).unwrap_or(&empty);
                let acked = acked.and_then(|m| m.get(&(w, life))).unwrap_or(&empty);
                for (a, b) in known.spans() {
                    let b = b.min(last_needed + 1);
                    if a >= b {
                        break;
                    }
                    for (ga, gb) in have.gaps(a, b) {
                        for k in ga..gb {
                            if acked.contains(k) {
                                first_acked.get_or_insert((w, k));
                            } else {
                                deferred.push(((w, life), k));
                            }
                        }
                    }
                }
            }
        }
        let violation = |(w, k): (WorkerId, u64)| Violation::StaleRead {
            t: read.t,
            server: read.server,
            range,
            reader: read.reader,
            clock: read.clock,
            bound: read.bound,
            missing_worker: w,
            missing_clock: Clock(k as u32),
        };
        if let Some(first) = first_acked {
            self.violations.push(violation(first));
        } else if let Some(&((w, _), k)) = deferred.first() {
            self.deferred.push((violation((w, k)), range, deferred));
        }
    }

    /// How far behind a read by `reader` at `clock` is: `clock` minus the
    /// fewest clocks of any member the replica has applied without a gap,
    /// counting each member's latest life known at the replica from the
    /// first clock it holds (0: it sees every member up to the reader's
    /// own clock).
    fn record_behind(&mut self, server: NodeId, range: RangeId, reader: WorkerId, clock: Clock) {
        let Some(rep) = self.applied.get(server, range) else {
            return;
        };
        let c = u64::from(clock.0);
        let members = &self.members;
        let seen = self
            .index
            .summary(server, range, &rep.state, &self.known)
            .least_prefix(|w| members.get(w).is_some())
            .map_or(c, |end| end.min(c));
        *self.behind.entry((reader, (c - seen) as u32)).or_default() += 1;
    }

    /// Reads by members, per reader and per clocks behind: a read by `v`
    /// at clock `c` is `c - min_w d_w` clocks behind, where member `w`'s
    /// updates of clocks `< d_w` are all applied at the replica read. Under
    /// SSP with bound `s` every read is at most `s` behind.
    pub fn histogram(&self) -> &BTreeMap<(WorkerId, u32), u64> {
        &self.behind
    }

    /// Reads the index cleared, and reads that walked the members.
    #[cfg(test)]
    pub(super) fn paths(&self) -> (u64, u64) {
        self.paths
    }

    /// Whether the index kept in step equals the one built from scratch.
    #[cfg(test)]
    pub(super) fn audit(&self) -> Result<(), String> {
        self.index.audit(&self.applied, &self.known)
    }

    /// Reads checked so far (pulls answered under SSP or BSP).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Whether a push counts: acknowledged, or in a final replica's state.
    fn counts(&self, range: RangeId, life: Life, k: u64) -> bool {
        self.acked
            .get(range)
            .and_then(|m| m.get(&life))
            .is_some_and(|s| s.contains(k))
            || self.finals.iter().any(|&(s, r)| {
                r == range
                    && self
                        .applied
                        .get(s, r)
                        .and_then(|t| t.state.get(&life))
                        .is_some_and(|set| set.contains(k))
            })
    }

    /// The verdict: reads that missed an acknowledged push, reads that
    /// missed a push that counts in the end, and late pushes that count.
    pub fn report(&self, enabled: bool) -> Report {
        let mut v = self.violations.clone();
        for (violation, range, missing) in &self.deferred {
            if missing
                .iter()
                .any(|&(life, k)| self.counts(*range, life, k))
            {
                v.push(violation.clone());
            }
        }
        for (range, life, k, violation) in &self.candidates {
            if self.counts(*range, *life, *k) {
                v.push(violation.clone());
            }
        }
        v.report("staleness_bound", enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{NodeId, Seq};

    const S0: NodeId = NodeId::Server(0);
    const S1: NodeId = NodeId::Server(1);

    fn applied_at(server: NodeId, w: WorkerId, inc: u32, c: u32) -> Event {
        Event::PushApplied {
            server,
            range: 0,
            worker: w,
            seq: Seq {
                incarnation: inc,
                n: u64::from(c),
            },
            clock: Clock(c),
            index: None,
        }
    }

    fn applied(w: WorkerId, c: u32) -> Event {
        applied_at(S0, w, 0, c)
    }

    fn acked(w: WorkerId, inc: u32, c: u32) -> Event {
        Event::PushAcked {
            worker: w,
            range: 0,
            seq: Seq {
                incarnation: inc,
                n: u64::from(c),
            },
            clock: Clock(c),
        }
    }

    fn read_at(server: NodeId, w: WorkerId, c: u32, bound: u32) -> Event {
        Event::PullAnswered {
            server,
            range: 0,
            worker: w,
            clock: Clock(c),
            bound: Some(bound),
        }
    }

    fn read(w: WorkerId, c: u32, bound: u32) -> Event {
        read_at(S0, w, c, bound)
    }

    fn run(events: &[Event]) -> Report {
        let mut chk = StalenessCheck::new(2);
        for e in events {
            chk.observe(Duration::ZERO, e);
        }
        chk.report(true)
    }

    #[test]
    fn reads_within_the_bound_pass() {
        let r = run(&[applied(0, 0), applied(1, 0), read(0, 1, 0), read(1, 3, 2)]);
        assert_eq!(r.total, 0, "{:?}", r.violations);
    }

    #[test]
    fn a_read_missing_a_required_update_fails_and_names_it() {
        let r = run(&[
            applied(0, 0),
            applied(0, 1),
            applied(1, 0),
            applied_at(S1, 1, 0, 1),
            acked(1, 0, 1),
            read(0, 2, 0),
        ]);
        assert_eq!(r.total, 1);
        match &r.violations[0] {
            Violation::StaleRead {
                missing_worker,
                missing_clock,
                ..
            } => assert_eq!((*missing_worker, *missing_clock), (1, Clock(1))),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_push_applied_only_after_a_read_that_needed_it_is_late() {
        // Worker 1 is removed and re-admitted at clock 12 (its life 0);
        // worker 0 reads clock 13 under bound 2 (needs clocks <= 10); only
        // then is worker 1's clock-2 push applied and acknowledged.
        let removed = Event::WorkerRemoved {
            worker: 1,
            incarnation: 0,
        };
        let admitted = Event::WorkerAdmitted {
            worker: 1,
            incarnation: 0,
            clock: Clock(12),
        };
        let mut late = vec![applied(1, 0), applied(1, 1), removed.clone()];
        late.extend([
            admitted.clone(),
            read(0, 13, 2),
            applied(1, 2),
            acked(1, 0, 2),
        ]);
        let r = run(&late);
        assert_eq!(r.total, 1, "{:?}", r.violations);
        assert!(matches!(r.violations[0], Violation::LateUpdate { .. }));
        // Had the push vanished (never acknowledged, in no final replica),
        // it would not count.
        let mut vanished = vec![applied(1, 0), applied(1, 1), removed, admitted];
        vanished.extend([
            read(0, 13, 2),
            applied(1, 2),
            Event::Crash { node: S0 },
            Event::Final {
                server: S1,
                range: 0,
                digest: String::new(),
                applied: 0,
                applied_set: String::new(),
                clock_table: String::new(),
                dedup_table: String::new(),
            },
        ]);
        assert_eq!(run(&vanished).total, 0);
    }

    #[test]
    fn reads_by_removed_workers_are_not_judged_and_removed_workers_not_needed() {
        let r = run(&[
            applied(0, 0),
            Event::WorkerRemoved {
                worker: 1,
                incarnation: 0,
            },
            read(0, 1, 0),
            Event::WorkerRemoved {
                worker: 0,
                incarnation: 0,
            },
            read(0, 9, 0),
        ]);
        assert_eq!(r.total, 0, "{:?}", r.violations);
    }

    #[test]
    fn a_replica_that_lost_acknowledged_updates_has_no_excuse() {
        let base = [
            applied(0, 0),
            applied(1, 0),
            acked(0, 0, 0),
            acked(1, 0, 0),
            Event::Crash { node: S0 },
        ];
        let mut lost = base.to_vec();
        lost.push(read(0, 1, 0));
        assert_eq!(run(&lost).total, 1);
        // A read that needs nothing lost passes.
        let mut fine = base.to_vec();
        fine.push(read(0, 0, 0));
        assert_eq!(run(&fine).total, 0);
    }

    #[test]
    fn a_snapshot_carries_the_source_state_at_the_instant_it_was_taken() {
        let sent = Event::SnapshotSent {
            server: S0,
            range: 0,
            to: S1,
            id: "server-0.0.1".into(),
        };
        let installed = Event::SnapshotInstalled {
            server: S1,
            range: 0,
            from: S0,
            id: "server-0.0.1".into(),
        };
        // The snapshot is taken before worker 1's clock-0 push reaches S0;
        // the learner never applies it: a read at S1 misses it.
        let stale = [
            applied(0, 0),
            sent.clone(),
            applied(1, 0),
            acked(1, 0, 0),
            installed.clone(),
            read_at(S1, 0, 1, 0),
        ];
        assert_eq!(run(&stale).total, 1);
        // With the entry forwarded to the learner after the snapshot, fine.
        let fine = [
            applied(0, 0),
            sent,
            applied(1, 0),
            acked(1, 0, 0),
            installed,
            applied_at(S1, 1, 0, 0),
            read_at(S1, 0, 1, 0),
        ];
        assert_eq!(run(&fine).total, 0);
    }
}
