//! The coordinator: failure detection and membership.
//!
//! One concern per file:
//! - `mod.rs` (here): the [`Coordinator`], its durable state
//!   ([`CoordinatorState`]), the dispatch of messages and timers (the
//!   failure check: workers and servers not heard from, changes not
//!   prepared in time), persisting, publishing, broadcasting.
//! - `membership.rs`: worker heartbeats, removal and admissions.
//! - `views.rs`: server heartbeats and publishing views.
//! - `sessions.rs`: catch-up sessions (who copies which range from whom).
//! - `changes.rs`: live changes (prepare, commit).
//!
//! - **Durable state.** Membership and view are persisted on every change;
//!   a restarted coordinator recovers them and never reuses or lowers a
//!   version. While it is down, training continues on the current
//!   membership; no one is removed or admitted.
//!
//! May import: `crate::core` (its sibling modules), std, serde (derives
//! of the durable state) only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the coordinator does no I/O of its own.

use super::config::{Change, ProtocolConfig};
use super::event::Event;
use super::ids::{Clock, NodeId, RangeId, WorkerId};
use super::msg::Message;
use super::view::{Member, Membership, View};
use super::{Command, Durable, Timer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod changes;
mod membership;
mod sessions;
mod views;

use changes::Preparing;
use membership::Admission;

/// What the coordinator last heard from a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Incarnation heard from.
    pub incarnation: u32,
    /// Clock it reported.
    pub clock: Clock,
    /// Whether it reported having finished.
    pub done: bool,
    /// When it was last heard from.
    pub last_seen: Duration,
    /// Whether `clock` was heard in this life of the coordinator (after a
    /// restart, statuses are placeholders until the first heartbeat).
    pub heard: bool,
}

/// A server's membership acknowledgement: the version all its replicas
/// have applied, and per worker the most clocks they hold of it (life,
/// clocks).
type Report = (u64, BTreeMap<WorkerId, (u32, Clock)>);

/// What the coordinator keeps on durable storage (serialized by a real
/// host's store, `net::store`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorState {
    /// The membership.
    pub membership: Membership,
    /// The view.
    pub view: View,
    /// Per worker, its last admission (members or not): a life is never
    /// re-admitted at a lower clock than before, since servers may already
    /// count its clocks up to there.
    pub admitted: BTreeMap<WorkerId, Member>,
    /// Catch-up sessions issued so far (never reused).
    pub sessions: u64,
    /// Live changes committed, in order: (boundary, change).
    pub changes: Vec<(Clock, Change)>,
    /// Prepare attempts made so far (never reused).
    pub attempts: u64,
    /// Per server: bounds on the read-lease ceilings granted to it
    /// (written before any lease exceeds them: a restarted coordinator
    /// still knows what servers may have served, see
    /// `Coordinator::grant_lease`).
    pub ceilings: BTreeMap<u32, LeaseBound>,
}

/// The coordinator's durable record of one server's read leases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBound {
    /// The life `bound` was written for.
    pub life: u32,
    /// At or above every ceiling granted to that life.
    pub bound: Clock,
    /// At or above every ceiling granted to any earlier life (a dead life
    /// served reads up to its ceiling, and no report of a later life
    /// covers them).
    pub earlier: Clock,
}

impl LeaseBound {
    /// The highest clock the server may have served reads at that a
    /// report from life `reported` (if any) does not cover. `granted` is
    /// the coordinator's in-memory ceiling (life, clock): at or above
    /// every ceiling that life was granted (it starts from `bound` after
    /// a restart), and tighter than `bound`.
    pub fn uncovered(&self, reported: Option<u32>, granted: Option<(u32, Clock)>) -> Clock {
        if reported == Some(self.life) {
            return self.earlier;
        }
        let current = match granted {
            Some((life, c)) if life == self.life => c,
            _ => self.bound,
        };
        current.max(self.earlier)
    }
}

/// The coordinator node.
#[derive(Debug)]
pub struct Coordinator {
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    workers: BTreeMap<WorkerId, WorkerStatus>,
    /// Per server: when last heard from, and the membership version its
    /// replicas have applied.
    servers: BTreeMap<u32, (Duration, u64)>,
    /// Per server: its last membership acknowledgement — the version its
    /// replicas have applied and, per worker, the most clocks they hold of
    /// it (life, clocks).
    reports: BTreeMap<u32, Report>,
    pending: BTreeMap<WorkerId, Admission>,
    /// Per server: the ceiling of the last read lease granted (it may
    /// answer reads up to it until the lease expires), and its life.
    ceilings: BTreeMap<u32, (u32, Clock)>,
    /// The durable bounds on `ceilings` (see `CoordinatorState::ceilings`).
    ceiling_bounds: BTreeMap<u32, LeaseBound>,
    /// Per server: the fallback copies it reported (range, log position).
    fallbacks: BTreeMap<u32, Vec<(RangeId, u64)>>,
    /// The highest clock a read was reported waiting for (leases: the
    /// ceiling runs ahead of it as of the fastest worker).
    wanted: Clock,
    admitted: BTreeMap<WorkerId, Member>,
    /// Catch-ups under way: (range, server) -> (source, when asked, session).
    catch_ups: BTreeMap<(RangeId, u32), (NodeId, Duration, u64)>,
    next_session: u64,
    changes: Vec<(Clock, Change)>,
    attempts: u64,
    preparing: Option<Preparing>,
}

impl Coordinator {
    /// The coordinator of a fresh job, or one recovering `state` from
    /// durable storage after a crash.
    pub fn new(cfg: Arc<ProtocolConfig>, state: Option<CoordinatorState>) -> Coordinator {
        let state = state.unwrap_or_else(|| CoordinatorState {
            membership: Membership::initial(cfg.workers),
            view: View::initial(cfg.servers, cfg.replication),
            admitted: BTreeMap::new(),
            sessions: 0,
            changes: Vec::new(),
            attempts: 0,
            ceilings: BTreeMap::new(),
        });
        Coordinator {
            view: state.view,
            membership: state.membership,
            admitted: state.admitted,
            workers: BTreeMap::new(),
            servers: BTreeMap::new(),
            reports: BTreeMap::new(),
            pending: BTreeMap::new(),
            ceilings: state
                .ceilings
                .iter()
                .map(|(&s, b)| (s, (b.life, b.bound)))
                .collect(),
            ceiling_bounds: state.ceilings,
            fallbacks: BTreeMap::new(),
            wanted: Clock(0),
            catch_ups: BTreeMap::new(),
            next_session: state.sessions,
            changes: state.changes,
            attempts: state.attempts,
            preparing: None,
            cfg,
        }
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The current membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Per worker, what was last heard.
    pub fn workers(&self) -> &BTreeMap<WorkerId, WorkerStatus> {
        &self.workers
    }

    /// Starts the failure detector. Every member gets a full timeout of
    /// grace from now (a fresh start, or a recovery after a crash).
    pub fn on_start(&mut self, now: Duration, out: &mut Vec<Command>) {
        for (&w, m) in &self.membership.members {
            self.workers.insert(
                w,
                WorkerStatus {
                    incarnation: m.incarnation,
                    clock: m.start_clock,
                    done: false,
                    last_seen: now,
                    heard: false,
                },
            );
        }
        for s in 0..self.cfg.servers {
            // Grace for every server too; version 0 until it reports.
            self.servers.insert(s, (now, 0));
        }
        self.arm(out);
        self.arm_change(now, out);
    }

    fn arm(&self, out: &mut Vec<Command>) {
        out.push(Command::SetTimer {
            timer: Timer::FailureCheck,
            after: self.cfg.heartbeat_interval,
        });
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
            Message::WorkerHeartbeat {
                worker,
                incarnation,
                clock,
                joining,
                epoch,
                done,
            } => {
                if epoch < self.view.epoch {
                    // It missed a view (lost on the way): send it again.
                    out.push(Command::Send {
                        to: from,
                        msg: Message::ViewUpdate(self.view.clone()),
                    });
                }
                self.on_worker_heartbeat(now, worker, incarnation, clock, joining, done, out)
            }
            Message::ServerHeartbeat {
                epoch,
                membership,
                sent,
                incarnation,
                held,
                schedule,
                fallback,
                wants,
            } => {
                if let Some(s) = from.server() {
                    self.fallbacks.insert(s, fallback);
                    self.wanted = self.wanted.max(wants);
                    // Live changes it missed go first (on the same link as
                    // a catch-up below, so they arrive before it).
                    self.send_changes(from, schedule, out);
                    self.on_server_heartbeat(now, s, epoch, membership, &held, out);
                    self.grant_lease(now, s, incarnation, sent, out);
                }
            }
            Message::JoinReady {
                range,
                from: source,
                session,
                schedule,
                membership,
            } => {
                if let Some(s) = from.server() {
                    if schedule < self.changes.len() as u64 || self.preparing.is_some() {
                        // It must hold every live change (and none may be
                        // half-way) before it serves reads as a tail.
                        self.send_changes(from, schedule, out);
                        return;
                    }
                    if membership < self.membership.version {
                        // And its copy must count the current membership:
                        // admissions completed without it (it was not in
                        // the view). The entry comes down from its source;
                        // the server learns the version too.
                        self.send_membership(from, out);
                        return;
                    }
                    self.on_join_ready(now, s, range, source, session, out);
                }
            }
            Message::Prepared {
                k,
                attempt,
                max_clock,
                incarnation,
            } => {
                if let Some(s) = from.server() {
                    self.on_prepared(now, k, attempt, s, (max_clock, incarnation), out);
                }
            }
            Message::MembershipAck { version, done } => {
                if let Some(s) = from.server() {
                    let entry = self.servers.entry(s).or_insert((now, 0));
                    entry.0 = now;
                    entry.1 = version;
                    // Messages between two nodes arrive in order: the last
                    // report is the current one (lower after a restart).
                    let done = done.into_iter().map(|(w, inc, d)| (w, (inc, d)));
                    self.reports.insert(s, (version, done.collect()));
                    self.complete_admissions(out);
                }
            }
            _ => {}
        }
    }

    /// Answers a heartbeat of server `s` (sent at its time `sent`) with a
    /// read lease, if it is in the view (`read_leases`). The ceiling runs
    /// ahead of the fastest worker heard of by the clocks two leases' time
    /// takes at the run's pace so far, plus twice the bound: reads stall on
    /// it only if workers speed up sharply. While a live change is being
    /// prepared, the lease carries the `Prepare` to a server that has not
    /// fenced yet.
    fn grant_lease(
        &mut self,
        now: Duration,
        s: u32,
        incarnation: u32,
        sent: Duration,
        out: &mut Vec<Command>,
    ) {
        if !self.cfg.read_leases || !self.view.servers().contains(&NodeId::Server(s)) {
            return;
        }
        // The fastest worker heard of: from its heartbeats, or from a read
        // of it a server holds (a run whose clocks outpace the heartbeats).
        let fastest = self
            .workers
            .values()
            .map(|w| w.clock.0)
            .max()
            .unwrap_or(0)
            .max(self.wanted.0);
        let lease = self
            .cfg
            .heartbeat_timeout
            .saturating_sub(self.cfg.heartbeat_interval);
        let pace = f64::from(fastest) / now.as_secs_f64().max(1e-3);
        let ahead = (pace * 2.0 * lease.as_secs_f64()).ceil() as u32;
        let slack = 2 * (self.cfg.default_bound.max(self.max_bound()) + 1) + 2;
        let ceiling = Clock(fastest.saturating_add(ahead).saturating_add(slack));
        // Never below what this life of the server was granted before.
        let ceiling = match self.ceilings.get(&s) {
            Some(&(inc, c)) if inc == incarnation => c.max(ceiling),
            _ => ceiling,
        };
        // Write ahead: the durable bound covers every ceiling granted (in
        // steps of `slack + ahead` clocks, so it is rarely written); an
        // earlier life's bound moves to `earlier`, for good.
        let old = self.ceiling_bounds.get(&s).copied();
        if old.is_none_or(|b| b.life != incarnation || b.bound < ceiling) {
            let earlier = old.map_or(Clock(0), |b| {
                if b.life == incarnation {
                    b.earlier
                } else {
                    b.bound.max(b.earlier)
                }
            });
            let bound = LeaseBound {
                life: incarnation,
                bound: Clock(ceiling.0.saturating_add(slack + ahead)),
                earlier,
            };
            self.ceiling_bounds.insert(s, bound);
            self.persist(out);
        }
        self.ceilings.insert(s, (incarnation, ceiling));
        let c = self.ceilings.get(&s).map(|&(_, c)| c).expect("inserted");
        let prepare = self
            .preparing
            .as_ref()
            .filter(|p| !p.prepared.contains_key(&s))
            .map(|p| (p.k, p.attempt));
        out.push(Command::Send {
            to: NodeId::Server(s),
            msg: Message::Lease {
                epoch: self.view.epoch,
                sent,
                ceiling: c,
                prepare,
            },
        });
    }

    /// The largest staleness bound of the schedule and its changes.
    fn max_bound(&self) -> u32 {
        let sched = &self.cfg.schedule;
        let mut b = sched.at(Clock(0)).consistency.bound().unwrap_or(0);
        for (_, ch) in &self.cfg.changes {
            b = b.max(ch.staleness.unwrap_or(0));
        }
        b
    }

    /// Sends `msg` to every server and every worker.
    fn broadcast(&self, msg: &Message, out: &mut Vec<Command>) {
        let nodes = (0..self.cfg.servers)
            .map(NodeId::Server)
            .chain((0..self.cfg.workers).map(NodeId::Worker));
        for to in nodes {
            out.push(Command::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    fn persist(&self, out: &mut Vec<Command>) {
        out.push(Command::Persist(Durable::Coordinator(CoordinatorState {
            membership: self.membership.clone(),
            view: self.view.clone(),
            admitted: self.admitted.clone(),
            sessions: self.next_session,
            changes: self.changes.clone(),
            attempts: self.attempts,
            ceilings: self.ceiling_bounds.clone(),
        })));
    }

    /// Persists the membership and sends it to every server.
    fn publish(&self, out: &mut Vec<Command>) {
        self.persist(out);
        for s in 0..self.cfg.servers {
            self.send_membership(NodeId::Server(s), out);
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, now: Duration, timer: Timer, out: &mut Vec<Command>) {
        if let Timer::Change { k } = timer {
            self.prepare(now, k, out);
            return;
        }
        if timer != Timer::FailureCheck {
            return;
        }
        // A change not prepared by every server in time is abandoned (the
        // fences lift) and tried again.
        if let Some(p) = &self.preparing {
            if now.saturating_sub(p.started) > self.cfg.heartbeat_timeout {
                let (k, attempt) = (p.k, p.attempt);
                self.preparing = None;
                for s in 0..self.cfg.servers {
                    out.push(Command::Send {
                        to: NodeId::Server(s),
                        msg: Message::Abort { k, attempt },
                    });
                }
                self.prepare(now, k, out);
            }
        }
        let dead: Vec<(WorkerId, u32)> = self
            .membership
            .members
            .iter()
            .filter(|_| !self.cfg.bugs.has(super::bugs::Bug::NoRemoval))
            .filter(|(w, _)| {
                self.workers
                    .get(w)
                    .is_none_or(|s| now.saturating_sub(s.last_seen) > self.cfg.heartbeat_timeout)
            })
            .map(|(&w, m)| (w, m.incarnation))
            .collect();
        for &(w, incarnation) in &dead {
            self.membership.members.remove(&w);
            self.pending.remove(&w);
            out.push(Command::Emit(Event::WorkerRemoved {
                worker: w,
                incarnation,
            }));
        }
        // Servers silent for the timeout leave every chain: the next replica
        // of each becomes head or tail.
        let silent: Vec<NodeId> = self
            .view
            .servers()
            .into_iter()
            .filter(|n| n.server().is_some_and(|s| !self.heard(now, s)))
            .collect();
        let mut changed = false;
        for chain in &mut self.view.chains {
            // Silent replicas leave only while a replica of the chain is
            // heard from: with every replica silent there is nothing to fail
            // over to, and the coordinator cannot tell a crashed replica
            // from one whose heartbeats are lost — keeping the wrong one
            // would bring the range back empty. A replica that restarted
            // empty says so in its heartbeat and leaves then.
            if chain.iter().any(|n| !silent.contains(n)) && chain.iter().any(|n| silent.contains(n))
            {
                chain.retain(|n| !silent.contains(n));
                changed = true;
            }
        }
        if changed {
            self.catch_ups
                .retain(|_, (src, _, _)| !silent.contains(src));
            self.recruit_spares(now, out);
            self.publish_view(out);
        }
        if !dead.is_empty() {
            self.membership.version += 1;
            self.publish(out);
        } else if !self.pending.is_empty() {
            // Servers that have not acknowledged a pending admission get the
            // membership again (the update or its ack may have been lost).
            for s in 0..self.cfg.servers {
                if self
                    .reports
                    .get(&s)
                    .is_none_or(|&(v, _)| v < self.membership.version)
                {
                    self.send_membership(NodeId::Server(s), out);
                }
            }
        }
        self.arm(out);
    }
}

#[cfg(test)]
mod tests;
