//! Live changes, server side: `Prepare` fences pulls past the highest
//! clock answered so far (and pushes past it wait, see `mod.rs`);
//! `Commit` adds the change to the schedule and lifts the fence. (An
//! `Abort` is handled in `mod.rs`; `serve_all`, which releases what the
//! fence held, is in `serve.rs`.)
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::Server;
use crate::core::bugs::Bug;
use crate::core::config::Change;
use crate::core::ids::{Clock, NodeId};
use crate::core::msg::Message;
use crate::core::Command;

impl Server {
    /// Live change `k` is being prepared: fence at the highest clock
    /// answered so far and tell the coordinator.
    pub(super) fn on_prepare(&mut self, k: u64, attempt: u64, out: &mut Vec<Command>) {
        if k != self.changes.len() as u64 + 1 {
            return; // Committed already (or an earlier one is missing).
        }
        let max = match self.fence {
            Some((fk, _, max)) if fk == k => max,
            _ => self.max_answered,
        };
        if !self.cfg.bugs.has(Bug::NoFence) {
            self.fence = Some((k, attempt, max));
        }
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::Prepared {
                k,
                attempt,
                max_clock: max,
                incarnation: self.incarnation,
            },
        });
    }

    /// Live change `k` holds from `boundary` on.
    pub(super) fn on_commit(
        &mut self,
        k: u64,
        boundary: Clock,
        change: Change,
        out: &mut Vec<Command>,
    ) {
        if k != self.changes.len() as u64 + 1 {
            return;
        }
        self.changes.push((boundary, change));
        self.schedule = self
            .schedule
            .with_change(boundary, &change, self.cfg.default_bound);
        if self.fence.is_some_and(|(fk, _, _)| fk == k) {
            self.fence = None;
        }
        out.push(Command::Emit(change.event(self.id, k, boundary)));
        self.serve_all(out);
    }
}
