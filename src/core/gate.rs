//! The consistency gate: may a pull for clock `c` be answered now?
//!
//! Each replica of a range keeps a [`ClockTable`]: for every worker, the
//! number of its clocks whose pushes are visible here (`done[w] = d` means
//! pushes of clocks `< d` are applied). Under bound `s`, a pull for clock
//! `c` may be answered once `done[w] >= c - s` for every member `w`, that
//! is, every update of clocks `<= c - s - 1` is visible (Ho et al., NIPS'13).
//! BSP is `s = 0`; ASP never waits.
//!
//! A member the table knows nothing of (a server that restarted empty) is
//! waited for until it shows progress; see [`ClockTable::record_progress`].
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::bugs::{Bug, Bugs};
use super::ids::{Clock, WorkerId};
use super::view::Membership;
use std::collections::BTreeMap;

/// Per-range visibility of each worker's clocks.
///
/// Entries are per worker *life*: a worker that restarts is a new
/// incarnation whose clocks start over, so when the membership admits a
/// newer incarnation its entry restarts at the admitted clock, and pushes
/// or pulls of an older incarnation still in flight count for nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockTable {
    done: BTreeMap<WorkerId, (u32, Clock)>,
}

/// Why a read must wait: the first member whose updates are not visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The member waited for.
    pub worker: WorkerId,
    /// Clocks of it visible here (`None`: nothing known of it yet).
    pub done: Option<Clock>,
    /// Clocks of it that must be visible.
    pub needed: Clock,
}

impl ClockTable {
    /// A table that has seen every member start at its start clock (a fresh
    /// job, or a replica built from a complete copy).
    pub fn from_membership(m: &Membership) -> ClockTable {
        let mut t = ClockTable::default();
        t.admit(m);
        t
    }

    /// Pushes of clocks `< start_clock` of newly admitted members do not
    /// exist: count them as done. A newer incarnation than the one known
    /// starts over at its start clock.
    pub fn admit(&mut self, m: &Membership) {
        for (&w, member) in &m.members {
            self.record_progress(w, member.incarnation, member.start_clock);
        }
    }

    /// A push of `worker` (in life `incarnation`) for `clock` is now
    /// applied here.
    pub fn record_push(&mut self, worker: WorkerId, incarnation: u32, clock: Clock) {
        self.record_progress(worker, incarnation, clock.next());
    }

    /// Evidence that `worker`, in life `incarnation`, has completed every
    /// clock `< done` (elsewhere, or in an earlier life of this replica). A
    /// worker pulls clock `c` only after every range acknowledged its pushes
    /// of clocks `< c`, so a pull is such evidence. It only matters after
    /// this replica lost its state; the updates it lost are counted by the
    /// `no_lost_updates` check. Evidence from an older life is ignored.
    pub fn record_progress(&mut self, worker: WorkerId, incarnation: u32, done: Clock) {
        let e = self.done.entry(worker).or_insert((incarnation, done));
        match e.0.cmp(&incarnation) {
            std::cmp::Ordering::Less => *e = (incarnation, done),
            std::cmp::Ordering::Equal => e.1 = e.1.max(done),
            std::cmp::Ordering::Greater => {}
        }
    }

    /// Clocks of `worker`'s latest known life visible here.
    pub fn done(&self, worker: WorkerId) -> Option<Clock> {
        self.done.get(&worker).map(|&(_, d)| d)
    }

    /// The whole table (incarnation, clocks done), for state transfer and
    /// checks.
    pub fn entries(&self) -> &BTreeMap<WorkerId, (u32, Clock)> {
        &self.done
    }

    /// Whether a read for `clock` under `bound` (`None` = ASP) may be
    /// answered, given the members the gate counts.
    pub fn check(
        &self,
        clock: Clock,
        bound: Option<u32>,
        members: &Membership,
        bugs: Bugs,
    ) -> Result<(), Blocked> {
        let Some(s) = bound else { return Ok(()) };
        if bugs.has(Bug::GateIgnoresBound) {
            return Ok(());
        }
        let slack = if bugs.has(Bug::GateOffByOne) {
            s + 1
        } else {
            s
        };
        let Some(needed) = clock.0.checked_sub(slack) else {
            return Ok(());
        };
        let needed = Clock(needed);
        for &w in members.members.keys() {
            let done = self.done(w);
            if done.is_none_or(|d| d < needed) {
                return Err(Blocked {
                    worker: w,
                    done,
                    needed,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u32) -> Membership {
        Membership::initial(n)
    }

    #[test]
    fn bsp_waits_for_every_worker_previous_clock() {
        let m = members(2);
        let mut t = ClockTable::from_membership(&m);
        assert!(t.check(Clock(0), Some(0), &m, Bugs::NONE).is_ok());
        t.record_push(0, 0, Clock(0));
        let b = t.check(Clock(1), Some(0), &m, Bugs::NONE).unwrap_err();
        assert_eq!((b.worker, b.needed), (1, Clock(1)));
        t.record_push(1, 0, Clock(0));
        assert!(t.check(Clock(1), Some(0), &m, Bugs::NONE).is_ok());
    }

    #[test]
    fn ssp_allows_s_clocks_of_slack() {
        let m = members(2);
        let mut t = ClockTable::from_membership(&m);
        // Worker 1 never pushes: with s = 3, clocks 0..=3 may still be read.
        for c in 0..4 {
            t.record_push(0, 0, Clock(c));
            assert!(t
                .check(Clock(c + 1).min(Clock(3)), Some(3), &m, Bugs::NONE)
                .is_ok());
        }
        assert!(t.check(Clock(4), Some(3), &m, Bugs::NONE).is_err());
        assert!(t.check(Clock(4), None, &m, Bugs::NONE).is_ok());
    }

    #[test]
    fn unknown_members_are_waited_for() {
        let m = members(2);
        let mut t = ClockTable::default();
        t.record_push(0, 0, Clock(5));
        let b = t.check(Clock(1), Some(0), &m, Bugs::NONE).unwrap_err();
        assert_eq!(b.done, None);
        t.record_progress(1, 0, Clock(3));
        assert!(t.check(Clock(3), Some(0), &m, Bugs::NONE).is_ok());
    }

    #[test]
    fn a_new_life_starts_over_and_old_lives_count_for_nothing() {
        let mut m = members(2);
        let mut t = ClockTable::from_membership(&m);
        t.record_push(1, 0, Clock(6));
        assert_eq!(t.done(1), Some(Clock(7)));
        // Worker 1 restarts and is admitted at clock 2.
        m.members.insert(
            1,
            crate::core::view::Member {
                incarnation: 1,
                start_clock: Clock(2),
            },
        );
        t.admit(&m);
        assert_eq!(t.done(1), Some(Clock(2)));
        t.record_push(1, 0, Clock(9)); // a late push of the old life
        t.record_progress(1, 0, Clock(9));
        assert_eq!(t.done(1), Some(Clock(2)));
        t.record_push(1, 1, Clock(2));
        assert_eq!(t.done(1), Some(Clock(3)));
    }

    #[test]
    fn planted_bugs_open_the_gate_early() {
        let m = members(2);
        let t = ClockTable::from_membership(&m);
        assert!(t.check(Clock(1), Some(0), &m, Bugs::NONE).is_err());
        let off = Bugs::NONE.with(Bug::GateOffByOne);
        assert!(t.check(Clock(1), Some(0), &m, off).is_ok());
        assert!(t.check(Clock(2), Some(0), &m, off).is_err());
        let open = Bugs::NONE.with(Bug::GateIgnoresBound);
        assert!(t.check(Clock(50), Some(0), &m, open).is_ok());
    }
}
