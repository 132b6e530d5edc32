//! Server heartbeats and views: a server's heartbeat brings it the
//! membership and view it lacks, takes it out of chains of ranges it
//! lost (restarted empty) and plans its catch-ups; a changed view is
//! published under a higher epoch. (Servers silent for the timeout leave
//! their chains in the failure check, in `mod.rs`.)
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the coordinator does no I/O of its own.

use super::Coordinator;
use crate::core::event::Event;
use crate::core::ids::{Epoch, NodeId, RangeId};
use crate::core::msg::Message;
use crate::core::Command;
use std::time::Duration;

impl Coordinator {
    pub(super) fn on_server_heartbeat(
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

    /// Publishes a new view: a higher epoch, persisted, sent to everyone.
    pub(super) fn publish_view(&mut self, out: &mut Vec<Command>) {
        self.view.epoch = Epoch(self.view.epoch.0 + 1);
        self.persist(out);
        out.push(Command::Emit(Event::View {
            epoch: self.view.epoch,
            chains: self.view.chains.clone(),
        }));
        self.broadcast(&Message::ViewUpdate(self.view.clone()), out);
    }
}
