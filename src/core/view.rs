//! Who serves which key range (the view) and which workers the consistency
//! gate waits for (the membership).
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::ids::{Clock, Epoch, NodeId, RangeId, WorkerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The chain of servers holding each key range, numbered by an epoch.
/// Published by the coordinator; every node starts from [`View::initial`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Higher epochs replace lower ones.
    pub epoch: Epoch,
    /// `chains[r]`: the live replicas of range `r`, head first, tail last.
    pub chains: Vec<Vec<NodeId>>,
}

impl View {
    /// Epoch 1: range `r` on servers `r, r+1, .., r+k-1 (mod servers)`, the
    /// owner as head and its successors as backups (Li et al., OSDI'14).
    pub fn initial(servers: u32, replication: u32) -> View {
        assert!(replication >= 1 && replication <= servers);
        let chains = (0..servers)
            .map(|r| {
                (0..replication)
                    .map(|i| NodeId::Server((r + i) % servers))
                    .collect()
            })
            .collect();
        View {
            epoch: Epoch(1),
            chains,
        }
    }

    /// The head of range `r` (where pushes and pulls go), if any replica is
    /// left.
    pub fn head(&self, r: RangeId) -> Option<NodeId> {
        self.chains[r as usize].first().copied()
    }

    /// The tail of range `r` (where pulls go: it holds only updates every
    /// replica has), if any replica is left.
    pub fn tail(&self, r: RangeId) -> Option<NodeId> {
        self.chains[r as usize].last().copied()
    }

    /// The replicas before and after `server` in range `r`'s chain, if it
    /// is in it: `(predecessor, successor)`.
    pub fn neighbours(
        &self,
        r: RangeId,
        server: NodeId,
    ) -> Option<(Option<NodeId>, Option<NodeId>)> {
        let chain = &self.chains[r as usize];
        let i = chain.iter().position(|&s| s == server)?;
        Some((
            i.checked_sub(1).map(|p| chain[p]),
            chain.get(i + 1).copied(),
        ))
    }

    /// Every server in some chain.
    pub fn servers(&self) -> std::collections::BTreeSet<NodeId> {
        self.chains.iter().flatten().copied().collect()
    }

    /// The ranges `server` holds in this view, with its position in each
    /// chain (0 = head).
    pub fn ranges_of(&self, server: NodeId) -> impl Iterator<Item = (RangeId, usize)> + '_ {
        self.chains
            .iter()
            .enumerate()
            .filter_map(move |(r, chain)| {
                chain
                    .iter()
                    .position(|&s| s == server)
                    .map(|pos| (r as RangeId, pos))
            })
    }
}

/// One admitted worker: the gate waits for its pushes from `start_clock` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The incarnation admitted (a restarted worker is a new incarnation).
    pub incarnation: u32,
    /// The first clock this incarnation computes; earlier clocks of this
    /// worker are not waited for.
    pub start_clock: Clock,
}

/// The workers the consistency gate counts, and the pushes no replica may
/// apply any more. Versioned separately from the view so that a worker
/// joining or leaving does not invalidate requests in flight. Replicas
/// apply a membership as an entry of each range's log (docs/protocol.md,
/// "Admission"), so it takes effect at the same point of every replica's
/// history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Higher versions replace lower ones.
    pub version: u64,
    /// Admitted workers.
    pub members: BTreeMap<WorkerId, Member>,
    /// Per worker, the lowest (incarnation, clock) whose push a head may
    /// still accept: pushes of earlier lives, and of the admitted life's
    /// clocks before its admission, are refused (never applied, never
    /// acknowledged). Only ever raised, so a push refused once is refused
    /// for good.
    pub fences: BTreeMap<WorkerId, (u32, Clock)>,
}

impl Membership {
    /// Version 1: every worker, first incarnation, from clock 0.
    pub fn initial(workers: u32) -> Membership {
        Membership {
            version: 1,
            members: (0..workers)
                .map(|w| {
                    (
                        w,
                        Member {
                            incarnation: 0,
                            start_clock: Clock(0),
                        },
                    )
                })
                .collect(),
            fences: BTreeMap::new(),
        }
    }

    /// Whether a push of `worker`'s life `incarnation` for `clock` is
    /// fenced off.
    pub fn fenced(&self, worker: WorkerId, incarnation: u32, clock: Clock) -> bool {
        self.fences
            .get(&worker)
            .is_some_and(|&f| (incarnation, clock) < f)
    }

    /// Raises `worker`'s fence to `(incarnation, clock)` (never lowers it).
    pub fn fence(&mut self, worker: WorkerId, incarnation: u32, clock: Clock) {
        let f = self.fences.entry(worker).or_insert((incarnation, clock));
        *f = (*f).max((incarnation, clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_view_is_a_ring_of_successors() {
        let v = View::initial(4, 2);
        assert_eq!(v.chains[3], vec![NodeId::Server(3), NodeId::Server(0)]);
        let held: Vec<_> = v.ranges_of(NodeId::Server(0)).collect();
        assert_eq!(held, vec![(0, 0), (3, 1)]);
    }
}
