//! The event recorder: every event of a run, in order, goes through here.
//! It folds each event (with its simulated time) into the trace hash, feeds
//! the checkers, and optionally writes the JSON Lines trace of
//! ../shared/scenario-format.md.
//!
//! May import: `crate::check`, `crate::core`. Never: a host
//! (`crate::sim`, `crate::net`).

use crate::check::changes::ChangesCheck;
use crate::check::liveness::LivenessCheck;
use crate::check::log_matching::LogMatchingCheck;
use crate::check::pull_filter::PullFilterCheck;
use crate::check::replicas::ReplicasCheck;
use crate::check::staleness::StalenessCheck;
use crate::check::updates::UpdatesCheck;
use crate::core::hasher::BufXxh3;
use crate::core::Event;
use serde::Serialize;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// Where trace lines go.
struct Sink {
    out: BufWriter<File>,
    low_level: bool,
    error: Option<std::io::Error>,
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    #[serde(flatten)]
    ev: &'a Event,
}

/// Records a run's events.
pub struct Recorder {
    hash: BufXxh3,
    events: u64,
    sink: Option<Sink>,
    kept: Option<Vec<(u64, String)>>,
    /// The `staleness_bound` checker.
    pub staleness: StalenessCheck,
    /// The `no_lost_updates` checker (and lost/duplicated counts).
    pub updates: UpdatesCheck,
    /// The `liveness` checker.
    pub liveness: LivenessCheck,
    /// The `replicas_agree` checker.
    pub replicas: ReplicasCheck,
    /// The `live_changes` checker.
    pub changes: ChangesCheck,
    /// The `pull_filter` checker.
    pub pull_filter: PullFilterCheck,
    /// The `log_matching` checker.
    pub log_matching: LogMatchingCheck,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("events", &self.events)
            .finish()
    }
}

impl Recorder {
    /// A recorder for a job with `workers` workers and `ranges` key ranges.
    pub fn new(workers: u32, ranges: u32) -> Recorder {
        Recorder {
            hash: BufXxh3::new(),
            events: 0,
            sink: None,
            kept: None,
            staleness: StalenessCheck::new(workers),
            updates: UpdatesCheck::new(ranges),
            liveness: LivenessCheck::new(workers),
            replicas: ReplicasCheck::default(),
            changes: ChangesCheck::default(),
            pull_filter: PullFilterCheck::default(),
            log_matching: LogMatchingCheck::default(),
        }
    }

    /// Also writes the trace to `path` (with deliveries, drops and timers
    /// if `low_level`).
    pub fn write_to(&mut self, path: &Path, low_level: bool) -> std::io::Result<()> {
        self.sink = Some(Sink {
            out: BufWriter::new(File::create(path)?),
            low_level,
            error: None,
        });
        Ok(())
    }

    /// The run has no live change: the `live_changes` checker keeps
    /// nothing (its verdict is skipped).
    pub fn without_live_changes(&mut self) {
        self.changes = ChangesCheck::idle();
    }

    /// Also keeps a digest and a rendering of every event, to locate the
    /// first divergence between two runs.
    pub fn keep_events(&mut self) {
        self.kept = Some(Vec::new());
    }

    /// Records one event at simulated time `t`.
    pub fn record(&mut self, t: Duration, ev: &Event) {
        self.events += 1;
        let t_ns = t.as_nanos() as u64;
        t_ns.hash(&mut self.hash);
        ev.hash(&mut self.hash);
        if let Some(kept) = &mut self.kept {
            let mut h = BufXxh3::new();
            t_ns.hash(&mut h);
            ev.hash(&mut h);
            kept.push((h.finish(), format!("t={:.6}s {ev:?}", t.as_secs_f64())));
        }
        self.staleness.observe(t, ev);
        self.updates.observe(ev);
        self.liveness.observe(t, ev);
        self.replicas.observe(ev);
        self.changes.observe(t, ev);
        self.pull_filter.observe(t, ev);
        self.log_matching.observe(t, ev);
        if let Some(sink) = &mut self.sink {
            if sink.error.is_none() && (sink.low_level || !ev.is_low_level()) {
                let line = Line {
                    t_us: t.as_micros() as u64,
                    ev,
                };
                let res = serde_json::to_writer(&mut sink.out, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| sink.out.write_all(b"\n"));
                if let Err(e) = res {
                    sink.error = Some(e);
                }
            }
        }
    }

    /// Number of events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The trace hash so far: 128 bits, hex.
    pub fn hash_hex(&self) -> String {
        format!("{:032x}", self.hash.digest128())
    }

    /// The kept per-event digests, if asked for.
    pub fn kept(&self) -> &[(u64, String)] {
        self.kept.as_deref().unwrap_or(&[])
    }

    /// Flushes the trace file, reporting the first write error.
    pub fn finish_trace(&mut self) -> std::io::Result<()> {
        match self.sink.take() {
            Some(mut sink) => match sink.error.take() {
                Some(e) => Err(e),
                None => sink.out.flush(),
            },
            None => Ok(()),
        }
    }
}
