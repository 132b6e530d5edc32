//! `staleness_bound`: no read breaks the SSP bound in force.
//!
//! A read by worker `v` at clock `c` under bound `s` must see, for every
//! member `w`, every update of `w` of clocks `start_w ..= c - s - 1`, where
//! `start_w` is the clock `w` was (re)admitted at. An update of `w` for a
//! clock counts whichever life of `w` pushed it: a restarted worker
//! admitted at clock `k` may have pushed clock `k` in its earlier life, and
//! that update is a real, acknowledged update of `w` for clock `k`. The
//! checker rebuilds what each replica has applied from `push_applied`
//! events and follows membership from `worker_admitted` / `worker_removed`;
//! it never looks at a server's own clock table.
//!
//! Reads are judged for members only: a worker removed from the
//! membership (the coordinator presumes it dead) is not promised the bound
//! until it is re-admitted (it may be cut off together with a replica the
//! coordinator has removed, which does not learn of later admissions).
//!
//! One excuse: a replica whose history was cut (restarted empty, or
//! restored from a checkpoint) cannot show updates it lost. An update
//! already acknowledged before the read and absent from such a replica is
//! a lost update, counted by `no_lost_updates`, not a stale read. On any
//! other replica, a read missing only acknowledged updates is judged at the
//! end: a stale read if one of them reached the range's final replicas, a
//! lost update if none did (outside the fault model, a replica cut off and
//! acknowledging alone can lose updates the read replica never had).
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::intervals::IntervalSet;
use super::lineage::Lineage;
use super::{Report, Violation, Violations};
use crate::core::{Clock, Event, RangeId, WorkerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// A read that missed only acknowledged updates: the violation it would
/// be, its range, and the (worker, clock) updates it missed.
type Pending = (Violation, RangeId, Vec<(WorkerId, u64)>);

/// The checker.
#[derive(Debug)]
pub struct StalenessCheck {
    /// Members: incarnation admitted and the first clock counted.
    members: BTreeMap<WorkerId, (u32, u32)>,
    /// Per replica: per worker, the clocks applied (any life).
    applied: Lineage<BTreeMap<WorkerId, IntervalSet>>,
    /// Per (range, worker): clocks acknowledged so far (any life).
    acked: BTreeMap<(RangeId, WorkerId), IntervalSet>,
    reads: u64,
    violations: Violations,
    /// Per reader: how many clocks behind its own each read was (see
    /// [`StalenessCheck::histogram`]).
    behind: BTreeMap<(WorkerId, u32), u64>,
    /// Reads that missed only acknowledged updates: stale reads unless
    /// those updates turn out lost (judged at the end).
    pending: Vec<Pending>,
    /// The final replicas (from `final` events).
    finals: Vec<(crate::core::NodeId, RangeId)>,
    /// Servers in the last view published (none before the first).
    view: Option<std::collections::BTreeSet<crate::core::NodeId>>,
}

impl StalenessCheck {
    /// A checker for a job whose workers `0..workers` start at clock 0.
    pub fn new(workers: u32) -> StalenessCheck {
        StalenessCheck {
            members: (0..workers).map(|w| (w, (0, 0))).collect(),
            applied: Lineage::default(),
            acked: BTreeMap::new(),
            reads: 0,
            violations: Violations::default(),
            behind: BTreeMap::new(),
            pending: Vec::new(),
            finals: Vec::new(),
            view: None,
        }
    }

    /// Observes one event.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        self.applied.observe(ev);
        match *ev {
            Event::WorkerAdmitted {
                worker,
                incarnation,
                clock,
            } => {
                self.members.insert(worker, (incarnation, clock.0));
            }
            Event::WorkerRemoved { worker, .. } => {
                self.members.remove(&worker);
            }
            Event::Final { server, range, .. } => self.finals.push((server, range)),
            Event::View { ref chains, .. } => {
                self.view = Some(chains.iter().flatten().copied().collect());
            }
            Event::PushApplied {
                server,
                range,
                worker,
                clock,
                ..
            } => {
                let rep = self.applied.get_mut(server, range);
                rep.state
                    .entry(worker)
                    .or_default()
                    .insert(u64::from(clock.0));
            }
            Event::PushAcked {
                worker,
                range,
                clock,
                ..
            } => {
                self.acked
                    .entry((range, worker))
                    .or_default()
                    .insert(u64::from(clock.0));
            }
            Event::PullAnswered {
                server,
                range,
                worker,
                clock,
                bound,
            } => {
                if !self.members.contains_key(&worker) {
                    // The bound is promised to members: a worker the
                    // coordinator removed (cut off, presumed dead) may read
                    // from a replica just as cut off, until it is re-admitted.
                    return;
                }
                if self.view.as_ref().is_some_and(|v| !v.contains(&server)) {
                    // A replica the coordinator removed from every chain
                    // (it was cut off) may answer a reader with an old
                    // view until it learns the new one; it does not hear
                    // of admissions meanwhile. Not judged (no leases: see
                    // docs/invariants.md).
                    return;
                }
                self.record_behind(server, range, worker, clock);
                let Some(bound) = bound else { return };
                self.reads += 1;
                let Some(last_needed) = clock.0.checked_sub(bound + 1) else {
                    return;
                };
                let rep = self.applied.get_mut(server, range);
                let lost_history = rep.lost_history;
                let empty = IntervalSet::default();
                // Missing updates: never acknowledged (a stale read), or
                // acknowledged (lost, or not there yet: decided at the end).
                let mut unacked = None;
                let mut acked_missing = Vec::new();
                for (&w, &(_, start)) in &self.members {
                    if start > last_needed {
                        continue;
                    }
                    let have = rep.state.get(&w).unwrap_or(&empty);
                    if have.first_missing(u64::from(start)) > u64::from(last_needed) {
                        continue; // The usual case: nothing missing.
                    }
                    let acked = self.acked.get(&(range, w)).unwrap_or(&empty);
                    for (a, b) in have.gaps(u64::from(start), u64::from(last_needed) + 1) {
                        for k in a..b {
                            if !acked.contains(k) {
                                unacked.get_or_insert((w, k));
                            } else if !lost_history {
                                acked_missing.push((w, k));
                            }
                        }
                    }
                }
                let violation = |(w, k): (WorkerId, u64)| Violation::StaleRead {
                    t,
                    server,
                    range,
                    reader: worker,
                    clock,
                    bound,
                    missing_worker: w,
                    missing_clock: Clock(k as u32),
                };
                if let Some(first) = unacked {
                    self.violations.push(violation(first));
                } else if let Some(&first) = acked_missing.first() {
                    self.pending.push((violation(first), range, acked_missing));
                }
            }
            _ => {}
        }
    }

    /// How far behind a read by `reader` at `clock` is: `clock` minus the
    /// fewest clocks of any member the replica has applied without a gap
    /// (0: it sees every member up to the reader's own clock).
    fn record_behind(
        &mut self,
        server: crate::core::NodeId,
        range: RangeId,
        reader: WorkerId,
        clock: Clock,
    ) {
        let Some(rep) = self.applied.get(server, range) else {
            return;
        };
        let empty = IntervalSet::default();
        let c = u64::from(clock.0);
        let seen = self
            .members
            .iter()
            .map(|(w, &(_, start))| {
                let have = rep.state.get(w).unwrap_or(&empty);
                let start = u64::from(start).min(c);
                have.first_missing(start).min(c)
            })
            .min()
            .unwrap_or(c);
        *self.behind.entry((reader, (c - seen) as u32)).or_default() += 1;
    }

    /// Reads by members, per reader and per clocks behind: a read by `v`
    /// at clock `c` is `c - min_w d_w` clocks behind, where member `w`'s
    /// updates of clocks `< d_w` are all applied at the replica read. Under
    /// SSP with bound `s` every read is at most `s` behind.
    pub fn histogram(&self) -> &BTreeMap<(WorkerId, u32), u64> {
        &self.behind
    }

    /// Reads checked so far (pulls answered under SSP or BSP).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The verdict. A read that missed only updates already acknowledged
    /// (by another replica: this one had not applied them) is a stale read
    /// if any of them reached the range's final replicas, and a lost update
    /// (counted by `no_lost_updates`) if none did.
    pub fn report(&self, enabled: bool) -> Report {
        let mut v = self.violations.clone();
        for (violation, range, missing) in &self.pending {
            let finals: Vec<_> = self.finals.iter().filter(|(_, r)| r == range).collect();
            let arrived = |&(w, k): &(WorkerId, u64)| {
                !finals.is_empty()
                    && finals.iter().all(|&&(s, r)| {
                        self.applied
                            .get(s, r)
                            .and_then(|t| t.state.get(&w))
                            .is_some_and(|set| set.contains(k))
                    })
            };
            if missing.iter().any(arrived) {
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

    fn applied(w: WorkerId, c: u32) -> Event {
        Event::PushApplied {
            server: S0,
            range: 0,
            worker: w,
            seq: Seq::default(),
            clock: Clock(c),
        }
    }

    fn read(w: WorkerId, c: u32, bound: u32) -> Event {
        Event::PullAnswered {
            server: S0,
            range: 0,
            worker: w,
            clock: Clock(c),
            bound: Some(bound),
        }
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
        let r = run(&[applied(0, 0), applied(0, 1), applied(1, 0), read(0, 2, 0)]);
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
    fn removed_workers_are_not_waited_for_and_readmitted_ones_from_their_start() {
        let r = run(&[
            applied(0, 0),
            Event::WorkerRemoved {
                worker: 1,
                incarnation: 0,
            },
            read(0, 1, 0),
            Event::WorkerAdmitted {
                worker: 1,
                incarnation: 1,
                clock: Clock(5),
            },
            applied(0, 1),
            applied(0, 2),
            applied(0, 3),
            applied(0, 4),
            read(0, 5, 0),
        ]);
        assert_eq!(r.total, 0, "{:?}", r.violations);
    }

    #[test]
    fn lost_history_excuses_only_acknowledged_updates() {
        let acked = |w, c| Event::PushAcked {
            worker: w,
            range: 0,
            seq: Seq::default(),
            clock: Clock(c),
        };
        let base = [
            applied(0, 0),
            applied(1, 0),
            acked(0, 0),
            acked(1, 0),
            Event::Crash { node: S0 },
        ];
        let mut ok = base.to_vec();
        ok.push(read(0, 1, 0));
        assert_eq!(run(&ok).total, 0);
        // Clock 1 of worker 1 was never acknowledged: a read needing it fails.
        let mut bad = base.to_vec();
        bad.extend([applied(0, 1), read(0, 2, 0)]);
        assert_eq!(run(&bad).total, 1);
    }
}
