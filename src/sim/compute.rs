//! The compute-time model: how long a worker's minibatch takes.
//!
//! A minibatch is `base x jitter` of work, where `base` is `step_time`, or,
//! with `[compute] worker_gflops` and no `step_time`, the batch's FLOPs
//! (`Command::Compute::flops`, from the model and the actual batch) over
//! the rate: `round(flops / worker_gflops)` nanoseconds
//! (`crate::run::cost::CostModel::step_work`, docs/cost-model.md); `jitter`
//! is a factor drawn uniformly from `[1 - j, 1 + j]` per step (`[compute]
//! jitter`, default 0). The work is done at speed `1 / slowdown`, where
//! `slowdown` is the largest straggler fault active on the worker (1
//! without one). The speed changes when a straggler starts or heals, in
//! the middle of a step too: a step that began under a 10x straggler healed
//! halfway finishes at normal speed (the host reschedules it, see
//! `World::restraggle`).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use super::net::FaultId;
use crate::core::NodeId;
use crate::run::cost::CostModel;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Compute-time model of all workers.
#[derive(Debug)]
pub struct ComputeModel {
    cost: CostModel,
    slowdowns: BTreeMap<NodeId, BTreeMap<FaultId, f64>>,
}

impl ComputeModel {
    /// The cost figures (also what a server's CPU charges).
    pub fn cost(&self) -> &CostModel {
        &self.cost
    }

    /// Every worker's minibatch costs what `cost` says, give or take its
    /// jitter.
    pub fn new(cost: CostModel) -> ComputeModel {
        ComputeModel {
            cost,
            slowdowns: BTreeMap::new(),
        }
    }

    /// Work of one minibatch of `flops` floating-point operations (its
    /// time at normal speed).
    pub fn work(&self, flops: u64, rng: &mut impl Rng) -> Duration {
        let jitter = if self.cost.jitter > 0.0 {
            rng.gen_range(1.0 - self.cost.jitter..=1.0 + self.cost.jitter)
        } else {
            1.0
        };
        self.cost.step_work(flops).mul_f64(jitter)
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
    use crate::scenario::Compute;
    use rand::SeedableRng;

    #[test]
    fn the_slowest_straggler_wins_until_it_heals() {
        let mut m = ComputeModel::new(CostModel::new(&Compute {
            step_time: Some(Duration::from_millis(10)),
            ..Compute::default()
        }));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let w = NodeId::Worker(1);
        m.add_straggler(1, w, 4.0);
        m.add_straggler(2, w, 2.0);
        assert_eq!(m.slowdown(w), 4.0);
        assert_eq!(m.slowdown(NodeId::Worker(0)), 1.0);
        assert_eq!(m.work(1 << 30, &mut rng), Duration::from_millis(10));
        m.heal(1);
        assert_eq!(m.slowdown(w), 2.0);
    }

    #[test]
    fn flops_set_the_step_time_with_worker_gflops() {
        let m = ComputeModel::new(CostModel::new(&Compute {
            step_time: None,
            worker_gflops: Some(2.0),
            jitter: 0.1,
            ..Compute::default()
        }));
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // The same jitter draw: double the FLOPs, double the time.
        let one = m.work(2_000_000, &mut a);
        let two = m.work(4_000_000, &mut b);
        assert!(one >= Duration::from_micros(900) && one <= Duration::from_micros(1100));
        assert!(
            two.abs_diff(one * 2) <= Duration::from_nanos(2),
            "{one:?} {two:?}"
        );
    }
}
