//! The server state machine: holds replicas of key ranges, applies pushes
//! exactly once (SGD on the server), and answers pulls when the consistency
//! gate allows.

use super::bugs::Bug;
use super::config::ProtocolConfig;
use super::event::Event;
use super::gate::{Blocked, ClockTable};
use super::ids::{Clock, NodeId, RangeId, Seq, WorkerId};
use super::msg::{Keys, Message};
use super::view::{Membership, View};
use super::{Command, Timer};
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
}

/// One replica of a key range: its parameters and the bookkeeping that must
/// travel with them (clock table, dedup table, applied-push accounting).
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
    /// Highest push sequence number applied per worker (pushes of one
    /// worker to one range arrive in sequence order: a worker sends its next
    /// push only after the previous one is acknowledged).
    pub dedup: BTreeMap<WorkerId, Seq>,
    /// Number of pushes applied to this state.
    pub applied: u64,
    /// Order-independent digest of the set of pushes applied (wrapping sum
    /// of a hash of each `(worker, seq)`).
    pub applied_digest: u64,
    pending: Vec<PendingPull>,
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
            pending: Vec::new(),
        }
    }

    /// Digest of the parameter bits, for replica comparison.
    pub fn params_digest(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        super::msg::hash_values(&mut h, &self.params);
        h.digest()
    }

    fn is_duplicate(&self, worker: WorkerId, seq: Seq) -> bool {
        self.dedup.get(&worker).is_some_and(|&last| seq <= last)
    }

    fn apply(
        &mut self,
        worker: WorkerId,
        seq: Seq,
        clock: Clock,
        lr: f32,
        keys: &Keys,
        values: &[f32],
    ) {
        match keys {
            Keys::All => {
                assert_eq!(
                    values.len(),
                    self.params.len(),
                    "dense push of the wrong length"
                );
                for (p, g) in self.params.iter_mut().zip(values) {
                    *p -= lr * g;
                }
            }
            Keys::List(ks) => {
                for (&k, g) in ks.iter().zip(values) {
                    self.params[(k - self.keys.start) as usize] -= lr * g;
                }
            }
        }
        self.table.record_push(worker, seq.incarnation, clock);
        self.dedup.insert(worker, seq);
        self.applied += 1;
        self.applied_digest = self.applied_digest.wrapping_add(push_hash(worker, seq));
    }

    fn read(&self, keys: &Keys) -> Vec<f32> {
        match keys {
            Keys::All => self.params.clone(),
            Keys::List(ks) => ks
                .iter()
                .map(|&k| self.params[(k - self.keys.start) as usize])
                .collect(),
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

/// A server node.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    replicas: BTreeMap<RangeId, Replica>,
}

impl Server {
    /// Server `index` of a fresh job: holds zeroed replicas of its ranges in
    /// the initial view.
    pub fn new(index: u32, cfg: Arc<ProtocolConfig>) -> Server {
        let id = NodeId::Server(index);
        let view = View::initial(cfg.servers, cfg.replication);
        let membership = Membership::initial(cfg.workers);
        let replicas = view
            .ranges_of(id)
            .map(|(r, _)| (r, Replica::new(r, cfg.ranges.keys(r), &membership)))
            .collect();
        Server {
            id,
            cfg,
            view,
            membership,
            replicas,
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

    /// Starts heartbeating.
    pub fn on_start(&mut self, _now: Duration, out: &mut Vec<Command>) {
        self.heartbeat(out);
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, _now: Duration, timer: Timer, out: &mut Vec<Command>) {
        if timer == Timer::Heartbeat {
            self.heartbeat(out);
        }
    }

    fn heartbeat(&self, out: &mut Vec<Command>) {
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::ServerHeartbeat {
                epoch: self.view.epoch,
                membership: self.membership.version,
            },
        });
        out.push(Command::SetTimer {
            timer: Timer::Heartbeat,
            after: self.cfg.heartbeat_interval,
        });
    }

    /// Handles a message.
    pub fn on_message(
        &mut self,
        _now: Duration,
        from: NodeId,
        msg: Message,
        out: &mut Vec<Command>,
    ) {
        match msg {
            Message::PushReq {
                range,
                worker,
                seq,
                clock,
                keys,
                values,
                ..
            } => self.on_push(from, range, worker, seq, clock, &keys, &values, out),
            Message::PullReq {
                range,
                worker,
                incarnation,
                clock,
                keys,
                ..
            } => self.on_pull(range, worker, incarnation, clock, keys, out),
            Message::MembershipUpdate(m) => self.on_membership(m, out),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_push(
        &mut self,
        from: NodeId,
        range: RangeId,
        worker: WorkerId,
        seq: Seq,
        clock: Clock,
        keys: &Keys,
        values: &[f32],
        out: &mut Vec<Command>,
    ) {
        let bugs = self.cfg.bugs;
        let mut lr = self.cfg.schedule.at(clock).learning_rate;
        if bugs.has(Bug::GradientAscent) {
            lr = -lr;
        }
        let id = self.id;
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let fresh = !rep.is_duplicate(worker, seq) || bugs.has(Bug::NoDedup);
        if fresh {
            if bugs.has(Bug::AckWithoutApply) && seq.n % 7 == 3 {
                // Planted bug: acknowledged, never applied.
                rep.table.record_push(worker, seq.incarnation, clock);
                rep.dedup.insert(worker, seq);
            } else {
                rep.apply(worker, seq, clock, lr, keys, values);
                out.push(Command::Emit(Event::PushApplied {
                    server: id,
                    range,
                    worker,
                    seq,
                    clock,
                }));
            }
        }
        out.push(Command::Send {
            to: from,
            msg: Message::PushAck { range, seq, clock },
        });
        if fresh {
            self.serve_pending(range, out);
        }
    }

    fn on_pull(
        &mut self,
        range: RangeId,
        worker: WorkerId,
        incarnation: u32,
        clock: Clock,
        keys: Keys,
        out: &mut Vec<Command>,
    ) {
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let before = rep.table.done(worker);
        rep.table.record_progress(worker, incarnation, clock);
        let progressed = rep.table.done(worker) != before;
        // A retry of a pull already waiting replaces it.
        rep.pending
            .retain(|p| !(p.worker == worker && p.clock == clock));
        rep.pending.push(PendingPull {
            worker,
            clock,
            keys,
        });
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

    /// Why the gate holds a read of `range` for `clock` (`None`: it may be
    /// answered).
    pub fn gate(&self, range: RangeId, clock: Clock) -> Option<Blocked> {
        let rep = self.replicas.get(&range)?;
        let bound = self.cfg.schedule.at(clock).consistency.bound();
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
            if self.gate(range, p.clock).is_none() {
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
        if self.gate(range, p.clock).is_none() {
            self.replicas.get_mut(&range).expect("held").pending.pop();
            self.answer(range, &p, out);
        }
    }

    fn answer(&self, range: RangeId, p: &PendingPull, out: &mut Vec<Command>) {
        let rep = &self.replicas[&range];
        let bound = self.cfg.schedule.at(p.clock).consistency.bound();
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
                values: rep.read(&p.keys),
            },
        });
    }
}
