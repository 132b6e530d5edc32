//! New views and memberships from the coordinator: a view drops the
//! ranges this server left, takes up those it joined (a finished copy)
//! and fixes each chain link that changed; a membership is counted by
//! every clock table and acknowledged. Both may open the gate.
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::catch_up::Joining;
use super::chain::{chain_ack, chain_push};
use super::{Replica, Server};
use crate::core::bugs::Bug;
use crate::core::event::Event;
use crate::core::ids::{NodeId, RangeId};
use crate::core::msg::Message;
use crate::core::view::{Membership, View};
use crate::core::Command;

impl Server {
    /// A new view: drop ranges this server left, take up ranges it joined,
    /// and fix each chain link that changed.
    pub(super) fn on_view(&mut self, v: View, out: &mut Vec<Command>) {
        if v.epoch <= self.view.epoch {
            return;
        }
        let old = std::mem::replace(&mut self.view, v);
        let me = self.id;
        let mine = |r: RangeId| self.view.chains[r as usize].contains(&me);
        let dropped: Vec<RangeId> = self
            .replicas
            .keys()
            .copied()
            .filter(|&r| !mine(r))
            .collect();
        for r in dropped {
            self.replicas.remove(&r);
            out.push(Command::Emit(Event::ReplicaDropped {
                server: me,
                range: r,
            }));
        }
        let promote_uncaught = self.cfg.bugs.has(Bug::PromoteUncaught);
        for (r, _) in self.view.clone().ranges_of(me) {
            if self.replicas.contains_key(&r) {
                continue;
            }
            let keys = self.cfg.ranges.keys(r);
            match self.joining.remove(&r) {
                Some(Joining {
                    replica: Some(rep), ..
                }) => {
                    self.replicas.insert(r, rep);
                }
                joining => {
                    if promote_uncaught {
                        // Planted bug: serve a range never copied.
                        self.replicas
                            .insert(r, Replica::new(r, keys, &self.membership));
                    } else if let Some(j) = joining {
                        self.joining.insert(r, j);
                    }
                }
            }
        }
        // A copy no longer needed (the chain filled up meanwhile) stops.
        let k = self.cfg.replication as usize;
        self.joining
            .retain(|&r, _| self.view.chains[r as usize].len() < k);
        let epoch = self.view.epoch;
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            let (pred, succ) = self.view.neighbours(r, me).expect("mine");
            let old_succ = old.neighbours(r, me).and_then(|(_, s)| s);
            let rep = self.replicas.get_mut(&r).expect("held");
            if let Some(s) = succ {
                // A learner that became the successor keeps its backlog.
                if let Some(l) = rep.learners.remove(&s) {
                    for (i, e) in l.out {
                        rep.out.entry(i).or_insert(e);
                    }
                }
                if old_succ != Some(s) {
                    for e in rep.out.values() {
                        out.push(chain_push(s, epoch, r, e));
                    }
                }
            } else if !rep.out.is_empty() {
                // Now the tail: what reached us is on every replica left.
                for e in std::mem::take(&mut rep.out).into_values() {
                    out.push(Command::Send {
                        to: NodeId::Worker(e.worker),
                        msg: Message::PushAck {
                            range: r,
                            seq: e.seq,
                            clock: e.clock,
                        },
                    });
                }
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, r, rep.log_index));
                }
            }
            // Learners that are in the chain now are no longer learners.
            let chain = &self.view.chains[r as usize];
            rep.learners.retain(|l, _| !chain.contains(l));
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }

    pub(super) fn on_membership(&mut self, m: Membership, out: &mut Vec<Command>) {
        // Acknowledge even an old version: the coordinator may have missed
        // the first acknowledgement.
        let newer = m.version > self.membership.version;
        if newer {
            for rep in self.replicas.values_mut() {
                rep.table.admit(&m);
            }
            for j in self.joining.values_mut() {
                if let Some(rep) = &mut j.replica {
                    rep.table.admit(&m);
                }
            }
            self.membership = m;
        }
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::MembershipAck {
                version: self.membership.version,
            },
        });
        if !newer {
            return;
        }
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }
}
