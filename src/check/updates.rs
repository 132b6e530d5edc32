//! `no_lost_updates`: every acknowledged push is reflected in the final
//! parameters exactly once.
//!
//! A push is identified by its worker, incarnation and clock (one push per
//! range per clock per life; retries share it). The checker follows, per
//! replica, the pushes applied to the state it holds (through crashes,
//! state transfers and restores) and compares the `final` replicas of each
//! range with the pushes acknowledged to workers:
//! - lost: acknowledged, absent from a final replica (or the range has no
//!   live replica at the end);
//! - duplicated: applied twice to one replica's state.
//!
//! Counts are reported even when the check is switched off.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::intervals::IntervalSet;
use super::life_map::IdMap;
use super::lineage::Lineage;
use super::{Report, Violation, Violations};
use crate::core::{Clock, Event, NodeId, RangeId, Seq, WorkerId};

/// Applied pushes of one replica's state.
#[derive(Clone, Debug, Default)]
struct Applied {
    pushes: IdMap<IntervalSet>,
    duplicates: u64,
    first_duplicate: Option<(WorkerId, Clock)>,
}

/// The checker.
#[derive(Debug)]
pub struct UpdatesCheck {
    ranges: u32,
    /// Per range, per worker.
    acked: IdMap<IdMap<IntervalSet>>,
    applied: Lineage<Applied>,
    finals: Vec<(NodeId, RangeId)>,
}

/// Lost and duplicated counts, with the violations behind them.
#[derive(Clone, Debug)]
pub struct UpdateCounts {
    /// Acknowledged pushes missing from the final state.
    pub lost: u64,
    /// Extra applications of a push.
    pub duplicated: u64,
    /// Pushes acknowledged in all.
    pub acked: u64,
    /// The verdict of `no_lost_updates`.
    pub report: Report,
}

/// One push's identity within a (range, worker): incarnation and clock.
fn key(seq: Seq, clock: Clock) -> u64 {
    u64::from(seq.incarnation) << 32 | u64::from(clock.0)
}

fn unkey(k: u64) -> Clock {
    Clock(k as u32)
}

impl UpdatesCheck {
    /// A checker for a job with `ranges` key ranges.
    pub fn new(ranges: u32) -> UpdatesCheck {
        UpdatesCheck {
            ranges,
            acked: IdMap::default(),
            applied: Lineage::default(),
            finals: Vec::new(),
        }
    }

    /// Observes one event.
    pub fn observe(&mut self, ev: &Event) {
        self.applied.observe(ev);
        match *ev {
            Event::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
                ..
            } => {
                let st = &mut self.applied.get_mut(server, range).state;
                if !st
                    .pushes
                    .get_or_insert_with(worker, IntervalSet::default)
                    .insert(key(seq, clock))
                {
                    st.duplicates += 1;
                    st.first_duplicate.get_or_insert((worker, clock));
                }
            }
            Event::PushAcked {
                worker,
                range,
                seq,
                clock,
            } => {
                self.acked
                    .get_or_insert_with(range, IdMap::default)
                    .get_or_insert_with(worker, IntervalSet::default)
                    .insert(key(seq, clock));
            }
            Event::Final { server, range, .. } => self.finals.push((server, range)),
            _ => {}
        }
    }

    /// Compares acknowledged pushes with the final replicas.
    pub fn finish(&self, enabled: bool) -> UpdateCounts {
        let mut v = Violations::default();
        let (mut lost, mut duplicated, mut acked_total) = (0, 0, 0);
        let empty = IntervalSet::default();
        for range in 0..self.ranges {
            let acked: Vec<(WorkerId, &IntervalSet)> = self
                .acked
                .get(range)
                .into_iter()
                .flat_map(IdMap::iter)
                .collect();
            acked_total += acked.iter().map(|(_, s)| s.len()).sum::<u64>();
            let finals: Vec<NodeId> = self
                .finals
                .iter()
                .filter(|(_, r)| *r == range)
                .map(|(s, _)| *s)
                .collect();
            // Lost: the worst final replica of the range (all of them, if
            // none is left).
            let mut worst = (0u64, None);
            let replicas: Vec<Option<&Applied>> = if finals.is_empty() {
                vec![None]
            } else {
                finals
                    .iter()
                    .map(|&s| self.applied.get(s, range).map(|t| &t.state))
                    .collect()
            };
            for rep in &replicas {
                let mut missing = 0;
                let mut example = None;
                for (w, set) in &acked {
                    let have = rep.and_then(|a| a.pushes.get(*w)).unwrap_or(&empty);
                    let m = set.count_missing_from(have);
                    if m > 0 && example.is_none() {
                        let first = set
                            .spans()
                            .flat_map(|(s, e)| have.gaps(s, e))
                            .next()
                            .map(|(k, _)| unkey(k))
                            .unwrap_or_default();
                        example = Some((*w, first));
                    }
                    missing += m;
                }
                if missing > worst.0 {
                    worst = (missing, example);
                }
            }
            if let (count @ 1.., Some(example)) = worst {
                lost += count;
                v.push(Violation::LostUpdates {
                    range,
                    count,
                    example,
                });
            }
            for &server in &finals {
                if let Some(t) = self.applied.get(server, range) {
                    if t.state.duplicates > 0 {
                        duplicated += t.state.duplicates;
                        v.push(Violation::DuplicatedUpdates {
                            server,
                            range,
                            count: t.state.duplicates,
                            example: t.state.first_duplicate.unwrap_or_default(),
                        });
                    }
                }
            }
        }
        UpdateCounts {
            lost,
            duplicated,
            acked: acked_total,
            report: v.report("no_lost_updates", enabled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S0: NodeId = NodeId::Server(0);

    fn seq(n: u64) -> Seq {
        Seq { incarnation: 0, n }
    }

    fn applied(c: u32) -> Event {
        Event::PushApplied {
            server: S0,
            range: 0,
            worker: 0,
            seq: seq(u64::from(c)),
            clock: Clock(c),
            index: None,
        }
    }

    fn acked(c: u32) -> Event {
        Event::PushAcked {
            worker: 0,
            range: 0,
            seq: seq(u64::from(c)),
            clock: Clock(c),
        }
    }

    fn fin() -> Event {
        Event::Final {
            server: S0,
            range: 0,
            digest: String::new(),
            applied: 0,
            applied_set: String::new(),
            clock_table: String::new(),
            dedup_table: String::new(),
        }
    }

    fn run(events: &[Event]) -> UpdateCounts {
        let mut chk = UpdatesCheck::new(1);
        for e in events {
            chk.observe(e);
        }
        chk.finish(true)
    }

    #[test]
    fn acknowledged_and_applied_once_passes() {
        let c = run(&[applied(0), acked(0), applied(1), acked(1), fin()]);
        assert_eq!((c.lost, c.duplicated, c.acked), (0, 0, 2));
        assert_eq!(c.report.total, 0);
    }

    #[test]
    fn acknowledged_but_never_applied_is_lost() {
        let c = run(&[applied(0), acked(0), acked(1), fin()]);
        assert_eq!(c.lost, 1);
        assert!(matches!(
            c.report.violations[0],
            Violation::LostUpdates {
                example: (0, Clock(1)),
                ..
            }
        ));
    }

    #[test]
    fn applied_twice_is_duplicated() {
        let c = run(&[applied(0), applied(0), acked(0), fin()]);
        assert_eq!((c.lost, c.duplicated), (0, 1));
    }

    #[test]
    fn a_crash_without_replicas_loses_what_was_acknowledged() {
        let c = run(&[
            applied(0),
            acked(0),
            Event::Crash { node: S0 },
            applied(1),
            acked(1),
            fin(),
        ]);
        assert_eq!(c.lost, 1);
        // A range with no live replica at the end lost everything.
        let c = run(&[applied(0), acked(0), Event::Crash { node: S0 }]);
        assert_eq!(c.lost, 1);
    }
}
