//! `liveness`: after the last fault heals, every live worker keeps
//! advancing its clock.
//!
//! Let `T` be the time the last fault of the run heals (a crash heals when
//! the node restarts; a crash without restart heals nothing and counts from
//! its start) and `L` the scenario's `[check] liveness` window. From `T` on,
//! every worker that is up and has not finished must start a new clock (or
//! finish) at least once every `L`: the check fails at the first instant
//! `t >= T + L` at which some such worker has made no progress in
//! `[max(T, its last progress), t]`. A worker that restarts counts from its
//! restart. The check is skipped when some fault never heals (a partition or
//! clog without a duration, total loss): then no liveness is promised.
//!
//! Built from `worker_clock`, `worker_done`, `crash` and `restart` events
//! only, like the other checkers.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::{Report, Violation, Violations};
use crate::core::{Event, NodeId};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
struct WorkerState {
    down: bool,
    done: bool,
    /// Last clock start, finish or restart.
    last: Duration,
    /// Already reported (one violation per worker and life).
    reported: bool,
}

/// The checker.
#[derive(Debug)]
pub struct LivenessCheck {
    /// When the last fault heals; `None`: never (skipped).
    heal: Option<Duration>,
    window: Option<Duration>,
    workers: Vec<WorkerState>,
    violations: Violations,
    /// Latest time judged.
    judged_to: Duration,
}

impl LivenessCheck {
    /// A checker for `workers` workers; judges nothing until configured.
    pub fn new(workers: u32) -> LivenessCheck {
        LivenessCheck {
            heal: None,
            window: None,
            workers: vec![WorkerState::default(); workers as usize],
            violations: Violations::default(),
            judged_to: Duration::ZERO,
        }
    }

    /// Sets the last heal (`None`: some fault never heals) and the window
    /// (`None`: the check is off).
    pub fn configure(&mut self, heal: Option<Duration>, window: Option<Duration>) {
        self.heal = heal;
        self.window = window;
    }

    /// Whether the check applies to this run at all.
    pub fn applies(&self) -> bool {
        self.heal.is_some() && self.window.is_some()
    }

    /// Observes one event at time `t`.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        let (w, f): (u32, fn(&mut WorkerState, Duration)) = match *ev {
            Event::WorkerClock { worker, .. } => (worker, |s, t| s.last = t),
            Event::WorkerDone { worker, .. } => (worker, |s, t| {
                s.done = true;
                s.last = t;
            }),
            Event::Crash {
                node: NodeId::Worker(worker),
            } => (worker, |s, _| s.down = true),
            Event::Restart {
                node: NodeId::Worker(worker),
            } => (worker, |s, t| {
                *s = WorkerState {
                    last: t,
                    ..WorkerState::default()
                }
            }),
            _ => return,
        };
        if let Some(s) = self.workers.get_mut(w as usize) {
            f(s, t);
        }
    }

    /// Judges the run up to `now`. Returns whether the check has failed.
    pub fn poll(&mut self, now: Duration) -> bool {
        let (Some(heal), Some(window)) = (self.heal, self.window) else {
            return false;
        };
        self.judged_to = self.judged_to.max(now);
        for (w, s) in self.workers.iter_mut().enumerate() {
            if s.down || s.done || s.reported {
                continue;
            }
            let since = s.last.max(heal);
            if now > since + window {
                s.reported = true;
                self.violations.push(Violation::Stalled {
                    worker: w as u32,
                    since,
                    now,
                    heal,
                    window,
                });
            }
        }
        self.violations.total() > 0
    }

    /// The verdict at the end of a run that stopped at `end`.
    pub fn report(&mut self, end: Duration, enabled: bool) -> Report {
        self.poll(end);
        self.violations
            .report("liveness", enabled && self.applies())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use crate::core::Clock;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    fn clock(w: u32) -> Event {
        Event::WorkerClock {
            worker: w,
            clock: Clock(1),
        }
    }

    #[test]
    fn a_worker_silent_for_the_window_after_the_heal_fails() {
        let mut c = LivenessCheck::new(2);
        c.configure(Some(s(10)), Some(s(5)));
        c.observe(s(1), &clock(0));
        c.observe(s(12), &clock(1));
        assert!(!c.poll(s(14)));
        c.observe(s(15), &clock(1));
        assert!(c.poll(s(16)), "worker-0 silent since the heal at 10s");
        let r = c.report(s(16), true);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.total, 1);
        assert!(
            r.violations[0].to_string().contains("worker-0"),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn finished_crashed_and_restarted_workers_are_judged_fairly() {
        let mut c = LivenessCheck::new(3);
        c.configure(Some(s(10)), Some(s(5)));
        c.observe(
            s(2),
            &Event::WorkerDone {
                worker: 0,
                clock: Clock(9),
            },
        );
        c.observe(
            s(3),
            &Event::Crash {
                node: NodeId::Worker(1),
            },
        );
        c.observe(
            s(3),
            &Event::Crash {
                node: NodeId::Worker(2),
            },
        );
        c.observe(
            s(9),
            &Event::Restart {
                node: NodeId::Worker(2),
            },
        );
        assert!(!c.poll(s(14)));
        // The restarted worker must show progress too.
        assert!(c.poll(s(16)));
    }

    #[test]
    fn skipped_when_a_fault_never_heals_or_the_check_is_off() {
        let mut c = LivenessCheck::new(1);
        c.configure(None, Some(s(5)));
        assert!(!c.poll(s(100)));
        assert_eq!(c.report(s(100), true).status, Status::Skipped);
        let mut c = LivenessCheck::new(1);
        c.configure(Some(s(0)), Some(s(5)));
        assert_eq!(c.report(s(100), false).status, Status::Skipped);
    }
}
