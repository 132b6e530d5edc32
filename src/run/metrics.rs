//! Counters and time series of a run: messages and bytes by kind, and per
//! interval of simulated time the updates applied, pushes acknowledged and
//! bytes sent (for throughput plots and the CSV export).
//!
//! May import: `crate::core`. Never: a host (`crate::sim`, `crate::net`).

use crate::core::{Event, Message};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Totals for one message kind.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct KindStats {
    /// Messages sent.
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// One interval of the time series.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Bucket {
    /// Pushes applied by a replica (each replica counts).
    pub applied: u64,
    /// Pushes acknowledged to workers.
    pub acked: u64,
    /// Pulls answered.
    pub pulls: u64,
    /// Bytes put on the wire.
    pub bytes: u64,
}

/// Messages and bytes a run put on the wire, in total.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Messages sent (including those later lost).
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes of pushes.
    pub bytes_pushed: u64,
    /// Bytes of pulls (requests and answers).
    pub bytes_pulled: u64,
    /// What the pushes would take with raw float values.
    pub bytes_pushed_raw: u64,
    /// What the pulls would take with raw float values.
    pub bytes_pulled_raw: u64,
    /// Messages lost (loss, partition, dead receiver).
    pub dropped: u64,
    /// Per message kind.
    pub by_kind: BTreeMap<String, KindStats>,
}

/// A run's counters.
#[derive(Debug)]
pub struct Metrics {
    /// Messages sent (including those later lost).
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes of pushes.
    pub bytes_pushed: u64,
    /// Bytes of pulls (requests and answers).
    pub bytes_pulled: u64,
    /// What the pushes would take with raw float values.
    pub bytes_pushed_raw: u64,
    /// What the pulls would take with raw float values.
    pub bytes_pulled_raw: u64,
    /// Messages lost (loss, partition, dead receiver).
    pub dropped: u64,
    /// Per message kind.
    pub by_kind: BTreeMap<&'static str, KindStats>,
    /// Time series, one bucket per `interval`.
    pub series: Vec<Bucket>,
    interval: Duration,
}

impl Metrics {
    /// Empty counters with time-series buckets of `interval`.
    pub fn new(interval: Duration) -> Metrics {
        Metrics {
            messages: 0,
            bytes: 0,
            bytes_pushed: 0,
            bytes_pulled: 0,
            bytes_pushed_raw: 0,
            bytes_pulled_raw: 0,
            dropped: 0,
            by_kind: BTreeMap::new(),
            series: Vec::new(),
            interval,
        }
    }

    /// The series' interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The totals.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            messages: self.messages,
            bytes: self.bytes,
            bytes_pushed: self.bytes_pushed,
            bytes_pulled: self.bytes_pulled,
            bytes_pushed_raw: self.bytes_pushed_raw,
            bytes_pulled_raw: self.bytes_pulled_raw,
            dropped: self.dropped,
            by_kind: self
                .by_kind
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }

    fn bucket(&mut self, t: Duration) -> &mut Bucket {
        let i = (t.as_nanos() / self.interval.as_nanos().max(1)) as usize;
        if self.series.len() <= i {
            self.series.resize(i + 1, Bucket::default());
        }
        &mut self.series[i]
    }

    /// Counts a message put on the wire.
    pub fn sent(&mut self, t: Duration, msg: &Message, size_bytes: usize) {
        let size = size_bytes as u64;
        self.messages += 1;
        self.bytes += size;
        if msg.is_push() {
            self.bytes_pushed += size;
            self.bytes_pushed_raw += msg.raw_wire_size() as u64;
        } else if msg.is_pull() {
            self.bytes_pulled += size;
            self.bytes_pulled_raw += msg.raw_wire_size() as u64;
        }
        let k = self.by_kind.entry(msg.kind()).or_default();
        k.count += 1;
        k.bytes += size;
        self.bucket(t).bytes += size;
    }

    /// Counts what an event says about throughput.
    pub fn on_event(&mut self, t: Duration, ev: &Event) {
        match ev {
            Event::PushApplied { .. } => self.bucket(t).applied += 1,
            Event::PushAcked { .. } => self.bucket(t).acked += 1,
            Event::PullAnswered { .. } => self.bucket(t).pulls += 1,
            Event::Drop { .. } => self.dropped += 1,
            _ => {}
        }
    }
}
