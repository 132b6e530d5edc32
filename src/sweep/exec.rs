//! Running a sweep on the simulator: one madsim runtime per seed on a
//! rayon pool.
//!
//! May import: `crate::sim`, `super` (sweep), `crate::outcome`,
//! `crate::scenario`. Never: `crate::net`.

use super::{failure, Curve, Failure, Row, Summary, SweepResult};
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions};
use rayon::prelude::*;
use std::ops::Range;

/// How to sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Seeds (`--seeds`).
    pub seeds: Range<u64>,
    /// `(I, N)`: run only the `I`-th of `N` slices of `seeds`.
    pub shard: Option<(u64, u64)>,
    /// Parallel runs.
    pub jobs: usize,
    /// Template for every run (its `seed` is replaced).
    pub run: RunOptions,
}

/// Runs every seed; `tick` is called after each run (for a progress bar).
pub fn sweep(scn: &Scenario, opts: &SweepOptions, tick: &(dyn Fn(&Row) + Sync)) -> SweepResult {
    // Real wall time of the whole sweep, read outside every simulation
    // (each run's madsim runtime replaces the clock only inside it).
    let start = std::time::Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .expect("a thread pool");
    let seeds = match opts.shard {
        Some((i, n)) => super::shard(opts.seeds.clone(), i, n),
        None => opts.seeds.clone(),
    };
    let results: Vec<(Row, Option<Failure>, Option<Curve>)> = pool.install(|| {
        seeds
            .clone()
            .into_par_iter()
            .map(|seed| {
                let run = RunOptions {
                    seed,
                    trace: None,
                    ..opts.run.clone()
                };
                let o = sim::run(scn, &run).outcome;
                let row = Row::new(&o);
                tick(&row);
                let failure = (!o.passed).then(|| failure(&o));
                let first = (seed == seeds.start).then(|| Curve::of(&o));
                (row, failure, first)
            })
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut first = None;
    for (row, failure, o) in results {
        rows.push(row);
        failures.extend(failure);
        first = first.or(o);
    }
    let mut summary = Summary::of(
        &scn.name, seeds, opts.shard, opts.jobs, &rows, failures, wall,
    );
    // What a merge of shards checks that they share.
    summary.all_seeds = opts.shard.map(|_| (opts.seeds.start, opts.seeds.end));
    summary.bugs = opts.run.bugs.iter().map(|b| b.to_string()).collect();
    summary.sets = opts.run.sets.clone();
    summary.check_determinism = scn.check.deterministic;
    SweepResult {
        rows,
        summary,
        first,
    }
}
