//! From a run's collected events and the host's account of its end to the
//! [`Outcome`]: the same assembly for a simulated and a real run, so both
//! report and judge alike.
//!
//! May import: `crate::outcome` (the type it builds), `crate::core`,
//! `crate::scenario`, `super` (run). Never: a host (`crate::sim`,
//! `crate::net`).

use super::collect::Collector;
use super::metrics::Traffic;
use super::plan::Plan;
use super::sample::Sample;
use super::setup;
use crate::outcome::{FaultRecord, Outcome};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::time::Duration;

/// Who ran what, and how to run it again.
#[derive(Clone, Debug)]
pub struct Header {
    /// The scenario's name as reported.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The command that replays the run.
    pub reproduce: String,
    /// Planted bugs switched on.
    pub bugs: Vec<String>,
    /// A real-mode run (times are real seconds).
    pub real: bool,
    /// Parts of the scenario the host did not honour.
    pub not_simulated: Vec<String>,
}

/// How a run ended, as its host saw it.
#[derive(Debug)]
pub struct End {
    /// When training finished (or the run stopped), from the start.
    pub end: Duration,
    /// Wall seconds the run took.
    pub wall_s: f64,
    /// Why it stopped: `finished`, `target_accuracy`, `max_time`, `liveness`.
    pub stopped: String,
    /// When the target accuracy was first observed.
    pub time_to_target: Option<Duration>,
    /// The workers' mean clock when the target accuracy was first
    /// observed.
    pub clocks_to_target: Option<f64>,
    /// Lowest clock a worker reached.
    pub min_clock: u32,
    /// Observations over time.
    pub samples: Vec<Sample>,
    /// Test accuracy of the final parameters.
    pub final_accuracy: f64,
    /// Training loss of the final parameters.
    pub final_loss: f64,
    /// Digest of the final parameters (hex).
    pub params_digest: String,
    /// Whether replication had settled when the final states were read.
    pub quiet: bool,
    /// Whether liveness can be judged (its windows are simulated time).
    pub liveness: bool,
    /// What went over the wire.
    pub traffic: Traffic,
    /// The faults of the run, if the host followed a plan.
    pub plan: Option<Plan>,
    /// The trace hash (`None`: not comparable between runs, skipped).
    pub trace_hash: Option<String>,
}

/// Width of the throughput series' buckets: a fifth of the observer's
/// period, at least 10 ms.
pub fn series_interval(eval_every: Duration) -> Duration {
    (eval_every / 5).max(Duration::from_millis(10))
}

/// An outcome with nothing measured yet (what a run that panicked
/// reports, with its panic).
pub fn empty(scn: &Scenario, h: Header) -> Outcome {
    Outcome {
        scenario: h.scenario,
        seed: h.seed,
        passed: true,
        checks: BTreeMap::new(),
        violations: BTreeMap::new(),
        final_accuracy: f64::NAN,
        final_loss: f64::NAN,
        reference_accuracy: setup::reference_accuracy(&scn.model),
        sim_time_s: 0.0,
        wall_time_s: 0.0,
        speedup: 0.0,
        real: h.real,
        messages: 0,
        bytes: 0,
        bytes_pushed: 0,
        bytes_pulled: 0,
        bytes_pushed_raw: 0,
        bytes_pulled_raw: 0,
        compression_ratio: 1.0,
        messages_dropped: 0,
        pushes_acked: 0,
        updates_lost: 0,
        updates_duplicated: 0,
        load: BTreeMap::new(),
        bottleneck: None,
        reads_checked: 0,
        min_clock: 0,
        events: 0,
        trace_hash: String::new(),
        params_digest: String::new(),
        reproduce: h.reproduce,
        bugs: h.bugs,
        target_accuracy: scn.training.target_accuracy,
        time_to_target_s: None,
        clocks_to_target: None,
        stopped: String::new(),
        panic: None,
        not_simulated: h.not_simulated,
        accuracy: Vec::new(),
        series: Vec::new(),
        series_interval_s: 0.0,
        message_kinds: BTreeMap::new(),
        faults: Vec::new(),
        failovers: Vec::new(),
        idle_fraction: 0.0,
        staleness_histogram: Vec::new(),
        timeline: Vec::new(),
        fault_timeline: Vec::new(),
        load_series: Default::default(),
        swarm: None,
    }
}

/// Fills `o` from how the run ended and what its events showed, then
/// judges every check (determinism apart: it needs a second run).
pub fn complete(o: &mut Outcome, scn: &Scenario, end: End, mut log: Collector) {
    o.final_accuracy = end.final_accuracy;
    o.final_loss = end.final_loss;
    o.params_digest = end.params_digest;
    o.sim_time_s = end.end.as_secs_f64();
    o.wall_time_s = end.wall_s;
    o.speedup = o.sim_time_s / o.wall_time_s.max(1e-9);
    let t = &end.traffic;
    o.messages = t.messages;
    o.bytes = t.bytes;
    o.bytes_pushed = t.bytes_pushed;
    o.bytes_pulled = t.bytes_pulled;
    o.bytes_pushed_raw = t.bytes_pushed_raw;
    o.bytes_pulled_raw = t.bytes_pulled_raw;
    let sent = o.bytes_pushed + o.bytes_pulled;
    if sent > 0 {
        o.compression_ratio = (o.bytes_pushed_raw + o.bytes_pulled_raw) as f64 / sent as f64;
    }
    o.messages_dropped = t.dropped;
    o.message_kinds = end
        .traffic
        .by_kind
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v))
        .collect();
    o.events = log.recorder.events();
    o.trace_hash = end.trace_hash.unwrap_or_else(|| "skipped".into());
    o.time_to_target_s = end.time_to_target.map(|t| t.as_secs_f64());
    o.clocks_to_target = end.clocks_to_target;
    o.stopped = end.stopped;
    o.min_clock = end.min_clock;
    o.reads_checked = log.recorder.staleness.reads();
    o.accuracy = end.samples;
    o.series_interval_s = log.metrics.interval().as_secs_f64();
    o.series = std::mem::take(&mut log.metrics.series);
    if let Some(plan) = end.plan {
        o.faults = plan
            .faults
            .iter()
            .map(|f| FaultRecord {
                kind: f.kind.name(),
                nodes: f.kind.nodes().iter().map(|n| n.to_string()).collect(),
                start_s: f.at.as_secs_f64(),
                end_s: f.end().map(|e| e.as_secs_f64()),
                origin: f.origin,
                detail: f.detail(),
            })
            .collect();
        o.fault_timeline = plan
            .faults
            .iter()
            .map(|f| crate::scenario::Fault {
                at: f.at,
                kind: f.kind.clone(),
                line: 0,
            })
            .collect();
        o.swarm = plan.swarm;
    }
    o.failovers = std::mem::take(&mut log.failovers).finish();
    if let Some(mut tl) = log.timelines.take() {
        for w in 0..tl.workers() {
            tl.stop(w, end.end);
        }
        o.idle_fraction = tl.idle_fraction();
        o.timeline = tl.segments;
    }
    if let Some(meter) = log.load.take() {
        let load = meter.finish(end.end);
        o.load = load.nodes;
        o.bottleneck = load.bottleneck;
        o.load_series = load.series;
    }
    o.staleness_histogram = log
        .recorder
        .staleness
        .histogram()
        .iter()
        .map(|(&(w, b), &n)| (w, b, n))
        .collect();
    o.judge(
        &mut log.recorder,
        scn,
        end.end,
        (end.liveness, end.quiet),
        end.final_accuracy,
    );
}

/// A run of the scenario `toml` with nothing measured, and the scenario
/// (a fixture for tests of what reads outcomes).
#[cfg(test)]
pub(crate) fn bare(toml: &str) -> (Scenario, Outcome) {
    let scn = crate::scenario::parse(toml, "inline").expect("a valid test scenario");
    let header = Header {
        scenario: scn.name.clone(),
        seed: 1,
        reproduce: format!("pssim run {}.toml --seed 1", scn.name),
        bugs: Vec::new(),
        real: false,
        not_simulated: Vec::new(),
    };
    let o = empty(&scn, header);
    (scn, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{NodeId, View};
    use crate::run::load::{LoadMeter, Resource};
    use crate::run::metrics::Metrics;
    use crate::trace::Recorder;

    /// A one-server, one-worker run of 2 s assembled with `meter`.
    fn assembled(meter: Option<LoadMeter>) -> Outcome {
        let (scn, mut o) = bare("name = \"x\"\n[cluster]\nservers = 1\nworkers = 1\n");
        let interval = Duration::from_millis(500);
        let mut log = Collector::new(
            Recorder::new(1, 1),
            Metrics::new(interval),
            View::initial(1, 1),
            None,
        );
        if let Some(m) = meter {
            log = log.with_load(m);
        }
        let (s, w) = (NodeId::Server(0), NodeId::Worker(0));
        log.busy(
            s,
            Resource::NicIn,
            Duration::ZERO,
            Duration::from_secs(1),
            0.5,
        );
        log.busy(
            w,
            Resource::Cpu,
            Duration::ZERO,
            Duration::from_millis(400),
            1.0,
        );
        log.delivered(w, s, 1000);
        let end = End {
            end: Duration::from_secs(2),
            wall_s: 0.0,
            stopped: "finished".into(),
            time_to_target: None,
            clocks_to_target: None,
            min_clock: 0,
            samples: Vec::new(),
            final_accuracy: 1.0,
            final_loss: 0.0,
            params_digest: String::new(),
            quiet: true,
            liveness: false,
            traffic: Traffic::default(),
            plan: None,
            trace_hash: Some("00".into()),
        };
        complete(&mut o, &scn, end, log);
        o
    }

    #[test]
    fn the_load_is_reported_only_where_a_host_meters_it_and_changes_nothing_else() {
        let plain = assembled(None);
        assert!(plain.load.is_empty() && plain.bottleneck.is_none());
        assert!(plain.load_series.servers.is_empty());
        let json = serde_json::to_value(&plain).expect("serializable");
        assert!(json.get("load").is_none() && json.get("bottleneck").is_none());

        let nodes = [NodeId::Server(0), NodeId::Worker(0), NodeId::Coordinator];
        let metered = assembled(Some(LoadMeter::new(&nodes, Duration::from_millis(500))));
        let s = metered.load["server-0"];
        assert_eq!(
            (s.bytes_in, s.nic_in_busy, s.nic_in_util),
            (1000, 0.5, 0.25)
        );
        assert_eq!(metered.load["worker-0"].cpu_util, 0.2);
        assert_eq!(metered.load.len(), 3);
        assert_eq!(metered.bottleneck.as_deref(), Some("server-0 nic_in"));
        let series = &metered.load_series;
        assert_eq!(series.interval_s, 0.5);
        assert_eq!(series.servers[0].util[0], [0.5, 0.5, 0.0, 0.0]);
        let mut with = serde_json::to_value(&metered).expect("serializable");
        assert_eq!(with["bottleneck"], "server-0 nic_in");
        assert_eq!(with["load"]["server-0"]["nic_in_busy"], 0.5);
        let fields = with.as_object_mut().expect("an object");
        fields.remove("load");
        fields.remove("bottleneck");
        assert_eq!(with, json, "the meter changed another field");
    }
}
