//! The multilayer perceptron end to end (`[model] kind = "mlp"`): servers
//! start every range from the perceptron's seeded initial values (not
//! zeros) and answer the first pulls with them, while linear models still
//! start from zeros; a run is deterministic for its seed and each seed
//! starts from its own weights; it trains under every key placement; and
//! it trains for real over TCP (`pssim local`) as in simulation.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::core::codec::Payload;
use pssim::core::{Bugs, Clock, Command, Keys, Message, NodeId, Server, View};
use pssim::run::setup;
use pssim::scenario::Placement;

const BSP: &str = "scenarios/mlp-bsp.toml";
const SSP: &str = "scenarios/mlp-ssp.toml";

/// Every server of a fresh job holds its ranges at the job's initial
/// values (the perceptron's seeded weights, so not all zero; zeros for a
/// linear model) and answers a worker's first pull with exactly them.
#[test]
fn servers_start_from_the_initial_values_and_answer_the_first_pulls_with_them() {
    for (path, mlp) in [(BSP, true), ("scenarios/default.toml", false)] {
        let mut scn = file(path);
        // A server answers a read only under a lease from the coordinator,
        // which this test does not run.
        scn.cluster.read_leases = false;
        scn.training.consistency = pssim::scenario::Consistency::Asp;
        let job = setup::job(&scn);
        let seed = 7;
        let cfg = setup::protocol_config(&scn, &job, seed, Bugs::NONE);
        let expected = job.model.initial_params(seed);
        assert_eq!(cfg.initial.is_some(), mlp, "{path}");
        assert_eq!(expected.iter().any(|&v| v != 0.0), mlp, "{path}");
        let epoch = View::initial(cfg.servers, cfg.replication).epoch;
        let mut pulled = vec![f32::NAN; expected.len()];
        for s in 0..cfg.servers {
            let mut server = Server::new(s, cfg.clone());
            let ranges: Vec<u32> = server.replicas().keys().copied().collect();
            for r in ranges {
                let keys = cfg.ranges.keys(r);
                let (lo, hi) = (keys.start as usize, keys.end as usize);
                assert_eq!(server.replicas()[&r].params, expected[lo..hi], "{path}");
                let mut out = Vec::new();
                let req = Message::PullReq {
                    epoch,
                    range: r,
                    worker: 0,
                    incarnation: 0,
                    clock: Clock(0),
                    keys: Keys::All,
                    schedule: 0,
                    base: 0,
                };
                server.on_message(std::time::Duration::ZERO, NodeId::Worker(0), req, &mut out);
                let values = out
                    .iter()
                    .find_map(|c| match c {
                        Command::Send {
                            msg:
                                Message::PullResp {
                                    values: Payload::Dense(v),
                                    ..
                                },
                            ..
                        } => Some(v.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("{path}: server-{s} did not answer: {out:?}"));
                pulled[lo..hi].copy_from_slice(&values);
            }
        }
        assert_eq!(pulled, expected, "{path}: the first pulls' answers");
    }
}

/// The same seed gives the same run, bit for bit; another seed starts from
/// other weights. The observer's first sample (before any push) evaluates
/// the initial weights: not the uniform guess of an all-zero perceptron,
/// whose loss is ln 10.
#[test]
fn an_mlp_run_is_deterministic_and_its_seed_draws_the_initial_weights() {
    let scn = file(SSP);
    let a = run_with(&scn, 3, Bugs::NONE, SSP);
    let b = run_with(&scn, 3, Bugs::NONE, SSP);
    let c = run_with(&scn, 4, Bugs::NONE, SSP);
    for o in [&a, &b, &c] {
        assert_passed(o);
    }
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.params_digest, b.params_digest);
    assert_eq!(a.final_accuracy.to_bits(), b.final_accuracy.to_bits());
    assert_ne!(a.params_digest, c.params_digest);
    let first = |o: &pssim::outcome::Outcome| {
        let s = &o.accuracy[0];
        assert_eq!(s.t_s, 0.0, "{}", context(o));
        s.loss
    };
    let uniform = 10f64.ln();
    assert!((first(&a) - uniform).abs() > 0.05, "{}", first(&a));
    assert!((first(&c) - uniform).abs() > 0.05, "{}", first(&c));
    assert_ne!(first(&a), first(&c));
}

/// Hash placement permutes the perceptron's keys, initial values
/// included: it trains as well as range placement (balanced is range for
/// a dense model: the same trace).
#[test]
fn an_mlp_trains_under_every_placement() {
    let mut hashes = Vec::new();
    for p in [Placement::Range, Placement::Balanced, Placement::Hash] {
        let mut scn = file(BSP);
        scn.cluster.placement = p;
        let o = run_with(&scn, 2, Bugs::NONE, BSP);
        assert_passed(&o);
        assert!(o.final_accuracy >= 0.95, "{p:?}: {}", context(&o));
        hashes.push(o.trace_hash);
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
}

/// Real mode: `pssim local` runs the perceptron as `pssim node` processes,
/// each server computing its ranges' initial values from the cluster's
/// seed, and lands in the band of its simulated runs.
#[test]
fn an_mlp_trains_for_real_as_in_simulation() {
    let o = local_in_simulated_band(BSP, &["--timeout", "60s", "--seed", "2"]);
    assert_eq!(o["passed"], true, "{o}");
}
