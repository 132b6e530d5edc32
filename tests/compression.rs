//! Communication efficiency (`[compression]`): the targets of the
//! compression work, measured on `scenarios/compression.toml` (digits, SSP)
//! and `scenarios/compression-slow-link.toml` (100 kbps links), plus the
//! `pull_filter` check against its planted bug. Numbers are in
//! docs/scenarios.md and docs/performance.md.

#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};
use pssim::outcome::Outcome;
use pssim::sim::{self, RunOptions};

/// Runs a scenario file with `--set` overrides, as the CLI would.
fn run_set(path: &str, seed: u64, bugs: Bugs, sets: &[&str]) -> Outcome {
    let mut text = std::fs::read_to_string(path).unwrap();
    for s in sets {
        text = pssim::scenario::apply_override(&text, s).unwrap_or_else(|e| panic!("{e}"));
    }
    let scn = pssim::scenario::parse(&text, path).unwrap_or_else(|e| panic!("{e}"));
    sim::run(
        &scn,
        &RunOptions {
            seed,
            bugs,
            source: path.to_string(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            ..RunOptions::default()
        },
    )
    .outcome
}

const DIGITS: &str = "scenarios/compression.toml";
const SLOW: &str = "scenarios/compression-slow-link.toml";

fn none(seed: u64) -> Outcome {
    let o = run_set(DIGITS, seed, Bugs::NONE, &["compression.kind=none"]);
    assert_passed(&o);
    assert_eq!(o.compression_ratio, 1.0);
    assert_eq!(o.bytes_pushed, o.bytes_pushed_raw);
    o
}

#[test]
fn top_1_percent_with_error_feedback_is_within_a_point_at_a_tenth_of_the_bytes() {
    for seed in [1, 2, 3] {
        let base = none(seed);
        let o = run_set(DIGITS, seed, Bugs::NONE, &[]);
        assert_passed(&o);
        let pushed = o.bytes_pushed as f64 / base.bytes_pushed as f64;
        assert!(pushed <= 0.10, "pushed {pushed:.3} of raw: {}", context(&o));
        assert!(
            o.final_accuracy >= base.final_accuracy - 0.01,
            "{:.4} vs {:.4}: {}",
            o.final_accuracy,
            base.final_accuracy,
            context(&o)
        );
        assert!(o.compression_ratio > 1.5, "{}", context(&o));
    }
}

#[test]
fn without_error_feedback_top_k_loses_accuracy() {
    // The entries never large enough to be sent are lost for good.
    let mut with = 0.0;
    let mut without = 0.0;
    for seed in [1, 2, 3] {
        with += run_set(DIGITS, seed, Bugs::NONE, &[]).final_accuracy;
        without += run_set(
            DIGITS,
            seed,
            Bugs::NONE,
            &["compression.error_feedback=false"],
        )
        .final_accuracy;
    }
    assert!(
        without < with - 0.03 * 3.0 / 2.0,
        "mean accuracy without feedback {:.4}, with {:.4}",
        without / 3.0,
        with / 3.0
    );
}

#[test]
fn eight_bit_quantization_is_within_half_a_point_at_under_a_third_of_the_bytes() {
    for seed in [1, 2] {
        let base = none(seed);
        let o = run_set(
            DIGITS,
            seed,
            Bugs::NONE,
            &["compression.kind=quantize", "compression.bits=8"],
        );
        assert_passed(&o);
        let pushed = o.bytes_pushed as f64 / base.bytes_pushed as f64;
        // Values take a quarter; message headers make it ~31%.
        assert!(pushed <= 0.33, "pushed {pushed:.3} of raw");
        assert!(
            o.final_accuracy >= base.final_accuracy - 0.005,
            "{}",
            context(&o)
        );
    }
}

#[test]
fn pull_filter_saves_pulled_bytes_at_little_cost_and_large_thresholds_cost_accuracy() {
    let base = none(1);
    let o = run_set(
        DIGITS,
        1,
        Bugs::NONE,
        &["compression.kind=none", "compression.pull_threshold=0.01"],
    );
    assert_passed(&o);
    assert_eq!(o.checks["pull_filter"], Status::Pass);
    assert_eq!(o.bytes_pushed, base.bytes_pushed);
    let pulled = o.bytes_pulled as f64 / base.bytes_pulled as f64;
    assert!(pulled < 0.3, "pulled {pulled:.3} of unfiltered");
    assert!(o.final_accuracy >= base.final_accuracy - 0.005);
    // A threshold larger than the parameters' movement starves the
    // workers of updates: the filter really filters.
    let coarse = run_set(
        DIGITS,
        1,
        Bugs::NONE,
        &["compression.kind=none", "compression.pull_threshold=3"],
    );
    assert!(coarse.final_accuracy < base.final_accuracy - 0.05);
}

#[test]
fn on_slow_links_compression_reaches_the_target_sooner() {
    let base = run_set(
        SLOW,
        1,
        Bugs::NONE,
        &["compression.kind=none", "compression.pull_threshold=0"],
    );
    let o = run_set(SLOW, 1, Bugs::NONE, &[]);
    assert_passed(&base);
    assert_passed(&o);
    let (t0, t1) = (
        base.time_to_target_s
            .expect("uncompressed reaches the target"),
        o.time_to_target_s.expect("compressed reaches the target"),
    );
    assert!(
        t0 / t1 > 1.4,
        "speed-up {:.2} ({t0:.2} s vs {t1:.2} s)",
        t0 / t1
    );
}

#[test]
fn compressed_runs_are_deterministic() {
    for sets in [
        &["compression.pull_threshold=0.01"][..],
        &["compression.kind=quantize", "compression.bits=1"][..],
    ] {
        let a = run_set(DIGITS, 5, Bugs::NONE, sets);
        let b = run_set(DIGITS, 5, Bugs::NONE, sets);
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.params_digest, b.params_digest);
    }
}

#[test]
fn a_filter_that_trusts_its_record_is_caught() {
    // Lost answers make the server's record and the worker's copy differ;
    // only the request's digest tells.
    let sets = ["compression.pull_threshold=0.01"];
    let ok = run_set("scenarios/packet-loss.toml", 1, Bugs::NONE, &sets);
    assert_passed(&ok);
    assert_eq!(ok.checks["pull_filter"], Status::Pass);
    let bad = run_set(
        "scenarios/packet-loss.toml",
        1,
        Bugs::NONE.with(Bug::FilterIgnoresBase),
        &sets,
    );
    assert_eq!(bad.checks["pull_filter"], Status::Fail, "{}", context(&bad));
    assert!(bad.reproduce.contains("--bug filter_ignores_base"));
}

#[test]
fn sparse_top_k_sends_only_kept_keys_and_counts_what_raw_would_cost() {
    let path = "scenarios/sparse-large.toml";
    let base = run_set(path, 1, Bugs::NONE, &[]);
    let o = run_set(
        path,
        1,
        Bugs::NONE,
        &["compression.kind=topk", "compression.ratio=0.1"],
    );
    assert_passed(&o);
    // Same minibatches, so raw floats would have cost exactly the
    // uncompressed run's bytes; keys and values of a tenth are sent.
    assert_eq!(o.bytes_pushed_raw, base.bytes_pushed);
    let pushed = o.bytes_pushed as f64 / base.bytes_pushed as f64;
    assert!(pushed < 0.12, "pushed {pushed:.3} of raw");
    assert!(
        o.final_accuracy >= base.final_accuracy - 0.02,
        "{}",
        context(&o)
    );
}
