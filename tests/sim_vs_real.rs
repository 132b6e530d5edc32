//! The simulator against reality: a library scenario run both ways —
//! simulated (seeds 1–3) and for real (`pssim local`: processes on
//! loopback, every fault injected, seed 1) — agrees on what does not
//! depend on the machine's speed: every check passes in both, nothing is
//! lost, and the real final accuracy lies in the simulated seeds' band
//! (widened by two points for a busy 2-core machine). Wall-clock times
//! are reported, never asserted.
//!
//! `write_the_sim_vs_real_table` (ignored; `scripts/sim-vs-real.sh`) runs
//! every library scenario real mode can run and rewrites the table in
//! docs/real-mode.md between its markers.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::{file, run_with};
use pssim::core::Bugs;
use pssim::scenario::ModelKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Points of accuracy a real run may fall outside the simulated band.
const SLACK: f64 = 0.02;

/// Library scenarios real mode does not run, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "scale",
        "128 workers and 16 servers as processes on 2 cores",
    ),
    ("sparse-large", "a 20M-key model: minutes of real compute"),
    ("scaling", "a sweep's grid, not one run"),
    ("scaling-network", "a sweep's grid, not one run"),
    ("staleness-tradeoff", "a sweep's grid, not one run"),
];

/// One scenario both ways.
struct Row {
    name: String,
    sim_acc: (f64, f64),
    real_acc: f64,
    sim_pass: bool,
    real_pass: bool,
    lost: (u64, u64),
    /// Whether the scenario expects lost updates (`no_lost_updates` off).
    may_lose: bool,
    failover: (Option<f64>, Option<f64>),
    per_clock: (f64, f64),
    /// The calibrated gradient time of a minibatch (seconds).
    grad_s: f64,
    real_failing: Vec<String>,
}

fn recovery(o: &Value) -> Option<f64> {
    let f = o["failovers"].as_array()?;
    let times: Vec<f64> = f.iter().filter_map(|x| x["recovery_s"].as_f64()).collect();
    (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64)
}

/// Runs `name` both ways; `gflops` is this machine's calibrated gradient
/// rate per model kind.
fn compare(name: &str, gflops: &BTreeMap<String, f64>) -> Row {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let mut scn = file(&path);
    // Real mode does not stop at a target accuracy: neither does the
    // simulated side here, so both train every clock.
    scn.training.target_accuracy = None;
    // The simulated side computes at this machine's calibrated rate: under
    // `worker_gflops` (real mode then only computes, for real), in place of
    // the file's rate; under `step_time` (real mode computes, then waits
    // it), added to it below.
    let kind = format!("{:?}", scn.model.kind);
    let flops_model = scn.compute.step_time.is_none() && scn.compute.worker_gflops.is_some();
    if flops_model {
        scn.compute.worker_gflops = Some(gflops[&kind]);
    }
    let sims: Vec<Value> = (1..=3)
        .map(|seed| serde_json::to_value(run_with(&scn, seed, Bugs::NONE, &path)).unwrap())
        .collect();
    let trace = std::env::temp_dir().join(format!("pssim-svr-{}-{name}.jsonl", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pssim"))
        .args([
            "local",
            &path,
            "--json",
            "--timeout",
            "120s",
            "--seed",
            "1",
            "--trace",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    // Real time before the first clock is start-up (every process loads
    // or generates its data set): not training.
    let startup = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["ev"] == "worker_clock")
        .and_then(|e| e["t_us"].as_f64())
        .map_or(0.0, |us| us / 1e6);
    let _ = std::fs::remove_file(&trace);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let real: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{name}: pssim local printed no outcome ({e}): {stdout}"));
    let acc = |o: &Value| o["final_accuracy"].as_f64().unwrap();
    let lost = |o: &Value| o["updates_lost"].as_u64().unwrap_or(0);
    // Per clock of the slowest worker, from the first clock.
    let per_clock = |o: &Value, startup: f64| {
        (o["sim_time_s"].as_f64().unwrap() - startup)
            / o["min_clock"].as_f64().unwrap_or(1.0).max(1.0)
    };
    let job = pssim::run::setup::job(&scn);
    let nnz = match scn.model.dataset {
        pssim::scenario::DatasetKind::Synthetic => {
            (scn.model.density * f64::from(scn.model.features)).round() as usize
        }
        _ => job.data.features,
    };
    let example = job.model.example_flops(nnz).total() as f64;
    let grad_s = match flops_model {
        true => 0.0,
        false => example * f64::from(scn.training.batch_size) / (gflops[&kind] * 1e9),
    };
    let mut sim_per_clock: Vec<f64> = sims.iter().map(|o| per_clock(o, 0.0)).collect();
    sim_per_clock.sort_by(f64::total_cmp);
    Row {
        name: name.into(),
        sim_acc: sims
            .iter()
            .map(acc)
            .fold((1.0, 0.0), |(l, h), a| (f64::min(l, a), f64::max(h, a))),
        real_acc: acc(&real),
        sim_pass: sims.iter().all(|o| o["passed"] == true),
        real_pass: real["passed"] == true,
        lost: (sims.iter().map(lost).max().unwrap(), lost(&real)),
        may_lose: !scn.check.no_lost_updates,
        failover: (recovery(&sims[0]), recovery(&real)),
        per_clock: (sim_per_clock[1], per_clock(&real, startup)),
        grad_s,
        real_failing: real["checks"]
            .as_object()
            .map(|c| {
                c.iter()
                    .filter(|(_, v)| *v == "fail")
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// This machine's gradient rates, by model kind (`pssim calibrate`).
fn rates() -> BTreeMap<String, f64> {
    [
        ModelKind::Logistic,
        ModelKind::Softmax,
        ModelKind::SparseLogistic,
        ModelKind::Mlp,
    ]
    .into_iter()
    .map(|k| (format!("{k:?}"), pssim::calibrate::gradient_rate(k).gflops))
    .collect()
}

fn agrees(r: &Row) -> Result<(), String> {
    let (lo, hi) = r.sim_acc;
    if !(r.sim_pass && r.real_pass) {
        return Err(format!(
            "{}: passed simulated {}, real {} (failing for real: {:?})",
            r.name, r.sim_pass, r.real_pass, r.real_failing
        ));
    }
    if r.lost != (0, 0) && !r.may_lose {
        return Err(format!("{}: updates lost {:?}", r.name, r.lost));
    }
    if r.real_acc < lo - SLACK || r.real_acc > hi + SLACK {
        return Err(format!(
            "{}: real accuracy {:.4} outside the simulated band [{lo:.4}, {hi:.4}] ± {SLACK}",
            r.name, r.real_acc
        ));
    }
    Ok(())
}

/// A subset: a fault-free run, a replicated crash, packet loss, a
/// partition and a clog, each both ways.
#[test]
fn simulation_and_reality_agree_on_a_subset() {
    let gflops = rates();
    for name in [
        "default",
        "replicated-server-crash",
        "packet-loss",
        "partition-heal",
        "clog-one-way",
    ] {
        let r = compare(name, &gflops);
        agrees(&r).unwrap();
        println!(
            "{name}: accuracy real {:.4} in [{:.4}, {:.4}]; s/clock real {:.4} vs simulated {:.4}",
            r.real_acc, r.sim_acc.0, r.sim_acc.1, r.per_clock.1, r.per_clock.0
        );
    }
}

fn secs(x: Option<f64>) -> String {
    x.map_or("–".into(), |s| format!("{s:.2}"))
}

/// Rewrites the table in docs/real-mode.md (`scripts/sim-vs-real.sh`).
#[test]
#[ignore]
fn write_the_sim_vs_real_table() {
    let gflops = rates();
    let mut names: Vec<String> = std::fs::read_dir("scenarios")
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "toml").then_some(stem)
        })
        .filter(|n| SKIPPED.iter().all(|(s, _)| s != n))
        .collect();
    names.sort();
    let mut t = String::new();
    t.push_str(
        "| scenario | accuracy: real (simulated seeds 1–3) | checks sim / real | lost sim / real \
         | failover s sim / real | s per clock: real / simulated (+ calibrated gradient) |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut disagree = Vec::new();
    for name in &names {
        let r = compare(name, &gflops);
        if let Err(e) = agrees(&r) {
            disagree.push(e);
        }
        let verdict = |p: bool| if p { "pass" } else { "FAIL" };
        let real_checks = match r.real_failing.is_empty() {
            true => verdict(r.real_pass).to_string(),
            false => format!("FAIL ({})", r.real_failing.join(", ")),
        };
        let sim = r.per_clock.0 + r.grad_s;
        let _ = writeln!(
            t,
            "| `{}` | {:.4} ({:.4}–{:.4}) | {} / {} | {} / {} | {} / {} | {:.4} / {:.4} ({:.4}; ratio {:.2}) |",
            r.name,
            r.real_acc,
            r.sim_acc.0,
            r.sim_acc.1,
            verdict(r.sim_pass),
            real_checks,
            r.lost.0,
            r.lost.1,
            secs(r.failover.0),
            secs(r.failover.1),
            r.per_clock.1,
            r.per_clock.0,
            sim,
            r.per_clock.1 / sim,
        );
        eprintln!("{name}: done");
    }
    let _ = writeln!(
        t,
        "\nNot run for real: {}.",
        SKIPPED
            .iter()
            .map(|(n, why)| format!("`{n}` ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !disagree.is_empty() {
        let _ = writeln!(t, "\nDisagreements: {}.", disagree.join("; "));
    }
    let doc = std::fs::read_to_string("docs/real-mode.md").unwrap();
    let (begin, end) = ("<!-- sim-vs-real: begin -->\n", "<!-- sim-vs-real: end -->");
    let (a, b) = (doc.find(begin).unwrap(), doc.find(end).unwrap());
    let doc = format!("{}{begin}{t}{}", &doc[..a], &doc[b..]);
    std::fs::write("docs/real-mode.md", doc).unwrap();
}
