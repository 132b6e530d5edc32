//! The accuracy observer: reads the current parameters straight out of the
//! replicas (no messages, no simulated time) and evaluates them.

use super::world::World;
use crate::core::{Node, NodeId};
use crate::ml::Evaluation;
use serde::Serialize;

/// One observation.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Simulated seconds.
    pub t_s: f64,
    /// Test accuracy.
    pub accuracy: f64,
    /// Training loss (mean cross-entropy over a fixed training subset).
    pub loss: f64,
    /// Lowest clock among live workers.
    pub min_clock: u32,
    /// Highest clock among live workers.
    pub max_clock: u32,
    /// Bytes of pushes sent so far.
    pub bytes_pushed: u64,
    /// Bytes of pulls sent so far.
    pub bytes_pulled: u64,
}

impl World {
    /// The model as it stands: each range read from the last live replica
    /// (the tail, whose state every replica has) in the last published view
    /// (any live replica if none of those; zeros if the range has none).
    pub fn assemble(&self) -> Vec<f32> {
        let mut params = vec![0f32; self.cfg.ranges.dim() as usize];
        for r in 0..self.cfg.ranges.ranges() {
            let chain = &self.view.chains[r as usize];
            let live_servers = (0..self.cfg.servers).map(NodeId::Server);
            let rep = chain
                .iter()
                .rev()
                .copied()
                .chain(live_servers)
                .find_map(|s| match &self.slot(s).node {
                    Some(Node::Server(srv)) => srv.replicas().get(&r),
                    _ => None,
                });
            if let Some(rep) = rep {
                let k = self.cfg.ranges.keys(r);
                params[k.start as usize..k.end as usize].copy_from_slice(&rep.params);
            }
        }
        params
    }

    /// Test accuracy and training loss of the current parameters.
    pub fn evaluate(&self) -> (Evaluation, f64) {
        self.job.evaluate(&self.assemble())
    }

    /// Observes the job now.
    pub fn sample(&self) -> Sample {
        let (test, loss) = self.evaluate();
        let clocks: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|s| match &s.node {
                Some(Node::Worker(w)) => Some(w.clock().0),
                _ => None,
            })
            .collect();
        Sample {
            t_s: self.now().as_secs_f64(),
            accuracy: test.accuracy,
            loss,
            min_clock: clocks.iter().copied().min().unwrap_or(0),
            max_clock: clocks.iter().copied().max().unwrap_or(0),
            bytes_pushed: self.metrics.bytes_pushed,
            bytes_pulled: self.metrics.bytes_pulled,
        }
    }
}
