//! New views and memberships from the coordinator: a view drops the
//! ranges this server left, takes up those it joined (a finished copy)
//! and fixes each chain link that changed; a membership is counted by
//! every clock table and acknowledged. Both may open the gate.
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the server does no I/O of its own.

use super::catch_up::Joining;
use super::chain::{chain_ack, chain_push, push_ack};
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
            // Kept as a fallback, not discarded (see `fallbacks`).
            let mut rep = self.replicas.remove(&r).expect("listed");
            rep.out.clear();
            rep.learners.clear();
            rep.pending.clear();
            rep.sent.clear();
            self.fallbacks.insert(r, rep);
            if self.cfg.bugs.has(Bug::NoFallback) {
                self.drop_fallback(r, out); // Planted bug: no fallback.
            }
        }
        // A fallback is no longer needed once its range's chain is full.
        let full: Vec<RangeId> = self
            .fallbacks
            .keys()
            .copied()
            .filter(|&r| self.view.chains[r as usize].len() >= self.cfg.replication as usize)
            .collect();
        for r in full {
            self.drop_fallback(r, out);
        }
        let promote_uncaught = self.cfg.bugs.has(Bug::PromoteUncaught);
        for (r, _) in self.view.clone().ranges_of(me) {
            if self.replicas.contains_key(&r) {
                continue;
            }
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
                            .insert(r, Replica::new(r, &self.cfg, &self.membership));
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
        let short: Vec<RangeId> = ranges.iter().copied().filter(|&r| self.short(r)).collect();
        let mut held = Vec::new();
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
            } else if !rep.out.is_empty() && short.contains(&r) {
                // Now the tail of a short chain: what a learner holds too
                // is acknowledged, the rest waits for one (`release_held`).
                held.push(r);
            } else if !rep.out.is_empty() {
                // Now the tail: what reached us is on every replica left.
                for e in std::mem::take(&mut rep.out).into_values() {
                    out.extend(push_ack(r, &e));
                }
                if let Some(p) = pred {
                    out.push(chain_ack(p, epoch, r, rep.log_index));
                }
            }
            // Learners that are in the chain now are no longer learners.
            let chain = &self.view.chains[r as usize];
            rep.learners.retain(|l, _| !chain.contains(l));
        }
        for r in held {
            self.release_held(r, out);
        }
        // A new head puts the membership it holds into the log first.
        self.log_memberships(out);
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.serve_pending(r, out);
        }
    }

    /// A membership from the coordinator: heads put it into their ranges'
    /// logs; every replica adopts it when it applies that entry, and the
    /// server acknowledges the version all its replicas have applied.
    pub(super) fn on_membership(&mut self, m: Membership, out: &mut Vec<Command>) {
        if m.version > self.membership.version {
            self.membership = m;
        }
        // Also when not newer: it may have come down a chain first.
        self.log_memberships(out);
        // Acknowledge even an old version: the coordinator may have missed
        // the first acknowledgement.
        self.ack_membership(out);
    }

    /// A replica applied a membership entry: the server learns it (it may
    /// come down the chain before the coordinator's copy) and says how far
    /// all its replicas are.
    pub(super) fn membership_applied(&mut self, out: &mut Vec<Command>) {
        let newest = self
            .replicas
            .values()
            .map(|r| r.members())
            .max_by_key(|m| m.version)
            .filter(|m| m.version > self.membership.version)
            .cloned();
        if let Some(m) = newest {
            self.membership = m;
            self.log_memberships(out);
        }
        self.ack_membership(out);
    }

    /// Discards the fallback copy of `range`, if there is one.
    pub(super) fn drop_fallback(&mut self, range: RangeId, out: &mut Vec<Command>) {
        if self.fallbacks.remove(&range).is_some() {
            out.push(Command::Emit(Event::ReplicaDropped {
                server: self.id,
                range,
            }));
        }
    }

    /// As head, puts the membership held into each range's log where the
    /// replica is behind it.
    fn log_memberships(&mut self, out: &mut Vec<Command>) {
        let ranges: Vec<RangeId> = self.replicas.keys().copied().collect();
        for r in ranges {
            self.log_membership(r, out);
        }
    }

    /// The membership version every replica held has applied (the one
    /// received, if it holds none).
    pub(super) fn applied_membership(&self) -> u64 {
        self.held_copies()
            .map(|r| r.members().version)
            .min()
            .unwrap_or(self.membership.version)
    }

    /// The replicas held and the installed copies that a view will turn
    /// into replicas: a copy's membership and progress count as soon as
    /// it is installed, since the view that makes it serve may arrive
    /// after the coordinator acted on this server's acknowledgement.
    fn held_copies(&self) -> impl Iterator<Item = &Replica> {
        self.replicas
            .values()
            .chain(self.installed_copies().map(|(_, rep)| rep))
    }

    /// The copies of joining ranges whose snapshot has arrived.
    pub(super) fn installed_copies(&self) -> impl Iterator<Item = (RangeId, &Replica)> {
        self.joining
            .iter()
            .filter_map(|(&r, j)| j.replica.as_ref().map(|rep| (r, rep)))
    }

    fn ack_membership(&self, out: &mut Vec<Command>) {
        let mut done: std::collections::BTreeMap<_, (u32, crate::core::ids::Clock)> =
            std::collections::BTreeMap::new();
        for rep in self.held_copies() {
            for (&w, &(inc, d)) in rep.table.entries() {
                let e = done.entry(w).or_insert((inc, d));
                *e = (*e).max((inc, d));
            }
        }
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::MembershipAck {
                version: self.applied_membership(),
                done: done.into_iter().map(|(w, (inc, d))| (w, inc, d)).collect(),
            },
        });
    }
}
