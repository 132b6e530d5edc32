//! The simulated network: per-link transfer time and the network faults.
//!
//! madsim moves messages between nodes but does not model bandwidth, so
//! every link (an ordered pair of nodes) is modelled here:
//!
//! ```text
//! depart  = max(now, link.free_at)            messages on a link are serialized
//! tx      = size_bytes * 8 / bandwidth_bps    (slow_link may lower bandwidth)
//! arrival = max(link.last_arrival, depart + tx + latency)
//! ```
//!
//! `latency` is drawn uniformly from the scenario's range (plus a slow
//! link's extra latency). Arrivals on a link never overtake each other, as
//! on a TCP connection. Faults: a partition drops messages between groups, a
//! clog holds them (the host re-sends them when it heals), loss drops each
//! message with a probability (the highest active rate wins).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use crate::core::NodeId;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Base network parameters.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Lowest one-way latency.
    pub latency_min: Duration,
    /// Highest one-way latency.
    pub latency_max: Duration,
    /// Per link, per direction.
    pub bandwidth_bps: f64,
    /// Base loss probability.
    pub loss: f64,
}

/// What happens to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It arrives at this time.
    Deliver(Duration),
    /// It is lost, for this reason.
    Drop(&'static str),
    /// The link is clogged: hold it until the clog heals.
    Hold,
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    free_at: Duration,
    last_arrival: Duration,
}

/// Identifies an active fault so that overlapping faults heal separately.
pub type FaultId = u64;

#[derive(Clone, Debug)]
struct SlowLink {
    extra_latency: Duration,
    bandwidth_bps: Option<f64>,
}

/// The network's state.
#[derive(Debug)]
pub struct Network {
    cfg: NetConfig,
    links: BTreeMap<(NodeId, NodeId), Link>,
    partitions: BTreeMap<FaultId, BTreeMap<NodeId, usize>>,
    clogs: BTreeMap<FaultId, (NodeId, NodeId)>,
    losses: BTreeMap<FaultId, f64>,
    slow: BTreeMap<FaultId, ((NodeId, NodeId), SlowLink)>,
}

impl Network {
    /// A healthy network.
    pub fn new(cfg: NetConfig) -> Network {
        Network {
            cfg,
            links: BTreeMap::new(),
            partitions: BTreeMap::new(),
            clogs: BTreeMap::new(),
            losses: BTreeMap::new(),
            slow: BTreeMap::new(),
        }
    }

    /// Decides the fate of a message of `size_bytes` sent now.
    pub fn route(
        &mut self,
        now: Duration,
        from: NodeId,
        to: NodeId,
        size_bytes: usize,
        rng: &mut impl Rng,
    ) -> Fate {
        if self.partitioned(from, to) {
            return Fate::Drop("partition");
        }
        let loss = self.losses.values().copied().fold(self.cfg.loss, f64::max);
        if loss > 0.0 && rng.gen_bool(loss.min(1.0)) {
            return Fate::Drop("loss");
        }
        if self.clogged(from, to) {
            return Fate::Hold;
        }
        let (extra_latency, bandwidth_bps) = self.slowdown(from, to);
        let latency = self.sample_latency(rng) + extra_latency;
        let tx = Duration::from_secs_f64(size_bytes as f64 * 8.0 / bandwidth_bps);
        let link = self.links.entry((from, to)).or_default();
        let depart = now.max(link.free_at);
        link.free_at = depart + tx;
        let arrival = link.last_arrival.max(depart + tx + latency);
        link.last_arrival = arrival;
        Fate::Deliver(arrival)
    }

    fn sample_latency(&self, rng: &mut impl Rng) -> Duration {
        let (lo, hi) = (self.cfg.latency_min, self.cfg.latency_max);
        if hi > lo {
            Duration::from_nanos(rng.gen_range(lo.as_nanos() as u64..=hi.as_nanos() as u64))
        } else {
            lo
        }
    }

    /// Whether an active partition separates `a` and `b`.
    pub fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        self.partitions
            .values()
            .any(|groups| matches!((groups.get(&a), groups.get(&b)), (Some(x), Some(y)) if x != y))
    }

    fn clogged(&self, from: NodeId, to: NodeId) -> bool {
        self.clogs.values().any(|&(f, t)| f == from && t == to)
    }

    /// Extra latency and effective bandwidth of the link `from -> to`.
    fn slowdown(&self, from: NodeId, to: NodeId) -> (Duration, f64) {
        let mut extra = Duration::ZERO;
        let mut bw = self.cfg.bandwidth_bps;
        for ((a, b), s) in self.slow.values() {
            if (*a == from && *b == to) || (*a == to && *b == from) {
                extra += s.extra_latency;
                if let Some(x) = s.bandwidth_bps {
                    bw = bw.min(x);
                }
            }
        }
        (extra, bw)
    }

    /// Starts a partition: nodes in different groups cannot talk.
    pub fn add_partition(&mut self, id: FaultId, groups: &[Vec<NodeId>]) {
        let map = groups
            .iter()
            .enumerate()
            .flat_map(|(g, nodes)| nodes.iter().map(move |&n| (n, g)))
            .collect();
        self.partitions.insert(id, map);
    }

    /// Starts a one-way clog.
    pub fn add_clog(&mut self, id: FaultId, from: NodeId, to: NodeId) {
        self.clogs.insert(id, (from, to));
    }

    /// Starts network-wide loss at `rate`.
    pub fn add_loss(&mut self, id: FaultId, rate: f64) {
        self.losses.insert(id, rate);
    }

    /// Starts a slow link between `a` and `b` (both directions).
    pub fn add_slow_link(
        &mut self,
        id: FaultId,
        a: NodeId,
        b: NodeId,
        extra_latency: Duration,
        bandwidth_bps: Option<f64>,
    ) {
        self.slow.insert(
            id,
            (
                (a, b),
                SlowLink {
                    extra_latency,
                    bandwidth_bps,
                },
            ),
        );
    }

    /// Heals fault `id`, whatever its kind. Returns the clogged link if it
    /// was a clog, so the host can release what it held.
    pub fn heal(&mut self, id: FaultId) -> Option<(NodeId, NodeId)> {
        self.partitions.remove(&id);
        self.losses.remove(&id);
        self.slow.remove(&id);
        self.clogs.remove(&id).filter(|&(f, t)| !self.clogged(f, t))
    }

    /// Forgets the links of a node that crashed: its connections are gone.
    pub fn reset_node(&mut self, node: NodeId) {
        self.links.retain(|(a, b), _| *a != node && *b != node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const A: NodeId = NodeId::Worker(0);
    const B: NodeId = NodeId::Server(0);

    fn net(lat_ms: u64, bw: f64) -> Network {
        Network::new(NetConfig {
            latency_min: Duration::from_millis(lat_ms),
            latency_max: Duration::from_millis(lat_ms),
            bandwidth_bps: bw,
            loss: 0.0,
        })
    }

    #[test]
    fn transfer_time_is_latency_plus_size_over_bandwidth() {
        let mut n = net(1, 8e6); // 1 MB/s
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let at = n.route(Duration::ZERO, A, B, 1000, &mut rng);
        assert_eq!(at, Fate::Deliver(Duration::from_millis(2)));
    }

    #[test]
    fn messages_on_one_link_are_serialized() {
        let mut n = net(1, 8e6);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        n.route(Duration::ZERO, A, B, 1000, &mut rng);
        // Sent at once, the second waits for the first to leave the wire.
        assert_eq!(
            n.route(Duration::ZERO, A, B, 1000, &mut rng),
            Fate::Deliver(Duration::from_millis(3))
        );
        // The reverse direction is a separate link.
        assert_eq!(
            n.route(Duration::ZERO, B, A, 1000, &mut rng),
            Fate::Deliver(Duration::from_millis(2))
        );
    }

    #[test]
    fn arrivals_never_overtake_on_a_link() {
        let mut n = Network::new(NetConfig {
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(50),
            bandwidth_bps: 1e9,
            loss: 0.0,
        });
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut last = Duration::ZERO;
        for i in 0..200 {
            let Fate::Deliver(t) = n.route(Duration::from_micros(i * 100), A, B, 100, &mut rng)
            else {
                panic!()
            };
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn faults_drop_hold_and_slow_messages_until_healed() {
        let mut n = net(1, 8e6);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        n.add_partition(1, &[vec![A], vec![B]]);
        assert_eq!(
            n.route(Duration::ZERO, A, B, 10, &mut rng),
            Fate::Drop("partition")
        );
        assert!(
            !n.partitioned(A, NodeId::Coordinator),
            "unlisted nodes stay connected"
        );
        n.heal(1);
        n.add_clog(2, A, B);
        assert_eq!(n.route(Duration::ZERO, A, B, 10, &mut rng), Fate::Hold);
        assert!(
            matches!(
                n.route(Duration::ZERO, B, A, 10, &mut rng),
                Fate::Deliver(_)
            ),
            "clogs are one-way"
        );
        assert_eq!(n.heal(2), Some((A, B)));
        n.add_loss(3, 1.0);
        assert_eq!(
            n.route(Duration::ZERO, A, B, 10, &mut rng),
            Fate::Drop("loss")
        );
        n.heal(3);
        n.add_slow_link(4, B, A, Duration::from_millis(10), Some(8e5));
        let t0 = Duration::from_secs(1);
        assert_eq!(
            n.route(t0, A, B, 1000, &mut rng),
            Fate::Deliver(t0 + Duration::from_millis(21))
        );
    }
}
