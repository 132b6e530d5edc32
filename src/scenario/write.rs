//! From a [`Scenario`] back to a scenario file (for generated and shrunk
//! scenarios). Every key is written, so the file does not depend on
//! defaults; parsing it gives back an equal scenario.
//!
//! May import: `crate::scenario`, `crate::core` (ids), toml, serde.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`.

use super::reader::format_bandwidth;
use super::types::*;
use std::fmt::Write;
use std::time::Duration;

fn dur(d: Duration) -> String {
    if d.is_zero() {
        "\"0s\"".into()
    } else {
        format!("\"{}\"", humantime::format_duration(d))
    }
}

fn name(n: NodeName) -> String {
    format!("\"{n}\"")
}

fn consistency(c: Consistency) -> &'static str {
    match c {
        Consistency::Bsp => "\"bsp\"",
        Consistency::Ssp => "\"ssp\"",
        Consistency::Asp => "\"asp\"",
    }
}

/// A float as TOML (always with a fraction or exponent, shortest exact form).
fn num(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Writes the scenario as TOML.
pub fn to_toml(s: &Scenario) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "name = {}", toml_string(&s.name));
    if !s.description.is_empty() {
        let _ = writeln!(o, "description = {}", toml_string(&s.description));
    }
    let _ = writeln!(o, "seed = {}", s.seed);
    let c = &s.cluster;
    let _ = writeln!(
        o,
        "\n[cluster]\nservers = {}\nreplication = {}\nworkers = {}",
        c.servers, c.replication, c.workers
    );
    if let Some(d) = c.checkpoint_every {
        let _ = writeln!(o, "checkpoint_every = {}", dur(d));
    }
    let _ = writeln!(
        o,
        "heartbeat_timeout = {}\nrequest_timeout = {}\nread_leases = {}\nplacement = \"{}\"",
        dur(c.heartbeat_timeout),
        dur(c.request_timeout),
        c.read_leases,
        c.placement.name()
    );
    if let Some(d) = c.heartbeat_interval {
        let _ = writeln!(o, "heartbeat_interval = {}", dur(d));
    }
    let m = &s.model;
    let _ = writeln!(
        o,
        "\n[model]\nkind = \"{}\"\ndataset = \"{}\"",
        m.kind.name(),
        m.dataset.name()
    );
    if m.kind == ModelKind::Mlp {
        let widths: Vec<String> = m.hidden.iter().map(u32::to_string).collect();
        let _ = writeln!(
            o,
            "hidden = [{}]\nactivation = \"{}\"",
            widths.join(", "),
            m.activation.name()
        );
    }
    if m.dataset == DatasetKind::Synthetic {
        let _ = writeln!(
            o,
            "features = {}\nexamples = {}\ndensity = {}",
            m.features,
            m.examples,
            num(m.density)
        );
        let _ = writeln!(o, "skew = {}", num(m.skew));
    }
    let _ = writeln!(o, "data_seed = {}\nl2 = {}", m.data_seed, num(m.l2));
    let t = &s.training;
    let _ = writeln!(
        o,
        "\n[training]\nconsistency = {}\nstaleness = {}\nlearning_rate = {}\nbatch_size = {}\nclocks = {}",
        consistency(t.consistency),
        t.staleness,
        num(t.learning_rate),
        t.batch_size,
        t.clocks
    );
    if let Some(a) = t.target_accuracy {
        let _ = writeln!(o, "target_accuracy = {}", num(a));
    }
    let _ = writeln!(
        o,
        "max_time = {}\neval_every = {}",
        dur(t.max_time),
        dur(t.eval_every)
    );
    let n = &s.network;
    let latency = if n.latency_min == n.latency_max {
        dur(n.latency_min)
    } else {
        format!(
            "\"{}..{}\"",
            humantime::format_duration(n.latency_min),
            humantime::format_duration(n.latency_max)
        )
    };
    let _ = writeln!(
        o,
        "\n[network]\nlatency = {latency}\nbandwidth = \"{}\"\nloss = {}",
        format_bandwidth(n.bandwidth_bps),
        num(n.loss)
    );
    if let Some(bw) = n.server_bandwidth_bps {
        let _ = writeln!(o, "server_bandwidth = \"{}\"", format_bandwidth(bw));
    }
    if let Some(bw) = n.worker_bandwidth_bps {
        let _ = writeln!(o, "worker_bandwidth = \"{}\"", format_bandwidth(bw));
    }
    // `step_time` is absent only when `worker_gflops` sets the step time.
    let c = &s.compute;
    let _ = writeln!(o, "\n[compute]");
    if let Some(t) = c.step_time {
        let _ = writeln!(o, "step_time = {}", dur(t));
    }
    if let Some(g) = c.worker_gflops {
        let _ = writeln!(o, "worker_gflops = {}", num(g));
    }
    let _ = writeln!(
        o,
        "server_apply_rate = {}\njitter = {}",
        num(c.server_apply_rate),
        num(c.jitter)
    );
    for f in &s.faults {
        let _ = writeln!(
            o,
            "\n[[fault]]\nkind = \"{}\"\nat = {}",
            f.kind.name(),
            dur(f.at)
        );
        match &f.kind {
            FaultKind::Crash {
                node,
                restart_after,
            } => {
                let _ = writeln!(o, "node = {}", name(*node));
                if let Some(r) = restart_after {
                    let _ = writeln!(o, "restart_after = {}", dur(*r));
                }
            }
            FaultKind::Partition { groups, .. } => {
                let gs: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        format!(
                            "[{}]",
                            g.iter().map(|n| name(*n)).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                let _ = writeln!(o, "groups = [{}]", gs.join(", "));
            }
            FaultKind::Clog { from, to, .. } => {
                let _ = writeln!(o, "from = {}\nto = {}", name(*from), name(*to));
            }
            FaultKind::Loss { rate, .. } => {
                let _ = writeln!(o, "rate = {}", num(*rate));
            }
            FaultKind::Straggler { node, slowdown, .. } => {
                let _ = writeln!(o, "node = {}\nslowdown = {}", name(*node), num(*slowdown));
            }
            FaultKind::SlowLink {
                between,
                latency,
                bandwidth_bps,
                ..
            } => {
                let _ = writeln!(
                    o,
                    "between = [{}, {}]\nlatency = {}",
                    name(between[0]),
                    name(between[1]),
                    dur(*latency)
                );
                if let Some(bw) = bandwidth_bps {
                    let _ = writeln!(o, "bandwidth = \"{}\"", format_bandwidth(*bw));
                }
            }
        }
        if !matches!(f.kind, FaultKind::Crash { .. }) {
            if let Some(d) = f.kind.duration() {
                let _ = writeln!(o, "duration = {}", dur(d));
            }
        }
    }
    if let Some(ch) = &s.chaos {
        let _ = writeln!(
            o,
            "\n[chaos]\ncrash_rate = {}\npartition_rate = {}\nclog_rate = {}\nstraggler_rate = {}\nloss_rate = {}\nslow_link_rate = {}\ncut_rate = {}\nmax_duration = {}\nuntil = {}\nbeyond_fault_model = {}\nswarm = {}",
            num(ch.crash_rate),
            num(ch.partition_rate),
            num(ch.clog_rate),
            num(ch.straggler_rate),
            num(ch.loss_rate),
            num(ch.slow_link_rate),
            num(ch.cut_rate),
            dur(ch.max_duration),
            dur(ch.until),
            ch.beyond_fault_model,
            ch.swarm
        );
        if let Some(m) = ch.min_duration {
            let _ = writeln!(o, "min_duration = {}", dur(m));
        }
    }
    for c in &s.changes {
        let _ = writeln!(o, "\n[[change]]\nat = {}", dur(c.at));
        if let Some(x) = c.learning_rate {
            let _ = writeln!(o, "learning_rate = {}", num(x));
        }
        if let Some(x) = c.staleness {
            let _ = writeln!(o, "staleness = {x}");
        }
        if let Some(x) = c.consistency {
            let _ = writeln!(o, "consistency = {}", consistency(x));
        }
        if let Some(x) = c.batch_size {
            let _ = writeln!(o, "batch_size = {x}");
        }
        if let Some(h) = &c.hidden {
            let widths: Vec<String> = h.iter().map(u32::to_string).collect();
            let _ = writeln!(o, "hidden = [{}]", widths.join(", "));
        }
    }
    let z = &s.compression;
    let kind = match z.kind {
        CompressionKind::None => "none",
        CompressionKind::TopK => "topk",
        CompressionKind::Quantize => "quantize",
    };
    let _ = writeln!(
        o,
        "\n[compression]\nkind = \"{kind}\"\nratio = {}\nbits = {}\nerror_feedback = {}\npull_threshold = {}",
        num(z.ratio),
        z.bits,
        z.error_feedback,
        num(z.pull_threshold)
    );
    let k = &s.check;
    let liveness = k.liveness.map_or("false".to_string(), dur);
    let _ = writeln!(
        o,
        "\n[check]\nstaleness_bound = {}\nno_lost_updates = {}\nreplicas_agree = {}\nliveness = {liveness}\ndeterministic = {}",
        k.staleness_bound, k.no_lost_updates, k.replicas_agree, k.deterministic
    );
    if let Some(a) = k.min_accuracy {
        let _ = writeln!(o, "min_accuracy = {}", num(a));
    }
    o
}

/// A TOML basic string holding `s` (Rust's `{:?}` escapes are not TOML's:
/// `\u{1f}` is invalid there).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
