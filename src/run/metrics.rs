//! Counters and time series of a run: messages and bytes by kind, and per
//! interval of simulated time the updates applied, pushes acknowledged and
//! bytes sent (for throughput plots and the CSV export).
//!
//! May import: `crate::core`, `super::load` (its nanoseconds). Never: a host
//! (`crate::sim`, `crate::net`).

use super::load::nanos;
use crate::core::{Event, Message};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

/// Totals for one message kind.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct KindStats {
    /// Messages sent.
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

impl KindStats {
    /// One message of `size_bytes`.
    fn one(size_bytes: usize) -> KindStats {
        KindStats {
            count: 1,
            bytes: size_bytes as u64,
        }
    }
}

impl std::ops::AddAssign for KindStats {
    fn add_assign(&mut self, o: KindStats) {
        self.count += o.count;
        self.bytes += o.bytes;
    }
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

/// Messages and bytes put on the wire: a whole run's (the simulator
/// counts every send), or one real node's (its report to `pssim local`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Messages sent (including those later lost).
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes of pushes (`push_req`, `chain_push`).
    pub bytes_pushed: u64,
    /// Bytes of pulls (requests and answers).
    pub bytes_pulled: u64,
    /// What the pushes would take with raw float values.
    #[serde(default)]
    pub bytes_pushed_raw: u64,
    /// What the pulls would take with every value sent raw.
    #[serde(default)]
    pub bytes_pulled_raw: u64,
    /// Messages lost (loss, partition, a dead receiver, a failed write).
    pub dropped: u64,
    /// Per message kind.
    pub by_kind: BTreeMap<Cow<'static, str>, KindStats>,
}

impl Traffic {
    /// Counts a message of `size_bytes` on the wire that would take
    /// `raw_bytes` with every value sent raw.
    pub fn count(&mut self, msg: &Message, size_bytes: usize, raw_bytes: usize) {
        self.count_totals(msg, size_bytes, raw_bytes);
        *self.by_kind.entry(Cow::Borrowed(msg.kind())).or_default() += KindStats::one(size_bytes);
    }

    /// [`Traffic::count`] but for `by_kind`.
    fn count_totals(&mut self, msg: &Message, size_bytes: usize, raw_bytes: usize) {
        let (size, raw) = (size_bytes as u64, raw_bytes as u64);
        self.messages += 1;
        self.bytes += size;
        if msg.is_push() {
            self.bytes_pushed += size;
            self.bytes_pushed_raw += raw;
        } else if msg.is_pull() {
            self.bytes_pulled += size;
            self.bytes_pulled_raw += raw;
        }
    }

    /// Adds another node's counts.
    pub fn add(&mut self, o: &Traffic) {
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.bytes_pushed += o.bytes_pushed;
        self.bytes_pulled += o.bytes_pulled;
        self.bytes_pushed_raw += o.bytes_pushed_raw;
        self.bytes_pulled_raw += o.bytes_pulled_raw;
        self.dropped += o.dropped;
        for (k, v) in &o.by_kind {
            *self.by_kind.entry(k.clone()).or_default() += *v;
        }
    }
}

/// A run's counters.
#[derive(Debug)]
pub struct Metrics {
    /// The totals, but for `by_kind` ([`Metrics::traffic`] adds it).
    traffic: Traffic,
    /// Per message kind, by [`Message::kind_index`] (no search of
    /// `by_kind`'s names per message).
    kinds: [KindStats; Message::KIND_NAMES.len()],
    /// Time series, one bucket per `interval`.
    pub series: Vec<Bucket>,
    interval: Duration,
}

impl Metrics {
    /// Empty counters with time-series buckets of `interval`.
    pub fn new(interval: Duration) -> Metrics {
        Metrics {
            traffic: Traffic::default(),
            kinds: [KindStats::default(); Message::KIND_NAMES.len()],
            series: Vec::new(),
            interval,
        }
    }

    /// The series' interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The totals so far.
    pub fn traffic(&self) -> Traffic {
        let mut t = self.traffic.clone();
        for (name, k) in Message::KIND_NAMES.iter().zip(&self.kinds) {
            if k.count > 0 {
                *t.by_kind.entry(Cow::Borrowed(*name)).or_default() += *k;
            }
        }
        t
    }

    /// Bytes of pushes and of pulls so far.
    pub fn bytes_pushed_pulled(&self) -> (u64, u64) {
        (self.traffic.bytes_pushed, self.traffic.bytes_pulled)
    }

    fn bucket(&mut self, t: Duration) -> &mut Bucket {
        // In 64-bit nanoseconds: per message and per event.
        let i = (nanos(t) / nanos(self.interval).max(1)) as usize;
        if self.series.len() <= i {
            self.series.resize(i + 1, Bucket::default());
        }
        &mut self.series[i]
    }

    /// Counts a message put on the wire.
    pub fn sent(&mut self, t: Duration, msg: &Message, size_bytes: usize) {
        self.traffic
            .count_totals(msg, size_bytes, msg.raw_wire_size());
        self.kinds[msg.kind_index()] += KindStats::one(size_bytes);
        self.bucket(t).bytes += size_bytes as u64;
    }

    /// Counts what an event says about throughput.
    pub fn on_event(&mut self, t: Duration, ev: &Event) {
        match ev {
            Event::PushApplied { .. } => self.bucket(t).applied += 1,
            Event::PushAcked { .. } => self.bucket(t).acked += 1,
            Event::PullAnswered { .. } => self.bucket(t).pulls += 1,
            Event::Drop { .. } => self.traffic.dropped += 1,
            _ => {}
        }
    }
}
