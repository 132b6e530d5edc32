//! The simulated world: every node's slot (its protocol state machine and
//! inbox), the network, the compute model and the run's collector, behind
//! one lock. madsim runs one task at a time, so the lock is never
//! contended; it exists because madsim node tasks must be `Send`.
//!
//! May import: `crate::core`, `crate::run`, `super` (sim), madsim. Never:
//! `crate::net`.

use super::by_id::ById;
use super::compute::ComputeModel;
use super::inbox::{Inbox, Item};
use super::net::{Delivery, Fate, Network};
use crate::core::{
    Bug, Command, Coordinator, Durable, Event, Job, Message, Node, NodeId, ProtocolConfig, Server,
    Worker,
};
use crate::run::collect::Collector;
use crate::run::load::Resource;
// madsim's simulated clock (not `std::time`): deterministic per seed.
use madsim::time::Instant;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A node's place in the world.
#[derive(Debug)]
pub struct Slot {
    /// Who.
    pub id: NodeId,
    /// madsim's id of the node, for kill and restart.
    pub madsim_id: Option<madsim::task::NodeId>,
    /// Whether the node is running.
    pub up: bool,
    /// Lives started so far minus one (0 in the first life).
    pub incarnation: u32,
    /// The protocol state machine (none while down).
    pub node: Option<Node>,
    /// While down: whether a restart is planned.
    pub returns: bool,
    /// The minibatch being computed, if any.
    pub computing: Option<Computing>,
    /// Pending inputs.
    pub inbox: Inbox,
    /// A server's CPU: its queue of work (docs/cost-model.md).
    pub cpu: Cpu,
    /// A worker's minibatch under way: since when (for its CPU's load).
    pub compute_since: Option<Duration>,
}

/// A server's CPU, one task at a time in arrival order: what a message
/// costs (`run::cost::cpu_values` at `server_apply_rate`) queues behind
/// the work before it, and what the server sends leaves once its CPU has
/// done everything queued so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// When the work queued so far is done.
    pub free: Duration,
    /// Since when it has been busy without a break (up to `free`).
    pub since: Duration,
}

impl Cpu {
    /// Queues `work` at `now`; returns the busy period that ended before
    /// `now`, if the queue had run dry.
    fn charge(&mut self, now: Duration, work: Duration) -> Option<(Duration, Duration)> {
        if work == Duration::ZERO {
            return None;
        }
        let mut ended = None;
        if self.free < now {
            ended = (self.free > self.since).then_some((self.since, self.free));
            self.since = now;
        }
        self.free = self.free.max(now) + work;
        ended
    }

    /// Drops the work queued past `now` (a crash, the run's end); returns
    /// the busy period so far.
    fn stop(&mut self, now: Duration) -> Option<(Duration, Duration)> {
        self.free = self.free.min(now);
        let period = (self.free > self.since).then_some((self.since, self.free));
        self.since = self.free;
        period
    }
}

/// A minibatch in progress on a worker.
#[derive(Clone, Copy, Debug)]
pub struct Computing {
    /// Work left (time at normal speed) as of `since`.
    pub work_left: Duration,
    /// When `work_left` was last brought up to date.
    pub since: Duration,
    /// The slowdown in force since then.
    pub slowdown: f64,
    /// Identifies the scheduled completion.
    pub gen: u64,
}

/// The world state.
pub struct World {
    /// Protocol parameters.
    pub cfg: Arc<ProtocolConfig>,
    /// What workers train.
    pub job: Arc<Job>,
    /// madsim instant of time zero.
    pub start: Instant,
    /// madsim's elapsed time at time zero (reading the elapsed time is
    /// cheaper than an instant and a difference; the same nanoseconds).
    start_elapsed: Duration,
    /// Simulated time since the start, as of the lock (see [`lock`]).
    now: Duration,
    /// madsim's clock, held to read it without a runtime lookup.
    clock: madsim::time::TimeHandle,
    /// Node slots: coordinator, servers, workers.
    pub slots: Vec<Slot>,
    /// The network.
    pub net: Network,
    /// The compute-time model.
    pub compute: ComputeModel,
    /// Every event goes through here (recorder, metrics, the last view
    /// published, failovers, timelines).
    pub log: Collector,
    /// When every worker had finished, if they have.
    pub training_done_at: Option<Duration>,
    /// Messages held by clogged links: `(from, to) -> messages`.
    pub held: BTreeMap<(NodeId, NodeId), Vec<Message>>,
    /// Messages on their way: id -> sender, receiver, message, latest
    /// prediction.
    in_flight: ById<InFlight>,
    /// The instant whose sends are not planned yet: they are planned
    /// together once the instant is over, the next time anything locks
    /// the world, at the latest when the network task wakes for them
    /// ([`World::net_due`]).
    fresh_at: Option<Duration>,
    /// Deliveries planned and not yet in their inboxes.
    changed: Vec<Delivery>,
    /// The network task: its waker and the deadline it sleeps until.
    pub net_clock: Clock,
    /// Durable storage: what each node persisted (survives its crashes).
    pub durable: BTreeMap<NodeId, Durable>,
    rng: ChaCha8Rng,
    seq: u64,
    out: Vec<Command>,
    leak: u64,
}

/// A task's wake-up: its waker and the deadline it sleeps until.
#[derive(Debug, Default)]
pub struct Clock {
    waker: Option<std::task::Waker>,
    armed: Option<Duration>,
}

impl Clock {
    /// Registers the waiting task and the deadline it sleeps until.
    pub fn park(&mut self, waker: &std::task::Waker, armed: Option<Duration>) {
        self.waker = Some(waker.clone());
        self.armed = armed;
    }

    /// Wakes the task if it sleeps past `at`.
    fn wake_by(&mut self, at: Option<Duration>) {
        if let Some(at) = at {
            if self.armed.is_none_or(|armed| at < armed) {
                if let Some(w) = self.waker.take() {
                    self.armed = None;
                    w.wake();
                }
            }
        }
    }
}

/// A message on its way.
#[derive(Debug)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    /// Boxed: the map moves entries, not whole messages.
    msg: Box<Message>,
    /// Its latest delivery prediction.
    gen: u64,
}

/// The world, shared by the node tasks.
pub type Shared = Arc<Mutex<World>>;

/// Locks the world (a poisoned lock means a node panicked: keep going so
/// the panic itself is what gets reported). The first lock after an
/// instant with sends plans them.
///
/// Simulated time stands still while a task holds the lock (madsim
/// advances it only between task polls), so the lock reads the clock once
/// for everything the holder does ([`World::now`]): madsim's clock is
/// behind a runtime lookup (a thread-local and two reference counts) when
/// read through `Instant::now`, 7% of a message-bound run; the world
/// holds its handle instead.
pub fn lock(shared: &Shared) -> MutexGuard<'_, World> {
    let mut w = shared.lock().unwrap_or_else(|e| e.into_inner());
    w.now = w.clock.elapsed().saturating_sub(w.start_elapsed);
    w.settle_net();
    w
}

impl World {
    /// A world for a job; `seed` seeds the world's generator (drawn from
    /// madsim's seeded generator by the caller).
    pub fn new(
        cfg: Arc<ProtocolConfig>,
        job: Arc<Job>,
        net: Network,
        compute: ComputeModel,
        log: Collector,
        seed: u64,
    ) -> World {
        let slots = crate::run::plan::all_nodes(cfg.servers, cfg.workers)
            .into_iter()
            .map(|id| Slot {
                id,
                madsim_id: None,
                // Every node of a fresh job is up from time zero; inputs
                // wait in its inbox until its task first runs.
                up: true,
                incarnation: 0,
                node: None,
                returns: false,
                computing: None,
                inbox: Inbox::default(),
                cpu: Cpu::default(),
                compute_since: None,
            })
            .collect();
        let leak = if cfg.bugs.has(Bug::GlobalState) {
            // Planted bug: state that outlives a run.
            static RUNS: AtomicU64 = AtomicU64::new(0);
            RUNS.fetch_add(1, AtomicOrdering::Relaxed) % 1000 + 1
        } else {
            0
        };
        // madsim's clock (`Instant` is madsim's here): simulated time.
        let clock = madsim::time::TimeHandle::current();
        World {
            cfg,
            job,
            start: Instant::now(),
            start_elapsed: clock.elapsed(),
            now: Duration::ZERO,
            clock,
            slots,
            net,
            compute,
            log,
            training_done_at: None,
            held: BTreeMap::new(),
            in_flight: ById::default(),
            fresh_at: None,
            changed: Vec::new(),
            net_clock: Clock::default(),
            durable: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            seq: 0,
            out: Vec::new(),
            leak,
        }
    }

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The slot index of a node.
    pub fn index(&self, id: NodeId) -> usize {
        match id {
            NodeId::Coordinator => 0,
            NodeId::Server(s) => 1 + s as usize,
            NodeId::Worker(w) => 1 + self.cfg.servers as usize + w as usize,
        }
    }

    /// A node's slot.
    pub fn slot(&self, id: NodeId) -> &Slot {
        &self.slots[self.index(id)]
    }

    /// Records an event now.
    pub fn record(&mut self, ev: Event) {
        let t = self.now();
        self.record_at(t, ev);
    }

    fn record_at(&mut self, t: Duration, ev: Event) {
        let check_done = matches!(ev, Event::WorkerDone { .. } | Event::Crash { .. });
        self.log.record(t, &ev);
        if check_done && self.training_done_at.is_none() && self.all_workers_done() {
            self.training_done_at = Some(t);
        }
    }

    /// Whether every live server has replicated and copied all it has to,
    /// holds the last view published, and nothing is in flight to it.
    pub fn servers_quiet(&self) -> bool {
        self.slots.iter().all(|s| match &s.node {
            Some(Node::Server(srv)) => srv.is_quiet() && srv.view().epoch == self.log.view.epoch,
            _ => true,
        })
    }

    /// Whether training is over: every worker that is up has finished its
    /// clocks, and no crashed worker is due to restart.
    pub fn all_workers_done(&self) -> bool {
        self.slots.iter().all(|s| match &s.node {
            Some(Node::Worker(w)) => w.is_done(),
            Some(_) => true,
            None => !matches!(s.id, NodeId::Worker(_)) || (!s.up && !s.returns),
        })
    }

    /// Boots a node's state machine (first start or restart) and runs its
    /// `on_start`.
    pub fn boot(&mut self, idx: usize) {
        let id = self.slots[idx].id;
        let incarnation = self.slots[idx].incarnation;
        if incarnation > 0 {
            self.record(Event::Restart { node: id });
        }
        let node = match id {
            NodeId::Coordinator => {
                let state = match self.durable.get(&id) {
                    Some(Durable::Coordinator(s)) => Some(s.clone()),
                    _ => None,
                };
                Node::Coordinator(Coordinator::new(self.cfg.clone(), state))
            }
            NodeId::Server(s) if incarnation == 0 => Node::Server(Server::new(s, self.cfg.clone())),
            NodeId::Server(s) => Node::Server(Server::restarted(
                s,
                incarnation,
                self.cfg.clone(),
                self.durable.get(&id).cloned(),
            )),
            NodeId::Worker(w) => {
                let rng = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
                Node::Worker(Worker::new(
                    w,
                    incarnation,
                    self.cfg.clone(),
                    self.job.clone(),
                    rng,
                ))
            }
        };
        let slot = &mut self.slots[idx];
        slot.up = true;
        slot.node = Some(node);
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        if let Some(n) = &mut self.slots[idx].node {
            n.on_start(now, &mut out);
        }
        self.execute(idx, &mut out);
        self.out = out;
    }

    /// Handles every input of node `idx` that is due.
    pub fn process_due(&mut self, idx: usize) {
        let now = self.now();
        let id = self.slots[idx].id;
        let mut out = std::mem::take(&mut self.out);
        while let Some(item) = self.slots[idx].inbox.pop_due(now) {
            if self.slots[idx].node.is_none() {
                break;
            };
            if let Item::ComputeDone { gen } = item {
                if self.slots[idx].computing.is_some_and(|c| c.gen == gen) {
                    self.slots[idx].computing = None;
                    self.compute_ends(idx, now);
                    if let NodeId::Worker(w) = id {
                        self.log.compute_done(w, now);
                    }
                    let node = self.slots[idx].node.as_mut().expect("checked above");
                    node.on_compute_done(now, &mut out);
                    self.execute(idx, &mut out);
                }
                continue;
            }
            match item {
                Item::Flow { id: f, gen } => {
                    match self.in_flight.get(f) {
                        Some(m) if m.gen == gen => {}
                        _ => continue, // An older prediction, or dropped.
                    }
                    let InFlight { from, msg, .. } = self.in_flight.remove(f).expect("checked");
                    let size = msg.wire_size();
                    let ev = Event::Deliver {
                        from,
                        to: id,
                        msg: msg.kind().into(),
                        size_bytes: size as u32,
                        digest: msg.digest(),
                    };
                    self.record_at(now, ev);
                    self.log.delivered(from, id, size as u64);
                    if matches!(id, NodeId::Server(_)) && applies(&msg) {
                        let work = self.compute.cost().message_cpu_time(&msg);
                        self.charge_cpu(idx, now, work);
                    }
                    let node = self.slots[idx].node.as_mut().expect("checked above");
                    node.on_message(now, from, *msg, &mut out);
                }
                Item::Timer(timer) => {
                    self.record_at(
                        now,
                        Event::Timer {
                            node: id,
                            timer: timer.name().into(),
                        },
                    );
                    let node = self.slots[idx].node.as_mut().expect("checked above");
                    node.on_timer(now, timer, &mut out);
                }
                Item::ComputeDone { .. } => unreachable!("handled above"),
            }
            self.execute(idx, &mut out);
        }
        self.out = out;
    }

    /// Carries out a node's commands.
    fn execute(&mut self, idx: usize, out: &mut Vec<Command>) {
        let now = self.now();
        let id = self.slots[idx].id;
        for cmd in out.drain(..) {
            match cmd {
                Command::Send { to, msg } => {
                    // A server's message leaves once its CPU is free (a
                    // pull answer or a snapshot is copied out first).
                    let start = if matches!(id, NodeId::Server(_)) {
                        if copies_out(&msg) {
                            let work = self.compute.cost().message_cpu_time(&msg);
                            self.charge_cpu(idx, now, work);
                        }
                        self.slots[idx].cpu.free.max(now)
                    } else {
                        now
                    };
                    self.send_from(now, start, id, to, msg)
                }
                Command::SetTimer { timer, after } => {
                    self.schedule(idx, now + after, Item::Timer(timer))
                }
                Command::Compute { flops, .. } => {
                    if let NodeId::Worker(w) = id {
                        self.log.compute_started(w, now);
                    }
                    self.compute_ends(idx, now);
                    self.slots[idx].compute_since = Some(now);
                    let work = self.compute.work(flops, &mut self.rng);
                    self.start_compute(idx, now, work);
                }
                Command::Emit(ev) => self.record_at(now, ev),
                Command::Persist(d) => {
                    self.durable.insert(id, d);
                }
            }
        }
    }

    /// When node `idx`'s earliest input is due (superseded delivery
    /// predictions dropped).
    pub fn next_input_at(&mut self, idx: usize) -> Option<Duration> {
        let in_flight = &self.in_flight;
        self.slots[idx].inbox.next_live_at(|item| match *item {
            Item::Flow { id, gen } => in_flight.get(id).is_none_or(|m| m.gen != gen),
            _ => false,
        })
    }

    /// Plans the transfers sent at an instant that is over, then every
    /// large component whose next change is due.
    pub fn settle_net(&mut self) {
        let now = self.now();
        if self.fresh_at.is_some_and(|t| now > t) {
            self.settle_now();
        }
        if self.net.next_wake().is_some_and(|w| w <= now) {
            self.net.wake(now, &mut self.changed);
            self.deliver();
        }
    }

    /// When the network task must plan: the last instant's sends before
    /// the earliest any of them can arrive, a large component at its next
    /// change.
    pub fn net_due(&self) -> Option<Duration> {
        let fresh = self
            .fresh_at
            .map(|t| t + self.net.min_latency() + Duration::from_nanos(1));
        match (fresh, self.net.next_wake()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Plans the last instant's sends now (also before its end, for sends
    /// from no node's turn, which no node would wake for).
    fn settle_now(&mut self) {
        if let Some(t) = self.fresh_at.take() {
            self.net.flush(t, &mut self.changed);
            self.deliver();
        }
    }

    /// Queues `work` on node `idx`'s CPU at `now`.
    fn charge_cpu(&mut self, idx: usize, now: Duration, work: Duration) {
        if let Some((a, b)) = self.slots[idx].cpu.charge(now, work) {
            self.log.busy(self.slots[idx].id, Resource::Cpu, a, b, 1.0);
        }
    }

    /// Node `idx`'s CPU stops at `now` (a crash, the run's end): queued
    /// work is dropped, a minibatch under way ends; what ran is reported.
    fn stop_cpu(&mut self, idx: usize, now: Duration) {
        if let Some((a, b)) = self.slots[idx].cpu.stop(now) {
            self.log.busy(self.slots[idx].id, Resource::Cpu, a, b, 1.0);
        }
        self.compute_ends(idx, now);
    }

    /// Node `idx`'s minibatch (if any) ends or dies at `now`: its CPU was
    /// busy since it started.
    fn compute_ends(&mut self, idx: usize, now: Duration) {
        if let Some(since) = self.slots[idx].compute_since.take() {
            if now > since {
                self.log
                    .busy(self.slots[idx].id, Resource::Cpu, since, now, 1.0);
            }
        }
    }

    /// The run is over at `end` (simulated time now is at or after it):
    /// every interface and CPU reports its use up to now (the load meter
    /// cuts it at `end`).
    pub fn finish_load(&mut self, end: Duration) {
        let now = self.now().max(end);
        self.settle_now();
        self.net.settle(now);
        self.drain_busy();
        for idx in 0..self.slots.len() {
            self.stop_cpu(idx, now);
        }
    }

    /// Hands the interfaces' busy periods to the load meter.
    fn drain_busy(&mut self) {
        for b in self.net.drain_busy() {
            let res = if b.inbound {
                Resource::NicIn
            } else {
                Resource::NicOut
            };
            self.log.busy(b.node, res, b.from, b.to, b.share);
        }
    }

    /// Schedules the completion of `work` left on node `idx` at its
    /// current speed.
    fn start_compute(&mut self, idx: usize, now: Duration, work: Duration) {
        let slowdown = self.compute.slowdown(self.slots[idx].id);
        self.seq += 1;
        let gen = self.seq;
        self.slots[idx].computing = Some(Computing {
            work_left: work,
            since: now,
            slowdown,
            gen,
        });
        self.schedule(idx, now + work.mul_f64(slowdown), Item::ComputeDone { gen });
    }

    /// A straggler on `id` started or healed: a minibatch in progress goes
    /// on at the new speed.
    pub fn restraggle(&mut self, id: NodeId) {
        let idx = self.index(id);
        let now = self.now();
        if let Some(c) = self.slots[idx].computing {
            let done = now.saturating_sub(c.since).div_f64(c.slowdown);
            self.start_compute(idx, now, c.work_left.saturating_sub(done));
        }
    }

    fn schedule(&mut self, idx: usize, at: Duration, item: Item) {
        self.seq += 1;
        self.slots[idx].inbox.push(at, self.seq, item);
    }

    /// Crashes a node: its task dies, its memory and inbox are lost, its
    /// connections reset (messages held for it or from it are dropped).
    /// `returns`: whether a restart is planned.
    pub fn crash(&mut self, id: NodeId, returns: bool) {
        let idx = self.index(id);
        let slot = &mut self.slots[idx];
        if !slot.up {
            return;
        }
        slot.up = false;
        slot.returns = returns;
        slot.node = None;
        slot.computing = None;
        slot.inbox.clear();
        if let Some(m) = slot.madsim_id {
            madsim::runtime::Handle::current().kill(m);
        }
        let now = self.now();
        // Its queued work dies with it: only what ran counts as busy.
        self.stop_cpu(idx, now);
        // This instant's sends are planned with the reset.
        self.fresh_at = None;
        let gone = self.net.reset_node(now, id, &mut self.changed);
        for f in gone {
            self.in_flight.remove(f);
        }
        // What was on its way to it is lost with its inbox.
        self.in_flight.retain(|m| m.to != id);
        self.deliver();
        self.held.retain(|(f, t), _| *f != id && *t != id);
        self.record(Event::Crash { node: id });
    }

    /// Restarts a crashed node with empty memory (its durable storage
    /// survives). The node's task boots it when it first runs.
    pub fn restart(&mut self, id: NodeId) {
        let idx = self.index(id);
        let slot = &mut self.slots[idx];
        if slot.up {
            return;
        }
        slot.incarnation += 1;
        // Up from now: messages sent before the task runs wait in the inbox.
        slot.up = true;
        if let Some(m) = slot.madsim_id {
            madsim::runtime::Handle::current().restart(m);
        }
    }

    /// A clog healed: what it held departs now, in order.
    pub fn release(&mut self, from: NodeId, to: NodeId) {
        let now = self.now();
        for msg in self.held.remove(&(from, to)).unwrap_or_default() {
            let size = msg.wire_size();
            self.transmit_at(now, now, from, to, msg, size);
        }
        self.settle_now();
    }

    /// Puts a message on the network; its first bit leaves at `start`.
    fn send_from(
        &mut self,
        now: Duration,
        start: Duration,
        from: NodeId,
        to: NodeId,
        msg: Message,
    ) {
        let size = msg.wire_size();
        self.log.sent(now, &msg, size);
        self.transmit_at(now, start, from, to, msg, size);
    }

    /// Transmits a message of `size` wire bytes (already counted as sent).
    fn transmit_at(
        &mut self,
        now: Duration,
        start: Duration,
        from: NodeId,
        to: NodeId,
        msg: Message,
        size: usize,
    ) {
        let to_idx = self.index(to);
        if !self.slots[to_idx].up {
            self.record_at(
                now,
                Event::Drop {
                    from,
                    to,
                    msg: msg.kind().into(),
                    reason: "down".into(),
                },
            );
            return;
        }
        self.seq += 1;
        let id = self.seq;
        // Planted bug (`global_state`): a delay that depends on how many
        // runs this process made before.
        let start = start + Duration::from_nanos(self.leak);
        match self.net.send(now, start, id, from, to, size, &mut self.rng) {
            Fate::Sent(planned) => {
                if planned.is_none() && self.fresh_at.is_none() {
                    self.fresh_at = Some(now);
                    let due = self.net_due();
                    self.net_clock.wake_by(due);
                }
                self.in_flight.insert(
                    id,
                    InFlight {
                        from,
                        to,
                        msg: Box::new(msg),
                        gen: 0,
                    },
                );
                if let Some(d) = planned {
                    self.changed.push(d);
                    self.deliver();
                }
            }
            Fate::Drop(reason) => self.record_at(
                now,
                Event::Drop {
                    from,
                    to,
                    msg: msg.kind().into(),
                    reason: reason.into(),
                },
            ),
            Fate::Hold => self.held.entry((from, to)).or_default().push(msg),
        }
    }

    /// Puts new or changed delivery predictions into the receivers'
    /// inboxes.
    fn deliver(&mut self) {
        let mut changed = std::mem::take(&mut self.changed);
        for d in changed.drain(..) {
            if let Some(e) = self.in_flight.get_mut(d.id) {
                e.gen = d.gen;
                if d.at == Delivery::VOID {
                    continue; // A later prediction follows.
                }
                let idx = self.index(d.to);
                self.schedule(
                    idx,
                    d.at,
                    Item::Flow {
                        id: d.id,
                        gen: d.gen,
                    },
                );
            }
        }
        self.changed = changed;
        self.drain_busy();
        let due = self.net_due();
        self.net_clock.wake_by(due);
    }
}

/// Messages a server's CPU applies on arrival: a push, a chain push, a
/// snapshot it installs.
fn applies(msg: &Message) -> bool {
    matches!(
        msg,
        Message::PushReq { .. } | Message::ChainPush { .. } | Message::Snapshot { .. }
    )
}

/// Messages a server's CPU copies out before they leave: a pull answer, a
/// snapshot it sends.
fn copies_out(msg: &Message) -> bool {
    matches!(msg, Message::PullResp { .. } | Message::Snapshot { .. })
}
