//! `pssim sweep FILE --seeds A..B`: one run per seed (and per grid point of
//! `--set key=a,b,c`), in parallel, summarized, with files and plots. The
//! printing and writing ([`report`]) is shared with `pssim sweep merge`
//! and exists in both builds; running a sweep only in the simulator's.
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{say, say_raw};
use crate::sweep::{self, GridReport, PlotData, SweepResult};
use std::io::Write;
use std::path::Path;
#[cfg(madsim)]
use {
    super::{bad_input, load, parse_bugs, SweepArgs},
    crate::core::Bugs,
    crate::scenario::Scenario,
    crate::sim::RunOptions,
    crate::sweep::Row,
    std::io::IsTerminal,
    std::ops::Range,
};

/// What the flags ask for, checked.
#[cfg(madsim)]
struct Plan {
    /// One scenario per grid point, with its overrides.
    scenarios: Vec<(Vec<String>, Scenario)>,
    points: Vec<Vec<String>>,
    varying: Vec<String>,
    bugs: Bugs,
    /// `--seeds` (all shards).
    seeds: Range<u64>,
    shard: Option<(u64, u64)>,
    jobs: usize,
}

#[cfg(madsim)]
fn plan(source: &str, text: &str, args: &SweepArgs) -> Result<Plan, String> {
    // `--set key=a,b,c` makes a grid: one sweep per combination.
    let (points, varying) = sweep::grid(&args.sets);
    let mut scenarios = Vec::new();
    for sets in &points {
        let mut scn = load(source, text, sets).map_err(|e| e.to_string())?;
        scn.check.deterministic |= args.check_determinism;
        scenarios.push((sets.clone(), scn));
    }
    let bugs = parse_bugs(&args.bugs)?;
    let seeds = args.seeds.as_deref().ok_or("--seeds A..B is required")?;
    let seeds = sweep::parse_seeds(seeds).map_err(|e| format!("--seeds: {e}"))?;
    let shard = args
        .shard
        .as_deref()
        .map(sweep::parse_shard)
        .transpose()
        .map_err(|e| format!("--shard: {e}"))?;
    if args.jobs == Some(0) {
        return Err("--jobs: must be at least 1".to_string());
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(Plan {
        scenarios,
        points,
        varying,
        bugs,
        seeds,
        shard,
        jobs,
    })
}

/// A progress bar on a terminal, nothing otherwise.
#[cfg(madsim)]
fn progress(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs · {per_sec} · eta {eta} · {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

/// Sweeps the scenario `text` (named `source`).
#[cfg(madsim)]
pub fn sweep(
    source: &str,
    text: &str,
    args: &SweepArgs,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let p = match plan(source, text, args) {
        Ok(p) => p,
        Err(e) => return Ok(bad_input(&e)),
    };
    let ran = match p.shard {
        Some((i, n)) => sweep::shard(p.seeds.clone(), i, n),
        None => p.seeds.clone(),
    };
    let total = (ran.end - ran.start) * p.scenarios.len() as u64;
    let bar = progress(total);
    let failed = std::sync::atomic::AtomicU64::new(0);
    let tick = |row: &Row| {
        if !row.passed {
            let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    };
    let mut results = Vec::new();
    for (sets, scn) in &p.scenarios {
        let opts = sweep::SweepOptions {
            seeds: p.seeds.clone(),
            shard: p.shard,
            jobs: p.jobs,
            run: RunOptions {
                bugs: p.bugs,
                source: source.to_string(),
                sets: sets.clone(),
                ..RunOptions::default()
            },
        };
        results.push(sweep::sweep(scn, &opts, &tick));
    }
    bar.finish_and_clear();
    let report = GridReport::new(&p.points, &p.varying, &results);
    let scn = &p.scenarios[0].1;
    let plot = PlotData::new(&scn.name, &scn.description, &p.points, &results);
    let to = Outputs {
        json: args.json,
        out: args.out.as_deref(),
        plots: args.plots.as_deref(),
        report: args.report.as_deref(),
    };
    self::report(&p.points, &report, &results, &plot, &to, out)
}

/// Where a sweep's results go (the flags `sweep` and `sweep merge` share).
pub struct Outputs<'a> {
    /// Print JSON instead of text.
    pub json: bool,
    /// Write runs.csv, summary.json and plot-data.json here.
    pub out: Option<&'a Path>,
    /// Write the plots here.
    pub plots: Option<&'a Path>,
    /// Write the HTML report here.
    pub report: Option<&'a Path>,
}

/// Prints a sweep's summary and writes the files and plots asked for;
/// the exit code (1 if a seed failed).
pub fn report(
    points: &[Vec<String>],
    report: &GridReport,
    results: &[SweepResult],
    plot: &PlotData,
    to: &Outputs,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let grid = !report.varying.is_empty();
    if to.json {
        let text = if grid {
            serde_json::to_string(report)
        } else {
            serde_json::to_string(&results[0].summary)
        };
        say!(out, "{}", text.expect("summary serializes"));
    } else {
        for (sets, r) in points.iter().zip(results) {
            if grid {
                say!(out, "== {}", sets.join(" "));
            }
            say_raw!(out, "{}", sweep::render(&r.summary));
        }
        if grid {
            say_raw!(out, "{}", report.render());
        }
    }
    if let Some(dir) = to.out {
        let written = if grid {
            report.write(dir, results)
        } else {
            sweep::write(dir, &results[0].rows, &results[0].summary)
        };
        if let Err(e) = written.and_then(|()| plot.write(dir)) {
            eprintln!("error: writing {}: {e}", dir.display());
            return Ok(2);
        }
    }
    if let Some(dir) = to.plots {
        if let Err(e) = crate::plot::sweep(report, results, dir) {
            eprintln!("error: writing plots into {}: {e}", dir.display());
            return Ok(2);
        }
    }
    if let Some(path) = to.report {
        let html = crate::report::sweep(&plot.description, report, results);
        if let Err(e) = std::fs::write(path, html) {
            eprintln!("error: writing {}: {e}", path.display());
            return Ok(2);
        }
    }
    Ok(if report.failed == 0 { 0 } else { 1 })
}
