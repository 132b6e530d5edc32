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
