//! The safety mechanisms of docs/protocol.md, each pinned as a constructed
//! fault schedule (so the test keeps its meaning when the clock model
//! changes) that passes, and fails with its planted bug or unsafe variant:
//!
//! - push fences and two-phase admission: no late update after a
//!   re-admission (`no_push_fence`);
//! - fallback copies: a live replica removed on a false suspicion brings
//!   its ranges back when the other replica crashes (`no_fallback`);
//! - read leases: a live change's boundary passes every clock a server
//!   that did not fence may have served (`read_leases = false`).
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};

fn pinned(name: &str) -> (pssim::scenario::Scenario, String) {
    let path = format!("tests/regressions/{name}.toml");
    (file(&path), path)
}

#[test]
fn a_push_held_across_a_readmission_is_never_applied() {
    let (scn, path) = pinned("late-update-readmission");
    let (o, trace) = run_traced(&path, scn.seed, Bugs::NONE);
    assert_passed(&o);
    // The mechanism happened: removed, then re-admitted above its clock.
    let admitted: Vec<_> = events(&trace, "worker_admitted")
        .into_iter()
        .filter(|e| e["worker"] == 2 && e["clock"].as_u64() > Some(0))
        .collect();
    assert_eq!(admitted.len(), 1, "{}", context(&o));
    assert!(!events(&trace, "worker_removed").is_empty());
    // Its clock-7 push never reached range 0 after it was cut off.
    let late: Vec<_> = events(&trace, "push_applied")
        .into_iter()
        .filter(|e| e["worker"] == 2 && e["range"] == 0 && e["clock"] == 7)
        .collect();
    assert!(late.is_empty(), "{late:?}");
    let bug = run_with(&scn, scn.seed, Bugs::NONE.with(Bug::NoPushFence), &path);
    assert_eq!(
        bug.checks["staleness_bound"],
        Status::Fail,
        "{}",
        context(&bug)
    );
    assert!(
        bug.violations["staleness_bound"][0].starts_with("late update"),
        "{}",
        context(&bug)
    );
}

#[test]
fn a_falsely_suspected_replica_brings_its_ranges_back() {
    let path = "scenarios/false-suspicion.toml".to_string();
    let scn = file(&path);
    let (o, trace) = run_traced(&path, scn.seed, Bugs::NONE);
    assert_passed(&o);
    assert_eq!(o.updates_lost, 0);
    // Both ranges lost every replica (the crashed one came back empty)...
    let views = events(&trace, "view");
    assert!(
        views.iter().any(|v| v["chains"]
            .as_array()
            .is_some_and(|c| c.iter().all(|x| x.as_array().is_some_and(|x| x.is_empty())))),
        "no view without replicas: {}",
        context(&o)
    );
    // ...and server-1's fallback came back without a copy or a restore.
    assert!(events(&trace, "restore").is_empty());
    let bug = run_with(&scn, scn.seed, Bugs::NONE.with(Bug::NoFallback), &path);
    assert_eq!(
        bug.checks["no_lost_updates"],
        Status::Fail,
        "{}",
        context(&bug)
    );
    assert!(bug.updates_lost > 0);
}

#[test]
fn without_leases_a_server_removed_mid_prepare_serves_past_the_boundary() {
    // chaos-live-change, seed 3 (SSP): server-0 is cut off from the
    // coordinator just as change 3 is prepared, keeps serving its readers
    // unfenced, and is removed; the boundary must pass what it served.
    let path = "scenarios/chaos-live-change.toml";
    let mut scn = file(path);
    assert!(scn.cluster.read_leases, "leases are the default");
    let o = run_with(&scn, 3, Bugs::NONE, path);
    assert_passed(&o);
    scn.cluster.read_leases = false;
    let unsafe_ = run_with(&scn, 3, Bugs::NONE, path);
    assert_eq!(
        unsafe_.checks["live_changes"],
        Status::Fail,
        "{}",
        context(&unsafe_)
    );
}
