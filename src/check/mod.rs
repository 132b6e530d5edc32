//! Properties checked over a run's events: one property per file.
//!
//! Checkers observe the event stream (the same one the JSON Lines trace
//! holds) and know nothing of the protocol's internals: the staleness
//! checker rebuilds what each replica has applied from `push_applied`
//! events instead of trusting the server's own clock table. Each has a test
//! that it fires on a planted bug (`crate::core::Bug`).
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

pub mod accuracy;
pub mod changes;
pub mod determinism;
pub mod intervals;
pub mod life_map;
pub mod lineage;
pub mod liveness;
pub mod log_matching;
pub mod pull_filter;
pub mod replicas;
pub mod staleness;
pub mod staleness_index;
#[cfg(test)]
mod staleness_reference;
pub mod updates;

use crate::core::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The property held.
    Pass,
    /// The property was violated.
    Fail,
    /// Not checked (switched off, or does not apply to this run).
    Skipped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
        })
    }
}

/// A push as a log entry names it: worker, sequence number, clock.
pub type LogPush = (WorkerId, Seq, Clock);

/// How a log-matching violation was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogClash {
    /// `server`, a replica, applied its push at the index where the
    /// replica `other` holds another.
    Applied,
    /// The view of this epoch made `server` and `other` replicas of the
    /// range while they hold different pushes at the index.
    View(Epoch),
    /// `server` applied the index after the higher (or equal) index
    /// `after` in the same state lineage (`other` is `server`).
    Reordered {
        /// The index applied before.
        after: u64,
    },
}

/// A property violation, precise enough to debug.
#[derive(Clone, Debug, PartialEq)]
pub enum Violation {
    /// A read was answered before an update its bound requires was visible.
    StaleRead {
        /// When.
        t: Duration,
        /// Answering replica.
        server: NodeId,
        /// Range read.
        range: RangeId,
        /// Reader.
        reader: WorkerId,
        /// Reader's clock.
        clock: Clock,
        /// Bound in force.
        bound: u32,
        /// The worker whose update was missing.
        missing_worker: WorkerId,
        /// The clock of the missing update.
        missing_clock: Clock,
    },
    /// Acknowledged pushes missing from the final parameters.
    LostUpdates {
        /// Range.
        range: RangeId,
        /// How many.
        count: u64,
        /// One of them: worker and clock.
        example: (WorkerId, Clock),
    },
    /// Pushes applied more than once to one replica's state.
    DuplicatedUpdates {
        /// Replica.
        server: NodeId,
        /// Range.
        range: RangeId,
        /// How many extra applications.
        count: u64,
        /// One of them: worker and clock.
        example: (WorkerId, Clock),
    },
    /// Final accuracy below the scenario's minimum.
    LowAccuracy {
        /// Measured.
        accuracy: f64,
        /// Required.
        min: f64,
    },
    /// A live worker made no progress for the liveness window after the
    /// last fault healed.
    Stalled {
        /// The worker.
        worker: WorkerId,
        /// Its last progress (or the heal, if later).
        since: Duration,
        /// When it was judged stalled.
        now: Duration,
        /// When the last fault healed.
        heal: Duration,
        /// The liveness window.
        window: Duration,
    },
    /// Nodes switched to a live change at different boundaries.
    ChangeBoundary {
        /// The change.
        change: u64,
        /// A node that disagrees.
        node: NodeId,
        /// The boundary first reported.
        boundary: Clock,
        /// The node's boundary.
        other: Clock,
    },
    /// A node computed or served a clock past a live change's boundary
    /// without having adopted the change.
    ChangeMissed {
        /// When.
        t: Duration,
        /// The node.
        node: NodeId,
        /// The change.
        change: u64,
        /// Its boundary.
        boundary: Clock,
        /// The clock computed or served.
        clock: Clock,
    },
    /// A replica applied an update, or answered a read, of a clock whose
    /// model it did not hold: a live widening applied before the clock's
    /// boundary, or not yet applied at or past it.
    WidenMismatch {
        /// When.
        t: Duration,
        /// The replica's server.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// `read` (a pull answered) or `update` (a push applied).
        what: &'static str,
        /// The worker read for or pushing.
        worker: crate::core::WorkerId,
        /// The clock.
        clock: Clock,
        /// The widenings the replica had applied.
        level: u32,
        /// The widenings in force at that clock.
        expected: u32,
    },
    /// Two replicas of a range differ once the system is quiet.
    ReplicasDisagree {
        /// The range.
        range: RangeId,
        /// The replica compared with.
        a: NodeId,
        /// The replica that differs.
        b: NodeId,
        /// What differs.
        what: &'static str,
        /// Pushes applied by each.
        applied: (u64, u64),
    },
    /// A worker's copy of a range differs from what the server's pull
    /// filter recorded for it.
    FilterDiverged {
        /// When.
        t: Duration,
        /// The worker.
        worker: WorkerId,
        /// The range.
        range: RangeId,
        /// The clock of the answer applied.
        clock: Clock,
    },
    /// Two runs of the same seed differ.
    Nondeterministic {
        /// Hash of the first run.
        first: String,
        /// Hash of the second run.
        second: String,
        /// The first event that differs, if known.
        divergence: Option<String>,
    },
    /// A push applied anywhere only after a read by a member that needed
    /// it (the read's bound covered its clock, its worker a member).
    LateUpdate {
        /// When the read was answered.
        t: Duration,
        /// The replica that answered it.
        server: NodeId,
        /// Range read.
        range: RangeId,
        /// Reader.
        reader: WorkerId,
        /// Reader's clock.
        clock: Clock,
        /// Bound in force.
        bound: u32,
        /// The pushing worker.
        worker: WorkerId,
        /// The push's clock.
        missing_clock: Clock,
        /// When the push was first applied.
        applied_t: Duration,
        /// Where.
        applied_at: NodeId,
    },
    /// Two replicas of a range hold different pushes at one log index, or
    /// a state applied a log index not above one it applied before.
    LogMismatch {
        /// When it was found.
        t: Duration,
        /// The range.
        range: RangeId,
        /// The log index.
        index: u64,
        /// The replica that applied the entry (at a view: the first of the
        /// two).
        server: NodeId,
        /// Its push at `index`.
        push: LogPush,
        /// The other replica (`server` itself when reordered).
        other: NodeId,
        /// The other's push at `index` (when reordered: at `after`).
        other_push: LogPush,
        /// How it was found.
        clash: LogClash,
    },
}

/// `worker-3's push 0.12 (clock 7)`.
fn show_push(&(worker, seq, clock): &LogPush) -> String {
    format!("worker-{worker}'s push {seq} (clock {clock})")
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::StaleRead {
                t,
                server,
                range,
                reader,
                clock,
                bound,
                missing_worker,
                missing_clock,
            } => write!(
                f,
                "at {:.6}s {server} answered worker-{reader}'s pull of range {range} for clock {clock} \
                 (bound {bound}) without worker-{missing_worker}'s update of clock {missing_clock}",
                t.as_secs_f64()
            ),
            Violation::LateUpdate {
                t,
                server,
                range,
                reader,
                clock,
                bound,
                worker,
                missing_clock,
                applied_t,
                applied_at,
            } => write!(
                f,
                "late update: at {:.6}s {server} answered worker-{reader}'s pull of range {range} \
                 for clock {clock} (bound {bound}); worker-{worker}'s update of clock \
                 {missing_clock} was {} only later, at {:.6}s{}",
                t.as_secs_f64(),
                if applied_at.worker().is_some() {
                    "acknowledged (never applied)"
                } else {
                    "applied"
                },
                applied_t.as_secs_f64(),
                if applied_at.worker().is_some() {
                    String::new()
                } else {
                    format!(" on {applied_at}")
                }
            ),
            Violation::LostUpdates {
                range,
                count,
                example: (w, c),
            } => write!(
                f,
                "{count} acknowledged push(es) to range {range} missing from its final state \
                 (e.g. worker-{w}'s push of clock {c})"
            ),
            Violation::DuplicatedUpdates {
                server,
                range,
                count,
                example: (w, c),
            } => write!(
                f,
                "{server} applied {count} push(es) to range {range} more than once \
                 (e.g. worker-{w}'s push of clock {c})"
            ),
            Violation::LowAccuracy { accuracy, min } => {
                write!(f, "final test accuracy {accuracy:.4} is below min_accuracy {min:.4}")
            }
            Violation::Stalled {
                worker,
                since,
                now,
                heal,
                window,
            } => write!(
                f,
                "worker-{worker} made no progress from {:.3}s to {:.3}s, more than the liveness \
                 window of {:.3}s (the last fault healed at {:.3}s)",
                since.as_secs_f64(),
                now.as_secs_f64(),
                window.as_secs_f64(),
                heal.as_secs_f64()
            ),
            Violation::ChangeBoundary {
                change,
                node,
                boundary,
                other,
            } => write!(
                f,
                "live change {change} applies from clock {boundary}, but {node} switched at clock {other}"
            ),
            Violation::ChangeMissed {
                t,
                node,
                change,
                boundary,
                clock,
            } => write!(
                f,
                "at {:.6}s {node} was at clock {clock} without live change {change} (boundary {boundary})",
                t.as_secs_f64()
            ),
            Violation::WidenMismatch {
                t,
                server,
                range,
                what,
                worker,
                clock,
                level,
                expected,
            } => write!(
                f,
                "at {:.6}s the {what} of worker-{worker} for clock {clock} met {server}'s replica of range \
                 {range} holding {level} widenings; {expected} are in force at that clock",
                t.as_secs_f64()
            ),
            Violation::ReplicasDisagree {
                range,
                a,
                b,
                what,
                applied: (x, y),
            } => write!(
                f,
                "replicas of range {range} disagree on their {what}: {a} applied {x} pushes, {b} applied {y}"
            ),
            Violation::FilterDiverged {
                t,
                worker,
                range,
                clock,
            } => write!(
                f,
                "at {:.6}s worker-{worker} applied a filtered answer of range {range} for clock {clock} \
                 and does not hold the values the server recorded for it",
                t.as_secs_f64()
            ),
            Violation::LogMismatch {
                t,
                range,
                index,
                server,
                push,
                other,
                other_push,
                clash,
            } => {
                let (t, p, q) = (t.as_secs_f64(), show_push(push), show_push(other_push));
                match clash {
                    LogClash::Applied => write!(
                        f,
                        "log mismatch at {t:.6}s: {server} applied {p} at index {index} of \
                         range {range}, where the replica {other} holds {q}"
                    ),
                    LogClash::View(epoch) => write!(
                        f,
                        "log mismatch at {t:.6}s: view {epoch} makes {server} and {other} \
                         replicas of range {range} while they hold different pushes at index \
                         {index}: {p} and {q}"
                    ),
                    LogClash::Reordered { after } => write!(
                        f,
                        "log order broken at {t:.6}s: {server} applied index {index} of range \
                         {range} ({p}) after index {after} ({q})"
                    ),
                }
            }
            Violation::Nondeterministic {
                first,
                second,
                divergence,
            } => {
                write!(f, "same seed, different runs: trace hash {first} then {second}")?;
                if let Some(d) = divergence {
                    write!(f, "; first diverging event: {d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A finished check: its verdict and what broke it.
#[derive(Clone, Debug)]
pub struct Report {
    /// Check name, as in scenario files and the outcome.
    pub name: &'static str,
    /// Verdict.
    pub status: Status,
    /// Violations (empty unless failed); capped at [`MAX_KEPT`].
    pub violations: Vec<Violation>,
    /// Violations found in all, including those not kept.
    pub total: u64,
}

/// Violations kept per check; further ones are only counted.
pub const MAX_KEPT: usize = 20;

impl Report {
    /// A report from a check that ran (`enabled`) or not.
    pub fn new(
        name: &'static str,
        enabled: bool,
        violations: Vec<Violation>,
        total: u64,
    ) -> Report {
        let status = if !enabled {
            Status::Skipped
        } else if total > 0 {
            Status::Fail
        } else {
            Status::Pass
        };
        Report {
            name,
            status,
            violations: if enabled { violations } else { Vec::new() },
            total,
        }
    }
}

/// Collects violations, keeping the first [`MAX_KEPT`].
#[derive(Clone, Debug, Default)]
pub struct Violations {
    kept: Vec<Violation>,
    total: u64,
}

impl Violations {
    /// Records one.
    pub fn push(&mut self, v: Violation) {
        self.total += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(v);
        }
    }

    /// How many were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The report of check `name`.
    pub fn report(&self, name: &'static str, enabled: bool) -> Report {
        Report::new(name, enabled, self.kept.clone(), self.total)
    }
}
