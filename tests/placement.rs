//! Key placement (`[cluster] placement`) and skewed data (`[model] skew`):
//! every key sits in exactly one range under every placement; balanced
//! ranges get equal shares of the expected accesses; hashing spreads a
//! skewed access pattern evenly; the synthetic generator's features follow
//! Zipf's closed form; dense models behave under every placement (balanced
//! is range for them, to the trace hash); training converges under each.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::core::{Bugs, RangeMap};
use pssim::ml::data::{load, DataKind, DataSpec, Row};
use pssim::ml::zipf::harmonic;
use pssim::run::setup;
use pssim::scenario::{Placement, Scenario};

const PLACEMENTS: [Placement; 3] = [Placement::Range, Placement::Hash, Placement::Balanced];

fn placed(path: &str, p: Placement) -> Scenario {
    let mut scn = file(path);
    scn.cluster.placement = p;
    scn
}

/// Share of `weights` (indexed by key) in each range.
fn shares(ranges: &RangeMap, weights: &[f64]) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    (0..ranges.ranges())
        .map(|r| {
            let k = ranges.keys(r);
            weights[k.start as usize..k.end as usize]
                .iter()
                .sum::<f64>()
                / total
        })
        .collect()
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

#[test]
fn every_key_is_in_exactly_one_range_under_every_placement() {
    for path in ["scenarios/hot-keys-range.toml", "scenarios/default.toml"] {
        for p in PLACEMENTS {
            let scn = placed(path, p);
            let job = setup::job(&scn);
            let ranges = setup::ranges(&scn, &job);
            let dim = job.model.dim();
            assert_eq!(ranges.dim(), dim);
            assert_eq!(ranges.ranges(), scn.cluster.servers);
            // The layout is a bijection of the key space...
            let mut hit = vec![0u32; dim as usize];
            for i in 0..dim {
                hit[job.model.layout().key(i) as usize] += 1;
            }
            assert!(hit.iter().all(|&n| n == 1), "{path} {p:?}: not a bijection");
            assert_eq!(job.model.layout().is_identity(), p != Placement::Hash);
            // ...and the ranges partition it into non-empty intervals.
            let mut next = 0;
            for r in 0..ranges.ranges() {
                let k = ranges.keys(r);
                assert_eq!(k.start, next, "{path} {p:?}: range {r} does not follow");
                assert!(!k.is_empty(), "{path} {p:?}: range {r} is empty");
                for key in [k.start, k.end - 1] {
                    assert_eq!(ranges.range_of(key), r);
                }
                next = k.end;
            }
            assert_eq!(next, dim);
        }
    }
}

#[test]
fn balanced_ranges_get_equal_shares_of_the_expected_accesses() {
    let scn = placed("scenarios/hot-keys-range.toml", Placement::Balanced);
    let job = setup::job(&scn);
    let w = job
        .model
        .expected_accesses(&job.data.train, scn.training.batch_size)
        .expect("sparse data");
    let balanced = setup::ranges(&scn, &job);
    let s = shares(&balanced, &w);
    for (r, x) in s.iter().enumerate() {
        assert!((x - 0.25).abs() < 0.005, "balanced range {r}: share {x:.4}");
    }
    // The head range is cut narrow: the popular features are few.
    assert!(balanced.len(0) * 10 < balanced.len(3), "{balanced:?}");
    // Range placement puts most of them on server-0.
    let range = setup::ranges(
        &placed("scenarios/hot-keys-range.toml", Placement::Range),
        &job,
    );
    let s = shares(&range, &w);
    assert!(s[0] > 0.6, "range placement: shares {s:?}");
}

/// Keys touched by consecutive minibatches of the training rows, counted per
/// range (what workers pull and push).
fn batch_shares(scn: &Scenario, batches: usize) -> Vec<f64> {
    let job = setup::job(scn);
    let ranges = setup::ranges(scn, &job);
    let b = scn.training.batch_size as usize;
    let mut counts = vec![0f64; ranges.ranges() as usize];
    let mut keys = Vec::new();
    let rows: Vec<u32> = (0..job.data.train.rows() as u32).collect();
    for batch in rows.chunks(b).take(batches) {
        job.model.batch_keys(&job.data.train, batch, &mut keys);
        for &k in &keys {
            counts[ranges.range_of(k) as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

#[test]
fn hash_spreads_a_skewed_access_pattern_evenly() {
    let path = "scenarios/hot-keys-range.toml";
    let scn = placed(path, Placement::Hash);
    let job = setup::job(&scn);
    let w = job
        .model
        .expected_accesses(&job.data.train, scn.training.batch_size)
        .expect("sparse data");
    let s = shares(&setup::ranges(&scn, &job), &w);
    for (r, x) in s.iter().enumerate() {
        assert!(
            (x - 0.25).abs() < 0.02,
            "hash range {r}: expected share {x:.4}"
        );
    }
    // The minibatches themselves: hash and balanced even, range not.
    let hash = batch_shares(&scn, 200);
    let balanced = batch_shares(&placed(path, Placement::Balanced), 200);
    let range = batch_shares(&placed(path, Placement::Range), 200);
    assert!(max(&hash) < 0.27, "hash: {hash:?}");
    assert!(max(&balanced) < 0.27, "balanced: {balanced:?}");
    assert!(max(&range) > 0.6, "range: {range:?}");
}

/// With one non-zero per example, each example's feature is one Zipf draw:
/// the data's feature frequencies follow `(j+1)^-s / H(n, s)` (chi-square,
/// well below its 99.9% quantile).
#[test]
fn synthetic_features_follow_the_zipf_closed_form() {
    let (n, s) = (100u32, 1.1);
    let d = load(DataSpec {
        kind: DataKind::Synthetic {
            features: n,
            examples: 40_000,
            density_ppm: 10_000,
            skew_ppm: 1_100_000,
        },
        seed: 11,
    });
    let mut counts = vec![0f64; n as usize];
    let mut total = 0f64;
    for m in [&d.train, &d.test] {
        for i in 0..m.rows() {
            let Row::Sparse(idx, _) = m.row(i) else {
                panic!("synthetic data is sparse")
            };
            assert_eq!(idx.len(), 1);
            counts[idx[0] as usize] += 1.0;
            total += 1.0;
        }
    }
    let h = harmonic(n, s);
    let chi2: f64 = counts
        .iter()
        .enumerate()
        .map(|(j, &c)| {
            let e = total * (j as f64 + 1.0).powf(-s) / h;
            (c - e).powi(2) / e
        })
        .sum();
    // 99.9% quantile of chi-square with 99 degrees of freedom: 148.2.
    assert!(chi2 < 148.2, "chi-square {chi2:.1}");
}

/// Dense models touch every key in every minibatch: balanced is range (the
/// same ranges, the same trace hash), and hash still trains the model.
#[test]
fn dense_models_work_under_every_placement() {
    let path = "scenarios/default.toml";
    let range = run_with(&placed(path, Placement::Range), 1, Bugs::NONE, path);
    let balanced = run_with(&placed(path, Placement::Balanced), 1, Bugs::NONE, path);
    let hash = run_with(&placed(path, Placement::Hash), 1, Bugs::NONE, path);
    for o in [&range, &balanced, &hash] {
        assert_passed(o);
        assert!(o.final_accuracy >= 0.94, "{}", context(o));
    }
    assert_eq!(range.trace_hash, balanced.trace_hash);
    assert_ne!(range.trace_hash, hash.trace_hash);
    // The default file (no placement key) is range placement.
    let plain = run_file(path, 1, Bugs::NONE);
    assert_eq!(plain.trace_hash, range.trace_hash);
}

/// The large sparse model learns under every placement, with its own
/// data (Zipf(0.667), about version 1's generator) and with Zipf(1.1)
/// features (at a step small enough for hot keys
/// that 16 workers update every clock).
#[test]
fn sparse_training_converges_under_every_placement() {
    let path = "scenarios/sparse-large.toml";
    for p in PLACEMENTS {
        let o = run_with(&placed(path, p), 1, Bugs::NONE, path);
        assert_passed(&o);
        assert!(o.final_accuracy >= 0.75, "{p:?}: {}", context(&o));
        let mut skewed = placed(path, p);
        skewed.model.skew = 1.1;
        skewed.training.learning_rate = 0.02;
        let o = run_with(&skewed, 1, Bugs::NONE, path);
        assert_passed(&o);
        assert!(o.final_accuracy >= 0.78, "{p:?} skew 1.1: {}", context(&o));
    }
}
