//! The `pssim` command line: parse flags, call the library, print.
// The real build (`cargo build-real`) runs only `pssim node`: the
// simulator's commands are compiled out there.
#![cfg_attr(not(madsim), allow(dead_code, unused_imports, unused_macros))]

/// Large blocks from mimalloc, small ones from the system (see
/// `pssim::net::alloc`).
#[global_allocator]
static ALLOC: pssim::net::alloc::Split = pssim::net::alloc::Split;

use clap::{Args, Parser, Subcommand};
use pssim::core::{Bug, Bugs};
use pssim::scenario::{self, Scenario, ScenarioError};
#[cfg(madsim)]
use pssim::sim::{self, RunOptions};
#[cfg(madsim)]
use pssim::sweep;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints a line to stdout; a closed pipe (`pssim … | head`) ends the
/// program quietly instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// As `say!`, without the newline.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// The scenario `pssim` runs with no arguments.
const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
const DEFAULT_SOURCE: &str = "scenarios/default.toml";

#[derive(Parser)]
#[command(
    name = "pssim",
    version,
    about = "Deterministic simulator for parameter-server machine learning",
    long_about = "Runs the parameter-server protocol (servers, workers, coordinator) on a seeded \
                  simulated network and clock, trains a real model, injects faults and checks \
                  properties. With no subcommand, runs the built-in default scenario.\n\n\
                  Exit codes: 0 all checks pass, 1 a check failed, 2 bad input.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario file.
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Validate scenario files without running them.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one simulation per seed, in parallel, and summarize.
    Sweep {
        /// The scenario file (TOML).
        file: PathBuf,
        #[command(flatten)]
        args: SweepArgs,
    },
    /// Shrink a failing run to the smallest fault schedule that still fails.
    Shrink {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Switch on a planted protocol bug; repeatable.
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Override a scenario key; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Write the smallest failing scenario to FILE (default: print it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Runs to spend at most.
        #[arg(long, default_value_t = 400)]
        budget: u64,
    },
    /// List the planted protocol bugs (`--bug NAME`).
    Bugs,
    /// Run one node of a real cluster over TCP (see docs/real-mode.md).
    Node {
        /// The cluster file (TOML): the scenario and every node's address.
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// The node's role; `--id` is then its index.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// The node: an index with `--role`, or a name (`server-1`,
        /// `worker-0`, `coordinator`).
        #[arg(long, value_name = "N|NAME")]
        id: Option<String>,
        /// Life number: 0 at the start of the job, then 1, 2, ... for
        /// restarts (a restarted server copies its ranges back).
        #[arg(long, default_value_t = 0)]
        incarnation: u32,
        /// Exit when stdin closes (for a supervisor such as `pssim local`).
        #[arg(long, hide = true)]
        exit_on_eof: bool,
    },
    /// Run a scenario's cluster for real over TCP on loopback, and judge it
    /// like a simulated run.
    Local {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Run the nodes as tasks of this process instead of child
        /// processes.
        #[arg(long)]
        in_process: bool,
        /// Seed of the workers' minibatch order (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the outcome as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Give up (and fail) if training has not finished after this long.
        #[arg(long, value_name = "DURATION", default_value = "120s")]
        timeout: String,
        /// Write the merged event trace (JSON Lines) to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Keep the cluster file, events and node logs in DIR (default: a
        /// temporary directory, removed after a successful run).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Measure performance against baselines taken in the same run.
    Bench {
        /// Also write the measurements as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Run only the scale benchmark (scenarios/scale.toml: 10^6
        /// features, 16 servers, 128 workers, 1000 clocks; about a minute):
        /// wall time and peak memory.
        #[arg(long)]
        scale: bool,
    },
}

/// A node's role in a real cluster.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Role {
    /// A parameter server.
    Server,
    /// A worker.
    Worker,
    /// The coordinator.
    Coordinator,
}

#[derive(Args, Clone)]
struct SweepArgs {
    /// Seeds: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_name = "A..B")]
    seeds: String,
    /// Parallel runs (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only the I-th of N contiguous slices of the seeds (I from 0).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Print the sweep summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Write runs.csv (one row per seed) and summary.json into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the sweep's plots (PNG and SVG) into DIR: the trade-off
    /// against a swept parameter, convergence per configuration.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Write a self-contained HTML report of the sweep.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Switch on a planted protocol bug; repeatable.
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Override a scenario key; repeatable. `KEY=a,b,c` sweeps the values:
    /// one sweep per combination of the listed values.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run each seed twice and compare trace hashes.
    #[arg(long)]
    check_determinism: bool,
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Seed (default: the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the outcome as one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write outcome.json, summary.txt and CSV time series into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the plots (PNG and SVG) into DIR.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Write a self-contained HTML report (checks, metrics, faults, plots).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the event trace (JSON Lines) to FILE.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Include deliveries, drops and timer firings in the trace.
    #[arg(long, requires = "trace")]
    trace_all: bool,
    /// Switch on a planted protocol bug (see `pssim bugs`); repeatable.
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Run twice and compare trace hashes (the `deterministic` check).
    #[arg(long)]
    check_determinism: bool,
    /// Override a scenario key, e.g. `--set training.staleness=4`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        #[cfg(madsim)]
        None => {
            // The main job: the default scenario, with its plots.
            let mut args = cli.run.clone();
            args.plots
                .get_or_insert_with(|| PathBuf::from("plots/default"));
            run(DEFAULT_SOURCE, DEFAULT_SCENARIO, &args)
        }
        #[cfg(madsim)]
        Some(Cmd::Run { file, args }) => match read(&file) {
            Ok(text) => run(&file.display().to_string(), &text, &args),
            Err(e) => bad_input(&e),
        },
        Some(Cmd::Check { files }) => check(&files),
        #[cfg(madsim)]
        Some(Cmd::Shrink {
            file,
            seed,
            bugs,
            sets,
            out,
            budget,
        }) => match read(&file) {
            Ok(text) => shrink(
                &file.display().to_string(),
                &text,
                seed,
                &bugs,
                &sets,
                out,
                budget,
            ),
            Err(e) => bad_input(&e),
        },
        #[cfg(madsim)]
        Some(Cmd::Sweep { file, args }) => match read(&file) {
            Ok(text) => sweep(&file.display().to_string(), &text, &args),
            Err(e) => bad_input(&e),
        },
        Some(Cmd::Bugs) => {
            say!("{:<20} {:<16} what it breaks", "bug", "caught by");
            for b in Bug::ALL {
                say!("{:<20} {:<16} {}", b.name(), b.caught_by(), b.description());
            }
            0
        }
        #[cfg(madsim)]
        Some(Cmd::Bench { json, scale }) => bench(json.as_deref(), scale),
        #[cfg(not(madsim))]
        None
        | Some(
            Cmd::Run { .. }
            | Cmd::Shrink { .. }
            | Cmd::Sweep { .. }
            | Cmd::Bench { .. }
            | Cmd::Local { .. },
        ) => bad_input(
            &"this pssim is the real build (cargo build-real): it runs `pssim node`; \
                         simulations and `pssim local` need the default build (cargo build)",
        ),
        Some(Cmd::Node {
            cluster,
            role,
            id,
            incarnation,
            exit_on_eof,
        }) => node(&cluster, role, id.as_deref(), incarnation, exit_on_eof),
        #[cfg(madsim)]
        Some(Cmd::Local {
            file,
            in_process,
            seed,
            json,
            timeout,
            trace,
            dir,
        }) => {
            let timeout = match humantime::parse_duration(&timeout) {
                Ok(t) => t,
                Err(e) => {
                    return ExitCode::from(bad_input(&format!("--timeout {timeout:?}: {e}")) as u8)
                }
            };
            let opts = pssim::net::local::LocalOptions {
                in_process,
                seed,
                timeout,
                trace,
                dir,
                exe: None,
            };
            local(&file, &opts, json)
        }
    };
    ExitCode::from(code as u8)
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the scenario file: {e}"),
    })
}

fn bad_input(e: &dyn std::fmt::Display) -> i32 {
    eprintln!("error: {e}");
    2
}

/// Parses a scenario with `--set` overrides applied.
fn load(source: &str, text: &str, sets: &[String]) -> Result<Scenario, ScenarioError> {
    let mut text = text.to_string();
    for s in sets {
        text = scenario::apply_override(&text, s)?;
    }
    scenario::parse(&text, source)
}

#[cfg(madsim)]
fn run(source: &str, text: &str, args: &RunArgs) -> i32 {
    let mut scn = match load(source, text, &args.sets) {
        Ok(s) => s,
        Err(e) => return bad_input(&e),
    };
    let bugs = match parse_bugs(&args.bugs) {
        Ok(b) => b,
        Err(e) => return bad_input(&e),
    };
    if args.check_determinism {
        scn.check.deterministic = true;
    }
    let opts = RunOptions {
        seed: args.seed.unwrap_or(scn.seed),
        bugs,
        trace: args.trace.clone(),
        trace_low_level: args.trace_all,
        keep_events: false,
        source: source.to_string(),
        sets: args.sets.clone(),
        schedule: None,
    };
    let result = sim::run(&scn, &opts);
    let o = &result.outcome;
    let summary = pssim::summary::render(&scn, o);
    if args.json {
        say!("{}", serde_json::to_string(&o).expect("outcome serializes"));
    } else {
        say_raw!("{summary}");
    }
    if let Some(dir) = &args.out {
        if let Err(e) = write_out(dir, o, &summary) {
            eprintln!("error: writing {}: {e}", dir.display());
            return 2;
        }
    }
    if let Some(dir) = &args.plots {
        match pssim::plot::run(&scn, o, dir) {
            Ok(files) if !args.json => {
                say!("plots      {} files in {}", files.len(), dir.display())
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: writing plots into {}: {e}", dir.display());
                return 2;
            }
        }
    }
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, pssim::report::run(&scn, o)) {
            eprintln!("error: writing {}: {e}", path.display());
            return 2;
        }
    }
    o.exit_code()
}

#[cfg(madsim)]
fn shrink(
    source: &str,
    text: &str,
    seed: Option<u64>,
    bugs: &[String],
    sets: &[String],
    out: Option<PathBuf>,
    budget: u64,
) -> i32 {
    let scn = match load(source, text, sets) {
        Ok(s) => s,
        Err(e) => return bad_input(&e),
    };
    let bugs = match parse_bugs(bugs) {
        Ok(b) => b,
        Err(e) => return bad_input(&e),
    };
    let opts = RunOptions {
        seed: seed.unwrap_or(scn.seed),
        bugs,
        source: source.to_string(),
        sets: sets.to_vec(),
        ..RunOptions::default()
    };
    let shrunk = match pssim::shrink::shrink(&scn, &opts, budget) {
        Ok(s) => s,
        Err(pssim::shrink::ShrinkError::Passes) => {
            say!(
                "{source} --seed {}: every check passes; nothing to shrink",
                opts.seed
            );
            return 0;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let failing: Vec<&str> = shrunk.failing.iter().map(String::as_str).collect();
    let mut toml = format!(
        "# Shrunk by `pssim shrink {source} --seed {}`: {} fault(s) -> {}, still failing {}.\n",
        opts.seed,
        shrunk.faults.0,
        shrunk.faults.1,
        failing.join(", ")
    );
    let mut small = shrunk.scenario.clone();
    small.seed = opts.seed;
    toml.push_str(&small.to_toml());
    eprintln!(
        "shrunk {} fault(s) to {} in {} runs; still failing: {}",
        shrunk.faults.0,
        shrunk.faults.1,
        shrunk.runs,
        failing.join(", ")
    );
    for (name, msgs) in &shrunk.outcome.violations {
        if let Some(m) = msgs.first() {
            eprintln!("  {name}: {m}");
        }
    }
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &toml) {
                eprintln!("error: writing {}: {e}", path.display());
                return 2;
            }
            let mut repro = format!("pssim run {} --seed {}", path.display(), opts.seed);
            for b in opts.bugs.iter() {
                repro.push_str(&format!(" --bug {b}"));
            }
            eprintln!("wrote {}\nREPRODUCE: {repro}", path.display());
        }
        None => say_raw!("{toml}"),
    }
    0
}

fn parse_bugs(names: &[String]) -> Result<Bugs, String> {
    let mut bugs = Bugs::NONE;
    for name in names {
        bugs = bugs.with(name.parse::<Bug>().map_err(|e| format!("--bug: {e}"))?);
    }
    Ok(bugs)
}

#[cfg(madsim)]
fn sweep(source: &str, text: &str, args: &SweepArgs) -> i32 {
    // `--set key=a,b,c` makes a grid: one sweep per combination.
    let (points, varying) = sweep::grid(&args.sets);
    let mut scenarios = Vec::new();
    for sets in &points {
        match load(source, text, sets) {
            Ok(mut scn) => {
                scn.check.deterministic |= args.check_determinism;
                scenarios.push((sets.clone(), scn));
            }
            Err(e) => return bad_input(&e),
        }
    }
    let parsed = (|| {
        let bugs = parse_bugs(&args.bugs)?;
        let all = sweep::parse_seeds(&args.seeds).map_err(|e| format!("--seeds: {e}"))?;
        let shard = args
            .shard
            .as_deref()
            .map(sweep::parse_shard)
            .transpose()
            .map_err(|e| format!("--shard: {e}"))?;
        let seeds = match shard {
            Some((i, n)) => sweep::shard(all, i, n),
            None => all,
        };
        if args.jobs == Some(0) {
            return Err("--jobs: must be at least 1".to_string());
        }
        Ok((bugs, seeds, shard))
    })();
    let (bugs, seeds, shard) = match parsed {
        Ok(p) => p,
        Err(e) => return bad_input(&e),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let total = (seeds.end - seeds.start) * scenarios.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs · {per_sec} · eta {eta} · {msg}",
            )
            .expect("a valid template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let failed = std::sync::atomic::AtomicU64::new(0);
    let tick = |row: &sweep::Row| {
        if !row.passed {
            let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    };
    let mut results = Vec::new();
    for (sets, scn) in &scenarios {
        let opts = sweep::SweepOptions {
            seeds: seeds.clone(),
            shard,
            jobs,
            run: RunOptions {
                bugs,
                source: source.to_string(),
                sets: sets.clone(),
                ..RunOptions::default()
            },
        };
        results.push(sweep::sweep(scn, &opts, &tick));
    }
    bar.finish_and_clear();
    let grid = !varying.is_empty();
    let report = sweep::GridReport::new(&points, &varying, &results);
    if args.json {
        let text = if grid {
            serde_json::to_string(&report)
        } else {
            serde_json::to_string(&results[0].summary)
        };
        say!("{}", text.expect("summary serializes"));
    } else {
        for (sets, r) in points.iter().zip(&results) {
            if grid {
                say!("== {}", sets.join(" "));
            }
            say_raw!("{}", sweep::render(&r.summary));
        }
        if grid {
            say_raw!("{}", report.render());
        }
    }
    if let Some(dir) = &args.out {
        let written = if grid {
            report.write(dir, &results)
        } else {
            sweep::write(dir, &results[0].rows, &results[0].summary)
        };
        if let Err(e) = written {
            eprintln!("error: writing {}: {e}", dir.display());
            return 2;
        }
    }
    if let Some(dir) = &args.plots {
        let scn = &scenarios[0].1;
        if let Err(e) = pssim::plot::sweep(scn, &report, &results, dir) {
            eprintln!("error: writing plots into {}: {e}", dir.display());
            return 2;
        }
    }
    if let Some(path) = &args.report {
        let html = pssim::report::sweep(&scenarios[0].1, &report, &results);
        if let Err(e) = std::fs::write(path, html) {
            eprintln!("error: writing {}: {e}", path.display());
            return 2;
        }
    }
    if report.failed == 0 {
        0
    } else {
        1
    }
}

#[cfg(madsim)]
fn write_out(dir: &Path, o: &pssim::outcome::Outcome, summary: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(o)?)?;
    std::fs::write(dir.join("summary.txt"), summary)?;
    pssim::outcome::write_csv(o, dir)?;
    Ok(())
}

fn check(files: &[PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        match read(f).and_then(|t| scenario::parse(&t, &f.display().to_string())) {
            Ok(s) => say!(
                "{}: ok ({:?}: {} servers, {} workers, {} faults)",
                f.display(),
                s.name,
                s.cluster.servers,
                s.cluster.workers,
                s.faults.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                code = 2;
            }
        }
    }
    code
}

fn node(
    cluster: &Path,
    role: Option<Role>,
    id: Option<&str>,
    incarnation: u32,
    exit_on_eof: bool,
) -> i32 {
    use pssim::core::NodeId;
    let id = match (role, id) {
        (Some(Role::Coordinator), None | Some("0")) | (None, Some("coordinator")) => {
            Ok(NodeId::Coordinator)
        }
        (Some(role @ (Role::Server | Role::Worker)), Some(n)) => match n.parse::<u32>() {
            Ok(i) if matches!(role, Role::Server) => Ok(NodeId::Server(i)),
            Ok(i) => Ok(NodeId::Worker(i)),
            Err(_) => Err(format!(
                "--id {n:?}: with --role, the id is an index (0, 1, ...)"
            )),
        },
        (None, Some(name)) => name.parse::<NodeId>().map_err(|e| format!("--id: {e}")),
        (Some(_), None) => Err("--id: which server or worker (an index)?".to_string()),
        (Some(Role::Coordinator), Some(n)) => {
            Err(format!("--id {n:?}: there is one coordinator; omit --id"))
        }
        (None, None) => Err("name the node: --role server|worker|coordinator --id N".to_string()),
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => return bad_input(&e),
    };
    let cluster = match pssim::net::cluster::Cluster::load(cluster) {
        Ok(c) => c,
        Err(e) => return bad_input(&e),
    };
    match pssim::net::node::run(&cluster, id, incarnation, exit_on_eof) {
        Ok(()) => 0,
        Err(e) => bad_input(&e),
    }
}

#[cfg(madsim)]
fn local(file: &Path, opts: &pssim::net::local::LocalOptions, json: bool) -> i32 {
    let scn = match scenario::load(file) {
        Ok(s) => s,
        Err(e) => return bad_input(&e),
    };
    let o = match pssim::net::local::run(&scn, file, opts) {
        Ok(o) => o,
        Err(e) => return bad_input(&e),
    };
    if json {
        say!("{}", serde_json::to_string(&o).expect("outcome serializes"));
    } else {
        say_raw!("{}", pssim::summary::render(&scn, &o));
    }
    o.exit_code()
}

#[cfg(madsim)]
fn bench(json: Option<&Path>, scale: bool) -> i32 {
    let ms = if scale {
        match scenario::parse(pssim::bench::SCALE_SCENARIO, "scenarios/scale.toml") {
            Ok(s) => pssim::bench::run_scale(&s),
            Err(e) => return bad_input(&e),
        }
    } else {
        match scenario::parse(DEFAULT_SCENARIO, DEFAULT_SOURCE) {
            Ok(s) => pssim::bench::run_all(&s),
            Err(e) => return bad_input(&e),
        }
    };
    say_raw!("{}", pssim::bench::table(&ms));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&ms).expect("measurements serialize");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: writing {}: {e}", path.display());
            return 2;
        }
    }
    0
}
