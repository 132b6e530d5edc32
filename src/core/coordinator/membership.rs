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
//!   out: their clocks are unknown), and never below an earlier admission
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

/// An admission waiting for servers to acknowledge its membership version.
#[derive(Clone, Copy, Debug)]
pub(super) struct Admission {
    incarnation: u32,
    start_clock: Clock,
    version: u64,
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

    /// Completes the admissions whose membership every server holds.
    pub(super) fn complete_admissions(&mut self, out: &mut Vec<Command>) {
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
}
