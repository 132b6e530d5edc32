//! The `log_matching` check end to end: every library scenario but the two
//! big ones keeps it on seeds 1 to 4, and the planted bug
//! `accept_old_epoch` (a server applies chain messages of an older view, so
//! a replica holds another push at an index than its chain) breaks it
//! within 100 seeds of `chaos-replicated`.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};
use pssim::outcome::Outcome;
use std::sync::Mutex;

/// The library's scenarios but the two big ones.
fn scenario_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir("scenarios")
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".toml") && !p.contains("/scale.") && !p.contains("sparse-large"))
        .collect();
    files.sort();
    files
}

/// Runs every (file, seed) on up to 4 threads; the outcomes in order.
fn run_all(runs: &[(String, u64)]) -> Vec<Outcome> {
    let next = Mutex::new(0);
    let done = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some((path, seed)) = runs.get(i) else {
                    break;
                };
                let o = run_file(path, *seed, Bugs::NONE);
                done.lock().unwrap().push((i, o));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, o)| o).collect()
}

#[test]
fn every_scenario_keeps_log_matching() {
    let files = scenario_files();
    assert!(files.len() >= 20, "{files:?}");
    let runs: Vec<(String, u64)> = files
        .iter()
        .flat_map(|f| (1..=4).map(move |seed| (f.clone(), seed)))
        .collect();
    let failures: Vec<String> = run_all(&runs)
        .iter()
        .filter(|o| o.checks.get("log_matching") != Some(&Status::Pass))
        .map(context)
        .collect();
    assert!(
        failures.is_empty(),
        "{} run(s) without a passing log_matching:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn accepting_old_epoch_messages_breaks_log_matching() {
    let path = "scenarios/chaos-replicated.toml";
    let scn = file(path);
    let bugs = Bugs::NONE.with(Bug::AcceptOldEpoch);
    for seed in 0..100 {
        let o = run_with(&scn, seed, bugs, path);
        if o.checks["log_matching"] == Status::Fail {
            let msgs = &o.violations["log_matching"];
            println!(
                "accept_old_epoch: first caught by log_matching on seed {seed}: {}",
                msgs[0]
            );
            assert!(msgs[0].starts_with("log "), "{}", context(&o));
            return;
        }
    }
    panic!("accept_old_epoch broke no log_matching within seeds 0..100");
}
