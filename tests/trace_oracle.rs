//! An independent checker of event traces: separate code from `src/check`,
//! reading only the JSON Lines trace of ../shared/scenario-format.md (as
//! Jepsen's histories are checked by tools that know nothing of the system).
//! It re-derives the verdicts — stale reads, lost and duplicated updates,
//! replica digests — with plain sets, and must agree with the built-in
//! checkers on healthy runs, on faulty runs and on planted bugs. Two
//! checkers that agree, built separately, are the evidence that the
//! verdicts are right.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A push: worker, incarnation, clock.
type Push = (u64, u64, u64);

/// What one replica holds: the pushes applied to its state, whether its
/// history was cut (it may lack acknowledged pushes), and extra applications.
#[derive(Clone, Default)]
struct State {
    pushes: BTreeSet<Push>,
    cut: bool,
    twice: u64,
}

#[derive(Default)]
struct Oracle {
    /// (server, range) -> state.
    replicas: BTreeMap<(String, u64), State>,
    checkpoints: BTreeMap<(String, u64), State>,
    /// Servers that crashed at least once.
    crashed: BTreeSet<String>,
    /// (server, range) dropped at least once.
    dropped: BTreeSet<(String, u64)>,
    /// worker -> first clock counted.
    members: BTreeMap<u64, u64>,
    /// (range, worker) -> clocks acknowledged (any life).
    acked_clocks: BTreeMap<(u64, u64), BTreeSet<u64>>,
    /// range -> pushes acknowledged.
    acked: BTreeMap<u64, BTreeSet<Push>>,
    stale_reads: u64,
    /// Servers in the last view.
    view: BTreeSet<String>,
    /// Reads that missed only acknowledged updates: (range, those updates).
    maybe_stale: Vec<(u64, Vec<(u64, u64)>)>,
    finals: BTreeMap<u64, Vec<(String, u64, String, u64)>>,
    final_states: Vec<(u64, State)>,
}

fn u(e: &Value, k: &str) -> u64 {
    e[k].as_u64().unwrap_or_else(|| panic!("{k} in {e}"))
}

fn s(e: &Value, k: &str) -> String {
    e[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {e}"))
        .to_string()
}

/// "incarnation.n" -> incarnation.
fn life(seq: &str) -> u64 {
    seq.split('.').next().unwrap().parse().unwrap()
}

impl Oracle {
    fn state(&mut self, server: &str, range: u64) -> &mut State {
        let cut =
            self.crashed.contains(server) || self.dropped.contains(&(server.to_string(), range));
        self.replicas
            .entry((server.to_string(), range))
            .or_insert_with(|| State {
                cut,
                ..State::default()
            })
    }

    fn event(&mut self, e: &Value) {
        match e["ev"].as_str().unwrap() {
            "crash" => {
                let node = s(e, "node");
                if node.starts_with("server-") {
                    self.replicas.retain(|(srv, _), _| *srv != node);
                    self.crashed.insert(node);
                }
            }
            "replica_dropped" => {
                let key = (s(e, "server"), u(e, "range"));
                self.replicas.remove(&key);
                self.dropped.insert(key);
            }
            "catch_up" => {
                let copy = self.state(&s(e, "from"), u(e, "range")).clone();
                self.replicas.insert((s(e, "server"), u(e, "range")), copy);
            }
            "checkpoint" => {
                let copy = self.state(&s(e, "server"), u(e, "range")).clone();
                self.checkpoints
                    .insert((s(e, "server"), u(e, "range")), copy);
            }
            "restore" => {
                let key = (s(e, "server"), u(e, "range"));
                let mut copy = self.checkpoints.get(&key).cloned().unwrap_or_default();
                copy.cut = true;
                self.replicas.insert(key, copy);
            }
            "worker_admitted" => {
                self.members.insert(u(e, "worker"), u(e, "clock"));
            }
            "worker_removed" => {
                self.members.remove(&u(e, "worker"));
            }
            "view" => {
                self.view = e["chains"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|c| c.as_array().unwrap().iter())
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
            }
            "push_applied" => {
                let push = (u(e, "worker"), life(&s(e, "seq")), u(e, "clock"));
                let st = self.state(&s(e, "server"), u(e, "range"));
                if !st.pushes.insert(push) {
                    st.twice += 1;
                }
            }
            "push_acked" => {
                let (range, worker, clock) = (u(e, "range"), u(e, "worker"), u(e, "clock"));
                self.acked
                    .entry(range)
                    .or_default()
                    .insert((worker, life(&s(e, "seq")), clock));
                self.acked_clocks
                    .entry((range, worker))
                    .or_default()
                    .insert(clock);
            }
            "pull_answered" => {
                let Some(bound) = e["bound"].as_u64() else {
                    return;
                };
                let reader = u(e, "worker");
                if !self.members.contains_key(&reader) || !self.view.contains(&s(e, "server")) {
                    return;
                }
                let (clock, range) = (u(e, "clock"), u(e, "range"));
                let Some(last) = clock.checked_sub(bound + 1) else {
                    return;
                };
                let st = self.state(&s(e, "server"), range).clone();
                let mut unacked = false;
                let mut acked_missing = Vec::new();
                for (&w, &start) in &self.members {
                    for c in start..=last {
                        if st.pushes.iter().any(|p| p.0 == w && p.2 == c) {
                            continue;
                        }
                        let acked = self
                            .acked_clocks
                            .get(&(range, w))
                            .is_some_and(|a| a.contains(&c));
                        if !acked {
                            unacked = true;
                        } else if !st.cut {
                            acked_missing.push((w, c));
                        }
                    }
                }
                if unacked {
                    self.stale_reads += 1;
                } else if !acked_missing.is_empty() {
                    self.maybe_stale.push((range, acked_missing));
                }
            }
            "final" => {
                let (server, range) = (s(e, "server"), u(e, "range"));
                let st = self.state(&server, range).clone();
                self.final_states.push((range, st));
                self.finals.entry(range).or_default().push((
                    server,
                    u(e, "applied"),
                    s(e, "digest"),
                    0,
                ));
            }
            _ => {}
        }
    }

    /// Lost: per range, the acknowledged pushes missing from its worst
    /// final replica (all of them if the range has none); duplicated: extra
    /// applications in the final states.
    fn lost_and_duplicated(&self) -> (u64, u64) {
        let mut lost = 0;
        for (range, pushes) in &self.acked {
            let finals: Vec<&State> = self
                .final_states
                .iter()
                .filter(|(r, _)| r == range)
                .map(|(_, st)| st)
                .collect();
            if finals.is_empty() {
                lost += pushes.len() as u64;
                continue;
            }
            // The worst replica of the range counts.
            lost += finals
                .iter()
                .map(|st| pushes.difference(&st.pushes).count() as u64)
                .max()
                .unwrap_or(0);
        }
        let twice = self.final_states.iter().map(|(_, st)| st.twice).sum();
        (lost, twice)
    }

    /// Stale reads, counting those that missed acknowledged updates which
    /// reached every final replica of the range (not lost after all).
    fn stale(&self) -> u64 {
        let arrived = |range: u64, (w, c): (u64, u64)| {
            let finals: Vec<&State> = self
                .final_states
                .iter()
                .filter(|(r, _)| *r == range)
                .map(|(_, st)| st)
                .collect();
            !finals.is_empty()
                && finals
                    .iter()
                    .all(|st| st.pushes.iter().any(|p| p.0 == w && p.2 == c))
        };
        self.stale_reads
            + self
                .maybe_stale
                .iter()
                .filter(|(r, missing)| missing.iter().any(|&m| arrived(*r, m)))
                .count() as u64
    }

    fn replicas_agree(&self) -> bool {
        self.finals.values().all(|reps| {
            reps.windows(2)
                .all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2)
        })
    }
}

/// Runs a scenario file, checks its trace independently, and compares the
/// verdicts with the built-in checkers'.
fn agree(path: &str, seed: u64, bugs: Bugs) -> (u64, u64, u64) {
    let (o, trace) = run_traced(path, seed, bugs);
    let workers = file(path).cluster.workers as u64;
    // Every worker is a member from clock 0 until the trace says otherwise.
    let mut oracle = Oracle {
        members: (0..workers).map(|w| (w, 0)).collect(),
        ..Oracle::default()
    };
    for e in &trace {
        oracle.event(e);
    }
    let ctx = context(&o);
    let builtin_stale = o.checks["staleness_bound"] == Status::Fail;
    if o.checks["staleness_bound"] != Status::Skipped {
        assert_eq!(
            oracle.stale() > 0,
            builtin_stale,
            "staleness: oracle found {} stale reads: {ctx}",
            oracle.stale()
        );
    }
    let (lost, twice) = oracle.lost_and_duplicated();
    assert_eq!(lost, o.updates_lost, "lost: {ctx}");
    assert_eq!(twice, o.updates_duplicated, "duplicated: {ctx}");
    if o.checks["replicas_agree"] != Status::Skipped {
        assert_eq!(
            oracle.replicas_agree(),
            o.checks["replicas_agree"] == Status::Pass,
            "replicas: {ctx}"
        );
    }
    (oracle.stale(), lost, twice)
}

#[test]
fn healthy_and_faulty_runs_get_the_same_verdicts() {
    for (path, seed) in [
        ("scenarios/default.toml", 1),
        ("scenarios/packet-loss.toml", 2),
        ("scenarios/worker-crash-restart.toml", 3),
        ("scenarios/partition-heal.toml", 1),
        ("scenarios/replicated-server-crash.toml", 1),
        ("scenarios/replicated-split-brain.toml", 2),
        ("scenarios/checkpoint-recovery.toml", 1),
        ("scenarios/chaos-replicated.toml", 5),
    ] {
        agree(path, seed, Bugs::NONE);
    }
}

#[test]
fn lost_updates_of_an_unreplicated_crash_are_counted_alike() {
    let (_, lost, _) = agree("scenarios/server-crash-unreplicated.toml", 1, Bugs::NONE);
    assert!(lost > 0);
    let mut total = 0;
    for seed in 0..4 {
        total += agree("scenarios/chaos-beyond.toml", seed, Bugs::NONE).1;
    }
    assert!(total > 0);
}

#[test]
fn planted_bugs_get_the_same_verdicts() {
    let (stale, _, _) = agree(
        "scenarios/bsp-straggler.toml",
        1,
        Bugs::NONE.with(Bug::GateOffByOne),
    );
    assert!(stale > 0, "the gate bug makes stale reads");
    let (_, _, twice) = agree(
        "scenarios/packet-loss.toml",
        1,
        Bugs::NONE.with(Bug::NoDedup),
    );
    assert!(twice > 0);
    let (_, lost, _) = agree(
        "scenarios/packet-loss.toml",
        1,
        Bugs::NONE.with(Bug::AckWithoutApply),
    );
    assert!(lost > 0);
    let (_, lost, _) = agree(
        "scenarios/chaos-replicated.toml",
        9,
        Bugs::NONE.with(Bug::AckBeforeReplicated),
    );
    assert!(lost > 0);
}
