//! Pulls: a pull waits at the tail until the consistency gate allows it
//! (SSP bound, live-change fence, live changes known), then is answered
//! with the replica's values (under the pull filter, only what moved:
//! see `Replica::read`). Pending pulls are served again whenever
//! something may have opened the gate; `serve_all` also releases the
//! pushes a fence held.
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::Server;
use crate::core::bugs::Bug;
use crate::core::event::Event;
use crate::core::gate::Blocked;
use crate::core::ids::{Clock, Epoch, NodeId, RangeId, WorkerId};
use crate::core::msg::{Keys, Message};
use crate::core::Command;
use std::time::Duration;

/// A pull waiting at the gate.
#[derive(Clone, Debug)]
pub(super) struct PendingPull {
    pub(super) worker: WorkerId,
    pub(super) clock: Clock,
    pub(super) keys: Keys,
    /// Live changes the worker holds.
    pub(super) changes: u64,
    /// Digest of the values the worker holds (pull filter; 0: none).
    pub(super) base: u64,
}

impl Server {
    pub(super) fn on_pull(
        &mut self,
        range: RangeId,
        incarnation: u32,
        pull: PendingPull,
        out: &mut Vec<Command>,
    ) {
        let (worker, clock) = (pull.worker, pull.clock);
        let Some(rep) = self.replicas.get_mut(&range) else {
            return;
        };
        let before = rep.table.done(worker);
        if rep.lost_history {
            // Only a state started over needs (and may trust) this: here
            // every acknowledgement came from this replica itself. On a
            // copy, an acknowledgement may come from the tail before it (the
            // chain is being extended) ahead of the entry reaching us.
            rep.table.record_progress(worker, incarnation, clock);
        }
        let progressed = rep.table.done(worker) != before;
        // A retry of a pull already waiting replaces it.
        rep.pending
            .retain(|p| !(p.worker == worker && p.clock == clock));
        rep.pending.push(pull);
        if progressed {
            self.serve_pending(range, out);
        } else {
            self.serve_last(range, out);
        }
        // A read past the lease was not answered above: ask for one.
        self.ask_lease(Some(clock), out);
    }

    pub(super) fn serve_all(&mut self, out: &mut Vec<Command>) {
        if self.fence.is_none() {
            for (from, range, worker, seq, clock, keys, values) in
                std::mem::take(&mut self.held_pushes)
            {
                if self.view.head(range) == Some(self.id) {
                    self.on_push(from, range, worker, seq, clock, keys, values, out);
                }
            }
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.log_widen(r, out);
            self.serve_pending(r, out);
        }
    }

    /// Whether this server holds every live change the reader holds (if
    /// not, it is behind — cut off from the coordinator — and waits until
    /// its heartbeat brings them).
    fn knows(&self, p: &PendingPull) -> bool {
        p.changes <= self.changes.len() as u64
    }

    /// Why the gate holds a read of `range` for `clock` (`None`: it may be
    /// answered).
    pub fn gate(&self, range: RangeId, clock: Clock) -> Option<Blocked> {
        let rep = self.replicas.get(&range)?;
        if self.fence.is_some_and(|(_, _, max)| clock > max) {
            // A live change is being prepared: clocks past the fence wait
            // for its boundary.
            return Some(Blocked {
                worker: WorkerId::MAX,
                done: None,
                needed: clock,
            });
        }
        if self.cfg.read_leases && !self.leased(clock) {
            // No lease (or past its ceiling): the coordinator may have
            // removed this replica and admitted workers it has not heard
            // of. Wait for a lease.
            return Some(Blocked {
                worker: WorkerId::MAX,
                done: None,
                needed: clock,
            });
        }
        if rep.widened != self.level_at(clock) && !self.cfg.bugs.has(Bug::UnwidenedRead) {
            // The read needs the model of its clock: a widening due and
            // not yet applied here (it waits for the entry), or one applied
            // past the clock (only a non-member or a stale retry asks: it
            // waits until it gives up).
            return Some(Blocked {
                worker: WorkerId::MAX,
                done: None,
                needed: clock,
            });
        }
        let bound = self.schedule.at(clock).consistency.bound();
        rep.table.check(clock, bound, self.cfg.bugs).err()
    }

    /// Whether the lease allows answering a read for `clock` now.
    fn leased(&self, clock: Clock) -> bool {
        self.lease.is_some_and(|(expiry, epoch, ceiling)| {
            self.now < expiry && self.view.epoch >= epoch && clock <= ceiling
        })
    }

    /// How long a lease lasts from the heartbeat that earned it: one
    /// heartbeat period short of the timeout after which the coordinator
    /// removes a silent server, so every lease of a removed server has
    /// expired (with a period of margin for clock drift in real mode).
    pub(super) fn lease_duration(&self) -> Duration {
        self.cfg
            .heartbeat_timeout
            .saturating_sub(self.cfg.heartbeat_interval)
    }

    /// A lease from the coordinator (answering the heartbeat sent at
    /// `sent`); during a live change's preparation it carries the
    /// `Prepare`, handled first.
    pub(super) fn on_lease(
        &mut self,
        epoch: Epoch,
        sent: Duration,
        ceiling: Clock,
        prepare: Option<(u64, u64)>,
        out: &mut Vec<Command>,
    ) {
        if let Some((k, attempt)) = prepare {
            self.on_prepare(k, attempt, out);
        }
        let expiry = sent + self.lease_duration();
        if expiry <= self.now || self.lease.is_some_and(|(e, _, _)| e > expiry) {
            return;
        }
        self.lease = Some((expiry, epoch, ceiling));
        self.lease_asked = None;
        self.serve_all(out);
        self.ask_lease(None, out);
    }

    /// Asks the coordinator for a lease at once (a heartbeat out of turn)
    /// when a read waits only for one — past the ceiling or the expiry of
    /// the lease held — instead of waiting for the next heartbeat: a run
    /// whose clocks are much faster than the heartbeat period would stall
    /// at every ceiling. At most one request per heartbeat period is
    /// outstanding. `read`: the clock of the read just held (only it is
    /// checked); `None`: every held read.
    pub(super) fn ask_lease(&mut self, read: Option<Clock>, out: &mut Vec<Command>) {
        if !self.cfg.read_leases {
            return;
        }
        if self
            .lease_asked
            .is_some_and(|t| self.now.saturating_sub(t) < self.cfg.heartbeat_interval)
        {
            return;
        }
        let waits =
            |clock: Clock| !self.leased(clock) && self.fence.is_none_or(|(_, _, max)| clock <= max);
        let waiting = match read {
            // A new read: only it can have changed anything.
            Some(clock) => waits(clock),
            None => self
                .replicas
                .values()
                .any(|rep| rep.pending.iter().any(|p| waits(p.clock))),
        };
        if waiting {
            self.lease_asked = Some(self.now);
            self.report(out);
        }
    }

    /// Answers every pending pull of `range` the gate now allows, oldest
    /// first.
    pub(super) fn serve_pending(&mut self, range: RangeId, out: &mut Vec<Command>) {
        let Some(rep) = self.replicas.get(&range) else {
            return;
        };
        if rep.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.replicas.get_mut(&range).expect("held").pending);
        let mut still = Vec::new();
        for p in pending {
            if self.gate(range, p.clock).is_none() && self.knows(&p) {
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
        if self.gate(range, p.clock).is_none() && self.knows(&p) {
            self.replicas.get_mut(&range).expect("held").pending.pop();
            self.answer(range, &p, out);
        }
    }

    fn answer(&mut self, range: RangeId, p: &PendingPull, out: &mut Vec<Command>) {
        self.max_answered = self.max_answered.max(p.clock);
        let threshold = self.cfg.compression.pull_threshold;
        let (values, held, base) = self.replicas.get_mut(&range).expect("held").read(
            &p.keys,
            p.worker,
            p.base,
            threshold,
            self.cfg.bugs,
        );
        let bound = self.schedule.at(p.clock).consistency.bound();
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
                values,
                schedule: crate::core::config::numbered(&self.changes, p.changes),
                held,
                base,
            },
        });
    }
}
