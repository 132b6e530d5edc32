//! `pull_filter`: under the pull filter, every worker holds exactly the
//! values the answering server recorded for it.
//!
//! A filtered pull answer carries only the values that moved by at least
//! `pull_threshold` since the worker's last answer; the server computes it
//! from its record of the worker's copy. The answer also carries the digest
//! of what the worker should hold once it applied it; a worker whose copy
//! then differs emits `pull_filter_mismatch`. Any such event is a
//! violation: the worker computed with values the server never promised
//! to be within the threshold of its own.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::{Report, Violation, Violations};
use crate::core::Event;
use std::time::Duration;

/// The checker.
#[derive(Debug, Default)]
pub struct PullFilterCheck {
    v: Violations,
}

impl PullFilterCheck {
    /// Observes one event.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        if let Event::PullFilterMismatch {
            worker,
            range,
            clock,
        } = *ev
        {
            self.v.push(Violation::FilterDiverged {
                t,
                worker,
                range,
                clock,
            });
        }
    }

    /// The verdict (`enabled` when the run filters pulls).
    pub fn report(&self, enabled: bool) -> Report {
        self.v.report("pull_filter", enabled)
    }
}
