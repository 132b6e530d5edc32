//! What happened: the events nodes and the host report. They feed the
//! checkers, the trace hash and the JSON Lines trace (the schema of
//! ../shared/scenario-format.md; `t_us` is added by the recorder).
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A name in an event (a fault, message or timer kind): borrowed from the
/// code that reports it, owned when read back from a trace. Hashes and
/// compares as the string.
pub type Name = Cow<'static, str>;

/// One event. Serialized with `"ev": "<snake_case variant>"`; read back by
/// real mode from each node's JSON Lines (`crate::net::events`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A fault begins.
    FaultStart {
        /// Fault kind (`crash`, `partition`, `clog`, `loss`, `straggler`,
        /// `slow_link`).
        fault: Name,
        /// Nodes it touches (empty for network-wide loss).
        nodes: Vec<NodeId>,
        /// Human-readable parameters ("rate 0.05", "4x").
        #[serde(default, skip_serializing_if = "String::is_empty")]
        detail: String,
    },
    /// A fault heals.
    FaultEnd {
        /// Fault kind.
        fault: Name,
        /// Nodes it touched.
        nodes: Vec<NodeId>,
    },
    /// A node dies; its memory is lost.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// A node comes back, empty.
    Restart {
        /// The node.
        node: NodeId,
    },
    /// The coordinator admits a worker: the gate counts it from `clock` on.
    WorkerAdmitted {
        /// Worker index.
        worker: WorkerId,
        /// Its incarnation.
        incarnation: u32,
        /// First clock counted.
        clock: Clock,
    },
    /// The coordinator removes a worker from the gate's membership.
    WorkerRemoved {
        /// Worker index.
        worker: WorkerId,
        /// The incarnation removed.
        incarnation: u32,
    },
    /// A new view is published.
    View {
        /// Its epoch.
        epoch: Epoch,
        /// Per range: server names, head first.
        chains: Vec<Vec<NodeId>>,
    },
    /// A replica applies a push (once per replica).
    PushApplied {
        /// The replica.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// Pushing worker.
        worker: WorkerId,
        /// The push's sequence number.
        seq: Seq,
        /// The push's clock.
        clock: Clock,
        /// The entry's position in the range's log (`None` where a range
        /// has no log).
        index: Option<u64>,
    },
    /// A worker receives the acknowledgement of a push.
    PushAcked {
        /// The worker.
        worker: WorkerId,
        /// The range.
        range: RangeId,
        /// The push's sequence number.
        seq: Seq,
        /// The push's clock.
        clock: Clock,
    },
    /// A replica answers a worker's pull for clock `clock` under `bound`.
    PullAnswered {
        /// The answering replica.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// The reading worker.
        worker: WorkerId,
        /// The reader's clock.
        clock: Clock,
        /// Staleness bound in force (`None` under ASP).
        bound: Option<u32>,
    },
    /// A worker starts computing a clock.
    WorkerClock {
        /// The worker.
        worker: WorkerId,
        /// The clock it starts.
        clock: Clock,
    },
    /// A worker finished all its clocks.
    WorkerDone {
        /// The worker.
        worker: WorkerId,
        /// Clocks completed.
        clock: Clock,
    },
    /// A message reaches its destination (in the trace hash; written to the
    /// trace file only on request).
    Deliver {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Message kind.
        msg: Name,
        /// Size on the wire.
        size_bytes: u32,
        /// Digest of the whole message.
        digest: u64,
    },
    /// A message is lost (loss, partition, dead receiver).
    Drop {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Message kind.
        msg: Name,
        /// Why (`loss`, `partition`, `down`).
        reason: Name,
    },
    /// A node's timer fires (in the trace hash; not written by default).
    Timer {
        /// The node.
        node: NodeId,
        /// Timer kind.
        timer: Name,
    },
    /// `server` now holds everything `from` had applied for `range`: a
    /// marker (the state itself came with `snapshot_installed` and the
    /// entries applied since; this changes no state).
    CatchUp {
        /// The replica that caught up.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// Where the state came from.
        from: NodeId,
    },
    /// A checkpoint of the range is written to durable storage.
    Checkpoint {
        /// The writer.
        server: NodeId,
        /// The range.
        range: RangeId,
    },
    /// A restarted server restores its last checkpoint of the range.
    Restore {
        /// The restoring server.
        server: NodeId,
        /// The range.
        range: RangeId,
    },
    /// A node switches to live change `change` from clock `clock` on.
    ChangeApplied {
        /// The node.
        node: NodeId,
        /// The change's number (1, 2, ...).
        change: u64,
        /// Its clock boundary.
        clock: Clock,
        /// New learning rate, if changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        learning_rate: Option<Bits>,
        /// New staleness bound, if changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        staleness: Option<u32>,
        /// New consistency model, if changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        consistency: Option<Name>,
        /// New batch size, if changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch_size: Option<u32>,
        /// New hidden widths, if widened.
        #[serde(default, skip_serializing_if = "Added::is_none")]
        hidden: Added<Vec<u32>>,
    },
    /// A server stops holding a replica (it left the range's chain).
    ReplicaDropped {
        /// The server.
        server: NodeId,
        /// The range.
        range: RangeId,
    },
    /// End of run: a live replica's parameter digest and applied-push count.
    Final {
        /// The replica.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// Hex digest of the range's parameter bits.
        digest: String,
        /// Pushes applied to the state it holds.
        applied: u64,
        /// Hex digest of the set of pushes applied (order-independent).
        applied_set: String,
        /// Hex digest of its clock table (per worker: incarnation, clocks
        /// done).
        clock_table: String,
        /// Hex digest of its dedup table.
        dedup_table: String,
    },
    // New kinds go last: the trace hash includes each event's variant
    // index, so inserting one earlier would change every run's hash.
    /// A worker applied a filtered pull answer and does not hold the
    /// values the server recorded for it (the pull filter's record and
    /// the worker's copy diverged).
    PullFilterMismatch {
        /// The worker.
        worker: WorkerId,
        /// The range.
        range: RangeId,
        /// The clock of the answer.
        clock: Clock,
    },
    /// `server` takes snapshot `id` of its replica of `range` for the
    /// learner `to`: the replica's state at this instant.
    SnapshotSent {
        /// The source replica.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// The learner it is for.
        to: NodeId,
        /// Unique in the run (`<server>.<life>.<n>`).
        id: String,
    },
    /// The learner `server` replaces its copy of `range` with snapshot
    /// `id`; entries it applies afterwards are `push_applied` events.
    SnapshotInstalled {
        /// The learner.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// The source the snapshot came from.
        from: NodeId,
        /// The snapshot's id (as in `snapshot_sent`).
        id: String,
    },
    /// A replica applies a live widening (`Op::Widen`): from here on it
    /// holds the widened model's values of its range.
    RangeWidened {
        /// The replica's server.
        server: NodeId,
        /// The range.
        range: RangeId,
        /// The live change's number.
        change: u64,
        /// The widening's level (1 for the first).
        level: u32,
        /// The entry's position in the range's log.
        index: u64,
    },
}

impl Event {
    /// The `ev` name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::FaultStart { .. } => "fault_start",
            Event::FaultEnd { .. } => "fault_end",
            Event::Crash { .. } => "crash",
            Event::Restart { .. } => "restart",
            Event::WorkerAdmitted { .. } => "worker_admitted",
            Event::WorkerRemoved { .. } => "worker_removed",
            Event::View { .. } => "view",
            Event::PushApplied { .. } => "push_applied",
            Event::PushAcked { .. } => "push_acked",
            Event::PullAnswered { .. } => "pull_answered",
            Event::PullFilterMismatch { .. } => "pull_filter_mismatch",
            Event::WorkerClock { .. } => "worker_clock",
            Event::WorkerDone { .. } => "worker_done",
            Event::Deliver { .. } => "deliver",
            Event::Drop { .. } => "drop",
            Event::Timer { .. } => "timer",
            Event::CatchUp { .. } => "catch_up",
            Event::Checkpoint { .. } => "checkpoint",
            Event::Restore { .. } => "restore",
            Event::ReplicaDropped { .. } => "replica_dropped",
            Event::ChangeApplied { .. } => "change_applied",
            Event::Final { .. } => "final",
            Event::SnapshotSent { .. } => "snapshot_sent",
            Event::SnapshotInstalled { .. } => "snapshot_installed",
            Event::RangeWidened { .. } => "range_widened",
        }
    }

    /// Low-level events (deliveries, drops, timers) are hashed but only
    /// written to a trace file when asked for, to keep traces readable.
    pub fn is_low_level(&self) -> bool {
        matches!(
            self,
            Event::Deliver { .. } | Event::Drop { .. } | Event::Timer { .. }
        )
    }
}

/// A field added to an existing event kind after traces were hashed: when
/// absent it hashes to nothing (and is not written), so every trace
/// without it keeps its hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Added<T>(pub Option<T>);

impl<T> Added<T> {
    /// Whether the field is absent.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: std::hash::Hash> std::hash::Hash for Added<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        if let Some(v) = &self.0 {
            v.hash(h);
        }
    }
}

/// An `f32` in an event: hashed and compared by its bits, written as a
/// number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bits(pub f32);

impl Eq for Bits {}

impl std::hash::Hash for Bits {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h);
    }
}

impl Serialize for Bits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f32(self.0)
    }
}

impl<'de> Deserialize<'de> for Bits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f32::deserialize(d).map(Bits)
    }
}
