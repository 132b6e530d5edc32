//! The safety mechanisms of docs/protocol.md, each pinned as a constructed
//! fault schedule (so the test keeps its meaning when the clock model
//! changes) that passes, and fails with its planted bug or unsafe variant:
//!
//! - push fences and two-phase admission: no late update after a
//!   re-admission (`no_push_fence`);
//! - fallback copies: a live replica removed on a false suspicion brings
//!   its ranges back when the other replica crashes (`no_fallback`);
//! - a lone replica acknowledges only what a spare holds too, and a spare
//!   is recruited at once (`ack_alone`);
//! - read leases: a replica removed while cut off serves no read
//!   (`read_leases = false` serves a stale one).
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

/// With `bug` on, the scenario loses acknowledged updates.
fn assert_loses_with(scn: &pssim::scenario::Scenario, path: &str, bug: Bug) {
    let o = run_with(scn, scn.seed, Bugs::NONE.with(bug), path);
    assert_eq!(o.checks["no_lost_updates"], Status::Fail, "{}", context(&o));
    assert!(o.updates_lost > 0, "{}", context(&o));
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
    // None of its pushes below its admission clock was applied after the
    // admission (the held one reached the heads at 900 ms).
    let (start, at) = (admitted[0]["clock"].as_u64(), admitted[0]["t_us"].as_u64());
    let late: Vec<_> = events(&trace, "push_applied")
        .into_iter()
        .filter(|e| e["worker"] == 2 && e["clock"].as_u64() < start && e["t_us"].as_u64() > at)
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
    assert_loses_with(&scn, &path, Bug::NoFallback);
}

#[test]
fn a_lone_replica_acknowledges_only_what_a_spare_holds_too() {
    let path = "scenarios/lone-replica.toml".to_string();
    let scn = file(&path);
    let (o, trace) = run_traced(&path, scn.seed, Bugs::NONE);
    assert_passed(&o);
    assert_eq!(o.updates_lost, 0);
    // Server-1 (alive, its heartbeats clogged) left range 0's chain, and
    // a spare outside range 0's placement joined it before server-0
    // crashed at 550 ms.
    let chain0 = |v: &serde_json::Value| -> Vec<String> {
        v["chains"][0]
            .as_array()
            .expect("chains")
            .iter()
            .map(|n| n.as_str().expect("node").to_string())
            .collect()
    };
    let before: Vec<_> = events(&trace, "view")
        .into_iter()
        .filter(|v| v["t_us"].as_u64() < Some(550_000))
        .collect();
    assert!(
        before.iter().any(|v| chain0(v) == ["server-0"]),
        "range 0 never down to server-0: {}",
        context(&o)
    );
    assert!(
        before
            .iter()
            .any(|v| chain0(v).iter().any(|n| n == "server-2" || n == "server-3")),
        "no spare joined range 0 before the crash: {}",
        context(&o)
    );
    assert_loses_with(&scn, &path, Bug::AckAlone);
}

#[test]
fn without_leases_a_removed_replica_serves_a_stale_read() {
    // chaos-live-change, seed 786 (BSP): server-3 is cut off from the
    // coordinator (with some workers) for 1 s and removed; when the cut
    // heals it still holds the old view and answers a reader that holds
    // it too, missing an update applied meanwhile on the new chain.
    // Leases expire before the removal, so with them it cannot answer.
    let path = "scenarios/chaos-live-change.toml";
    let mut scn = file(path);
    scn.training.consistency = pssim::scenario::Consistency::Bsp;
    assert!(scn.cluster.read_leases, "leases are the default");
    let o = run_with(&scn, 786, Bugs::NONE, path);
    assert_passed(&o);
    scn.cluster.read_leases = false;
    let unsafe_ = run_with(&scn, 786, Bugs::NONE, path);
    assert_eq!(
        unsafe_.checks["staleness_bound"],
        Status::Fail,
        "{}",
        context(&unsafe_)
    );
}
