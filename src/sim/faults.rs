//! The fault timeline: the scenario's `[[fault]]`s plus those `[chaos]`
//! draws, each started and healed at its time by the fault task.

use super::chaos;
use super::world::{lock, Shared, World};
use crate::core::{Event, NodeId};
use crate::scenario::{FaultKind, Scenario};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Duration;

/// Where a fault came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[fault]]` number `i` of the scenario.
    Scenario,
    /// Drawn by `[chaos]`.
    Chaos,
}

/// A fault on the run's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Identifies the fault (its position on the plan).
    pub id: u64,
    /// When it starts.
    pub at: Duration,
    /// What it is.
    pub kind: FaultKind,
    /// Where it came from.
    pub origin: Origin,
}

impl Planned {
    /// When it heals, if it does.
    pub fn end(&self) -> Option<Duration> {
        self.kind.duration().map(|d| self.at + d)
    }

    /// Human-readable parameters.
    pub fn detail(&self) -> String {
        match &self.kind {
            FaultKind::Crash { restart_after, .. } => match restart_after {
                Some(d) => format!("restart after {}", humantime::format_duration(*d)),
                None => "stays down".into(),
            },
            FaultKind::Partition { groups, .. } => groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
                .join(" | "),
            FaultKind::Clog { from, to, .. } => format!("{from} -> {to}"),
            FaultKind::Loss { rate, .. } => format!("rate {rate}"),
            FaultKind::Straggler { slowdown, .. } => format!("{slowdown}x slower"),
            FaultKind::SlowLink {
                latency,
                bandwidth_bps,
                ..
            } => {
                let bw = bandwidth_bps.map_or(String::new(), |b| format!(", {:.3} Mbps", b / 1e6));
                format!("+{}{bw}", humantime::format_duration(*latency))
            }
        }
    }
}

/// The plan of a run: every fault, and when the last one heals.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Faults by start time.
    pub faults: Vec<Planned>,
    /// What chaos chose for this seed (swarm testing), if chaos is on.
    pub swarm: Option<String>,
}

impl Plan {
    /// The scenario's faults and the chaos drawn with `rng`.
    pub fn new(scn: &Scenario, rng: &mut ChaCha8Rng) -> Plan {
        let mut faults: Vec<Planned> = scn
            .faults
            .iter()
            .map(|f| Planned {
                id: 0,
                at: f.at,
                kind: f.kind.clone(),
                origin: Origin::Scenario,
            })
            .collect();
        let swarm = scn.chaos.as_ref().map(|ch| {
            let (drawn, swarm) = chaos::draw(ch, &scn.cluster, &faults, rng);
            faults.extend(drawn);
            swarm
        });
        faults.sort_by_key(|f| f.at);
        for (i, f) in faults.iter_mut().enumerate() {
            f.id = i as u64;
        }
        Plan { faults, swarm }
    }

    /// When the last fault that heals has healed, and whether some fault
    /// that can stop progress for good never heals (a partition or clog
    /// without duration; total loss): then liveness cannot be judged.
    pub fn last_heal(&self) -> (Duration, bool) {
        let mut t = Duration::ZERO;
        let mut forever = false;
        for f in &self.faults {
            match f.end() {
                Some(e) => t = t.max(e),
                None => {
                    t = t.max(f.at);
                    forever |= match f.kind {
                        FaultKind::Partition { .. } | FaultKind::Clog { .. } => true,
                        FaultKind::Loss { rate, .. } => rate >= 1.0,
                        _ => false,
                    };
                }
            }
        }
        (t, forever)
    }
}

/// The fault task: walks the plan in time order.
pub async fn inject(shared: Shared, plan: Plan) {
    let mut actions: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, f) in plan.faults.iter().enumerate() {
        actions.push((f.at, true, i));
        if let Some(end) = f.end() {
            actions.push((end, false, i));
        }
    }
    // Heals before starts at the same instant; then plan order.
    actions.sort_by_key(|&(t, start, i)| (t, start, i));
    let start = lock(&shared).start;
    for (t, is_start, i) in actions {
        super::inbox::sleep_exact(start + t).await;
        let mut w = lock(&shared);
        let f = &plan.faults[i];
        if is_start {
            begin(&mut w, f);
        } else {
            heal(&mut w, f);
        }
    }
}

fn begin(w: &mut World, f: &Planned) {
    w.record(Event::FaultStart {
        fault: f.kind.name().into(),
        nodes: f.kind.nodes(),
        detail: f.detail(),
    });
    match &f.kind {
        FaultKind::Crash {
            node,
            restart_after,
        } => w.crash(*node, restart_after.is_some()),
        FaultKind::Partition { groups, .. } => w.net.add_partition(f.id, groups),
        FaultKind::Clog { from, to, .. } => w.net.add_clog(f.id, *from, *to),
        FaultKind::Loss { rate, .. } => w.net.add_loss(f.id, *rate),
        FaultKind::Straggler { node, slowdown, .. } => {
            w.compute.add_straggler(f.id, *node, *slowdown)
        }
        FaultKind::SlowLink {
            between,
            latency,
            bandwidth_bps,
            ..
        } => w
            .net
            .add_slow_link(f.id, between[0], between[1], *latency, *bandwidth_bps),
    }
}

fn heal(w: &mut World, f: &Planned) {
    match &f.kind {
        FaultKind::Crash { node, .. } => w.restart(*node),
        FaultKind::Straggler { node, .. } => {
            w.compute.heal(f.id);
            w.restraggle(*node);
        }
        _ => {
            if let Some((from, to)) = w.net.heal(f.id) {
                w.release(from, to);
            }
        }
    }
    w.record(Event::FaultEnd {
        fault: f.kind.name().into(),
        nodes: f.kind.nodes(),
    });
}

/// Every node of a cluster.
pub fn all_nodes(servers: u32, workers: u32) -> Vec<NodeId> {
    std::iter::once(NodeId::Coordinator)
        .chain((0..servers).map(NodeId::Server))
        .chain((0..workers).map(NodeId::Worker))
        .collect()
}
