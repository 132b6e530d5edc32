//! Per-worker timelines: what each worker spent its time on, clock by
//! clock — waiting for pulls, computing, waiting for push
//! acknowledgements — for the timeline plot and the idle fraction.
//!
//! May import: `crate::core`. Never: a host (`crate::sim`, `crate::net`).

use crate::core::WorkerId;
use serde::Serialize;
use std::time::Duration;

/// What a worker is doing in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// From the start of a clock until every pull is answered.
    Pull,
    /// The modelled compute time of the minibatch.
    Compute,
    /// From the end of compute until every push is acknowledged.
    Push,
}

/// One segment of a worker's timeline.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Segment {
    /// The worker.
    pub worker: WorkerId,
    /// What it did.
    pub activity: Activity,
    /// Simulated seconds.
    pub start_s: f64,
    /// Simulated seconds.
    pub end_s: f64,
}

/// Segments kept at most (the timeline of a very long run is cut).
const MAX_SEGMENTS: usize = 50_000;

/// Builds the timelines from clock starts and compute starts and ends.
#[derive(Debug, Default)]
pub struct Timelines {
    /// Per worker: the open segment (activity and start).
    open: Vec<Option<(Activity, Duration)>>,
    /// Closed segments.
    pub segments: Vec<Segment>,
    /// Per worker: time spent computing, and time it was up.
    busy: Vec<(Duration, Duration)>,
}

impl Timelines {
    /// Timelines for `workers` workers.
    pub fn new(workers: u32) -> Timelines {
        Timelines {
            open: vec![None; workers as usize],
            segments: Vec::new(),
            busy: vec![(Duration::ZERO, Duration::ZERO); workers as usize],
        }
    }

    fn switch(&mut self, w: WorkerId, t: Duration, next: Option<Activity>) {
        let i = w as usize;
        if let Some((activity, start)) = self.open[i].take() {
            let d = t.saturating_sub(start);
            if activity == Activity::Compute {
                self.busy[i].0 += d;
            }
            self.busy[i].1 += d;
            if self.segments.len() < MAX_SEGMENTS {
                self.segments.push(Segment {
                    worker: w,
                    activity,
                    start_s: start.as_secs_f64(),
                    end_s: t.as_secs_f64(),
                });
            }
        }
        self.open[i] = next.map(|a| (a, t));
    }

    /// Number of workers followed.
    pub fn workers(&self) -> u32 {
        self.open.len() as u32
    }

    /// Worker `w` starts a clock (pulls).
    pub fn clock(&mut self, w: WorkerId, t: Duration) {
        self.switch(w, t, Some(Activity::Pull));
    }

    /// Worker `w` starts computing.
    pub fn compute(&mut self, w: WorkerId, t: Duration) {
        self.switch(w, t, Some(Activity::Compute));
    }

    /// Worker `w` finished computing (pushes).
    pub fn push(&mut self, w: WorkerId, t: Duration) {
        self.switch(w, t, Some(Activity::Push));
    }

    /// Worker `w` finished, crashed, or the run ended.
    pub fn stop(&mut self, w: WorkerId, t: Duration) {
        self.switch(w, t, None);
    }

    /// Mean over workers of the fraction of their time not spent
    /// computing (waiting for pulls and acknowledgements).
    pub fn idle_fraction(&self) -> f64 {
        let f: Vec<f64> = self
            .busy
            .iter()
            .filter(|(_, up)| !up.is_zero())
            .map(|(c, up)| 1.0 - c.as_secs_f64() / up.as_secs_f64())
            .collect();
        if f.is_empty() {
            0.0
        } else {
            f.iter().sum::<f64>() / f.len() as f64
        }
    }
}
