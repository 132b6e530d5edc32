//! `pssim bench`: performance measured against baselines taken in the same
//! run, reported as ratios (so a slow or busy machine moves both sides).
//!
//! - PS message rate: messages per wall second of the protocol on the
//!   simulator, against a raw madsim ping-pong over madsim's own endpoints
//!   with the same number of nodes.
//! - Server aggregation: a server applying a push of 10^6 floats (SGD step,
//!   dedup, acknowledgement), against `memcpy` of the same bytes.
//! - Default scenario: simulated time per wall time.
//! - Sweep scaling: seeds per second of a sweep of the default scenario
//!   with 2 parallel jobs, against the same sweep with 1 job.
//! - Real mode: push+pull of 10^7 floats through the TCP host on loopback
//!   (ps-lite's `test_kv_app_benchmark`), against raw TCP moving the same
//!   bytes (`crate::net::bench`).
//!
//! May import: `crate::sim` (the simulator it drives), `crate::outcome`,
//! `crate::scenario`, `crate::sweep`, `crate::net::bench` (bench only),
//! `crate::calibrate` (the server apply rate).
//! Never: code a host needs (nothing below imports a tool).

use crate::scenario::Scenario;
use crate::sim::{self, RunOptions};
use serde::Serialize;
use std::hint::black_box;
// Real wall time: benchmarks measure wall-clock cost, read outside the
// simulations they time (or of code that is not simulated at all).
use std::time::Instant;

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Unit of `value` (and of `baseline`).
    pub unit: String,
    /// The baseline, measured in the same run.
    pub baseline: Option<f64>,
    /// What the baseline is.
    pub baseline_name: Option<String>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The goal for `ratio` (at least).
    pub goal: Option<f64>,
}

impl Measurement {
    fn ratio(
        name: &str,
        value: f64,
        unit: &str,
        baseline_name: &str,
        baseline: f64,
        goal: f64,
    ) -> Measurement {
        Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: Some(baseline),
            baseline_name: Some(baseline_name.into()),
            ratio: Some(value / baseline),
            goal: Some(goal),
        }
    }

    /// Whether the goal (if any) is met.
    pub fn meets_goal(&self) -> bool {
        match (self.ratio, self.goal) {
            (Some(r), Some(g)) => r >= g,
            _ => true,
        }
    }
}

/// Raw madsim: `clients` nodes each do `rounds` request/response round trips
/// with `servers` echo nodes over madsim endpoints. Returns messages per
/// wall second.
pub fn raw_madsim_rate(clients: u32, servers: u32, rounds: u32) -> f64 {
    let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    let start = Instant::now();
    rt.block_on(async move {
        use madsim::net::Endpoint;
        let handle = madsim::runtime::Handle::current();
        let addr = |i: u32| {
            std::net::SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 700))
        };
        for s in 0..servers {
            handle
                .create_node()
                .name(format!("echo-{s}"))
                .ip(addr(s).ip())
                .init(move || async move {
                    let ep = Endpoint::bind(addr(s)).await.expect("bind");
                    loop {
                        let (payload, from) = ep.recv_from_raw(1).await.expect("recv");
                        ep.send_to_raw(from, 2, payload).await.expect("send");
                    }
                })
                .build();
        }
        let mut joins = Vec::new();
        for c in 0..clients {
            let node = handle
                .create_node()
                .name(format!("client-{c}"))
                .ip(addr(servers + c).ip())
                .build();
            joins.push(node.spawn(async move {
                let ep = Endpoint::bind(addr(servers + c)).await.expect("bind");
                for r in 0..rounds {
                    let to = addr((c + r) % servers);
                    ep.send_to_raw(to, 1, Box::new([0u8; 64]))
                        .await
                        .expect("send");
                    ep.recv_from_raw(2).await.expect("recv");
                }
            }));
        }
        for j in joins {
            j.await.expect("client");
        }
    });
    let wall = start.elapsed().as_secs_f64();
    f64::from(2 * clients * rounds) / wall
}

/// The protocol on the simulator with a tiny model (31 parameters, no
/// compute time), so messages dominate. Returns (messages per wall second,
/// node count).
pub fn ps_rate(scn: &Scenario) -> (f64, u32) {
    let r = sim::run_once(
        scn,
        &RunOptions {
            seed: 1,
            ..RunOptions::default()
        },
    );
    let nodes = 1 + scn.cluster.servers + scn.cluster.workers;
    (r.outcome.messages as f64 / r.outcome.wall_time_s, nodes)
}

/// A server applying `n`-float dense pushes: bytes of gradient applied per
/// second (`crate::calibrate::apply_rate`, which `pssim calibrate` reports
/// in values per second: the best of 5 rounds of `reps / 5` pushes).
pub fn server_apply_rate(n: u32, reps: u32) -> f64 {
    crate::calibrate::apply_rate(n, reps.div_ceil(5).max(1)) * 4.0
}

/// `memcpy` of `n` floats: bytes copied per second.
pub fn memcpy_rate(n: u32, reps: u32) -> f64 {
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0f32; n as usize];
    let t = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    f64::from(n) * 4.0 * f64::from(reps) / t.elapsed().as_secs_f64()
}

/// A scenario for the message-rate benchmark: 4 servers, 8 workers, a
/// 31-parameter model, no compute time.
pub fn message_rate_scenario() -> Scenario {
    let text = r#"
name = "bench-messages"
[cluster]
servers = 4
workers = 8
[model]
kind = "logistic"
dataset = "breast_cancer"
[training]
consistency = "asp"
clocks = 2000
batch_size = 1
[compute]
step_time = "0ms"
[check]
liveness = false
"#;
    crate::scenario::parse(text, "bench").expect("the benchmark scenario is valid")
}

/// Raw madsim's message rate with `scn`'s node count (its workers as
/// clients, the coordinator and servers as echo nodes): the yardstick of
/// the PS message rate and of the scale run's.
fn raw_baseline(scn: &Scenario) -> f64 {
    raw_madsim_rate(scn.cluster.workers, 1 + scn.cluster.servers, 20_000)
}

/// Runs every benchmark.
pub fn run_all(default: &Scenario) -> Vec<Measurement> {
    let mut out = Vec::new();
    let scn = message_rate_scenario();
    let (ps, nodes) = ps_rate(&scn);
    let raw = raw_baseline(&scn);
    out.push(Measurement::ratio(
        &format!("PS protocol message rate ({nodes} nodes)"),
        ps,
        "msg/s",
        "raw madsim ping-pong, same node count",
        raw,
        0.5,
    ));
    let n = 1_000_000;
    let apply = server_apply_rate(n, 50);
    let copy = memcpy_rate(n, 50);
    out.push(Measurement::ratio(
        "server applies a 10^6-float push",
        apply / 1e9,
        "GB/s",
        "memcpy of the same bytes",
        copy / 1e9,
        0.5,
    ));
    out.extend(run_tcp());
    let r = sim::run_once(
        default,
        &RunOptions {
            seed: default.seed,
            ..RunOptions::default()
        },
    );
    out.push(Measurement {
        name: format!("default scenario ({} messages)", r.outcome.messages),
        value: r.outcome.speedup,
        unit: "sim s / wall s".into(),
        baseline: None,
        baseline_name: None,
        ratio: None,
        goal: None,
    });
    let seeds = 0..200;
    let rate = |jobs: usize| {
        let opts = crate::sweep::SweepOptions {
            seeds: seeds.clone(),
            shard: None,
            jobs,
            run: RunOptions::default(),
        };
        crate::sweep::sweep(default, &opts, &|_| {})
            .summary
            .seeds_per_s
    };
    let one = rate(1);
    let two = rate(2);
    out.push(Measurement::ratio(
        "sweep of the default scenario, 2 jobs",
        two,
        "seeds/s",
        "the same sweep with 1 job",
        one,
        1.8,
    ));
    out
}

/// The real TCP benchmark (`pssim bench --tcp`, also part of the whole
/// set): push+pull of 10^7 floats through the TCP host, against raw
/// loopback TCP moving the same bytes. Empty if the sockets failed (said
/// on stderr).
pub fn run_tcp() -> Vec<Measurement> {
    match crate::net::bench::push_pull(10_000_000, 5) {
        Ok(pp) => vec![Measurement::ratio(
            "real TCP: push+pull of 10^7 floats",
            pp.host_bps / 1e9,
            "GB/s",
            "raw TCP loopback, same bytes",
            pp.raw_bps / 1e9,
            0.8,
        )],
        Err(e) => {
            eprintln!("real TCP benchmark skipped: {e}");
            Vec::new()
        }
    }
}

/// The scale scenario `pssim bench --scale` times (scenarios/scale.toml).
pub const SCALE_SCENARIO: &str = include_str!("../scenarios/scale.toml");

/// The larger scale point (`pssim bench --scale --large`): the scale
/// scenario with 1,024 workers, 64 servers and 100 clocks.
fn make_large(scn: &mut Scenario) {
    scn.cluster.workers = 1024;
    scn.cluster.servers = 64;
    scn.training.clocks = 100;
}

/// The scale benchmark: one run of the scale scenario (sparse logistic
/// regression, 10^6 features, 16 servers, 128 workers, 1000 clocks): its
/// wall time, its message rate against raw madsim's measured in the same
/// run (the ping-pong of [`run_all`]), and the process's peak memory
/// (`VmHWM`, Linux; 0 elsewhere). With `large`, the larger point instead
/// (1,024 workers, 64 servers, 100 clocks; no wall-time goal).
pub fn run_scale(scn: &Scenario, large: bool) -> Vec<Measurement> {
    let mut scn = scn.clone();
    if large {
        make_large(&mut scn);
    }
    // The yardstick (about a second each) once before the run and twice
    // after, its median: a single reading moved by 8% from one to the next
    // on a busy machine, and readings on both sides follow a drift.
    let yardstick = message_rate_scenario();
    let before = raw_baseline(&yardstick);
    let r = sim::run_once(
        &scn,
        &RunOptions {
            seed: scn.seed,
            ..RunOptions::default()
        },
    );
    let mut raws = [before, raw_baseline(&yardstick), raw_baseline(&yardstick)];
    raws.sort_by(f64::total_cmp);
    let raw = raws[1];
    let o = &r.outcome;
    let plain = |name: String, value: f64, unit: &str| Measurement {
        name,
        value,
        unit: unit.into(),
        baseline: None,
        baseline_name: None,
        ratio: None,
        goal: None,
    };
    vec![
        plain(
            format!(
                "scale: {} workers, {} servers, {} clocks",
                scn.cluster.workers, scn.cluster.servers, scn.training.clocks
            ),
            o.wall_time_s,
            if large {
                "wall s"
            } else {
                "wall s (goal < 60)"
            },
        ),
        Measurement::ratio(
            &format!("scale: {} messages", o.messages),
            o.messages as f64 / o.wall_time_s.max(1e-9),
            "msg/s",
            "raw madsim ping-pong, 13 nodes",
            raw,
            0.35,
        ),
        plain(
            "scale: raw madsim, median of 3 readings".into(),
            raw,
            &format!(
                "msg/s (before the run and twice after: {:.3e}, {:.3e}, {:.3e} sorted)",
                raws[0], raws[1], raws[2]
            ),
        ),
        plain(
            format!("scale: final accuracy {:.4}", o.final_accuracy),
            peak_memory_bytes() as f64 / (1 << 20) as f64,
            "MiB peak memory",
        ),
    ]
}

/// The process's peak resident memory in bytes (`VmHWM` of
/// /proc/self/status; 0 where that does not exist).
pub fn peak_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The table `pssim bench` prints.
pub fn table(ms: &[Measurement]) -> String {
    let mut s = format!(
        "{:<44} {:>14} {:>14} {:>8} {:>6}\n",
        "benchmark", "value", "baseline", "ratio", "goal"
    );
    for m in ms {
        let base = m.baseline.map_or("-".into(), |b| format!("{b:.3e}"));
        let ratio = m.ratio.map_or("-".into(), |r| format!("{r:.2}"));
        let goal = m.goal.map_or("-".into(), |g| format!(">={g}"));
        s.push_str(&format!(
            "{:<44} {:>14} {:>14} {:>8} {:>6}  {}\n",
            m.name,
            format!("{:.3e}", m.value),
            base,
            ratio,
            goal,
            m.unit
        ));
    }
    s
}
