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
//! Here: both sides of a copy. The joining server ([`Joining`]):
//! `CatchUp` (or, with no live replica left, taking the range up from a
//! checkpoint or the initial values), the snapshot, entries forwarded to it as a
//! learner (`learn`). The source: a snapshot request registers a
//! [`Learner`]. (Forwarding entries to learners and their
//! acknowledgements are in `chain.rs`; `CaughtUp` is handled in
//! `mod.rs`.)
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::chain::{applied_event, chain_ack};
use super::{Replica, Server};
use crate::core::event::Event;
use crate::core::ids::{Clock, NodeId, RangeId, WorkerId};
use crate::core::msg::{Entry, Message, Op, RangeState};
use crate::core::Command;
use std::collections::BTreeMap;
use std::time::Duration;

/// A range this server is copying (it is a learner of `source`).
#[derive(Clone, Debug)]
pub(super) struct Joining {
    pub(super) source: NodeId,
    /// The coordinator's `CatchUp` session.
    pub(super) session: u64,
    pub(super) req: u64,
    /// Installed once the snapshot arrived.
    pub(super) replica: Option<Replica>,
    /// Entries forwarded before the snapshot arrived.
    pub(super) buffered: BTreeMap<u64, Entry>,
    /// The source saw us hold everything it held (`CaughtUp`).
    pub(super) ready: bool,
    /// When the source last answered (a snapshot, an entry, `CaughtUp`).
    pub(super) heard: Duration,
}

/// A server copying one of this server's replicas.
#[derive(Clone, Debug)]
pub(super) struct Learner {
    /// Its snapshot request (a lower one is stale).
    pub(super) req: u64,
    /// Entries forwarded that it has not acknowledged.
    pub(super) out: BTreeMap<u64, Entry>,
    /// When it last acknowledged (a learner silent for long is dropped).
    pub(super) since: Duration,
    /// The furthest log index it acknowledged holding.
    pub(super) acked: u64,
    /// Whether it has been seen caught up (`catch_up` emitted).
    pub(super) announced: bool,
}

impl Server {
    /// An entry forwarded to this server as a learner of `range`.
    pub(super) fn learn(&mut self, from: NodeId, range: RangeId, e: Entry, out: &mut Vec<Command>) {
        let lr = self.learning_rate(&e);
        let id = self.id;
        let epoch = self.view.epoch;
        let now = self.now;
        let j = self.joining.get_mut(&range).expect("checked");
        j.heard = now;
        let Some(rep) = &mut j.replica else {
            j.buffered.insert(e.index, e);
            return;
        };
        let membership = matches!(e.op, Op::Membership(_));
        let next = e.index == rep.log_index + 1;
        if next && rep.apply(&e, lr, &self.cfg) {
            out.extend(applied_event(id, range, &e).map(Command::Emit));
        }
        out.push(chain_ack(from, epoch, range, rep.log_index));
        // A copy about to become a replica counts in what this server
        // acknowledges of the membership (`ack_membership`).
        if next && membership {
            self.membership_applied(out);
        }
    }

    pub(super) fn on_catch_up(
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
            // is; else the copy kept when it left the chain (the coordinator
            // asks the server with the furthest one); else the last
            // checkpoint; else the job's initial values (what the range
            // held is lost, and counted).
            let keys = self.cfg.ranges.keys(range);
            // A finished copy and a fallback never coexist: installing a
            // snapshot discards the fallback.
            let copy = self.joining.remove(&range).and_then(|j| j.replica);
            let fallback = self.fallbacks.remove(&range);
            let rep = match (copy, fallback) {
                (Some(rep), _) => rep,
                (None, Some(mut rep)) => {
                    // Its copy from before it left the chain: everything the
                    // chain had acknowledged then. Pulls may vouch for
                    // progress it lacks, as after a restore.
                    rep.adopt(&self.membership);
                    for &(w, inc, clock) in progress {
                        rep.table.record_progress(w, inc, clock);
                    }
                    rep.lost_history = true;
                    rep
                }
                (None, None) => {
                    let mut rep = match self.checkpoints.get(&range) {
                        Some(c) => {
                            out.push(Command::Emit(Event::Restore {
                                server: self.id,
                                range,
                            }));
                            Replica::from_state(range, keys, c)
                        }
                        None => Replica::new(range, &self.cfg, &self.membership),
                    };
                    rep.adopt(&self.membership);
                    for &(w, inc, clock) in progress {
                        rep.table.record_progress(w, inc, clock);
                    }
                    rep.lost_history = true;
                    rep
                }
            };
            self.replicas.insert(range, rep);
            self.log_membership(range, out);
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
        // stopped following its source. Until the new snapshot arrives, the
        // older copy is kept as a fallback: it may be the furthest there is.
        if let Some(rep) = self.joining.remove(&range).and_then(|j| j.replica) {
            self.fallbacks.insert(range, rep);
        }
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
                heard: self.now,
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

    pub(super) fn on_snapshot_req(
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
                acked: 0,
                announced: false,
            },
        );
        let state = rep.state();
        self.send_snapshot(from, range, req, state, out);
    }

    /// Sends `state` of `range` to `to` as snapshot `req` (0: a chain-gap
    /// repair), under a fresh id, and records `snapshot_sent`.
    pub(super) fn send_snapshot(
        &mut self,
        to: NodeId,
        range: RangeId,
        req: u64,
        state: RangeState,
        out: &mut Vec<Command>,
    ) {
        self.snapshots += 1;
        let id = format!("{}.{}.{}", self.id, self.incarnation, self.snapshots);
        out.push(Command::Emit(Event::SnapshotSent {
            server: self.id,
            range,
            to,
            id: id.clone(),
        }));
        out.push(Command::Send {
            to,
            msg: Message::Snapshot {
                range,
                req,
                id,
                state,
            },
        });
    }

    pub(super) fn on_snapshot(
        &mut self,
        from: NodeId,
        range: RangeId,
        req: u64,
        id: String,
        state: &RangeState,
        out: &mut Vec<Command>,
    ) {
        let keys = self.cfg.ranges.keys(range);
        if req == 0 {
            self.on_repair(from, range, id, state, out);
            return;
        }
        let Some(j) = self.joining.get(&range) else {
            return;
        };
        if j.source != from || j.req != req || j.replica.is_some() {
            return;
        }
        // The copy replaces any fallback kept of the range.
        self.drop_fallback(range, out);
        let j = self.joining.get_mut(&range).expect("checked");
        // The membership comes with the state and, after it, in the log.
        j.replica = Some(Replica::from_state(range, keys, state));
        j.heard = self.now;
        let buffered = std::mem::take(&mut j.buffered);
        out.push(Command::Emit(Event::SnapshotInstalled {
            server: self.id,
            range,
            from,
            id,
        }));
        for (_, e) in buffered {
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

    /// A repair from our predecessor (`ChainGap`): it no longer held
    /// entries we lacked. Its state holds everything ours does and more:
    /// it replaces ours.
    fn on_repair(
        &mut self,
        from: NodeId,
        range: RangeId,
        id: String,
        state: &RangeState,
        out: &mut Vec<Command>,
    ) {
        let pred = self.view.neighbours(range, self.id).and_then(|(p, _)| p);
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        if pred != Some(from) || state.log_index <= rep.log_index {
            return;
        }
        let keys = self.cfg.ranges.keys(range);
        let mut fresh = Replica::from_state(range, keys, state);
        let old = self.replicas.remove(&range).expect("held");
        let old_acked = old.acked_upto();
        // What waits here keeps waiting; what we owe our successor is in
        // the new state (it may need a repair of its own).
        fresh.pending = old.pending;
        fresh.learners = old.learners;
        let succ = self.view.neighbours(range, self.id).and_then(|(_, s)| s);
        if succ.is_some() {
            fresh.succ_floor = Some(old_acked);
        }
        self.replicas.insert(range, fresh);
        out.push(Command::Emit(Event::SnapshotInstalled {
            server: self.id,
            range,
            from,
            id,
        }));
        let epoch = self.view.epoch;
        let log_index = self.replicas[&range].log_index;
        if succ.is_none() {
            // The tail: what it now holds is on every replica.
            out.push(chain_ack(from, epoch, range, log_index));
        }
        self.serve_pending(range, out);
    }
}
