//! Large components, planned incrementally: a component of more than
//! [`super::HORIZON_FLOWS`] transfers (or one that already holds such
//! transfers) is no longer played out to its end at every send into it.
//! Each of its transfers keeps its rate and the bits it had left when the
//! rate was set; a change (a transfer ends or starts, a node crashes)
//! re-fills only the transfers whose max-min rate can move:
//!
//! - the *saturated* interfaces a change touches (an interface carrying
//!   its capacity, give or take 10^-9: only there can a transfer be held),
//!   with every transfer through them, transitively through the other
//!   saturated interfaces those transfers use;
//! - every other interface those transfers use is a *boundary*: the
//!   transfers outside keep their rates, and the ones inside may take what
//!   it has left. If the re-fill would fill a boundary (it becomes the
//!   interface that holds a transfer), it joins the saturated set and the
//!   re-fill starts over.
//!
//! This is exact max-min: a transfer outside is held by a saturated
//! interface that no transfer inside uses (or by its own cap), so its
//! share there and its rate are unchanged; boundaries are not saturated
//! before and, by the check, not filled after. The same rates as a whole
//! re-fill, up to rounding: a transfer's end can differ by a nanosecond
//! from planning its whole component at once (a test bounds it).
//!
//! An incast of n transfers into one saturated interface costs O(n) per
//! change (every transfer there changes rate), not O(component).
//!
//! May import: `super` (the flow planner). Never: a host.

use super::{nanos, secs, Delivery, Flows, Ns};
use std::cmp::Reverse;

/// Relative slack under which an interface counts as saturated.
const SATURATED: f64 = 1e-9;

impl Flows {
    /// Whether interface `r` carries its capacity.
    fn saturated(&self, r: usize) -> bool {
        self.res[r].load >= self.res[r].cap * (1.0 - SATURATED)
    }

    /// Sets flow `f`'s next change at `t` (replacing any earlier one,
    /// which is void from now).
    fn schedule(&mut self, t: Ns, f: u32) {
        let fl = &mut self.flows[f as usize];
        fl.evt = t;
        self.events.push(Reverse((t, f, fl.evseq)));
        if self.events.len() > 2 * self.swept + 1024 {
            // Void entries are dropped as time reaches them; a sweep once
            // the heap doubles bounds the rest (constant time per change,
            // amortized).
            let flows = &self.flows;
            self.events
                .retain(|&Reverse((t, f, seq))| Self::due(flows, t, f, seq));
            self.swept = self.events.len();
        }
    }

    /// Removes flow `f`'s next change (its entry is void from now).
    fn unschedule(&mut self, f: u32) {
        self.flows[f as usize].evt = Ns::MAX;
    }

    /// Whether an entry of [`Flows::events`] is flow `f`'s next change.
    fn due(flows: &[super::Flow], t: Ns, f: u32, seq: u32) -> bool {
        let fl = &flows[f as usize];
        fl.evt == t && fl.evseq == seq
    }

    /// The earliest change (void entries on top are dropped).
    fn next_event(&mut self) -> Option<(Ns, u32)> {
        while let Some(&Reverse((t, f, seq))) = self.events.peek() {
            if Self::due(&self.flows, t, f, seq) {
                return Some((t, f));
            }
            self.events.pop();
        }
        None
    }

    /// Whether flow `f` is the first unfinished one of its pair.
    fn is_head(&self, f: u32) -> bool {
        let fl = &self.flows[f as usize];
        self.pairs[self.pair(fl.from, fl.to)].queue.front() == Some(&f)
    }

    /// Takes over the transfers `comp` (not planned incrementally yet; on
    /// the interfaces `comp_res`) at `now`: they are from now on, and every
    /// one that may send joins the re-fill.
    pub(super) fn inc_plan(
        &mut self,
        now: Ns,
        comp: &[u32],
        comp_res: &[usize],
        changed: &mut Vec<Delivery>,
    ) {
        for &r in comp_res {
            // A whole-future plan's use is void past `now`; an incremental
            // interface keeps its open entry.
            self.commit(r, now);
            let inc = self.res[r]
                .live
                .iter()
                .any(|&f| self.flows[f as usize].inc && self.flows[f as usize].alive);
            if !inc {
                self.res[r].plan.clear();
            }
        }
        let mut joins = Vec::new();
        for &f in comp {
            if self.flows[f as usize].inc {
                continue;
            }
            let head = self.is_head(f);
            let fl = &mut self.flows[f as usize];
            fl.bits_left = fl.left_at(now);
            fl.segs.clear();
            fl.inc = true;
            fl.rate = 0.0;
            fl.t_rate = now;
            fl.done = Ns::MAX;
            let announced = fl.at != Ns::MAX;
            if announced {
                // Its planned delivery is void: it is announced when it ends.
                self.predict(f, Ns::MAX, changed);
            }
            let fl = &self.flows[f as usize];
            if head {
                if fl.start <= now {
                    joins.push(f);
                } else {
                    let start = fl.start;
                    self.schedule(start, f);
                }
            }
        }
        let seeds = std::mem::take(&mut self.inc_seeds);
        self.refill(now, &joins, &seeds);
        // No void entry on top (a re-fill may have had nothing to do).
        self.next_event();
    }

    /// Plays the incremental transfers' ends and starts due by `now`, in
    /// time order, re-filling once per instant.
    pub(super) fn inc_run(&mut self, now: Ns, changed: &mut Vec<Delivery>) {
        while let Some((t, _)) = self.next_event() {
            if t > now {
                break;
            }
            let mut joins = Vec::new();
            let mut seeds = std::mem::take(&mut self.inc_seeds);
            while let Some((t2, f)) = self.next_event() {
                if t2 != t {
                    break;
                }
                self.unschedule(f);
                if self.flows[f as usize].rate > 0.0 {
                    self.finish(f, t, &mut seeds, &mut joins, changed);
                } else {
                    self.flows[f as usize].t_rate = t;
                    joins.push(f);
                }
            }
            self.refill(t, &joins, &seeds);
        }
    }

    /// Transfer `f` sent its last bit at `t`: its delivery is announced,
    /// it leaves its pair and interfaces, and the next on its pair may
    /// start.
    fn finish(
        &mut self,
        f: u32,
        t: Ns,
        seeds: &mut Vec<usize>,
        joins: &mut Vec<u32>,
        changed: &mut Vec<Delivery>,
    ) {
        let (out, inn) = self.flows[f as usize].ports();
        for r in [out, inn] {
            if self.saturated(r) {
                seeds.push(r);
            }
        }
        let p = {
            let fl = &self.flows[f as usize];
            self.pair(fl.from, fl.to)
        };
        let at = {
            let fl = &mut self.flows[f as usize];
            fl.done = t;
            fl.bits_left = 0.0;
            fl.rate = 0.0;
            (t + fl.latency).max(self.pairs[p].last_at)
        };
        self.predict(f, at, changed);
        let pair = &mut self.pairs[p];
        debug_assert_eq!(pair.queue.front(), Some(&f));
        pair.queue.pop_front();
        pair.last_at = pair.last_at.max(at);
        let next = pair.queue.front().copied();
        self.retire(f);
        for r in [out, inn] {
            self.set_load(r, t);
        }
        // (A transfer sent since the last planning is taken over by it.)
        if let Some(h) = next.filter(|&h| self.flows[h as usize].inc) {
            let hl = &mut self.flows[h as usize];
            if hl.start <= t {
                hl.t_rate = t;
                joins.push(h);
            } else {
                let start = hl.start;
                self.schedule(start, h);
            }
        }
    }

    /// Drops incremental transfer `f` (its node crashed) at `now`; the
    /// interfaces it leaves that were saturated are re-filled at the next
    /// planning.
    pub(super) fn inc_drop(&mut self, f: u32) {
        self.unschedule(f);
        let fl = &mut self.flows[f as usize];
        let (out, inn) = fl.ports();
        fl.rate = 0.0;
        for r in [out, inn] {
            if self.saturated(r) {
                self.inc_seeds.push(r);
            }
        }
        self.next_event();
    }

    /// Re-fills, at `t`, the transfers that start (`joins`) and those
    /// through the saturated interfaces `seeds` (where a transfer ended),
    /// with every transfer their rates can move (see the module docs).
    fn refill(&mut self, t: Ns, joins: &[u32], seeds: &[usize]) {
        if joins.is_empty() && seeds.is_empty() {
            return;
        }
        self.istamp = self.istamp.wrapping_add(1).max(1);
        let st = self.istamp;
        let mut pf = std::mem::take(&mut self.pf);
        let mut queue = std::mem::take(&mut self.pq);
        pf.clear();
        queue.clear();
        for &r in seeds {
            self.refill_whole(r, st, &mut queue);
        }
        for &f in joins {
            self.add_to_fill(f, st, &mut pf, &mut queue);
        }
        loop {
            while let Some(r) = queue.pop() {
                for k in 0..self.res[r].live.len() {
                    let g = self.res[r].live[k];
                    let gl = &self.flows[g as usize];
                    if gl.alive && gl.rate > 0.0 && gl.pmark != st {
                        self.add_to_fill(g, st, &mut pf, &mut queue);
                    }
                }
            }
            let bound = self.inc_fill(&pf, st);
            if bound.is_empty() {
                break;
            }
            for r in bound {
                self.refill_whole(r, st, &mut queue);
            }
        }
        // Apply: a transfer whose rate moved gets its bits brought up to
        // `t` and a new end.
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.clear();
        for (i, &g) in pf.iter().enumerate() {
            let new = self.prate[i];
            let fl = &mut self.flows[g as usize];
            if new == fl.rate {
                continue;
            }
            if fl.rate > 0.0 {
                fl.bits_left = (fl.bits_left - fl.rate * secs(t - fl.t_rate)).max(0.0);
            }
            fl.t_rate = t;
            fl.rate = new;
            let (fin, (out, inn)) = (t + nanos(fl.bits_left / new), fl.ports());
            self.schedule(fin, g);
            for r in [out, inn] {
                if self.res[r].dirty != st {
                    self.res[r].dirty = st;
                    dirty.push(r);
                }
            }
        }
        for &r in &dirty {
            self.set_load(r, t);
        }
        self.dirty = dirty;
        self.pf = pf;
        self.pq = queue;
        // No void entry on top: the host wakes for the first.
        self.next_event();
    }

    /// Interface `r` is re-filled whole (all its transfers) in the re-fill
    /// stamped `st`: queued for its transfers once.
    fn refill_whole(&mut self, r: usize, st: u32, queue: &mut Vec<usize>) {
        if self.res[r].full != st {
            self.res[r].full = st;
            queue.push(r);
        }
    }

    /// Puts transfer `g` into the re-fill stamped `st`: each of its
    /// interfaces is re-filled whole if saturated, a boundary otherwise.
    fn add_to_fill(&mut self, g: u32, st: u32, pf: &mut Vec<u32>, queue: &mut Vec<usize>) {
        self.flows[g as usize].pmark = st;
        pf.push(g);
        let (out, inn) = self.flows[g as usize].ports();
        let rate = self.flows[g as usize].rate;
        for r in [out, inn] {
            if self.res[r].full == st {
                continue;
            }
            if self.saturated(r) {
                self.refill_whole(r, st, queue);
                continue;
            }
            if self.res[r].bnd != st {
                self.res[r].bnd = st;
                self.res[r].pold = 0.0;
            }
            self.res[r].pold += rate;
        }
    }

    /// Max-min rates of the transfers `pf` by progressive filling (into
    /// `prate`): an interface re-filled whole offers its capacity, a
    /// boundary what the transfers outside leave. Returns the boundaries
    /// that would hold a transfer (then the fill is void). (A heap of fair
    /// shares instead of rounds was slower: re-fills take a round or two.)
    fn inc_fill(&mut self, pf: &[u32], st: u32) -> Vec<usize> {
        let mut used = std::mem::take(&mut self.used);
        used.clear();
        self.prate.clear();
        self.prate.resize(pf.len(), 0.0);
        for &g in pf {
            let (out, inn) = self.flows[g as usize].ports();
            for r in [out, inn] {
                if self.count[r] == 0 {
                    used.push(r);
                    let res = &self.res[r];
                    self.left[r] = if res.full == st {
                        res.cap
                    } else {
                        (res.cap - res.load + res.pold).max(0.0)
                    };
                }
                self.count[r] += 1;
            }
        }
        let mut act = std::mem::take(&mut self.act);
        act.clear();
        act.extend(0..pf.len() as u32);
        let mut bound = Vec::new();
        while !act.is_empty() {
            for &r in &used {
                if self.count[r] > 0 {
                    self.fair[r] = self.left[r] / f64::from(self.count[r]);
                }
            }
            let mut share = f64::INFINITY;
            for &i in &act {
                let fl = &self.flows[pf[i as usize] as usize];
                let (out, inn) = fl.ports();
                share = share.min(self.fair[out].min(self.fair[inn]).min(fl.cap));
            }
            for &r in &used {
                if self.count[r] > 0 && self.fair[r] <= share && self.res[r].full != st {
                    bound.push(r);
                }
            }
            if !bound.is_empty() {
                break;
            }
            // Freeze every transfer held to that share (this round's fair
            // shares decide; what they leave is charged as they freeze).
            let mut k = 0;
            while k < act.len() {
                let i = act[k] as usize;
                let fl = &self.flows[pf[i] as usize];
                let (out, inn) = fl.ports();
                if self.fair[out] <= share || self.fair[inn] <= share || fl.cap <= share {
                    self.prate[i] = share;
                    self.left[out] -= share;
                    self.left[inn] -= share;
                    self.count[out] -= 1;
                    self.count[inn] -= 1;
                    act.swap_remove(k);
                } else {
                    k += 1;
                }
            }
        }
        for &r in &used {
            self.left[r] = 0.0;
            self.count[r] = 0;
        }
        self.used = used;
        self.act = act;
        bound
    }

    /// Interface `r`'s use from `t`: the sum of its transfers' rates,
    /// recorded for the load report.
    pub(super) fn set_load(&mut self, r: usize, t: Ns) {
        let mut load = 0.0;
        for &f in &self.res[r].live {
            let fl = &self.flows[f as usize];
            if fl.alive {
                load += fl.rate;
            }
        }
        // The past goes to the report now (an incremental interface's plan
        // would otherwise grow with every change until the next send).
        self.commit(r, t);
        let res = &mut self.res[r];
        res.load = load;
        let plan = &mut res.plan;
        if let Some(last) = plan.last_mut() {
            if last.1 == Ns::MAX {
                if last.2 == load {
                    return;
                }
                if last.0 == t {
                    plan.pop();
                } else {
                    last.1 = t;
                }
            }
        }
        if load > 0.0 {
            match plan.last_mut() {
                Some(last) if last.1 == t && last.2 == load => last.1 = Ns::MAX,
                _ => plan.push((t, Ns::MAX, load)),
            }
        }
    }
}
