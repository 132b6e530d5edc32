//! The compute-time model: how long a worker's minibatch takes.
//!
//! A minibatch is `step_time x jitter` of work (`jitter` a factor drawn
//! uniformly from `[1 - j, 1 + j]` per step, `[compute] jitter`, default
//! 0), done at speed `1 / slowdown`, where `slowdown` is the largest
//! straggler fault active on the worker (1 without one). The speed changes
//! when a straggler starts or heals, in the middle of a step too: a step
//! that began under a 10x straggler healed halfway finishes at normal speed
//! (the host reschedules it, see `World::restraggle`).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use super::net::FaultId;
use crate::core::NodeId;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Compute-time model of all workers.
#[derive(Debug)]
pub struct ComputeModel {
    step_time: Duration,
    jitter: f64,
    slowdowns: BTreeMap<NodeId, BTreeMap<FaultId, f64>>,
}

impl ComputeModel {
    /// Every worker takes `step_time` per minibatch, give or take `jitter`.
    pub fn new(step_time: Duration, jitter: f64) -> ComputeModel {
        ComputeModel {
            step_time,
            jitter,
            slowdowns: BTreeMap::new(),
        }
    }

    /// Work of one minibatch (its time at normal speed).
    pub fn work(&self, rng: &mut impl Rng) -> Duration {
        let jitter = if self.jitter > 0.0 {
            rng.gen_range(1.0 - self.jitter..=1.0 + self.jitter)
        } else {
            1.0
        };
        self.step_time.mul_f64(jitter)
    }

    /// How many times slower than normal `node` computes now.
    pub fn slowdown(&self, node: NodeId) -> f64 {
        self.slowdowns
            .get(&node)
            .map_or(1.0, |s| s.values().copied().fold(1.0, f64::max))
    }

    /// Starts a straggler fault.
    pub fn add_straggler(&mut self, id: FaultId, node: NodeId, slowdown: f64) {
        self.slowdowns.entry(node).or_default().insert(id, slowdown);
    }

    /// Ends a straggler fault.
    pub fn heal(&mut self, id: FaultId) {
        for s in self.slowdowns.values_mut() {
            s.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_slowest_straggler_wins_until_it_heals() {
        let mut m = ComputeModel::new(Duration::from_millis(10), 0.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let w = NodeId::Worker(1);
        m.add_straggler(1, w, 4.0);
        m.add_straggler(2, w, 2.0);
        assert_eq!(m.slowdown(w), 4.0);
        assert_eq!(m.slowdown(NodeId::Worker(0)), 1.0);
        assert_eq!(m.work(&mut rng), Duration::from_millis(10));
        m.heal(1);
        assert_eq!(m.slowdown(w), 2.0);
    }
}
