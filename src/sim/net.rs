//! The simulated network: transfers through shared interfaces
//! ([`super::net_flows`]: max-min fair sharing, one stream per ordered pair)
//! and the network faults.
//!
//! A message's latency is drawn uniformly from the scenario's range (plus a
//! slow link's extra latency) when it is sent; its transfer then shares its
//! sender's outbound and its receiver's inbound interface with every other
//! transfer (and a slow link caps its path at that link's bandwidth, for
//! messages sent while the slow link is active). Faults: a partition drops
//! messages between groups, a clog holds them (the host re-sends them when
//! it heals), loss drops each message with a probability (the highest
//! active rate wins).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use super::net_flows::Flows;
pub use super::net_flows::{Busy, Delivery};
use crate::core::NodeId;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Base network parameters.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Lowest one-way latency.
    pub latency_min: Duration,
    /// Highest one-way latency.
    pub latency_max: Duration,
    /// Each node's interface, per direction, unless `capacity` says
    /// otherwise (bits per second).
    pub bandwidth_bps: f64,
    /// Interface capacity of particular nodes (servers, workers).
    pub capacity: BTreeMap<NodeId, f64>,
    /// Servers in the cluster.
    pub servers: u32,
    /// Workers in the cluster.
    pub workers: u32,
    /// Base loss probability.
    pub loss: f64,
}

/// What happens to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It is on its way: delivered then (planned at once), or as the
    /// next flush plans it.
    Sent(Option<Delivery>),
    /// It is lost, for this reason.
    Drop(&'static str),
    /// The link is clogged: hold it until the clog heals.
    Hold,
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
    flows: Flows,
    partitions: BTreeMap<FaultId, BTreeMap<NodeId, usize>>,
    clogs: BTreeMap<FaultId, (NodeId, NodeId)>,
    losses: BTreeMap<FaultId, f64>,
    slow: BTreeMap<FaultId, ((NodeId, NodeId), SlowLink)>,
}

impl Network {
    /// A healthy network.
    pub fn new(cfg: NetConfig) -> Network {
        Network {
            flows: Flows::new(cfg.servers, cfg.workers, cfg.bandwidth_bps, &cfg.capacity),
            cfg,
            partitions: BTreeMap::new(),
            clogs: BTreeMap::new(),
            losses: BTreeMap::new(),
            slow: BTreeMap::new(),
        }
    }

    /// Decides the fate of message `id` of `size_bytes` sent now by
    /// `from`, whose first bit may leave at `start` (its host may be busy).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        now: Duration,
        start: Duration,
        id: u64,
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
        let (extra_latency, link_bps) = self.slowdown(from, to);
        let latency = self.sample_latency(rng) + extra_latency;
        let bits = size_bytes as f64 * 8.0;
        Fate::Sent(
            self.flows
                .send(now, id, from, to, bits, latency, link_bps, start.max(now)),
        )
    }

    /// Plans the transfers sent at this instant (once every send of the
    /// instant is in); the deliveries whose prediction is new or changed.
    pub fn flush(&mut self, now: Duration, changed: &mut Vec<Delivery>) {
        self.flows.flush(now, changed)
    }

    /// When a large component must next be planned.
    pub fn next_wake(&self) -> Option<Duration> {
        self.flows.next_wake()
    }

    /// Plans the large components whose next change is due by `now`.
    pub fn wake(&mut self, now: Duration, changed: &mut Vec<Delivery>) {
        self.flows.wake(now, changed)
    }

    /// The lowest latency any message has.
    pub fn min_latency(&self) -> Duration {
        self.cfg.latency_min
    }

    /// The interfaces' busy periods not reported yet.
    pub fn drain_busy(&mut self) -> std::vec::Drain<'_, Busy> {
        self.flows.drain_busy()
    }

    /// Closes the interfaces' busy periods at `end` (the run is over).
    pub fn settle(&mut self, end: Duration) {
        self.flows.settle(end)
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

    /// Extra latency and the bandwidth cap of the path `from -> to` (slow
    /// links; `None`: only the interfaces limit it).
    fn slowdown(&self, from: NodeId, to: NodeId) -> (Duration, Option<f64>) {
        let mut extra = Duration::ZERO;
        let mut bw: Option<f64> = None;
        for ((a, b), s) in self.slow.values() {
            if (*a == from && *b == to) || (*a == to && *b == from) {
                extra += s.extra_latency;
                if let Some(x) = s.bandwidth_bps {
                    bw = Some(bw.map_or(x, |b| b.min(x)));
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

    /// Drops the transfers of a node that crashed: its connections are
    /// gone. Returns the messages dropped; the changed deliveries go into
    /// `changed`.
    pub fn reset_node(
        &mut self,
        now: Duration,
        node: NodeId,
        changed: &mut Vec<Delivery>,
    ) -> Vec<u64> {
        self.flows.reset_node(now, node, changed)
    }
}
