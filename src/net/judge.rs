//! From a real run's merged events and the nodes' final reports to the same
//! [`Outcome`] a simulated run has: the events go through the same
//! host-neutral collector and assembly as a simulation's
//! (`crate::run::{collect, assemble}`), so the checkers judge them exactly
//! as in simulation; what only a simulation can promise (determinism, the
//! trace hash) is skipped.
//!
//! May import: `crate::run`, `crate::core`, `crate::outcome`,
//! `crate::scenario`, `crate::trace`, `super` (net). Never: `crate::sim`.

use super::events::Stamped;
use super::host::NodeReport;

use crate::core::{Event, Job, NodeId, View};
use crate::outcome::Outcome;
use crate::run::assemble::{self, End, Header};
use crate::run::collect::Collector;
use crate::run::finals::{self, FinalReplica};
use crate::run::metrics::{Metrics, Traffic};
use crate::run::sample::Sample;
use crate::scenario::Scenario;
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
    /// The faults injected (`[[fault]]`s and `[chaos]`'s draw).
    pub plan: Option<crate::run::plan::Plan>,
}

/// Judges a real run.
pub fn judge(scn: &Scenario, job: &Job, mut run: RealRun) -> Outcome {
    let ranges = crate::run::setup::ranges(scn, job);
    let first = View::initial(scn.cluster.servers, scn.cluster.replication);
    // The last view published, as in the simulator's final replica reads.
    let mut view = first.clone();
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
    let replicas: BTreeMap<NodeId, Vec<FinalReplica>> = run
        .reports
        .iter()
        .filter(|r| r.id.server().is_some())
        .map(|r| (r.id, r.replicas.clone()))
        .collect();
    let initial = crate::run::setup::initial_params(job, run.seed);
    let plan = crate::run::setup::protocol_config(scn, job, run.seed, crate::core::Bugs::NONE)
        .widen
        .clone();
    let (finals, params, level) =
        finals::finals(&ranges, &plan, initial.as_deref(), &view, &replicas);
    let t_end = run.events.last().map_or(run.end, |s| s.t.max(run.end));
    run.events
        .extend(finals.into_iter().map(|ev| Stamped { t: t_end, ev }));

    let (test, loss) = job.evaluate_with(plan.model(&job.model, level), &params);

    let mut recorder = Recorder::new(scn.cluster.workers, ranges.ranges());
    if scn.changes.is_empty() {
        recorder.without_live_changes();
    }
    let trace_error = run
        .trace
        .as_ref()
        .and_then(|p| recorder.write_to(p, false).err());
    let metrics = Metrics::new(assemble::series_interval(scn.training.eval_every));
    let mut log = Collector::new(recorder, metrics, first, None);
    let c = &scn.cluster;
    for ev in crate::run::setup::initial_events(c.servers, c.replication, c.workers) {
        log.record(Duration::ZERO, &ev);
    }
    for s in &run.events {
        log.record(s.t, &s.ev);
    }
    let trace_error = trace_error.or_else(|| log.recorder.finish_trace().err());
    let mut stats = Traffic::default();
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
    let mut o = assemble::empty(
        scn,
        Header {
            scenario: format!("{} (real TCP)", scn.name),
            seed: run.seed,
            reproduce: run.reproduce.clone(),
            bugs: Vec::new(),
            real: true,
            not_simulated: run.not_simulated.clone(),
        },
    );
    o.panic = trace_error.map(|e| format!("could not write the trace: {e}"));
    let end = End {
        end: run.end,
        wall_s: run.wall_s,
        stopped: run.stopped.to_string(),
        time_to_target: None,
        clocks_to_target: None,
        min_clock,
        samples: vec![Sample {
            t_s: run.end.as_secs_f64(),
            accuracy: test.accuracy,
            loss,
            min_clock,
            max_clock: clocks.iter().copied().max().unwrap_or(0),
            mean_clock: if clocks.is_empty() {
                0.0
            } else {
                clocks.iter().map(|&c| f64::from(c)).sum::<f64>() / clocks.len() as f64
            },
            bytes_pushed: stats.bytes_pushed,
            bytes_pulled: stats.bytes_pulled,
        }],
        final_accuracy: test.accuracy,
        final_loss: loss,
        params_digest: {
            let mut h = crate::core::hasher::BufXxh3::new();
            crate::core::msg::hash_values(&mut h, &params);
            format!("{:016x}", h.digest())
        },
        quiet: run.quiet,
        // Liveness is judged against simulated time windows; a real run
        // has a wall-clock timeout instead (`stopped: max_time`).
        liveness: false,
        traffic: stats,
        plan: run.plan.take(),
        trace_hash: None,
    };
    assemble::complete(&mut o, scn, end, log);
    if run.stopped != "finished" {
        o.passed = false;
        o.violations.insert(
            "finished".into(),
            vec![format!(
                "training did not finish within the wall-clock limit ({:.1}s)",
                run.end.as_secs_f64()
            )],
        );
    }
    o
}
