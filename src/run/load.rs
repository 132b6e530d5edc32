//! How hard each node's resources worked: its inbound and outbound network
//! interface and its CPU (the contract's `load` and `bottleneck`). A host
//! reports each stretch of time a resource ran and at what share of its
//! capacity ([`LoadMeter::busy`]) and each message delivered
//! ([`LoadMeter::delivered`]); [`LoadMeter::finish`] turns that into the
//! per-node fractions of the run, the bottleneck and a utilisation series
//! per server for the load plot.
//!
//! The meter keeps sums per time-series bucket, not the intervals
//! themselves, so that a run's memory grows with its length, not with its
//! messages (a scale run delivers millions).
//!
//! May import: `crate::core`. Never: a host (`crate::sim`, `crate::net`).

use crate::core::NodeId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A resource of a node that the hosts meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The network interface, receiving.
    NicIn,
    /// The network interface, sending.
    NicOut,
    /// The CPU (a worker's gradients, a server's applying and copying out).
    Cpu,
}

impl Resource {
    /// Every resource, in the order ties are broken (and series indexed).
    pub const ALL: [Resource; 3] = [Resource::NicIn, Resource::NicOut, Resource::Cpu];

    /// Its name in the outcome (`nic_in`, `nic_out`, `cpu`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::NicIn => "nic_in",
            Resource::NicOut => "nic_out",
            Resource::Cpu => "cpu",
        }
    }

    /// The resource named `name` (see [`Resource::name`]).
    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Its position in [`Resource::ALL`] (and in per-resource arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One node's load over a run, as the outcome's `load` reports it. The
/// fractions are of the run's simulated time (0 for a run of no time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct NodeLoad {
    /// Bytes of the messages delivered to the node.
    pub bytes_in: u64,
    /// Bytes of the node's messages delivered.
    pub bytes_out: u64,
    /// Fraction of the time the interface received anything.
    pub nic_in_busy: f64,
    /// Fraction of the time the interface sent anything.
    pub nic_out_busy: f64,
    /// Fraction of the time the CPU ran any task.
    pub cpu_busy: f64,
    /// Bits received over what the inbound bandwidth could carry in the run.
    pub nic_in_util: f64,
    /// Bits sent over what the outbound bandwidth could carry in the run.
    pub nic_out_util: f64,
    /// CPU work over the CPU time of the run.
    pub cpu_util: f64,
}

impl NodeLoad {
    /// The busy fraction of `r`.
    pub fn busy(&self, r: Resource) -> f64 {
        match r {
            Resource::NicIn => self.nic_in_busy,
            Resource::NicOut => self.nic_out_busy,
            Resource::Cpu => self.cpu_busy,
        }
    }

    /// The utilisation of `r`.
    pub fn util(&self, r: Resource) -> f64 {
        match r {
            Resource::NicIn => self.nic_in_util,
            Resource::NicOut => self.nic_out_util,
            Resource::Cpu => self.cpu_util,
        }
    }
}

/// One server's utilisation over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerUtil {
    /// The server's name (`server-3`).
    pub node: String,
    /// Per resource (indexed as [`Resource::ALL`]), the utilisation in
    /// each bucket (the last one clipped at the run's end).
    pub util: [Vec<f64>; 3],
}

/// Per-server utilisation over time: what the load plot draws (not in the
/// outcome's JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UtilSeries {
    /// The buckets' width in seconds (the throughput series' interval).
    pub interval_s: f64,
    /// One per server, by index.
    pub servers: Vec<ServerUtil>,
}

/// What [`LoadMeter::finish`] reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Load {
    /// Per node name.
    pub nodes: BTreeMap<String, NodeLoad>,
    /// `"<node> <resource>"` of the highest utilisation (ties: the first
    /// node in [`node_order`], then the first resource of
    /// [`Resource::ALL`]); `None` if nothing was used.
    pub bottleneck: Option<String>,
    /// Per-server utilisation over time.
    pub series: UtilSeries,
}

/// The order nodes are reported and ties broken in: servers by index,
/// then workers by index, then the coordinator.
pub fn node_order(n: NodeId) -> (u8, u32) {
    match n {
        NodeId::Server(i) => (0, i),
        NodeId::Worker(i) => (1, i),
        NodeId::Coordinator => (2, 0),
    }
}

/// Shares may exceed 1 by this much (rates summed in floating point).
const SHARE_SLACK: f64 = 1e-9;

/// One bucket of one resource.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Time the resource was busy (the union of the intervals).
    busy_ns: u64,
    /// Share-weighted time: capacity used, in nanoseconds at full rate.
    work_ns: f64,
    /// The first and last instant of any interval in the bucket.
    span: Option<(u64, u64)>,
}

impl Slot {
    /// `[lo, hi)` at `share`, busy only from `busy_from`.
    #[inline]
    fn put(&mut self, lo: u64, hi: u64, share: f64, busy_from: u64) {
        self.work_ns += share * (hi - lo) as f64;
        self.busy_ns += hi.saturating_sub(lo.max(busy_from));
        self.span = Some(match self.span {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }

    /// The part of the bucket's busy time and work that lies before `end`.
    /// Exact when `end` is outside the span or the bucket holds one stretch
    /// at one share; otherwise the bucket's sums are taken as spread
    /// evenly over its span (only the bucket holding the run's end is cut
    /// this way).
    fn before(&self, end: u64) -> f64 {
        match self.span {
            None => 0.0,
            Some((_, last)) if end >= last => 1.0,
            Some((first, _)) if end <= first => 0.0,
            Some((first, last)) => (end - first) as f64 / (last - first) as f64,
        }
    }
}

/// One resource of one node.
#[derive(Clone, Debug, Default)]
struct Track {
    /// The end of the busy time counted so far.
    covered_ns: u64,
    /// Per bucket.
    slots: Vec<Slot>,
    /// The bucket last added to and its bounds (most reports fall in it:
    /// no division then).
    last: (usize, u64, u64),
}

impl Track {
    /// `[from, to)` at `share`: all of it is work; only what lies past
    /// the busy time counted so far is busy time, so overlapping intervals
    /// (concurrent transfers reported one by one) are never counted busy
    /// twice.
    fn add(&mut self, (from, to): (u64, u64), share: f64, dt: u64) {
        let busy_from = from.max(self.covered_ns);
        self.covered_ns = self.covered_ns.max(to);
        let (i, lo, hi) = self.last;
        if from >= lo && to <= hi && i < self.slots.len() {
            // Within the last bucket: as the loop below does it.
            self.slots[i].put(from, to, share, busy_from);
            return;
        }
        let j = (to - 1) / dt;
        self.last = (j as usize, j * dt, (j + 1) * dt);
        for j in from / dt..=(to - 1) / dt {
            let (lo, hi) = (from.max(j * dt), to.min((j + 1) * dt));
            let i = j as usize;
            if self.slots.len() <= i {
                self.slots.resize(i + 1, Slot::default());
            }
            self.slots[i].put(lo, hi, share, busy_from);
        }
    }

    /// Busy time and work (ns) before `end`, and the utilisation of each
    /// bucket up to `end`.
    fn clip(&self, end: u64, dt: u64) -> (f64, f64, Vec<f64>) {
        let (mut busy, mut work) = (0.0, 0.0);
        let buckets = end.div_ceil(dt);
        let util = (0..buckets)
            .map(|j| {
                let slot = self.slots.get(j as usize).copied().unwrap_or_default();
                let kept = slot.before(end);
                busy += slot.busy_ns as f64 * kept;
                work += slot.work_ns * kept;
                let width = end.min((j + 1) * dt) - j * dt;
                slot.work_ns * kept / width as f64
            })
            .collect();
        (busy, work, util)
    }
}

/// One node's meters.
#[derive(Clone, Debug)]
struct NodeMeter {
    id: NodeId,
    bytes_in: u64,
    bytes_out: u64,
    /// Indexed as [`Resource::ALL`].
    tracks: [Track; 3],
}

/// Meters every node's interfaces and CPU over a run.
#[derive(Clone, Debug)]
pub struct LoadMeter {
    interval_ns: u64,
    /// Every node's meters, in the order first seen.
    meters: Vec<NodeMeter>,
    /// Per kind of node (`node_order`'s first part), per index: its place
    /// in `meters` (`usize::MAX`: none yet). A lookup per report, so no
    /// search: the simulator reports every transfer's stretches.
    place: [Vec<usize>; 3],
}

/// `d` in nanoseconds (saturating past 584 years): a 64-bit integer, where
/// `Duration::as_nanos`'s is 128 bits (its division a library call).
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl LoadMeter {
    /// A meter for `nodes` (each reported, used or not) with time-series
    /// buckets of `interval` (the throughput series' interval).
    pub fn new(nodes: &[NodeId], interval: Duration) -> LoadMeter {
        let mut meter = LoadMeter {
            interval_ns: nanos(interval).max(1),
            meters: Vec::new(),
            place: Default::default(),
        };
        for &n in nodes {
            meter.node(n);
        }
        meter
    }

    #[inline]
    fn node(&mut self, id: NodeId) -> &mut NodeMeter {
        let (kind, i) = node_order(id);
        // Every node is known from the start: one lookup.
        if let Some(&m) = self.place[kind as usize].get(i as usize) {
            if m != usize::MAX {
                return &mut self.meters[m];
            }
        }
        self.add_node(id)
    }

    #[cold]
    fn add_node(&mut self, id: NodeId) -> &mut NodeMeter {
        let (kind, i) = node_order(id);
        let slots = &mut self.place[kind as usize];
        if slots.len() <= i as usize {
            slots.resize(i as usize + 1, usize::MAX);
        }
        if slots[i as usize] == usize::MAX {
            slots[i as usize] = self.meters.len();
            self.meters.push(NodeMeter {
                id,
                bytes_in: 0,
                bytes_out: 0,
                tracks: Default::default(),
            });
        }
        &mut self.meters[slots[i as usize]]
    }

    /// During `[from, to)` resource `res` of `node` ran at `share` of its
    /// capacity (an interface carrying transfers whose rates sum to `share`
    /// of its bandwidth; a CPU running a task: 1). Report each resource's
    /// intervals in order of `from`: busy time is their union, counting
    /// only what lies past the intervals reported before (an interval that
    /// starts before their end overlaps them; one that lies wholly inside
    /// adds none), while work adds `share` times the whole length, so
    /// overlapping intervals must be concurrent transfers, not one
    /// transfer reported twice.
    pub fn busy(&mut self, node: NodeId, res: Resource, from: Duration, to: Duration, share: f64) {
        assert!(
            from <= to,
            "{node} {res}: interval ends ({to:?}) before it starts ({from:?})"
        );
        assert!(
            share > 0.0 && share <= 1.0 + SHARE_SLACK,
            "{node} {res}: share {share} of capacity is not in (0, 1]"
        );
        let (a, b) = (nanos(from), nanos(to));
        if a == b {
            return;
        }
        let dt = self.interval_ns;
        self.node(node).tracks[res.index()].add((a, b), share, dt);
    }

    /// A message of `bytes` sent by `from` was delivered to `to`.
    pub fn delivered(&mut self, from: NodeId, to: NodeId, bytes: u64) {
        self.node(from).bytes_out += bytes;
        self.node(to).bytes_in += bytes;
    }

    /// The load of a run that ended at `end`: busy time and work after
    /// `end` are cut off (bytes delivered are all counted).
    pub fn finish(self, end: Duration) -> Load {
        let (end_ns, dt) = (nanos(end), self.interval_ns);
        let of_run = |ns: f64| if end_ns == 0 { 0.0 } else { ns / end_ns as f64 };
        let mut load = Load {
            series: UtilSeries {
                interval_s: Duration::from_nanos(dt).as_secs_f64(),
                servers: Vec::new(),
            },
            ..Load::default()
        };
        let mut top = 0.0;
        let mut meters = self.meters;
        meters.sort_by_key(|m| node_order(m.id));
        for m in meters {
            let mut busy = [0.0; 3];
            let mut util = [0.0; 3];
            let mut series: [Vec<f64>; 3] = Default::default();
            for r in Resource::ALL {
                let (b, w, s) = m.tracks[r.index()].clip(end_ns, dt);
                busy[r.index()] = of_run(b);
                util[r.index()] = of_run(w);
                series[r.index()] = s;
                if util[r.index()] > top {
                    top = util[r.index()];
                    load.bottleneck = Some(format!("{} {r}", m.id));
                }
            }
            let name = m.id.to_string();
            if m.id.server().is_some() {
                load.series.servers.push(ServerUtil {
                    node: name.clone(),
                    util: series,
                });
            }
            load.nodes.insert(
                name,
                NodeLoad {
                    bytes_in: m.bytes_in,
                    bytes_out: m.bytes_out,
                    nic_in_busy: busy[0],
                    nic_out_busy: busy[1],
                    cpu_busy: busy[2],
                    nic_in_util: util[0],
                    nic_out_util: util[1],
                    cpu_util: util[2],
                },
            );
        }
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resource::*;

    const S0: NodeId = NodeId::Server(0);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// A one-server meter with 1 s buckets fed `(from_ms, to_ms, share)`
    /// on `res`, finished at `end_ms`.
    fn one(res: Resource, intervals: &[(u64, u64, f64)], end_ms: u64) -> Load {
        let mut m = LoadMeter::new(&[S0], ms(1000));
        for &(a, b, share) in intervals {
            m.busy(S0, res, ms(a), ms(b), share);
        }
        m.finish(ms(end_ms))
    }

    #[test]
    fn two_halves_at_half_share_are_busy_throughout_at_half_utilisation() {
        let l = one(NicIn, &[(0, 1000, 0.5), (1000, 2000, 0.5)], 2000);
        let s = l.nodes["server-0"];
        assert!(
            close(s.nic_in_busy, 1.0) && close(s.nic_in_util, 0.5),
            "{s:?}"
        );
        assert_eq!((s.nic_out_busy, s.cpu_util), (0.0, 0.0));
        assert_eq!(l.bottleneck.as_deref(), Some("server-0 nic_in"));
    }

    #[test]
    fn gaps_count_as_idle() {
        let s = one(Cpu, &[(0, 1000, 1.0), (3000, 4000, 1.0)], 4000).nodes["server-0"];
        assert!(close(s.cpu_busy, 0.5) && close(s.cpu_util, 0.5), "{s:?}");
    }

    #[test]
    fn overlap_is_busy_once_but_its_work_adds_up() {
        // Two concurrent transfers at half the bandwidth each, overlapping
        // in [1 s, 2 s); a third wholly inside the first.
        let s = one(
            NicOut,
            &[(0, 2000, 0.5), (500, 1500, 0.25), (1000, 3000, 0.5)],
            4000,
        )
        .nodes["server-0"];
        assert!(close(s.nic_out_busy, 0.75), "{s:?}");
        assert!(close(s.nic_out_util, (1.0 + 0.25 + 1.0) / 4.0), "{s:?}");
        // Out of order: an interval starting before the ones reported adds
        // busy time only past their end, never twice.
        let s = one(Cpu, &[(2000, 3000, 1.0), (0, 4000, 1.0)], 4000).nodes["server-0"];
        assert!(close(s.cpu_busy, 0.5) && close(s.cpu_util, 1.25), "{s:?}");
    }

    #[test]
    fn everything_past_the_end_is_cut_off() {
        // On a bucket boundary, mid-bucket, and after the end.
        let l = one(
            Cpu,
            &[(500, 1500, 1.0), (1600, 1800, 1.0), (2500, 2600, 1.0)],
            1000,
        );
        assert!(close(l.nodes["server-0"].cpu_busy, 0.5));
        let l = one(Cpu, &[(500, 1500, 1.0), (2500, 2600, 1.0)], 1250);
        let s = l.nodes["server-0"];
        assert!(close(s.cpu_busy, 0.6) && close(s.cpu_util, 0.6), "{s:?}");
        // The last bucket's utilisation is over its part before the end.
        assert_eq!(l.series.servers[0].util[2].len(), 2);
        assert!(close(l.series.servers[0].util[2][1], 1.0));
        // Several stretches in the bucket holding the end, one across it:
        // the bucket's sums (0.8 s) are cut in proportion to its span (the
        // meter keeps sums, not intervals), so 0.4 s of busy time counts
        // before 0.5 s where 0.3 s is exact. The error is at most one
        // bucket's time over the run's.
        let s = one(
            Cpu,
            &[(0, 100, 1.0), (200, 300, 1.0), (400, 1000, 1.0)],
            500,
        )
        .nodes["server-0"];
        assert!(close(s.cpu_busy, 0.4 / 0.5), "{s:?}");
    }

    #[test]
    fn an_interval_is_spread_over_the_buckets_it_overlaps() {
        let l = one(NicIn, &[(500, 2250, 0.8)], 3000);
        let series = &l.series.servers[0];
        assert_eq!(series.node, "server-0");
        let want = [0.4, 0.8, 0.2];
        assert!(
            series.util[0].iter().zip(want).all(|(a, b)| close(*a, b)),
            "{:?}",
            series.util[0]
        );
        assert!(series.util[1]
            .iter()
            .chain(&series.util[2])
            .all(|u| *u == 0.0));
        assert_eq!(l.series.interval_s, 1.0);
    }

    #[test]
    fn ties_go_to_the_first_node_in_node_order_not_name_order() {
        let nodes = [
            NodeId::Coordinator,
            NodeId::Worker(1),
            NodeId::Server(10),
            NodeId::Server(2),
        ];
        let mut m = LoadMeter::new(&nodes, ms(1000));
        for &n in &nodes {
            m.busy(n, Cpu, ms(0), ms(500), 1.0);
            m.busy(n, NicOut, ms(0), ms(500), 1.0);
        }
        let l = m.finish(ms(1000));
        assert_eq!(l.bottleneck.as_deref(), Some("server-2 nic_out"));
        let servers: Vec<&str> = l.series.servers.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(servers, ["server-2", "server-10"]);
        // Workers come before the coordinator.
        let mut m = LoadMeter::new(&nodes, ms(1000));
        m.busy(NodeId::Coordinator, NicIn, ms(600), ms(700), 1.0);
        m.busy(NodeId::Worker(1), NicIn, ms(600), ms(700), 1.0);
        let l = m.finish(ms(1000));
        assert_eq!(l.bottleneck.as_deref(), Some("worker-1 nic_in"));
    }

    #[test]
    fn deliveries_count_bytes_and_an_idle_run_has_no_bottleneck() {
        let mut m = LoadMeter::new(&[S0, NodeId::Worker(0)], ms(10));
        m.delivered(NodeId::Worker(0), S0, 100);
        m.delivered(S0, NodeId::Worker(0), 40);
        m.delivered(NodeId::Worker(0), S0, 1);
        let l = m.finish(ms(0));
        assert_eq!(l.nodes.len(), 2);
        assert_eq!(
            (l.nodes["server-0"].bytes_in, l.nodes["server-0"].bytes_out),
            (101, 40)
        );
        assert_eq!(l.nodes["worker-0"].bytes_out, 101);
        assert_eq!(l.bottleneck, None);
        assert!(l.series.servers[0].util.iter().all(Vec::is_empty));
        let idle = LoadMeter::new(&[S0], ms(10)).finish(ms(100));
        assert_eq!(idle.bottleneck, None);
        assert_eq!(idle.nodes["server-0"], NodeLoad::default());
    }

    #[test]
    fn resource_names_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::from_name(r.name()), Some(r));
        }
        assert_eq!(Resource::from_name("gpu"), None);
    }
}
