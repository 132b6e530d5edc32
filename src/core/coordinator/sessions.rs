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
        let home: Vec<RangeId> = View::initial(self.cfg.servers, self.cfg.replication)
            .ranges_of(node)
            .map(|(r, _)| r)
            .collect();
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

    /// Of the servers heard from within the timeout, the one holding the
    /// furthest fallback copy of range `r` (ties to the lower index).
    fn best_fallback(&self, now: Duration, r: RangeId) -> Option<u32> {
        self.fallbacks
            .iter()
            .filter(|(s, _)| {
                self.servers.get(s).is_some_and(|&(seen, _)| {
                    now.saturating_sub(seen) <= self.cfg.heartbeat_timeout
                })
            })
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
