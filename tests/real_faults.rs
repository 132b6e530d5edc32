//! Network faults for real: `pssim local` runs a scenario's cluster as
//! separate `pssim node` processes on loopback, and every node's
//! transport applies the scenario's partitions, clogs, loss, slow links,
//! stragglers and `[network]` latency and bandwidth on its timeline
//! (src/net/faults.rs), with `[chaos]` drawn from the seed. The runs pass
//! their checks with nothing lost, land in the band of their simulated
//! seeds, and list none of these faults as not simulated.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::local_in_simulated_band;
use serde_json::Value;

/// Nothing about the network, faults or chaos is left out.
fn nothing_network_ignored(o: &Value) {
    let ignored = o["not_simulated"].as_array().cloned().unwrap_or_default();
    for s in &ignored {
        let s = s.as_str().unwrap();
        assert!(
            !s.contains("[network]") && !s.contains("[[fault]]") && !s.contains("[chaos]"),
            "still not simulated: {s}"
        );
    }
}

#[test]
fn every_network_fault_kind_is_injected_over_tcp() {
    let o = local_in_simulated_band(
        "tests/real/every-network-fault.toml",
        &["--timeout", "60s", "--seed", "1"],
    );
    assert_eq!(o["passed"], true, "{o}");
    assert_eq!(o["updates_lost"], 0);
    nothing_network_ignored(&o);
    let kinds: Vec<&str> = o["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    for k in [
        "partition",
        "clog",
        "loss",
        "slow_link",
        "straggler",
        "crash",
    ] {
        assert!(kinds.contains(&k), "{k} not injected: {kinds:?}");
    }
    // The partition and the loss dropped messages.
    assert!(o["messages_dropped"].as_u64().unwrap() > 0, "{o}");
}

#[test]
fn chaos_is_drawn_and_injected_over_tcp() {
    let o = local_in_simulated_band(
        "scenarios/chaos-replicated.toml",
        &["--timeout", "60s", "--seed", "1"],
    );
    assert_eq!(o["passed"], true, "{o}");
    assert_eq!(o["updates_lost"], 0);
    nothing_network_ignored(&o);
    let drawn = o["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["origin"] == "chaos")
        .count();
    assert!(drawn > 0, "{o}");
}
