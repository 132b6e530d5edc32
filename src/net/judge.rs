//! From a real run's merged events and the nodes' final reports to the same
//! [`Outcome`] a simulated run has: the checkers run over the events
//! exactly as in simulation; what only a simulation can promise
//! (determinism, the trace hash) is skipped.

use super::events::Stamped;
use super::host::{NodeReport, SendStats};

use crate::core::{Event, Job, NodeId, View};
use crate::outcome::Outcome;
use crate::scenario::Scenario;
use crate::sim::metrics::{KindStats, Metrics};
use crate::sim::observer::Sample;
use crate::trace::Recorder;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How a real run ended, for [`judge`].
#[derive(Debug)]
pub struct RealRun {
    /// Every event, merged by time.
    pub events: Vec<Stamped>,
    /// The final reports of the nodes alive at the end.
    pub reports: Vec<NodeReport>,
    /// When training finished (or the run was stopped).
    pub end: Duration,
    /// Wall seconds the whole run took (start-up and shutdown included).
    pub wall_s: f64,
    /// `finished` or `max_time`.
    pub stopped: &'static str,
    /// Whether every server was quiet and held the last view at the end.
    pub quiet: bool,
    /// Parts of the scenario not honoured in real mode.
    pub not_simulated: Vec<String>,
    /// Seed of the workers' generators.
    pub seed: u64,
    /// How the run was started (for the outcome's `reproduce`).
    pub reproduce: String,
    /// Write the merged events as JSON Lines here.
    pub trace: Option<PathBuf>,
}

/// Judges a real run.
pub fn judge(scn: &Scenario, job: &Job, mut run: RealRun) -> Outcome {
    let dim = job.model.dim();
    let cfg_ranges = crate::core::RangeMap::new(dim, scn.cluster.servers);
    // The last view published, as in the simulator's final replica reads.
    let mut view = View::initial(scn.cluster.servers, scn.cluster.replication);
    for s in &run.events {
        if let Event::View { epoch, chains } = &s.ev {
            if *epoch > view.epoch {
                view = View {
                    epoch: *epoch,
                    chains: chains.clone(),
                };
            }
        }
    }
    let by_server: BTreeMap<NodeId, &NodeReport> = run
        .reports
        .iter()
        .filter(|r| r.id.server().is_some())
        .map(|r| (r.id, r))
        .collect();
    let replica = |server: NodeId, range: u32| {
        by_server
            .get(&server)
            .and_then(|r| r.replicas.iter().find(|x| x.range == range))
    };
    let mut finals = Vec::new();
    let mut params = vec![0f32; dim as usize];
    for r in 0..cfg_ranges.ranges() {
        let chain = &view.chains[r as usize];
        for &server in chain {
            if let Some(rep) = replica(server, r) {
                finals.push(Event::Final {
                    server,
                    range: r,
                    digest: rep.digest.clone(),
                    applied: rep.applied,
                    applied_set: rep.applied_set.clone(),
                    clock_table: rep.clock_table.clone(),
                    dedup_table: rep.dedup_table.clone(),
                });
            }
        }
        // The tail's state is on every replica; any holder if none is left.
        let found = chain
            .iter()
            .rev()
            .copied()
            .chain(by_server.keys().copied())
            .find_map(|s| replica(s, r));
        if let Some(rep) = found {
            let k = cfg_ranges.keys(r);
            if rep.params.len() == k.len() {
                params[k.start as usize..k.end as usize].copy_from_slice(&rep.params);
            }
        }
    }
    let t_end = run.events.last().map_or(run.end, |s| s.t.max(run.end));
    run.events
        .extend(finals.into_iter().map(|ev| Stamped { t: t_end, ev }));

    let (test, loss) = job.evaluate(&params);

    let mut recorder = Recorder::new(scn.cluster.workers, cfg_ranges.ranges());
    let trace_error = run
        .trace
        .as_ref()
        .and_then(|p| recorder.write_to(p, false).err());
    let interval = (scn.training.eval_every / 5).max(Duration::from_millis(10));
    let mut metrics = Metrics::new(interval);
    for s in &run.events {
        metrics.on_event(s.t, &s.ev);
        recorder.record(s.t, &s.ev);
    }
    let trace_error = trace_error.or_else(|| recorder.finish_trace().err());
    let mut stats = SendStats::default();
    for r in &run.reports {
        stats.add(&r.stats);
    }
    let clocks: Vec<u32> = run
        .reports
        .iter()
        .filter(|r| r.id.worker().is_some())
        .map(|r| r.clock)
        .collect();
    let min_clock = clocks.iter().copied().min().unwrap_or(0);
    let end_s = run.end.as_secs_f64();
    let mut o = Outcome {
        scenario: format!("{} (real TCP)", scn.name),
        seed: run.seed,
        passed: true,
        checks: BTreeMap::new(),
        violations: BTreeMap::new(),
        final_accuracy: test.accuracy,
        final_loss: loss,
        reference_accuracy: crate::sim::setup::reference_accuracy(scn.model.dataset),
        sim_time_s: end_s,
        wall_time_s: run.wall_s,
        speedup: end_s / run.wall_s.max(1e-9),
        real: true,
        messages: stats.messages,
        bytes: stats.bytes,
        bytes_pushed: stats.bytes_pushed,
        bytes_pulled: stats.bytes_pulled,
        bytes_pushed_raw: stats.bytes_pushed_raw,
        bytes_pulled_raw: stats.bytes_pulled_raw,
        compression_ratio: {
            let sent = stats.bytes_pushed + stats.bytes_pulled;
            if sent == 0 {
                1.0
            } else {
                (stats.bytes_pushed_raw + stats.bytes_pulled_raw) as f64 / sent as f64
            }
        },
        messages_dropped: stats.dropped,
        pushes_acked: 0,
        updates_lost: 0,
        updates_duplicated: 0,
        reads_checked: recorder.staleness.reads(),
        min_clock,
        events: recorder.events(),
        trace_hash: "skipped".into(),
        params_digest: {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            crate::core::msg::hash_values(&mut h, &params);
            format!("{:016x}", h.digest())
        },
        reproduce: run.reproduce.clone(),
        bugs: Vec::new(),
        target_accuracy: scn.training.target_accuracy,
        time_to_target_s: None,
        stopped: run.stopped.to_string(),
        panic: trace_error.map(|e| format!("could not write the trace: {e}")),
        not_simulated: run.not_simulated.clone(),
        accuracy: vec![Sample {
            t_s: end_s,
            accuracy: test.accuracy,
            loss,
            min_clock,
            max_clock: clocks.iter().copied().max().unwrap_or(0),
            bytes_pushed: stats.bytes_pushed,
            bytes_pulled: stats.bytes_pulled,
        }],
        series_interval_s: interval.as_secs_f64(),
        series: metrics.series.clone(),
        message_kinds: stats
            .by_kind
            .iter()
            .map(|(k, &(count, bytes))| (k.clone(), KindStats { count, bytes }))
            .collect(),
        faults: Vec::new(),
        idle_fraction: 0.0,
        staleness_histogram: recorder
            .staleness
            .histogram()
            .iter()
            .map(|(&(w, b), &n)| (w, b, n))
            .collect(),
        fault_timeline: Vec::new(),
        timeline: Vec::new(),
        failovers: Vec::new(),
        swarm: None,
    };
    // Liveness is judged against simulated time windows; a real run has a
    // wall-clock timeout instead (`stopped: max_time`).
    o.judge(
        &mut recorder,
        scn,
        run.end,
        (false, run.quiet),
        test.accuracy,
    );
    if run.stopped != "finished" {
        o.passed = false;
        o.violations.insert(
            "finished".into(),
            vec![format!(
                "training did not finish within the wall-clock limit ({:.1}s)",
                end_s
            )],
        );
    }
    o
}
