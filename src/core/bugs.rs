//! Planted protocol bugs: deliberately wrong code paths, compiled in but off
//! unless a run names them (`pssim run FILE --bug NAME`). Each exists to
//! prove that a checker can fail: a checker that never fires on a broken
//! protocol proves nothing. docs/testing.md lists them with the checker that
//! catches each.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use std::fmt;
use std::str::FromStr;

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The SSP gate admits a read one clock too early: it waits only for
    /// clocks `<= c - s - 2`. Caught by `staleness_bound`.
    GateOffByOne,
    /// The gate never waits: SSP and BSP behave as ASP. Caught by
    /// `staleness_bound`.
    GateIgnoresBound,
    /// Servers apply a retried push again instead of re-acknowledging it.
    /// Caught by `no_lost_updates` (duplicated updates).
    NoDedup,
    /// Servers acknowledge a push without applying it. Caught by
    /// `no_lost_updates` (lost updates).
    AckWithoutApply,
    /// Servers step up the gradient instead of down. Caught by
    /// `min_accuracy`.
    GradientAscent,
    /// The host keeps a process-wide counter and lets it leak into message
    /// latencies, as static state in a simulator does: two runs of one seed
    /// in one process differ. Caught by `deterministic`.
    GlobalState,
    /// The coordinator never removes a silent worker, so BSP/SSP gates wait
    /// for a dead worker forever. Caught by `liveness`.
    NoRemoval,
    /// Workers send each request once and wait for the answer forever (as
    /// ps-lite's `Wait`): one lost message hangs training. Caught by
    /// `liveness`.
    NoRetry,
    /// The head of a chain acknowledges a push as soon as it applied it,
    /// before its backups have. Caught by `no_lost_updates` when the head
    /// crashes.
    AckBeforeReplicated,
    /// Servers accept requests and chain messages stamped with an older
    /// view epoch. Caught by `log_matching` / `replicas_agree`.
    AcceptOldEpoch,
    /// A joining server is put in the chain before it has copied the range
    /// (it serves the initial values). Caught by `replicas_agree` / `no_lost_updates`.
    PromoteUncaught,
    /// Servers answer a live change's prepare without fencing: reads past
    /// the boundary are served before the change is known. Caught by
    /// `live_changes`.
    NoFence,
    /// Under the pull filter, servers compute a pull answer from their
    /// record of the worker's copy without checking that the worker holds
    /// it (the request's digest): after a lost answer the worker's copy
    /// drifts from the server's values. Caught by `pull_filter`.
    FilterIgnoresBase,
    /// Heads accept the pushes the membership fences off (an earlier
    /// life's, or a re-admitted life's clocks before its start). Caught by
    /// `staleness_bound` (a late update).
    NoPushFence,
    /// Servers discard their copy of a range whose chain they leave (no
    /// fallback): a live replica removed on a false suspicion takes the
    /// range's state with it. Caught by `no_lost_updates`.
    NoFallback,
    /// A range left with one replica acknowledges pushes alone and waits
    /// for its own servers to return (no spare is recruited): if the
    /// removed replica was only suspected and this one crashes, what it
    /// acknowledged meanwhile is lost. Caught by `no_lost_updates`.
    AckAlone,
    /// The head logs a live widening as soon as it is committed, without
    /// waiting for the pushes of clocks before its boundary: the widened
    /// values miss them, and they are applied to the widened state. Caught
    /// by `live_changes`.
    WidenEarly,
    /// Servers answer reads for clocks at or past a widening's boundary
    /// from a state not yet widened. Caught by `live_changes`.
    UnwidenedRead,
}

impl Bug {
    /// Every bug, for listings and tests.
    pub const ALL: [Bug; 18] = [
        Bug::GateOffByOne,
        Bug::GateIgnoresBound,
        Bug::NoDedup,
        Bug::AckWithoutApply,
        Bug::GradientAscent,
        Bug::GlobalState,
        Bug::NoRemoval,
        Bug::NoRetry,
        Bug::AckBeforeReplicated,
        Bug::AcceptOldEpoch,
        Bug::PromoteUncaught,
        Bug::NoFence,
        Bug::FilterIgnoresBase,
        Bug::NoPushFence,
        Bug::NoFallback,
        Bug::AckAlone,
        Bug::WidenEarly,
        Bug::UnwidenedRead,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::GateOffByOne => "gate_off_by_one",
            Bug::GateIgnoresBound => "gate_ignores_bound",
            Bug::NoDedup => "no_dedup",
            Bug::AckWithoutApply => "ack_without_apply",
            Bug::GradientAscent => "gradient_ascent",
            Bug::GlobalState => "global_state",
            Bug::NoRemoval => "no_removal",
            Bug::NoRetry => "no_retry",
            Bug::AckBeforeReplicated => "ack_before_replicated",
            Bug::AcceptOldEpoch => "accept_old_epoch",
            Bug::PromoteUncaught => "promote_uncaught",
            Bug::NoFence => "no_fence",
            Bug::FilterIgnoresBase => "filter_ignores_base",
            Bug::NoPushFence => "no_push_fence",
            Bug::NoFallback => "no_fallback",
            Bug::AckAlone => "ack_alone",
            Bug::WidenEarly => "widen_early",
            Bug::UnwidenedRead => "unwidened_read",
        }
    }

    /// What the bug does.
    pub fn description(self) -> &'static str {
        match self {
            Bug::GateOffByOne => {
                "SSP gate waits only for clocks <= c-s-2 (one clock too permissive)"
            }
            Bug::GateIgnoresBound => "SSP/BSP gate never waits (behaves as ASP)",
            Bug::NoDedup => "servers apply a retried push again instead of re-acknowledging it",
            Bug::AckWithoutApply => "servers acknowledge every 7th push without applying it",
            Bug::GradientAscent => "servers add the gradient instead of subtracting it",
            Bug::GlobalState => "a process-wide counter leaks into message latencies",
            Bug::NoRemoval => "the coordinator never removes a silent worker",
            Bug::NoRetry => "workers never retry a request (wait forever, as ps-lite's Wait)",
            Bug::AckBeforeReplicated => {
                "the chain head acknowledges a push before its backups applied it"
            }
            Bug::AcceptOldEpoch => {
                "servers accept requests and chain messages from an older view epoch"
            }
            Bug::PromoteUncaught => "a joining server enters the chain before it copied the range",
            Bug::NoFence => "servers prepare a live change without fencing reads past the boundary",
            Bug::FilterIgnoresBase => {
                "the pull filter trusts its record of a worker's copy without checking it"
            }
            Bug::NoPushFence => {
                "heads apply a re-admitted worker's pushes from before its admission clock"
            }
            Bug::NoFallback => "servers discard the copy of a range whose chain they leave",
            Bug::AckAlone => {
                "a range down to one replica acknowledges alone, and no spare copies it"
            }
            Bug::WidenEarly => {
                "the head widens a range at the commit, before the pushes of earlier clocks"
            }
            Bug::UnwidenedRead => {
                "servers answer reads past a widening's boundary from an unwidened state"
            }
        }
    }

    /// The checker expected to catch it.
    pub fn caught_by(self) -> &'static str {
        match self {
            Bug::GateOffByOne | Bug::GateIgnoresBound => "staleness_bound",
            Bug::NoDedup | Bug::AckWithoutApply => "no_lost_updates",
            Bug::GradientAscent => "min_accuracy",
            Bug::GlobalState => "deterministic",
            Bug::NoRemoval | Bug::NoRetry => "liveness",
            Bug::AckBeforeReplicated => "no_lost_updates",
            Bug::AcceptOldEpoch => "log_matching",
            Bug::PromoteUncaught => "replicas_agree",
            Bug::NoFence => "live_changes",
            Bug::FilterIgnoresBase => "pull_filter",
            Bug::NoPushFence => "staleness_bound",
            Bug::NoFallback | Bug::AckAlone => "no_lost_updates",
            Bug::WidenEarly | Bug::UnwidenedRead => "live_changes",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug {s:?}; known bugs: {}", names.join(", "))
        })
    }
}

/// The set of bugs switched on for a run (usually empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs(u32);

impl Bugs {
    /// No bugs.
    pub const NONE: Bugs = Bugs(0);

    /// Switches `bug` on.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | 1 << bug as u32)
    }

    /// Whether `bug` is on.
    #[inline]
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }

    /// The bugs switched on.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.has(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>().unwrap(), b);
        }
        assert!("nope"
            .parse::<Bug>()
            .unwrap_err()
            .contains("gate_off_by_one"));
    }

    #[test]
    fn sets_hold_what_was_added() {
        let s = Bugs::NONE.with(Bug::NoDedup);
        assert!(s.has(Bug::NoDedup));
        assert!(!s.has(Bug::GateOffByOne));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Bug::NoDedup]);
    }
}
