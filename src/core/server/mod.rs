//! The server state machine: holds replicas of key ranges, replicates
//! pushes down each range's chain, applies them exactly once (SGD on the
//! server), and answers pulls when the consistency gate allows.
//!
//! One concern per file:
//! - `mod.rs` (here): the [`Server`] itself, construction, heartbeats,
//!   checkpoints, and the dispatch of messages and timers, with the
//!   epoch check of worker requests (below).
//! - `replica.rs`: one replica of a key range ([`Replica`]): parameters,
//!   clock table, dedup table, applying an entry, reading, digests.
//! - `chain.rs`: chain replication: pushes, entries down the chain,
//!   acknowledgements up, re-sending what is unacknowledged.
//! - `catch_up.rs`: joining a chain as a learner, and serving learners.
//! - `views.rs`: new views and new memberships.
//! - `changes.rs`: live changes: the fence (`Prepare`) and `Commit`.
//! - `serve.rs`: pulls: the consistency gate and the answers (with the
//!   pull filter).
//!
//! **Epochs.** Requests carry the sender's view epoch. A worker request
//! from an older epoch is answered with the current view (a redirect); a
//! chain message from another epoch is dropped (its sender re-sends once it
//! holds the same view); a request from a newer epoch is dropped until this
//! server learns the view (its heartbeat fetches it).
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::bugs::Bug;
use super::codec::Payload;
use super::config::{Change, ProtocolConfig, Schedule};
use super::event::Event;
use super::ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
use super::msg::{Keys, Message, RangeState};
use super::view::{Membership, View};
use super::{Command, Durable, Timer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod catch_up;
mod chain;
mod changes;
mod replica;
mod serve;
mod views;

use catch_up::Joining;
pub use replica::{push_hash, Replica};
use serve::PendingPull;

/// A server node.
#[derive(Debug)]
pub struct Server {
    id: NodeId,
    /// Life number (0 at the start of the job), for unique snapshot ids.
    incarnation: u32,
    /// Snapshots taken in this life.
    snapshots: u64,
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    replicas: BTreeMap<RangeId, Replica>,
    joining: BTreeMap<RangeId, Joining>,
    /// Copies of ranges whose chain this server left (it was suspected
    /// and removed): not replicas — they serve nothing and have no `final`
    /// — but the best state there is if the range loses every replica. The
    /// coordinator then reinstates one through a view (`CatchUp` without
    /// a source). Discarded once the range's chain is full again.
    fallbacks: BTreeMap<RangeId, Replica>,
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
    /// The time of the input being handled.
    now: Duration,
    /// The read lease (`read_leases`): valid until this server's time
    /// `.0`, while its view is at epoch `.1` or later, for clocks up to
    /// `.2`.
    lease: Option<(Duration, Epoch, Clock)>,
    /// When this server last asked for a lease out of turn (a read waits
    /// past its lease's ceiling or expiry), until the lease comes.
    lease_asked: Option<Duration>,
}

/// A push waiting for a live change: sender, range, worker, seq, clock,
/// keys, values.
type HeldPush = (NodeId, RangeId, WorkerId, Seq, Clock, Keys, Payload);

impl Server {
    /// Server `index` of a fresh job: holds replicas of its ranges in the
    /// initial view, at the job's initial values.
    pub fn new(index: u32, cfg: Arc<ProtocolConfig>) -> Server {
        let mut s = Server::restarted(index, 0, cfg, None);
        s.replicas = s
            .view
            .ranges_of(s.id)
            .map(|(r, _)| (r, Replica::new(r, &s.cfg, &s.membership)))
            .collect();
        s
    }

    /// Server `index` in life `incarnation` after a restart: memory lost,
    /// holding nothing until the coordinator gives it ranges; `durable` is
    /// what it checkpointed.
    pub fn restarted(
        index: u32,
        incarnation: u32,
        cfg: Arc<ProtocolConfig>,
        durable: Option<Durable>,
    ) -> Server {
        let checkpoints = match durable {
            Some(Durable::Server(c)) => c,
            _ => BTreeMap::new(),
        };
        Server {
            id: NodeId::Server(index),
            incarnation,
            snapshots: 0,
            view: View::initial(cfg.servers, cfg.replication),
            membership: Membership::initial(cfg.workers),
            replicas: BTreeMap::new(),
            joining: BTreeMap::new(),
            fallbacks: BTreeMap::new(),
            checkpoints,
            next_req: 0,
            changes: Vec::new(),
            schedule: cfg.schedule.clone(),
            fence: None,
            max_answered: Clock(0),
            held_pushes: Vec::new(),
            now: Duration::ZERO,
            lease: None,
            lease_asked: None,
            cfg,
        }
    }

    /// The widening level in force at `clock` under the changes
    /// committed here.
    fn level_at(&self, clock: Clock) -> u32 {
        if self.cfg.widen.levels() == 0 {
            return 0;
        }
        crate::core::widen::Plan::level_at(&self.changes, clock)
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
    pub fn on_start(&mut self, now: Duration, out: &mut Vec<Command>) {
        self.now = now;
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
        self.now = now;
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
        self.report(out);
        out.push(Command::SetTimer {
            timer: Timer::Heartbeat,
            after: self.cfg.heartbeat_interval,
        });
    }

    /// A heartbeat's report to the coordinator (it answers with a lease).
    pub(super) fn report(&self, out: &mut Vec<Command>) {
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::ServerHeartbeat {
                epoch: self.view.epoch,
                membership: self.applied_membership(),
                sent: self.now,
                incarnation: self.incarnation,
                held: self.replicas.keys().copied().collect(),
                schedule: self.changes.len() as u64,
                // A copy installed but not yet serving is as good a
                // fallback (it replaced the fallback when it arrived).
                fallback: self
                    .fallbacks
                    .iter()
                    .map(|(&r, rep)| (r, rep))
                    .chain(self.installed_copies())
                    .map(|(r, rep)| (r, rep.log_index))
                    .collect(),
                wants: self
                    .replicas
                    .values()
                    .flat_map(|rep| rep.pending.iter().map(|p| p.clock))
                    .max()
                    .unwrap_or(Clock(0)),
            },
        });
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
        self.now = now;
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
            Message::ChainGap { epoch, range, have } => {
                self.on_chain_gap(now, from, epoch, range, have, out)
            }
            Message::SnapshotReq { range, req } => self.on_snapshot_req(now, from, range, req, out),
            Message::CaughtUp { range } => {
                if let Some(j) = self.joining.get_mut(&range) {
                    if j.source == from {
                        j.heard = now;
                    }
                    if let (true, Some(rep)) = (j.source == from && !j.ready, &j.replica) {
                        j.ready = true;
                        out.push(Command::Send {
                            to: NodeId::Coordinator,
                            msg: Message::JoinReady {
                                range,
                                from,
                                session: j.session,
                                schedule: self.changes.len() as u64,
                                membership: rep.members().version,
                            },
                        });
                    }
                }
            }
            Message::Snapshot {
                range,
                req,
                id,
                state,
            } => self.on_snapshot(from, range, req, id, &state, out),
            Message::CatchUp {
                range,
                from: source,
                session,
                progress,
            } => self.on_catch_up(range, source, session, &progress, out),
            Message::MembershipUpdate(m) => self.on_membership(m, out),
            Message::Lease {
                epoch,
                sent,
                ceiling,
                prepare,
            } => self.on_lease(epoch, sent, ceiling, prepare, out),
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
}
