//! One observation of a run's progress (test accuracy, loss, clocks,
//! bytes), taken by a host's observer: the simulator every `eval_every` of
//! simulated time, real mode at the end.
//!
//! May import: std, serde. Never: a host (`crate::sim`, `crate::net`).

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
    /// Mean clock of the live workers (clocks done per worker: the work
    /// done so far, whatever the spread).
    pub mean_clock: f64,
    /// Bytes of pushes sent so far.
    pub bytes_pushed: u64,
    /// Bytes of pulls sent so far.
    pub bytes_pulled: u64,
}
