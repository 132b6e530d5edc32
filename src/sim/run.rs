//! Running a scenario: build the madsim runtime for a seed, start every
//! node, observe until training ends, then judge the run.

use super::compute::ComputeModel;
use super::faults::{self, Plan};
use super::metrics::Metrics;
use super::net::{NetConfig, Network};
use super::node::node_main;
use super::observer::Sample;
use super::setup;
use super::world::{lock, World};
use crate::check::determinism;
use crate::core::{Bugs, Event, Node, NodeId};
use crate::outcome::{FaultRecord, Outcome};
use crate::scenario::Scenario;
use crate::trace::Recorder;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
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

/// What the simulation hands back before checks are judged.
struct SimEnd {
    samples: Vec<Sample>,
    recorder: Recorder,
    metrics: Metrics,
    final_accuracy: f64,
    final_loss: f64,
    params_digest: u64,
    end: Duration,
    time_to_target: Option<Duration>,
    stopped: &'static str,
    min_clock: u32,
    plan: Plan,
    failovers: Vec<super::failover::Failover>,
    timelines: super::timeline::Timelines,
    /// Whether replication had settled when the final states were taken.
    quiet: bool,
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
    let mut cfg = setup::protocol_config(scn, job.model.dim(), opts.bugs);
    if let Some(schedule) = &opts.schedule {
        let c = Arc::make_mut(&mut cfg);
        c.schedule = schedule.clone();
        c.changes.clear();
    }
    let mut recorder = Recorder::new(cfg.workers, cfg.ranges.ranges());
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
    let mut outcome = base_outcome(scn, opts);
    outcome.wall_time_s = wall.as_secs_f64();
    let mut kept = Vec::new();
    match sim {
        Ok(mut end) => {
            if let Err(e) = end.recorder.finish_trace() {
                outcome.panic = Some(format!("could not write the trace: {e}"));
            }
            kept = end.recorder.kept().to_vec();
            fill(&mut outcome, scn, end);
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

fn base_outcome(scn: &Scenario, opts: &RunOptions) -> Outcome {
    Outcome {
        scenario: scn.name.clone(),
        seed: opts.seed,
        passed: true,
        checks: BTreeMap::new(),
        violations: BTreeMap::new(),
        final_accuracy: f64::NAN,
        final_loss: f64::NAN,
        reference_accuracy: setup::reference_accuracy(scn.model.dataset),
        sim_time_s: 0.0,
        wall_time_s: 0.0,
        speedup: 0.0,
        real: false,
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
        reads_checked: 0,
        min_clock: 0,
        events: 0,
        trace_hash: String::new(),
        params_digest: String::new(),
        reproduce: opts.reproduce(),
        bugs: opts.bugs.iter().map(|b| b.name().to_string()).collect(),
        target_accuracy: scn.training.target_accuracy,
        time_to_target_s: None,
        stopped: String::new(),
        panic: None,
        not_simulated: Vec::new(),
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
        swarm: None,
    }
}

fn fill(o: &mut Outcome, scn: &Scenario, end: SimEnd) {
    o.final_accuracy = end.final_accuracy;
    o.final_loss = end.final_loss;
    o.params_digest = format!("{:016x}", end.params_digest);
    o.sim_time_s = end.end.as_secs_f64();
    o.speedup = o.sim_time_s / o.wall_time_s.max(1e-9);
    o.messages = end.metrics.messages;
    o.bytes = end.metrics.bytes;
    o.bytes_pushed = end.metrics.bytes_pushed;
    o.bytes_pulled = end.metrics.bytes_pulled;
    o.bytes_pushed_raw = end.metrics.bytes_pushed_raw;
    o.bytes_pulled_raw = end.metrics.bytes_pulled_raw;
    let sent = o.bytes_pushed + o.bytes_pulled;
    if sent > 0 {
        o.compression_ratio = (o.bytes_pushed_raw + o.bytes_pulled_raw) as f64 / sent as f64;
    }
    o.messages_dropped = end.metrics.dropped;
    o.events = end.recorder.events();
    o.trace_hash = end.recorder.hash_hex();
    o.time_to_target_s = end.time_to_target.map(|t| t.as_secs_f64());
    o.stopped = end.stopped.to_string();
    o.min_clock = end.min_clock;
    o.reads_checked = end.recorder.staleness.reads();
    o.accuracy = end.samples;
    o.series_interval_s = end.metrics.interval().as_secs_f64();
    o.series = end.metrics.series.clone();
    o.message_kinds = end
        .metrics
        .by_kind
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    o.faults = end
        .plan
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
    o.swarm = end.plan.swarm.clone();
    o.fault_timeline = end
        .plan
        .faults
        .iter()
        .map(|f| crate::scenario::Fault {
            at: f.at,
            kind: f.kind.clone(),
            line: 0,
        })
        .collect();
    o.failovers = end.failovers;
    o.idle_fraction = end.timelines.idle_fraction();
    o.timeline = end.timelines.segments;
    o.staleness_histogram = end
        .recorder
        .staleness
        .histogram()
        .iter()
        .map(|(&(w, b), &n)| (w, b, n))
        .collect();
    let mut recorder = end.recorder;
    o.judge(
        &mut recorder,
        scn,
        end.end,
        (scn.check.liveness.is_some(), end.quiet),
        end.final_accuracy,
    );
}

/// Width of the throughput series' buckets: a fifth of the observer's
/// period, at least 10 ms.
fn series_interval(eval_every: Duration) -> Duration {
    (eval_every / 5).max(Duration::from_millis(10))
}

/// The simulation itself: runs inside the madsim runtime.
async fn simulate(
    scn: Scenario,
    cfg: Arc<crate::core::ProtocolConfig>,
    job: Arc<crate::core::Job>,
    recorder: Recorder,
) -> SimEnd {
    let net = Network::new(NetConfig {
        latency_min: scn.network.latency_min,
        latency_max: scn.network.latency_max,
        bandwidth_bps: scn.network.bandwidth_bps,
        loss: scn.network.loss,
    });
    let compute = ComputeModel::new(scn.compute.step_time, scn.compute.jitter);
    let eval_every = scn.training.eval_every;
    let metrics = Metrics::new(series_interval(eval_every));
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
    let world_seed = madsim::rand::thread_rng().next_u64();
    let world = World::new(
        cfg.clone(),
        job,
        net,
        compute,
        recorder,
        metrics,
        world_seed,
    );
    let shared = Arc::new(Mutex::new(world));
    let handle = madsim::runtime::Handle::current();
    let ids: Vec<NodeId> = lock(&shared).slots.iter().map(|s| s.id).collect();
    {
        let view = lock(&shared).view.clone();
        lock(&shared).record(Event::View {
            epoch: view.epoch,
            chains: view.chains,
        });
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

    let mut samples = vec![lock(&shared).sample()];
    let mut time_to_target = None;
    let stopped;
    loop {
        madsim::time::sleep(eval_every).await;
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
        if w.recorder.liveness.poll(now) {
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
    // Final state of every replica in the last view, for the checkers and
    // the trace.
    let mut finals = Vec::new();
    for (r, chain) in w.view.chains.iter().enumerate() {
        for &server in chain {
            if let Some(Node::Server(s)) = &w.slot(server).node {
                if let Some(rep) = s.replicas().get(&(r as u32)) {
                    let (table, dedup) = rep.table_digests();
                    finals.push(Event::Final {
                        server,
                        range: r as u32,
                        digest: format!("{:016x}", rep.params_digest()),
                        applied: rep.applied,
                        applied_set: format!("{:016x}", rep.applied_digest),
                        clock_table: format!("{table:016x}"),
                        dedup_table: format!("{dedup:016x}"),
                    });
                }
            }
        }
    }
    for ev in finals {
        w.record(ev);
    }
    let (test, loss) = w.evaluate();
    let params_digest = {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        crate::core::msg::hash_values(&mut h, &w.assemble());
        h.digest()
    };
    let min_clock = w
        .slots
        .iter()
        .filter_map(|s| match &s.node {
            Some(Node::Worker(wk)) => Some(wk.clock().0),
            _ => None,
        })
        .min()
        .unwrap_or(0);
    let recorder = std::mem::replace(&mut w.recorder, Recorder::new(0, 0));
    let metrics = std::mem::replace(&mut w.metrics, Metrics::new(eval_every));
    SimEnd {
        samples,
        recorder,
        metrics,
        final_accuracy: test.accuracy,
        final_loss: loss,
        params_digest,
        end,
        time_to_target,
        stopped,
        min_clock,
        plan,
        quiet,
        failovers: std::mem::take(&mut w.failovers).finish(),
        timelines: {
            for wk in 0..w.cfg.workers {
                let t = end;
                w.timelines.stop(wk, t);
            }
            std::mem::take(&mut w.timelines)
        },
    }
}
