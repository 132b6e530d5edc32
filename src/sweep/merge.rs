//! Joining the outputs of a sharded sweep (`pssim sweep merge DIR...`):
//! each shard's `--out DIR` (`runs.csv`, `summary.json`, `plot-data.json`)
//! is read and checked, and the rows of all shards are folded into the
//! summary one unsharded sweep over the union of their seeds reports:
//! counts, failures with their REPRODUCE lines, per-check failure counts,
//! lost/duplicated totals, and percentiles recomputed from every row.
//!
//! Refused, with the directory and what is wrong: a missing directory, a
//! missing or corrupt file, a `runs.csv` that disagrees with its
//! `summary.json`, shards of different scenarios, grid points, `--bug`,
//! `--set`, `--check-determinism` or `--seeds`, and a seed in two shards.
//! Seeds in no shard are allowed and reported ([`Summary::missing`]).
//!
//! Wall-clock fields cannot be recovered: a merge's `wall_time_s` is the
//! sum of its shards' (machine time), `jobs` the most of any shard.
//!
//! May import: `super` (sweep). Never: `crate::sim`, `crate::net` (a merge
//! runs no simulation; it works in the real build too).

use super::{GridReport, PlotData, Row, Summary, SweepResult, PLOT_DATA};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file of one row per seed.
pub const RUNS: &str = "runs.csv";
/// The file of the aggregate.
pub const SUMMARY: &str = "summary.json";

/// One shard's output directory, read and checked.
#[derive(Debug)]
pub struct Shard {
    /// Where it was read from.
    pub dir: PathBuf,
    /// The keys a grid sweeps (empty: one point).
    pub varying: Vec<String>,
    /// Its points, in grid order.
    pub points: Vec<ShardPoint>,
    /// Its `plot-data.json`, if it has one.
    pub plot: Option<PlotData>,
}

/// One grid point of a shard.
#[derive(Debug)]
pub struct ShardPoint {
    /// The point's overrides.
    pub sets: Vec<String>,
    /// Its aggregate, as the shard wrote it.
    pub summary: Summary,
    /// Its rows, by seed.
    pub rows: Vec<Row>,
}

/// `[a, b)` without the `missing` ranges (sorted, inside it).
fn covered((a, b): (u64, u64), missing: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = a;
    for &(x, y) in missing {
        if x > at {
            out.push((at, x.min(b)));
        }
        at = at.max(y);
    }
    if b > at {
        out.push((at, b));
    }
    out
}

impl Shard {
    /// The seeds the shard spans, `[start, end)` (the same for every point).
    pub fn seeds(&self) -> (u64, u64) {
        self.points[0].summary.seeds
    }

    /// The seeds it ran: its span without its `missing` seeds (a merge
    /// with gaps, merged again).
    pub fn covered(&self) -> Vec<(u64, u64)> {
        let s = self.first();
        covered(s.seeds, &s.missing)
    }

    /// The `--seeds` range it is a slice of (itself if not sharded).
    fn all_seeds(&self) -> (u64, u64) {
        self.points[0].summary.all_seeds.unwrap_or(self.seeds())
    }

    fn first(&self) -> &Summary {
        &self.points[0].summary
    }
}

/// Reads and checks one shard's output directory.
pub fn read(dir: &Path) -> Result<Shard, String> {
    let d = dir.display();
    if !dir.is_dir() {
        let why = if dir.exists() {
            "not a directory"
        } else {
            "no such directory"
        };
        return Err(format!(
            "{d}: {why} (expected the --out DIR of a pssim sweep)"
        ));
    }
    let (varying, mut points) = read_summary(&dir.join(SUMMARY))?;
    read_runs(&dir.join(RUNS), &varying, &mut points)?;
    for p in &points {
        check_point(dir, p)?;
    }
    let first = &points[0].summary;
    if points
        .iter()
        .any(|p| p.summary.seeds != first.seeds || p.summary.missing != first.missing)
    {
        return Err(format!(
            "{d}/{SUMMARY}: the grid's points ran different seeds"
        ));
    }
    let plot = read_plot_data(&dir.join(PLOT_DATA), &points)?;
    Ok(Shard {
        dir: dir.to_path_buf(),
        varying,
        points,
        plot,
    })
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// `summary.json`: a sweep's [`Summary`] or a grid's [`GridReport`].
fn read_summary(path: &Path) -> Result<(Vec<String>, Vec<ShardPoint>), String> {
    let p = path.display();
    let text = read_text(path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{p}: not valid JSON: {e}"))?;
    let not_ours =
        |e: serde_json::Error| format!("{p}: not the summary.json of a pssim sweep: {e}");
    if v.get("points").is_some() {
        let g: GridReport = serde_json::from_value(v).map_err(not_ours)?;
        if g.points.is_empty() {
            return Err(format!("{p}: a grid sweep with no points"));
        }
        if let Some(q) = g.points.iter().find(|q| q.summary.scenario != g.scenario) {
            return Err(format!(
                "{p}: point {:?} is of scenario {:?}, the grid of {:?}",
                q.sets.join(" "),
                q.summary.scenario,
                g.scenario
            ));
        }
        let points = g
            .points
            .into_iter()
            .map(|q| ShardPoint {
                sets: q.sets,
                summary: q.summary,
                rows: Vec::new(),
            })
            .collect();
        Ok((g.varying, points))
    } else {
        let s: Summary = serde_json::from_value(v).map_err(not_ours)?;
        Ok((
            Vec::new(),
            vec![ShardPoint {
                sets: s.sets.clone(),
                summary: s,
                rows: Vec::new(),
            }],
        ))
    }
}

/// `runs.csv`: one row per seed, with a first column `point` in a grid.
fn read_runs(path: &Path, varying: &[String], points: &mut [ShardPoint]) -> Result<(), String> {
    let p = path.display();
    let mut csv = csv::Reader::from_path(path).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(io) => format!("{p}: cannot read: {io}"),
        _ => format!("{p}: {e}"),
    })?;
    let headers = csv.headers().map_err(|e| format!("{p}: {e}"))?.clone();
    let column = headers.iter().position(|h| h == "point");
    let row_headers: csv::StringRecord = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != column)
        .map(|(_, h)| h)
        .collect();
    let grid = !varying.is_empty();
    let labels: Vec<String> = points.iter().map(|q| q.sets.join(" ")).collect();
    for record in csv.records() {
        let record = record.map_err(|e| format!("{p}: {e}"))?;
        let line = record.position().map_or(0, |x| x.line());
        let k = match (column, grid) {
            (Some(c), true) => {
                let label = &record[c];
                labels.iter().position(|l| l == label).ok_or_else(|| {
                    format!("{p}:{line}: point {label:?} is not a point of the grid in {SUMMARY}")
                })?
            }
            (None, false) => 0,
            (Some(_), false) => {
                return Err(format!(
                "{p}: the runs of a grid sweep (a `point` column), but {SUMMARY} is of one point"
            ))
            }
            (None, true) => {
                return Err(format!(
                    "{p}: no `point` column, but {SUMMARY} is of a grid sweep"
                ))
            }
        };
        let fields: csv::StringRecord = record
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != column)
            .map(|(_, f)| f)
            .collect();
        let row: Row = fields.deserialize(Some(&row_headers)).map_err(|e| {
            let why = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    let column = err
                        .field()
                        .and_then(|i| row_headers.get(i as usize))
                        .map_or(String::new(), |h| format!("column `{h}`: "));
                    format!("{column}{}", err.kind())
                }
                _ => e.to_string(),
            };
            format!("{p}:{line}: not a row of a pssim sweep: {why}")
        })?;
        points[k].rows.push(row);
    }
    for q in points.iter_mut() {
        q.rows.sort_by_key(|r| r.seed);
    }
    Ok(())
}

/// A point's rows agree with its summary: the seeds of its range, each
/// once, and the same failing seeds.
fn check_point(dir: &Path, q: &ShardPoint) -> Result<(), String> {
    let d = dir.display();
    let s = &q.summary;
    let point = if q.sets.is_empty() {
        String::new()
    } else {
        format!(" (point {})", q.sets.join(" "))
    };
    let (a, b) = s.seeds;
    let sorted = s.missing.windows(2).all(|w| w[0].1 <= w[1].0);
    if b < a || !sorted || s.missing.iter().any(|&(x, y)| x >= y || x < a || y > b) {
        return Err(format!(
            "{d}/{SUMMARY}: seeds {a}..{b} (missing {:?}) is not a range{point}",
            s.missing
        ));
    }
    let ran = covered(s.seeds, &s.missing);
    let expected: u64 = ran.iter().map(|(x, y)| y - x).sum();
    if s.runs != expected || s.passed + s.failed != s.runs || s.failures.len() as u64 != s.failed {
        return Err(format!(
            "{d}/{SUMMARY}: inconsistent counts{point}: seeds {a}..{b}, {} runs, {} passed, {} failed, {} failures listed",
            s.runs,
            s.passed,
            s.failed,
            s.failures.len()
        ));
    }
    let seeds: Vec<u64> = q.rows.iter().map(|r| r.seed).collect();
    if seeds
        .iter()
        .copied()
        .ne(ran.iter().flat_map(|&(x, y)| x..y))
    {
        let dup = seeds.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        let why = match dup {
            Some(x) => format!("seed {x} twice"),
            None => format!(
                "{} rows of seeds {}",
                seeds.len(),
                match (seeds.first(), seeds.last()) {
                    (Some(x), Some(y)) => format!("{x}..={y}"),
                    _ => "none".into(),
                }
            ),
        };
        let missing = if s.missing.is_empty() {
            String::new()
        } else {
            format!(" but {}", super::ranges(&s.missing))
        };
        return Err(format!(
            "{d}: {RUNS} does not match {SUMMARY}{point}: it has {why}, the summary seeds {a}..{b}{missing}"
        ));
    }
    let failing: BTreeSet<u64> = q
        .rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.seed)
        .collect();
    let listed: BTreeSet<u64> = s.failures.iter().map(|f| f.seed).collect();
    if failing != listed {
        return Err(format!(
            "{d}: {RUNS} and {SUMMARY} disagree on the failing seeds{point}: {failing:?} against {listed:?}"
        ));
    }
    Ok(())
}

/// `plot-data.json`, if there is one (older outputs have none).
fn read_plot_data(path: &Path, points: &[ShardPoint]) -> Result<Option<PlotData>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let p = path.display();
    let text = read_text(path)?;
    let data: PlotData = serde_json::from_str(&text)
        .map_err(|e| format!("{p}: not the {PLOT_DATA} of a pssim sweep: {e}"))?;
    let ours: Vec<&Vec<String>> = points.iter().map(|q| &q.sets).collect();
    let its: Vec<&Vec<String>> = data.points.iter().map(|q| &q.sets).collect();
    if ours != its || data.scenario != points[0].summary.scenario {
        return Err(format!(
            "{p}: of another sweep than {SUMMARY} (scenario {:?}, points {:?})",
            data.scenario, its
        ));
    }
    Ok(Some(data))
}

/// The merged sweep.
#[derive(Debug)]
pub struct Merged {
    /// The keys the grid sweeps (empty: one point).
    pub varying: Vec<String>,
    /// Each point's overrides, in grid order.
    pub points: Vec<Vec<String>>,
    /// Each point's rows (by seed), aggregate and first-seed curve.
    pub results: Vec<SweepResult>,
    /// The totals over the points.
    pub report: GridReport,
    /// The scenario's description (from `plot-data.json`).
    pub description: String,
    /// The plot data of the merge (to write with its files).
    pub plot: PlotData,
    /// Seeds of the range in no shard, `[start, end)`.
    pub missing: Vec<(u64, u64)>,
    /// What the merge could not do (a shard without `plot-data.json`).
    pub notes: Vec<String>,
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// The shards describe parts of one sweep.
fn check_same(a: &Shard, b: &Shard) -> Result<(), String> {
    let (da, db) = (a.dir.display(), b.dir.display());
    let (sa, sb) = (a.first(), b.first());
    if sa.scenario != sb.scenario {
        return Err(format!(
            "shards of different scenarios: {da} is {:?}, {db} is {:?}",
            sa.scenario, sb.scenario
        ));
    }
    let sets = |s: &Shard| s.points.iter().map(|q| q.sets.clone()).collect::<Vec<_>>();
    if a.varying != b.varying || sets(a) != sets(b) {
        return Err(if a.varying.is_empty() && b.varying.is_empty() {
            format!(
                "shards with different --set: {da} has {}, {db} has {}",
                list(&sa.sets),
                list(&sb.sets)
            )
        } else {
            let points = |s: &Shard| {
                let p: Vec<String> = s.points.iter().map(|q| q.sets.join(" ")).collect();
                format!("{} point(s) [{}]", p.len(), p.join(" | "))
            };
            format!(
                "shards of different grid points: {da} has {}, {db} has {}",
                points(a),
                points(b)
            )
        });
    }
    if sa.bugs != sb.bugs {
        return Err(format!(
            "shards with different --bug: {da} has {}, {db} has {}",
            list(&sa.bugs),
            list(&sb.bugs)
        ));
    }
    if sa.check_determinism != sb.check_determinism {
        return Err(format!(
            "shards with different --check-determinism: {da} {}, {db} {}",
            sa.check_determinism, sb.check_determinism
        ));
    }
    if let (Some(x), Some(y)) = (sa.all_seeds, sb.all_seeds) {
        if x != y {
            return Err(format!(
                "shards of different sweeps: {da} is a shard of --seeds {}..{}, {db} of --seeds {}..{}",
                x.0, x.1, y.0, y.1
            ));
        }
    }
    Ok(())
}

/// Merges the shards into the summary of one sweep over all their seeds.
pub fn merge(shards: &[Shard]) -> Result<Merged, String> {
    let Some(reference) = shards.first() else {
        return Err("nothing to merge: no shard directories".into());
    };
    for s in &shards[1..] {
        check_same(reference, s)?;
    }
    // Each seed in one shard; the range is the hull of the shards' ranges.
    let mut ranges: Vec<((u64, u64), &Shard)> = shards
        .iter()
        .flat_map(|s| s.covered().into_iter().map(move |r| (r, s)))
        .filter(|((a, b), _)| a < b)
        .collect();
    ranges.sort_by_key(|((a, b), _)| (*a, *b));
    let mut reach: Option<(u64, &Shard)> = None;
    for &((a, b), s) in &ranges {
        if let Some((end, t)) = reach {
            if a < end {
                return Err(format!(
                    "seeds {a}..{} are in two shards: {} and {} (a shard given twice, or shards of different splits)",
                    end.min(b),
                    t.dir.display(),
                    s.dir.display()
                ));
            }
        }
        if reach.is_none_or(|(end, _)| b > end) {
            reach = Some((b, s));
        }
    }
    let lo = shards.iter().map(|s| s.all_seeds().0).min().unwrap_or(0);
    let hi = shards.iter().map(|s| s.all_seeds().1).max().unwrap_or(0);
    let mut missing = Vec::new();
    let mut at = lo;
    for &((a, b), _) in &ranges {
        if a > at {
            missing.push((at, a));
        }
        at = at.max(b);
    }
    if hi > at {
        missing.push((at, hi));
    }

    let r = reference.first();
    let first_shard = ranges.first().map(|&(_, s)| s);
    let mut notes = Vec::new();
    if let Some(s) = first_shard.filter(|s| s.plot.is_none()) {
        notes.push(format!(
            "{} has no {PLOT_DATA}: the convergence plots need its first seed's accuracy curve and are left out",
            s.dir.display()
        ));
    }
    let description = shards
        .iter()
        .find_map(|s| s.plot.as_ref().map(|p| p.description.clone()))
        .unwrap_or_default();
    let points: Vec<Vec<String>> = reference.points.iter().map(|q| q.sets.clone()).collect();
    let mut results = Vec::new();
    for (k, sets) in points.iter().enumerate() {
        let mut rows: Vec<Row> = Vec::new();
        let mut failures = Vec::new();
        let mut wall = 0.0;
        let mut jobs = 0;
        for s in shards {
            let q = &s.points[k];
            rows.extend(q.rows.iter().cloned());
            failures.extend(q.summary.failures.iter().cloned());
            wall += q.summary.wall_time_s;
            jobs = jobs.max(q.summary.jobs);
        }
        rows.sort_by_key(|x| x.seed);
        failures.sort_by_key(|f| f.seed);
        let mut summary = Summary::of(&r.scenario, lo..hi, None, jobs, &rows, failures, wall);
        summary.missing = missing.clone();
        summary.bugs = r.bugs.clone();
        summary.sets = sets.clone();
        summary.check_determinism = r.check_determinism;
        let first = first_shard
            .and_then(|s| s.plot.as_ref())
            .and_then(|p| p.points[k].first.clone());
        results.push(SweepResult {
            rows,
            summary,
            first,
        });
    }
    let report = GridReport::new(&points, &reference.varying, &results);
    let plot = PlotData::new(&r.scenario, &description, &points, &results);
    Ok(Merged {
        varying: reference.varying.clone(),
        points,
        results,
        report,
        description,
        plot,
        missing,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{Failure, GridReport};

    fn row(seed: u64, passed: bool) -> Row {
        Row {
            seed,
            passed,
            failed_checks: if passed { "" } else { "liveness" }.into(),
            final_accuracy: 0.5 + seed as f64 / 100.0,
            sim_time_s: seed as f64,
            wall_time_s: 0.01,
            messages: 10 * seed,
            bytes: 100,
            bytes_pushed: 50,
            bytes_pulled: 50,
            pushes_acked: 3,
            updates_lost: u64::from(!passed),
            updates_duplicated: 0,
            faults: 1,
            target_accuracy: None,
            time_to_target_s: None,
            clocks_to_target: None,
            idle_fraction: 0.25,
            time_per_clock_s: 0.1,
            bottleneck: "server-0 nic_in".into(),
            stopped: "finished".into(),
            trace_hash: format!("{seed:016x}"),
            reproduce: format!("pssim run x.toml --seed {seed}"),
        }
    }

    /// A shard of seeds `a..b` of `all`, failing the odd seeds.
    fn shard(a: u64, b: u64, all: (u64, u64)) -> Shard {
        let rows: Vec<Row> = (a..b).map(|s| row(s, s % 2 == 0)).collect();
        let failures = rows
            .iter()
            .filter(|r| !r.passed)
            .map(|r| Failure {
                seed: r.seed,
                reproduce: r.reproduce.clone(),
                checks: vec!["liveness".into()],
                message: "liveness: stuck".into(),
            })
            .collect();
        let mut summary = Summary::of("x", a..b, Some((0, 2)), 2, &rows, failures, 1.0);
        summary.all_seeds = Some(all);
        Shard {
            dir: PathBuf::from(format!("shard-{a}")),
            varying: Vec::new(),
            points: vec![ShardPoint {
                sets: Vec::new(),
                summary,
                rows,
            }],
            plot: None,
        }
    }

    #[test]
    fn merging_shards_equals_the_whole_sweep() {
        let whole = shard(0, 10, (0, 10));
        let m = merge(&[shard(5, 10, (0, 10)), shard(0, 5, (0, 10))]).unwrap();
        let (a, b) = (&m.results[0].summary, &whole.points[0].summary);
        assert_eq!(a.seeds, (0, 10));
        assert_eq!((a.runs, a.passed, a.failed), (b.runs, b.passed, b.failed));
        assert_eq!(a.failures, b.failures);
        assert_eq!(a.check_failures, b.check_failures);
        assert_eq!(
            a.percentiles["final_accuracy"],
            b.percentiles["final_accuracy"]
        );
        assert_eq!(a.updates_lost, 5);
        assert_eq!(a.wall_time_s, 2.0, "the shards' machine time");
        assert!(m.missing.is_empty());
        let seeds: Vec<u64> = m.results[0].rows.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, (0..10).collect::<Vec<_>>());
        let g: &GridReport = &m.report;
        assert_eq!(g.failed, 5);
    }

    #[test]
    fn gaps_are_reported_and_overlaps_refused() {
        let m = merge(&[shard(0, 3, (0, 12)), shard(6, 9, (0, 12))]).unwrap();
        assert_eq!(m.missing, [(3, 6), (9, 12)]);
        assert_eq!(m.results[0].summary.missing, m.missing);
        assert!(
            crate::sweep::render(&m.results[0].summary).contains("missing    seeds 3..6, 9..12")
        );
        assert_eq!(covered((0, 12), &m.missing), [(0, 3), (6, 9)]);
        let e = merge(&[shard(0, 6, (0, 12)), shard(4, 12, (0, 12))]).unwrap_err();
        assert!(
            e.contains("seeds 4..6 are in two shards: shard-0 and shard-4"),
            "{e}"
        );
        let e = merge(&[shard(0, 6, (0, 12)), shard(6, 12, (0, 20))]).unwrap_err();
        assert!(e.contains("different sweeps"), "{e}");
        let mut other = shard(6, 12, (0, 12));
        other.points[0].summary.bugs = vec!["no_dedup".into()];
        let e = merge(&[shard(0, 6, (0, 12)), other]).unwrap_err();
        assert!(
            e.contains("different --bug: shard-0 has none, shard-6 has no_dedup"),
            "{e}"
        );
    }
}
