//! Chain replication and failover: the replication scenarios of the
//! library, each over several seeds, and the replication bugs each caught
//! by a checker within 100 seeds of a chaos scenario.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};
use serde_json::Value;

const SEEDS: [u64; 4] = [1, 2, 3, 4];
/// The scenarios' heartbeat timeout.
const TIMEOUT_S: f64 = 0.3;

fn path(name: &str) -> String {
    format!("scenarios/{name}.toml")
}

fn t_s(e: &Value) -> f64 {
    e["t_us"].as_u64().expect("t_us") as f64 / 1e6
}

fn chain(view: &Value, range: usize) -> Vec<String> {
    view["chains"][range]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Runs a file over `SEEDS`, asserting every check passes, nothing is
/// lost or duplicated, and replicas agree (judged, not skipped).
fn replicated_runs(name: &str) -> Vec<(pssim::outcome::Outcome, Vec<Value>)> {
    SEEDS
        .iter()
        .map(|&seed| {
            let (o, trace) = run_traced(&path(name), seed, Bugs::NONE);
            assert_passed(&o);
            assert_eq!(
                (o.updates_lost, o.updates_duplicated),
                (0, 0),
                "{}",
                context(&o)
            );
            assert_eq!(o.checks["replicas_agree"], Status::Pass, "{}", context(&o));
            assert_eq!(o.checks["no_lost_updates"], Status::Pass, "{}", context(&o));
            (o, trace)
        })
        .collect()
}

#[test]
fn a_crashed_server_fails_over_within_two_heartbeat_timeouts_and_a_spare_copies_its_ranges() {
    for (o, trace) in replicated_runs("replicated-server-crash") {
        assert_eq!(o.failovers.len(), 1, "{}", context(&o));
        let f = &o.failovers[0];
        assert_eq!(f.ranges, vec![0, 1]);
        let took = f.recovery_s.expect("recovered");
        assert!(
            took < 2.0 * TIMEOUT_S,
            "failover took {took:.3}s: {}",
            context(&o)
        );
        // Removed from both chains; each is back to two replicas, a spare
        // having copied it, before server-1 restarts (at 1.6 s).
        let views = events(&trace, "view");
        assert!(views
            .iter()
            .any(|v| !chain(v, 0).contains(&"server-1".into())));
        let restored = views.iter().find(|v| {
            t_s(v) < 1.6
                && chain(v, 0).len() == 2
                && chain(v, 1).len() == 2
                && !chain(v, 0).contains(&"server-1".into())
                && !chain(v, 1).contains(&"server-1".into())
        });
        assert!(
            restored.is_some(),
            "no spare filled the chains: {}",
            context(&o)
        );
        for r in [0, 1] {
            assert!(
                events(&trace, "catch_up")
                    .iter()
                    .any(|e| e["range"] == r && e["server"] != "server-1" && t_s(e) < 1.6),
                "no spare copied range {r}: {}",
                context(&o)
            );
        }
    }
}

#[test]
fn replication_three_survives_two_simultaneous_crashes() {
    for (o, _) in replicated_runs("replicated-two-crashes") {
        assert_eq!(o.failovers.len(), 2, "{}", context(&o));
        for f in &o.failovers {
            assert!(f.recovery_s.unwrap() < 2.0 * TIMEOUT_S, "{}", context(&o));
        }
    }
}

#[test]
fn a_copy_whose_source_crashes_starts_over_from_the_new_tail() {
    for (o, trace) in replicated_runs("replicated-crash-during-catch-up") {
        let source_crash = events(&trace, "crash")
            .into_iter()
            .find(|e| e["node"] == "server-0")
            .map(t_s)
            .unwrap();
        let copy = events(&trace, "catch_up")
            .into_iter()
            .find(|e| e["server"] == "server-1" && e["range"] == 1)
            .unwrap_or_else(|| panic!("server-1 never copied range 1: {}", context(&o)));
        assert_eq!(copy["from"], "server-2", "{}", context(&o));
        assert!(
            t_s(copy) > source_crash,
            "the copy from server-0 did not finish"
        );
    }
}

#[test]
fn a_partitioned_head_takes_writes_it_can_never_get_acknowledged() {
    let (cut, heal) = (0.5, 2.0);
    let mut minority_writes = 0;
    for seed in SEEDS {
        let (o, trace) = run_traced_with(&path("replicated-split-brain"), seed, Bugs::NONE, true);
        assert_passed(&o);
        assert_eq!(
            (o.updates_lost, o.updates_duplicated),
            (0, 0),
            "{}",
            context(&o)
        );
        assert_eq!(o.checks["replicas_agree"], Status::Pass, "{}", context(&o));
        let during = |e: &Value| t_s(e) > cut + 0.01 && t_s(e) < heal;
        // The old head applies what reaches it on its side...
        minority_writes += events(&trace, "push_applied")
            .into_iter()
            .filter(|e| during(e) && e["server"] == "server-1")
            .count();
        // ... but acknowledges nothing: its successor is on the other side.
        let acks_from_old_head = events(&trace, "deliver")
            .into_iter()
            .filter(|e| during(e) && e["from"] == "server-1" && e["msg"] == "push_ack")
            .count();
        assert_eq!(acks_from_old_head, 0, "{}", context(&o));
        // It dropped its copies when it learned the new view.
        assert!(events(&trace, "replica_dropped")
            .iter()
            .any(|e| e["server"] == "server-1"));
    }
    assert!(
        minority_writes > 0,
        "no seed put a write on the minority side"
    );
}

#[test]
fn without_the_coordinator_nothing_fails_over_and_it_recovers_when_back() {
    for (o, trace) in replicated_runs("replicated-coordinator-crash") {
        let down = (0.4, 1.6);
        let views: Vec<f64> = events(&trace, "view").into_iter().map(t_s).collect();
        assert!(
            views.iter().all(|&t| t < down.0 || t > down.1),
            "a view was published while the coordinator was down: {views:?}"
        );
        let f = &o.failovers[0];
        assert!(0.6 + f.recovery_s.unwrap() > down.1, "{}", context(&o));
    }
}

#[test]
fn checkpoints_lose_fewer_updates_than_nothing_and_replication_loses_none() {
    for seed in SEEDS {
        let none = run_file(&path("server-crash-unreplicated"), seed, Bugs::NONE);
        let (ckpt, trace) = run_traced(&path("checkpoint-recovery"), seed, Bugs::NONE);
        let repl = run_file(&path("replicated-server-crash"), seed, Bugs::NONE);
        assert_passed(&ckpt);
        assert!(!events(&trace, "restore").is_empty(), "{}", context(&ckpt));
        assert!(
            0 < ckpt.updates_lost && ckpt.updates_lost < none.updates_lost,
            "checkpoint lost {}, none lost {}",
            ckpt.updates_lost,
            none.updates_lost
        );
        assert_eq!(repl.updates_lost, 0);
    }
}

#[test]
fn a_false_suspicion_loses_nothing() {
    for seed in [1, 2, 3, 4] {
        let o = run_file(&path("false-suspicion"), seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(o.updates_lost, 0, "{}", context(&o));
    }
}

#[test]
fn replicated_chaos_keeps_every_check_green() {
    for seed in 0..6 {
        let o = run_file(&path("chaos-replicated"), seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(o.checks["replicas_agree"], Status::Pass, "{}", context(&o));
    }
}

/// Runs chaos-replicated with `bug` from seed 0 until a seed fails the
/// check the bug is documented to be caught by; at most 100 seeds.
fn caught_within_100_seeds(bug: Bug) -> u64 {
    let scn = file(&path("chaos-replicated"));
    for seed in 0..100 {
        let o = run_with(
            &scn,
            seed,
            Bugs::NONE.with(bug),
            "scenarios/chaos-replicated.toml",
        );
        let by = bug.caught_by();
        let caught = o.checks.get(by) == Some(&Status::Fail)
            || (by == "replicas_agree" && o.checks["no_lost_updates"] == Status::Fail);
        if caught {
            return seed;
        }
    }
    panic!(
        "{bug} was not caught by {} within 100 seeds",
        bug.caught_by()
    );
}

#[test]
fn acknowledging_before_the_backups_applied_is_caught() {
    caught_within_100_seeds(Bug::AckBeforeReplicated);
}

#[test]
fn applying_retried_pushes_twice_is_caught_under_replication() {
    caught_within_100_seeds(Bug::NoDedup);
}

#[test]
fn accepting_messages_from_an_old_epoch_is_caught() {
    caught_within_100_seeds(Bug::AcceptOldEpoch);
}

#[test]
fn promoting_a_server_that_has_not_caught_up_is_caught() {
    caught_within_100_seeds(Bug::PromoteUncaught);
}
