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
