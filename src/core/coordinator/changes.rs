//! Live changes, coordinator side: at each change's time every server of
//! the view is asked to fence (`Prepare`); once all have, the change is
//! committed at a boundary past every clock answered or reported, and
//! broadcast. Nodes that missed commits are sent them. (An attempt not
//! prepared in time is aborted in the failure check, in `mod.rs`.)
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the coordinator does no I/O of its own.

use super::Coordinator;
use crate::core::config::Change;
use crate::core::ids::{Clock, NodeId};
use crate::core::msg::Message;
use crate::core::{Command, Timer};
use std::collections::BTreeMap;
use std::time::Duration;

/// A live change being prepared.
#[derive(Clone, Debug)]
pub(super) struct Preparing {
    pub(super) k: u64,
    pub(super) attempt: u64,
    pub(super) started: Duration,
    /// Server -> highest clock it has answered (it is fenced there), and
    /// the life that answered.
    pub(super) prepared: BTreeMap<u32, (Clock, u32)>,
}

impl Coordinator {
    /// Arms the timer of the next live change not yet committed.
    pub(super) fn arm_change(&self, now: Duration, out: &mut Vec<Command>) {
        let k = self.changes.len();
        if let Some(&(at, _)) = self.cfg.changes.get(k) {
            out.push(Command::SetTimer {
                timer: Timer::Change { k: k as u64 + 1 },
                after: at.saturating_sub(now),
            });
        }
    }

    /// Committed changes from number `after + 1` on: (k, boundary, change).
    pub(super) fn committed(&self, after: u64) -> Vec<(u64, Clock, Change)> {
        crate::core::config::numbered(&self.changes, after)
    }

    /// Sends `to` the committed changes it lacks (it holds `has`).
    pub(super) fn send_changes(&self, to: NodeId, has: u64, out: &mut Vec<Command>) {
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
    pub(super) fn prepare(&mut self, now: Duration, k: u64, out: &mut Vec<Command>) {
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

    pub(super) fn on_prepared(
        &mut self,
        now: Duration,
        k: u64,
        attempt: u64,
        s: u32,
        (max, incarnation): (Clock, u32),
        out: &mut Vec<Command>,
    ) {
        let Some(p) = &mut self.preparing else { return };
        if p.k != k || p.attempt != attempt {
            return;
        }
        p.prepared.insert(s, (max, incarnation));
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
        // And past the lease ceiling of every server that did not fence (it
        // left the view meanwhile): it may have answered reads up to it
        // until its lease expired (`read_leases`; without leases this
        // window stays open, docs/protocol.md). A report covers only the
        // reporting life: what an earlier life served (under a lease
        // granted before a restart of it or of the coordinator) is covered
        // by the durable bounds.
        let unfenced = self
            .ceiling_bounds
            .iter()
            .map(|(s, b)| {
                let reported = p.prepared.get(s).map(|&(_, life)| life);
                b.uncovered(reported, self.ceilings.get(s).copied())
            })
            .max()
            .unwrap_or(Clock(0));
        let boundary = p
            .prepared
            .values()
            .map(|&(c, _)| c)
            .max()
            .unwrap_or(Clock(0))
            .max(reported)
            .max(unfenced)
            .next();
        let change = self.cfg.changes[(k - 1) as usize].1;
        // Widenings stack in order (each widens the model the previous one
        // made), so one never applies before a change committed earlier.
        // (Another change may: its hyperparameters are layered over every
        // later phase.)
        let boundary = match change.widens() {
            true => self
                .changes
                .iter()
                .map(|&(b, _)| b)
                .fold(boundary, Clock::max),
            false => boundary,
        };
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
}
