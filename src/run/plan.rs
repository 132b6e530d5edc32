//! The fault plan: the scenario's `[[fault]]`s plus those `[chaos]` draws
//! from the seed, in time order. Host-neutral: a host starts and heals each
//! fault at its time (the simulator's fault task: `sim::faults`).
//!
//! May import: `crate::core`, `crate::scenario`, `super` (run). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio.

use super::chaos;
use crate::core::NodeId;
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
        let mut faults = own_faults(scn);
        let swarm = scn.chaos.as_ref().map(|ch| {
            let (drawn, swarm) = chaos::draw(ch, &scn.cluster, &faults, rng);
            faults.extend(drawn);
            swarm
        });
        Plan::numbered(faults, swarm)
    }

    fn numbered(mut faults: Vec<Planned>, swarm: Option<String>) -> Plan {
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

/// The scenario's `[[fault]]`s, in its order.
fn own_faults(scn: &Scenario) -> Vec<Planned> {
    scn.faults
        .iter()
        .map(|f| Planned {
            id: 0,
            at: f.at,
            kind: f.kind.clone(),
            origin: Origin::Scenario,
        })
        .collect()
}

/// Every node of a cluster.
pub fn all_nodes(servers: u32, workers: u32) -> Vec<NodeId> {
    std::iter::once(NodeId::Coordinator)
        .chain((0..servers).map(NodeId::Server))
        .chain((0..workers).map(NodeId::Worker))
        .collect()
}
