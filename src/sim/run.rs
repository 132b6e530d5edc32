//! Running a scenario: build the madsim runtime for a seed, start every
//! node, observe until training ends, then hand the run's end and its
//! collected events to the host-neutral assembly (`crate::run::assemble`).
//!
//! May import: `crate::run`, `crate::core`, `crate::check`, `crate::trace`,
//! `crate::outcome`, `crate::scenario`, `super` (sim), madsim. Never:
//! `crate::net`.

use super::compute::ComputeModel;
use super::faults;
use super::net::{NetConfig, Network};
use super::node::{net_main, node_main};
use super::world::{lock, World};
use crate::check::determinism;
use crate::core::{Bugs, NodeId, View};
use crate::outcome::Outcome;
use crate::run::assemble::{self, End, Header};
use crate::run::collect::Collector;
use crate::run::finals;
use crate::run::load::LoadMeter;
use crate::run::metrics::Metrics;
use crate::run::plan::{self, Plan};
use crate::run::setup;
use crate::scenario::Scenario;
use crate::trace::Recorder;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Planted bugs to switch on.
    pub bugs: Bugs,
    /// Write the JSON Lines trace here.
    pub trace: Option<PathBuf>,
    /// Include deliveries, drops and timer firings in the trace file.
    pub trace_low_level: bool,
    /// Keep per-event digests (to locate a divergence).
    pub keep_events: bool,
    /// How the scenario was named on the command line (for REPRODUCE).
    pub source: String,
    /// `--set KEY=VALUE` overrides applied to the scenario (for REPRODUCE).
    pub sets: Vec<String>,
    /// Replace the hyperparameter schedule (and drop live changes): to
    /// compare a live change with a schedule configured from the start.
    pub schedule: Option<crate::core::Schedule>,
}

impl RunOptions {
    /// The command that replays a run.
    pub fn reproduce(&self) -> String {
        let mut s = format!("pssim run {} --seed {}", self.source, self.seed);
        for b in self.bugs.iter() {
            s.push_str(&format!(" --bug {b}"));
        }
        for kv in &self.sets {
            s.push_str(&format!(" --set {}", shell_quote(kv)));
        }
        s
    }
}

/// Quotes a word for a POSIX shell if it needs it.
fn shell_quote(w: &str) -> String {
    let plain = w
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-=/:,+".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A finished run.
#[derive(Debug)]
pub struct RunResult {
    /// What it reports.
    pub outcome: Outcome,
    /// Per-event digests and renderings, if kept.
    pub kept: Vec<(u64, String)>,
}

/// Runs a scenario once, then (if its `[check] deterministic` is set) a
/// second time to compare trace hashes.
pub fn run(scn: &Scenario, opts: &RunOptions) -> RunResult {
    if !scn.check.deterministic {
        return run_once(scn, opts);
    }
    let keep = RunOptions {
        keep_events: true,
        ..opts.clone()
    };
    let mut first = run_once(scn, &keep);
    let second = run_once(
        scn,
        &RunOptions {
            trace: None,
            ..keep
        },
    );
    let report = determinism::check(
        true,
        &first.outcome.trace_hash,
        &second.outcome.trace_hash,
        &first.kept,
        &second.kept,
    );
    first.outcome.add_check(&report);
    first
}

/// Runs a scenario once with the given seed.
pub fn run_once(scn: &Scenario, opts: &RunOptions) -> RunResult {
    let job = Arc::new(setup::job(scn));
    let mut cfg = setup::protocol_config(scn, &job, opts.seed, opts.bugs);
    if let Some(schedule) = &opts.schedule {
        let c = Arc::make_mut(&mut cfg);
        c.schedule = schedule.clone();
        c.changes.clear();
    }
    let mut recorder = Recorder::new(cfg.workers, cfg.ranges.ranges());
    if scn.changes.is_empty() {
        recorder.without_live_changes();
    }
    let trace_error = opts
        .trace
        .as_ref()
        .and_then(|p| recorder.write_to(p, opts.trace_low_level).err());
    if opts.keep_events {
        recorder.keep_events();
    }
    // Wall time is read outside the simulation (inside it, madsim replaces
    // the clock with simulated time).
    let wall_start = std::time::Instant::now();
    let rt = madsim::runtime::Runtime::with_seed_and_config(opts.seed, madsim::Config::default());
    let sim = {
        let (cfg, job) = (cfg.clone(), job.clone());
        let scn = scn.clone();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            rt.block_on(simulate(scn, cfg, job, recorder))
        }))
    };
    let wall = wall_start.elapsed();
    let mut outcome = assemble::empty(
        scn,
        Header {
            scenario: scn.name.clone(),
            seed: opts.seed,
            reproduce: opts.reproduce(),
            bugs: opts.bugs.iter().map(|b| b.name().to_string()).collect(),
            real: false,
            not_simulated: Vec::new(),
        },
    );
    outcome.wall_time_s = wall.as_secs_f64();
    let mut kept = Vec::new();
    match sim {
        Ok((mut end, mut log)) => {
            if let Err(e) = log.recorder.finish_trace() {
                outcome.panic = Some(format!("could not write the trace: {e}"));
            }
            kept = log.recorder.kept().to_vec();
            end.wall_s = outcome.wall_time_s;
            assemble::complete(&mut outcome, scn, end, log);
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            outcome.panic = Some(msg);
            outcome.passed = false;
        }
    }
    if let Some(e) = trace_error {
        outcome.panic = Some(format!("could not write the trace: {e}"));
        outcome.passed = false;
    }
    RunResult { outcome, kept }
}

/// The simulation itself: runs inside the madsim runtime. Hands back how
/// the run ended and everything its events fed.
async fn simulate(
    scn: Scenario,
    cfg: Arc<crate::core::ProtocolConfig>,
    job: Arc<crate::core::Job>,
    recorder: Recorder,
) -> (End, Collector) {
    let net = Network::new(NetConfig {
        latency_min: scn.network.latency_min,
        latency_max: scn.network.latency_max,
        bandwidth_bps: scn.network.bandwidth_bps,
        capacity: (0..scn.cluster.servers)
            .map(|s| (NodeId::Server(s), scn.network.server_bandwidth()))
            .chain(
                (0..scn.cluster.workers)
                    .map(|w| (NodeId::Worker(w), scn.network.worker_bandwidth())),
            )
            .collect(),
        servers: scn.cluster.servers,
        workers: scn.cluster.workers,
        loss: scn.network.loss,
    });
    let compute = ComputeModel::new(setup::cost_model(&scn));
    let eval_every = scn.training.eval_every;
    let metrics = Metrics::new(assemble::series_interval(eval_every));
    // Randomness inside the simulation comes only from madsim's seeded
    // generator: one draw seeds the fault plan, the next the world.
    let plan = Plan::new(
        &scn,
        &mut ChaCha8Rng::seed_from_u64(madsim::rand::thread_rng().next_u64()),
    );
    let mut recorder = recorder;
    let (heal, forever) = plan.last_heal();
    recorder
        .liveness
        .configure((!forever).then_some(heal), scn.check.liveness);
    let nodes = plan::all_nodes(cfg.servers, cfg.workers);
    let meter = LoadMeter::new(&nodes, metrics.interval());
    let log = Collector::new(
        recorder,
        metrics,
        View::initial(cfg.servers, cfg.replication),
        Some(cfg.workers),
    )
    .with_load(meter);
    let world_seed = madsim::rand::thread_rng().next_u64();
    let world = World::new(cfg.clone(), job, net, compute, log, world_seed);
    let shared = Arc::new(Mutex::new(world));
    let handle = madsim::runtime::Handle::current();
    let ids: Vec<NodeId> = lock(&shared).slots.iter().map(|s| s.id).collect();
    for ev in setup::initial_events(cfg.servers, cfg.replication, cfg.workers) {
        lock(&shared).record(ev);
    }
    for id in ids {
        let s = shared.clone();
        let node = handle
            .create_node()
            .name(id.to_string())
            .init(move || node_main(s.clone(), id))
            .build();
        let mut w = lock(&shared);
        let idx = w.index(id);
        w.slots[idx].madsim_id = Some(node.id());
    }

    madsim::task::spawn(faults::inject(shared.clone(), plan.clone()));
    madsim::task::spawn(net_main(shared.clone()));

    let mut samples = vec![lock(&shared).sample()];
    let mut time_to_target = None;
    let mut clocks_to_target = None;
    let stopped;
    loop {
        if eval_every < Duration::from_millis(1) {
            // madsim rounds a sleep under 1 ms up to 1 ms: sleep to an
            // exact deadline instead (longer intervals keep madsim's
            // sleep, and every existing trace).
            let at = madsim::time::Instant::now() + eval_every;
            super::inbox::sleep_exact(at).await;
        } else {
            madsim::time::sleep(eval_every).await;
        }
        let mut w = lock(&shared);
        let s = w.sample();
        samples.push(s);
        let now = w.now();
        if time_to_target.is_none()
            && scn
                .training
                .target_accuracy
                .is_some_and(|t| s.accuracy >= t)
        {
            time_to_target = Some(now);
            clocks_to_target = Some(s.mean_clock);
            stopped = "target_accuracy";
            break;
        }
        if w.training_done_at.is_some() {
            stopped = "finished";
            break;
        }
        if now >= scn.training.max_time {
            stopped = "max_time";
            break;
        }
        if w.log.recorder.liveness.poll(now) {
            // A worker is stuck for good: no point simulating further.
            stopped = "liveness";
            break;
        }
    }

    if stopped == "finished" {
        // Let replication settle (acknowledgements, catch-ups, the last
        // view) before the replicas are compared.
        let grace = cfg.heartbeat_timeout * 8;
        let until = lock(&shared).now() + grace;
        while !lock(&shared).servers_quiet() && lock(&shared).now() < until {
            madsim::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut w = lock(&shared);
    let quiet = w.servers_quiet();
    let end = match stopped {
        "finished" => w.training_done_at.unwrap_or_else(|| w.now()),
        _ => w.now(),
    };
    w.finish_load(end);
    // Final state of every replica in the last view, for the checkers and
    // the trace.
    let initial = w.cfg.initial.clone();
    let (finals, params, level) = finals::finals(
        &w.cfg.ranges,
        &w.cfg.widen,
        initial.as_deref(),
        &w.log.view,
        &w.replicas(),
    );
    for ev in finals {
        w.record(ev);
    }
    let (test, loss) = w
        .job
        .evaluate_with(w.cfg.widen.model(&w.job.model, level), &params);
    let params_digest = {
        let mut h = crate::core::hasher::BufXxh3::new();
        crate::core::msg::hash_values(&mut h, &params);
        format!("{:016x}", h.digest())
    };
    let (min_clock, _) = w.clock_span();
    let empty = Collector::new(
        Recorder::new(0, 0),
        Metrics::new(eval_every),
        w.log.view.clone(),
        None,
    );
    let log = std::mem::replace(&mut w.log, empty);
    let end = End {
        end,
        wall_s: 0.0,
        stopped: stopped.to_string(),
        time_to_target,
        clocks_to_target,
        min_clock,
        samples,
        final_accuracy: test.accuracy,
        final_loss: loss,
        params_digest,
        quiet,
        liveness: scn.check.liveness.is_some(),
        traffic: log.metrics.traffic(),
        plan: Some(plan),
        trace_hash: Some(log.recorder.hash_hex()),
    };
    (end, log)
}
