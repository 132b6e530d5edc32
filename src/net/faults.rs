//! Network faults and shaping over real TCP: each node's transport applies
//! the run's fault plan ([`crate::run::plan::Plan`]: the scenario's
//! `[[fault]]`s and what `[chaos]` draws from the seed) and the
//! `[network]` model to what it sends, on the plan's timeline in real time
//! since the cluster's origin.
//!
//! For a message from this node to `to`, of `bytes` on the wire, sent at
//! `t`:
//! - **partition**: dropped if an active partition puts the two nodes in
//!   different groups (an unlisted node reaches everyone);
//! - **loss**: dropped with the `[network] loss` probability, and with
//!   each active loss fault's rate, drawn from a generator seeded from the
//!   run seed and the node;
//! - **latency**: delivered after a one-way latency drawn uniformly from
//!   `[network] latency`, plus an active slow link's extra latency;
//! - **bandwidth**: the sender's interface sends one message at a time at
//!   its `[network]` rate (`server_bandwidth`, `worker_bandwidth`), and an
//!   active slow link caps its link at its rate: a message leaves once the
//!   interface (and the link) finished the previous ones;
//! - **clog** `from -> to`: held until the clog heals, then delivered (one
//!   that never heals holds it for good);
//! - messages of one link stay in order (a later one is never delivered
//!   before an earlier one), as on the simulated network and on TCP.
//!
//! A worker's step time is `step_time` times a jitter drawn uniformly from
//! `[1 - jitter, 1 + jitter]` (`[compute] jitter`, as in the simulator),
//! times an active **straggler** fault's slowdown.
//!
//! What differs from the simulator's network (docs/real-mode.md): the
//! receiving interface is not modelled (incast at a server shares the
//! real loopback, not a modelled interface), and transfers through one
//! interface are sent one after another rather than sharing it max-min
//! fairly (the same total time, a different order of completions);
//! `[chaos]` draws its faults from the run seed with its own generator,
//! not madsim's, so a seed's chaos differs from the simulator's (the
//! outcome lists the faults injected).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`, `super`
//! (net). Never: `crate::sim` (hosts never import each other), madsim,
//! tokio (time is passed in).

use crate::core::NodeId;
use crate::run::plan::{Plan, Planned};
use crate::scenario::{FaultKind, Network, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Domain tag of the generator that draws a real run's chaos.
const CHAOS_TAG: u64 = 0x6e65_745f_6368_616f;

/// The fault plan of a real run with seed `seed`: the same for every node
/// (each computes it from the scenario and the seed).
pub fn plan(scn: &Scenario, seed: u64) -> Plan {
    Plan::new(scn, &mut ChaCha8Rng::seed_from_u64(seed ^ CHAOS_TAG))
}

/// The transport model of a real run: `[network]`, the fault plan and
/// the seed; every node builds its [`Shaper`] from it.
#[derive(Clone, Debug)]
pub struct Model {
    network: Network,
    jitter: f64,
    plan: Plan,
    seed: u64,
}

impl Model {
    /// The model of scenario `scn` run with seed `seed`.
    pub fn new(scn: &Scenario, seed: u64) -> Model {
        Model {
            network: scn.network.clone(),
            jitter: scn.compute.jitter,
            plan: plan(scn, seed),
            seed,
        }
    }

    /// The plan (for the supervisor: crashes, and the faults to report).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Node `me`'s transport in life `incarnation`.
    pub fn shaper(&self, me: NodeId, incarnation: u32) -> Shaper {
        let mut s = Shaper::new(me, incarnation, &self.network, &self.plan, self.seed);
        s.jitter = self.jitter;
        s
    }
}

/// What becomes of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Lost (a partition, loss, or a clog that never heals).
    Drop,
    /// Write it at this time since the origin.
    At(Duration),
}

/// One node's transport model (module docs).
#[derive(Debug)]
pub struct Shaper {
    me: NodeId,
    network: Network,
    /// `[compute] jitter`.
    jitter: f64,
    faults: Vec<Planned>,
    rng: ChaCha8Rng,
    /// When this node's interface finishes what it has sent.
    iface_free: Duration,
    /// Per peer: when the last message on the link is delivered, and when
    /// a slow link's capacity is free again.
    links: BTreeMap<NodeId, (Duration, Duration)>,
}

impl Shaper {
    /// The transport of node `me` (life `incarnation`) of a run with seed
    /// `seed` on `network`, applying `plan`.
    pub fn new(me: NodeId, incarnation: u32, network: &Network, plan: &Plan, seed: u64) -> Shaper {
        let node = match me {
            NodeId::Coordinator => 0,
            NodeId::Server(s) => 1 + u64::from(s),
            NodeId::Worker(w) => 1 << 32 | u64::from(w),
        };
        let faults = plan
            .faults
            .iter()
            .filter(|f| !matches!(f.kind, FaultKind::Crash { .. }))
            .cloned()
            .collect();
        Shaper {
            me,
            network: network.clone(),
            jitter: 0.0,
            faults,
            rng: ChaCha8Rng::seed_from_u64(
                seed ^ node.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(incarnation) << 48,
            ),
            iface_free: Duration::ZERO,
            links: BTreeMap::new(),
        }
    }

    /// The faults active at `t`.
    fn active(&self, t: Duration) -> impl Iterator<Item = &Planned> {
        self.faults
            .iter()
            .filter(move |f| f.at <= t && f.end().is_none_or(|e| t < e))
    }

    /// How long this node's minibatch takes at `t`, for a step time of
    /// `step`: jittered, and slowed by a straggler fault on it.
    pub fn step_time(&mut self, t: Duration, step: Duration) -> Duration {
        let slowdown = self
            .active(t)
            .filter_map(|f| match f.kind {
                FaultKind::Straggler { node, slowdown, .. } if node == self.me => Some(slowdown),
                _ => None,
            })
            .fold(1.0, f64::max);
        let jitter = match self.jitter > 0.0 {
            true => self.rng.gen_range(1.0 - self.jitter..=1.0 + self.jitter),
            false => 1.0,
        };
        step.mul_f64(slowdown * jitter)
    }

    /// What becomes of a message of `bytes` to `to` sent at `t`.
    pub fn send(&mut self, t: Duration, to: NodeId, bytes: usize) -> Verdict {
        let mut keep = 1.0 - self.network.loss;
        let mut extra = Duration::ZERO;
        let mut link_bps: Option<f64> = None;
        let mut held_until = t;
        for f in self.active(t) {
            match &f.kind {
                FaultKind::Partition { groups, .. } => {
                    let group = |n: NodeId| groups.iter().position(|g| g.contains(&n));
                    if let (Some(a), Some(b)) = (group(self.me), group(to)) {
                        if a != b {
                            return Verdict::Drop;
                        }
                    }
                }
                FaultKind::Loss { rate, .. } => keep *= 1.0 - rate,
                FaultKind::Clog { from, to: dst, .. } if *from == self.me && *dst == to => {
                    match f.end() {
                        Some(end) => held_until = held_until.max(end),
                        None => return Verdict::Drop,
                    }
                }
                FaultKind::SlowLink {
                    between,
                    latency,
                    bandwidth_bps,
                    ..
                } if between.contains(&self.me) && between.contains(&to) => {
                    extra += *latency;
                    if let Some(b) = bandwidth_bps {
                        link_bps = Some(link_bps.map_or(*b, |x: f64| x.min(*b)));
                    }
                }
                _ => {}
            }
        }
        if keep < 1.0 && self.rng.gen::<f64>() >= keep {
            return Verdict::Drop;
        }
        let bits = bytes as f64 * 8.0;
        let iface = self.network.interface_bps(self.me);
        let start = t.max(self.iface_free);
        self.iface_free = start + Duration::from_secs_f64(bits / iface);
        let (last, link_free) = self.links.get(&to).copied().unwrap_or_default();
        let mut sent = self.iface_free;
        if let Some(bps) = link_bps {
            sent = sent.max(start.max(link_free) + Duration::from_secs_f64(bits / bps));
        }
        let (lo, hi) = (self.network.latency_min, self.network.latency_max);
        let latency = if hi > lo {
            lo + (hi - lo).mul_f64(self.rng.gen::<f64>())
        } else {
            lo
        };
        let at = (sent + latency + extra).max(held_until).max(last);
        self.links.insert(to, (at, sent));
        Verdict::At(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plan::Origin;

    fn scenario(faults: Vec<(u64, FaultKind)>) -> (Scenario, Plan) {
        let mut scn = crate::scenario::parse(
            "name = \"t\"\n[cluster]\nservers = 2\nworkers = 2\n[network]\nlatency = \"1ms\"\nbandwidth = \"8Mbps\"\n",
            "t.toml",
        )
        .unwrap();
        scn.network.loss = 0.0;
        let plan = Plan {
            faults: faults
                .into_iter()
                .enumerate()
                .map(|(i, (ms, kind))| Planned {
                    id: i as u64,
                    at: Duration::from_millis(ms),
                    kind,
                    origin: Origin::Scenario,
                })
                .collect(),
            swarm: None,
        };
        (scn, plan)
    }

    const W0: NodeId = NodeId::Worker(0);
    const S0: NodeId = NodeId::Server(0);
    const S1: NodeId = NodeId::Server(1);
    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    /// Latency plus serialization at the interface's rate, in order per
    /// link; a busy interface delays the next message.
    #[test]
    fn latency_and_bandwidth() {
        let (scn, plan) = scenario(vec![]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 1);
        // 1000 bytes at 8 Mbit/s: 1 ms on the interface, then 1 ms latency.
        assert_eq!(s.send(ms(0), S0, 1000), Verdict::At(ms(2)));
        // The interface is busy until 1 ms: the next leaves at 2 ms.
        assert_eq!(s.send(ms(0), S1, 1000), Verdict::At(ms(3)));
        assert_eq!(s.send(ms(10), S0, 0), Verdict::At(ms(11)));
    }

    #[test]
    fn partitions_drop_across_groups_only() {
        let (scn, plan) = scenario(vec![(
            5,
            FaultKind::Partition {
                groups: vec![vec![W0], vec![S0]],
                duration: Some(ms(10)),
            },
        )]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 1);
        assert!(matches!(s.send(ms(4), S0, 0), Verdict::At(_)));
        assert_eq!(s.send(ms(5), S0, 0), Verdict::Drop);
        // S1 is not listed: it reaches everyone.
        assert!(matches!(s.send(ms(6), S1, 0), Verdict::At(_)));
        assert!(matches!(s.send(ms(15), S0, 0), Verdict::At(_)));
    }

    /// A clog holds one direction until it heals; the link stays in order.
    #[test]
    fn clogs_hold_then_deliver_in_order() {
        let (scn, plan) = scenario(vec![(
            0,
            FaultKind::Clog {
                from: W0,
                to: S0,
                duration: Some(ms(50)),
            },
        )]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 1);
        assert_eq!(s.send(ms(1), S0, 0), Verdict::At(ms(50)));
        // After it heals, a new message is not delivered before the held one.
        assert_eq!(s.send(ms(49), S0, 0), Verdict::At(ms(50)));
        assert_eq!(s.send(ms(60), S0, 0), Verdict::At(ms(61)));
        // The other direction and other links are untouched.
        let mut back = Shaper::new(S0, 0, &scn.network, &plan, 1);
        assert_eq!(back.send(ms(1), W0, 0), Verdict::At(ms(2)));
        assert_eq!(s.send(ms(70), S1, 0), Verdict::At(ms(71)));
    }

    #[test]
    fn slow_links_add_latency_and_cap_the_link() {
        let (scn, plan) = scenario(vec![(
            0,
            FaultKind::SlowLink {
                between: [S0, W0],
                latency: ms(20),
                bandwidth_bps: Some(800_000.0),
                duration: None,
            },
        )]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 1);
        // 1000 bytes at 0.8 Mbit/s: 10 ms, + 1 ms + 20 ms latency.
        assert_eq!(s.send(ms(0), S0, 1000), Verdict::At(ms(31)));
        assert_eq!(s.send(ms(0), S1, 1000), Verdict::At(ms(3)));
    }

    /// Loss drops about its rate, from a seeded generator.
    #[test]
    fn loss_drops_about_its_rate() {
        let (scn, plan) = scenario(vec![(
            0,
            FaultKind::Loss {
                rate: 0.3,
                duration: None,
            },
        )]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 7);
        let lost = (0..10_000)
            .filter(|&i| s.send(ms(i), S0, 0) == Verdict::Drop)
            .count();
        assert!((2_800..3_200).contains(&lost), "{lost}");
        let mut again = Shaper::new(W0, 0, &scn.network, &plan, 7);
        let lost_again = (0..10_000)
            .filter(|&i| again.send(ms(i), S0, 0) == Verdict::Drop)
            .count();
        assert_eq!(lost, lost_again, "seeded");
    }

    #[test]
    fn stragglers_slow_their_node_only_while_active() {
        let (scn, plan) = scenario(vec![(
            10,
            FaultKind::Straggler {
                node: W0,
                slowdown: 4.0,
                duration: Some(ms(10)),
            },
        )]);
        let mut s = Shaper::new(W0, 0, &scn.network, &plan, 1);
        assert_eq!(s.step_time(ms(5), ms(20)), ms(20));
        assert_eq!(s.step_time(ms(15), ms(20)), ms(80));
        assert_eq!(s.step_time(ms(25), ms(20)), ms(20));
        let mut other = Shaper::new(NodeId::Worker(1), 0, &scn.network, &plan, 1);
        assert_eq!(other.step_time(ms(15), ms(20)), ms(20));
        // Jitter: within its band, and not constant.
        other.jitter = 0.5;
        let steps: Vec<Duration> = (0..100).map(|_| other.step_time(ms(15), ms(20))).collect();
        assert!(
            steps.iter().all(|d| (ms(10)..=ms(30)).contains(d)),
            "{steps:?}"
        );
        assert!(steps.iter().any(|d| *d != steps[0]));
    }
}
