//! The scenario library: every file in `scenarios/` shows one thing, and
//! these tests run each over several seeds asserting the outcome
//! docs/scenarios.md promises for it.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};
use serde_json::Value;

const SEEDS: [u64; 4] = [1, 2, 3, 4];

fn path(name: &str) -> String {
    format!("scenarios/{name}.toml")
}

/// Runs `name` over `SEEDS`, asserting every run passes.
fn passes(name: &str) -> Vec<pssim::outcome::Outcome> {
    SEEDS
        .iter()
        .map(|&seed| {
            let o = run_file(&path(name), seed, Bugs::NONE);
            assert_passed(&o);
            assert_eq!(o.updates_duplicated, 0, "{}", context(&o));
            o
        })
        .collect()
}

fn worker_of(e: &Value) -> u64 {
    e["worker"].as_u64().expect("a worker index")
}

fn t_us(e: &Value) -> u64 {
    e["t_us"].as_u64().expect("t_us")
}

#[test]
fn every_library_file_is_valid_and_documented() {
    let docs = std::fs::read_to_string("docs/scenarios.md").unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir("scenarios").unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let scn = pssim::scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                docs.contains(&format!("`{file}`")),
                "docs/scenarios.md does not describe {file}"
            );
            assert!(!scn.description.is_empty(), "{file} has no description");
            n += 1;
        }
    }
    assert!(n >= 12, "the library holds {n} scenarios");
}

#[test]
fn default_trains_digits_to_the_reference_band() {
    for o in passes("default") {
        assert!(o.final_accuracy >= 0.94, "{}", context(&o));
        assert_eq!(o.stopped, "finished");
    }
}

#[test]
fn partition_heal_removes_the_cut_off_workers_and_readmits_them() {
    for seed in SEEDS {
        let (o, trace) = run_traced(&path("partition-heal"), seed, Bugs::NONE);
        assert_passed(&o);
        let removed: Vec<u64> = events(&trace, "worker_removed")
            .into_iter()
            .map(worker_of)
            .collect();
        let admitted = events(&trace, "worker_admitted");
        let heal = t_us(events(&trace, "fault_end")[0]);
        for w in 0..3 {
            assert!(
                removed.contains(&w),
                "worker-{w} was not removed: {}",
                context(&o)
            );
            assert!(
                admitted
                    .iter()
                    .any(|e| worker_of(e) == w && t_us(e) >= heal),
                "worker-{w} was not re-admitted after the heal: {}",
                context(&o)
            );
        }
        assert!(removed.iter().all(|w| *w < 3), "only cut-off workers go");
    }
}

#[test]
fn a_one_way_clog_holds_messages_then_delivers_them() {
    for seed in SEEDS {
        let (o, trace) = run_traced(&path("clog-one-way"), seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(events(&trace, "fault_start")[0]["fault"], "clog");
        assert_eq!(events(&trace, "fault_end").len(), 1);
        // Nothing is dropped by a clog: held, then delivered.
        assert_eq!(o.updates_lost, 0);
        assert!(
            o.sim_time_s > 2.0,
            "worker-3 waited out the clog: {}",
            context(&o)
        );
    }
}

#[test]
fn packet_loss_is_survived_by_retries_applied_exactly_once() {
    for o in passes("packet-loss") {
        assert!(o.messages_dropped > 50, "{}", context(&o));
        assert_eq!(o.updates_lost, 0);
    }
    // The same loss without deduplication applies retried pushes twice...
    let bad = run_file(&path("packet-loss"), 1, Bugs::NONE.with(Bug::NoDedup));
    assert_eq!(
        bad.checks["no_lost_updates"],
        Status::Fail,
        "{}",
        context(&bad)
    );
    assert!(bad.updates_duplicated > 0);
    // ... and without retries it hangs, which liveness reports.
    let hang = run_file(&path("packet-loss"), 1, Bugs::NONE.with(Bug::NoRetry));
    assert_eq!(hang.checks["liveness"], Status::Fail, "{}", context(&hang));
    assert_eq!(hang.stopped, "liveness");
}

#[test]
fn a_slow_link_slows_the_job_down() {
    for o in passes("slow-link") {
        let base = run_file(&path("default"), o.seed, Bugs::NONE);
        assert!(
            o.sim_time_s > base.sim_time_s + 0.3,
            "slow link {:.3}s vs none {:.3}s",
            o.sim_time_s,
            base.sim_time_s
        );
    }
}

#[test]
fn with_a_straggler_asp_beats_ssp_beats_bsp_to_the_target() {
    let mean = |name: &str| {
        let v: Vec<f64> = passes(name)
            .iter()
            .map(|o| o.time_to_target_s.expect("reached the target"))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (bsp, ssp, asp) = (
        mean("bsp-straggler"),
        mean("ssp-straggler"),
        mean("asp-straggler"),
    );
    assert!(
        bsp > ssp && ssp > asp,
        "time to target: bsp {bsp:.3}s ssp {ssp:.3}s asp {asp:.3}s"
    );
}

/// The multilayer perceptron: BSP trains it past 0.95 on every seed;
/// with a 4x straggler SSP and ASP reach 0.95, ASP sooner. (BSP with the
/// straggler is slower still on the median, docs/scenarios.md, but the
/// three overlap seed by seed.)
#[test]
fn the_perceptron_trains_under_bsp_and_reaches_the_target_under_ssp_and_asp() {
    for o in passes("mlp-bsp") {
        assert!(o.final_accuracy >= 0.95, "{}", context(&o));
        assert_eq!(o.stopped, "finished");
    }
    let mean = |name: &str| {
        let v: Vec<f64> = passes(name)
            .iter()
            .map(|o| {
                assert_eq!(o.stopped, "target_accuracy", "{}", context(o));
                o.time_to_target_s.expect("reached the target")
            })
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (ssp, asp) = (mean("mlp-ssp"), mean("mlp-asp"));
    assert!(ssp > asp, "time to 0.95: ssp {ssp:.3}s asp {asp:.3}s");
}

#[test]
fn a_crashed_worker_restarts_empty_and_rejoins_at_the_current_clock() {
    for seed in SEEDS {
        let (o, trace) = run_traced(&path("worker-crash-restart"), seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(events(&trace, "crash")[0]["node"], "worker-4");
        assert_eq!(events(&trace, "restart")[0]["node"], "worker-4");
        let admitted = events(&trace, "worker_admitted");
        let again = admitted
            .iter()
            .find(|e| worker_of(e) == 4 && e["incarnation"] == 1)
            .unwrap_or_else(|| panic!("worker-4 not re-admitted: {}", context(&o)));
        assert!(
            again["clock"].as_u64().unwrap() > 0,
            "it rejoins at the current clock, not 0"
        );
        // Its second life pushes with sequence numbers of incarnation 1.
        assert!(events(&trace, "push_acked")
            .iter()
            .any(|e| worker_of(e) == 4 && e["seq"].as_str().unwrap().starts_with("1.")));
    }
}

#[test]
fn bsp_stops_waiting_for_a_dead_worker() {
    for o in passes("worker-crash-bsp") {
        assert_eq!(o.stopped, "finished", "{}", context(&o));
    }
    let hang = run_file(
        &path("worker-crash-bsp"),
        1,
        Bugs::NONE.with(Bug::NoRemoval),
    );
    assert_eq!(hang.checks["liveness"], Status::Fail, "{}", context(&hang));
}

#[test]
fn an_unreplicated_server_crash_loses_acknowledged_updates_and_counts_them() {
    for o in passes("server-crash-unreplicated") {
        assert!(o.updates_lost > 0, "{}", context(&o));
        assert_eq!(o.checks["no_lost_updates"], Status::Skipped);
    }
    let mut scn = file(&path("server-crash-unreplicated"));
    scn.check.no_lost_updates = true;
    scn.check.staleness_bound = true;
    let o = run_with(&scn, 1, Bugs::NONE, "server-crash-unreplicated");
    assert_eq!(o.checks["no_lost_updates"], Status::Fail, "{}", context(&o));
    assert!(o.violations["no_lost_updates"][0].contains("missing from its final state"));
    // A lost acknowledged push still counts for the bound: reads after the
    // crash that needed it are stale.
    assert_eq!(o.checks["staleness_bound"], Status::Fail, "{}", context(&o));
    assert!(o.violations["staleness_bound"][0].contains("without worker-"));
}

#[test]
fn a_restarted_coordinator_recovers_and_admits_the_restarted_worker() {
    for seed in SEEDS {
        let (o, trace) = run_traced(&path("coordinator-crash"), seed, Bugs::NONE);
        assert_passed(&o);
        let back = t_us(
            events(&trace, "restart")
                .into_iter()
                .find(|e| e["node"] == "coordinator")
                .expect("the coordinator restarts"),
        );
        let admitted = events(&trace, "worker_admitted");
        let w6 = admitted
            .iter()
            .find(|e| worker_of(e) == 6 && e["incarnation"] != 0)
            .unwrap_or_else(|| panic!("worker-6 not admitted: {}", context(&o)));
        assert!(
            t_us(w6) >= back,
            "admitted only once the coordinator is back"
        );
    }
}

#[test]
fn chaos_at_every_intensity_keeps_every_check_green() {
    for name in ["chaos-light", "chaos-medium", "chaos-heavy"] {
        let runs = passes(name);
        assert!(
            runs.iter().any(|o| !o.faults.is_empty()),
            "{name} drew no fault"
        );
        assert!(runs.iter().all(|o| o.swarm.is_some()));
    }
}

#[test]
fn chaos_counts_lost_updates_only_where_an_unreplicated_server_crashed() {
    let mut lost = 0;
    let mut strict = file(&path("chaos-beyond"));
    strict.check.staleness_bound = true;
    for seed in 0..12 {
        let o = run_file(&path("chaos-beyond"), seed, Bugs::NONE);
        assert_passed(&o);
        // With the bound judged, only a run that lost updates breaks it.
        let s = run_with(&strict, seed, Bugs::NONE, "chaos-beyond");
        if s.checks["staleness_bound"] == Status::Fail {
            assert!(s.updates_lost > 0, "stale without a loss: {}", context(&s));
        }
        let server_crashed = o
            .faults
            .iter()
            .any(|f| f.kind == "crash" && f.nodes[0].starts_with("server-"));
        if o.updates_lost > 0 {
            assert!(
                server_crashed,
                "lost updates without a server crash: {}",
                context(&o)
            );
        }
        lost += o.updates_lost;
    }
    assert!(lost > 0, "beyond the fault model some seed loses updates");
}

#[test]
fn the_large_sparse_model_learns() {
    let o = run_file(&path("sparse-large"), 1, Bugs::NONE);
    assert_passed(&o);
    assert!(o.final_accuracy >= 0.75, "{}", context(&o));
}

#[test]
fn compression_files_train_with_fewer_bytes() {
    for o in passes("compression") {
        // Top 1% of each push, with the headers: about a tenth of raw.
        assert!(
            (o.bytes_pushed as f64) < 0.11 * o.bytes_pushed_raw as f64,
            "{}",
            context(&o)
        );
        assert!(o.final_accuracy >= 0.95, "{}", context(&o));
    }
    for o in passes("compression-slow-link") {
        assert_eq!(o.stopped, "target_accuracy", "{}", context(&o));
        assert_eq!(o.checks["pull_filter"], Status::Pass);
        assert!(o.compression_ratio > 2.0, "{}", context(&o));
    }
}

#[test]
fn chaos_churn_changes_views_often_and_keeps_every_check_green() {
    for seed in SEEDS {
        let (o, trace) = run_traced(&path("chaos-churn"), seed, Bugs::NONE);
        assert_passed(&o);
        assert_eq!(o.checks["deterministic"], Status::Pass, "{}", context(&o));
        assert_eq!(o.updates_duplicated, 0, "{}", context(&o));
        // Every drawn fault is a loss burst or a cut between the
        // coordinator and one other node.
        assert!(o.faults.len() >= 5, "{}", context(&o));
        for f in &o.faults {
            assert!(
                f.kind == "loss"
                    || (f.nodes.len() == 2 && f.nodes.iter().any(|n| n == "coordinator")),
                "not a cut: {f:?}"
            );
        }
        // Views change several times: servers leave chains and, once they
        // have copied their ranges back, are appended again.
        let views = events(&trace, "view");
        let chains = |v: &Value| -> Vec<Vec<String>> {
            serde_json::from_value(v["chains"].clone()).expect("chains")
        };
        let (mut left, mut joined) = (0, 0);
        for w in views.windows(2) {
            for (a, b) in chains(w[0]).iter().zip(chains(w[1]).iter()) {
                left += a.iter().filter(|s| !b.contains(s)).count();
                joined += b.iter().filter(|s| !a.contains(s)).count();
            }
        }
        assert!(
            views.len() >= 5 && left >= 2 && joined >= 2,
            "seed {seed}: {} views, {left} servers left a chain, {joined} joined",
            views.len()
        );
        assert!(
            !events(&trace, "catch_up").is_empty(),
            "seed {seed}: no server caught up"
        );
        let last = chains(views.last().unwrap());
        assert!(
            last.iter().all(|c| c.len() == 3),
            "seed {seed}: the last view is not whole again: {last:?}"
        );
        // Workers are removed and re-admitted.
        let removed = events(&trace, "worker_removed");
        assert!(!removed.is_empty(), "seed {seed}: no worker removed");
        for r in removed {
            let back = events(&trace, "worker_admitted")
                .into_iter()
                .any(|a| worker_of(a) == worker_of(r) && t_us(a) > t_us(r));
            assert!(
                back,
                "seed {seed}: worker-{} never re-admitted",
                worker_of(r)
            );
        }
    }
}

#[test]
fn the_pull_filter_survives_lost_answers() {
    for o in passes("pull-filter-loss") {
        assert_eq!(o.checks["pull_filter"], Status::Pass, "{}", context(&o));
        assert!(o.messages_dropped > 100, "{}", context(&o));
        // The same job without the filter pulls more than twice the bytes.
        let raw = run_file(&path("packet-loss"), o.seed, Bugs::NONE);
        assert!(
            (o.bytes_pulled as f64) < 0.6 * raw.bytes_pulled as f64,
            "{} vs {} unfiltered: {}",
            o.bytes_pulled,
            raw.bytes_pulled,
            context(&o)
        );
    }
}

/// Per server, its share of the pushed bytes delivered to servers and of
/// the pull-answer bytes servers sent (from the deliveries in the trace).
fn server_shares(trace: &[Value]) -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut bytes: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for e in events(trace, "deliver") {
        let size = e["size_bytes"].as_f64().expect("size_bytes");
        let (from, to) = (e["from"].as_str().unwrap(), e["to"].as_str().unwrap());
        match e["msg"].as_str() {
            Some("push_req") if to.starts_with("server-") => {
                bytes.entry(to.to_string()).or_default().0 += size
            }
            Some("pull_resp") if from.starts_with("server-") => {
                bytes.entry(from.to_string()).or_default().1 += size
            }
            _ => {}
        }
    }
    let (push, pull) = bytes
        .values()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    bytes
        .into_iter()
        .map(|(s, (x, y))| (s, (x / push, y / pull)))
        .collect()
}

/// The busiest server's share of pushed bytes and of pull-answer bytes.
fn busiest(shares: &std::collections::BTreeMap<String, (f64, f64)>) -> (String, f64, f64) {
    let (name, &(push, pull)) = shares
        .iter()
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        .expect("servers received pushes");
    (name.clone(), push, pull)
}

#[test]
fn hot_keys_overload_one_server_under_range_placement_and_balanced_or_hash_even_it_out() {
    let mut hash = file(&path("hot-keys-range"));
    hash.cluster.placement = pssim::scenario::Placement::Hash;
    for seed in SEEDS {
        let (range, rt) = run_traced_with(&path("hot-keys-range"), seed, Bugs::NONE, true);
        let (balanced, bt) = run_traced_with(&path("hot-keys-balanced"), seed, Bugs::NONE, true);
        let (hashed, ht) =
            run_scenario_traced(&hash, seed, Bugs::NONE, true, "hot-keys-range (hash)");
        for o in [&range, &balanced, &hashed] {
            assert_passed(o);
            assert!(o.final_accuracy >= 0.85, "{}", context(o));
        }
        let (server, r_push, r_pull) = busiest(&server_shares(&rt));
        let (_, b_push, b_pull) = busiest(&server_shares(&bt));
        let (_, h_push, h_pull) = busiest(&server_shares(&ht));
        // Range: server-0 holds the popular features (about 79%).
        assert_eq!(server, "server-0");
        assert!(
            r_push > 0.7 && r_pull > 0.7,
            "range: {r_push:.3} {r_pull:.3}"
        );
        // Balanced and hash: about a quarter each (4 servers).
        assert!(
            b_push < 0.26 && b_pull < 0.26,
            "balanced: {b_push:.3} {b_pull:.3}"
        );
        assert!(
            h_push < 0.28 && h_pull < 0.28,
            "hash: {h_push:.3} {h_pull:.3}"
        );
        assert!(
            r_push > 2.5 * b_push,
            "range {r_push:.3} vs balanced {b_push:.3}"
        );
        // As many pushes of as many values (a worker's minibatches follow
        // its seed, which the boot order draws; so within 0.1%).
        assert_eq!(range.pushes_acked, balanced.pushes_acked);
        let (r, b) = (range.bytes_pushed as f64, balanced.bytes_pushed as f64);
        assert!((r - b).abs() < 1e-3 * r, "pushed {r} vs {b}");
    }
}

/// The trade-off scenarios sample accuracy every 20 us (finer than
/// madsim's 1 ms sleep granularity), report clocks to target, and on the
/// compute-bound perceptron a large bound cuts the idle fraction and the
/// time to target against BSP.
#[test]
fn fine_sampling_and_clocks_to_target_on_the_compute_bound_perceptron() {
    let scn = file(&path("tradeoff-mlp-compute"));
    let o = run(&scn, 1);
    assert_passed(&o);
    let gaps: Vec<f64> = o.accuracy.windows(2).map(|w| w[1].t_s - w[0].t_s).collect();
    // 20 us apart (plus madsim's 50 ns per timer wake), not 1 ms.
    assert!(
        gaps.iter().all(|&g| (20e-6..21e-6).contains(&g)),
        "{gaps:?}"
    );
    let clocks = o.clocks_to_target.expect("reached the target");
    let last = o.accuracy.last().expect("samples");
    assert!(clocks >= f64::from(last.min_clock) && clocks <= f64::from(last.max_clock));
    let with = |s: u32| {
        let mut x = scn.clone();
        x.training.staleness = s;
        (1..5).map(|seed| run(&x, seed)).collect::<Vec<_>>()
    };
    let mean = |v: &[pssim::outcome::Outcome], f: &dyn Fn(&pssim::outcome::Outcome) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len() as f64
    };
    let (tight, loose) = (with(0), with(32));
    let idle = |v: &[pssim::outcome::Outcome]| mean(v, &|o| o.idle_fraction);
    let time = |v: &[pssim::outcome::Outcome]| mean(v, &|o| o.time_to_target_s.expect("reached"));
    assert!(
        idle(&loose) < idle(&tight) - 0.2,
        "{} vs {}",
        idle(&loose),
        idle(&tight)
    );
    assert!(
        time(&loose) < time(&tight),
        "{} vs {}",
        time(&loose),
        time(&tight)
    );
}
