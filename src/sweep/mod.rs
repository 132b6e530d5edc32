//! Seed sweeps: one simulation per seed, in parallel (one madsim runtime
//! per seed on a rayon pool), folded into pass/fail counts, the failing
//! seeds with their REPRODUCE lines, and percentiles of the main metrics.
//!
//! `--shard I/N` keeps the `I`-th of `N` contiguous slices of the seed
//! range (`I` from 0), so a sweep spreads over a CI matrix or a job array;
//! the union of the `N` shards is the whole range, each seed in one shard.
//!
//! This module is host-neutral (rows, summaries, grids, rendering, files);
//! running the seeds on the simulator is [`exec`]; joining the outputs of
//! shards into the summary of one sweep (`pssim sweep merge`) is [`merge`].
//!
//! May import: `crate::outcome`, `crate::scenario`. Never: `crate::net`;
//! `crate::sim` only in [`exec`].

#[cfg(madsim)]
pub mod exec;
#[cfg(madsim)]
pub use exec::{sweep, SweepOptions};
pub mod merge;

use crate::outcome::Outcome;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

/// Parses `A..B` (half-open) or `A..=B` (inclusive).
pub fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("invalid seed range {s:?}: expected A..B or A..=B, e.g. 0..1000");
    let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once("..") {
        (a, b, false)
    } else {
        return Err(bad());
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        b.checked_add(1).ok_or_else(bad)?
    } else {
        b
    };
    if end <= a {
        return Err(format!("empty seed range {s:?}"));
    }
    Ok(a..end)
}

/// Parses `I/N` with `I < N`.
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("invalid shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The `i`-th of `n` contiguous slices of `seeds` (sizes differ by at
/// most one).
pub fn shard(seeds: Range<u64>, i: u64, n: u64) -> Range<u64> {
    let len = seeds.end - seeds.start;
    let cut = |k: u64| seeds.start + (u128::from(len) * u128::from(k) / u128::from(n)) as u64;
    cut(i)..cut(i + 1)
}

/// NaN, for a column an older `runs.csv` lacks.
fn nan() -> f64 {
    f64::NAN
}

/// A number that JSON (and a grid's `runs.csv`) writes as `null` (or an
/// empty field) when it is NaN: reads it back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A run's time or clocks to its target accuracy: infinite if it never
/// got there (so it ranks after every run that did, and a percentile that
/// falls among those runs is not finite), NaN without a target.
fn to_target(r: &Row, v: Option<f64>) -> f64 {
    match (r.target_accuracy, v) {
        (None, _) => f64::NAN,
        (Some(_), Some(v)) => v,
        (Some(_), None) => f64::INFINITY,
    }
}

/// One seed's result: a row of `runs.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The seed.
    pub seed: u64,
    /// All checks passed.
    pub passed: bool,
    /// Checks that failed, `;`-separated.
    pub failed_checks: String,
    /// Test accuracy at the end.
    #[serde(deserialize_with = "nan_if_null")]
    pub final_accuracy: f64,
    /// Simulated seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub sim_time_s: f64,
    /// Real seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_time_s: f64,
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes of pushes.
    pub bytes_pushed: u64,
    /// Bytes of pulls.
    pub bytes_pulled: u64,
    /// Pushes acknowledged.
    pub pushes_acked: u64,
    /// Acknowledged updates lost.
    pub updates_lost: u64,
    /// Updates applied twice.
    pub updates_duplicated: u64,
    /// Faults injected.
    pub faults: usize,
    /// The scenario's target accuracy, if it set one.
    #[serde(default)]
    pub target_accuracy: Option<f64>,
    /// Simulated seconds to the target accuracy, if set and reached.
    pub time_to_target_s: Option<f64>,
    /// Clocks per worker (their mean) to the target accuracy, if reached.
    #[serde(default)]
    pub clocks_to_target: Option<f64>,
    /// Mean fraction of worker time spent waiting.
    #[serde(deserialize_with = "nan_if_null")]
    pub idle_fraction: f64,
    /// Simulated seconds per clock of the slowest worker (`sim_time_s`
    /// over the lowest clock reached).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub time_per_clock_s: f64,
    /// The run's bottleneck (`"<node> <resource>"`; empty if not metered).
    #[serde(default)]
    pub bottleneck: String,
    /// Why the run stopped.
    pub stopped: String,
    /// Trace hash.
    pub trace_hash: String,
    /// The command that replays it.
    pub reproduce: String,
}

impl Row {
    /// The row of one run.
    pub fn new(o: &Outcome) -> Row {
        Row {
            seed: o.seed,
            passed: o.passed,
            failed_checks: o.failed_checks().join(";"),
            final_accuracy: o.final_accuracy,
            sim_time_s: o.sim_time_s,
            wall_time_s: o.wall_time_s,
            messages: o.messages,
            bytes: o.bytes,
            bytes_pushed: o.bytes_pushed,
            bytes_pulled: o.bytes_pulled,
            pushes_acked: o.pushes_acked,
            updates_lost: o.updates_lost,
            updates_duplicated: o.updates_duplicated,
            faults: o.faults.len(),
            target_accuracy: o.target_accuracy,
            time_to_target_s: o.time_to_target_s,
            clocks_to_target: o.clocks_to_target,
            idle_fraction: o.idle_fraction,
            time_per_clock_s: o.sim_time_s / f64::from(o.min_clock.max(1)),
            bottleneck: o.bottleneck.clone().unwrap_or_default(),
            stopped: o.stopped.clone(),
            trace_hash: o.trace_hash.clone(),
            reproduce: o.reproduce.clone(),
        }
    }
}

/// A failing seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The command that replays it.
    pub reproduce: String,
    /// Failed checks (and `panic`).
    pub checks: Vec<String>,
    /// The first violation (or the panic message).
    pub message: String,
}

/// Percentiles of one metric over the runs (NaN, written `null`, when
/// there is no value).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Smallest.
    #[serde(deserialize_with = "nan_if_null")]
    pub min: f64,
    /// 10th percentile.
    #[serde(deserialize_with = "nan_if_null")]
    pub p10: f64,
    /// Median.
    #[serde(deserialize_with = "nan_if_null")]
    pub p50: f64,
    /// 90th percentile.
    #[serde(deserialize_with = "nan_if_null")]
    pub p90: f64,
    /// 99th percentile.
    #[serde(deserialize_with = "nan_if_null")]
    pub p99: f64,
    /// Largest.
    #[serde(deserialize_with = "nan_if_null")]
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (NaN sorts last).
    pub fn of(values: &[f64]) -> Percentiles {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| {
            if v.is_empty() {
                return f64::NAN;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Percentiles {
            min: at(0.0),
            p10: at(0.1),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What a sweep reports (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seeds run (after sharding): `[start, end)`.
    pub seeds: (u64, u64),
    /// `I/N` if sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The whole `--seeds` range a shard is a slice of (sharded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_seeds: Option<(u64, u64)>,
    /// Seeds of `seeds` that no shard ran (a merge with gaps), as
    /// `[start, end)` ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<(u64, u64)>,
    /// Planted bugs switched on (`--bug`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
    /// The overrides of this sweep (`--set`; one grid point's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<String>,
    /// Each seed run twice, trace hashes compared (`--check-determinism`
    /// or the scenario's `check.deterministic`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_determinism: bool,
    /// Parallel runs (a merge: the most of any shard).
    pub jobs: usize,
    /// Seeds run.
    pub runs: u64,
    /// Seeds whose checks all passed.
    pub passed: u64,
    /// Seeds with a failed check or a panic.
    pub failed: u64,
    /// Failing seeds, in seed order.
    pub failures: Vec<Failure>,
    /// Per check: seeds on which it failed.
    pub check_failures: BTreeMap<String, u64>,
    /// Total acknowledged updates lost over all seeds.
    pub updates_lost: u64,
    /// Total duplicated updates over all seeds.
    pub updates_duplicated: u64,
    /// Percentiles of the main metrics.
    pub percentiles: BTreeMap<String, Percentiles>,
    /// Runs per kind of bottleneck (`"server nic_in"`, `"worker cpu"`, ...:
    /// the node's kind and the resource).
    #[serde(default)]
    pub bottlenecks: BTreeMap<String, u64>,
    /// Runs that reached the target accuracy (the others never did: their
    /// time and clocks to target count as infinite in the percentiles,
    /// which are then not finite where they fall among them).
    #[serde(default)]
    pub reached_target: u64,
    /// The scenario's target accuracy, if it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_accuracy: Option<f64>,
    /// Real seconds of the whole sweep (a merge: the sum of its shards').
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_time_s: f64,
    /// Seeds per real second.
    #[serde(deserialize_with = "nan_if_null")]
    pub seeds_per_s: f64,
}

/// What a sweep produced.
#[derive(Debug)]
pub struct SweepResult {
    /// One row per seed, in seed order.
    pub rows: Vec<Row>,
    /// The aggregate.
    pub summary: Summary,
    /// The accuracy curve of the first seed (for plots).
    pub first: Option<Curve>,
}

/// What a sweep's plots draw of a run: its test accuracy over simulated
/// time and bytes sent. Kept of each point's first seed and written to
/// `plot-data.json`, so that a merge of shards draws the same plots.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Curve {
    /// Scenario name.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// Test accuracy at the end.
    #[serde(deserialize_with = "nan_if_null")]
    pub final_accuracy: f64,
    /// scikit-learn's accuracy on the same data, if known.
    pub reference_accuracy: Option<f64>,
    /// The observations, in time order.
    pub samples: Vec<CurveSample>,
}

/// One observation of a [`Curve`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct CurveSample {
    /// Simulated seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub t_s: f64,
    /// Test accuracy.
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// Bytes of pushes sent so far.
    pub bytes_pushed: u64,
    /// Bytes of pulls sent so far.
    pub bytes_pulled: u64,
}

impl Curve {
    /// The curve of one run.
    pub fn of(o: &Outcome) -> Curve {
        Curve {
            scenario: o.scenario.clone(),
            seed: o.seed,
            final_accuracy: o.final_accuracy,
            reference_accuracy: o.reference_accuracy,
            samples: o
                .accuracy
                .iter()
                .map(|s| CurveSample {
                    t_s: s.t_s,
                    accuracy: s.accuracy,
                    bytes_pushed: s.bytes_pushed,
                    bytes_pulled: s.bytes_pulled,
                })
                .collect(),
        }
    }
}

/// What a sweep's plots and HTML report need beyond `runs.csv` and
/// `summary.json` (`plot-data.json`): the scenario's description and each
/// point's first-seed curve.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlotData {
    /// Scenario name.
    pub scenario: String,
    /// The scenario's description.
    pub description: String,
    /// Per grid point, in grid order.
    pub points: Vec<PlotPoint>,
}

/// One point's entry in [`PlotData`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlotPoint {
    /// The point's `--set` overrides.
    pub sets: Vec<String>,
    /// Its first seed's curve (none if the sweep ran no seed).
    pub first: Option<Curve>,
}

impl PlotData {
    /// The plot data of a sweep's points.
    pub fn new(
        scenario: &str,
        description: &str,
        points: &[Vec<String>],
        results: &[SweepResult],
    ) -> PlotData {
        PlotData {
            scenario: scenario.to_string(),
            description: description.to_string(),
            points: points
                .iter()
                .zip(results)
                .map(|(sets, r)| PlotPoint {
                    sets: sets.clone(),
                    first: r.first.clone(),
                })
                .collect(),
        }
    }

    /// Writes `plot-data.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(PLOT_DATA), serde_json::to_string(self)?)
    }
}

/// The file [`PlotData`] is written to.
pub const PLOT_DATA: &str = "plot-data.json";

/// A bottleneck's kind: `"server-3 nic_in"` -> `"server nic_in"`.
pub fn bottleneck_kind(b: &str) -> Option<String> {
    let (node, res) = b.split_once(' ')?;
    let kind = node.split('-').next().unwrap_or(node);
    Some(format!("{kind} {res}"))
}

impl Summary {
    /// The kind of bottleneck most of its runs had (ties: the first by
    /// name).
    pub fn main_bottleneck(&self) -> Option<&str> {
        let most = self.bottlenecks.values().copied().max()?;
        self.bottlenecks
            .iter()
            .find(|(_, &n)| n == most)
            .map(|(k, _)| k.as_str())
    }

    /// Folds one row per seed (in seed order) and the failures among them
    /// into the aggregate.
    pub fn of(
        scenario: &str,
        seeds: Range<u64>,
        shard: Option<(u64, u64)>,
        jobs: usize,
        rows: &[Row],
        failures: Vec<Failure>,
        wall: f64,
    ) -> Summary {
        let mut check_failures = BTreeMap::new();
        for f in &failures {
            for c in &f.checks {
                *check_failures.entry(c.clone()).or_insert(0) += 1;
            }
        }
        let metric = |f: fn(&Row) -> f64| Percentiles::of(&rows.iter().map(f).collect::<Vec<_>>());
        let percentiles = BTreeMap::from([
            ("final_accuracy".to_string(), metric(|r| r.final_accuracy)),
            ("sim_time_s".to_string(), metric(|r| r.sim_time_s)),
            ("wall_time_s".to_string(), metric(|r| r.wall_time_s)),
            ("messages".to_string(), metric(|r| r.messages as f64)),
            (
                "bytes_pushed".to_string(),
                metric(|r| r.bytes_pushed as f64),
            ),
            (
                "bytes_pulled".to_string(),
                metric(|r| r.bytes_pulled as f64),
            ),
            ("faults".to_string(), metric(|r| r.faults as f64)),
            (
                "updates_lost".to_string(),
                metric(|r| r.updates_lost as f64),
            ),
            ("idle_fraction".to_string(), metric(|r| r.idle_fraction)),
            (
                "time_to_target_s".to_string(),
                metric(|r| to_target(r, r.time_to_target_s)),
            ),
            (
                "clocks_to_target".to_string(),
                metric(|r| to_target(r, r.clocks_to_target)),
            ),
            (
                "time_per_clock_s".to_string(),
                metric(|r| r.time_per_clock_s),
            ),
        ]);
        let mut bottlenecks = BTreeMap::new();
        for r in rows {
            if let Some(kind) = bottleneck_kind(&r.bottleneck) {
                *bottlenecks.entry(kind).or_insert(0) += 1;
            }
        }
        let runs = rows.len() as u64;
        Summary {
            scenario: scenario.to_string(),
            seeds: (seeds.start, seeds.end),
            shard: shard.map(|(i, n)| format!("{i}/{n}")),
            all_seeds: None,
            missing: Vec::new(),
            bugs: Vec::new(),
            sets: Vec::new(),
            check_determinism: false,
            jobs,
            runs,
            passed: runs - failures.len() as u64,
            failed: failures.len() as u64,
            updates_lost: rows.iter().map(|r| r.updates_lost).sum(),
            updates_duplicated: rows.iter().map(|r| r.updates_duplicated).sum(),
            failures,
            check_failures,
            percentiles,
            bottlenecks,
            reached_target: rows.iter().filter(|r| r.time_to_target_s.is_some()).count() as u64,
            target_accuracy: rows.iter().find_map(|r| r.target_accuracy),
            wall_time_s: wall,
            seeds_per_s: runs as f64 / wall.max(1e-9),
        }
    }
}

/// Expands `--set` overrides into a grid: a value holding commas (and not
/// a TOML array, table or string) is a list of values, and the grid is
/// every combination. Returns the points (each a list of single-value
/// overrides) and the keys that vary.
pub fn grid(sets: &[String]) -> (Vec<Vec<String>>, Vec<String>) {
    let mut points: Vec<Vec<String>> = vec![Vec::new()];
    let mut varying = Vec::new();
    for s in sets {
        let (key, value) = s.split_once('=').unwrap_or((s.as_str(), ""));
        let v = value.trim();
        let list = v.contains(',') && !v.starts_with(['[', '{', '"', '\'']);
        let values: Vec<&str> = if list {
            varying.push(key.trim().to_string());
            v.split(',').map(str::trim).collect()
        } else {
            vec![value]
        };
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(format!("{key}={v}"));
                    q
                })
            })
            .collect();
    }
    (points, varying)
}

/// What a sweep reports of a failing run.
pub fn failure(o: &Outcome) -> Failure {
    let checks = o.failed_checks();
    let mut message = o
        .violations
        .iter()
        .find_map(|(k, v)| v.first().map(|m| format!("{k}: {m}")))
        .unwrap_or_default();
    if let Some(p) = &o.panic {
        message = format!("panic: {p}");
    }
    Failure {
        seed: o.seed,
        reproduce: o.reproduce.clone(),
        checks,
        message,
    }
}

/// The readable report of a sweep.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let verdict = if s.failed == 0 { "PASS" } else { "FAIL" };
    let shard = s
        .shard
        .as_ref()
        .map_or(String::new(), |x| format!(" · shard {x}"));
    let _ = writeln!(
        out,
        "pssim sweep · scenario {:?} · seeds {}..{}{shard} · {verdict}",
        s.scenario, s.seeds.0, s.seeds.1
    );
    let _ = writeln!(
        out,
        "  runs       {} · passed {} · failed {} · {:.3} s wall on {} job(s), {:.1} seeds/s",
        s.runs, s.passed, s.failed, s.wall_time_s, s.jobs, s.seeds_per_s
    );
    if !s.missing.is_empty() {
        let _ = writeln!(
            out,
            "  missing    seeds {} ({} in no shard)",
            ranges(&s.missing),
            s.missing.iter().map(|(a, b)| b - a).sum::<u64>()
        );
    }
    let _ = writeln!(
        out,
        "  updates    {} lost, {} duplicated (all seeds)",
        s.updates_lost, s.updates_duplicated
    );
    if let Some(target) = s.target_accuracy {
        let _ = writeln!(
            out,
            "  target     accuracy {target} reached in {} of {} runs",
            s.reached_target, s.runs
        );
    }
    if !s.check_failures.is_empty() {
        let per: Vec<String> = s
            .check_failures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  failing    {}", per.join(" · "));
    }
    let _ = writeln!(
        out,
        "  percentiles          min        p50        p90        p99        max"
    );
    for (name, p) in &s.percentiles {
        let _ = writeln!(
            out,
            "    {name:<16} {:>10} {:>10} {:>10} {:>10} {:>10}",
            num(p.min),
            num(p.p50),
            num(p.p90),
            num(p.p99),
            num(p.max)
        );
    }
    const SHOWN: usize = 20;
    for f in s.failures.iter().take(SHOWN) {
        let _ = writeln!(out, "  FAIL seed {}: {}", f.seed, f.message);
        let _ = writeln!(out, "    REPRODUCE: {}", f.reproduce);
    }
    if s.failures.len() > SHOWN {
        let _ = writeln!(
            out,
            "  ... and {} more failing seeds (see summary.json)",
            s.failures.len() - SHOWN
        );
    }
    out
}

/// `[start, end)` ranges as `A..B, C, D..E` (at most 10, then a count).
pub fn ranges(r: &[(u64, u64)]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = r
        .iter()
        .take(SHOWN)
        .map(|&(a, b)| {
            if b == a + 1 {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect();
    if r.len() > SHOWN {
        parts.push(format!("and {} more ranges", r.len() - SHOWN));
    }
    parts.join(", ")
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x == f64::INFINITY {
        // A time or clocks to a target some runs never reached.
        "never".into()
    } else if x.fract() == 0.0 && x.abs() < 1e12 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// Writes `runs.csv` and `summary.json` into `dir`.
pub fn write(dir: &Path, rows: &[Row], summary: &Summary) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut w = csv::Writer::from_path(dir.join("runs.csv"))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seed: u64, target: Option<f64>, time: Option<f64>) -> Row {
        Row {
            seed,
            passed: true,
            failed_checks: String::new(),
            final_accuracy: 0.9,
            sim_time_s: 1.0,
            wall_time_s: 0.01,
            messages: 1,
            bytes: 1,
            bytes_pushed: 1,
            bytes_pulled: 1,
            pushes_acked: 1,
            updates_lost: 0,
            updates_duplicated: 0,
            faults: 0,
            target_accuracy: target,
            time_to_target_s: time,
            clocks_to_target: time.map(|t| t * 10.0),
            idle_fraction: 0.5,
            time_per_clock_s: 0.1,
            bottleneck: String::new(),
            stopped: "finished".into(),
            trace_hash: String::new(),
            reproduce: String::new(),
        }
    }

    /// Runs that never reach the target are counted and rank after every
    /// run that did (not dropped): with 3 of 5 reaching it the median is
    /// finite and the 90th percentile is "never"; with 2 of 5 the median
    /// is "never" too. Without a target there is no time to it at all.
    #[test]
    fn runs_that_never_reach_the_target_rank_last() {
        let times = [Some(0.3), None, Some(0.1), None, Some(0.2)];
        let rows: Vec<Row> = (0..5)
            .map(|i| row(i, Some(0.95), times[i as usize]))
            .collect();
        let s = Summary::of("x", 0..5, None, 1, &rows, Vec::new(), 1.0);
        assert_eq!(s.reached_target, 3);
        assert_eq!(s.target_accuracy, Some(0.95));
        let t = s.percentiles["time_to_target_s"];
        assert_eq!((t.min, t.p50), (0.1, 0.3));
        assert_eq!(t.p90, f64::INFINITY);
        assert_eq!(s.percentiles["clocks_to_target"].p50, 3.0);
        let text = render(&s);
        assert!(text.contains("reached in 3 of 5 runs"), "{text}");
        assert!(text.contains("never"), "{text}");
        let rows: Vec<Row> = (0..5)
            .map(|i| row(i, Some(0.95), (i < 2).then_some(0.1)))
            .collect();
        let s = Summary::of("x", 0..5, None, 1, &rows, Vec::new(), 1.0);
        assert_eq!(s.percentiles["time_to_target_s"].p50, f64::INFINITY);
        let rows: Vec<Row> = (0..5).map(|i| row(i, None, None)).collect();
        let s = Summary::of("x", 0..5, None, 1, &rows, Vec::new(), 1.0);
        assert!(s.percentiles["time_to_target_s"].p50.is_nan());
        assert!(!render(&s).contains("reached in"));
    }

    #[test]
    fn seed_ranges_and_shards() {
        assert_eq!(parse_seeds("0..1000"), Ok(0..1000));
        assert_eq!(parse_seeds("5..=7"), Ok(5..8));
        assert!(parse_seeds("7..7").is_err());
        assert!(parse_seeds("x..3").is_err());
        assert!(parse_seeds("3").is_err());
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("1/0").is_err());
        // Shards cover the range exactly once.
        let mut all = Vec::new();
        for i in 0..7 {
            let s = shard(10..1010, i, 7);
            assert!(s.end - s.start >= 142 && s.end - s.start <= 143);
            all.extend(s);
        }
        assert_eq!(all, (10..1010).collect::<Vec<_>>());
    }

    #[test]
    fn comma_lists_expand_into_a_grid() {
        let sets = vec![
            "training.staleness=0,2,4".to_string(),
            "training.consistency=ssp".to_string(),
            "network.latency=\"1ms..2ms\"".to_string(),
            "cluster.workers=4, 8".to_string(),
        ];
        let (points, varying) = grid(&sets);
        assert_eq!(varying, ["training.staleness", "cluster.workers"]);
        assert_eq!(points.len(), 6);
        assert_eq!(
            points[1],
            [
                "training.staleness=0",
                "training.consistency=ssp",
                "network.latency=\"1ms..2ms\"",
                "cluster.workers=8"
            ]
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!(
            (p.min, p.p10, p.p50, p.p90, p.p99, p.max),
            (1.0, 10.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!(Percentiles::of(&[]).p50.is_nan());
    }
}

/// One point of a grid sweep: its overrides and its aggregate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GridPoint {
    /// The `--set` overrides of this point.
    pub sets: Vec<String>,
    /// Its sweep over the seeds.
    pub summary: Summary,
}

/// A grid sweep: every point's aggregate and the totals (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GridReport {
    /// Scenario name.
    pub scenario: String,
    /// The keys swept.
    pub varying: Vec<String>,
    /// Runs in all.
    pub runs: u64,
    /// Runs whose checks all passed.
    pub passed: u64,
    /// Runs with a failed check or a panic.
    pub failed: u64,
    /// Every failing run, point by point.
    pub failures: Vec<Failure>,
    /// The points, in grid order.
    pub points: Vec<GridPoint>,
}

impl GridReport {
    /// Aggregates the sweeps of a grid's points.
    pub fn new(points: &[Vec<String>], varying: &[String], results: &[SweepResult]) -> GridReport {
        let summaries: Vec<&Summary> = results.iter().map(|r| &r.summary).collect();
        GridReport {
            scenario: summaries
                .first()
                .map_or(String::new(), |s| s.scenario.clone()),
            varying: varying.to_vec(),
            runs: summaries.iter().map(|s| s.runs).sum(),
            passed: summaries.iter().map(|s| s.passed).sum(),
            failed: summaries.iter().map(|s| s.failed).sum(),
            failures: summaries.iter().flat_map(|s| s.failures.clone()).collect(),
            points: points
                .iter()
                .zip(summaries)
                .map(|(sets, s)| GridPoint {
                    sets: sets.clone(),
                    summary: s.clone(),
                })
                .collect(),
        }
    }

    /// The value of swept key `key` at point `i`.
    pub fn value(&self, i: usize, key: &str) -> Option<&str> {
        self.points[i]
            .sets
            .iter()
            .find_map(|s| s.split_once('=').filter(|(k, _)| k.trim() == key))
            .map(|(_, v)| v.trim())
    }

    /// A table: one row per point, the median and spread of the metrics
    /// a design review asks for.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.failed == 0 { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "pssim grid sweep · scenario {:?} · {} point(s) · {} runs · {} failed · {verdict}",
            self.scenario,
            self.points.len(),
            self.runs,
            self.failed
        );
        let _ = writeln!(
            out,
            "  {:<28} {:>7} {:>10} {:>8} {:>24} {:>8} {:>9} {:>10} {:>10}",
            self.varying.join(","),
            "passed",
            "accuracy",
            "reached",
            "time to target p10-p90",
            "clocks",
            "idle",
            "pushed MB",
            "pulled MB"
        );
        for (i, p) in self.points.iter().enumerate() {
            let label: Vec<&str> = self
                .varying
                .iter()
                .filter_map(|k| self.value(i, k))
                .collect();
            let s = &p.summary;
            let pc = |k: &str| s.percentiles.get(k).copied();
            let t = pc("time_to_target_s");
            let time = t.map_or("-".into(), |t| {
                format!("{} ({}-{})", num(t.p50), num(t.p10), num(t.p90))
            });
            let mb = |k: &str| pc(k).map_or(f64::NAN, |a| a.p50 / 1e6);
            let targeted = s.target_accuracy.is_some();
            let _ = writeln!(
                out,
                "  {:<28} {:>7} {:>10} {:>8} {:>24} {:>8} {:>8.1}% {:>10.3} {:>10.3}",
                label.join(","),
                format!("{}/{}", s.passed, s.runs),
                pc("final_accuracy").map_or("-".into(), |a| num(a.p50)),
                if targeted {
                    format!("{}/{}", s.reached_target, s.runs)
                } else {
                    "-".into()
                },
                time,
                pc("clocks_to_target").map_or("-".into(), |c| if c.p50.is_finite() {
                    format!("{:.1}", c.p50)
                } else {
                    num(c.p50)
                }),
                pc("idle_fraction").map_or(f64::NAN, |a| a.p50) * 100.0,
                mb("bytes_pushed"),
                mb("bytes_pulled")
            );
        }
        out
    }

    /// Writes `runs.csv` (one row per run, its point first) and
    /// `summary.json` into `dir`.
    pub fn write(&self, dir: &Path, results: &[SweepResult]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut w = csv::Writer::from_path(dir.join("runs.csv"))?;
        let mut header = false;
        for (p, r) in self.points.iter().zip(results) {
            for row in &r.rows {
                let json = serde_json::to_value(row)?;
                let map = json.as_object().expect("a row is an object");
                if !header {
                    let mut h = vec!["point".to_string()];
                    h.extend(map.keys().cloned());
                    w.write_record(&h)?;
                    header = true;
                }
                let mut rec = vec![p.sets.join(" ")];
                rec.extend(map.values().map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                }));
                w.write_record(&rec)?;
            }
        }
        w.flush()?;
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        Ok(())
    }
}
