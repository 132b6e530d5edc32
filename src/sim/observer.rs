//! The accuracy observer: reads the current parameters straight out of the
//! replicas (no messages, no simulated time) and evaluates them.
//!
//! May import: `crate::core`, `crate::ml`, `crate::run`, `super` (sim).
//! Never: `crate::net`.

use super::world::World;
use crate::core::{Node, NodeId};
use crate::ml::Evaluation;
use crate::run::finals::{self, FinalReplica};
use crate::run::sample::Sample;
use std::collections::BTreeMap;

impl World {
    /// The model as it stands: each range read from the last live replica
    /// (the tail, whose state every replica has) in the last published view
    /// (any live replica if none of those; the initial values if the range
    /// has none, as before the servers start), at the highest widening
    /// level any range has reached ([`finals::assemble`]); and that level.
    pub fn assemble(&self) -> (Vec<f32>, u32) {
        let view = &self.log.view;
        let live_servers = (0..self.cfg.servers).map(NodeId::Server);
        let initial = self.cfg.initial.as_deref();
        finals::assemble(
            &self.cfg.ranges,
            &self.cfg.widen,
            initial,
            view,
            live_servers,
            |s, r| match &self.slot(s).node {
                Some(Node::Server(srv)) => srv
                    .replicas()
                    .get(&r)
                    .map(|rep| (&rep.params[..], rep.widened)),
                _ => None,
            },
        )
    }

    /// Every live server's replicas, as they stand.
    pub fn replicas(&self) -> BTreeMap<NodeId, Vec<FinalReplica>> {
        self.slots
            .iter()
            .filter_map(|s| match &s.node {
                Some(Node::Server(srv)) => Some((
                    s.id,
                    srv.replicas()
                        .iter()
                        .map(|(&r, rep)| FinalReplica::of(r, rep))
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Test accuracy and training loss of the current parameters.
    pub fn evaluate(&self) -> (Evaluation, f64) {
        let (params, level) = self.assemble();
        self.job
            .evaluate_with(self.cfg.widen.model(&self.job.model, level), &params)
    }

    /// Lowest and highest clock among live workers (0 without any).
    pub fn clock_span(&self) -> (u32, u32) {
        let clocks = self.worker_clocks();
        clocks
            .fold(None, |acc: Option<(u32, u32)>, c| {
                Some(acc.map_or((c, c), |(lo, hi)| (lo.min(c), hi.max(c))))
            })
            .unwrap_or((0, 0))
    }

    /// The live workers' clocks.
    fn worker_clocks(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter_map(|s| match &s.node {
            Some(Node::Worker(w)) => Some(w.clock().0),
            _ => None,
        })
    }

    /// The live workers' mean clock (0 with none).
    pub fn mean_clock(&self) -> f64 {
        let (n, sum) = self
            .worker_clocks()
            .fold((0u64, 0u64), |(n, s), c| (n + 1, s + u64::from(c)));
        if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64
        }
    }

    /// Observes the job now.
    pub fn sample(&self) -> Sample {
        let (test, loss) = self.evaluate();
        let (min_clock, max_clock) = self.clock_span();
        let (bytes_pushed, bytes_pulled) = self.log.metrics.bytes_pushed_pulled();
        Sample {
            t_s: self.now().as_secs_f64(),
            accuracy: test.accuracy,
            loss,
            min_clock,
            max_clock,
            mean_clock: self.mean_clock(),
            bytes_pushed,
            bytes_pulled,
        }
    }
}
