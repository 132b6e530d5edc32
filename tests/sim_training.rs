//! The simulator end to end: real training under BSP, SSP and ASP,
//! bit-identical BSP and SSP(0), determinism, and every foundation checker
//! failing on its planted bug.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::{assert_passed, context, run, run_with, scenario};
use pssim::check::Status;
use pssim::core::{Bug, Bugs};

fn breast_cancer(consistency: &str) -> String {
    format!(
        r#"
name = "bc-{consistency}"
[cluster]
servers = 2
workers = 4
[model]
kind = "logistic"
dataset = "breast_cancer"
[training]
consistency = "{consistency}"
staleness = 3
clocks = 60
[network]
latency = "1ms..3ms"
[check]
min_accuracy = 0.94
"#
    )
}

fn digits(consistency: &str, staleness: u32) -> String {
    format!(
        r#"
name = "digits-{consistency}"
[cluster]
servers = 4
workers = 8
[model]
kind = "softmax"
dataset = "digits"
[training]
consistency = "{consistency}"
staleness = {staleness}
clocks = 60
[network]
latency = "1ms..3ms"
[compute]
step_time = "20ms"
jitter = 0.2
[check]
min_accuracy = 0.94
"#
    )
}

#[test]
fn bsp_reaches_the_reference_band_on_both_real_data_sets() {
    for text in [breast_cancer("bsp"), digits("bsp", 0)] {
        let scn = scenario(&text);
        for seed in 1..=3 {
            let o = run(&scn, seed);
            assert_passed(&o);
            assert!(o.final_accuracy >= 0.94, "{}", context(&o));
            assert_eq!(o.checks["staleness_bound"], Status::Pass);
            assert!(o.reads_checked > 0);
        }
    }
}

#[test]
fn bsp_and_ssp_with_bound_zero_give_bit_identical_parameters() {
    for seed in 1..=3 {
        let bsp = run(&scenario(&digits("bsp", 0)), seed);
        let ssp0 = run(&scenario(&digits("ssp", 0)), seed);
        assert_eq!(bsp.params_digest, ssp0.params_digest, "{}", context(&bsp));
        assert_eq!(bsp.final_accuracy, ssp0.final_accuracy);
    }
}

#[test]
fn asp_and_ssp_converge() {
    for text in [
        digits("ssp", 3),
        digits("ssp", 8),
        digits("asp", 0),
        breast_cancer("asp"),
        breast_cancer("ssp"),
    ] {
        let scn = scenario(&text);
        let o = run(&scn, 7);
        assert_passed(&o);
    }
}

#[test]
fn ssp_runs_faster_than_bsp_with_jittery_workers() {
    let bsp = run(&scenario(&digits("bsp", 0)), 3);
    let ssp = run(&scenario(&digits("ssp", 3)), 3);
    assert!(
        ssp.sim_time_s < bsp.sim_time_s,
        "SSP {} s should beat BSP {} s",
        ssp.sim_time_s,
        bsp.sim_time_s
    );
}

#[test]
fn same_seed_same_trace_and_different_seeds_differ() {
    let scn = scenario(&digits("ssp", 3));
    let mut hashes = Vec::new();
    for seed in 1..=5 {
        let a = run(&scn, seed);
        let b = run(&scn, seed);
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} is not deterministic"
        );
        assert_eq!(a.params_digest, b.params_digest);
        hashes.push(a.trace_hash);
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 5, "different seeds must give different runs");
}

#[test]
fn the_deterministic_check_passes_and_catches_leaked_global_state() {
    let mut scn = scenario(&digits("ssp", 3));
    scn.check.deterministic = true;
    let o = run(&scn, 11);
    assert_eq!(o.checks["deterministic"], Status::Pass, "{}", context(&o));
    let bad = run_with(&scn, 11, Bugs::NONE.with(Bug::GlobalState), "inline");
    assert_eq!(
        bad.checks["deterministic"],
        Status::Fail,
        "{}",
        context(&bad)
    );
    let msg = &bad.violations["deterministic"][0];
    assert!(msg.contains("first diverging event"), "{msg}");
    assert!(bad.reproduce.contains("--bug global_state"));
}

#[test]
fn planted_gate_bugs_are_caught_by_staleness_bound() {
    for (bug, consistency, s) in [
        (Bug::GateOffByOne, "ssp", 1),
        (Bug::GateOffByOne, "bsp", 0),
        (Bug::GateIgnoresBound, "ssp", 2),
    ] {
        let scn = scenario(&digits(consistency, s));
        let caught = (1..=5).any(|seed| {
            let o = run_with(&scn, seed, Bugs::NONE.with(bug), "inline");
            o.checks["staleness_bound"] == Status::Fail
        });
        assert!(
            caught,
            "{bug} under {consistency}({s}) was not caught in 5 seeds"
        );
    }
}

#[test]
fn a_stale_read_names_worker_clock_and_missing_update() {
    let scn = scenario(&digits("bsp", 0));
    let o = run_with(&scn, 1, Bugs::NONE.with(Bug::GateIgnoresBound), "inline");
    let v = &o.violations["staleness_bound"][0];
    assert!(
        v.contains("answered worker-") && v.contains("for clock") && v.contains("update of clock"),
        "{v}"
    );
    assert!(!o.passed);
    assert_eq!(o.exit_code(), 1);
}

#[test]
fn gradient_ascent_fails_min_accuracy() {
    let scn = scenario(&breast_cancer("bsp"));
    let o = run_with(&scn, 1, Bugs::NONE.with(Bug::GradientAscent), "inline");
    assert_eq!(o.checks["min_accuracy"], Status::Fail, "{}", context(&o));
}

#[test]
fn sparse_logistic_pulls_only_minibatch_keys_and_learns() {
    let scn = scenario(
        r#"
name = "sparse"
[cluster]
servers = 4
workers = 4
[model]
kind = "sparse_logistic"
dataset = "synthetic"
features = 20000
examples = 8000
density = 0.002
skew = 0.667
[training]
consistency = "ssp"
staleness = 2
learning_rate = 0.5
clocks = 150
[check]
min_accuracy = 0.75
"#,
    );
    let o = run(&scn, 1);
    assert_passed(&o);
    // A dense pull of 20001 keys is 80 kB; sparse pulls are a few kB.
    let pulls = o.message_kinds["pull_resp"];
    assert!(pulls.bytes / pulls.count < 4_000, "{:?}", pulls);
}
