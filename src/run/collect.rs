//! What a run's event stream feeds, whichever host produced it: the
//! recorder (trace hash, checkers, JSON Lines trace), the throughput
//! series, failover times, per-worker timelines and the last view
//! published. The simulator feeds it online, event by event; real mode
//! feeds it the nodes' merged events after the run. Either way the same
//! [`Collector::record`] sees the same events in the same order.
//!
//! May import: `crate::core`, `crate::trace`, `super` (run). Never: a host
//! (`crate::sim`, `crate::net`).

use super::failover::FailoverTracker;
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
}
