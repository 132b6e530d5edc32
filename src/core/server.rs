//! The server state machine: holds replicas of key ranges, replicates
//! pushes down each range's chain, applies them exactly once (SGD on the
//! server), and answers pulls when the consistency gate allows.
//!
//! **Chain replication** (van Renesse & Schneider, OSDI'04). A range's
//! replicas form a chain, head first (the view). A worker pushes to the
//! head, which numbers the push (a log *entry*), applies it and forwards it
//! down; every replica applies entries strictly in index order, so replicas
//! are bit-identical once quiet. The tail acknowledges the push to the
//! worker: an acknowledged push is on every replica. Each replica keeps the
//! entries its successor has not acknowledged (`out`) and re-sends them on
//! every heartbeat tick and whenever its successor changes; acknowledgements
//! flow back up the chain (cumulative `ChainAck`). Pulls go to the tail,
//! whose state holds only updates every replica has. The clock table and
//! the dedup table are part of each replica's state and change only by
//! applying entries, so SSP and exactly-once survive failover.
//!
//! **Joining.** A server that should hold a range again (restarted, or back
//! from a partition) is told by the coordinator to copy it from the tail
//! (`CatchUp`). It asks the tail for a snapshot; the tail registers it as a
//! *learner*, sends the state and, from then on, forwards every entry it
//! applies to the learner as well (re-sent until acknowledged). When the
//! learner acknowledges everything the tail holds, the tail emits
//! `catch_up` and tells it (`CaughtUp`); the learner reports `JoinReady`,
//! and the coordinator appends it to the chain as the new tail if its
//! source still is the tail. It never serves or acknowledges before that.
//!
//! **Epochs.** Requests carry the sender's view epoch. A worker request
//! from an older epoch is answered with the current view (a redirect); a
//! chain message from another epoch is dropped (its sender re-sends once it
//! holds the same view); a request from a newer epoch is dropped until this
//! server learns the view (its heartbeat fetches it).

use super::bugs::Bug;
use super::codec::{self, Payload};
use super::config::{Change, ProtocolConfig, Schedule};
use super::event::Event;
use super::gate::{Blocked, ClockTable};
use super::ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use super::msg::{Entry, Keys, Message, RangeState};
use super::view::{Membership, View};
use super::{Command, Durable, Timer};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_64;

/// A pull waiting at the gate.
#[derive(Clone, Debug)]
struct PendingPull {
    worker: WorkerId,
    clock: Clock,
    keys: Keys,
    /// Live changes the worker holds.
    changes: u64,
    /// Digest of the values the worker holds (pull filter; 0: none).
    base: u64,
}

/// One replica of a key range: its parameters and the bookkeeping that must
/// travel with them (clock table, dedup table, applied-push accounting, log
/// position), plus its place in the chain.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The range.
    pub range: RangeId,
    /// Its keys.
    pub keys: Range<u32>,
    /// Parameter values, `params[i]` is key `keys.start + i`.
    pub params: Vec<f32>,
    /// Which clocks of each worker are visible.
    pub table: ClockTable,
    /// Per worker: highest push sequence number applied, and its log index
    /// (a worker sends its next push to a range only after the previous one
    /// is acknowledged, so a lower or equal `seq` is a retry).
    pub dedup: BTreeMap<WorkerId, (Seq, u64)>,
    /// Number of pushes applied to this state.
    pub applied: u64,
    /// Order-independent digest of the set of pushes applied (wrapping sum
    /// of a hash of each `(worker, seq)`).
    pub applied_digest: u64,
    /// Log entries applied (the index of the last one).
    pub log_index: u64,
    /// Whether this state was started over (zeros or a checkpoint) after
    /// the range lost every replica: it may lack acknowledged updates, and
    /// takes a worker's pulls as evidence of its progress (see
    /// `ClockTable::record_progress`). A copy from a replica does not.
    pub lost_history: bool,
    /// Entries applied here that the successor has not acknowledged.
    out: BTreeMap<u64, Entry>,
    /// Learners copying this replica.
    learners: BTreeMap<NodeId, Learner>,
    pending: Vec<PendingPull>,
    /// Pull filter: per worker, the values it holds after this replica's
    /// last answer, and their digest. Not replicated: another replica has
    /// no record, so its first answer is complete.
    sent: BTreeMap<WorkerId, (u64, Vec<f32>)>,
}

impl Replica {
    /// A fresh replica with zero parameters, counting `members`' starts.
    pub fn new(range: RangeId, keys: Range<u32>, members: &Membership) -> Replica {
        Replica {
            range,
            params: vec![0.0; keys.len()],
            keys,
            table: ClockTable::from_membership(members),
            dedup: BTreeMap::new(),
            applied: 0,
            applied_digest: 0,
            log_index: 0,
            lost_history: false,
            out: BTreeMap::new(),
            learners: BTreeMap::new(),
            pending: Vec::new(),
            sent: BTreeMap::new(),
        }
    }

    /// A replica holding a copied (or checkpointed) state.
    pub fn from_state(range: RangeId, keys: Range<u32>, s: &RangeState) -> Replica {
        let mut table = ClockTable::default();
        for &(w, inc, done) in &s.table {
            table.record_progress(w, inc, done);
        }
        Replica {
            range,
            keys,
            params: s.params.clone(),
            table,
            dedup: s.dedup.iter().map(|&(w, seq, i)| (w, (seq, i))).collect(),
            applied: s.applied,
            applied_digest: s.applied_digest,
            log_index: s.log_index,
            lost_history: false,
            out: BTreeMap::new(),
            learners: BTreeMap::new(),
            pending: Vec::new(),
            sent: BTreeMap::new(),
        }
    }

    /// The state to copy or checkpoint.
    pub fn state(&self) -> RangeState {
        RangeState {
            params: self.params.clone(),
            table: self.table_entries(),
            dedup: self.dedup_entries(),
            applied: self.applied,
            applied_digest: self.applied_digest,
            log_index: self.log_index,
        }
    }

    /// Digest of the parameter bits, for replica comparison.
    pub fn params_digest(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        super::msg::hash_values(&mut h, &self.params);
        h.digest()
    }

    /// Digests of the clock table and the dedup table, for replica
    /// comparison.
    pub fn table_digests(&self) -> (u64, u64) {
        (
            xxh3_64(format!("{:?}", self.table_entries()).as_bytes()),
            xxh3_64(format!("{:?}", self.dedup_entries()).as_bytes()),
        )
    }

    fn table_entries(&self) -> Vec<(WorkerId, u32, Clock)> {
        self.table
            .entries()
            .iter()
            .map(|(&w, &(inc, d))| (w, inc, d))
            .collect()
    }

    fn dedup_entries(&self) -> Vec<(WorkerId, Seq, u64)> {
        self.dedup.iter().map(|(&w, &(s, i))| (w, s, i)).collect()
    }

    /// Highest index that every replica after this one has applied.
    pub fn acked_upto(&self) -> u64 {
        self.out
            .first_key_value()
            .map_or(self.log_index, |(&i, _)| i - 1)
    }

    /// Whether nothing is waiting to be replicated.
    pub fn is_quiet(&self) -> bool {
        self.out.is_empty() && self.learners.is_empty()
    }

    /// Applies entry `e` (the next in the log). Returns whether the
    /// parameters changed (false under the `ack_without_apply` bug).
    fn apply(&mut self, e: &Entry, lr: f32, cfg: &ProtocolConfig) -> bool {
        debug_assert_eq!(e.index, self.log_index + 1);
        self.log_index = e.index;
        self.table.record_push(e.worker, e.seq.incarnation, e.clock);
        self.dedup.insert(e.worker, (e.seq, e.index));
        if cfg.bugs.has(Bug::AckWithoutApply) && e.seq.n % 7 == 3 {
            return false; // Planted bug: recorded, acknowledged, never applied.
        }
        match (&e.keys, &e.values) {
            (Keys::All, Payload::Dense(v)) => {
                assert_eq!(v.len(), self.params.len(), "dense push of the wrong length");
                for (p, g) in self.params.iter_mut().zip(v) {
                    *p -= lr * g;
                }
            }
            (Keys::All, v) => {
                assert_eq!(v.len(), self.params.len(), "dense push of the wrong length");
                let params = &mut self.params;
                v.for_each(|i, g| params[i] -= lr * g);
            }
            (Keys::List(ks), v) => {
                let (params, start) = (&mut self.params, self.keys.start);
                v.for_each(|i, g| params[(ks[i] - start) as usize] -= lr * g);
            }
        }
        self.applied += 1;
        self.applied_digest = self.applied_digest.wrapping_add(push_hash(e.worker, e.seq));
        true
    }

    /// The answer to a pull of `keys` by `worker`, who holds values with
    /// digest `base`: under the pull filter (dense pulls), only the values
    /// that moved at least `threshold` since this replica's last answer
    /// to it, if the worker holds that answer; else every value. Also
    /// returns the digest of what the worker holds once it applied the
    /// answer (0: not filtered), and for a partial answer the digest of
    /// the copy it applies to.
    fn read(
        &mut self,
        keys: &Keys,
        worker: WorkerId,
        base: u64,
        threshold: f32,
        bugs: super::Bugs,
    ) -> (Payload, u64, u64) {
        match keys {
            Keys::All if threshold > 0.0 => {
                let trust = bugs.has(Bug::FilterIgnoresBase);
                let (p, held) = match self.sent.remove(&worker) {
                    Some((digest, mut held)) if digest == base || trust => {
                        (codec::filtered(&self.params, &mut held, threshold), held)
                    }
                    // The worker does not hold our last answer: all of it.
                    _ => (Payload::Dense(self.params.clone()), self.params.clone()),
                };
                let digest = codec::held_digest(&held);
                self.sent.insert(worker, (digest, held));
                let applies_to = if matches!(p, Payload::Dense(_)) {
                    0
                } else {
                    base
                };
                (p, digest, applies_to)
            }
            Keys::All => (Payload::Dense(self.params.clone()), 0, 0),
            Keys::List(ks) => (
                Payload::Dense(
                    ks.iter()
                        .map(|&k| self.params[(k - self.keys.start) as usize])
                        .collect(),
                ),
                0,
                0,
            ),
        }
    }
}

/// Hash of one push's identity, summed into [`Replica::applied_digest`].
pub fn push_hash(worker: WorkerId, seq: Seq) -> u64 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&worker.to_le_bytes());
    b[4..8].copy_from_slice(&seq.incarnation.to_le_bytes());
    b[8..].copy_from_slice(&seq.n.to_le_bytes());
    xxh3_64(&b)
}

/// A range this server is copying (it is a learner of `source`).
#[derive(Clone, Debug)]
struct Joining {
    source: NodeId,
    /// The coordinator's `CatchUp` session.
    session: u64,
    req: u64,
    /// Installed once the snapshot arrived.
    replica: Option<Replica>,
    /// Entries forwarded before the snapshot arrived.
    buffered: BTreeMap<u64, Entry>,
    /// The source saw us hold everything it held (`CaughtUp`).
    ready: bool,
}

/// A server copying one of this server's replicas.
#[derive(Clone, Debug)]
struct Learner {
    /// Its snapshot request (a lower one is stale).
    req: u64,
    /// Entries forwarded that it has not acknowledged.
    out: BTreeMap<u64, Entry>,
    /// When it last acknowledged (a learner silent for long is dropped).
    since: Duration,
    /// Whether it has been seen caught up (`catch_up` emitted).
    announced: bool,
}

/// A server node.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    replicas: BTreeMap<RangeId, Replica>,
    joining: BTreeMap<RangeId, Joining>,
    /// The last checkpoint of each range (a copy of durable storage).
    checkpoints: BTreeMap<RangeId, RangeState>,
    next_req: u64,
    /// Live changes committed, in order: (boundary, change).
    changes: Vec<(Clock, Change)>,
    /// Hyperparameters over clocks with those changes.
    schedule: Schedule,
    /// A change being prepared: (k, attempt, highest clock answered);
    /// pulls for later clocks wait until it is committed or aborted.
    fence: Option<(u64, u64, Clock)>,
    /// Highest clock of any pull answered.
    max_answered: Clock,
    /// Pushes past the fence, held until the change commits or aborts.
    held_pushes: Vec<HeldPush>,
}

/// A push waiting for a live change: sender, range, worker, seq, clock,
/// keys, values.
type HeldPush = (NodeId, RangeId, WorkerId, Seq, Clock, Keys, Payload);

impl Server {
    /// Server `index` of a fresh job: holds zeroed replicas of its ranges in
    /// the initial view.
    pub fn new(index: u32, cfg: Arc<ProtocolConfig>) -> Server {
        let mut s = Server::restarted(index, cfg, None);
        s.replicas = s
            .view
            .ranges_of(s.id)
            .map(|(r, _)| {
                let keys = s.cfg.ranges.keys(r);
                (r, Replica::new(r, keys, &s.membership))
            })
            .collect();
        s
    }

    /// Server `index` after a restart: memory lost, holding nothing until
    /// the coordinator gives it ranges; `durable` is what it checkpointed.
    pub fn restarted(index: u32, cfg: Arc<ProtocolConfig>, durable: Option<Durable>) -> Server {
        let checkpoints = match durable {
            Some(Durable::Server(c)) => c,
            _ => BTreeMap::new(),
        };
        Server {
            id: NodeId::Server(index),
            view: View::initial(cfg.servers, cfg.replication),
            membership: Membership::initial(cfg.workers),
            replicas: BTreeMap::new(),
            joining: BTreeMap::new(),
            checkpoints,
            next_req: 0,
            changes: Vec::new(),
            schedule: cfg.schedule.clone(),
            fence: None,
            max_answered: Clock(0),
            held_pushes: Vec::new(),
            cfg,
        }
    }

    /// This server's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The replicas held.
    pub fn replicas(&self) -> &BTreeMap<RangeId, Replica> {
        &self.replicas
    }

    /// The view this server holds.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Whether nothing is being replicated or copied.
    pub fn is_quiet(&self) -> bool {
        self.joining.is_empty() && self.replicas.values().all(Replica::is_quiet)
    }

    /// Starts heartbeating (and checkpointing, if configured).
    pub fn on_start(&mut self, _now: Duration, out: &mut Vec<Command>) {
        self.heartbeat(out);
        if let Some(every) = self.cfg.checkpoint_every {
            out.push(Command::SetTimer {
                timer: Timer::Checkpoint,
                after: every,
            });
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, now: Duration, timer: Timer, out: &mut Vec<Command>) {
        match timer {
            Timer::Heartbeat => {
                self.heartbeat(out);
                // A learner silent this long gave up (or died).
                let patience = self.cfg.heartbeat_timeout * 4;
                for rep in self.replicas.values_mut() {
                    rep.learners
                        .retain(|_, l| now.saturating_sub(l.since) <= patience);
                }
                self.resend(out);
            }
            Timer::Checkpoint => self.checkpoint(out),
            _ => {}
        }
    }

    fn heartbeat(&self, out: &mut Vec<Command>) {
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::ServerHeartbeat {
                epoch: self.view.epoch,
                membership: self.membership.version,
                held: self.replicas.keys().copied().collect(),
                schedule: self.changes.len() as u64,
            },
        });
        out.push(Command::SetTimer {
            timer: Timer::Heartbeat,
            after: self.cfg.heartbeat_interval,
        });
    }

    /// Re-sends what is unacknowledged: entries to successors and learners,
    /// snapshot requests and join reports.
    fn resend(&mut self, out: &mut Vec<Command>) {
        let epoch = self.view.epoch;
        for (&r, rep) in &self.replicas {
            if let Some((_, Some(succ))) = self.view.neighbours(r, self.id) {
                for e in rep.out.values() {
                    out.push(chain_push(succ, epoch, r, e));
                }
            }
            for (&l, learner) in &rep.learners {
                for e in learner.out.values() {
                    out.push(chain_push(l, epoch, r, e));
                }
            }
        }
        let mut reqs = Vec::new();
        for (&r, j) in &mut self.joining {
            match &j.replica {
                None => {
                    self.next_req += 1;
                    j.req = self.next_req;
                    reqs.push((j.source, r, j.req));
                }
                Some(_) if j.ready => out.push(Command::Send {
                    to: NodeId::Coordinator,
                    msg: Message::JoinReady {
                        range: r,
                        from: j.source,
                        session: j.session,
                        schedule: self.changes.len() as u64,
                    },
                }),
                // Tell the source how far we are (it answers `CaughtUp`).
                Some(rep) => out.push(chain_ack(j.source, epoch, r, rep.log_index)),
            }
        }
        for (source, range, req) in reqs {
            out.push(Command::Send {
                to: source,
                msg: Message::SnapshotReq { range, req },
            });
        }
    }

    fn checkpoint(&mut self, out: &mut Vec<Command>) {
        for (&r, rep) in &self.replicas {
            self.checkpoints.insert(r, rep.state());
            out.push(Command::Emit(Event::Checkpoint {
                server: self.id,
                range: r,
            }));
        }
        out.push(Command::Persist(Durable::Server(self.checkpoints.clone())));
        if let Some(every) = self.cfg.checkpoint_every {
            out.push(Command::SetTimer {
                timer: Timer::Checkpoint,
                after: every,
            });
        }
    }

    /// Handles a message.
    pub fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: Message,
        out: &mut Vec<Command>,
    ) {
        match msg {
            Message::PushReq {
                epoch,
                range,
                worker,
                seq,
                clock,
                keys,
                values,
            } if self.admit_request(epoch, from, range, true, out) => {
                if self.fence.is_some_and(|(_, _, max)| clock > max) {
                    // Its learning rate may be about to change: wait for
                    // the commit (the worker re-sends it meanwhile).
                    self.held_pushes
                        .push((from, range, worker, seq, clock, keys, values));
                    return;
                }
                self.on_push(from, range, worker, seq, clock, keys, values, out)
            }
            Message::PullReq {
                epoch,
                range,
                worker,
                incarnation,
                clock,
                keys,
                schedule,
                base,
            } if self.admit_request(epoch, from, range, false, out) => {
                let pull = PendingPull {
                    worker,
                    clock,
                    keys,
                    changes: schedule,
                    base,
                };
                self.on_pull(range, incarnation, pull, out)
            }
            Message::Prepare { k, attempt } => self.on_prepare(k, attempt, out),
            Message::Abort { k, attempt }
                if self
                    .fence
                    .is_some_and(|(fk, fa, _)| fk == k && fa == attempt) =>
            {
                self.fence = None;
                self.serve_all(out);
            }
            Message::Commit {
                k,
                boundary,
                change,
            } => self.on_commit(k, boundary, change, out),
            Message::ChainPush {
                epoch,
                range,
                entry,
            } => self.on_chain_push(from, epoch, range, entry, out),
            Message::ChainAck { epoch, range, upto } => {
                self.on_chain_ack(now, from, epoch, range, upto, out)
            }
            Message::SnapshotReq { range, req } => self.on_snapshot_req(now, from, range, req, out),
            Message::CaughtUp { range } => {
                if let Some(j) = self.joining.get_mut(&range) {
                    if j.source == from && j.replica.is_some() && !j.ready {
                        j.ready = true;
                        out.push(Command::Send {
                            to: NodeId::Coordinator,
                            msg: Message::JoinReady {
                                range,
                                from,
                                session: j.session,
                                schedule: self.changes.len() as u64,
                            },
                        });
                    }
                }
            }
            Message::Snapshot { range, req, state } => {
                self.on_snapshot(from, range, req, &state, out)
            }
            Message::CatchUp {
                range,
                from: source,
                session,
                progress,
            } => self.on_catch_up(range, source, session, &progress, out),
            Message::MembershipUpdate(m) => self.on_membership(m, out),
            Message::ViewUpdate(v) => self.on_view(v, out),
            _ => {}
        }
    }

    /// Whether a worker's request may be handled here: routed by the view
    /// this server holds, to the head (pushes) or the tail (pulls). A
    /// request routed by an older view is answered with the current one.
    fn admit_request(
        &self,
        epoch: Epoch,
        from: NodeId,
        range: RangeId,
        push: bool,
        out: &mut Vec<Command>,
    ) -> bool {
        if range >= self.cfg.ranges.ranges() {
            return false;
        }
        let old_ok = self.cfg.bugs.has(Bug::AcceptOldEpoch);
        if epoch < self.view.epoch && !old_ok {
            out.push(Command::Send {
                to: from,
                msg: Message::ViewUpdate(self.view.clone()),
            });
            return false;
        }
        if epoch > self.view.epoch {
            return false; // We are behind; our heartbeat fetches the view.
        }
        let end = if push {
            self.view.head(range)
        } else {
            self.view.tail(range)
        };
        (end == Some(self.id) || (old_ok && epoch < self.view.epoch))
            && self.replicas.contains_key(&range)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_push(
        &mut self,
        from: NodeId,
        range: RangeId,
        worker: WorkerId,
        seq: Seq,
        clock: Clock,
        keys: Keys,
        values: Payload,
        out: &mut Vec<Command>,
    ) {
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        let lr = self.schedule.at(clock).learning_rate;
        if let Some(&(last, index)) = rep.dedup.get(&worker) {
            if seq <= last && !self.cfg.bugs.has(Bug::NoDedup) {
                // A retry. Acknowledge again once every replica has it
                // (until then the tail's acknowledgement is on its way).
                if seq == last && index <= rep.acked_upto() {
                    out.push(Command::Send {
                        to: from,
                        msg: Message::PushAck { range, seq, clock },
                    });
                }
                return;
            }
        }
        let entry = Entry {
            index: rep.log_index + 1,
            worker,
            seq,
            clock,
            keys,
            values,
            lr,
        };
        self.apply_entry(range, entry, out);
    }

    /// Applies the next entry of `range`'s log on this replica, then
    /// forwards it down the chain (and to learners) or, at the tail,
    /// acknowledges it to the worker and up the chain.
    fn apply_entry(&mut self, range: RangeId, e: Entry, out: &mut Vec<Command>) {
        let (pred, succ) = self.view.neighbours(range, self.id).unwrap_or((None, None));
        let epoch = self.view.epoch;
        let lr = self.learning_rate(&e);
        let id = self.id;
        let rep = self.replicas.get_mut(&range).expect("held");
        if rep.apply(&e, lr, &self.cfg) {
            out.push(Command::Emit(applied_event(id, range, &e)));
        }
        let ack = Command::Send {
            to: NodeId::Worker(e.worker),
            msg: Message::PushAck {
                range,
                seq: e.seq,
                clock: e.clock,
            },
        };
        if pred.is_none() && succ.is_some() && self.cfg.bugs.has(Bug::AckBeforeReplicated) {
            out.push(ack.clone()); // Planted bug: the head acknowledges alone.
        }
        for (&l, learner) in &mut rep.learners {
            learner.out.insert(e.index, e.clone());
            out.push(chain_push(l, epoch, range, &e));
        }
        match succ {
            Some(s) => {
                out.push(chain_push(s, epoch, range, &e));
                rep.out.insert(e.index, e);
            }
            None => {
                out.push(ack);
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, range, rep.log_index));
                }
            }
        }
        self.serve_pending(range, out);
    }

    /// The step of entry `e`: the learning rate its worker's schedule gave
    /// its clock (so every replica applies the same step whatever live
    /// changes it has heard of).
    fn learning_rate(&self, e: &Entry) -> f32 {
        let lr = e.lr;
        if self.cfg.bugs.has(Bug::GradientAscent) {
            -lr
        } else {
            lr
        }
    }

    fn on_chain_push(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        range: RangeId,
        e: Entry,
        out: &mut Vec<Command>,
    ) {
        if self.joining.get(&range).is_some_and(|j| j.source == from) {
            self.learn(from, range, e, out);
            return;
        }
        let old_ok = self.cfg.bugs.has(Bug::AcceptOldEpoch);
        if epoch != self.view.epoch && !(old_ok && epoch < self.view.epoch) {
            return; // The sender re-sends once we hold the same view.
        }
        let pred = self.view.neighbours(range, self.id).and_then(|(p, _)| p);
        if pred != Some(from) && !old_ok {
            return;
        }
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        if e.index <= rep.log_index {
            // Already applied: tell the sender how far we are.
            out.push(chain_ack(from, self.view.epoch, range, rep.acked_upto()));
            return;
        }
        if e.index > rep.log_index + 1 {
            return; // A gap: the sender re-sends in order.
        }
        self.apply_entry(range, e, out);
    }

    /// An entry forwarded to this server as a learner of `range`.
    fn learn(&mut self, from: NodeId, range: RangeId, e: Entry, out: &mut Vec<Command>) {
        let lr = self.learning_rate(&e);
        let id = self.id;
        let epoch = self.view.epoch;
        let j = self.joining.get_mut(&range).expect("checked");
        let Some(rep) = &mut j.replica else {
            j.buffered.insert(e.index, e);
            return;
        };
        if e.index == rep.log_index + 1 && rep.apply(&e, lr, &self.cfg) {
            out.push(Command::Emit(applied_event(id, range, &e)));
        }
        out.push(chain_ack(from, epoch, range, rep.log_index));
    }

    fn on_chain_ack(
        &mut self,
        now: Duration,
        from: NodeId,
        epoch: Epoch,
        range: RangeId,
        upto: u64,
        out: &mut Vec<Command>,
    ) {
        let (pred, succ) = self.view.neighbours(range, self.id).unwrap_or((None, None));
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        if let Some(l) = rep.learners.get_mut(&from) {
            l.out.retain(|&i, _| i > upto);
            l.since = now;
            if upto == rep.log_index {
                // It holds everything this replica holds: the copy is done.
                if !l.announced {
                    l.announced = true;
                    out.push(Command::Emit(Event::CatchUp {
                        server: from,
                        range,
                        from: self.id,
                    }));
                }
                out.push(Command::Send {
                    to: from,
                    msg: Message::CaughtUp { range },
                });
            }
            return;
        }
        if succ != Some(from) || epoch != self.view.epoch {
            return;
        }
        rep.out.retain(|&i, _| i > upto);
        if let Some(p) = pred {
            out.push(chain_ack(p, self.view.epoch, range, rep.acked_upto()));
        }
    }

    fn on_catch_up(
        &mut self,
        range: RangeId,
        source: Option<NodeId>,
        session: u64,
        progress: &[(WorkerId, u32, Clock)],
        out: &mut Vec<Command>,
    ) {
        if self.replicas.contains_key(&range) {
            return;
        }
        let Some(source) = source else {
            // No live replica left: a finished copy is the best state there
            // is; else the last checkpoint; else zeros (what the range held
            // is lost, and counted).
            let keys = self.cfg.ranges.keys(range);
            let rep = match self.joining.remove(&range).and_then(|j| j.replica) {
                Some(rep) => rep,
                None => {
                    let mut rep = match self.checkpoints.get(&range) {
                        Some(c) => {
                            out.push(Command::Emit(Event::Restore {
                                server: self.id,
                                range,
                            }));
                            Replica::from_state(range, keys, c)
                        }
                        None => Replica::new(range, keys, &self.membership),
                    };
                    rep.table.admit(&self.membership);
                    for &(w, inc, clock) in progress {
                        rep.table.record_progress(w, inc, clock);
                    }
                    rep.lost_history = true;
                    rep
                }
            };
            self.replicas.insert(range, rep);
            return;
        };
        if self
            .joining
            .get(&range)
            .is_some_and(|j| j.session == session)
        {
            return; // Asked again (the first request may have been lost).
        }
        // A new session starts the copy over: an older copy may have
        // stopped following its source.
        self.next_req += 1;
        self.joining.insert(
            range,
            Joining {
                source,
                session,
                req: self.next_req,
                replica: None,
                buffered: BTreeMap::new(),
                ready: false,
            },
        );
        out.push(Command::Send {
            to: source,
            msg: Message::SnapshotReq {
                range,
                req: self.next_req,
            },
        });
    }

    fn on_snapshot_req(
        &mut self,
        now: Duration,
        from: NodeId,
        range: RangeId,
        req: u64,
        out: &mut Vec<Command>,
    ) {
        if self.view.chains[range as usize].contains(&from) {
            return; // A stale request: it is in the chain already.
        }
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        if rep.learners.get(&from).is_some_and(|l| l.req >= req) {
            return; // A stale or repeated request of a copy under way.
        }
        // From now on every entry applied here is forwarded to `from`.
        rep.learners.insert(
            from,
            Learner {
                req,
                out: BTreeMap::new(),
                since: now,
                announced: false,
            },
        );
        out.push(Command::Send {
            to: from,
            msg: Message::Snapshot {
                range,
                req,
                state: rep.state(),
            },
        });
    }

    fn on_snapshot(
        &mut self,
        from: NodeId,
        range: RangeId,
        req: u64,
        state: &RangeState,
        out: &mut Vec<Command>,
    ) {
        let keys = self.cfg.ranges.keys(range);
        let Some(j) = self.joining.get_mut(&range) else {
            return;
        };
        if j.source != from || j.req != req || j.replica.is_some() {
            return;
        }
        let mut rep = Replica::from_state(range, keys, state);
        // The source may hold an older membership than ours: count ours.
        rep.table.admit(&self.membership);
        j.replica = Some(rep);
        for (_, e) in std::mem::take(&mut j.buffered) {
            self.learn(from, range, e, out);
        }
        let log_index = self.joining[&range]
            .replica
            .as_ref()
            .expect("installed")
            .log_index;
        // The source answers `CaughtUp` once we hold all it holds.
        out.push(chain_ack(from, self.view.epoch, range, log_index));
    }

    /// A new view: drop ranges this server left, take up ranges it joined,
    /// and fix each chain link that changed.
    fn on_view(&mut self, v: View, out: &mut Vec<Command>) {
        if v.epoch <= self.view.epoch {
            return;
        }
        let old = std::mem::replace(&mut self.view, v);
        let me = self.id;
        let mine = |r: RangeId| self.view.chains[r as usize].contains(&me);
        let dropped: Vec<RangeId> = self
            .replicas
            .keys()
            .copied()
            .filter(|&r| !mine(r))
            .collect();
        for r in dropped {
            self.replicas.remove(&r);
            out.push(Command::Emit(Event::ReplicaDropped {
                server: me,
                range: r,
            }));
        }
        let promote_uncaught = self.cfg.bugs.has(Bug::PromoteUncaught);
        for (r, _) in self.view.clone().ranges_of(me) {
            if self.replicas.contains_key(&r) {
                continue;
            }
            let keys = self.cfg.ranges.keys(r);
            match self.joining.remove(&r) {
                Some(Joining {
                    replica: Some(rep), ..
                }) => {
                    self.replicas.insert(r, rep);
                }
                joining => {
                    if promote_uncaught {
                        // Planted bug: serve a range never copied.
                        self.replicas
                            .insert(r, Replica::new(r, keys, &self.membership));
                    } else if let Some(j) = joining {
                        self.joining.insert(r, j);
                    }
                }
            }
        }
        // A copy no longer needed (the chain filled up meanwhile) stops.
        let k = self.cfg.replication as usize;
        self.joining
            .retain(|&r, _| self.view.chains[r as usize].len() < k);
        let epoch = self.view.epoch;
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            let (pred, succ) = self.view.neighbours(r, me).expect("mine");
            let old_succ = old.neighbours(r, me).and_then(|(_, s)| s);
            let rep = self.replicas.get_mut(&r).expect("held");
            if let Some(s) = succ {
                // A learner that became the successor keeps its backlog.
                if let Some(l) = rep.learners.remove(&s) {
                    for (i, e) in l.out {
                        rep.out.entry(i).or_insert(e);
                    }
                }
                if old_succ != Some(s) {
                    for e in rep.out.values() {
                        out.push(chain_push(s, epoch, r, e));
                    }
                }
            } else if !rep.out.is_empty() {
                // Now the tail: what reached us is on every replica left.
                for e in std::mem::take(&mut rep.out).into_values() {
                    out.push(Command::Send {
                        to: NodeId::Worker(e.worker),
                        msg: Message::PushAck {
                            range: r,
                            seq: e.seq,
                            clock: e.clock,
                        },
                    });
                }
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, r, rep.log_index));
                }
            }
            // Learners that are in the chain now are no longer learners.
            let chain = &self.view.chains[r as usize];
            rep.learners.retain(|l, _| !chain.contains(l));
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }

    fn on_pull(
        &mut self,
        range: RangeId,
        incarnation: u32,
        pull: PendingPull,
        out: &mut Vec<Command>,
    ) {
        let (worker, clock) = (pull.worker, pull.clock);
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let before = rep.table.done(worker);
        if rep.lost_history {
            // Only a state started over needs (and may trust) this: here
            // every acknowledgement came from this replica itself. On a
            // copy, an acknowledgement may come from the tail before it (the
            // chain is being extended) ahead of the entry reaching us.
            rep.table.record_progress(worker, incarnation, clock);
        }
        let progressed = rep.table.done(worker) != before;
        // A retry of a pull already waiting replaces it.
        rep.pending
            .retain(|p| !(p.worker == worker && p.clock == clock));
        rep.pending.push(pull);
        if progressed {
            self.serve_pending(range, out);
        } else {
            self.serve_last(range, out);
        }
    }

    fn on_membership(&mut self, m: Membership, out: &mut Vec<Command>) {
        // Acknowledge even an old version: the coordinator may have missed
        // the first acknowledgement.
        let newer = m.version > self.membership.version;
        if newer {
            for rep in self.replicas.values_mut() {
                rep.table.admit(&m);
            }
            for j in self.joining.values_mut() {
                if let Some(rep) = &mut j.replica {
                    rep.table.admit(&m);
                }
            }
            self.membership = m;
        }
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::MembershipAck {
                version: self.membership.version,
            },
        });
        if !newer {
            return;
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }

    /// Live change `k` is being prepared: fence at the highest clock
    /// answered so far and tell the coordinator.
    fn on_prepare(&mut self, k: u64, attempt: u64, out: &mut Vec<Command>) {
        if k != self.changes.len() as u64 + 1 {
            return; // Committed already (or an earlier one is missing).
        }
        let max = match self.fence {
            Some((fk, _, max)) if fk == k => max,
            _ => self.max_answered,
        };
        if !self.cfg.bugs.has(Bug::NoFence) {
            self.fence = Some((k, attempt, max));
        }
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::Prepared {
                k,
                attempt,
                max_clock: max,
            },
        });
    }

    /// Live change `k` holds from `boundary` on.
    fn on_commit(&mut self, k: u64, boundary: Clock, change: Change, out: &mut Vec<Command>) {
        if k != self.changes.len() as u64 + 1 {
            return;
        }
        self.changes.push((boundary, change));
        self.schedule = self
            .schedule
            .with_change(boundary, &change, self.cfg.default_bound);
        if self.fence.is_some_and(|(fk, _, _)| fk == k) {
            self.fence = None;
        }
        out.push(Command::Emit(change.event(self.id, k, boundary)));
        self.serve_all(out);
    }

    fn serve_all(&mut self, out: &mut Vec<Command>) {
        if self.fence.is_none() {
            for (from, range, worker, seq, clock, keys, values) in
                std::mem::take(&mut self.held_pushes)
            {
                if self.view.head(range) == Some(self.id) {
                    self.on_push(from, range, worker, seq, clock, keys, values, out);
                }
            }
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }

    /// Whether this server holds every live change the reader holds (if
    /// not, it is behind — cut off from the coordinator — and waits until
    /// its heartbeat brings them).
    fn knows(&self, p: &PendingPull) -> bool {
        p.changes <= self.changes.len() as u64
    }

    /// Why the gate holds a read of `range` for `clock` (`None`: it may be
    /// answered).
    pub fn gate(&self, range: RangeId, clock: Clock) -> Option<Blocked> {
        let rep = self.replicas.get(&range)?;
        if self.fence.is_some_and(|(_, _, max)| clock > max) {
            // A live change is being prepared: clocks past the fence wait
            // for its boundary.
            return Some(Blocked {
                worker: WorkerId::MAX,
                done: None,
                needed: clock,
            });
        }
        let bound = self.schedule.at(clock).consistency.bound();
        rep.table
            .check(clock, bound, &self.membership, self.cfg.bugs)
            .err()
    }

    /// Answers every pending pull of `range` the gate now allows, oldest
    /// first.
    fn serve_pending(&mut self, range: RangeId, out: &mut Vec<Command>) {
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        if rep.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.replicas.get_mut(&range).expect("held").pending);
        let mut still = Vec::new();
        for p in pending {
            if self.gate(range, p.clock).is_none() && self.knows(&p) {
                self.answer(range, &p, out);
            } else {
                still.push(p);
            }
        }
        self.replicas.get_mut(&range).expect("held").pending = still;
    }

    /// Answers the newest pending pull if the gate allows (nothing else can
    /// have changed).
    fn serve_last(&mut self, range: RangeId, out: &mut Vec<Command>) {
        let rep = self.replicas.get(&range).expect("held");
        let p = rep.pending.last().expect("just pushed").clone();
        if self.gate(range, p.clock).is_none() && self.knows(&p) {
            self.replicas.get_mut(&range).expect("held").pending.pop();
            self.answer(range, &p, out);
        }
    }

    fn answer(&mut self, range: RangeId, p: &PendingPull, out: &mut Vec<Command>) {
        self.max_answered = self.max_answered.max(p.clock);
        let threshold = self.cfg.compression.pull_threshold;
        let (values, held, base) = self.replicas.get_mut(&range).expect("held").read(
            &p.keys,
            p.worker,
            p.base,
            threshold,
            self.cfg.bugs,
        );
        let bound = self.schedule.at(p.clock).consistency.bound();
        out.push(Command::Emit(Event::PullAnswered {
            server: self.id,
            range,
            worker: p.worker,
            clock: p.clock,
            bound,
        }));
        out.push(Command::Send {
            to: NodeId::Worker(p.worker),
            msg: Message::PullResp {
                range,
                clock: p.clock,
                values,
                schedule: super::config::numbered(&self.changes, p.changes),
                held,
                base,
            },
        });
    }
}

fn applied_event(server: NodeId, range: RangeId, e: &Entry) -> Event {
    Event::PushApplied {
        server,
        range,
        worker: e.worker,
        seq: e.seq,
        clock: e.clock,
    }
}

fn chain_push(to: NodeId, epoch: Epoch, range: RangeId, e: &Entry) -> Command {
    Command::Send {
        to,
        msg: Message::ChainPush {
            epoch,
            range,
            entry: e.clone(),
        },
    }
}

fn chain_ack(to: NodeId, epoch: Epoch, range: RangeId, upto: u64) -> Command {
    Command::Send {
        to,
        msg: Message::ChainAck { epoch, range, upto },
    }
}
