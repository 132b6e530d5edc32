//! `[chaos]`: random faults drawn from the seed, swarm-testing style.
//!
//! Each seed first picks a *swarm*: every fault kind with a non-zero rate is
//! enabled with probability 1/2 (at least one is), and the seed picks an
//! intensity `2^u`, `u ~ U[-1.5, 1]`, that scales every rate (Groce et al.,
//! "Swarm testing", ISSTA'12: leaving features out finds bugs that
//! all-features-on configurations hide). Then, per enabled kind, faults
//! arrive as a Poisson process of `rate x intensity` per simulated second
//! until `until`; each lasts `max_duration x U[0.05, 1]`, or
//! `U[min_duration, max_duration]` when `min_duration` is given. With
//! `swarm = false` every kind with a rate is enabled on every seed, at
//! intensity 1.
//!
//! | kind | target | parameters |
//! |---|---|---|
//! | crash | any node | restarts after the duration |
//! | partition | a random split of all nodes in two groups | |
//! | clog | a random ordered pair of nodes | |
//! | straggler | a random worker | slowdown `U[2, 10]` |
//! | loss | the whole network | rate `U[0.01, 0.3]` |
//! | slow_link | a random pair of nodes | +5..100 ms, 1..100 Mbps |
//! | cut | a random server or worker (half each) and the coordinator | both ways (a partition of the two alone), or one way: its messages to the coordinator, or the coordinator's to it (a third each) |
//!
//! A cut churns views: a node cut off from the coordinator for longer than
//! a heartbeat timeout leaves the view (a server leaves its chains, then
//! catches up and is appended again; a worker is removed, then
//! re-admitted) while its links to everyone else keep working, so requests
//! and chain messages stamped with an older view keep flowing; a node the
//! coordinator cannot reach keeps serving with an older view.
//!
//! **Fault model.** Unless `beyond_fault_model`, no draw takes more than
//! `replication - 1` servers of one key range down at once, counting the
//! scenario's own faults: a server is down while crashed, while a
//! partition separates it from the coordinator or while its messages to the
//! coordinator are clogged, and for a recovery time after that (4 heartbeat
//! timeouts: detection, then the copy of its ranges). A partition that would
//! break the rule keeps the offending servers on the coordinator's side; a
//! crash that would break it is not drawn; a cut that would break it cuts
//! a worker instead. Overlap is judged
//! conservatively (two down-intervals of one range's servers that overlap
//! at all count as simultaneous). A crash of a node already down is not
//! drawn.
//!
//! Host-neutral: the draw is a pure function of the seed's generator.
//! May import: `crate::core`, `crate::scenario`, `super` (run). Never: a
//! host (`crate::sim`, `crate::net`).

use super::plan::{all_nodes, Origin, Planned};
use crate::core::NodeId;
use crate::scenario::{Chaos, Cluster, FaultKind};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Kinds chaos can draw, in a fixed order (the order draws are made in).
const KINDS: [&str; 7] = [
    "crash",
    "partition",
    "clog",
    "straggler",
    "loss",
    "slow_link",
    "cut",
];

fn rate(ch: &Chaos, kind: &str) -> f64 {
    match kind {
        "crash" => ch.crash_rate,
        "partition" => ch.partition_rate,
        "clog" => ch.clog_rate,
        "straggler" => ch.straggler_rate,
        "loss" => ch.loss_rate,
        "slow_link" => ch.slow_link_rate,
        "cut" => ch.cut_rate,
        _ => unreachable!("unknown chaos kind {kind}"),
    }
}

/// A node out of service over `[from, to)` (`to = None`: for good).
#[derive(Clone, Copy, Debug)]
struct Down {
    node: NodeId,
    from: Duration,
    to: Option<Duration>,
}

impl Down {
    fn overlaps(&self, from: Duration, to: Option<Duration>) -> bool {
        let starts_before_end = to.is_none_or(|t| self.from < t);
        let ends_after_start = self.to.is_none_or(|t| t > from);
        starts_before_end && ends_after_start
    }
}

/// Down-intervals a fault causes: crashed nodes, servers a partition
/// separates from the coordinator, and servers whose messages to the
/// coordinator are clogged (`Down::node` is the node concerned). A server
/// stays down for `recovery` after the fault ends: the coordinator notices
/// late, and a server back from a crash or a cut holds its ranges again
/// only once it has copied them.
fn downs(f: &Planned, recovery: Duration) -> Vec<Down> {
    let from = f.at;
    let to = f.end().map(|e| e + recovery);
    match &f.kind {
        FaultKind::Crash { node, .. } => vec![Down {
            node: *node,
            from,
            to: if node.server().is_some() { to } else { f.end() },
        }],
        FaultKind::Clog {
            from: sender,
            to: NodeId::Coordinator,
            ..
        } if sender.server().is_some() => vec![Down {
            node: *sender,
            from,
            to,
        }],
        FaultKind::Partition { groups, .. } => {
            let coord = groups.iter().position(|g| g.contains(&NodeId::Coordinator));
            groups
                .iter()
                .enumerate()
                .filter(|(i, _)| coord.is_some_and(|c| c != *i))
                .flat_map(|(_, g)| g.iter())
                .filter(|n| n.server().is_some())
                .map(|&node| Down { node, from, to })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The fault-model bookkeeping.
struct Model<'a> {
    cluster: &'a Cluster,
    /// How long a server counts as down after its fault ends.
    recovery: Duration,
    downs: Vec<Down>,
    /// Crash intervals, to avoid crashing a node that is down.
    crashes: Vec<Down>,
}

impl Model<'_> {
    fn add(&mut self, f: &Planned) {
        if matches!(f.kind, FaultKind::Crash { .. }) {
            self.crashes.extend(downs(f, Duration::ZERO));
        }
        let downs = downs(f, self.recovery);
        self.downs
            .extend(downs.into_iter().filter(|d| d.node.server().is_some()));
    }

    /// End of the down-interval of a server whose fault ends at `to`.
    fn until(&self, to: Option<Duration>) -> Option<Duration> {
        to.map(|t| t + self.recovery)
    }

    /// Whether taking `extra` servers down over `[from, to)` keeps every
    /// range within `replication - 1` down servers.
    fn allows(&self, extra: &[NodeId], from: Duration, to: Option<Duration>) -> bool {
        let (n, k) = (self.cluster.servers, self.cluster.replication);
        (0..n).all(|r| {
            let chain: Vec<NodeId> = (0..k).map(|i| NodeId::Server((r + i) % n)).collect();
            let down = chain
                .iter()
                .filter(|s| {
                    extra.contains(s)
                        || self
                            .downs
                            .iter()
                            .any(|d| d.node == **s && d.overlaps(from, to))
                })
                .count();
            down < k as usize
        })
    }

    fn crashed(&self, node: NodeId, from: Duration, to: Option<Duration>) -> bool {
        self.crashes
            .iter()
            .any(|d| d.node == node && d.overlaps(from, to))
    }
}

/// How long a server counts as down after its fault heals: failure
/// detection (up to a heartbeat timeout, after the fact) plus the copy of
/// its ranges, with room for retries.
pub fn recovery(cluster: &Cluster) -> Duration {
    cluster.heartbeat_timeout * 4
}

/// Draws the chaos faults of one seed, given the scenario's own faults.
/// Returns them (ids unset) and a description of the swarm chosen.
pub fn draw(
    ch: &Chaos,
    cluster: &Cluster,
    existing: &[Planned],
    rng: &mut ChaCha8Rng,
) -> (Vec<Planned>, String) {
    let candidates: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| rate(ch, k) > 0.0)
        .collect();
    if candidates.is_empty() {
        return (Vec::new(), "no fault kind has a rate".into());
    }
    let (enabled, intensity) = if ch.swarm {
        let mut enabled: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|_| rng.gen_bool(0.5))
            .collect();
        if enabled.is_empty() {
            enabled.push(candidates[rng.gen_range(0..candidates.len())]);
        }
        (enabled, 2f64.powf(rng.gen_range(-1.5..=1.0)))
    } else {
        (candidates, 1.0)
    };
    let swarm = format!("{} at intensity {intensity:.2}x", enabled.join("+"));

    let mut model = Model {
        cluster,
        recovery: recovery(cluster),
        downs: Vec::new(),
        crashes: Vec::new(),
    };
    for f in existing {
        model.add(f);
    }
    let nodes = all_nodes(cluster.servers, cluster.workers);
    let until = ch.until.as_secs_f64();
    let mut drawn = Vec::new();
    for kind in enabled {
        let lambda = rate(ch, kind) * intensity;
        let mut t = 0.0;
        loop {
            // Exponential inter-arrival times.
            t += -(1.0 - rng.gen::<f64>()).ln() / lambda;
            if t >= until {
                break;
            }
            let at = Duration::from_secs_f64(t);
            let duration = match ch.min_duration {
                None => ch.max_duration.mul_f64(rng.gen_range(0.05..=1.0)),
                Some(min) => min + (ch.max_duration - min).mul_f64(rng.gen_range(0.0..=1.0)),
            };
            if let Some(kind) = target(kind, at, duration, ch, cluster, &nodes, &model, rng) {
                let f = Planned {
                    id: 0,
                    at,
                    kind,
                    origin: Origin::Chaos,
                };
                model.add(&f);
                drawn.push(f);
            }
        }
    }
    (drawn, swarm)
}

/// Picks the target and parameters of one drawn fault; `None` if it would
/// leave the fault model (or crash a node that is down).
#[allow(clippy::too_many_arguments)]
fn target(
    kind: &str,
    at: Duration,
    duration: Duration,
    ch: &Chaos,
    cluster: &Cluster,
    nodes: &[NodeId],
    model: &Model,
    rng: &mut ChaCha8Rng,
) -> Option<FaultKind> {
    let end = Some(at + duration);
    let pair = |rng: &mut ChaCha8Rng| {
        let mut two: Vec<NodeId> = nodes.choose_multiple(rng, 2).copied().collect();
        two.shuffle(rng);
        (two[0], two[1])
    };
    match kind {
        "crash" => {
            let node = *nodes.choose(rng).expect("a cluster has nodes");
            if model.crashed(node, at, end) {
                return None;
            }
            let servers: Vec<NodeId> = node.server().map(|_| node).into_iter().collect();
            if !ch.beyond_fault_model && !model.allows(&servers, at, model.until(end)) {
                return None;
            }
            Some(FaultKind::Crash {
                node,
                restart_after: Some(duration),
            })
        }
        "partition" => {
            let mut side: Vec<bool> = nodes.iter().map(|_| rng.gen_bool(0.5)).collect();
            if side.iter().all(|&s| s) || side.iter().all(|&s| !s) {
                let i = rng.gen_range(0..nodes.len());
                side[i] = !side[i];
            }
            if !ch.beyond_fault_model {
                // Servers cut off from the coordinator count as down: keep
                // those that would break the fault model with it.
                let coord_side = side[0];
                let mut cut: Vec<NodeId> = Vec::new();
                for (i, n) in nodes.iter().enumerate() {
                    if n.server().is_some() && side[i] != coord_side {
                        if model.allows(&[cut.clone(), vec![*n]].concat(), at, model.until(end)) {
                            cut.push(*n);
                        } else {
                            side[i] = coord_side;
                        }
                    }
                }
                if side.iter().all(|&s| s == coord_side) {
                    return None;
                }
            }
            let group = |want: bool| -> Vec<NodeId> {
                nodes
                    .iter()
                    .zip(&side)
                    .filter(|(_, &s)| s == want)
                    .map(|(n, _)| *n)
                    .collect()
            };
            Some(FaultKind::Partition {
                groups: vec![group(true), group(false)],
                duration: Some(duration),
            })
        }
        "clog" => {
            let (from, to) = pair(rng);
            // A server clogged towards the coordinator looks dead to it.
            let cut: Vec<NodeId> = (from.server().is_some() && to == NodeId::Coordinator)
                .then_some(from)
                .into_iter()
                .collect();
            if !ch.beyond_fault_model && !model.allows(&cut, at, model.until(end)) {
                return None;
            }
            Some(FaultKind::Clog {
                from,
                to,
                duration: Some(duration),
            })
        }
        "straggler" => Some(FaultKind::Straggler {
            node: NodeId::Worker(rng.gen_range(0..cluster.workers)),
            slowdown: (rng.gen_range(2.0f64..=10.0) * 10.0).round() / 10.0,
            duration: Some(duration),
        }),
        "loss" => Some(FaultKind::Loss {
            rate: (rng.gen_range(0.01f64..=0.3) * 1000.0).round() / 1000.0,
            duration: Some(duration),
        }),
        "slow_link" => {
            let (a, b) = pair(rng);
            Some(FaultKind::SlowLink {
                between: [a, b],
                latency: Duration::from_millis(rng.gen_range(5..=100)),
                bandwidth_bps: Some(rng.gen_range(1u32..=100) as f64 * 1e6),
                duration: Some(duration),
            })
        }
        "cut" => {
            let workers: Vec<NodeId> = (0..cluster.workers).map(NodeId::Worker).collect();
            let servers: Vec<NodeId> = (0..cluster.servers).map(NodeId::Server).collect();
            let mut node = if rng.gen_bool(0.5) {
                *servers.choose(rng).expect("a cluster has servers")
            } else {
                *workers.choose(rng).expect("a cluster has workers")
            };
            // 0: both ways; 1: its messages to the coordinator; 2: the
            // coordinator's messages to it.
            let way = rng.gen_range(0..3u8);
            // A server the coordinator stops hearing from counts as down.
            if node.server().is_some()
                && way != 2
                && !ch.beyond_fault_model
                && !model.allows(&[node], at, model.until(end))
            {
                node = *workers.choose(rng).expect("a cluster has workers");
            }
            let duration = Some(duration);
            Some(match way {
                0 => FaultKind::Partition {
                    groups: vec![vec![node], vec![NodeId::Coordinator]],
                    duration,
                },
                1 => FaultKind::Clog {
                    from: node,
                    to: NodeId::Coordinator,
                    duration,
                },
                _ => FaultKind::Clog {
                    from: NodeId::Coordinator,
                    to: node,
                    duration,
                },
            })
        }
        _ => unreachable!("unknown chaos kind {kind}"),
    }
}

/// Whether a fault timeline stays inside the fault model (never more than
/// `replication - 1` servers of a range down at once, counting the
/// recovery time after each fault, judged conservatively as `[chaos]`
/// draws), and every fault heals, so that every check can be promised.
pub fn within_fault_model(cluster: &Cluster, faults: &[crate::scenario::Fault]) -> bool {
    let mut model = Model {
        cluster,
        recovery: recovery(cluster),
        downs: Vec::new(),
        crashes: Vec::new(),
    };
    for (i, f) in faults.iter().enumerate() {
        let p = Planned {
            id: i as u64,
            at: f.at,
            kind: f.kind.clone(),
            origin: Origin::Scenario,
        };
        let servers: Vec<NodeId> = downs(&p, model.recovery)
            .into_iter()
            .map(|d| d.node)
            .filter(|n| n.server().is_some())
            .collect();
        if p.end().is_none()
            && !matches!(
                p.kind,
                FaultKind::Crash {
                    node: NodeId::Worker(_),
                    ..
                }
            )
        {
            return false;
        }
        if !model.allows(&servers, p.at, model.until(p.end())) {
            return false;
        }
        model.add(&p);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cluster(servers: u32, replication: u32) -> Cluster {
        Cluster {
            servers,
            replication,
            workers: 4,
            ..Cluster::default()
        }
    }

    fn busy() -> Chaos {
        Chaos {
            crash_rate: 2.0,
            partition_rate: 2.0,
            clog_rate: 1.0,
            straggler_rate: 1.0,
            loss_rate: 1.0,
            slow_link_rate: 1.0,
            cut_rate: 2.0,
            max_duration: Duration::from_secs(2),
            until: Duration::from_secs(20),
            ..Chaos::default()
        }
    }

    /// Cut-offs only, every seed, as `scenarios/chaos-churn.toml` draws
    /// them.
    fn churn() -> Chaos {
        Chaos {
            cut_rate: 4.0,
            min_duration: Some(Duration::from_millis(200)),
            max_duration: Duration::from_millis(400),
            until: Duration::from_secs(20),
            swarm: false,
            ..Chaos::default()
        }
    }

    /// At every instant, servers of a range that are down (crashed or cut
    /// from the coordinator), exactly, not conservatively.
    fn worst_range_down(faults: &[Planned], c: &Cluster) -> usize {
        let downs: Vec<Down> = faults.iter().flat_map(|f| downs(f, recovery(c))).collect();
        let mut instants: Vec<Duration> = downs.iter().map(|d| d.from).collect();
        instants.sort();
        instants
            .iter()
            .map(|&t| {
                (0..c.servers)
                    .map(|r| {
                        (0..c.replication)
                            .map(|i| NodeId::Server((r + i) % c.servers))
                            .filter(|s| {
                                downs.iter().any(|d| {
                                    d.node == *s && d.from <= t && d.to.is_none_or(|e| e > t)
                                })
                            })
                            .count()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn draws_depend_only_on_the_seed() {
        let c = cluster(4, 2);
        let a = draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(3));
        let b = draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let other = draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(4));
        assert_ne!(a.0, other.0);
    }

    #[test]
    fn chaos_stays_inside_the_fault_model() {
        for (servers, k) in [(4, 1), (4, 2), (3, 3)] {
            let c = cluster(servers, k);
            for seed in 0..200 {
                let (faults, _) = draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(seed));
                let worst = worst_range_down(&faults, &c);
                assert!(
                    worst < k as usize,
                    "seed {seed}: {worst} of {k} replicas down"
                );
                assert!(faults
                    .iter()
                    .all(|f| f.at < busy().until && f.end().is_some()));
            }
        }
    }

    #[test]
    fn beyond_the_fault_model_servers_do_go_down() {
        let c = cluster(4, 1);
        let ch = Chaos {
            beyond_fault_model: true,
            ..busy()
        };
        let any = (0..50).any(|seed| {
            let (faults, _) = draw(&ch, &c, &[], &mut ChaCha8Rng::seed_from_u64(seed));
            worst_range_down(&faults, &c) >= 1
        });
        assert!(
            any,
            "beyond the fault model, chaos takes a server's only replica down"
        );
    }

    #[test]
    fn swarms_vary_with_the_seed() {
        let c = cluster(4, 2);
        let swarms: std::collections::BTreeSet<String> = (0..40)
            .map(|s| draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(s)).1)
            .map(|s| s.split(" at ").next().unwrap().to_string())
            .collect();
        assert!(swarms.len() > 5, "{swarms:?}");
    }

    #[test]
    fn no_node_is_crashed_twice_at_once() {
        let c = cluster(4, 2);
        for seed in 0..100 {
            let (faults, _) = draw(&busy(), &c, &[], &mut ChaCha8Rng::seed_from_u64(seed));
            let crashes: Vec<Down> = faults
                .iter()
                .filter(|f| matches!(f.kind, FaultKind::Crash { .. }))
                .flat_map(|f| downs(f, Duration::ZERO))
                .collect();
            for (i, a) in crashes.iter().enumerate() {
                for b in &crashes[i + 1..] {
                    assert!(a.node != b.node || !a.overlaps(b.from, b.to), "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn cuts_separate_one_node_from_the_coordinator_alone() {
        let c = cluster(4, 2);
        let (mut both, mut to, mut from, mut servers) = (0, 0, 0, 0);
        for seed in 0..50 {
            let (faults, swarm) = draw(&churn(), &c, &[], &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(
                swarm, "cut at intensity 1.00x",
                "no swarm: every kind, every seed"
            );
            assert!(faults.len() > 20, "seed {seed}: {} cuts", faults.len());
            assert!(worst_range_down(&faults, &c) < 2, "seed {seed}");
            for f in &faults {
                let d = f.kind.duration().expect("a cut heals");
                assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
                let node = match &f.kind {
                    FaultKind::Partition { groups, .. } => {
                        assert_eq!(groups.len(), 2);
                        assert_eq!(groups[1], vec![NodeId::Coordinator]);
                        assert_eq!(groups[0].len(), 1);
                        both += 1;
                        groups[0][0]
                    }
                    FaultKind::Clog {
                        from: n,
                        to: NodeId::Coordinator,
                        ..
                    } => {
                        to += 1;
                        *n
                    }
                    FaultKind::Clog {
                        from: NodeId::Coordinator,
                        to: n,
                        ..
                    } => {
                        from += 1;
                        *n
                    }
                    k => panic!("seed {seed}: a cut drew {k:?}"),
                };
                assert_ne!(node, NodeId::Coordinator);
                servers += usize::from(node.server().is_some());
            }
        }
        assert!(both > 0 && to > 0 && from > 0 && servers > 0);
    }

    #[test]
    fn min_duration_bounds_every_drawn_fault() {
        let ch = Chaos {
            min_duration: Some(Duration::from_millis(1500)),
            ..busy()
        };
        for seed in 0..20 {
            let (faults, _) = draw(
                &ch,
                &cluster(4, 2),
                &[],
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            for f in faults {
                let d = f.kind.duration().expect("chaos faults heal");
                assert!(
                    d >= Duration::from_millis(1500) && d <= ch.max_duration,
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn without_swarm_every_kind_is_drawn_at_its_rate() {
        let ch = Chaos {
            swarm: false,
            ..busy()
        };
        for seed in 0..10 {
            let (faults, swarm) = draw(
                &ch,
                &cluster(4, 2),
                &[],
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert!(swarm.ends_with("at intensity 1.00x"), "{swarm}");
            assert_eq!(swarm.split(" at ").next().unwrap(), KINDS.join("+"));
            for kind in ["crash", "straggler", "loss", "slow_link"] {
                let n = faults
                    .iter()
                    .filter(|f| {
                        matches!(
                            (&f.kind, kind),
                            (FaultKind::Crash { .. }, "crash")
                                | (FaultKind::Straggler { .. }, "straggler")
                                | (FaultKind::Loss { .. }, "loss")
                                | (FaultKind::SlowLink { .. }, "slow_link")
                        )
                    })
                    .count();
                assert!(n > 0, "seed {seed}: no {kind}");
            }
        }
    }
}
