//! The human-readable summary of a run.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use crate::check::Status;
use crate::core::NodeId;
use crate::outcome::Outcome;
use crate::run::load::{NodeLoad, Resource};
use crate::scenario::Scenario;
use std::fmt::Write;

/// Renders a run's summary.
pub fn render(scn: &Scenario, o: &Outcome) -> String {
    let mut s = String::new();
    let verdict = if o.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        s,
        "pssim · scenario {:?} · seed {} · {verdict}",
        o.scenario, o.seed
    );
    if !scn.description.is_empty() {
        let _ = writeln!(s, "  {}", scn.description);
    }
    let c = &scn.cluster;
    let t = &scn.training;
    let consistency = match t.consistency {
        crate::scenario::Consistency::Bsp => "BSP".to_string(),
        crate::scenario::Consistency::Ssp => format!("SSP (s={})", t.staleness),
        crate::scenario::Consistency::Asp => "ASP".to_string(),
    };
    let _ = writeln!(
        s,
        "  cluster    {} server(s) x{} replication, {} worker(s), 1 coordinator · {consistency} · {} clocks · lr {} · batch {}",
        c.servers, c.replication, c.workers, t.clocks, t.learning_rate, t.batch_size
    );
    if o.real {
        let _ = writeln!(
            s,
            "  time       {:.3} s of real training over TCP ({:.3} s wall with start-up) · stopped: {}",
            o.sim_time_s, o.wall_time_s, o.stopped
        );
    } else {
        let _ = writeln!(
            s,
            "  time       {:.3} s simulated in {:.3} s wall ({:.0}x) · stopped: {}",
            o.sim_time_s, o.wall_time_s, o.speedup, o.stopped
        );
    }
    let _ = writeln!(
        s,
        "  network    {} messages, {} ({} pushed, {} pulled), {} dropped",
        thousands(o.messages),
        bytes(o.bytes),
        bytes(o.bytes_pushed),
        bytes(o.bytes_pulled),
        thousands(o.messages_dropped)
    );
    if o.compression_ratio != 1.0 {
        let _ = writeln!(
            s,
            "  compressed {:.1}x: raw would be {} pushed, {} pulled",
            o.compression_ratio,
            bytes(o.bytes_pushed_raw),
            bytes(o.bytes_pulled_raw)
        );
    }
    load(&mut s, o);
    if !o.accuracy.is_empty() {
        let _ = writeln!(
            s,
            "  accuracy   {}  (test accuracy over {})",
            sparkline(o),
            if o.real {
                "the run: real runs are judged at the end only"
            } else {
                "simulated time"
            }
        );
        let _ = writeln!(s, "             {}", timeline(o, 6));
    }
    let reference = match o.reference_accuracy {
        Some(r) => format!(
            " · reference {r:.4} ({:+.2} pt)",
            (o.final_accuracy - r) * 100.0
        ),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "  final      test accuracy {:.4}{reference} · training loss {:.4}",
        o.final_accuracy, o.final_loss
    );
    if let (Some(target), Some(tt)) = (o.target_accuracy, o.time_to_target_s) {
        let _ = writeln!(s, "             reached target {target:.4} at {tt:.3} s");
    }
    if let Some(sw) = &o.swarm {
        let _ = writeln!(s, "  chaos      swarm: {sw}");
    }
    if !o.faults.is_empty() {
        let _ = writeln!(
            s,
            "  faults     {} (start → end, simulated seconds)",
            o.faults.len()
        );
        const SHOWN: usize = 12;
        for f in o.faults.iter().take(SHOWN) {
            let end = match f.end_s {
                Some(e) if e <= o.sim_time_s => format!("{e:>8.3}"),
                Some(e) => format!("{e:>8.3} (after the run)"),
                None => "   never".to_string(),
            };
            let origin = match f.origin {
                crate::run::plan::Origin::Chaos => " [chaos]",
                crate::run::plan::Origin::Scenario => "",
            };
            let nodes = if f.nodes.len() > 4 {
                format!("{} nodes", f.nodes.len())
            } else {
                f.nodes.join(", ")
            };
            let _ = writeln!(
                s,
                "    {:>8.3} → {end}  {:<10} {nodes}: {}{origin}",
                f.start_s, f.kind, f.detail
            );
        }
        if o.faults.len() > SHOWN {
            let _ = writeln!(s, "    ... and {} more", o.faults.len() - SHOWN);
        }
    }
    for f in o.failovers.iter().take(8) {
        let rec = match f.recovery_s {
            Some(d) => format!("served again after {d:.3} s"),
            None => "not served again within the run".into(),
        };
        let _ = writeln!(
            s,
            "  failover   {} crashed at {:.3} s: range(s) {:?} {rec}",
            f.server, f.crash_s, f.ranges
        );
    }
    let _ = writeln!(s, "  checks");
    for (name, status) in &o.checks {
        let detail = check_detail(name, o);
        let mark = match status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skipped => "skipped",
        };
        let _ = writeln!(s, "    {name:<16} {mark:<8}{detail}");
        for v in o.violations.get(name).into_iter().flatten().take(5) {
            let _ = writeln!(s, "      - {v}");
        }
    }
    for n in &o.not_simulated {
        let _ = writeln!(s, "  WARNING    not simulated by this version: {n}");
    }
    if let Some(p) = &o.panic {
        let _ = writeln!(s, "  PANIC      {p}");
    }
    if !o.bugs.is_empty() {
        let _ = writeln!(s, "  bugs       planted: {}", o.bugs.join(", "));
    }
    let _ = writeln!(
        s,
        "  trace      hash {} · {} events",
        o.trace_hash,
        thousands(o.events)
    );
    let _ = writeln!(s, "REPRODUCE: {}", o.reproduce);
    s
}

/// The bottleneck and each server's utilisations, where the host metered
/// them (nothing otherwise).
fn load(s: &mut String, o: &Outcome) {
    if o.load.is_empty() {
        return;
    }
    let pct = |x: f64| format!("{:.0}", x * 100.0);
    let top = o.bottleneck.as_deref().and_then(|b| {
        let (node, res) = b.split_once(' ')?;
        Some((b, o.load.get(node)?, Resource::from_name(res)?))
    });
    match top {
        Some((name, l, r)) => {
            let _ = writeln!(
                s,
                "  load       bottleneck {name} (util {}%, busy {}%)",
                pct(l.util(r)),
                pct(l.busy(r))
            );
        }
        None => {
            let _ = writeln!(s, "  load       no interface or CPU work metered");
        }
    }
    let mut servers: Vec<(u32, &NodeLoad)> = o
        .load
        .iter()
        .filter_map(|(n, l)| Some((n.parse::<NodeId>().ok()?.server()?, l)))
        .collect();
    servers.sort_by_key(|&(i, _)| i);
    const SHOWN: usize = 6;
    let mut parts: Vec<String> = servers
        .iter()
        .take(SHOWN)
        .map(|(i, l)| {
            let u: Vec<String> = Resource::ALL.iter().map(|&r| pct(l.util(r))).collect();
            format!("server-{i} {}", u.join("/"))
        })
        .collect();
    if servers.len() > SHOWN {
        parts.push(format!("... and {} more", servers.len() - SHOWN));
    }
    if !parts.is_empty() {
        let _ = writeln!(s, "             util % in/out/cpu: {}", parts.join(" · "));
    }
}

fn check_detail(name: &str, o: &Outcome) -> String {
    match name {
        "staleness_bound" => format!("{} reads judged", thousands(o.reads_checked)),
        "no_lost_updates" => format!(
            "{} pushes acknowledged, {} lost, {} duplicated",
            thousands(o.pushes_acked),
            o.updates_lost,
            o.updates_duplicated
        ),
        "min_accuracy" => format!("final {:.4}", o.final_accuracy),
        _ => String::new(),
    }
}

fn sparkline(o: &Outcome) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let n = o.accuracy.len();
    let width = 48usize.min(n);
    (0..width)
        .map(|i| {
            let a = o.accuracy[i * (n - 1) / (width - 1).max(1)].accuracy;
            BARS[((a.clamp(0.0, 1.0) * 7.0).round()) as usize]
        })
        .collect()
}

fn timeline(o: &Outcome, points: usize) -> String {
    let n = o.accuracy.len();
    let mut parts = Vec::new();
    for i in 0..points.min(n) {
        let s = &o.accuracy[i * (n - 1) / (points - 1).max(1).min(n - 1).max(1)];
        parts.push(format!("{:.2}s {:.3}", s.t_s, s.accuracy));
    }
    parts.dedup();
    parts.join(" → ")
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in a readable unit.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(2_500_000), "2.50 MB");
    }

    #[test]
    fn the_load_lines_appear_only_with_load_data() {
        let (scn, mut o) =
            crate::run::assemble::bare("name = \"x\"\n[cluster]\nservers = 1\nworkers = 1\n");
        assert!(!render(&scn, &o).contains("load "));
        for i in 0..8 {
            let l = NodeLoad {
                nic_in_busy: 0.91,
                nic_in_util: f64::from(88 - 10 * i) / 100.0,
                nic_out_util: 0.35,
                cpu_util: 0.05,
                ..NodeLoad::default()
            };
            o.load.insert(format!("server-{i}"), l);
        }
        o.load.insert("worker-0".into(), NodeLoad::default());
        o.bottleneck = Some("server-0 nic_in".into());
        let text = render(&scn, &o);
        assert!(
            text.contains("  load       bottleneck server-0 nic_in (util 88%, busy 91%)\n"),
            "{text}"
        );
        // Servers by index (server-10 is not between 1 and 2), six shown.
        o.load.insert("server-10".into(), NodeLoad::default());
        let text = render(&scn, &o);
        assert!(
            text.contains(
                "util % in/out/cpu: server-0 88/35/5 · server-1 78/35/5 · server-2 68/35/5 · \
                 server-3 58/35/5 · server-4 48/35/5 · server-5 38/35/5 · ... and 3 more\n"
            ),
            "{text}"
        );
        o.bottleneck = None;
        assert!(render(&scn, &o).contains("  load       no interface or CPU work metered\n"));
    }
}
