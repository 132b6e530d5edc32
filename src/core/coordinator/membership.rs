//! Worker membership:
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
//!   out: their clocks are unknown), nor below a committed widening's
//!   boundary (`crate::core::widen`), and never below an earlier admission
//!   of the same life (servers may count its clocks up to there already): the coordinator publishes the membership with it, waits
//!   until every server acknowledged that version, and only then reports
//!   `worker_admitted` and sends `Admit` to the worker. So no server counts
//!   the worker later than the event says, and no read can be judged against
//!   a membership a server had not seen.
//!
//! Here: worker heartbeats, admissions and the messages that carry the
//! membership. (Removal happens in the failure check, in `mod.rs`.)
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the coordinator does no I/O of its own.

use super::{Coordinator, WorkerStatus};
use crate::core::event::Event;
use crate::core::ids::{Clock, NodeId, WorkerId};
use crate::core::msg::Message;
use crate::core::view::Member;
use crate::core::Command;
use std::time::Duration;

/// An admission under way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Admission {
    incarnation: u32,
    /// The start clock: proposed while fencing, final once admitting.
    start_clock: Clock,
    /// The membership version whose acknowledgement ends this phase.
    version: u64,
    phase: Phase,
}

/// The two phases of an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Earlier lives fenced off; waiting for every server's replicas to
    /// apply it and report how many clocks of the worker they hold.
    Fencing,
    /// Admitted at the final start clock; waiting for every server's
    /// replicas to apply it.
    Admitting,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_worker_heartbeat(
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
                let admitting = self.pending.contains_key(&worker);
                if (joining || clock < m.start_clock) && !admitting {
                    // Admitted, but the worker missed the Admit (it is
                    // still joining, or behind its start clock, where its
                    // pushes are refused): resend.
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
        // Never before a committed widening's boundary: its replicas no
        // longer serve the clocks before it (`crate::core::widen`).
        let widened = self
            .changes
            .iter()
            .filter(|(_, c)| c.widens())
            .map(|&(b, _)| b)
            .max()
            .unwrap_or(Clock(0));
        let start_clock = clock
            .max(others.unwrap_or(clock))
            .max(widened)
            .min(Clock(self.cfg.clocks))
            .max(floor);
        if let Some(s) = self.workers.get_mut(&worker) {
            // Later admissions count it at least at the clock proposed.
            s.clock = start_clock;
        }
        if let Some(old) = self.membership.members.remove(&worker) {
            // A new life of a member: its old life is dead, and stops
            // counting as soon as servers see the new membership.
            out.push(Command::Emit(Event::WorkerRemoved {
                worker,
                incarnation: old.incarnation,
            }));
        }
        // Phase one: heads refuse the pushes of earlier lives from here on.
        self.membership.fence(worker, incarnation, Clock(0));
        self.membership.version += 1;
        self.pending.insert(
            worker,
            Admission {
                incarnation,
                start_clock,
                version: self.membership.version,
                phase: Phase::Fencing,
            },
        );
        self.publish(out);
        self.complete_admissions(out);
    }

    pub(super) fn send_membership(&self, to: NodeId, out: &mut Vec<Command>) {
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

    /// The membership version every server of the view has applied to all
    /// its replicas (with `reported`: acknowledged with a report of what
    /// they hold).
    fn applied_by_view(&self, reported: bool) -> u64 {
        // Servers in the view gate reads; the others hold no replica.
        self.view
            .servers()
            .into_iter()
            .filter_map(|n| n.server())
            .map(|s| {
                let report = self.reports.get(&s).map_or(0, |r| r.0);
                let heartbeat = self.servers.get(&s).map_or(0, |&(_, v)| v);
                if reported {
                    report
                } else {
                    report.max(heartbeat)
                }
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Moves admissions on: a fenced one is admitted above every clock
    /// the replicas hold of the worker (so no read made while an earlier
    /// life was a member can have needed a clock it will push), and an
    /// admitted one is announced once every server's replicas count it.
    pub(super) fn complete_admissions(&mut self, out: &mut Vec<Command>) {
        let reported = self.applied_by_view(true);
        let fenced: Vec<WorkerId> = self
            .pending
            .iter()
            .filter(|(_, a)| a.phase == Phase::Fencing && a.version <= reported)
            .map(|(&w, _)| w)
            .collect();
        if !fenced.is_empty() {
            self.membership.version += 1;
            for w in fenced {
                let held = self.held_clocks(w);
                let a = self.pending.get_mut(&w).expect("listed");
                a.start_clock = a.start_clock.max(held);
                a.phase = Phase::Admitting;
                a.version = self.membership.version;
                let member = Member {
                    incarnation: a.incarnation,
                    start_clock: a.start_clock,
                };
                self.admitted.insert(w, member);
                self.membership.members.insert(w, member);
                self.membership
                    .fence(w, member.incarnation, member.start_clock);
                if let Some(s) = self.workers.get_mut(&w) {
                    s.clock = s.clock.max(member.start_clock);
                }
            }
            self.publish(out);
        }
        let acked = self.applied_by_view(false);
        let done: Vec<WorkerId> = self
            .pending
            .iter()
            .filter(|(_, a)| a.phase == Phase::Admitting && a.version <= acked)
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

    /// The most clocks of `worker` (any life) that the view's servers
    /// reported holding.
    fn held_clocks(&self, worker: WorkerId) -> Clock {
        self.view
            .servers()
            .into_iter()
            .filter_map(|n| n.server())
            .filter_map(|s| self.reports.get(&s))
            .filter_map(|(_, done)| done.get(&worker).map(|&(_, d)| d))
            .max()
            .unwrap_or(Clock(0))
    }
}
