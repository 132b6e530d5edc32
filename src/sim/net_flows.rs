//! Transfers through shared network interfaces: every node has a
//! full-duplex interface with an inbound and an outbound capacity, and
//! every message is a *flow* through its sender's outbound and its
//! receiver's inbound interface (a `slow_link` caps its path). Concurrent
//! flows share each interface **max-min fairly** (progressive filling, as
//! flow-level simulators such as SimGrid do): rates change whenever a flow
//! starts or ends, so a flow finishes sooner when others leave.
//!
//! Messages between two nodes travel one at a time, in the order sent (one
//! stream per ordered pair, like a TCP connection); a message is delivered
//! its latency after its last bit left, and never before the previous one
//! on its pair.
//!
//! **Planned forward.** Nothing runs between sends: when flows are sent
//! (once per instant, [`Flows::flush`]), the model takes the *component*
//! they join — every unfinished flow that shares an interface with them,
//! transitively — and plays its future out to the end: progressive filling,
//! advance to the earliest finish or deferred start, repeat. Every delivery
//! is then known and handed to the host ([`Delivery`]); only a later send
//! into the same component (or a crash) can change it, and then the
//! changed deliveries are handed over again under a new prediction number
//! (`gen`). The past of a re-planned component is exact: each flow keeps
//! its planned rate segments, so its bits left at any instant are their
//! integral. A component of more than [`HORIZON_FLOWS`] transfers is
//! planned *incrementally* instead ([`inc`]): replaying a large future at
//! every send costs the square of its size. Each of its transfers keeps
//! its rate; a change (an end, a start, a send into it, a crash) re-fills
//! only the transfers whose max-min rate can move (those through the
//! saturated interfaces it touches), and a transfer's delivery is handed
//! over when it ends ([`Flows::wake`], when the host's network task
//! wakes). docs/cost-model.md gives the formulas, the measured cost and
//! why it is planned forward (a network task woken at every rate change
//! cost 1.7x the message rate).
//!
//! What each interface carried (its busy periods and the share of its
//! capacity in use) is reported as time passes ([`Flows::drain_busy`]).
//!
//! May import: `crate::core`, `super` (sim). Never: `crate::net` (hosts
//! never import each other), tokio.

use crate::core::NodeId;
use std::collections::{BTreeMap, VecDeque};

mod inc;

use std::time::Duration;

/// A message's (new) predicted delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The flow (the host's message id).
    pub id: u64,
    /// The receiver.
    pub to: NodeId,
    /// When it arrives.
    pub at: Duration,
    /// Which prediction this is: earlier ones are void.
    pub gen: u64,
}

impl Delivery {
    /// `at` of a prediction that is void (the transfer's end is not known
    /// yet: a later delivery follows).
    pub const VOID: Duration = Duration::from_nanos(u64::MAX);
}

/// A period during which an interface carried transfers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Busy {
    /// Whose interface.
    pub node: NodeId,
    /// Its inbound (`true`) or outbound direction.
    pub inbound: bool,
    /// Start of the period.
    pub from: Duration,
    /// End of the period.
    pub to: Duration,
    /// Fraction of the capacity in use throughout.
    pub share: f64,
}

/// A flow. Laid out by hand, two cache lines: the first holds what the
/// passes over interfaces' flow lists read ([`Flows::collect`], the
/// component search, the re-fill's search and [`Flows::set_load`]).
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
struct Flow {
    from: u32,
    to: u32,
    alive: bool,
    /// Planned incrementally (its component is large, [`inc`]): then
    /// `bits_left` is its bits left at `t_rate`, sent at `rate` since.
    inc: bool,
    /// Component search stamp.
    mark: u32,
    /// Re-fill stamp ([`inc`]).
    pmark: u32,
    /// Its entry in [`Flows::events`]: the time (`evt`, `MAX`: none) and
    /// a number kept across reuses of the slot.
    evseq: u32,
    /// Planned end of its transmission (`MAX` until planned).
    done: Ns,
    rate: f64,
    /// The fastest it may go: its interfaces' capacities and any slow link.
    cap: f64,
    /// Planned delivery.
    at: Ns,
    /// Bits left when it was last planned.
    bits_left: f64,
    /// When its first bit may leave (its host may be busy until then).
    start: Ns,
    latency: Ns,
    t_rate: Ns,
    evt: Ns,
    /// The host's message id.
    id: u64,
    /// Planned rate changes since then: `(from, bits per second)`; the
    /// last lasts until `done`.
    segs: Vec<(Ns, f64)>,
}

const _: () = assert!(std::mem::size_of::<Flow>() == 128);

impl Flow {
    /// Its resources: its sender's outbound and its receiver's inbound
    /// interface.
    fn ports(&self) -> (usize, usize) {
        (2 * self.from as usize, 2 * self.to as usize + 1)
    }

    /// Bits left at `t` (at or after its last planning), by its planned
    /// segments.
    fn left_at(&self, t: Ns) -> f64 {
        let mut left = self.bits_left;
        for (k, &(s, rate)) in self.segs.iter().enumerate() {
            if s >= t {
                break;
            }
            let e = self.segs.get(k + 1).map_or(self.done, |n| n.0).min(t);
            left -= rate * secs(e.saturating_sub(s));
        }
        left.max(0.0)
    }
}

/// One direction of an interface.
#[derive(Clone, Debug, Default)]
struct Res {
    cap: f64,
    /// Flows using it that were unfinished when last looked at.
    live: Vec<u32>,
    /// Planned use from the last planning: `(from, to, bits per second)`.
    plan: Vec<(Ns, Ns, f64)>,
    /// Part of the past not yet reported (merged while contiguous at one
    /// rate).
    open: Option<(Ns, Ns, f64)>,
    mark: u32,
    /// Its place in the component being planned.
    local: u32,
    /// Its incremental transfers' summed rate ([`inc`]).
    load: f64,
    /// Re-fill stamps ([`inc`]): re-filled whole, a boundary, its use
    /// changed.
    full: u32,
    bnd: u32,
    dirty: u32,
    /// The old rates of a boundary's transfers in the re-fill.
    pold: f64,
}

/// An ordered pair's stream.
#[derive(Clone, Debug, Default)]
struct Pair {
    /// Unfinished flows in order sent.
    queue: VecDeque<u32>,
    /// Delivery of the last finished flow.
    last_at: Ns,
}

/// A flow as the planner sees it: what a pass over the transmitting
/// flows needs, so that the passes leave the large [`Flow`] alone.
#[derive(Clone, Copy, Debug)]
struct Live {
    flow: u32,
    /// Its pair's cursor.
    cursor: u32,
    /// Its interfaces, by their place in the component
    /// ([`Res::local`]).
    out: u32,
    inn: u32,
    /// Its [`Flow::cap`].
    cap: f64,
    /// Bits left (its [`Flow::bits_left`] keeps those at the planning's
    /// start).
    bits: f64,
    rate: f64,
    /// The rate of its last planned segment (`NaN`: none yet).
    seg: f64,
    /// When it finishes at that rate.
    fin: Ns,
    frozen: bool,
}

/// A pair's cursor in [`Flows::plan`].
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// Its next flow to send (its place in the planner's order) and the
    /// end of its flows.
    next: u32,
    end: u32,
    /// When that next flow may start.
    start: Ns,
    /// Its last delivery.
    last_at: Ns,
}

/// An interface of a component being planned.
#[derive(Clone, Copy, Debug)]
struct LocalRes {
    /// Which ([`Flows::res`]).
    r: usize,
    cap: f64,
    /// In a filling: capacity left, unfrozen users, fair share.
    left: f64,
    count: u32,
    fair: f64,
    /// Summed rate of its users.
    sum: f64,
    /// Its last planned use, `(from, to, bits per second)`, not in its
    /// [`Res::plan`] yet (a zero rate: none).
    open: (Ns, Ns, f64),
}

/// The flows in the network.
#[derive(Debug)]
pub struct Flows {
    servers: u32,
    flows: Vec<Flow>,
    free: Vec<u32>,
    /// Per node slot: outbound `2·slot`, inbound `2·slot + 1`.
    res: Vec<Res>,
    /// Per ordered pair of slots (`from · nodes + to`).
    pairs: Vec<Pair>,
    nodes: usize,
    /// Flows sent since the last flush.
    fresh: Vec<u32>,
    next_gen: u64,
    stamp: u32,
    busy: Vec<Busy>,
    // Scratch buffers, kept to save allocations.
    comp: Vec<u32>,
    comp_res: Vec<usize>,
    work: Vec<usize>,
    order: Vec<u32>,
    pos: Vec<Cursor>,
    live: Vec<Live>,
    spare: Vec<Live>,
    lres: Vec<LocalRes>,
    /// Components of more transfers are planned incrementally ([`inc`]).
    horizon_flows: usize,
    /// Whether a star (every transfer through one interface, each other
    /// interface used by one) is filled by [`fill_star`]; off only
    /// in a test that compares both.
    stars: bool,
    /// Incremental transfers' next changes, earliest on top: `(end,
    /// flow, its event number)` while sending, `(start, ..)` while waiting
    /// for its host ([`inc`]). An entry is void unless its time and number
    /// are its flow's [`Flow::evt`] and [`Flow::evseq`] (a changed one is
    /// left in place, cheaper than a search tree's removal); a void entry
    /// is dropped when it reaches the top, and none stays there between
    /// calls.
    events: std::collections::BinaryHeap<std::cmp::Reverse<(Ns, u32, u32)>>,
    /// `events`' length after its last sweep of void entries.
    swept: usize,
    /// Saturated interfaces a dropped incremental transfer left, re-filled
    /// at the next planning.
    inc_seeds: Vec<usize>,
    istamp: u32,
    // Re-fill scratch buffers.
    pf: Vec<u32>,
    pq: Vec<usize>,
    dirty: Vec<usize>,
    prate: Vec<f64>,
    act: Vec<u32>,
    left: Vec<f64>,
    count: Vec<u32>,
    /// Per interface, its fair share in the current filling round.
    fair: Vec<f64>,
    /// The interfaces a filling uses.
    used: Vec<usize>,
}

impl Flows {
    /// No flows, for a cluster of `servers` and `workers`; interfaces of
    /// `default_bps` unless `capacity` says otherwise for a node.
    pub fn new(
        servers: u32,
        workers: u32,
        default_bps: f64,
        capacity: &BTreeMap<NodeId, f64>,
    ) -> Flows {
        let nodes = 1 + servers as usize + workers as usize;
        let mut res = vec![
            Res {
                cap: default_bps,
                ..Res::default()
            };
            2 * nodes
        ];
        for (&n, &c) in capacity {
            let s = slot(servers, n);
            res[2 * s].cap = c;
            res[2 * s + 1].cap = c;
        }
        Flows {
            act: Vec::new(),
            servers,
            flows: Vec::new(),
            free: Vec::new(),
            left: vec![0.0; res.len()],
            count: vec![0; res.len()],
            fair: vec![0.0; res.len()],
            used: Vec::new(),
            res,
            pairs: vec![Pair::default(); nodes * nodes],
            nodes,
            fresh: Vec::new(),
            next_gen: 0,
            stamp: 0,
            busy: Vec::new(),
            comp: Vec::new(),
            comp_res: Vec::new(),
            work: Vec::new(),
            order: Vec::new(),
            pos: Vec::new(),
            live: Vec::new(),
            spare: Vec::new(),
            lres: Vec::new(),
            events: std::collections::BinaryHeap::new(),
            swept: 0,
            inc_seeds: Vec::new(),
            istamp: 0,
            pf: Vec::new(),
            pq: Vec::new(),
            dirty: Vec::new(),
            prate: Vec::new(),

            horizon_flows: HORIZON_FLOWS,
            stars: true,
        }
    }

    fn pair(&self, from: u32, to: u32) -> usize {
        from as usize * self.nodes + to as usize
    }

    /// Adds a message of `bits` from `from` to `to`, sent at `now`, whose
    /// first bit may leave at `start`, arriving `latency` after its last
    /// bit left; `link_bps` caps its path (a slow link). A message that
    /// finds its interfaces and its pair idle is planned at once (its
    /// delivery is returned; a later send into its interfaces re-plans
    /// it); any other at the next [`Flows::flush`], once the instant's
    /// sends are in.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        now: Duration,
        id: u64,
        from: NodeId,
        to: NodeId,
        bits: f64,
        latency: Duration,
        link_bps: Option<f64>,
        start: Duration,
    ) -> Option<Delivery> {
        let (now, latency, start) = (ns(now), ns(latency), ns(start));
        let (from, to) = (
            slot(self.servers, from) as u32,
            slot(self.servers, to) as u32,
        );
        let (out, inn) = (2 * from as usize, 2 * to as usize + 1);
        // Capped at a finite rate so that every transfer takes time.
        let cap = self.res[out]
            .cap
            .min(self.res[inn].cap)
            .min(link_bps.unwrap_or(f64::INFINITY))
            .min(MAX_BPS);
        let bits = bits.max(1.0);
        let f = match self.free.pop() {
            Some(f) => f,
            None => {
                self.flows.push(Flow::default());
                (self.flows.len() - 1) as u32
            }
        };
        let flow = &mut self.flows[f as usize];
        let mut segs = std::mem::take(&mut flow.segs);
        segs.clear();
        let evseq = flow.evseq.wrapping_add(1);
        *flow = Flow {
            evseq,
            evt: Ns::MAX,
            id,
            from,
            to,
            cap,
            bits_left: bits,
            segs,
            start,
            latency,
            done: Ns::MAX,
            at: Ns::MAX,
            mark: 0,
            alive: true,
            inc: false,
            rate: 0.0,
            t_rate: 0,
            pmark: 0,
        };
        self.collect(out, now);
        self.collect(inn, now);
        let p = self.pair(from, to);
        let alone = self.res[out].live.is_empty()
            && self.res[inn].live.is_empty()
            && self.pairs[p].queue.is_empty();
        self.res[out].live.push(f);
        self.res[inn].live.push(f);
        self.pairs[p].queue.push_back(f);
        if !alone {
            self.fresh.push(f);
            return None;
        }
        // Alone: at its cap from its start to its end.
        let last_at = self.pairs[p].last_at;
        for r in [out, inn] {
            self.commit(r, now);
        }
        self.next_gen += 1;
        let fl = &mut self.flows[f as usize];
        let done = start + nanos(bits / cap);
        fl.segs.push((start, cap));
        fl.done = done;
        fl.at = (done + latency).max(last_at);
        let d = Delivery {
            id,
            to: node_of(self.servers, to as usize),
            at: dur(fl.at),
            gen: self.next_gen,
        };
        for r in [out, inn] {
            self.res[r].plan.push((start, done, cap));
        }
        Some(d)
    }

    /// Plans the flows sent at `now` together with every unfinished flow
    /// that shares an interface with them; the deliveries whose prediction
    /// is new or changed.
    pub fn flush(&mut self, now: Duration, changed: &mut Vec<Delivery>) {
        if self.fresh.is_empty() {
            return;
        }
        // Incremental changes before these sends first.
        self.inc_run(ns(now), changed);
        let seeds = self.fresh_seeds();
        self.plan(ns(now), seeds, changed);
    }

    /// The interfaces of the flows sent since the last planning (which
    /// they join now).
    fn fresh_seeds(&mut self) -> Vec<usize> {
        let mut seeds = std::mem::take(&mut self.work);
        seeds.clear();
        for f in self.fresh.drain(..) {
            let (out, inn) = self.flows[f as usize].ports();
            seeds.push(out);
            seeds.push(inn);
        }
        seeds
    }

    /// When a large component must next be planned (see
    /// [`Flows::wake`]).
    pub fn next_wake(&self) -> Option<Duration> {
        self.events.peek().map(|e| dur(e.0 .0))
    }

    /// Plays every change of a large component due by `now` (transfers
    /// ending or starting); the deliveries whose prediction is new or
    /// changed.
    pub fn wake(&mut self, now: Duration, changed: &mut Vec<Delivery>) {
        self.inc_run(ns(now), changed);
    }

    /// Drops every unfinished flow from or to `node` (it crashed: its
    /// connections are gone) and re-plans what shared interfaces with
    /// them. Returns the dropped messages and the changed deliveries.
    pub fn reset_node(
        &mut self,
        now: Duration,
        node: NodeId,
        changed: &mut Vec<Delivery>,
    ) -> Vec<u64> {
        let now = ns(now);
        self.inc_run(now, changed);
        let s = slot(self.servers, node);
        let mut gone = Vec::new();
        // Every flow sent this instant is planned with the rest.
        let mut seeds = self.fresh_seeds();
        for r in [2 * s, 2 * s + 1] {
            self.collect(r, now);
            self.commit(r, now);
            self.res[r].plan.clear();
            self.res[r].load = 0.0;
            for f in std::mem::take(&mut self.res[r].live) {
                if !self.flows[f as usize].alive {
                    continue;
                }
                if self.flows[f as usize].inc {
                    self.inc_drop(f);
                }
                let fl = &mut self.flows[f as usize];
                fl.alive = false;
                gone.push(fl.id);
                let (out, inn) = fl.ports();
                let other = if out == r { inn } else { out };
                let was_inc = fl.inc;
                self.res[other].live.retain(|&g| g != f);
                if was_inc {
                    self.set_load(other, now);
                }
                seeds.push(other);
                self.free.push(f);
            }
        }
        self.inc_seeds.retain(|&r| r / 2 != s);
        // Its connections are gone.
        for k in 0..self.nodes {
            for p in [s * self.nodes + k, k * self.nodes + s] {
                self.pairs[p] = Pair::default();
            }
        }
        seeds.retain(|&r| r / 2 != s);
        self.plan(now, seeds, changed);
        gone
    }

    /// Every interface's busy periods up to `now` not reported yet (call
    /// [`Flows::settle`] first to close them at the end of a run).
    pub fn drain_busy(&mut self) -> std::vec::Drain<'_, Busy> {
        self.busy.drain(..)
    }

    /// Reports every interface's use up to `end` (the run is over).
    pub fn settle(&mut self, end: Duration) {
        let end = ns(end);
        for r in 0..self.res.len() {
            self.commit(r, end);
            if let Some((a, b, rate)) = self.res[r].open.take() {
                self.emit(r, a, b, rate);
            }
        }
    }

    fn emit(&mut self, r: usize, from: Ns, to: Ns, rate: f64) {
        self.busy.push(Busy {
            node: node_of(self.servers, r / 2),
            inbound: r % 2 == 1,
            from: dur(from),
            to: dur(to),
            share: (rate / self.res[r].cap).min(1.0),
        });
    }

    /// Hands over flow `f`'s new predicted delivery `at` (`Ns::MAX`: void,
    /// a later one follows) under a new prediction number.
    fn predict(&mut self, f: u32, at: Ns, changed: &mut Vec<Delivery>) {
        self.next_gen += 1;
        let fl = &mut self.flows[f as usize];
        fl.at = at;
        changed.push(Delivery {
            id: fl.id,
            to: node_of(self.servers, fl.to as usize),
            at: dur(at),
            gen: self.next_gen,
        });
    }

    /// Moves resource `r`'s planned use before `now` into the past.
    fn commit(&mut self, r: usize, now: Ns) {
        let mut k = 0;
        while k < self.res[r].plan.len() {
            let (a, b, rate) = self.res[r].plan[k];
            if a >= now {
                break;
            }
            let b = b.min(now);
            match self.res[r].open {
                Some((oa, ob, orate)) if ob == a && orate == rate => {
                    self.res[r].open = Some((oa, b, orate));
                }
                open => {
                    if let Some((oa, ob, orate)) = open {
                        self.emit(r, oa, ob, orate);
                    }
                    self.res[r].open = Some((a, b, rate));
                }
            }
            k += 1;
        }
        // A segment cut at `now` keeps its future part.
        let res = &mut self.res[r];
        if k > 0 {
            let (_, b, rate) = res.plan[k - 1];
            if b > now {
                res.plan[k - 1] = (now, b, rate);
                k -= 1;
            }
        }
        res.plan.drain(..k);
    }

    /// Retires resource `r`'s flows that finished by `now` (their
    /// deliveries are settled), oldest first on each pair.
    fn collect(&mut self, r: usize, now: Ns) {
        let mut i = 0;
        while i < self.res[r].live.len() {
            let f = self.res[r].live[i];
            let fl = &self.flows[f as usize];
            if fl.alive && fl.done > now {
                i += 1;
                continue;
            }
            let pair = self.pair(fl.from, fl.to);
            // A pair's flows finish in order: retire the earlier ones too.
            while let Some(&g) = self.pairs[pair].queue.front() {
                let gl = &self.flows[g as usize];
                if gl.alive && gl.done > now {
                    break;
                }
                let at = gl.at;
                let p = &mut self.pairs[pair];
                p.queue.pop_front();
                p.last_at = p.last_at.max(at);
                self.retire(g);
            }
            // `f` is gone from this list now (or was dead already).
            if self.res[r].live.get(i) == Some(&f) {
                self.res[r].live.swap_remove(i);
            }
        }
    }

    /// Takes a finished flow out of both its interfaces' lists.
    fn retire(&mut self, f: u32) {
        let fl = &mut self.flows[f as usize];
        if !fl.alive {
            return;
        }
        fl.alive = false;
        let (out, inn) = fl.ports();
        for r in [out, inn] {
            if let Some(k) = self.res[r].live.iter().position(|&g| g == f) {
                self.res[r].live.swap_remove(k);
            }
        }
        self.free.push(f);
    }

    /// Plans, from `now`, the component reachable from resources `seeds`.
    fn plan(&mut self, now: Ns, mut seeds: Vec<usize>, changed: &mut Vec<Delivery>) {
        self.stamp = self.stamp.wrapping_add(1).max(1);
        let stamp = self.stamp;
        let mut comp = std::mem::take(&mut self.comp);
        let mut comp_res = std::mem::take(&mut self.comp_res);
        comp.clear();
        comp_res.clear();
        // The component: resources and flows, transitively — but not
        // through incremental transfers: their component is planned
        // incrementally already, and only what joins it needs planning
        // (a search through it would cost its size at every send).
        let mut saw_inc = false;
        while let Some(r) = seeds.pop() {
            if self.res[r].mark == stamp {
                continue;
            }
            self.res[r].mark = stamp;
            self.collect(r, now);
            self.res[r].local = comp_res.len() as u32;
            comp_res.push(r);
            for k in 0..self.res[r].live.len() {
                let f = self.res[r].live[k];
                let fl = &mut self.flows[f as usize];
                if fl.inc {
                    saw_inc = true;
                    continue;
                }
                if fl.mark == stamp {
                    continue;
                }
                fl.mark = stamp;
                comp.push(f);
                let (out, inn) = fl.ports();
                seeds.push(if out == r { inn } else { out });
            }
        }
        self.work = seeds;
        // A large component (or one that holds incremental transfers) is
        // planned incrementally: its future would be replayed at every
        // send into it, at about the square of its size.
        if saw_inc || comp.len() > self.horizon_flows {
            self.inc_plan(now, &comp, &comp_res, changed);
            self.comp = comp;
            self.comp_res = comp_res;
            return;
        }
        self.inc_seeds.clear();
        // Its past is settled; its future is planned afresh.
        for &r in &comp_res {
            self.commit(r, now);
            self.res[r].plan.clear();
        }
        // Per pair in the component: its flows in order (`order`) and a
        // cursor ([`Cursor`]).
        let mut order = std::mem::take(&mut self.order);
        let mut pos = std::mem::take(&mut self.pos);
        order.clear();
        pos.clear();
        for &f in &comp {
            let fl = &mut self.flows[f as usize];
            fl.bits_left = fl.left_at(now);
            fl.done = Ns::MAX;
            fl.segs.clear();
            let p = fl.from as usize * self.nodes + fl.to as usize;
            let pair = &self.pairs[p];
            if pair.queue.front() == Some(&f) {
                let first = order.len() as u32;
                order.extend(pair.queue.iter().copied());
                pos.push(Cursor {
                    next: first,
                    end: order.len() as u32,
                    start: fl.start,
                    last_at: pair.last_at,
                });
            }
        }
        // The component's interfaces, by their place in `comp_res`.
        let mut lres = std::mem::take(&mut self.lres);
        lres.clear();
        lres.extend(comp_res.iter().map(|&r| LocalRes {
            r,
            cap: self.res[r].cap,
            left: 0.0,
            count: 0,
            fair: 0.0,
            sum: 0.0,
            open: (0, 0, 0.0),
        }));
        // The commonest shape: a star (a node's sends of one instant to
        // idle receivers, or an incast), whose fill needs only the shared
        // interface.
        let star = if self.stars && comp_res.len() == comp.len() + 1 {
            comp_res
                .iter()
                .copied()
                .find(|&r| self.res[r].live.len() == comp.len())
                .map(|r| self.res[r].cap)
        } else {
            None
        };
        // Who transmits from `t`, in the order of their pairs' cursors. It
        // changes only as flows finish (a pair's next one takes its place
        // or waits for its start) and as waiting ones reach their start
        // (`next_start`, the earliest: then it is built again).
        let mut live = std::mem::take(&mut self.live);
        let mut spare = std::mem::take(&mut self.spare);
        live.clear();
        let mut t = now;
        let mut next_start = now;
        loop {
            if t >= next_start {
                next_start = Ns::MAX;
                spare.clear();
                let mut j = 0;
                for (c, cur) in pos.iter().enumerate() {
                    if cur.next == cur.end {
                        continue;
                    }
                    if let Some(&l) = live.get(j).filter(|l| l.cursor == c as u32) {
                        spare.push(l);
                        j += 1;
                    } else if cur.start > t {
                        next_start = next_start.min(cur.start);
                    } else {
                        spare.push(self.live_entry(order[cur.next as usize], c as u32));
                    }
                }
                std::mem::swap(&mut live, &mut spare);
            }
            if live.is_empty() {
                if next_start == Ns::MAX {
                    break;
                }
                t = next_start;
                continue;
            }
            match star {
                Some(cap) => fill_star(&mut live, cap),
                None => fill(&mut live, &mut lres),
            }
            // The next change: a finish or a start; and each interface's
            // summed rate (in the order of `live`).
            let mut next = next_start;
            for x in lres.iter_mut() {
                x.sum = 0.0;
            }
            for l in live.iter_mut() {
                l.fin = t + nanos(l.bits / l.rate);
                next = next.min(l.fin);
                if l.seg != l.rate {
                    self.flows[l.flow as usize].segs.push((t, l.rate));
                    l.seg = l.rate;
                }
                lres[l.out as usize].sum += l.rate;
                lres[l.inn as usize].sum += l.rate;
            }
            // Record the interfaces' use over [t, next).
            for x in lres.iter_mut() {
                if x.sum > 0.0 {
                    if x.open.1 == t && x.open.2 == x.sum {
                        x.open.1 = next;
                    } else {
                        if x.open.2 > 0.0 {
                            self.res[x.r].plan.push(x.open);
                        }
                        x.open = (t, next, x.sum);
                    }
                }
            }
            // Advance to `next`: some finish (their pair's next flow takes
            // their place, or waits for its start), the rest have sent
            // their part.
            let dt = secs(next.saturating_sub(t));
            let mut kept = 0;
            for k in 0..live.len() {
                // Updated in place; moved only once an earlier one left.
                if live[k].fin > next {
                    let l = &mut live[k];
                    l.bits = (l.bits - l.rate * dt).max(0.0);
                    l.frozen = false;
                    if kept != k {
                        live[kept] = live[k];
                    }
                } else {
                    let l = live[k];
                    match self.end_flow(&l, next, &mut pos, &order, changed) {
                        Ok(n) => live[kept] = n,
                        Err(start) => {
                            next_start = next_start.min(start);
                            continue;
                        }
                    }
                }
                kept += 1;
            }
            live.truncate(kept);
            t = next;
        }
        for x in &lres {
            if x.open.2 > 0.0 {
                self.res[x.r].plan.push(x.open);
            }
        }
        self.order = order;
        self.pos = pos;
        self.lres = lres;
        self.live = live;
        self.spare = spare;
        self.comp = comp;
        self.comp_res = comp_res;
    }

    /// Flow `l` ends its transmission at `t`: its delivery is predicted
    /// anew if it changed, and its pair's next flow takes its place (or
    /// waits until its start: `Err(start)`; `Err(Ns::MAX)`: none).
    fn end_flow(
        &mut self,
        l: &Live,
        t: Ns,
        pos: &mut [Cursor],
        order: &[u32],
        changed: &mut Vec<Delivery>,
    ) -> Result<Live, Ns> {
        let cur = &mut pos[l.cursor as usize];
        let fl = &mut self.flows[l.flow as usize];
        fl.done = t;
        let at = (t + fl.latency).max(cur.last_at);
        cur.last_at = at;
        cur.next += 1;
        if at != fl.at {
            self.predict(l.flow, at, changed);
        }
        if cur.next == cur.end {
            return Err(Ns::MAX);
        }
        let g = order[cur.next as usize];
        cur.start = self.flows[g as usize].start;
        if cur.start > t {
            return Err(cur.start);
        }
        Ok(self.live_entry(g, l.cursor))
    }

    /// Flow `f` (of the pair at `cursor`) as the planner sees it when it
    /// starts to transmit: its bits left are those at the planning's
    /// start.
    fn live_entry(&self, f: u32, cursor: u32) -> Live {
        let fl = &self.flows[f as usize];
        let (out, inn) = fl.ports();
        Live {
            flow: f,
            cursor,
            out: self.res[out].local,
            inn: self.res[inn].local,
            cap: fl.cap,
            bits: fl.bits_left,
            rate: 0.0,
            seg: f64::NAN,
            fin: Ns::MAX,
            frozen: false,
        }
    }
}

/// [`fill`] of a star: every flow goes through one shared interface (of
/// capacity `cap`), and each has its other interface to itself. That
/// interface never holds a flow below its own cap (a flow's cap is at most
/// either interface's capacity), so only the shared one and the caps
/// matter; the same operations in the same order as [`fill`], so the same
/// rates to the bit.
fn fill_star(live: &mut [Live], cap: f64) {
    let mut left = cap;
    let mut count = live.len() as u32;
    let mut unfrozen = live.len();
    while unfrozen > 0 {
        let fair = left / f64::from(count);
        let mut share = f64::INFINITY;
        for l in live.iter().filter(|l| !l.frozen) {
            share = share.min(fair.min(l.cap));
        }
        // Freeze every flow held to that share (`fair` stays as it is
        // until the next round).
        for l in live.iter_mut().filter(|l| !l.frozen) {
            if fair <= share || l.cap <= share {
                l.frozen = true;
                l.rate = share;
                left -= share;
                count -= 1;
                unfrozen -= 1;
            }
        }
    }
}

/// Max-min fair rates by progressive filling over the component's
/// interfaces `lres`: the tightest interface (or a flow's own cap) fixes
/// its users' rates, repeat. Each round divides once per interface in use
/// (its fair share `left / count`), not per flow. A round's share is the
/// least of the fair shares of the interfaces still in use and the caps of
/// the flows not frozen (the same least as over each unfrozen flow's
/// interfaces and cap: every interface in use has an unfrozen user), so a
/// round is one pass over the interfaces and one over the flows, which
/// freezes and finds the next round's least cap.
fn fill(live: &mut [Live], lres: &mut [LocalRes]) {
    for x in lres.iter_mut() {
        x.left = x.cap;
        x.count = 0;
    }
    let mut least_cap = f64::INFINITY;
    for l in live.iter() {
        lres[l.out as usize].count += 1;
        lres[l.inn as usize].count += 1;
        least_cap = least_cap.min(l.cap);
    }
    let mut unfrozen = live.len();
    while unfrozen > 0 {
        let mut share = least_cap;
        for x in lres.iter_mut() {
            if x.count > 0 {
                x.fair = x.left / f64::from(x.count);
                share = share.min(x.fair);
            }
        }
        // Freeze every flow held to that share (by an interface or its own
        // cap; the fair shares stay as they are until the next round).
        least_cap = f64::INFINITY;
        for l in live.iter_mut().filter(|l| !l.frozen) {
            let (o, i) = (l.out as usize, l.inn as usize);
            if lres[o].fair <= share || lres[i].fair <= share || l.cap <= share {
                l.frozen = true;
                l.rate = share;
                lres[o].left -= share;
                lres[i].left -= share;
                lres[o].count -= 1;
                lres[i].count -= 1;
                unfrozen -= 1;
            } else {
                least_cap = least_cap.min(l.cap);
            }
        }
    }
}

/// Components of more transfers than this are planned incrementally
/// (docs/cost-model.md): planning a whole future costs about the square of
/// its size at every send into it.
const HORIZON_FLOWS: usize = 64;

/// The fastest any path goes (bits per second): a petabit (bandwidths parse as finite).
const MAX_BPS: f64 = 1e15;

/// Nanoseconds of simulated time (the planner's unit: plain integers).
type Ns = u64;

/// Time to send at a rate, rounded up to the nanosecond. (`f64::ceil`
/// is a library call on baseline x86-64; this is the same value.)
fn nanos(secs: f64) -> Ns {
    let x = secs * 1e9;
    // Through a signed integer where it is the same (conversions between
    // `u64` and `f64` take several instructions on x86-64).
    if x > 0.0 && x < 4e18 {
        let n = x as i64;
        // At least 1, as `x` is positive.
        return (n + i64::from((n as f64) < x)) as Ns;
    }
    let n = x as Ns;
    let up = if (n as f64) < x {
        n.saturating_add(1)
    } else {
        n
    };
    up.max(1)
}

fn ns(d: Duration) -> Ns {
    d.as_nanos() as Ns
}

fn dur(n: Ns) -> Duration {
    Duration::from_nanos(n)
}

fn secs(n: Ns) -> f64 {
    n as f64 * 1e-9
}

/// A node's slot: the coordinator, then servers, then workers.
pub fn slot(servers: u32, n: NodeId) -> usize {
    match n {
        NodeId::Coordinator => 0,
        NodeId::Server(s) => 1 + s as usize,
        NodeId::Worker(w) => 1 + servers as usize + w as usize,
    }
}

/// The node in a slot.
pub fn node_of(servers: u32, i: usize) -> NodeId {
    match i {
        0 => NodeId::Coordinator,
        i if i <= servers as usize => NodeId::Server(i as u32 - 1),
        i => NodeId::Worker((i - 1 - servers as usize) as u32),
    }
}

#[cfg(test)]
mod tests {
    //! The planner against closed forms: every figure is exact to the
    //! nanosecond (sizes chosen so that no rounding enters).
    use super::*;

    const GBPS: f64 = 1e9;

    fn s(i: u32) -> NodeId {
        NodeId::Server(i)
    }

    fn w(i: u32) -> NodeId {
        NodeId::Worker(i)
    }

    /// Random interface capacities for 4 servers and 8 workers (most at
    /// the default).
    fn random_caps(rng: &mut rand_chacha::ChaCha8Rng) -> BTreeMap<NodeId, f64> {
        use rand::Rng;
        let mut caps = BTreeMap::new();
        for n in (0..4).map(s).chain((0..8).map(w)) {
            if rng.gen_bool(0.3) {
                caps.insert(n, f64::from(rng.gen_range(1..20)) * 1e8);
            }
        }
        caps
    }

    /// Sends message `id` at `now` between a random server and worker,
    /// with a random size, latency, slow link and late start.
    fn random_send(
        f: &mut Flows,
        rng: &mut rand_chacha::ChaCha8Rng,
        now: Duration,
        id: u64,
    ) -> Option<Delivery> {
        use rand::Rng;
        let (x, y) = (s(rng.gen_range(0..4)), w(rng.gen_range(0..8)));
        let (from, to) = if rng.gen_bool(0.5) { (x, y) } else { (y, x) };
        let bits = f64::from(rng.gen_range(1..400_000));
        let latency = Duration::from_nanos(rng.gen_range(0..100_000));
        let link = rng
            .gen_bool(0.2)
            .then(|| f64::from(rng.gen_range(1..10)) * 1e8);
        let start = now + Duration::from_nanos(rng.gen_range(0..3) * 7_919);
        f.send(now, id, from, to, bits, latency, link, start)
    }

    /// A network of 4 servers and 8 workers at 1 Gbps, no latency.
    fn flows() -> Flows {
        Flows::new(4, 8, GBPS, &BTreeMap::new())
    }

    /// Sends at `now` (`(id, from, to, bits)`), plans, and returns every
    /// message's latest delivery so far.
    struct Net {
        f: Flows,
        last: BTreeMap<u64, (u64, Duration)>,
    }

    impl Net {
        fn new(f: Flows) -> Net {
            Net {
                f,
                last: BTreeMap::new(),
            }
        }

        fn note(&mut self, d: Delivery) {
            let e = self.last.entry(d.id).or_insert((0, Duration::ZERO));
            if d.gen >= e.0 {
                *e = (d.gen, d.at);
            }
        }

        fn send(&mut self, now_us: u64, msgs: &[(u64, NodeId, NodeId, f64)]) {
            let now = Duration::from_micros(now_us);
            let mut woke = Vec::new();
            self.f.wake(now, &mut woke);
            for d in woke {
                self.note(d);
            }
            for &(id, from, to, bits) in msgs {
                if let Some(d) = self
                    .f
                    .send(now, id, from, to, bits, Duration::ZERO, None, now)
                {
                    self.note(d);
                }
            }
            let mut changed = Vec::new();
            self.f.flush(now, &mut changed);
            for d in changed {
                self.note(d);
            }
        }

        fn at_us(&mut self, id: u64) -> f64 {
            // Large components are planned one change at a time.
            let mut woke = Vec::new();
            self.f.wake(Duration::from_secs(1000), &mut woke);
            for d in woke {
                self.note(d);
            }
            self.last
                .get(&id)
                .map_or(f64::NAN, |d| d.1.as_nanos() as f64 / 1e3)
        }
    }

    /// Random sends with uneven interfaces, slow links, late starts and
    /// latencies: filling stars by [`fill_star`] and by the general
    /// [`fill`] gives the same deliveries and the same interface
    /// use, to the bit.
    #[test]
    fn a_star_is_filled_as_the_general_fill_would() {
        use rand::{Rng, SeedableRng};
        for seed in 0..300u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let caps = random_caps(&mut rng);
            let run = |star: bool| {
                let mut f = Flows::new(4, 8, GBPS, &caps);
                f.stars = star;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xabc);
                let mut out = Vec::new();
                let mut t = 0u64;
                let mut id = 0;
                for _ in 0..rng.gen_range(1..15) {
                    t += rng.gen_range(0..2_000_000);
                    let now = Duration::from_nanos(t);
                    f.wake(now, &mut out);
                    for _ in 0..rng.gen_range(1..7) {
                        id += 1;
                        out.extend(random_send(&mut f, &mut rng, now, id));
                    }
                    f.flush(now, &mut out);
                }
                f.wake(Duration::from_secs(1000), &mut out);
                f.settle(Duration::from_secs(1000));
                (out, f.drain_busy().collect::<Vec<_>>())
            };
            let (with, without) = (run(true), run(false));
            assert_eq!(with.0, without.0, "seed {seed}: deliveries");
            assert_eq!(with.1, without.1, "seed {seed}: interface use");
        }
    }

    /// Random sends with uneven interfaces, slow links, late starts,
    /// latencies and crashes: planning incrementally (every component
    /// counts as large) and planning whole futures give the same
    /// deliveries, to rounding (a nanosecond per rate change), and the
    /// same bits through every interface.
    #[test]
    fn incremental_planning_matches_whole_futures() {
        use rand::{Rng, SeedableRng};
        let mut changes = 0usize;
        for seed in 0..400u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let caps = random_caps(&mut rng);
            let run = |horizon: usize| {
                let mut f = Flows::new(4, 8, GBPS, &caps);
                f.horizon_flows = horizon;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
                let mut out = Vec::new();
                let mut dropped = Vec::new();
                let mut t = 0u64;
                let mut id = 0;
                for _ in 0..rng.gen_range(1..25) {
                    t += rng.gen_range(0..1_500_000);
                    let now = Duration::from_nanos(t);
                    f.wake(now, &mut out);
                    if rng.gen_bool(0.1) {
                        let n = if rng.gen_bool(0.5) {
                            s(rng.gen_range(0..4))
                        } else {
                            w(rng.gen_range(0..8))
                        };
                        dropped.extend(f.reset_node(now, n, &mut out));
                    }
                    for _ in 0..rng.gen_range(1..9) {
                        id += 1;
                        out.extend(random_send(&mut f, &mut rng, now, id));
                    }
                    f.flush(now, &mut out);
                }
                f.wake(Duration::from_secs(1000), &mut out);
                f.settle(Duration::from_secs(1000));
                // Each message's last prediction.
                let mut last: BTreeMap<u64, (u64, Duration)> = BTreeMap::new();
                for d in &out {
                    let e = last.entry(d.id).or_insert((0, Duration::ZERO));
                    if d.gen >= e.0 {
                        *e = (d.gen, d.at);
                    }
                }
                // Bits through each interface.
                let mut bits: BTreeMap<(NodeId, bool), f64> = BTreeMap::new();
                for b in f.drain_busy() {
                    let cap = caps.get(&b.node).copied().unwrap_or(GBPS);
                    *bits.entry((b.node, b.inbound)).or_default() +=
                        b.share * cap * (b.to - b.from).as_secs_f64();
                }
                dropped.sort_unstable();
                // A dropped message's predictions are void (the host drops
                // it); whole futures may have announced one before.
                last.retain(|id, _| dropped.binary_search(id).is_err());
                (last, bits, dropped, out.len())
            };
            let (whole, inc) = (run(usize::MAX), run(0));
            changes += inc.3;
            assert_eq!(whole.2, inc.2, "seed {seed}: dropped");
            let only_whole: Vec<_> = whole
                .0
                .iter()
                .filter(|(k, _)| !inc.0.contains_key(k))
                .collect();
            let only_inc: Vec<_> = inc
                .0
                .iter()
                .filter(|(k, _)| !whole.0.contains_key(k))
                .collect();
            assert!(
                only_whole.is_empty() && only_inc.is_empty(),
                "seed {seed}: delivered only whole {only_whole:?} only inc {only_inc:?} dropped {:?}", inc.2
            );
            for (id, (_, a)) in &whole.0 {
                let b = inc.0[id].1;
                assert!(
                    *a != Delivery::VOID && b != Delivery::VOID,
                    "seed {seed} {id}"
                );
                let d = a.as_nanos().abs_diff(b.as_nanos());
                assert!(d <= 64, "seed {seed} message {id}: {a:?} vs {b:?}");
            }
            assert_eq!(whole.1.len(), inc.1.len(), "seed {seed}");
            for (k, a) in &whole.1 {
                let b = inc.1[k];
                assert!(
                    (a - b).abs() <= 1e-6 * a.max(1.0) + 1e3,
                    "seed {seed} {k:?}: {a} vs {b} bits"
                );
            }
        }
        assert!(changes > 10_000, "{changes}");
    }

    #[test]
    fn nanos_rounds_up_as_ceil_does() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases = vec![
            0.0,
            1e-9,
            1.5e-9,
            2e-9,
            1e-3,
            0.1,
            1.0,
            3.0e9,
            f64::NAN,
            -1.0,
        ];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mantissa from the generator, exponents 2^-63 .. 2^62.
            let e = 0x3c0 + x % 0x7e;
            cases.push(f64::from_bits(x >> 12 | e << 52));
        }
        for s in cases {
            assert_eq!(nanos(s), (((s * 1e9).ceil()) as Ns).max(1), "{s}");
        }
    }

    #[test]
    fn a_transfer_alone_takes_its_size_over_the_capacity_plus_latency() {
        let mut f = flows();
        let d = f
            .send(
                Duration::ZERO,
                1,
                w(0),
                s(0),
                8e6,
                Duration::from_micros(100),
                None,
                Duration::ZERO,
            )
            .expect("alone: planned at once");
        assert_eq!(d.at, Duration::from_micros(8_100));
    }

    #[test]
    fn incast_shares_the_receivers_interface() {
        // 8 workers push 1 Mbit each into server 0 at once: 8 ms together.
        let mut n = Net::new(flows());
        let msgs: Vec<_> = (0..8).map(|i| (i as u64, w(i), s(0), 1e6)).collect();
        n.send(0, &msgs);
        for i in 0..8 {
            assert_eq!(n.at_us(i), 8_000.0, "flow {i}");
        }
    }

    #[test]
    fn fan_out_shares_the_senders_interface_and_a_short_flow_leaves_early() {
        // Server 0 answers 4 workers: three of 1 Mbit, one of 0.5 Mbit. At
        // 250 Mbps each the short one ends at 2 ms; the rest then get 333
        // Mbps: 0.5 Mbit left each, 1.5 ms more.
        let mut n = Net::new(flows());
        n.send(
            0,
            &[
                (1, s(0), w(0), 1e6),
                (2, s(0), w(1), 1e6),
                (3, s(0), w(2), 1e6),
                (4, s(0), w(3), 0.5e6),
            ],
        );
        assert_eq!(n.at_us(4), 2_000.0);
        for i in 1..=3 {
            assert_eq!(n.at_us(i), 3_500.0, "flow {i}");
        }
    }

    #[test]
    fn max_min_gives_a_flow_held_elsewhere_less_and_the_rest_more() {
        // Worker 0 sends to servers 0 and 1; worker 1 also sends to
        // server 1. Server 1's inbound is shared by two (500 Mbps each),
        // so worker 0's other flow gets the rest of its outbound: 500.
        // Worker 1 to server 1 and worker 0 to server 1 both: 500 Mbps.
        // Then worker 2 sends into server 0 too: server 0's inbound is
        // shared by w0->s0 and w2->s0 (500 each), w0's outbound still fits.
        let mut n = Net::new(flows());
        n.send(
            0,
            &[
                (1, w(0), s(0), 1e6),
                (2, w(0), s(1), 1e6),
                (3, w(1), s(1), 1e6),
            ],
        );
        // All at 500 Mbps: 2 ms.
        for i in 1..=3 {
            assert_eq!(n.at_us(i), 2_000.0, "flow {i}");
        }
        // A flow held by its receiver leaves the sender's spare capacity
        // to its sibling: w3 -> s2 shares s2 with three others.
        let mut n = Net::new(flows());
        n.send(
            0,
            &[
                (1, w(3), s(2), 1e6),
                (2, w(4), s(2), 1e6),
                (3, w(5), s(2), 1e6),
                (4, w(6), s(2), 1e6),
                (5, w(3), s(3), 1.5e6),
            ],
        );
        // s2 inbound: 4 flows at 250 Mbps, done at 4 ms; w3's outbound
        // gives the rest, 750 Mbps, to w3 -> s3: 1.5 Mbit in 2 ms.
        for i in 1..=4 {
            assert_eq!(n.at_us(i), 4_000.0, "flow {i}");
        }
        assert_eq!(n.at_us(5), 2_000.0);
    }

    #[test]
    fn a_later_send_slows_a_transfer_under_way() {
        // 2 Mbit alone from 0; at 1 ms a second 0.5 Mbit joins the same
        // receiver: both at 500 Mbps; the second ends at 2 ms, the first
        // then has 0.5 Mbit left at full rate: 2.5 ms.
        let mut n = Net::new(flows());
        n.send(0, &[(1, w(0), s(0), 2e6)]);
        assert_eq!(n.at_us(1), 2_000.0);
        n.send(1_000, &[(2, w(1), s(0), 0.5e6)]);
        assert_eq!(n.at_us(2), 2_000.0);
        assert_eq!(n.at_us(1), 2_500.0);
    }

    #[test]
    fn a_pair_sends_in_order_one_at_a_time() {
        let mut n = Net::new(flows());
        n.send(0, &[(1, w(0), s(0), 1e6), (2, w(0), s(0), 1e6)]);
        assert_eq!(n.at_us(1), 1_000.0);
        assert_eq!(n.at_us(2), 2_000.0);
    }

    #[test]
    fn a_slow_link_caps_its_path_and_others_take_the_rest() {
        // w0 -> s0 capped at 100 Mbps; w0 -> s1 gets 900 Mbps.
        let mut f = flows();
        let mut changed = Vec::new();
        let z = Duration::ZERO;
        let mut all = Vec::new();
        all.extend(f.send(z, 1, w(0), s(0), 1e5, z, Some(1e8), z));
        all.extend(f.send(z, 2, w(0), s(1), 9e5, z, None, z));
        f.flush(z, &mut changed);
        all.extend(changed);
        let at = |id| {
            all.iter()
                .filter(|d| d.id == id)
                .max_by_key(|d| d.gen)
                .expect("delivered")
                .at
        };
        assert_eq!(at(1), Duration::from_millis(1));
        assert_eq!(at(2), Duration::from_millis(1));
    }

    #[test]
    fn a_crash_drops_its_transfers_and_the_others_speed_up() {
        let mut n = Net::new(flows());
        n.send(0, &[(1, w(0), s(0), 1e6), (2, w(1), s(0), 1e6)]);
        assert_eq!(n.at_us(1), 2_000.0);
        let mut changed = Vec::new();
        let gone =
            n.f.reset_node(Duration::from_micros(500), w(1), &mut changed);
        assert_eq!(gone, vec![2]);
        for d in changed {
            n.note(d);
        }
        // 0.25 Mbit sent by 0.5 ms; 0.75 Mbit left at 1 Gbps.
        assert_eq!(n.at_us(1), 1_250.0);
    }

    #[test]
    fn interfaces_report_their_busy_share() {
        let mut n = Net::new(flows());
        n.send(0, &[(1, w(0), s(0), 1e6), (2, w(1), s(0), 1e6)]);
        n.f.settle(Duration::from_millis(10));
        let busy: Vec<Busy> = n.f.drain_busy().collect();
        let s0_in: Vec<_> = busy
            .iter()
            .filter(|b| b.node == s(0) && b.inbound)
            .collect();
        assert_eq!(s0_in.len(), 1);
        assert_eq!(
            (s0_in[0].from, s0_in[0].to, s0_in[0].share),
            (Duration::ZERO, Duration::from_millis(2), 1.0)
        );
        let w0_out: Vec<_> = busy
            .iter()
            .filter(|b| b.node == w(0) && !b.inbound)
            .collect();
        assert_eq!(w0_out[0].share, 0.5);
    }
}
