//! Catch-up sessions: which server copies which range from whom. A
//! server whose home range's chain is short of it is asked to copy it
//! from the tail (`CatchUp`, one session per attempt), or takes it up
//! alone if no replica is left; its `JoinReady` appends it to the chain
//! if its source still is the tail.
//!
//! May import: `crate::core` (its sibling modules) and std only;
//! Never: the host (`crate::sim`, `crate::net`, madsim, tokio): time is
//! passed in, and the coordinator does no I/O of its own.

use super::Coordinator;
use crate::core::ids::{NodeId, RangeId};
use crate::core::msg::Message;
use crate::core::view::View;
use crate::core::Command;
use std::time::Duration;

impl Coordinator {
    /// Ranges server `s` should hold (its ranges in the initial placement)
    /// whose chain is short of it: the only replica if the chain is empty,
    /// else a catch-up from the tail.
    pub(super) fn plan_catch_ups(
        &mut self,
        now: Duration,
        s: u32,
        held: &[RangeId],
        out: &mut Vec<Command>,
    ) -> bool {
        let node = NodeId::Server(s);
        let initial = View::initial(self.cfg.servers, self.cfg.replication);
        let mut home: Vec<RangeId> = initial.ranges_of(node).map(|(r, _)| r).collect();
        home.extend(self.spare_for(now, s, &initial));
        self.plan_ranges(now, s, held, home, out)
    }

    /// After a failover: every live server takes up the short chains it
    /// is the spare for at once, not at its next heartbeat (their tails
    /// hold acknowledgements meanwhile).
    pub(super) fn recruit_spares(&mut self, now: Duration, out: &mut Vec<Command>) -> bool {
        let initial = View::initial(self.cfg.servers, self.cfg.replication);
        let mut changed = false;
        for s in 0..self.cfg.servers {
            let ranges = self.spare_for(now, s, &initial);
            if !ranges.is_empty() {
                changed |= self.plan_ranges(now, s, &[], ranges, out);
            }
        }
        changed
    }

    fn plan_ranges(
        &mut self,
        now: Duration,
        s: u32,
        held: &[RangeId],
        home: Vec<RangeId>,
        out: &mut Vec<Command>,
    ) -> bool {
        let node = NodeId::Server(s);
        let mut changed = false;
        for r in home {
            let chain = &mut self.view.chains[r as usize];
            if chain.contains(&node)
                || held.contains(&r)
                || chain.len() >= self.cfg.replication as usize
            {
                continue;
            }
            let Some(&tail) = chain.last() else {
                // No replica left: the server heard from lately with the
                // furthest fallback copy takes the range up; with none, this
                // one, from its checkpoint (or zeros). Sent before the view,
                // on the same link.
                if self.best_fallback(now, r).is_some_and(|b| b != s) {
                    continue;
                }
                let chain = &mut self.view.chains[r as usize];
                chain.push(node);
                self.catch_ups.remove(&(r, s));
                self.next_session += 1;
                out.push(Command::Send {
                    to: node,
                    msg: Message::CatchUp {
                        range: r,
                        from: None,
                        session: self.next_session,
                        progress: self
                            .workers
                            .iter()
                            .filter(|(_, st)| st.heard)
                            .map(|(&w, st)| (w, st.incarnation, st.clock))
                            .collect(),
                    },
                });
                changed = true;
                continue;
            };
            if self.cfg.bugs.has(crate::core::bugs::Bug::PromoteUncaught) {
                chain.push(node); // Planted bug: in the chain before copying.
                changed = true;
            }
            let session = match self.catch_ups.get(&(r, s)) {
                Some(&(src, at, id)) if src == tail => {
                    if now.saturating_sub(at) < self.cfg.heartbeat_timeout {
                        continue;
                    }
                    id // Asked again, in case the request was lost.
                }
                _ => {
                    self.next_session += 1;
                    self.next_session
                }
            };
            self.catch_ups.insert((r, s), (tail, now, session));
            out.push(Command::Send {
                to: node,
                msg: Message::CatchUp {
                    range: r,
                    from: Some(tail),
                    session,
                    progress: Vec::new(),
                },
            });
        }
        changed
    }

    /// Ranges outside server `s`'s placement it should take up: an empty
    /// chain whose furthest copy `s` holds; a chain short of replicas
    /// whose placed servers are all in it or silent, when `s` is the live
    /// server outside it holding the fewest replicas (ties to the lower
    /// index) and no other is copying it. Without this, a
    /// range would stay on one replica until its own server returns — and
    /// that replica holds its acknowledgements meanwhile (`Server::short`).
    fn spare_for(&self, now: Duration, s: u32, initial: &View) -> Vec<RangeId> {
        let heard = |x: u32| self.heard(now, x);
        let held = |x: u32| {
            let n = NodeId::Server(x);
            self.view.chains.iter().filter(|c| c.contains(&n)).count()
        };
        let k = self.cfg.replication as usize;
        let mut ranges = Vec::new();
        for (r, chain) in self.view.chains.iter().enumerate() {
            let r = r as RangeId;
            if chain.is_empty() {
                // No replica left: the furthest copy takes the range up,
                // wherever it is (a copy a spare made counts too).
                let home = initial.chains[r as usize].contains(&NodeId::Server(s));
                if !home && self.best_fallback(now, r) == Some(s) {
                    ranges.push(r);
                }
                continue;
            }
            if chain.len() >= k
                || chain.contains(&NodeId::Server(s))
                || self.cfg.bugs.has(crate::core::bugs::Bug::AckAlone)
            {
                continue; // (The planted bug recruits no spare.)
            }
            let placed_back = initial.chains[r as usize]
                .iter()
                .any(|n| !chain.contains(n) && n.server().is_some_and(heard));
            let copying = self.catch_ups.keys().any(|&(cr, cs)| cr == r && cs != s);
            if placed_back || copying {
                continue;
            }
            let best = (0..self.cfg.servers)
                .filter(|&x| heard(x) && !chain.contains(&NodeId::Server(x)))
                .min_by_key(|&x| (held(x), x));
            if best == Some(s) {
                ranges.push(r);
            }
        }
        ranges
    }

    /// Whether server `s` was heard from within the heartbeat timeout.
    pub(super) fn heard(&self, now: Duration, s: u32) -> bool {
        self.servers
            .get(&s)
            .is_some_and(|&(seen, _)| now.saturating_sub(seen) <= self.cfg.heartbeat_timeout)
    }

    /// Of the servers heard from within the timeout, the one holding the
    /// furthest fallback copy of range `r` (ties to the lower index).
    fn best_fallback(&self, now: Duration, r: RangeId) -> Option<u32> {
        self.fallbacks
            .iter()
            .filter(|(&s, _)| self.heard(now, s))
            .filter_map(|(&s, f)| f.iter().find(|&&(x, _)| x == r).map(|&(_, i)| (i, s)))
            .max_by_key(|&(i, s)| (i, std::cmp::Reverse(s)))
            .map(|(_, s)| s)
    }

    /// Server `s` holds `range` copied from `source` and follows it: it
    /// becomes the chain's new tail if `source` still is the tail (else the
    /// copy may miss what the old tail acknowledged: catch up again).
    pub(super) fn on_join_ready(
        &mut self,
        now: Duration,
        s: u32,
        range: RangeId,
        source: NodeId,
        session: u64,
        out: &mut Vec<Command>,
    ) {
        if s >= self.cfg.servers || range >= self.cfg.ranges.ranges() {
            return;
        }
        let node = NodeId::Server(s);
        let chain = &mut self.view.chains[range as usize];
        if chain.contains(&node) {
            out.push(Command::Send {
                to: node,
                msg: Message::ViewUpdate(self.view.clone()),
            });
            return;
        }
        let asked = self
            .catch_ups
            .get(&(range, s))
            .map(|&(src, _, id)| (src, id));
        let source_is_tail = chain.last() == Some(&source) || chain.is_empty();
        if asked == Some((source, session))
            && source_is_tail
            && chain.len() < self.cfg.replication as usize
        {
            chain.push(node);
            self.catch_ups.remove(&(range, s));
            self.publish_view(out);
        } else if asked.is_some_and(|(_, id)| id == session) {
            // Copied from a replica that is no longer the tail: again.
            self.catch_ups.remove(&(range, s));
            self.plan_catch_ups(now, s, &[], out);
        }
    }
}
