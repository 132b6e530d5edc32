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
//! Here: a worker's push at the head (`on_push`, with the dedup of
//! retries), applying an entry and passing it on (`apply_entry`), the
//! step of an entry (`learning_rate`), `ChainPush` and `ChainAck`, and
//! the re-sending of what is unacknowledged (`resend`, which also
//! re-sends a joining server's snapshot requests and join reports).
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::Server;
use crate::core::bugs::Bug;
use crate::core::codec::Payload;
use crate::core::event::Event;
use crate::core::ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use crate::core::msg::{Entry, Keys, Message, Op, Push};
use crate::core::widen::Plan;
use crate::core::Command;
use std::time::Duration;

impl Server {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_push(
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
        let level = self.level_at(clock);
        if level > rep.widened {
            // Computed on a widening not yet logged here (the pusher read
            // it elsewhere): wait for the entry (the worker re-sends).
            self.held_pushes
                .push((from, range, worker, seq, clock, keys, values));
            return;
        }
        if level < rep.widened && !self.cfg.bugs.has(Bug::WidenEarly) {
            // Computed on the model before a widening logged here: no
            // member's push is (the entry waits for every member's clocks
            // before the boundary), so no reader waits for it; refused as a
            // fenced push is.
            return;
        }
        if rep.members().fenced(worker, seq.incarnation, clock)
            && !self.cfg.bugs.has(Bug::NoPushFence)
        {
            // An earlier life's push, or a clock before this life's
            // admission: readers no longer wait for it, so it may never be
            // applied (nor acknowledged; its worker has moved on).
            return;
        }
        let entry = Entry {
            index: rep.log_index + 1,
            op: Op::Push(Push {
                worker,
                seq,
                clock,
                keys,
                values,
                lr,
            }),
        };
        self.apply_entry(range, entry, out);
    }

    /// As the head of `range`, logs the next widening committed if its
    /// boundary's barrier holds here: every member's pushes of clocks
    /// before the boundary are applied (the gate's bound-0 test at the
    /// boundary), so the widened values derive from the state at the
    /// boundary ([`crate::core::widen`]).
    pub(super) fn log_widen(&mut self, range: RangeId, out: &mut Vec<Command>) {
        if self.cfg.widen.levels() == 0 || self.view.head(range) != Some(self.id) {
            return;
        }
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        let level = rep.widened + 1;
        if level > self.cfg.widen.levels() {
            return;
        }
        let Some(boundary) = Plan::boundary(&self.changes, level) else {
            return; // Not committed (here) yet.
        };
        let early = self.cfg.bugs.has(Bug::WidenEarly);
        if !early && rep.table.check(boundary, Some(0), self.cfg.bugs).is_err() {
            return;
        }
        let entry = Entry {
            index: rep.log_index + 1,
            op: Op::Widen {
                change: self.cfg.widen.step(level).change,
                level,
            },
        };
        // Applying it logs the next widening too, if one is due.
        self.apply_entry(range, entry, out);
    }

    /// As the head of `range`, puts the membership this server holds into
    /// the range's log if the replica is behind it: from that entry on,
    /// every replica counts its members and the head refuses what it
    /// fences.
    pub(super) fn log_membership(&mut self, range: RangeId, out: &mut Vec<Command>) {
        if self.view.head(range) != Some(self.id) {
            return;
        }
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        if rep.members().version >= self.membership.version {
            return;
        }
        let entry = Entry {
            index: rep.log_index + 1,
            op: Op::Membership(self.membership.clone()),
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
        let membership = matches!(e.op, Op::Membership(_));
        let short = self.short(range);
        let rep = self.replicas.get_mut(&range).expect("held");
        if rep.apply(&e, lr, &self.cfg) {
            out.extend(applied_event(id, range, &e).map(Command::Emit));
        }
        let ack = push_ack(range, &e);
        if pred.is_none() && succ.is_some() && self.cfg.bugs.has(Bug::AckBeforeReplicated) {
            out.extend(ack.clone()); // Planted bug: the head acknowledges alone.
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
            None if short => {
                // A tail short of replicas acknowledges only what another
                // server holds too (a learner's acknowledgement releases
                // it): the other replica may be alive, only suspected, and
                // this one may crash next.
                rep.out.insert(e.index, e);
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, range, rep.acked_upto()));
                }
            }
            None => {
                out.extend(ack);
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, range, rep.log_index));
                }
            }
        }
        if membership {
            self.membership_applied(out);
        }
        self.log_widen(range, out);
        self.serve_pending(range, out);
    }

    /// As a short chain's tail (see [`Server::short`]), acknowledges the
    /// entries a learner holds too: they are on two servers now.
    pub(super) fn release_held(&mut self, range: RangeId, out: &mut Vec<Command>) {
        let Some((pred, None)) = self.view.neighbours(range, self.id) else {
            return;
        };
        if !self.short(range) {
            return;
        }
        let epoch = self.view.epoch;
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let Some(upto) = rep.learners.values().map(|l| l.acked).max() else {
            return;
        };
        let kept = rep.out.split_off(&(upto + 1));
        let held = std::mem::replace(&mut rep.out, kept);
        if held.is_empty() {
            return;
        }
        for e in held.values() {
            out.extend(push_ack(range, e));
        }
        if let Some(p) = pred {
            out.push(chain_ack(p, epoch, range, rep.acked_upto()));
        }
    }

    /// Whether `range`'s chain is down to one replica while the cluster
    /// replicates: its tail then holds acknowledgements until a learner
    /// holds the entries too, so an acknowledged push is always on two
    /// servers (the other replica may be alive, only suspected, and this
    /// one crash next).
    pub(super) fn short(&self, range: RangeId) -> bool {
        if self.cfg.bugs.has(Bug::AckAlone) {
            return false; // Planted bug: a lone replica acknowledges alone.
        }
        let k = self.cfg.replication.min(self.cfg.servers).min(2) as usize;
        self.view.chains[range as usize].len() < k
    }

    /// The step of entry `e`: the learning rate its worker's schedule gave
    /// its clock (so every replica applies the same step whatever live
    /// changes it has heard of).
    pub(super) fn learning_rate(&self, e: &Entry) -> f32 {
        let lr = e.push().map_or(0.0, |p| p.lr);
        if self.cfg.bugs.has(Bug::GradientAscent) {
            -lr
        } else {
            lr
        }
    }

    pub(super) fn on_chain_push(
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
            // A gap: the sender re-sends in order — or, if a replica that
            // has left the chain acknowledged the entries between, it no
            // longer holds them and repairs us with a snapshot.
            out.push(Command::Send {
                to: from,
                msg: Message::ChainGap {
                    epoch: self.view.epoch,
                    range,
                    have: rep.log_index,
                },
            });
            return;
        }
        self.apply_entry(range, e, out);
    }

    pub(super) fn on_chain_ack(
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
            l.acked = l.acked.max(upto);
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
            self.release_held(range, out);
            return;
        }
        if succ != Some(from) || epoch != self.view.epoch {
            return;
        }
        rep.out.retain(|&i, _| i > upto);
        if let Some(floor) = rep.succ_floor {
            rep.succ_floor = (upto.max(floor) < rep.log_index).then_some(upto.max(floor));
        }
        if let Some(p) = pred {
            out.push(chain_ack(p, self.view.epoch, range, rep.acked_upto()));
        }
    }

    /// Our successor holds only `have` entries and we sent it a later one:
    /// if we no longer hold the entries between (a replica that left the
    /// chain acknowledged them), send it our whole state, as to a learner.
    pub(super) fn on_chain_gap(
        &mut self,
        now: Duration,
        from: NodeId,
        epoch: Epoch,
        range: RangeId,
        have: u64,
        out: &mut Vec<Command>,
    ) {
        let succ = self.view.neighbours(range, self.id).and_then(|(_, s)| s);
        if succ != Some(from) || epoch != self.view.epoch {
            return;
        }
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let first = rep
            .out
            .first_key_value()
            .map_or(rep.log_index + 1, |(&i, _)| i);
        if have + 1 >= first {
            return; // We still hold what it lacks: the resend fills it.
        }
        // At most one repair per heartbeat period and successor.
        if rep
            .repairs
            .get(&from)
            .is_some_and(|&t| now.saturating_sub(t) < self.cfg.heartbeat_interval)
        {
            return;
        }
        rep.repairs.insert(from, now);
        let state = rep.state();
        self.send_snapshot(from, range, 0, state, out);
    }

    /// Re-sends what is unacknowledged: entries to successors and learners,
    /// snapshot requests and join reports.
    pub(super) fn resend(&mut self, out: &mut Vec<Command>) {
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
        // A source silent this long while we ack every heartbeat has
        // dropped us as a learner (or is cut off): copy again (the copy
        // held is kept as a fallback until the new one arrives).
        let patience = self.cfg.heartbeat_timeout * 2;
        let now = self.now;
        let stale: Vec<RangeId> = self
            .joining
            .iter()
            .filter(|(_, j)| j.replica.is_some() && now.saturating_sub(j.heard) > patience)
            .map(|(&r, _)| r)
            .collect();
        for r in stale {
            let j = self.joining.get_mut(&r).expect("listed");
            let copy = j.replica.take().expect("installed");
            j.ready = false;
            j.buffered.clear();
            j.heard = now;
            self.fallbacks.insert(r, copy);
        }
        for (&r, j) in &mut self.joining {
            match &j.replica {
                None => {
                    self.next_req += 1;
                    j.req = self.next_req;
                    reqs.push((j.source, r, j.req));
                }
                Some(rep) => {
                    if j.ready {
                        out.push(Command::Send {
                            to: NodeId::Coordinator,
                            msg: Message::JoinReady {
                                range: r,
                                from: j.source,
                                session: j.session,
                                schedule: self.changes.len() as u64,
                                membership: rep.members().version,
                            },
                        });
                    }
                    // Tell the source how far we are (it answers `CaughtUp`),
                    // also once ready: a learner silent for long is dropped
                    // and would miss the entries (a membership) the
                    // coordinator waits for before it appends it.
                    out.push(chain_ack(j.source, epoch, r, rep.log_index));
                }
            }
        }
        for (source, range, req) in reqs {
            out.push(Command::Send {
                to: source,
                msg: Message::SnapshotReq { range, req },
            });
        }
    }
}

/// The `push_applied` event of entry `e`, if it is a push.
pub(super) fn applied_event(server: NodeId, range: RangeId, e: &Entry) -> Option<Event> {
    match e.op {
        Op::Push(ref p) => Some(Event::PushApplied {
            server,
            range,
            worker: p.worker,
            seq: p.seq,
            clock: p.clock,
            index: Some(e.index),
        }),
        Op::Widen { change, level } => Some(Event::RangeWidened {
            server,
            range,
            change,
            level,
            index: e.index,
        }),
        Op::Membership(_) => None,
    }
}

/// The tail's acknowledgement of entry `e` to its worker, if it is a push.
pub(super) fn push_ack(range: RangeId, e: &Entry) -> Option<Command> {
    e.push().map(|p| Command::Send {
        to: NodeId::Worker(p.worker),
        msg: Message::PushAck {
            range,
            seq: p.seq,
            clock: p.clock,
        },
    })
}

pub(super) fn chain_push(to: NodeId, epoch: Epoch, range: RangeId, e: &Entry) -> Command {
    Command::Send {
        to,
        msg: Message::ChainPush {
            epoch,
            range,
            entry: e.clone(),
        },
    }
}

pub(super) fn chain_ack(to: NodeId, epoch: Epoch, range: RangeId, upto: u64) -> Command {
    Command::Send {
        to,
        msg: Message::ChainAck { epoch, range, upto },
    }
}
