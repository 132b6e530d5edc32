//! The outcome of a run: the JSON object of ../shared/scenario-format.md
//! (`pssim run --json`) plus the series behind the summary and the plots.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use crate::check::{Report, Status};
use crate::run::failover::Failover;
use crate::run::load::{NodeLoad, UtilSeries};
use crate::run::metrics::{Bucket, KindStats};
use crate::run::plan::Origin;
use crate::run::sample::Sample;
use crate::run::timeline::Segment;
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Whether every check passed (and nothing panicked).
    pub passed: bool,
    /// Verdict per check.
    pub checks: BTreeMap<String, Status>,
    /// Messages of failing checks.
    pub violations: BTreeMap<String, Vec<String>>,
    /// Test accuracy of the final parameters.
    pub final_accuracy: f64,
    /// Training loss of the final parameters.
    pub final_loss: f64,
    /// scikit-learn's accuracy on the same data set, if it is a real one.
    pub reference_accuracy: Option<f64>,
    /// Simulated seconds until training finished (or the run stopped).
    pub sim_time_s: f64,
    /// Real seconds the run took.
    pub wall_time_s: f64,
    /// Simulated time per real time.
    pub speedup: f64,
    /// A real-mode run (`pssim local`): `sim_time_s` is then real seconds
    /// of training.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub real: bool,
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes of pushes.
    pub bytes_pushed: u64,
    /// Bytes of pulls (requests and answers).
    pub bytes_pulled: u64,
    /// What the pushes would have taken with raw float values (equal to
    /// `bytes_pushed` without `[compression]`).
    pub bytes_pushed_raw: u64,
    /// What the pulls would have taken with every value sent raw.
    pub bytes_pulled_raw: u64,
    /// Raw push and pull bytes over the bytes actually sent (1 when
    /// nothing is compressed).
    pub compression_ratio: f64,
    /// Messages lost to faults or dead receivers.
    pub messages_dropped: u64,
    /// Pushes acknowledged to workers.
    pub pushes_acked: u64,
    /// Acknowledged pushes missing from the final parameters.
    pub updates_lost: u64,
    /// Extra applications of pushes.
    pub updates_duplicated: u64,
    /// Per node: bytes delivered in and out, and how busy and how used
    /// its interfaces and CPU were (fractions of `sim_time_s`). Empty (and
    /// left out of the JSON) where the host does not meter them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub load: BTreeMap<String, NodeLoad>,
    /// `"<node> <resource>"` of the highest utilisation in `load` (left
    /// out where nothing was metered or used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottleneck: Option<String>,
    /// Reads the staleness checker judged.
    pub reads_checked: u64,
    /// Lowest clock reached by a worker.
    pub min_clock: u32,
    /// Events recorded.
    pub events: u64,
    /// Hash of the whole event sequence.
    pub trace_hash: String,
    /// Digest of the final parameters (bit patterns of every value).
    pub params_digest: String,
    /// The command that replays this run.
    pub reproduce: String,
    /// Planted bugs switched on.
    pub bugs: Vec<String>,
    /// The target accuracy, if the scenario set one.
    pub target_accuracy: Option<f64>,
    /// Simulated seconds until the target accuracy was first observed.
    pub time_to_target_s: Option<f64>,
    /// The workers' mean clock then (clocks done per worker to reach the
    /// target).
    pub clocks_to_target: Option<f64>,
    /// Why the run stopped: `finished`, `target_accuracy`, `max_time`.
    pub stopped: String,
    /// A panic inside the simulation (a bug), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panic: Option<String>,
    /// Parts of the scenario this version parses but does not simulate yet
    /// (said loudly rather than ignored silently).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_simulated: Vec<String>,
    /// Observations over time.
    pub accuracy: Vec<Sample>,
    /// Throughput per interval of `series_interval_s`.
    pub series: Vec<Bucket>,
    /// The series' interval.
    pub series_interval_s: f64,
    /// Messages and bytes per message kind.
    pub message_kinds: BTreeMap<String, KindStats>,
    /// Every fault of the run (scenario and chaos), by start time.
    pub faults: Vec<FaultRecord>,
    /// Mean fraction of a worker's time spent waiting (not computing).
    pub idle_fraction: f64,
    /// Reads per reader and clocks behind: `(worker, behind, reads)`.
    pub staleness_histogram: Vec<(u32, u32, u64)>,
    /// Every fault of the run as a scenario `[[fault]]` (chaos included),
    /// for `pssim shrink` (not in the JSON: see `faults`).
    #[serde(skip)]
    pub fault_timeline: Vec<crate::scenario::Fault>,
    /// Per-worker timelines (not in the JSON: see the timeline plot).
    #[serde(skip)]
    pub timeline: Vec<Segment>,
    /// Per-server utilisation over time (not in the JSON: see the load
    /// plot); no servers where `load` is empty.
    #[serde(skip)]
    pub load_series: UtilSeries,
    /// Server crashes and the time their ranges took to serve again.
    pub failovers: Vec<Failover>,
    /// What `[chaos]` chose for this seed (swarm testing), if it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
}

/// One fault of a run.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Its `kind`.
    pub kind: &'static str,
    /// Nodes it names.
    pub nodes: Vec<String>,
    /// Simulated second it starts.
    pub start_s: f64,
    /// Simulated second it heals (`None`: never).
    pub end_s: Option<f64>,
    /// `[[fault]]` or `[chaos]`.
    pub origin: Origin,
    /// Its parameters, readable.
    pub detail: String,
}

impl Outcome {
    /// Adds a check's verdict.
    /// Fills the update counts and adds every check the recorder's
    /// checkers judged, for a run of `scn` that ended at `end` with final
    /// test accuracy `accuracy`; `liveness` says whether liveness applies
    /// (simulated time windows), `quiet` whether replication had settled.
    /// Determinism is judged apart (it needs a second run).
    pub fn judge(
        &mut self,
        recorder: &mut crate::trace::Recorder,
        scn: &crate::scenario::Scenario,
        end: std::time::Duration,
        (liveness, quiet): (bool, bool),
        accuracy: f64,
    ) {
        let counts = recorder.updates.finish(scn.check.no_lost_updates);
        self.pushes_acked = counts.acked;
        self.updates_lost = counts.lost;
        self.updates_duplicated = counts.duplicated;
        let staleness_applies = scn.training.consistency != crate::scenario::Consistency::Asp;
        let reports = [
            recorder.liveness.report(end, liveness),
            recorder.changes.report(!scn.changes.is_empty()),
            recorder
                .pull_filter
                .report(scn.compression.pull_threshold > 0.0),
            recorder.replicas.report(scn.check.replicas_agree, quiet),
            recorder.log_matching.report(scn.check.replicas_agree),
            recorder
                .staleness
                .report(scn.check.staleness_bound && staleness_applies),
            counts.report,
            crate::check::accuracy::check(accuracy, scn.check.min_accuracy),
            crate::check::determinism::check(false, "", "", &[], &[]),
        ];
        for r in &reports {
            self.add_check(r);
        }
    }

    /// Adds one check's verdict.
    pub fn add_check(&mut self, r: &Report) {
        self.checks.insert(r.name.to_string(), r.status);
        if r.status == Status::Fail {
            let mut msgs: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
            if r.total > r.violations.len() as u64 {
                msgs.push(format!(
                    "... and {} more",
                    r.total - r.violations.len() as u64
                ));
            }
            self.violations.insert(r.name.to_string(), msgs);
        }
        self.passed = self.panic.is_none() && self.checks.values().all(|s| *s != Status::Fail);
    }

    /// The checks that failed, in name order, and `panic` if the
    /// simulation panicked.
    pub fn failed_checks(&self) -> Vec<String> {
        let mut failed: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, s)| **s == Status::Fail)
            .map(|(k, _)| k.clone())
            .collect();
        if self.panic.is_some() {
            failed.push("panic".into());
        }
        failed
    }

    /// Exit code: 0 all checks pass, 1 a check failed.
    pub fn exit_code(&self) -> i32 {
        if self.passed {
            0
        } else {
            1
        }
    }
}

/// Writes the run's time series as CSV into `dir`: `series.csv` (one row
/// per throughput interval) and `accuracy.csv` (one row per observation).
pub fn write_csv(o: &Outcome, dir: &std::path::Path) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(dir.join("series.csv"))?;
    w.write_record([
        "t_start_s",
        "t_end_s",
        "updates_applied",
        "pushes_acked",
        "pulls_answered",
        "bytes",
    ])?;
    let dt = o.series_interval_s;
    for (i, b) in o.series.iter().enumerate() {
        w.write_record([
            format!("{:.6}", i as f64 * dt),
            format!("{:.6}", (i + 1) as f64 * dt),
            b.applied.to_string(),
            b.acked.to_string(),
            b.pulls.to_string(),
            b.bytes.to_string(),
        ])?;
    }
    w.flush()?;
    let mut w = csv::Writer::from_path(dir.join("accuracy.csv"))?;
    for s in &o.accuracy {
        w.serialize(s)?;
    }
    w.flush()?;
    Ok(())
}
