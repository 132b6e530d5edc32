//! From a real run's merged events and the nodes' final reports to the same
//! [`Outcome`] a simulated run has: the events go through the same
//! host-neutral collector and assembly as a simulation's
//! (`crate::run::{collect, assemble}`), so the checkers judge them exactly
//! as in simulation; what only a simulation can promise (determinism, the
//! trace hash) is skipped. Liveness is judged by the same checker and rule
//! as in simulation, on real elapsed times: from the time the last fault
//! healed, every live unfinished worker starts a clock at least once per
//! the scenario's `[check] liveness` window.
//!
//! [`judge_dir`] is `pssim judge DIR`: it reads an events directory
//! ([`super::events`]: every node life's file, and the supervisor's if
//! `pssim local` ran the cluster), merges it in logical order and judges
//! it; `pssim local` judges its own directory the same way.
//!
//! May import: `crate::run`, `crate::core`, `crate::outcome`,
//! `crate::scenario`, `crate::trace`, `super` (net). Never: `crate::sim`.

use super::events::{self, EventsDir, Stamped};
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
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a real run does not honour of a scenario (the outcome's
/// `not_simulated`).
pub fn not_honoured(scn: &Scenario) -> Vec<String> {
    let mut ignored = vec![
        "[check] deterministic: not judged in real mode (the OS schedules threads and \
         sockets: two real runs of one seed interleave differently)"
            .to_string(),
    ];
    if scn.training.target_accuracy.is_some() {
        ignored.push("[training] target_accuracy: not observed during a real run".into());
    }
    ignored
}

/// Judges the events directory `dir` (or `dir/events`): the scenario and
/// seed come from the files' headers, the parameters from the servers'
/// final reports. Without a supervisor's file (a cluster started by hand)
/// the run counts as finished unless a worker reported without being done,
/// the servers as quiet if every one that reported was on the
/// coordinator's last view with nothing left to copy, its end as its last
/// event, and the last fault as healed at the latest of the scenario's
/// plan and the crashes and restarts the files show. Errors are bad input
/// (naming the file).
pub fn judge_dir(dir: &Path, trace: Option<PathBuf>) -> Result<(Scenario, Outcome), String> {
    let d = events::read_dir(dir)?;
    let scn = crate::scenario::parse(&d.header.scenario, &d.header.scenario_file).map_err(|e| {
        format!(
            "{}: the scenario in the files' headers does not parse: {e}",
            d.dir.display()
        )
    })?;
    check_nodes(&scn, &d)?;
    let seed = d.header.seed;
    let job = crate::run::setup::job(&scn);
    let merged = events::merge(&d);
    let plan = super::faults::Model::new(&scn, seed).plan().clone();
    let last = |id: &NodeId| d.lives.get(id).and_then(|ls| ls.last());
    let reports: Vec<NodeReport> = d
        .lives
        .keys()
        .filter_map(|id| last(id)?.report.clone())
        .collect();
    let end_record = d.supervisor.as_ref().and_then(|s| s.end.clone());
    let t_last = merged.last().map_or(Duration::ZERO, |s| s.t);
    let run = match end_record {
        Some(e) => RealRun {
            events: merged,
            reports,
            end: Duration::from_micros(e.end_us),
            wall_s: e.wall_s,
            stopped: if e.stopped == "finished" {
                "finished"
            } else {
                "max_time"
            },
            quiet: e.quiet,
            not_simulated: not_honoured(&scn),
            seed,
            reproduce: e.reproduce,
            trace,
            plan: Some(plan),
            heal: e.heal_us.map(Duration::from_micros),
        },
        None => {
            let unfinished = reports
                .iter()
                .any(|r| r.id.worker().is_some() && !r.status.done);
            let epoch = last(&NodeId::Coordinator)
                .and_then(|f| f.report.as_ref())
                .map(|r| r.status.epoch);
            let quiet = reports
                .iter()
                .filter(|r| r.id.server().is_some())
                .all(|r| r.status.quiet && epoch.is_none_or(|e| e == r.status.epoch));
            let (planned, forever) = plan.last_heal();
            let by_hand = merged
                .iter()
                .filter(|s| matches!(s.ev, Event::Crash { .. } | Event::Restart { .. }))
                .map(|s| s.t)
                .max()
                .unwrap_or_default();
            RealRun {
                events: merged,
                reports,
                end: t_last,
                wall_s: t_last.as_secs_f64(),
                stopped: if unfinished { "max_time" } else { "finished" },
                quiet,
                not_simulated: not_honoured(&scn),
                seed,
                reproduce: format!("pssim judge {}", dir.display()),
                trace,
                plan: Some(plan),
                heal: (!forever).then(|| planned.max(by_hand)),
            }
        }
    };
    let o = judge(&scn, &job, run);
    Ok((scn, o))
}

/// Every file's node is one of the scenario's.
fn check_nodes(scn: &Scenario, d: &EventsDir) -> Result<(), String> {
    let c = &scn.cluster;
    for (id, ls) in &d.lives {
        let ok = match *id {
            NodeId::Coordinator => true,
            NodeId::Server(i) => i < c.servers,
            NodeId::Worker(i) => i < c.workers,
        };
        if !ok {
            return Err(format!(
                "{}:1: field `header.node`: {id} is not a node of scenario {:?} ({} servers, {} workers)",
                ls[0].path.display(),
                scn.name,
                c.servers,
                c.workers
            ));
        }
    }
    Ok(())
}

/// How a real run ended, for [`judge`].
#[derive(Debug)]
pub struct RealRun {
    /// Every event, merged in logical order ([`events::merge`]), with
    /// non-decreasing times.
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
    /// When the last fault healed (since the time origin); `None`: some
    /// fault never heals, and liveness is not judged.
    pub heal: Option<Duration>,
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
    recorder.liveness.configure(run.heal, scn.check.liveness);
    let mut log = Collector::new(recorder, metrics, first, None);
    let c = &scn.cluster;
    for ev in crate::run::setup::initial_events(c.servers, c.replication, c.workers) {
        log.record(Duration::ZERO, &ev);
    }
    for s in &run.events {
        // Judged as time passes, as the simulator polls it: a stall that
        // ends later is still one.
        log.recorder.liveness.poll(s.t);
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
        liveness: scn.check.liveness.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::core::Clock;

    fn ms(t: u64) -> Duration {
        Duration::from_millis(t)
    }

    /// Worker `w` starts clocks 1.. at each of `times_ms`, then finishes.
    fn progress(w: u32, times_ms: &[u64]) -> Vec<Stamped> {
        let mut out: Vec<Stamped> = times_ms
            .iter()
            .enumerate()
            .map(|(i, &t)| Stamped {
                t: ms(t),
                ev: Event::WorkerClock {
                    worker: w,
                    clock: Clock(i as u32 + 1),
                },
            })
            .collect();
        let last = times_ms.last().copied().unwrap_or(0);
        out.push(Stamped {
            t: ms(last + 1),
            ev: Event::WorkerDone {
                worker: w,
                clock: Clock(times_ms.len() as u32),
            },
        });
        out
    }

    /// The liveness verdict of a real run of two workers (window 1 s).
    fn liveness(worker0_ms: &[u64], heal: Option<Duration>) -> (Status, Vec<String>) {
        let scn = crate::scenario::parse(
            "name = \"real-liveness\"\n[cluster]\nservers = 1\nworkers = 2\n\
             [check]\nliveness = \"1s\"\n",
            "inline",
        )
        .expect("a valid scenario");
        let job = crate::run::setup::job(&scn);
        let steady: Vec<u64> = (1..=20).map(|i| i * 100).collect();
        let mut events: Vec<Stamped> = progress(0, worker0_ms)
            .into_iter()
            .chain(progress(1, &steady))
            .collect();
        events.sort_by_key(|s| s.t);
        let o = judge(
            &scn,
            &job,
            RealRun {
                events,
                reports: Vec::new(),
                end: ms(2001),
                wall_s: 2.1,
                stopped: "finished",
                quiet: true,
                not_simulated: Vec::new(),
                seed: 1,
                reproduce: "pssim local real-liveness.toml".into(),
                trace: None,
                plan: None,
                heal,
            },
        );
        let v = o.violations.get("liveness").cloned().unwrap_or_default();
        (o.checks["liveness"], v)
    }

    #[test]
    fn liveness_is_judged_on_real_times_with_the_simulators_rule() {
        let steady: Vec<u64> = (1..=20).map(|i| i * 100).collect();
        assert_eq!(liveness(&steady, Some(ms(0))).0, Status::Pass);
        // worker-0 silent from 0.2 s to 1.5 s: a stall even though it
        // catches up before the end.
        let stalled = [100, 200, 1500, 1600, 1700];
        let (status, v) = liveness(&stalled, Some(ms(0)));
        assert_eq!(status, Status::Fail);
        assert!(v.iter().any(|m| m.contains("worker-0")), "{v:?}");
        // A silence that ends within the window after the last heal is
        // not one; nor is anything judged when a fault never heals.
        assert_eq!(liveness(&stalled, Some(ms(600))).0, Status::Pass);
        assert_eq!(liveness(&stalled, None).0, Status::Skipped);
    }
}
