//! Every message of the protocol, in one place, with its size on the wire.
//!
//! Sizes follow the framing of the TCP host: a 4-byte length, a version
//! byte and a tag byte, then fixed-width little-endian fields; a vector is a
//! 4-byte count and its elements. The simulator charges these sizes to the
//! bandwidth model, so a push of `n` dense values costs `4n` bytes plus a few
//! dozen bytes of header, as on a real wire.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::codec::Payload;
use super::config::Change;
use super::floats::{Floats, KeyList};
use super::hasher::BufXxh3;
use super::ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use super::view::{Membership, View};
use serde::{Deserialize, Serialize};

/// Which keys of a range a pull asks for or a push carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Keys {
    /// Every key of the range, in order (dense models); values follow the
    /// range's key order.
    All,
    /// These keys, sorted ascending, absolute key ids (sparse models);
    /// shared by the requests of a worker's clock.
    List(KeyList),
}

impl Keys {
    fn wire_size(&self) -> usize {
        match self {
            Keys::All => 1,
            Keys::List(k) => 1 + 4 + 4 * k.len(),
        }
    }
}

/// One update in a range's replicated log, numbered by the chain's head.
/// Every replica applies the entries in index order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the range's log (1, 2, ...).
    pub index: u64,
    /// What it does.
    pub op: Op,
}

/// What a log entry does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A worker's push.
    Push(Push),
    /// A new membership: from this point of the log on, the gate counts
    /// its members and the head refuses the pushes it fences.
    Membership(Membership),
    /// A live widening ([`super::widen`]): from this point of the log on,
    /// the range holds the model widened to `level`, derived from the
    /// state here.
    Widen {
        /// The live change's number.
        change: u64,
        /// The widening's level (1 for the first widening).
        level: u32,
    },
}

/// A worker's push as a log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// Pushing worker.
    pub worker: WorkerId,
    /// The push's identity.
    pub seq: Seq,
    /// Its clock.
    pub clock: Clock,
    /// Keys of `values`.
    pub keys: Keys,
    /// Gradient values, as the worker encoded them.
    pub values: Payload,
    /// The learning rate of its clock in the head's schedule (so every
    /// replica applies the same step whatever live changes it has heard of).
    pub lr: f32,
}

impl Entry {
    fn wire_size(&self) -> usize {
        8 + match &self.op {
            Op::Push(p) => 4 + 12 + 4 + 4 + p.keys.wire_size() + p.values.wire_size(),
            Op::Membership(m) => 1 + membership_size(m),
            Op::Widen { .. } => 1 + 8 + 4,
        }
    }

    /// The push, if this entry is one.
    pub fn push(&self) -> Option<&Push> {
        match &self.op {
            Op::Push(p) => Some(p),
            Op::Membership(_) | Op::Widen { .. } => None,
        }
    }
}

/// Bytes of a membership on the wire.
pub fn membership_size(m: &Membership) -> usize {
    8 + VEC_HEADER + 12 * m.members.len() + VEC_HEADER + 12 * m.fences.len()
}

/// A replica's whole state, as copied to a joining server or checkpointed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeState {
    /// Parameter values of the range (shared with the replica it was
    /// taken from until one of them changes).
    pub params: Floats,
    /// Clock table: worker, incarnation, clocks done.
    pub table: Vec<(WorkerId, u32, Clock)>,
    /// Dedup table: worker, highest seq applied, its log index.
    pub dedup: Vec<(WorkerId, Seq, u64)>,
    /// Pushes applied.
    pub applied: u64,
    /// Digest of the set of pushes applied.
    pub applied_digest: u64,
    /// Log entries applied.
    pub log_index: u64,
    /// The membership in force at that point of the log.
    pub membership: Membership,
    /// Live widenings applied (0: the configured model).
    #[serde(default)]
    pub widened: u32,
}

impl RangeState {
    fn wire_size(&self) -> usize {
        VEC_HEADER
            + 4 * self.params.len()
            + VEC_HEADER
            + 12 * self.table.len()
            + VEC_HEADER
            + 24 * self.dedup.len()
            + 24
            + membership_size(&self.membership)
            // The widening level, sent only when set (an optional trailing
            // field: states of jobs without widenings keep their size).
            + if self.widened != 0 { 4 } else { 0 }
    }
}

/// A protocol message. Field meanings are documented in docs/protocol.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Worker -> head of `range`: the values of `keys` for computing clock
    /// `clock`. Answered once the consistency gate allows it.
    PullReq {
        /// The view the worker routed by.
        epoch: Epoch,
        /// Range asked.
        range: RangeId,
        /// Asking worker.
        worker: WorkerId,
        /// The worker's incarnation (so a server can tell lives apart).
        incarnation: u32,
        /// The clock the worker is about to compute.
        clock: Clock,
        /// Keys wanted.
        keys: Keys,
        /// Live changes the worker holds (its schedule's version).
        schedule: u64,
        /// Digest of the values the worker holds for the range (dense pulls
        /// under the pull filter; 0: none), so the server can send only
        /// what changed since the answer that gave them.
        base: u64,
    },
    /// Server -> worker: the values asked by a `PullReq`, in key order.
    PullResp {
        /// Range answered.
        range: RangeId,
        /// The clock of the request answered.
        clock: Clock,
        /// Values, one per requested key (only those that changed enough
        /// under the pull filter).
        values: Payload,
        /// Live changes the worker lacks: (number, boundary, change).
        schedule: Vec<(u64, Clock, Change)>,
        /// Under the pull filter: digest of the values the worker holds
        /// once it applied this answer, as the server recorded them (0:
        /// not filtered).
        held: u64,
        /// For an answer with only the values that changed: the digest of
        /// the copy it applies to (the request's `base`); a worker whose
        /// copy differs ignores it — it was meant for an earlier request
        /// or an earlier life. 0: a complete answer.
        base: u64,
    },
    /// Worker -> head of `range`: the gradient of clock `clock`. Also sent
    /// with no keys when the minibatch touches none of the range, so servers
    /// learn the worker's progress.
    PushReq {
        /// The view the worker routed by.
        epoch: Epoch,
        /// Range pushed to.
        range: RangeId,
        /// Pushing worker.
        worker: WorkerId,
        /// Identity for exactly-once application; retries reuse it.
        seq: Seq,
        /// The clock this push completes.
        clock: Clock,
        /// Keys of `values`.
        keys: Keys,
        /// Gradient values, one per key, encoded.
        values: Payload,
    },
    /// Server -> worker: push `seq` to `range` is applied (on every live
    /// replica).
    PushAck {
        /// Range acknowledged.
        range: RangeId,
        /// The push acknowledged.
        seq: Seq,
        /// Its clock.
        clock: Clock,
    },
    /// Worker -> coordinator, periodically: "I am alive at this clock".
    WorkerHeartbeat {
        /// The worker.
        worker: WorkerId,
        /// Its incarnation.
        incarnation: u32,
        /// The clock it is computing (or `clocks` when finished).
        clock: Clock,
        /// Whether it waits to be admitted (it restarted).
        joining: bool,
        /// The view epoch it routes by (the coordinator sends a newer view).
        epoch: Epoch,
        /// Whether it has finished all its clocks.
        done: bool,
    },
    /// Server -> coordinator, periodically: "I am alive".
    ServerHeartbeat {
        /// The view epoch it holds.
        epoch: Epoch,
        /// The membership version all its replicas have applied.
        membership: u64,
        /// Its own time when it sent this (echoed in the lease it earns).
        sent: std::time::Duration,
        /// Its life (0 at the start of the job).
        incarnation: u32,
        /// Ranges it holds a replica of (caught up).
        held: Vec<RangeId>,
        /// Live changes it holds (its schedule's version).
        schedule: u64,
        /// Copies it kept of ranges whose chain it left, with their log
        /// position: a fallback for a range left without replicas.
        fallback: Vec<(RangeId, u64)>,
        /// The highest clock a read waits for at it (0: none), so a lease
        /// asked out of turn covers it (`read_leases`).
        wants: Clock,
    },
    /// Replica -> its successor in the chain (or a learner): apply this
    /// entry. Re-sent until acknowledged.
    ChainPush {
        /// The sender's view.
        epoch: Epoch,
        /// The range.
        range: RangeId,
        /// The update.
        entry: Entry,
    },
    /// Replica -> its predecessor (or a learner -> its source): every entry
    /// up to `upto` is applied by me and everyone after me.
    ChainAck {
        /// The sender's view.
        epoch: Epoch,
        /// The range.
        range: RangeId,
        /// Highest index acknowledged (cumulative).
        upto: u64,
    },
    /// Coordinator -> a server that should hold `range` again: copy it from
    /// `from` (the chain's tail) and report when caught up; with no `from`
    /// (the range has no live replica), take it up from the last checkpoint
    /// or from the job's initial values (zeros for a linear model).
    CatchUp {
        /// The range to copy.
        range: RangeId,
        /// The replica to copy from, if any is left.
        from: Option<NodeId>,
        /// Identifies this request; `JoinReady` echoes it, and only the
        /// current one counts (a delayed report of an older copy may be
        /// stale).
        session: u64,
        /// With no `from`: each worker's last reported clock (worker,
        /// incarnation, clock), evidence of its progress for a range that
        /// starts over, whose gate would otherwise wait for workers blocked
        /// on other ranges.
        progress: Vec<(WorkerId, u32, Clock)>,
    },
    /// Joining server -> source: send me the range's state and, from then
    /// on, every entry you apply.
    SnapshotReq {
        /// The range.
        range: RangeId,
        /// Request number (a retry asks anew).
        req: u64,
    },
    /// Source -> joining server: the range's state as of `state.log_index`.
    Snapshot {
        /// The range.
        range: RangeId,
        /// The request answered.
        req: u64,
        /// The snapshot's id (`snapshot_sent`, `snapshot_installed`).
        id: String,
        /// The state.
        state: RangeState,
    },
    /// Source -> joining server: you hold everything I hold of `range`.
    CaughtUp {
        /// The range.
        range: RangeId,
    },
    /// Joining server -> coordinator: I hold `range` as copied from `from`
    /// and follow its updates; append me to the chain.
    JoinReady {
        /// The range.
        range: RangeId,
        /// The source copied from.
        from: NodeId,
        /// The `CatchUp` session answered.
        session: u64,
        /// Live changes it holds.
        schedule: u64,
        /// The membership version its copy has applied (it must count
        /// every member before it serves reads as a tail).
        membership: u64,
    },
    /// Coordinator -> server: live change `k` is coming; stop answering
    /// pulls past the highest clock seen, and say which that is.
    Prepare {
        /// The change's number (1, 2, ...).
        k: u64,
        /// Attempt (a retry after an abort is a new attempt).
        attempt: u64,
    },
    /// Server -> coordinator: fenced at `max_clock` for change `k`.
    Prepared {
        /// The change.
        k: u64,
        /// The attempt answered.
        attempt: u64,
        /// Highest clock of any pull it has received.
        max_clock: Clock,
        /// Its life: what it served in an earlier life is not covered.
        incarnation: u32,
    },
    /// Coordinator -> server: attempt `attempt` of change `k` is abandoned
    /// (not every server answered in time): lift the fence.
    Abort {
        /// The change.
        k: u64,
        /// The attempt.
        attempt: u64,
    },
    /// Coordinator -> server or worker: change `k` holds from clock
    /// `boundary` on.
    Commit {
        /// The change.
        k: u64,
        /// First clock it applies to.
        boundary: Clock,
        /// What changes.
        change: Change,
    },
    /// Coordinator -> worker: you are a member from `start_clock` on.
    Admit {
        /// The admitted incarnation.
        incarnation: u32,
        /// The clock to continue from.
        start_clock: Clock,
        /// The current view, for routing.
        view: View,
        /// Live changes committed so far: (number, boundary, change).
        schedule: Vec<(u64, Clock, Change)>,
    },
    /// Coordinator -> any node: the current membership.
    MembershipUpdate(Membership),
    /// Server -> coordinator: I hold membership `version` now.
    MembershipAck {
        /// The version every replica of the server has applied (its log
        /// reached that membership's entry); the version received if it
        /// holds no replica.
        version: u64,
        /// Per worker, the most clocks any of its replicas holds of it,
        /// and of which life: (worker, incarnation, clocks done). The
        /// coordinator admits a new life above them (docs/protocol.md,
        /// "Admission").
        done: Vec<(WorkerId, u32, Clock)>,
    },
    /// Coordinator -> any node: the current view.
    ViewUpdate(View),
    /// Coordinator -> server of the view, answering its heartbeat: it may
    /// serve reads until its own time `sent + lease`, for clocks up to
    /// `ceiling`, while its view is at least `epoch` (docs/protocol.md,
    /// "Leases"). During a live change's preparation it also carries the
    /// `Prepare` (k, attempt): the server fences before using the lease.
    Lease {
        /// The view epoch it was granted under.
        epoch: Epoch,
        /// The heartbeat's send time (the server's clock).
        sent: std::time::Duration,
        /// The highest clock it may answer under this lease.
        ceiling: Clock,
        /// A live change being prepared: (k, attempt).
        prepare: Option<(u64, u64)>,
    },
    /// Replica -> its predecessor: you sent me entry `got` but I hold only
    /// up to `have` (the entries between were acknowledged to you by a
    /// replica that has left the chain since). The predecessor repairs
    /// the gap with a snapshot if it no longer holds those entries.
    ChainGap {
        /// The sender's view epoch.
        epoch: Epoch,
        /// The range.
        range: RangeId,
        /// Entries the sender holds.
        have: u64,
    },
}

const FRAME_HEADER: usize = 4 + 1 + 1;
const VEC_HEADER: usize = 4;

impl Message {
    /// Short name, for traces and statistics.
    pub fn kind(&self) -> &'static str {
        Message::KIND_NAMES[self.kind_index()]
    }

    /// Every kind's name ([`Message::kind`]), by [`Message::kind_index`].
    pub const KIND_NAMES: [&'static str; 23] = [
        "pull_req",
        "pull_resp",
        "push_req",
        "push_ack",
        "worker_heartbeat",
        "server_heartbeat",
        "admit",
        "membership_update",
        "membership_ack",
        "view_update",
        "lease",
        "chain_gap",
        "chain_push",
        "chain_ack",
        "catch_up",
        "snapshot_req",
        "snapshot",
        "join_ready",
        "caught_up",
        "prepare",
        "prepared",
        "abort",
        "commit",
    ];

    /// The kind's place in [`Message::KIND_NAMES`] (counters indexed by
    /// kind need no search).
    pub fn kind_index(&self) -> usize {
        match self {
            Message::PullReq { .. } => 0,
            Message::PullResp { .. } => 1,
            Message::PushReq { .. } => 2,
            Message::PushAck { .. } => 3,
            Message::WorkerHeartbeat { .. } => 4,
            Message::ServerHeartbeat { .. } => 5,
            Message::Admit { .. } => 6,
            Message::MembershipUpdate(_) => 7,
            Message::MembershipAck { .. } => 8,
            Message::ViewUpdate(_) => 9,
            Message::Lease { .. } => 10,
            Message::ChainGap { .. } => 11,
            Message::ChainPush { .. } => 12,
            Message::ChainAck { .. } => 13,
            Message::CatchUp { .. } => 14,
            Message::SnapshotReq { .. } => 15,
            Message::Snapshot { .. } => 16,
            Message::JoinReady { .. } => 17,
            Message::CaughtUp { .. } => 18,
            Message::Prepare { .. } => 19,
            Message::Prepared { .. } => 20,
            Message::Abort { .. } => 21,
            Message::Commit { .. } => 22,
        }
    }

    /// Whether this message carries model values (push or pull payload),
    /// for the pushed/pulled byte counters.
    pub fn is_push(&self) -> bool {
        matches!(self, Message::PushReq { .. } | Message::ChainPush { .. })
    }

    /// Whether this is a pull answer, for the pulled byte counter.
    pub fn is_pull(&self) -> bool {
        matches!(self, Message::PullReq { .. } | Message::PullResp { .. })
    }

    /// Size in bytes this message would take with its model values as raw
    /// floats (equal to [`Message::wire_size`] when nothing is compressed).
    pub fn raw_wire_size(&self) -> usize {
        let size = self.wire_size();
        match self {
            Message::PushReq { values, .. }
            | Message::PullResp { values, .. }
            | Message::ChainPush {
                entry:
                    Entry {
                        op: Op::Push(Push { values, .. }),
                        ..
                    },
                ..
            } => size - values.wire_size() + values.raw_size() + 4 * values.dropped_keys(),
            _ => size,
        }
    }

    /// Size in bytes of this message on the wire.
    pub fn wire_size(&self) -> usize {
        let body = match self {
            Message::PullReq { keys, base, .. } => {
                8 + 4 + 4 + 4 + 4 + 8 + optional(*base) + keys.wire_size()
            }
            Message::PullResp {
                values,
                schedule,
                held,
                base,
                ..
            } => {
                4 + 4
                    + values.wire_size()
                    + VEC_HEADER
                    + 32 * schedule.len()
                    + optional(*held)
                    + optional(*base)
            }
            Message::PushReq { keys, values, .. } => {
                8 + 4 + 4 + 12 + 4 + keys.wire_size() + values.wire_size()
            }
            Message::PushAck { .. } => 4 + 12 + 4,
            Message::WorkerHeartbeat { .. } => 4 + 4 + 4 + 1 + 8 + 1,
            Message::ServerHeartbeat { held, fallback, .. } => {
                8 + 8
                    + 8
                    + 8
                    + 4
                    + VEC_HEADER
                    + 4 * held.len()
                    + VEC_HEADER
                    + 12 * fallback.len()
                    + 4
            }
            Message::ChainPush { entry, .. } => 8 + 4 + entry.wire_size(),
            Message::ChainAck { .. } => 8 + 4 + 8,
            Message::CatchUp { progress, .. } => 4 + 5 + 8 + VEC_HEADER + 12 * progress.len(),
            Message::SnapshotReq { .. } => 4 + 8,
            Message::Snapshot { state, id, .. } => {
                4 + 8 + VEC_HEADER + id.len() + state.wire_size()
            }
            Message::JoinReady { .. } => 4 + 5 + 8 + 8 + 8,
            Message::CaughtUp { .. } => 4,
            Message::Prepare { .. } | Message::Abort { .. } => 16,
            Message::Prepared { .. } => 24,
            Message::Commit { .. } => 8 + 4 + 20,
            Message::Admit { view, schedule, .. } => {
                4 + 4 + view_size(view) + VEC_HEADER + 32 * schedule.len()
            }
            Message::MembershipUpdate(m) => membership_size(m),
            Message::MembershipAck { done, .. } => 8 + VEC_HEADER + 12 * done.len(),
            Message::ViewUpdate(v) => view_size(v),
            Message::Lease { .. } => 8 + 8 + 4 + 17,
            Message::ChainGap { .. } => 8 + 4 + 8,
        };
        FRAME_HEADER + body
    }

    /// A digest of the whole message, for the trace hash: equal messages
    /// give equal digests on every machine.
    pub fn digest(&self) -> u64 {
        let mut h = BufXxh3::new();
        h.update(self.kind().as_bytes());
        match self {
            Message::PullReq {
                epoch,
                range,
                worker,
                incarnation,
                clock,
                keys,
                schedule,
                base,
            } => {
                h.update(&epoch.0.to_le_bytes());
                for x in [*range, *worker, *incarnation, clock.0] {
                    h.update(&x.to_le_bytes());
                }
                h.update(&schedule.to_le_bytes());
                if *base != 0 {
                    h.update(&base.to_le_bytes());
                }
                hash_keys(&mut h, keys);
            }
            Message::PullResp {
                range,
                clock,
                values,
                schedule,
                held,
                base,
            } => {
                h.update(&range.to_le_bytes());
                h.update(&clock.0.to_le_bytes());
                values.digest_into(&mut h);
                hash_debug(&mut h, schedule);
                for d in [held, base] {
                    if *d != 0 {
                        h.update(&d.to_le_bytes());
                    }
                }
            }
            Message::PushReq {
                epoch,
                range,
                worker,
                seq,
                clock,
                keys,
                values,
            } => {
                h.update(&epoch.0.to_le_bytes());
                for x in [*range, *worker, seq.incarnation, clock.0] {
                    h.update(&x.to_le_bytes());
                }
                h.update(&seq.n.to_le_bytes());
                hash_keys(&mut h, keys);
                values.digest_into(&mut h);
            }
            Message::ChainPush {
                epoch,
                range,
                entry,
            } => {
                h.update(&epoch.0.to_le_bytes());
                h.update(&range.to_le_bytes());
                hash_entry(&mut h, entry);
            }
            Message::Snapshot {
                range,
                req,
                id,
                state,
            } => {
                h.update(&range.to_le_bytes());
                h.update(&req.to_le_bytes());
                h.update(id.as_bytes());
                hash_values(&mut h, &state.params);
                hash_debug(&mut h, &state.table);
                hash_debug(&mut h, &state.dedup);
                hash_debug(&mut h, &state.membership);
                for x in [state.applied, state.applied_digest, state.log_index] {
                    h.update(&x.to_le_bytes());
                }
                if state.widened != 0 {
                    h.update(&state.widened.to_le_bytes());
                }
            }
            // The commonest control message: its debug form's bytes, written
            // without the formatter (a test checks they are the same).
            Message::PushAck { range, seq, clock } => {
                h.update(push_ack_debug(*range, *seq, *clock).as_bytes());
            }
            // Control messages are small: hash their debug form.
            other => hash_debug(&mut h, other),
        }
        h.into_digest()
    }
}

/// A push acknowledgement's debug form,
/// `PushAck { range: 1, seq: Seq { incarnation: 0, n: 7 }, clock: Clock(3) }`,
/// built without the formatter (it was 4% of a message-bound run).
fn push_ack_debug(range: RangeId, seq: Seq, clock: Clock) -> Text {
    let mut t = Text::default();
    t.push(b"PushAck { range: ");
    t.decimal(u64::from(range));
    t.push(b", seq: Seq { incarnation: ");
    t.decimal(u64::from(seq.incarnation));
    t.push(b", n: ");
    t.decimal(seq.n);
    t.push(b" }, clock: Clock(");
    t.decimal(u64::from(clock.0));
    t.push(b") }");
    t
}

/// A short text on the stack.
struct Text {
    buf: [u8; 128],
    len: usize,
}

impl Default for Text {
    fn default() -> Text {
        Text {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Text {
    fn push(&mut self, s: &[u8]) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    /// `x` in decimal, as `{}` prints it.
    fn decimal(&mut self, mut x: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Hashes a value's debug form, streamed into the hasher (no string is
/// built; the digest is the same as hashing the formatted string).
fn hash_debug(h: &mut BufXxh3, v: &impl std::fmt::Debug) {
    struct Into<'a>(&'a mut BufXxh3);
    impl std::fmt::Write for Into<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let _ = std::fmt::write(&mut Into(h), format_args!("{v:?}"));
}

/// An optional digest: 8 bytes when set, none when 0 (a flag in the tag
/// byte says which).
fn optional(digest: u64) -> usize {
    if digest == 0 {
        0
    } else {
        8
    }
}

fn view_size(v: &View) -> usize {
    8 + VEC_HEADER
        + v.chains
            .iter()
            .map(|c| VEC_HEADER + 4 * c.len())
            .sum::<usize>()
}

fn hash_entry(h: &mut BufXxh3, e: &Entry) {
    h.update(&e.index.to_le_bytes());
    match &e.op {
        Op::Push(p) => {
            for x in [p.worker, p.seq.incarnation, p.clock.0] {
                h.update(&x.to_le_bytes());
            }
            h.update(&p.seq.n.to_le_bytes());
            h.update(&p.lr.to_bits().to_le_bytes());
            hash_keys(h, &p.keys);
            p.values.digest_into(h);
        }
        Op::Membership(m) => hash_debug(h, m),
        Op::Widen { change, level } => {
            h.update(b"widen");
            h.update(&change.to_le_bytes());
            h.update(&level.to_le_bytes());
        }
    }
}

fn hash_keys(h: &mut BufXxh3, keys: &Keys) {
    match keys {
        Keys::All => h.update(b"all"),
        Keys::List(k) => hash_le(h, le_bytes_u32(k)),
    }
}

/// Hashes float values by their bit patterns (so -0.0 and 0.0 differ, as they
/// would on the wire).
pub fn hash_values(h: &mut BufXxh3, values: &[f32]) {
    // SAFETY: f32 is 4 plain bytes with no padding or invalid bit patterns;
    // the slice covers exactly the memory of `values`.
    let bytes = unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    };
    hash_le(h, bytes);
}

fn le_bytes_u32(k: &[u32]) -> &[u8] {
    // SAFETY: as for f32 above.
    unsafe { std::slice::from_raw_parts(k.as_ptr().cast::<u8>(), std::mem::size_of_val(k)) }
}

/// Feeds 4-byte little-endian words; on a big-endian machine the words are
/// swapped first so that digests agree across machines.
fn hash_le(h: &mut BufXxh3, bytes: &[u8]) {
    if cfg!(target_endian = "little") {
        h.update(bytes);
    } else {
        for w in bytes.chunks_exact(4) {
            h.update(&[w[3], w[2], w[1], w[0]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_size_grows_with_payload() {
        let push = |n: usize| Message::PushReq {
            epoch: Epoch(1),
            range: 0,
            worker: 0,
            seq: Seq::default(),
            clock: Clock(0),
            keys: Keys::All,
            values: Payload::Dense(vec![0.0; n].into()),
        };
        assert_eq!(push(1000).wire_size() - push(0).wire_size(), 4000);
    }

    #[test]
    fn a_push_acks_digest_text_is_its_debug_form() {
        for (range, inc, n, clock) in [
            (0, 0, 0, 0),
            (1, 2, 7, 3),
            (u32::MAX, u32::MAX, u64::MAX, u32::MAX),
            (10, 0, 1_000_000, 99),
        ] {
            let seq = Seq {
                incarnation: inc,
                n,
            };
            let ack = Message::PushAck {
                range,
                seq,
                clock: Clock(clock),
            };
            let text = push_ack_debug(range, seq, Clock(clock));
            assert_eq!(
                std::str::from_utf8(text.as_bytes()).unwrap(),
                format!("{ack:?}")
            );
        }
    }

    #[test]
    fn digest_sees_payload_bits() {
        let resp = |v: f32| Message::PullResp {
            range: 0,
            clock: Clock(1),
            values: Payload::Dense(vec![v].into()),
            schedule: Vec::new(),
            held: 0,
            base: 0,
        };
        assert_eq!(resp(1.0).digest(), resp(1.0).digest());
        assert_ne!(resp(1.0).digest(), resp(1.0 + f32::EPSILON).digest());
    }
}
