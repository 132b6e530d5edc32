//! Verification power: every planted bug (`pssim::core::Bug::ALL`) is
//! caught within 100 seeds of a library scenario. For each bug the test
//! names the scenario that catches it soonest (measured with `pssim sweep
//! FILE --seeds 0..100 --bug NAME`; docs/testing.md has the table) and runs
//! seeds 0, 1, 2, … with the bug until one fails a check the bug is
//! documented to be caught by, and passes that check without the bug (so
//! the bug, not the scenario, failed it); it prints that seed. Seeds move
//! whenever the protocol or a checker changes, so no seed is pinned: only
//! "within 100" is.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::check::Status;
use pssim::core::{Bug, Bugs};

/// Seeds searched per bug (the budget).
const SEEDS: u64 = 100;

/// The library scenario that catches `bug` soonest. A match without a
/// wildcard: a new planted bug does not compile until it has one.
fn scenario_for(bug: Bug) -> &'static str {
    match bug {
        Bug::GateOffByOne => "ssp-straggler",
        Bug::GateIgnoresBound => "ssp-straggler",
        Bug::NoDedup => "packet-loss",
        Bug::AckWithoutApply => "default",
        Bug::GradientAscent => "default",
        // The only library file with `deterministic = true`.
        Bug::GlobalState => "chaos-churn",
        Bug::NoRemoval => "worker-crash-bsp",
        Bug::NoRetry => "packet-loss",
        Bug::AckBeforeReplicated => "replicated-split-brain",
        Bug::AcceptOldEpoch => "chaos-churn",
        // A spare copying a range left on one replica.
        Bug::PromoteUncaught => "lone-replica",
        Bug::NoFence => "live-change",
        Bug::FilterIgnoresBase => "pull-filter-loss",
        // A worker re-admitted while a push of it is still on its way.
        Bug::NoPushFence => "chaos-replicated",
        // A live replica removed on a false suspicion as the other crashes.
        Bug::NoFallback => "false-suspicion",
        // A lone replica acknowledging while the other is only suspected.
        Bug::AckAlone => "lone-replica",
        // Both need a widening.
        Bug::WidenEarly | Bug::UnwidenedRead => "mlp-widen",
    }
}

/// The checks whose failure counts as catching `bug`: the one
/// `Bug::caught_by` names, plus those its documentation names besides.
fn catching_checks(bug: Bug) -> Vec<&'static str> {
    match bug {
        // Two replicas that accepted different entries for one log slot:
        // `replicas_agree` sees it if it lasts to the end of the run;
        // `log_matching` (a checker being added on another branch; absent
        // from outcomes until then) sees it whenever it happens.
        Bug::AcceptOldEpoch => vec!["replicas_agree", "log_matching"],
        // A learner in the chain before its copy: documented as caught by
        // `replicas_agree` / `no_lost_updates`; the zeros it serves usually
        // lose acknowledged updates and hang the chain before the replicas
        // are ever compared.
        Bug::PromoteUncaught => vec!["replicas_agree", "no_lost_updates", "log_matching"],
        b => vec![b.caught_by()],
    }
}

/// The first seed in `0..SEEDS` on which `bug` fails one of its checks in
/// `scenario` (and the check passes without the bug), with the check.
fn first_catch(bug: Bug, scenario: &str) -> Option<(u64, &'static str)> {
    let path = format!("scenarios/{scenario}.toml");
    let scn = file(&path);
    let checks = catching_checks(bug);
    let failed = |o: &pssim::outcome::Outcome| {
        checks
            .iter()
            .copied()
            .find(|c| o.checks.get(*c) == Some(&Status::Fail))
    };
    (0..SEEDS).find_map(|seed| {
        let o = run_with(&scn, seed, Bugs::NONE.with(bug), &path);
        let check = failed(&o)?;
        let clean = run_with(&scn, seed, Bugs::NONE, &path);
        (clean.checks.get(check) != Some(&Status::Fail)).then_some((seed, check))
    })
}

fn caught(bug: Bug) {
    let scenario = scenario_for(bug);
    let start = std::time::Instant::now();
    match first_catch(bug, scenario) {
        Some((seed, check)) => println!(
            "{bug}: caught by {check} on seed {seed} of {scenario} ({:.1} s): \
             pssim run scenarios/{scenario}.toml --seed {seed} --bug {bug}",
            start.elapsed().as_secs_f64()
        ),
        None => panic!(
            "{bug} was not caught by {:?} on any seed in 0..{SEEDS} of scenarios/{scenario}.toml",
            catching_checks(bug)
        ),
    }
}

macro_rules! power {
    ($($test:ident: $bug:expr;)*) => {
        $(
            #[test]
            fn $test() {
                caught($bug);
            }
        )*

        #[test]
        fn every_planted_bug_has_a_power_test() {
            let tested = [$($bug),*];
            for bug in Bug::ALL {
                assert!(tested.contains(&bug), "{bug} has no test in tests/bug_power.rs");
                assert!(
                    std::path::Path::new(&format!("scenarios/{}.toml", scenario_for(bug))).exists(),
                    "{bug}: scenarios/{}.toml is not a library file",
                    scenario_for(bug)
                );
            }
            assert_eq!(tested.len(), Bug::ALL.len());
        }
    };
}

power! {
    gate_off_by_one: Bug::GateOffByOne;
    gate_ignores_bound: Bug::GateIgnoresBound;
    no_dedup: Bug::NoDedup;
    ack_without_apply: Bug::AckWithoutApply;
    gradient_ascent: Bug::GradientAscent;
    global_state: Bug::GlobalState;
    no_removal: Bug::NoRemoval;
    no_retry: Bug::NoRetry;
    ack_before_replicated: Bug::AckBeforeReplicated;
    accept_old_epoch: Bug::AcceptOldEpoch;
    promote_uncaught: Bug::PromoteUncaught;
    no_fence: Bug::NoFence;
    filter_ignores_base: Bug::FilterIgnoresBase;
    no_push_fence: Bug::NoPushFence;
    no_fallback: Bug::NoFallback;
    ack_alone: Bug::AckAlone;
    widen_early: Bug::WidenEarly;
    unwidened_read: Bug::UnwidenedRead;
}
