//! Helpers shared by the scenario tests: parse inline scenarios, run them,
//! and fail with the seed and the REPRODUCE line.
#![allow(dead_code)]

use pssim::core::Bugs;
use pssim::outcome::Outcome;
use pssim::scenario::{self, Scenario};
use pssim::sim::{self, RunOptions};

/// Parses an inline scenario (panics with the parse error).
pub fn scenario(text: &str) -> Scenario {
    scenario::parse(text, "inline").unwrap_or_else(|e| panic!("bad test scenario: {e}"))
}

/// Loads a scenario file of the repository.
pub fn file(path: &str) -> Scenario {
    scenario::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `scn` with `seed` (and bugs), with `source` as its REPRODUCE path.
pub fn run_with(scn: &Scenario, seed: u64, bugs: Bugs, source: &str) -> Outcome {
    sim::run(
        scn,
        &RunOptions {
            seed,
            bugs,
            source: source.to_string(),
            ..RunOptions::default()
        },
    )
    .outcome
}

/// Runs `scn` with `seed`.
pub fn run(scn: &Scenario, seed: u64) -> Outcome {
    run_with(scn, seed, Bugs::NONE, "<inline scenario>")
}

/// A failure message naming the run.
pub fn context(o: &Outcome) -> String {
    format!(
        "scenario {:?} seed {}: checks {:?}, violations {:?}, accuracy {:.4}, panic {:?}\nREPRODUCE: {}",
        o.scenario, o.seed, o.checks, o.violations, o.final_accuracy, o.panic, o.reproduce
    )
}

/// Asserts every check passed.
pub fn assert_passed(o: &Outcome) {
    assert!(o.passed, "run failed: {}", context(o));
}

/// Runs a scenario file with `seed` and the bugs, writing its JSON Lines
/// trace; returns the outcome and the trace's events (as JSON values).
pub fn run_traced(path: &str, seed: u64, bugs: Bugs) -> (Outcome, Vec<serde_json::Value>) {
    run_traced_with(path, seed, bugs, false)
}

/// As [`run_traced`], with deliveries, drops and timers in the trace if
/// `low_level`.
pub fn run_traced_with(
    path: &str,
    seed: u64,
    bugs: Bugs,
    low_level: bool,
) -> (Outcome, Vec<serde_json::Value>) {
    run_scenario_traced(&file(path), seed, bugs, low_level, path)
}

/// As [`run_traced_with`], for a scenario in memory (`source` names it in
/// REPRODUCE).
pub fn run_scenario_traced(
    scn: &Scenario,
    seed: u64,
    bugs: Bugs,
    low_level: bool,
    source: &str,
) -> (Outcome, Vec<serde_json::Value>) {
    // Runs of one test binary may go in parallel (also of one scenario and
    // seed, with different bugs): each gets its own file.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trace = std::env::temp_dir().join(format!(
        "pssim-test-{}-{}-{}-{n}.jsonl",
        scn.name,
        seed,
        std::process::id()
    ));
    let o = sim::run(
        scn,
        &RunOptions {
            seed,
            bugs,
            trace: Some(trace.clone()),
            trace_low_level: low_level,
            source: source.to_string(),
            ..RunOptions::default()
        },
    )
    .outcome;
    let text = std::fs::read_to_string(&trace).expect("the trace was written");
    let _ = std::fs::remove_file(&trace);
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each trace line is JSON"))
        .collect();
    (o, events)
}

/// Runs a scenario file of the repository with `seed` (REPRODUCE names the
/// file).
pub fn run_file(path: &str, seed: u64, bugs: Bugs) -> Outcome {
    run_with(&file(path), seed, bugs, path)
}

/// The events of kind `ev`.
pub fn events<'a>(trace: &'a [serde_json::Value], ev: &str) -> Vec<&'a serde_json::Value> {
    trace.iter().filter(|e| e["ev"] == ev).collect()
}

/// Runs the repository's scenario `name` (a path under the crate) for real,
/// `pssim local FILE --json ARGS` (nodes as child processes on loopback),
/// and asserts it succeeded within a point of the final accuracies of its
/// simulated seeds 1–3 (each passing; real timing differs); returns the
/// real outcome's JSON.
pub fn local_in_simulated_band(name: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    let scn = file(&path);
    let simulated: Vec<f64> = (1..=3)
        .map(|seed| {
            let o = run_with(&scn, seed, Bugs::NONE, &path);
            assert_passed(&o);
            o.final_accuracy
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pssim"))
        .args(["local", &path, "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pssim local failed: {stdout}");
    let o: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let real = o["final_accuracy"].as_f64().unwrap();
    let (lo, hi) = simulated
        .iter()
        .fold((1.0f64, 0.0f64), |(l, h), &a| (l.min(a), h.max(a)));
    assert!(
        real >= lo - 0.01 && real <= hi + 0.01,
        "real {real:.4}, simulated {simulated:?}"
    );
    o
}
