//! `live_changes`: every node switches to each live change at the same
//! clock boundary, and none computes or serves past it without it.
//!
//! From `change_applied` events (node, change `k`, boundary clock): all of
//! a change's events name the same boundary; a push of a clock at or past
//! a boundary (`push_applied`, computed by the life of the worker its `seq`
//! names) is applied after that life adopted the change; a server's
//! `pull_answered` for such a clock comes after that life of the server
//! adopted it. (A worker may start a clock — pull — before it hears of a
//! change; it must not compute it.) The promise is to the servers of the
//! current view and to member workers: a server the coordinator removed
//! while it was cut off, and a removed worker, learn the changes when they
//! are back (heartbeat, admission) and are not judged meanwhile. A crash starts a new life, which must
//! learn the changes again. Judged at the end of the run (a change may be
//! heard of after a node already broke it).
//!
//! Live widenings (a change with `hidden`) also change what a replica
//! holds, at the log entry reported by `range_widened`: every update
//! applied (`push_applied`) and every read answered (`pull_answered`) by a
//! replica must meet a state holding exactly the widenings in force at
//! its clock — none whose boundary is past the clock (the widened values
//! would have missed the update, or the reader gets the wrong model), all
//! those at or before it. What each replica holds is followed through
//! crashes, snapshots and checkpoints ([`Lineage`]).
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::lineage::Lineage;
use super::{Report, Violation, Violations};
use crate::core::{Clock, Event, NodeId, RangeId, WorkerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// The checker.
#[derive(Debug, Default)]
pub struct ChangesCheck {
    /// Change -> boundary, from its first `change_applied`.
    boundaries: BTreeMap<u64, Clock>,
    /// Boundary disagreements: (change, node, its boundary).
    disagree: Vec<(u64, NodeId, Clock)>,
    /// Node -> current life.
    lives: BTreeMap<NodeId, u32>,
    /// (node, life, change) -> when adopted.
    adopted: BTreeMap<(NodeId, u32, u64), Duration>,
    /// (node, life, time, clock) of each clock started or read served.
    steps: Vec<(NodeId, u32, Duration, Clock)>,
    /// Servers in the last view published.
    view: std::collections::BTreeSet<NodeId>,
    /// Workers the coordinator has removed (and not re-admitted).
    removed: std::collections::BTreeSet<crate::core::WorkerId>,
    /// The scenario has no live change: the check is skipped, so no step
    /// is kept (a step per push and per read was about half the peak
    /// memory of the 128-worker scale run).
    idle: bool,
    /// Changes that widen the model, in order (their number).
    widenings: Vec<u64>,
    /// Per replica: widenings applied (followed once a widening is known).
    levels: Lineage<u32>,
    /// Updates applied and reads answered once a widening is known.
    widen_steps: Vec<WidenStep>,
}

/// An update applied or a read answered by a replica, with the widenings
/// it held.
#[derive(Clone, Copy, Debug)]
struct WidenStep {
    t: Duration,
    server: NodeId,
    range: RangeId,
    read: bool,
    worker: WorkerId,
    clock: Clock,
    level: u32,
}

impl ChangesCheck {
    /// A checker for a run with no live change: it keeps nothing, and its
    /// report is `skipped` as any checker's whose property does not apply.
    pub fn idle() -> ChangesCheck {
        ChangesCheck {
            idle: true,
            ..ChangesCheck::default()
        }
    }

    /// Observes one event.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        if self.idle {
            return;
        }
        if !self.widenings.is_empty() {
            self.observe_widening(t, ev);
        }
        match *ev {
            Event::Crash { node } => *self.lives.entry(node).or_default() += 1,
            Event::ChangeApplied {
                node,
                change,
                clock,
                ref hidden,
                ..
            } => {
                if hidden.0.is_some() && !self.widenings.contains(&change) {
                    self.widenings.push(change);
                    self.widenings.sort_unstable();
                }
                let b = *self.boundaries.entry(change).or_insert(clock);
                if b != clock {
                    self.disagree.push((change, node, clock));
                }
                let life = self.lives.get(&node).copied().unwrap_or(0);
                self.adopted.entry((node, life, change)).or_insert(t);
            }
            Event::View { ref chains, .. } => {
                self.view = chains.iter().flatten().copied().collect();
            }
            Event::WorkerRemoved { worker, .. } => {
                self.removed.insert(worker);
            }
            Event::WorkerAdmitted { worker, .. } => {
                self.removed.remove(&worker);
            }
            Event::PushApplied {
                worker, seq, clock, ..
            } if !self.removed.contains(&worker) => {
                // The push of a clock was computed by that life of the
                // worker (its seq's incarnation) before this instant.
                self.steps
                    .push((NodeId::Worker(worker), seq.incarnation, t, clock));
            }
            Event::PullAnswered {
                server,
                worker,
                clock,
                ..
            } if self.view.contains(&server) && !self.removed.contains(&worker) => {
                let life = self.lives.get(&server).copied().unwrap_or(0);
                self.steps.push((server, life, t, clock));
            }
            _ => {}
        }
    }

    /// Follows the widenings each replica holds, and records what meets
    /// them.
    fn observe_widening(&mut self, t: Duration, ev: &Event) {
        self.levels.observe(ev);
        let (server, range, read, worker, clock) = match *ev {
            Event::RangeWidened {
                server,
                range,
                level,
                ..
            } => {
                self.levels.get_mut(server, range).state = level;
                return;
            }
            Event::PushApplied {
                server,
                range,
                worker,
                clock,
                ..
            } => (server, range, false, worker, clock),
            Event::PullAnswered {
                server,
                range,
                worker,
                clock,
                ..
            } => (server, range, true, worker, clock),
            _ => return,
        };
        let level = self.levels.get_mut(server, range).state;
        self.widen_steps.push(WidenStep {
            t,
            server,
            range,
            read,
            worker,
            clock,
            level,
        });
    }

    /// The verdict (`enabled`: the scenario has live changes; an idle
    /// checker is never enabled).
    pub fn report(&self, enabled: bool) -> Report {
        debug_assert!(!(enabled && self.idle), "an idle checker judges nothing");
        let mut v = Violations::default();
        for &(change, node, clock) in &self.disagree {
            v.push(Violation::ChangeBoundary {
                change,
                node,
                boundary: self.boundaries[&change],
                other: clock,
            });
        }
        for &(node, life, t, clock) in &self.steps {
            for (&k, &boundary) in &self.boundaries {
                if clock < boundary {
                    continue;
                }
                let ok = self
                    .adopted
                    .get(&(node, life, k))
                    .is_some_and(|&at| at <= t);
                if !ok {
                    v.push(Violation::ChangeMissed {
                        t,
                        node,
                        change: k,
                        boundary,
                        clock,
                    });
                }
            }
        }
        let widen_at: Vec<Clock> = self
            .widenings
            .iter()
            .filter_map(|k| self.boundaries.get(k).copied())
            .collect();
        for s in &self.widen_steps {
            let expected = widen_at.iter().filter(|&&b| b <= s.clock).count() as u32;
            if s.level != expected {
                v.push(Violation::WidenMismatch {
                    t: s.t,
                    server: s.server,
                    range: s.range,
                    what: if s.read { "read" } else { "update" },
                    worker: s.worker,
                    clock: s.clock,
                    level: s.level,
                    expected,
                });
            }
        }
        v.report("live_changes", enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn applied(node: NodeId, change: u64, clock: u32) -> Event {
        crate::core::config::Change {
            learning_rate: Some(0.5),
            staleness: None,
            consistency: None,
            batch_size: None,
            hidden: None,
        }
        .event(node, change, Clock(clock))
    }

    #[test]
    fn a_clock_past_the_boundary_before_the_change_is_caught() {
        let ms = Duration::from_millis;
        let w = NodeId::Worker(0);
        let mut c = ChangesCheck::default();
        let push = |inc: u32, clock: u32| Event::PushApplied {
            server: NodeId::Server(0),
            range: 0,
            worker: 0,
            seq: crate::core::Seq {
                incarnation: inc,
                n: 0,
            },
            clock: Clock(clock),
            index: None,
        };
        c.observe(ms(1), &push(0, 4));
        c.observe(ms(2), &applied(w, 1, 5));
        c.observe(ms(3), &push(0, 5));
        assert_eq!(c.report(true).status, Status::Pass);
        // A new life must learn it again.
        c.observe(ms(4), &Event::Crash { node: w });
        c.observe(ms(5), &push(1, 7));
        let r = c.report(true);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.violations[0].to_string().contains("worker-0"),
            "{}",
            r.violations[0]
        );
        // Boundaries must agree.
        let mut c = ChangesCheck::default();
        c.observe(ms(1), &applied(w, 1, 5));
        c.observe(ms(1), &applied(NodeId::Server(0), 1, 6));
        assert_eq!(c.report(true).status, Status::Fail);
        assert_eq!(c.report(false).status, Status::Skipped);
    }

    /// Without live changes nothing is kept, and the verdict is skipped.
    #[test]
    fn an_idle_checker_keeps_no_steps() {
        let mut c = ChangesCheck::idle();
        for k in 0..100 {
            c.observe(
                Duration::from_millis(k),
                &Event::PullAnswered {
                    server: NodeId::Server(0),
                    range: 0,
                    worker: 0,
                    clock: Clock(k as u32),
                    bound: None,
                },
            );
        }
        assert!(c.steps.is_empty());
        assert_eq!(c.report(false).status, Status::Skipped);
    }
}
