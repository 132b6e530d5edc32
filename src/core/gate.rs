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
//! The table knows the members it counts (those of the membership last
//! admitted, see [`ClockTable::admit`]) and keeps them ordered by clocks
//! done, so a read that may be answered is answered after one look at the
//! least: the gate costs the same with 8 workers or 512. Only a read that
//! must wait walks the members in order, to name the first one waited for.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::bugs::{Bug, Bugs};
use super::ids::{Clock, WorkerId};
use super::view::Membership;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// Per-range visibility of each worker's clocks.
///
/// Entries are per worker *life*: a worker that restarts is a new
/// incarnation whose clocks start over, so when the membership admits a
/// newer incarnation its entry restarts at the admitted clock, and pushes
/// or pulls of an older incarnation still in flight count for nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockTable {
    done: BTreeMap<WorkerId, (u32, Clock)>,
    /// The members the gate counts.
    counted: BTreeSet<WorkerId>,
    /// How many counted members with an entry have each number of clocks
    /// done: the first key is the least visible (a read asks only that;
    /// the member it waits for is found by a walk, in the rare case).
    /// Counts, not one entry per member: the members' clocks lie within a
    /// few of each other, so a push moves a count between two of a few
    /// keys instead of a member through a tree of every member.
    low: BTreeMap<Clock, u32>,
    /// How many counted members have no entry.
    unknown: usize,
}

/// One more counted member has `d` clocks done (a [`ClockTable`]'s counts).
fn low_add(low: &mut BTreeMap<Clock, u32>, d: Clock) {
    *low.entry(d).or_default() += 1;
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

    /// A table holding copied entries `(worker, incarnation, clocks done)`,
    /// counting `m`'s members (a copied or checkpointed state).
    pub fn from_entries(entries: &[(WorkerId, u32, Clock)], m: &Membership) -> ClockTable {
        let mut t = ClockTable::default();
        for &(w, inc, done) in entries {
            t.record_progress(w, inc, done);
        }
        t.count(m);
        t
    }

    /// Pushes of clocks `< start_clock` of newly admitted members do not
    /// exist: count them as done. A newer incarnation than the one known
    /// starts over at its start clock. From now on the gate counts `m`'s
    /// members.
    pub fn admit(&mut self, m: &Membership) {
        for (&w, member) in &m.members {
            self.record_progress(w, member.incarnation, member.start_clock);
        }
        self.count(m);
    }

    /// The gate counts `m`'s members (and no one else) from now on.
    fn count(&mut self, m: &Membership) {
        self.counted = m.members.keys().copied().collect();
        self.low.clear();
        self.unknown = 0;
        for &w in &self.counted {
            match self.done.get(&w) {
                Some(&(_, d)) => low_add(&mut self.low, d),
                None => self.unknown += 1,
            }
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
        let (before, after) = match self.done.entry(worker) {
            Entry::Vacant(v) => (None, v.insert((incarnation, done)).1),
            Entry::Occupied(mut o) => {
                let e = o.get_mut();
                let before = e.1;
                match e.0.cmp(&incarnation) {
                    std::cmp::Ordering::Less => *e = (incarnation, done),
                    std::cmp::Ordering::Equal => e.1 = e.1.max(done),
                    std::cmp::Ordering::Greater => {}
                }
                (Some(before), e.1)
            }
        };
        if before == Some(after) || !self.counted.contains(&worker) {
            return;
        }
        match before {
            Some(d) => self.low_remove(d),
            None => self.unknown -= 1,
        }
        low_add(&mut self.low, after);
    }

    /// One counted member fewer has `d` clocks done.
    fn low_remove(&mut self, d: Clock) {
        if let Entry::Occupied(mut o) = self.low.entry(d) {
            *o.get_mut() -= 1;
            if *o.get() == 0 {
                o.remove();
            }
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

    /// The members the gate counts, in order.
    pub fn counted(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.counted.iter().copied()
    }

    /// Whether a read for `clock` under `bound` (`None` = ASP) may be
    /// answered, given the members the gate counts.
    pub fn check(&self, clock: Clock, bound: Option<u32>, bugs: Bugs) -> Result<(), Blocked> {
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
        // Every member known, and the least of them far enough.
        if self.unknown == 0 && self.low.first_key_value().is_none_or(|(&d, _)| d >= needed) {
            return Ok(());
        }
        for &w in &self.counted {
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
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn members(n: u32) -> Membership {
        Membership::initial(n)
    }

    #[test]
    fn bsp_waits_for_every_worker_previous_clock() {
        let m = members(2);
        let mut t = ClockTable::from_membership(&m);
        assert!(t.check(Clock(0), Some(0), Bugs::NONE).is_ok());
        t.record_push(0, 0, Clock(0));
        let b = t.check(Clock(1), Some(0), Bugs::NONE).unwrap_err();
        assert_eq!((b.worker, b.needed), (1, Clock(1)));
        t.record_push(1, 0, Clock(0));
        assert!(t.check(Clock(1), Some(0), Bugs::NONE).is_ok());
    }

    #[test]
    fn ssp_allows_s_clocks_of_slack() {
        let m = members(2);
        let mut t = ClockTable::from_membership(&m);
        // Worker 1 never pushes: with s = 3, clocks 0..=3 may still be read.
        for c in 0..4 {
            t.record_push(0, 0, Clock(c));
            assert!(t
                .check(Clock(c + 1).min(Clock(3)), Some(3), Bugs::NONE)
                .is_ok());
        }
        assert!(t.check(Clock(4), Some(3), Bugs::NONE).is_err());
        assert!(t.check(Clock(4), None, Bugs::NONE).is_ok());
    }

    #[test]
    fn unknown_members_are_waited_for() {
        let m = members(2);
        // A state copied from a server that restarted empty.
        let mut t = ClockTable::from_entries(&[], &m);
        t.record_push(0, 0, Clock(5));
        let b = t.check(Clock(1), Some(0), Bugs::NONE).unwrap_err();
        assert_eq!(b.done, None);
        t.record_progress(1, 0, Clock(3));
        assert!(t.check(Clock(3), Some(0), Bugs::NONE).is_ok());
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
        assert!(t.check(Clock(1), Some(0), Bugs::NONE).is_err());
        let off = Bugs::NONE.with(Bug::GateOffByOne);
        assert!(t.check(Clock(1), Some(0), off).is_ok());
        assert!(t.check(Clock(2), Some(0), off).is_err());
        let open = Bugs::NONE.with(Bug::GateIgnoresBound);
        assert!(t.check(Clock(50), Some(0), open).is_ok());
    }

    /// The gate as it was: every member scanned in order.
    fn scan(
        t: &ClockTable,
        m: &Membership,
        clock: Clock,
        bound: Option<u32>,
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
        for &w in m.members.keys() {
            let done = t.done(w);
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

    /// A random membership of some of 12 workers, lives 0..3, starts 0..20.
    fn random_membership(rng: &mut ChaCha8Rng, version: u64) -> Membership {
        let mut m = members(0);
        m.version = version;
        for w in 0..12 {
            if rng.gen_bool(0.7) {
                let member = crate::core::view::Member {
                    incarnation: rng.gen_range(0..3),
                    start_clock: Clock(rng.gen_range(0..20)),
                };
                m.members.insert(w, member);
            }
        }
        m
    }

    /// The gate's answer (fast path or scan) is the scan's over random
    /// tables: progress, pushes, admissions, copied states, every bound.
    #[test]
    fn the_fast_gate_answers_as_the_scan_does() {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let mut fast_answers = 0;
        for round in 0..300 {
            let mut m = random_membership(&mut rng, 1);
            let mut t = if round % 3 == 0 {
                // A copied table: some members unknown, some non-members.
                let mut entries = Vec::new();
                for w in 0..12 {
                    if rng.gen_bool(0.5) {
                        entries.push((w, rng.gen_range(0..3), Clock(rng.gen_range(0..30))));
                    }
                }
                ClockTable::from_entries(&entries, &m)
            } else {
                ClockTable::from_membership(&m)
            };
            for step in 0..200 {
                match rng.gen_range(0..20) {
                    0 => {
                        m = random_membership(&mut rng, step + 2);
                        t.admit(&m);
                    }
                    1..=9 => {
                        let w = rng.gen_range(0..12);
                        t.record_push(w, rng.gen_range(0..3), Clock(rng.gen_range(0..40)));
                    }
                    _ => {
                        let w = rng.gen_range(0..12);
                        t.record_progress(w, rng.gen_range(0..3), Clock(rng.gen_range(0..40)));
                    }
                }
                assert!(t.counted().eq(m.members.keys().copied()));
                // The order kept in step is the one rebuilt from scratch.
                let mut rebuilt = t.clone();
                rebuilt.count(&m);
                assert_eq!(rebuilt, t);
                for _ in 0..4 {
                    let clock = Clock(rng.gen_range(0..45));
                    let bound = [None, Some(0), Some(1), Some(3)][rng.gen_range(0..4)];
                    let bugs = match rng.gen_range(0..8) {
                        0 => Bugs::NONE.with(Bug::GateOffByOne),
                        1 => Bugs::NONE.with(Bug::GateIgnoresBound),
                        _ => Bugs::NONE,
                    };
                    let want = scan(&t, &m, clock, bound, bugs);
                    assert_eq!(
                        t.check(clock, bound, bugs),
                        want,
                        "round {round} step {step}: {t:?} {m:?} {clock:?} {bound:?}"
                    );
                    fast_answers += usize::from(want.is_ok() && bound.is_some());
                }
            }
        }
        // Both answers were exercised.
        assert!(fast_answers > 10_000, "{fast_answers}");
    }
}
