//! The coordinator: failure detection and membership.
//!
//! - **Removal.** A member worker not heard from for `heartbeat_timeout` is
//!   removed: a new membership version without it is published to every
//!   server, so consistency gates stop waiting for it (`worker_removed`).
//! - **Replacement.** A heartbeat from a newer incarnation of a member
//!   means its old life is dead: the old life is removed
//!   (`worker_removed`) and the new one admitted, in one membership version.
//! - **Admission** (two-phase). A worker that is not a member (restarted
//!   with a new incarnation, or removed while cut off and now back) is
//!   admitted at `start_clock = max(its clock, lowest clock among the other
//!   members)` (members not heard from since a coordinator restart are left
//!   out: their clocks are unknown), and never below an earlier admission
//!   of the same life (servers may count its clocks up to there already): the coordinator publishes the membership with it, waits
//!   until every server acknowledged that version, and only then reports
//!   `worker_admitted` and sends `Admit` to the worker. So no server counts
//!   the worker later than the event says, and no read can be judged against
//!   a membership a server had not seen.
//! - **Durable state.** Membership and view are persisted on every change;
//!   a restarted coordinator recovers them and never reuses or lowers a
//!   version. While it is down, training continues on the current
//!   membership; no one is removed or admitted.

use super::config::{Change, ProtocolConfig};
use super::event::Event;
use super::ids::{Clock, Epoch, NodeId, RangeId, WorkerId};
use super::msg::Message;
use super::view::{Member, Membership, View};
use super::{Command, Durable, Timer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

/// What the coordinator keeps on durable storage.
#[derive(Clone, Debug, PartialEq)]
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
}

/// A live change being prepared.
#[derive(Clone, Debug)]
struct Preparing {
    k: u64,
    attempt: u64,
    started: Duration,
    /// Server -> highest clock it has answered (it is fenced there).
    prepared: BTreeMap<u32, Clock>,
}

/// An admission waiting for servers to acknowledge its membership version.
#[derive(Clone, Copy, Debug)]
struct Admission {
    incarnation: u32,
    start_clock: Clock,
    version: u64,
}

/// The coordinator node.
#[derive(Debug)]
pub struct Coordinator {
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    workers: BTreeMap<WorkerId, WorkerStatus>,
    /// Per server: when last heard from, and the membership version it holds.
    servers: BTreeMap<u32, (Duration, u64)>,
    pending: BTreeMap<WorkerId, Admission>,
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
        });
        Coordinator {
            view: state.view,
            membership: state.membership,
            admitted: state.admitted,
            workers: BTreeMap::new(),
            servers: BTreeMap::new(),
            pending: BTreeMap::new(),
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

    /// Arms the timer of the next live change not yet committed.
    fn arm_change(&self, now: Duration, out: &mut Vec<Command>) {
        let k = self.changes.len();
        if let Some(&(at, _)) = self.cfg.changes.get(k) {
            out.push(Command::SetTimer {
                timer: Timer::Change { k: k as u64 + 1 },
                after: at.saturating_sub(now),
            });
        }
    }

    /// Committed changes from number `after + 1` on: (k, boundary, change).
    fn committed(&self, after: u64) -> Vec<(u64, Clock, Change)> {
        super::config::numbered(&self.changes, after)
    }

    /// Sends `to` the committed changes it lacks (it holds `has`).
    fn send_changes(&self, to: NodeId, has: u64, out: &mut Vec<Command>) {
        for (k, boundary, change) in self.committed(has) {
            out.push(Command::Send {
                to,
                msg: Message::Commit {
                    k,
                    boundary,
                    change,
                },
            });
        }
    }

    /// Starts preparing live change `k`: every server of the view fences
    /// at the highest clock it has answered and says which.
    fn prepare(&mut self, now: Duration, k: u64, out: &mut Vec<Command>) {
        if k != self.changes.len() as u64 + 1 || self.preparing.is_some() {
            return;
        }
        self.attempts += 1;
        let attempt = self.attempts;
        self.persist(out);
        self.preparing = Some(Preparing {
            k,
            attempt,
            started: now,
            prepared: BTreeMap::new(),
        });
        for s in self.view.servers() {
            out.push(Command::Send {
                to: s,
                msg: Message::Prepare { k, attempt },
            });
        }
    }

    fn on_prepared(
        &mut self,
        now: Duration,
        k: u64,
        attempt: u64,
        s: u32,
        max: Clock,
        out: &mut Vec<Command>,
    ) {
        let Some(p) = &mut self.preparing else { return };
        if p.k != k || p.attempt != attempt {
            return;
        }
        p.prepared.insert(s, max);
        let all = self
            .view
            .servers()
            .iter()
            .filter_map(|n| n.server())
            .all(|x| p.prepared.contains_key(&x));
        if !all {
            return;
        }
        // Past every clock any server has answered: no worker can have
        // computed it yet, and none will without hearing of the change
        // (every server holds pulls past its fence until the commit).
        // Also past every clock a worker has said it reached: a server no
        // longer in the view (cut off, removed) may have served it.
        let reported = self
            .workers
            .values()
            .filter(|w| w.heard)
            .map(|w| w.clock)
            .max()
            .unwrap_or(Clock(0));
        let boundary = p
            .prepared
            .values()
            .copied()
            .max()
            .unwrap_or(Clock(0))
            .max(reported)
            .next();
        let change = self.cfg.changes[(k - 1) as usize].1;
        self.changes.push((boundary, change));
        self.preparing = None;
        self.persist(out);
        self.broadcast(
            &Message::Commit {
                k,
                boundary,
                change,
            },
            out,
        );
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
                held,
                schedule,
            } => {
                if let Some(s) = from.server() {
                    // Live changes it missed go first (on the same link as
                    // a catch-up below, so they arrive before it).
                    self.send_changes(from, schedule, out);
                    self.on_server_heartbeat(now, s, epoch, membership, &held, out);
                }
            }
            Message::JoinReady {
                range,
                from: source,
                session,
                schedule,
            } => {
                if let Some(s) = from.server() {
                    if schedule < self.changes.len() as u64 || self.preparing.is_some() {
                        // It must hold every live change (and none may be
                        // half-way) before it serves reads as a tail.
                        self.send_changes(from, schedule, out);
                        return;
                    }
                    let holds = self.servers.get(&s).map_or(0, |&(_, v)| v);
                    if holds < self.membership.version {
                        // And the current membership: admissions completed
                        // without it (it was not in the view).
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
            } => {
                if let Some(s) = from.server() {
                    self.on_prepared(now, k, attempt, s, max_clock, out);
                }
            }
            Message::MembershipAck { version } => {
                if let Some(s) = from.server() {
                    let entry = self.servers.entry(s).or_insert((now, 0));
                    entry.0 = now;
                    entry.1 = version;
                    self.complete_admissions(out);
                }
            }
            _ => {}
        }
    }

    fn on_server_heartbeat(
        &mut self,
        now: Duration,
        s: u32,
        epoch: Epoch,
        membership: u64,
        held: &[RangeId],
        out: &mut Vec<Command>,
    ) {
        if s >= self.cfg.servers {
            return;
        }
        let node = NodeId::Server(s);
        self.servers.insert(s, (now, membership));
        if membership < self.membership.version {
            self.send_membership(node, out);
        }
        let mut changed = false;
        if epoch < self.view.epoch {
            out.push(Command::Send {
                to: node,
                msg: Message::ViewUpdate(self.view.clone()),
            });
        } else if epoch == self.view.epoch {
            // It holds our view but not a range we list it for: it lost
            // it (restarted empty). Take it out of that chain.
            for (r, chain) in self.view.chains.iter_mut().enumerate() {
                if chain.contains(&node) && !held.contains(&(r as RangeId)) {
                    chain.retain(|&x| x != node);
                    changed = true;
                }
            }
            changed |= self.plan_catch_ups(now, s, held, out);
        }
        if changed {
            self.publish_view(out);
        }
        self.complete_admissions(out);
    }

    /// Ranges server `s` should hold (its ranges in the initial placement)
    /// whose chain is short of it: the only replica if the chain is empty,
    /// else a catch-up from the tail.
    fn plan_catch_ups(
        &mut self,
        now: Duration,
        s: u32,
        held: &[RangeId],
        out: &mut Vec<Command>,
    ) -> bool {
        let node = NodeId::Server(s);
        let home: Vec<RangeId> = View::initial(self.cfg.servers, self.cfg.replication)
            .ranges_of(node)
            .map(|(r, _)| r)
            .collect();
        let mut changed = false;
        for r in home {
            let chain = &mut self.view.chains[r as usize];
            if chain.contains(&node)
                || held.contains(&r)
                || chain.len() >= self.cfg.replication as usize
            {
                continue;
            }
            let Some(&tail) = chain.last() else {
                // No replica left: it takes the range up from its checkpoint
                // (or zeros). Sent before the view, on the same link.
                chain.push(node);
                self.catch_ups.remove(&(r, s));
                self.next_session += 1;
                out.push(Command::Send {
                    to: node,
                    msg: Message::CatchUp {
                        range: r,
                        from: None,
                        session: self.next_session,
                        progress: self
                            .workers
                            .iter()
                            .filter(|(_, st)| st.heard)
                            .map(|(&w, st)| (w, st.incarnation, st.clock))
                            .collect(),
                    },
                });
                changed = true;
                continue;
            };
            if self.cfg.bugs.has(super::bugs::Bug::PromoteUncaught) {
                chain.push(node); // Planted bug: in the chain before copying.
                changed = true;
            }
            let session = match self.catch_ups.get(&(r, s)) {
                Some(&(src, at, id)) if src == tail => {
                    if now.saturating_sub(at) < self.cfg.heartbeat_timeout {
                        continue;
                    }
                    id // Asked again, in case the request was lost.
                }
                _ => {
                    self.next_session += 1;
                    self.next_session
                }
            };
            self.catch_ups.insert((r, s), (tail, now, session));
            out.push(Command::Send {
                to: node,
                msg: Message::CatchUp {
                    range: r,
                    from: Some(tail),
                    session,
                    progress: Vec::new(),
                },
            });
        }
        changed
    }

    /// Server `s` holds `range` copied from `source` and follows it: it
    /// becomes the chain's new tail if `source` still is the tail (else the
    /// copy may miss what the old tail acknowledged: catch up again).
    fn on_join_ready(
        &mut self,
        now: Duration,
        s: u32,
        range: RangeId,
        source: NodeId,
        session: u64,
        out: &mut Vec<Command>,
    ) {
        if s >= self.cfg.servers || range >= self.cfg.ranges.ranges() {
            return;
        }
        let node = NodeId::Server(s);
        let chain = &mut self.view.chains[range as usize];
        if chain.contains(&node) {
            out.push(Command::Send {
                to: node,
                msg: Message::ViewUpdate(self.view.clone()),
            });
            return;
        }
        let asked = self
            .catch_ups
            .get(&(range, s))
            .map(|&(src, _, id)| (src, id));
        let source_is_tail = chain.last() == Some(&source) || chain.is_empty();
        if asked == Some((source, session))
            && source_is_tail
            && chain.len() < self.cfg.replication as usize
        {
            chain.push(node);
            self.catch_ups.remove(&(range, s));
            self.publish_view(out);
        } else if asked.is_some_and(|(_, id)| id == session) {
            // Copied from a replica that is no longer the tail: again.
            self.catch_ups.remove(&(range, s));
            self.plan_catch_ups(now, s, &[], out);
        }
    }

    /// Publishes a new view: a higher epoch, persisted, sent to everyone.
    fn publish_view(&mut self, out: &mut Vec<Command>) {
        self.view.epoch = Epoch(self.view.epoch.0 + 1);
        self.persist(out);
        out.push(Command::Emit(Event::View {
            epoch: self.view.epoch,
            chains: self.view.chains.clone(),
        }));
        self.broadcast(&Message::ViewUpdate(self.view.clone()), out);
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
        })));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_worker_heartbeat(
        &mut self,
        now: Duration,
        worker: WorkerId,
        incarnation: u32,
        clock: Clock,
        joining: bool,
        done: bool,
        out: &mut Vec<Command>,
    ) {
        if worker >= self.cfg.workers {
            return;
        }
        if let Some(s) = self.workers.get(&worker) {
            if incarnation < s.incarnation {
                return; // A late heartbeat of an earlier life.
            }
        }
        self.workers.insert(
            worker,
            WorkerStatus {
                incarnation,
                clock,
                done,
                last_seen: now,
                heard: true,
            },
        );
        match self.membership.members.get(&worker) {
            Some(m) if m.incarnation == incarnation => {
                if joining {
                    // Admitted, but the worker missed the Admit: resend.
                    out.push(self.admit_message(worker, m.incarnation, m.start_clock));
                }
            }
            _ => {
                let pending = self
                    .pending
                    .get(&worker)
                    .is_some_and(|a| a.incarnation == incarnation);
                if !pending {
                    self.begin_admission(worker, incarnation, clock, out);
                }
            }
        }
    }

    fn begin_admission(
        &mut self,
        worker: WorkerId,
        incarnation: u32,
        clock: Clock,
        out: &mut Vec<Command>,
    ) {
        let others = self
            .membership
            .members
            .keys()
            .filter(|&&w| w != worker)
            .filter_map(|w| self.workers.get(w).filter(|s| s.heard).map(|s| s.clock))
            .min();
        let floor = self
            .admitted
            .get(&worker)
            .filter(|m| m.incarnation == incarnation)
            .map_or(Clock(0), |m| m.start_clock);
        let start_clock = clock
            .max(others.unwrap_or(clock))
            .min(Clock(self.cfg.clocks))
            .max(floor);
        self.admitted.insert(
            worker,
            Member {
                incarnation,
                start_clock,
            },
        );
        if let Some(s) = self.workers.get_mut(&worker) {
            // Later admissions count it at the clock it is admitted at.
            s.clock = start_clock;
        }
        if let Some(old) = self.membership.members.get(&worker) {
            // A new life of a member: its old life is dead, and stops
            // counting as soon as servers see the new membership.
            out.push(Command::Emit(Event::WorkerRemoved {
                worker,
                incarnation: old.incarnation,
            }));
        }
        self.membership.members.insert(
            worker,
            Member {
                incarnation,
                start_clock,
            },
        );
        self.membership.version += 1;
        self.pending.insert(
            worker,
            Admission {
                incarnation,
                start_clock,
                version: self.membership.version,
            },
        );
        self.publish(out);
        self.complete_admissions(out);
    }

    /// Persists the membership and sends it to every server.
    fn publish(&self, out: &mut Vec<Command>) {
        self.persist(out);
        for s in 0..self.cfg.servers {
            self.send_membership(NodeId::Server(s), out);
        }
    }

    fn send_membership(&self, to: NodeId, out: &mut Vec<Command>) {
        out.push(Command::Send {
            to,
            msg: Message::MembershipUpdate(self.membership.clone()),
        });
    }

    fn admit_message(&self, worker: WorkerId, incarnation: u32, start_clock: Clock) -> Command {
        Command::Send {
            to: NodeId::Worker(worker),
            msg: Message::Admit {
                incarnation,
                start_clock,
                view: self.view.clone(),
                schedule: self.committed(0),
            },
        }
    }

    /// Completes the admissions whose membership every server holds.
    fn complete_admissions(&mut self, out: &mut Vec<Command>) {
        // Servers in the view gate reads; the others hold no replica.
        let acked = self
            .view
            .servers()
            .into_iter()
            .filter_map(|n| n.server())
            .map(|s| self.servers.get(&s).map_or(0, |&(_, v)| v))
            .min()
            .unwrap_or(u64::MAX);
        let done: Vec<WorkerId> = self
            .pending
            .iter()
            .filter(|(_, a)| a.version <= acked)
            .map(|(&w, _)| w)
            .collect();
        for w in done {
            let a = self.pending.remove(&w).expect("listed");
            // The worker may have been removed again meanwhile.
            if self
                .membership
                .members
                .get(&w)
                .is_some_and(|m| m.incarnation == a.incarnation)
            {
                out.push(Command::Emit(Event::WorkerAdmitted {
                    worker: w,
                    incarnation: a.incarnation,
                    clock: a.start_clock,
                }));
                out.push(self.admit_message(w, a.incarnation, a.start_clock));
            }
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
            .filter(|n| {
                n.server().is_some_and(|s| {
                    self.servers.get(&s).is_none_or(|&(seen, _)| {
                        now.saturating_sub(seen) > self.cfg.heartbeat_timeout
                    })
                })
            })
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
                    .servers
                    .get(&s)
                    .is_none_or(|&(_, v)| v < self.membership.version)
                {
                    self.send_membership(NodeId::Server(s), out);
                }
            }
        }
        self.arm(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Bugs, Consistency, Hyper, RangeMap, Schedule};

    fn cfg() -> Arc<ProtocolConfig> {
        Arc::new(ProtocolConfig {
            servers: 2,
            workers: 2,
            replication: 1,
            ranges: RangeMap::new(10, 2),
            clocks: 100,
            schedule: Schedule::constant(Hyper {
                consistency: Consistency::Ssp(1),
                learning_rate: 0.1,
                batch_size: 1,
            }),
            request_timeout: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(50),
            heartbeat_timeout: Duration::from_millis(200),
            checkpoint_every: None,
            changes: Vec::new(),
            default_bound: 3,
            compression: Default::default(),
            bugs: Bugs::NONE,
        })
    }

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn hb(
        c: &mut Coordinator,
        now: u64,
        w: WorkerId,
        inc: u32,
        clock: u32,
        joining: bool,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let msg = Message::WorkerHeartbeat {
            worker: w,
            incarnation: inc,
            clock: Clock(clock),
            joining,
            epoch: Epoch(1),
            done: false,
        };
        c.on_message(ms(now), NodeId::Worker(w), msg, &mut out);
        out
    }

    fn server_hb(c: &mut Coordinator, now: u64, s: u32, held: &[u32]) -> Vec<Command> {
        let mut out = Vec::new();
        let msg = Message::ServerHeartbeat {
            epoch: c.view().epoch,
            membership: c.membership().version,
            held: held.to_vec(),
            schedule: 0,
        };
        c.on_message(ms(now), NodeId::Server(s), msg, &mut out);
        out
    }

    fn replicated() -> Arc<ProtocolConfig> {
        let mut cfg = (*cfg()).clone();
        cfg.servers = 3;
        cfg.replication = 2;
        cfg.ranges = RangeMap::new(30, 3);
        Arc::new(cfg)
    }

    #[test]
    fn a_silent_server_leaves_its_chains_and_a_restarted_one_catches_up_first() {
        let mut c = Coordinator::new(replicated(), None);
        let mut out = Vec::new();
        c.on_start(ms(0), &mut out);
        // Server 1 (head of range 1, backup of range 0) goes silent.
        server_hb(&mut c, 150, 0, &[0, 2]);
        server_hb(&mut c, 150, 2, &[1, 2]);
        out.clear();
        c.on_timer(ms(250), Timer::FailureCheck, &mut out);
        let s = NodeId::Server;
        assert_eq!(c.view().epoch, Epoch(2));
        assert_eq!(
            c.view().chains,
            vec![vec![s(0)], vec![s(2)], vec![s(2), s(0)]]
        );
        assert!(events(&out).iter().any(|e| matches!(e, Event::View { .. })));
        // It comes back empty: asked to copy ranges 0 and 1 from their tails,
        // and not in any chain until it reports having done so.
        let out = server_hb(&mut c, 300, 1, &[]);
        let asked: Vec<(u32, NodeId)> = out
            .iter()
            .filter_map(|c| match c {
                Command::Send {
                    msg: Message::CatchUp { range, from, .. },
                    ..
                } => Some((*range, from.unwrap())),
                _ => None,
            })
            .collect();
        assert_eq!(asked, vec![(0, s(0)), (1, s(2))]);
        assert_eq!(c.view().epoch, Epoch(2));
        let session = |out: &[Command], range: u32| {
            out.iter()
                .find_map(|c| match c {
                    Command::Send {
                        msg:
                            Message::CatchUp {
                                range: r, session, ..
                            },
                        ..
                    } if *r == range => Some(*session),
                    _ => None,
                })
                .unwrap()
        };
        let (s0, s1) = (session(&out, 0), session(&out, 1));
        // A report for an older session is ignored.
        let mut stale = Vec::new();
        let join = |range, from, session| Message::JoinReady {
            range,
            from,
            session,
            schedule: 0,
        };
        c.on_message(ms(310), s(1), join(1, s(2), 0), &mut stale);
        assert_eq!(c.view().chains[1], vec![s(2)]);
        let mut out = Vec::new();
        c.on_message(ms(320), s(1), join(1, s(2), s1), &mut out);
        assert_eq!(c.view().chains[1], vec![s(2), s(1)], "appended as the tail");
        // A copy from a replica that is no longer the tail is refused.
        let mut out = Vec::new();
        c.on_message(ms(330), s(1), join(0, s(2), s0), &mut out);
        assert_eq!(c.view().chains[0], vec![s(0)]);
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Send {
                msg: Message::CatchUp { range: 0, .. },
                ..
            }
        )));
    }

    fn events(out: &[Command]) -> Vec<&Event> {
        out.iter()
            .filter_map(|c| match c {
                Command::Emit(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn silent_workers_are_removed() {
        let mut c = Coordinator::new(cfg(), None);
        let mut out = Vec::new();
        c.on_start(ms(0), &mut out);
        hb(&mut c, 150, 0, 0, 3, false);
        server_hb(&mut c, 150, 0, &[0]);
        server_hb(&mut c, 150, 1, &[1]);
        out.clear();
        c.on_timer(ms(250), Timer::FailureCheck, &mut out);
        assert_eq!(
            events(&out),
            vec![&Event::WorkerRemoved {
                worker: 1,
                incarnation: 0
            }]
        );
        assert!(!c.membership().members.contains_key(&1));
        assert_eq!(c.membership().version, 2);
        assert!(out.iter().any(|c| matches!(c, Command::Persist(_))));
    }

    #[test]
    fn a_restarted_worker_is_admitted_only_after_every_server_acknowledged() {
        let mut c = Coordinator::new(cfg(), None);
        let mut out = Vec::new();
        c.on_start(ms(0), &mut out);
        hb(&mut c, 10, 0, 0, 7, false);
        let out = hb(&mut c, 20, 1, 1, 0, true);
        assert_eq!(
            events(&out),
            vec![&Event::WorkerRemoved {
                worker: 1,
                incarnation: 0
            }],
            "the old life goes at once; no admission before the servers hold it"
        );
        let v = c.membership().version;
        assert_eq!(
            c.membership().members[&1],
            Member {
                incarnation: 1,
                start_clock: Clock(7)
            }
        );
        let mut out = Vec::new();
        c.on_message(
            ms(30),
            NodeId::Server(0),
            Message::MembershipAck { version: v },
            &mut out,
        );
        assert!(events(&out).is_empty());
        c.on_message(
            ms(31),
            NodeId::Server(1),
            Message::MembershipAck { version: v },
            &mut out,
        );
        assert_eq!(
            events(&out),
            vec![&Event::WorkerAdmitted {
                worker: 1,
                incarnation: 1,
                clock: Clock(7)
            }]
        );
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Send {
                to: NodeId::Worker(1),
                msg: Message::Admit {
                    start_clock: Clock(7),
                    ..
                }
            }
        )));
    }

    #[test]
    fn a_recovered_coordinator_keeps_its_versions() {
        let mut c = Coordinator::new(cfg(), None);
        let mut out = Vec::new();
        c.on_start(ms(0), &mut out);
        c.on_timer(ms(500), Timer::FailureCheck, &mut out);
        let state = out
            .iter()
            .rev()
            .find_map(|c| match c {
                Command::Persist(Durable::Coordinator(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap();
        let again = Coordinator::new(cfg(), Some(state));
        assert_eq!(again.membership().version, c.membership().version);
        assert!(again.membership().members.is_empty());
    }
}
