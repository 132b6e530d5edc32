//! The compute cost model on the simulator: with `worker_gflops` (and no
//! `step_time`) a minibatch takes the model's FLOPs for the actual batch
//! over the rate, so the step time is proportional to the batch size and
//! follows a live `batch_size` change; `step_time` keeps its meaning.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::{assert_passed, context, run, scenario};
use pssim::outcome::Outcome;
use pssim::run::timeline::Activity;

/// Softmax on digits: 10 * (4 * 64 + 6) = 2620 FLOPs per example. At
/// 0.001 GFLOP/s (10^6 FLOP/s) a batch of `b` takes `2.62 b` ms.
fn digits(batch: u32, compute: &str, extra: &str) -> String {
    format!(
        r#"
name = "digits-flops"
[cluster]
servers = 2
workers = 2
[model]
kind = "softmax"
dataset = "digits"
[training]
consistency = "bsp"
batch_size = {batch}
clocks = 12
[network]
latency = "1ms"
[compute]
{compute}
{extra}
"#
    )
}

/// (start, duration) of every compute segment, in seconds.
fn computes(o: &Outcome) -> Vec<(f64, f64)> {
    o.timeline
        .iter()
        .filter(|s| s.activity == Activity::Compute)
        .map(|s| (s.start_s, s.end_s - s.start_s))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn the_step_time_is_proportional_to_the_batch_with_worker_gflops() {
    let mut per_batch = Vec::new();
    for batch in [16, 32, 64] {
        let o = run(&scenario(&digits(batch, "worker_gflops = 0.001", "")), 1);
        assert_passed(&o);
        let c = computes(&o);
        assert!(c.len() >= 20, "{}", context(&o));
        let expected = 2620.0 * f64::from(batch) / 1e6;
        for &(_, d) in &c {
            assert!(close(d, expected), "batch {batch}: {d} s, not {expected} s");
        }
        per_batch.push(c[0].1);
    }
    // Double the batch, double the time (within rounding to a nanosecond).
    assert!(close(per_batch[1], 2.0 * per_batch[0]), "{per_batch:?}");
    assert!(close(per_batch[2], 2.0 * per_batch[1]), "{per_batch:?}");
}

#[test]
fn a_live_batch_size_change_changes_the_step_time() {
    let change = "[[change]]\nat = \"0.5s\"\nbatch_size = 64\n";
    let o = run(&scenario(&digits(32, "worker_gflops = 0.001", change)), 1);
    assert_passed(&o);
    let (short, long) = (2620.0 * 32.0 / 1e6, 2620.0 * 64.0 / 1e6);
    let c = computes(&o);
    let first_long = c
        .iter()
        .position(|&(_, d)| close(d, long))
        .unwrap_or_else(|| panic!("no step of batch 64: {c:?}"));
    assert!(first_long > 0, "steps before the change take batch 32");
    for (i, &(_, d)) in c.iter().enumerate() {
        assert!(close(d, short) || close(d, long), "step {i}: {d} s");
    }
    // Once a worker computes batches of 64, it never goes back.
    for w in 0..2 {
        let mine: Vec<f64> = o
            .timeline
            .iter()
            .filter(|s| s.activity == Activity::Compute && s.worker == w)
            .map(|s| s.end_s - s.start_s)
            .collect();
        let k = mine.iter().position(|&d| close(d, long)).expect("changed");
        assert!(mine[..k].iter().all(|&d| close(d, short)), "{mine:?}");
        assert!(mine[k..].iter().all(|&d| close(d, long)), "{mine:?}");
    }
}

#[test]
fn step_time_keeps_its_meaning_and_wins_over_worker_gflops() {
    for compute in [
        "step_time = \"20ms\"",
        "step_time = \"20ms\"\nworker_gflops = 0.001",
        "",
    ] {
        let o = run(&scenario(&digits(32, compute, "")), 1);
        assert_passed(&o);
        for (_, d) in computes(&o) {
            assert!(close(d, 0.020), "{compute:?}: {d} s");
        }
    }
}
