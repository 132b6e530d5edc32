//! Failover for real: a replicated cluster (replication 2) runs on loopback
//! as separate `pssim node` processes under `pssim local`; the scenario's
//! crash kills server-1's process (SIGKILL) mid-training. The backup of
//! each of its ranges must take over, training must finish, and the
//! checkers, run over the merged events of every process, must find no
//! acknowledged update lost.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::local_in_simulated_band;
use pssim::core::{Durable, NodeId};
use pssim::net::store;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/real/replicated-kill.toml"
);

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn killing_a_server_process_fails_over_without_losing_acknowledged_updates() {
    let dir = std::env::temp_dir().join(format!("pssim-real-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.jsonl");
    let wall = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pssim"))
        .args(["local", SCENARIO, "--json", "--timeout", "15s", "--trace"])
        .arg(&trace)
        .arg("--dir")
        .arg(dir.join("cluster"))
        .output()
        .unwrap();
    let wall = wall.elapsed();
    eprintln!("pssim local took {wall:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pssim local failed ({:?}); node logs in {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wall < Duration::from_secs(20), "took {wall:?}");
    let o: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(o["stopped"], "finished");
    assert_eq!(o["checks"]["no_lost_updates"], "pass", "{o}");
    assert_eq!(o["checks"]["replicas_agree"], "pass", "{o}");
    assert_eq!(o["checks"]["log_matching"], "pass", "{o}");
    assert_eq!(o["checks"]["staleness_bound"], "pass", "{o}");
    assert_eq!(o["updates_lost"], 0);
    // Every worker finished every clock: 4 workers x 120 clocks x 3 ranges.
    assert_eq!(o["pushes_acked"], 4 * 120 * 3);
    assert_eq!(o["min_clock"], 120);

    let events = lines(&trace);
    let t_of = |e: &Value| e["t_us"].as_u64().unwrap();
    let crash = events
        .iter()
        .find(|e| e["ev"] == "crash" && e["node"] == "server-1")
        .expect("server-1 was killed");
    let t_crash = t_of(crash);
    // The kill came mid-training: pushes were acknowledged before and after.
    let acked: Vec<u64> = events
        .iter()
        .filter(|e| e["ev"] == "push_acked")
        .map(t_of)
        .collect();
    assert!(acked.iter().any(|&t| t < t_crash) && acked.iter().any(|&t| t > t_crash));
    // A later view removes server-1 from every chain; ranges 0 and 1 (which
    // it held) keep their other replica.
    let failover = events
        .iter()
        .find(|e| e["ev"] == "view" && t_of(e) > t_crash)
        .expect("a view after the crash");
    let chains = failover["chains"].as_array().unwrap();
    for (r, chain) in chains.iter().enumerate() {
        let chain: Vec<&str> = chain
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(!chain.contains(&"server-1"), "range {r}: {chain:?}");
        assert!(!chain.is_empty(), "range {r} lost every replica");
    }
    // The backups serve: ranges 0 and 1 are acknowledged after the
    // failover view, and applied by their new heads.
    let t_view = t_of(failover);
    for (range, backup) in [(0, "server-0"), (1, "server-2")] {
        assert!(events
            .iter()
            .any(|e| e["ev"] == "push_acked" && e["range"] == range && t_of(e) > t_view));
        assert!(events.iter().any(|e| e["ev"] == "push_applied"
            && e["range"] == range
            && e["server"] == backup
            && t_of(e) > t_view));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The library's replicated crash scenario, for real as processes (the
/// crashed server restarts and copies its ranges back), trains into the
/// band of its simulated runs.
#[test]
fn a_replicated_scenario_trains_for_real_as_in_simulation() {
    let o = local_in_simulated_band(
        "scenarios/replicated-server-crash.toml",
        &["--timeout", "30s"],
    );
    assert_eq!(o["updates_lost"], 0, "{o}");
    assert_eq!(o["checks"]["replicas_agree"], "pass", "{o}");
}

/// A coordinator crash with separate processes: the coordinator's process
/// is killed (SIGKILL) and a new one started 1–1.2 s later, which recovers
/// membership and view from the first one's data directory. Both library
/// scenarios with a coordinator crash (one with a worker restarting while
/// the coordinator is down, one with a server crashing then) pass every
/// check, liveness included (on the wall clock), with every push of every
/// worker acknowledged and none lost. About 3.5 s wall each.
#[test]
fn killing_the_coordinator_process_recovers_its_state_from_disk() {
    for (name, clocks) in [
        ("coordinator-crash", 60),
        ("replicated-coordinator-crash", 80),
    ] {
        let dir = std::env::temp_dir().join(format!("pssim-real-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("trace.jsonl");
        let cluster = dir.join("cluster");
        let wall = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_pssim"))
            .arg("local")
            .arg(format!(
                "{}/scenarios/{name}.toml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args(["--json", "--timeout", "30s", "--trace"])
            .arg(&trace)
            .arg("--dir")
            .arg(&cluster)
            .output()
            .unwrap();
        let wall = wall.elapsed();
        eprintln!("{name}: pssim local took {wall:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: pssim local failed ({:?}); node logs in {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            cluster.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let o: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(o["passed"], true, "{name}: {o}");
        assert_eq!(o["stopped"], "finished", "{name}: {o}");
        for check in [
            "liveness",
            "no_lost_updates",
            "replicas_agree",
            "log_matching",
            "staleness_bound",
            "min_accuracy",
        ] {
            assert_eq!(o["checks"][check], "pass", "{name}: {check}: {o}");
        }
        assert_eq!(o["updates_lost"], 0, "{name}: {o}");
        assert_eq!(o["min_clock"], clocks, "{name}: {o}");
        let skipped = o["not_simulated"].to_string();
        assert!(!skipped.contains("coordinator"), "{name}: {skipped}");

        let events = lines(&trace);
        let t_of = |e: &Value| e["t_us"].as_u64().unwrap();
        let at = |kind: &str| {
            events
                .iter()
                .find(|e| e["ev"] == kind && e["node"] == "coordinator")
                .map(t_of)
                .unwrap_or_else(|| panic!("{name}: no {kind} of the coordinator"))
        };
        let (crash, restart) = (at("crash"), at("restart"));
        assert!(
            crash < restart,
            "{name}: crash {crash} µs, restart {restart} µs"
        );
        // Training went on before, during and after the outage.
        let acked: Vec<u64> = events
            .iter()
            .filter(|e| e["ev"] == "push_acked")
            .map(t_of)
            .collect();
        assert!(acked.iter().any(|&t| t < crash), "{name}");
        assert!(acked.iter().any(|&t| t > restart), "{name}");
        // Every push of every clock of the 8 workers is acknowledged on
        // each of the 4 ranges (a restarted worker's new life may be
        // admitted past the clocks its first life reached: those it skips).
        for w in 0..8u64 {
            let mut done = std::collections::BTreeSet::new();
            for e in events
                .iter()
                .filter(|e| e["ev"] == "push_acked" && e["worker"] == w)
            {
                done.insert((e["range"].as_u64().unwrap(), e["clock"].as_u64().unwrap()));
            }
            let restarted = events
                .iter()
                .any(|e| e["ev"] == "crash" && e["node"] == format!("worker-{w}"));
            let from = if restarted { clocks - 1 } else { 0 };
            for c in from..clocks {
                for r in 0..4 {
                    assert!(
                        done.contains(&(r, c)),
                        "{name}: worker-{w} clock {c} range {r}"
                    );
                }
            }
        }
        // The second life wrote to the same directory the first one did:
        // the state file is its, and holds the last view published.
        let file = cluster.join("data/coordinator").join(store::FILE_NAME);
        let bytes = std::fs::read(&file).unwrap();
        let (life, state) = store::decode(&file, &bytes, NodeId::Coordinator)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(life, 1, "{name}");
        let Durable::Coordinator(state) = state else {
            panic!("{name}: not a coordinator's state")
        };
        let last_epoch = events
            .iter()
            .filter(|e| e["ev"] == "view")
            .map(|e| e["epoch"].as_u64().unwrap())
            .max()
            .unwrap();
        assert_eq!(state.view.epoch.0, last_epoch, "{name}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
