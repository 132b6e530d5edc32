//! Live changes (`[[change]]`): every node switches at the coordinator's
//! clock boundary, and a change made live gives the same model as the same
//! schedule configured from the start.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bugs, Clock, Consistency, Hyper, Schedule};
use pssim::sim::{self, RunOptions};

const ONE_WORKER: &str = r#"
name = "live-lr"
[cluster]
servers = 2
workers = 1
[model]
kind = "logistic"
dataset = "breast_cancer"
[training]
consistency = "bsp"
learning_rate = 0.2
batch_size = 16
clocks = 60
[[change]]
at = "400ms"
learning_rate = 0.05
"#;

#[test]
fn a_live_learning_rate_change_equals_the_schedule_configured_from_the_start() {
    let scn = scenario(ONE_WORKER);
    let (live, trace) = {
        let path = std::env::temp_dir().join(format!("pssim-live-{}.toml", std::process::id()));
        std::fs::write(&path, ONE_WORKER).unwrap();
        let r = run_traced(path.to_str().unwrap(), 3, Bugs::NONE);
        let _ = std::fs::remove_file(&path);
        r
    };
    assert_passed(&live);
    assert_eq!(live.checks["live_changes"], Status::Pass);
    let boundary = events(&trace, "change_applied")[0]["clock"]
        .as_u64()
        .unwrap() as u32;
    assert!(boundary > 0 && boundary < 60, "boundary {boundary}");
    let h = |lr| Hyper {
        consistency: Consistency::Bsp,
        learning_rate: lr,
        batch_size: 16,
    };
    let fixed = sim::run(
        &scn,
        &RunOptions {
            seed: 3,
            schedule: Some(Schedule::two_phases(h(0.2), Clock(boundary), h(0.05))),
            ..RunOptions::default()
        },
    )
    .outcome;
    assert_eq!(
        live.params_digest, fixed.params_digest,
        "the live change at clock {boundary} differs from the configured schedule"
    );
    // And both differ from never changing.
    let never = run(
        &scenario(&ONE_WORKER.replace("[[change]]\nat = \"400ms\"\nlearning_rate = 0.05\n", "")),
        3,
    );
    assert_ne!(never.params_digest, live.params_digest);
}

#[test]
fn every_node_switches_at_the_same_boundary() {
    for seed in [1, 2, 3] {
        let (o, trace) = run_traced("scenarios/live-change.toml", seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(o.checks["live_changes"], Status::Pass, "{}", context(&o));
        for k in [1, 2] {
            let applied: Vec<_> = events(&trace, "change_applied")
                .into_iter()
                .filter(|e| e["change"] == k)
                .collect();
            // 4 servers and 8 workers.
            let nodes: std::collections::BTreeSet<&str> = applied
                .iter()
                .map(|e| e["node"].as_str().unwrap())
                .collect();
            assert_eq!(nodes.len(), 12, "change {k}: {nodes:?}");
            let clocks: std::collections::BTreeSet<u64> = applied
                .iter()
                .map(|e| e["clock"].as_u64().unwrap())
                .collect();
            assert_eq!(clocks.len(), 1, "change {k} boundaries {clocks:?}");
        }
        // Reads past the second boundary are judged under BSP.
        let b2 = events(&trace, "change_applied")
            .into_iter()
            .find(|e| e["change"] == 2)
            .unwrap()["clock"]
            .as_u64()
            .unwrap();
        assert!(events(&trace, "pull_answered")
            .iter()
            .filter(|e| e["clock"].as_u64().unwrap() >= b2)
            .all(|e| e["bound"] == 0));
    }
}

#[test]
fn changes_under_chaos_keep_every_check_green() {
    for seed in 0..8 {
        let o = run_file("scenarios/chaos-live-change.toml", seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(o.checks["live_changes"], Status::Pass, "{}", context(&o));
    }
}

#[test]
fn preparing_without_a_fence_is_caught() {
    let caught = (1..=6).any(|seed| {
        let o = run_file(
            "scenarios/live-change.toml",
            seed,
            Bugs::NONE.with(pssim::core::Bug::NoFence),
        );
        o.checks["live_changes"] == Status::Fail
    });
    assert!(caught, "no_fence was not caught by live_changes in 6 seeds");
}
