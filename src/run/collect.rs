//! What a run's event stream feeds, whichever host produced it: the
//! recorder (trace hash, checkers, JSON Lines trace), the throughput
//! series, failover times, per-worker timelines, the last view published
//! and, where the host reports it, each node's resource use (the load
//! meter: never part of the trace or its hash). The simulator feeds it online, event by event; real mode
//! feeds it the nodes' merged events after the run. Either way the same
//! [`Collector::record`] sees the same events in the same order.
//!
//! May import: `crate::core`, `crate::trace`, `super` (run). Never: a host
//! (`crate::sim`, `crate::net`).

use super::failover::FailoverTracker;
use super::load::{LoadMeter, Resource};
use super::metrics::Metrics;
use super::timeline::Timelines;
use crate::core::{Event, Message, NodeId, View, WorkerId};
use crate::trace::Recorder;
use std::time::Duration;

/// Everything a run's events go through.
#[derive(Debug)]
pub struct Collector {
    /// Trace hash, checkers, trace file.
    pub recorder: Recorder,
    /// Counters and the throughput series.
    pub metrics: Metrics,
    /// The last view published.
    pub view: View,
    /// Server crashes and how long their ranges took to recover.
    pub failovers: FailoverTracker,
    /// What each worker spent its time on; `None` where the host does not
    /// report compute (real mode).
    pub timelines: Option<Timelines>,
    /// Each node's interfaces and CPU; `None` where the host does not
    /// report them (see [`Collector::with_load`]).
    pub load: Option<LoadMeter>,
}

impl Collector {
    /// A collector for a run whose first view is `view`; `timelines` for
    /// `workers` workers if the host reports compute starts and ends.
    pub fn new(
        recorder: Recorder,
        metrics: Metrics,
        view: View,
        timelines: Option<u32>,
    ) -> Collector {
        Collector {
            recorder,
            metrics,
            view,
            failovers: FailoverTracker::default(),
            timelines: timelines.map(Timelines::new),
            load: None,
        }
    }

    /// The same collector, metering resource use with `meter` (for a host
    /// that reports it through [`Collector::busy`] and
    /// [`Collector::delivered`]).
    pub fn with_load(self, meter: LoadMeter) -> Collector {
        Collector {
            load: Some(meter),
            ..self
        }
    }

    /// Records an event that happened at `t`.
    pub fn record(&mut self, t: Duration, ev: &Event) {
        self.metrics.on_event(t, ev);
        if let Event::View { epoch, chains } = ev {
            if *epoch > self.view.epoch {
                self.view = View {
                    epoch: *epoch,
                    chains: chains.clone(),
                };
            }
        }
        self.failovers.observe(t, ev, &self.view);
        if let Some(tl) = &mut self.timelines {
            match *ev {
                Event::WorkerClock { worker, .. } => tl.clock(worker, t),
                Event::WorkerDone { worker, .. }
                | Event::Crash {
                    node: NodeId::Worker(worker),
                } => tl.stop(worker, t),
                _ => {}
            }
        }
        self.recorder.record(t, ev);
    }

    /// A message of `size_bytes` put on the wire at `t`.
    pub fn sent(&mut self, t: Duration, msg: &Message, size_bytes: usize) {
        self.metrics.sent(t, msg, size_bytes);
    }

    /// Worker `w` starts computing a minibatch at `t`.
    pub fn compute_started(&mut self, w: WorkerId, t: Duration) {
        if let Some(tl) = &mut self.timelines {
            tl.compute(w, t);
        }
    }

    /// Worker `w` finished computing at `t` (it pushes).
    pub fn compute_done(&mut self, w: WorkerId, t: Duration) {
        if let Some(tl) = &mut self.timelines {
            tl.push(w, t);
        }
    }

    /// During `[from, to)` resource `res` of `node` ran at `share` of its
    /// capacity (see [`LoadMeter::busy`]); nothing without a meter.
    pub fn busy(&mut self, node: NodeId, res: Resource, from: Duration, to: Duration, share: f64) {
        if let Some(m) = &mut self.load {
            m.busy(node, res, from, to, share);
        }
    }

    /// A message of `bytes` from `from` was delivered to `to`; nothing
    /// without a meter.
    pub fn delivered(&mut self, from: NodeId, to: NodeId, bytes: u64) {
        if let Some(m) = &mut self.load {
            m.delivered(from, to, bytes);
        }
    }
}
