//! The simulated world: every node's slot (its protocol state machine and
//! inbox), the network, the compute model and the run's collector, behind
//! one lock. madsim runs one task at a time, so the lock is never
//! contended; it exists because madsim node tasks must be `Send`.
//!
//! May import: `crate::core`, `crate::run`, `super` (sim), madsim. Never:
//! `crate::net`.

use super::compute::ComputeModel;
use super::inbox::{Inbox, Item};
use super::net::{Fate, Network};
use crate::core::{
    Bug, Command, Coordinator, Durable, Event, Job, Message, Node, NodeId, ProtocolConfig, Server,
    Worker,
};
use crate::run::collect::Collector;
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
    /// Durable storage: what each node persisted (survives its crashes).
    pub durable: BTreeMap<NodeId, Durable>,
    rng: ChaCha8Rng,
    seq: u64,
    out: Vec<Command>,
    leak: u64,
}

/// The world, shared by the node tasks.
pub type Shared = Arc<Mutex<World>>;

/// Locks the world (a poisoned lock means a node panicked: keep going so
/// the panic itself is what gets reported).
///
/// Simulated time stands still while a task holds the lock (madsim
/// advances it only between task polls), so the lock reads the clock once
/// for everything the holder does ([`World::now`]): madsim's clock is
/// behind a runtime lookup (a thread-local and two reference counts) when
/// read through `Instant::now`, 7% of a message-bound run; the world
/// holds its handle instead.
pub fn lock(shared: &Shared) -> MutexGuard<'_, World> {
    let mut w = shared.lock().unwrap_or_else(|e| e.into_inner());
    w.now = w.clock.now_instant().saturating_duration_since(w.start);
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
        let ids = std::iter::once(NodeId::Coordinator)
            .chain((0..cfg.servers).map(NodeId::Server))
            .chain((0..cfg.workers).map(NodeId::Worker));
        let slots = ids
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
            })
            .collect();
        let leak = if cfg.bugs.has(Bug::GlobalState) {
            // Planted bug: state that outlives a run.
            static RUNS: AtomicU64 = AtomicU64::new(0);
            RUNS.fetch_add(1, AtomicOrdering::Relaxed) % 1000 + 1
        } else {
            0
        };
        World {
            cfg,
            job,
            start: Instant::now(),
            now: Duration::ZERO,
            clock: madsim::time::TimeHandle::current(),
            slots,
            net,
            compute,
            log,
            training_done_at: None,
            held: BTreeMap::new(),
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
                Item::Msg { from, msg } => {
                    let ev = Event::Deliver {
                        from,
                        to: id,
                        msg: msg.kind().into(),
                        size_bytes: msg.wire_size() as u32,
                        digest: msg.digest(),
                    };
                    self.record_at(now, ev);
                    let node = self.slots[idx].node.as_mut().expect("checked above");
                    node.on_message(now, from, msg, &mut out);
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
                Command::Send { to, msg } => self.send(now, id, to, msg),
                Command::SetTimer { timer, after } => {
                    self.schedule(idx, now + after, Item::Timer(timer))
                }
                Command::Compute { flops, .. } => {
                    if let NodeId::Worker(w) = id {
                        self.log.compute_started(w, now);
                    }
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
        self.net.reset_node(id);
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
            self.transmit(now, from, to, msg);
        }
    }

    /// Puts a message on the network.
    pub fn send(&mut self, now: Duration, from: NodeId, to: NodeId, msg: Message) {
        let size = msg.wire_size();
        self.log.sent(now, &msg, size);
        self.transmit(now, from, to, msg);
    }

    fn transmit(&mut self, now: Duration, from: NodeId, to: NodeId, msg: Message) {
        let size = msg.wire_size();
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
        match self.net.route(now, from, to, size, &mut self.rng) {
            Fate::Deliver(mut at) => {
                // Planted bug (`global_state`): a delay that depends on
                // how many runs this process made before.
                at += Duration::from_nanos(self.leak);
                self.schedule(to_idx, at, Item::Msg { from, msg })
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
}
