//! The compute-time model: how long a worker's minibatch takes.
//!
//! `step_time x slowdown x jitter`: `slowdown` is the product of the
//! straggler faults active on the worker; `jitter` is a factor drawn
//! uniformly from `[1 - j, 1 + j]` per step (`[compute] jitter`, default 0).

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

    /// Time of one minibatch on `node`.
    pub fn step(&self, node: NodeId, rng: &mut impl Rng) -> Duration {
        let slowdown: f64 = self
            .slowdowns
            .get(&node)
            .map_or(1.0, |s| s.values().product());
        let jitter = if self.jitter > 0.0 {
            rng.gen_range(1.0 - self.jitter..=1.0 + self.jitter)
        } else {
            1.0
        };
        self.step_time.mul_f64(slowdown * jitter)
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
    fn stragglers_multiply_and_heal() {
        let mut m = ComputeModel::new(Duration::from_millis(10), 0.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let w = NodeId::Worker(1);
        m.add_straggler(1, w, 4.0);
        m.add_straggler(2, w, 2.0);
        assert_eq!(m.step(w, &mut rng), Duration::from_millis(80));
        assert_eq!(
            m.step(NodeId::Worker(0), &mut rng),
            Duration::from_millis(10)
        );
        m.heal(1);
        assert_eq!(m.step(w, &mut rng), Duration::from_millis(20));
    }
}
