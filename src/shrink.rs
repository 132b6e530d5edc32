//! `pssim shrink`: the smallest fault schedule that still fails.
//!
//! A failing run's faults (its `[[fault]]`s and what `[chaos]` drew for the
//! seed) become an explicit timeline; chaos is switched off. That replays
//! the same run exactly: the fault plan draws from its own generator, so
//! the world's randomness does not depend on it. Then, keeping the seed,
//! delta debugging (Zeller's ddmin) removes faults while the run still fails
//! one of the checks the original failed; then each remaining fault is
//! shortened (halved while it still fails) and moved later. Every step keeps
//! the scenario failing, so the result reproduces with `pssim run`.
//!
//! May import: `crate::sim` (the simulator it drives), `crate::outcome`,
//! `crate::scenario`, `crate::sweep`, `crate::net::bench` (bench only).
//! Never: code a host needs (nothing below imports a tool).

use crate::outcome::Outcome;
use crate::scenario::{Fault, FaultKind, Scenario};
use crate::sim::{self, RunOptions};
use std::collections::BTreeSet;
use std::time::Duration;

/// What shrinking found.
#[derive(Debug)]
pub struct Shrunk {
    /// The smallest failing scenario found (chaos off, explicit faults).
    pub scenario: Scenario,
    /// The checks the original run failed.
    pub failing: BTreeSet<String>,
    /// Faults before and after.
    pub faults: (usize, usize),
    /// Runs made.
    pub runs: u64,
    /// The outcome of the smallest scenario.
    pub outcome: Outcome,
}

/// Why shrinking could not start.
#[derive(Debug, PartialEq)]
pub enum ShrinkError {
    /// The run passes: nothing to shrink.
    Passes,
    /// The explicit replay of the faults did not fail the same way.
    NotReplayable,
}

impl std::fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShrinkError::Passes => f.write_str("the run passes every check: nothing to shrink"),
            ShrinkError::NotReplayable => f.write_str(
                "replaying the run's faults without [chaos] did not fail the same check",
            ),
        }
    }
}

fn failing(o: &Outcome) -> BTreeSet<String> {
    o.failed_checks().into_iter().collect()
}

struct Search<'a> {
    base: Scenario,
    opts: &'a RunOptions,
    want: BTreeSet<String>,
    runs: u64,
    /// Upper bound on runs.
    budget: u64,
}

impl Search<'_> {
    /// Whether `faults` still fail one of the wanted checks.
    fn fails(&mut self, faults: &[Fault]) -> Option<Outcome> {
        if self.runs >= self.budget {
            return None;
        }
        self.runs += 1;
        let mut scn = self.base.clone();
        scn.faults = faults.to_vec();
        scn.check.deterministic = false;
        let o = sim::run_once(&scn, self.opts).outcome;
        let f = failing(&o);
        (!f.is_disjoint(&self.want)).then_some(o)
    }

    /// ddmin: the smallest subset (1-minimal) of `faults` that still fails.
    fn ddmin(&mut self, mut faults: Vec<Fault>) -> Vec<Fault> {
        let mut n = 2usize;
        while faults.len() >= 2 {
            let chunk = faults.len().div_ceil(n);
            let mut reduced = None;
            // Try each complement (remove one chunk).
            for i in 0..n {
                let lo = i * chunk;
                if lo >= faults.len() {
                    break;
                }
                let hi = (lo + chunk).min(faults.len());
                let rest: Vec<Fault> = faults[..lo].iter().chain(&faults[hi..]).cloned().collect();
                if self.fails(&rest).is_some() {
                    reduced = Some(rest);
                    break;
                }
            }
            if let Some(rest) = reduced {
                faults = rest;
                n = (n - 1).max(2);
            } else {
                if n >= faults.len() {
                    break;
                }
                n = (2 * n).min(faults.len());
            }
        }
        if faults.len() == 1 && self.fails(&[]).is_some() {
            faults.clear();
        }
        faults
    }

    /// Shortens each fault (halving its duration) and moves it later
    /// (halving the time to the next fault) while the run still fails.
    fn simplify(&mut self, mut faults: Vec<Fault>) -> Vec<Fault> {
        for i in 0..faults.len() {
            for _ in 0..6 {
                let Some(d) = faults[i].kind.duration() else {
                    break;
                };
                let shorter = d / 2;
                if shorter < Duration::from_millis(1) {
                    break;
                }
                let mut trial = faults.clone();
                set_duration(&mut trial[i].kind, shorter);
                if self.fails(&trial).is_some() {
                    faults = trial;
                } else {
                    break;
                }
            }
        }
        faults
    }
}

fn set_duration(kind: &mut FaultKind, d: Duration) {
    match kind {
        FaultKind::Crash { restart_after, .. } => *restart_after = Some(d),
        FaultKind::Partition { duration, .. }
        | FaultKind::Clog { duration, .. }
        | FaultKind::Loss { duration, .. }
        | FaultKind::Straggler { duration, .. }
        | FaultKind::SlowLink { duration, .. } => *duration = Some(d),
    }
}

/// Shrinks the fault schedule of a failing run of `scn` with `opts`
/// (at most `budget` runs).
pub fn shrink(scn: &Scenario, opts: &RunOptions, budget: u64) -> Result<Shrunk, ShrinkError> {
    let first = sim::run_once(scn, opts).outcome;
    let want = failing(&first);
    if want.is_empty() {
        return Err(ShrinkError::Passes);
    }
    let mut base = scn.clone();
    base.chaos = None;
    base.faults.clear();
    let mut search = Search {
        base,
        opts,
        want: want.clone(),
        runs: 1,
        budget,
    };
    let all = first.fault_timeline.clone();
    if search.fails(&all).is_none() {
        return Err(ShrinkError::NotReplayable);
    }
    let small = search.ddmin(all.clone());
    let small = search.simplify(small);
    let outcome = search
        .fails(&small)
        .or_else(|| {
            search.budget += 1;
            search.fails(&small)
        })
        .expect("every step kept the scenario failing");
    let mut scenario = search.base.clone();
    scenario.faults = small;
    Ok(Shrunk {
        faults: (all.len(), scenario.faults.len()),
        scenario,
        failing: want,
        runs: search.runs,
        outcome,
    })
}
