//! Protocol parameters shared by every node of a job.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::bugs::Bugs;
use super::ids::Clock;
use super::keys::RangeMap;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Consistency model of reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Bulk synchronous: a worker at clock `c` sees every update of clocks
    /// `< c`. Exactly SSP with bound 0.
    Bsp,
    /// Stale synchronous with bound `s`: a worker at clock `c` sees every
    /// update of clocks `<= c - s - 1`.
    Ssp(u32),
    /// Asynchronous: reads never wait.
    Asp,
}

impl Consistency {
    /// The staleness bound, or `None` under ASP.
    pub fn bound(self) -> Option<u32> {
        match self {
            Consistency::Bsp => Some(0),
            Consistency::Ssp(s) => Some(s),
            Consistency::Asp => None,
        }
    }
}

/// Training hyperparameters in force over a span of clocks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Read consistency.
    pub consistency: Consistency,
    /// Server-side SGD step size.
    pub learning_rate: f32,
    /// Examples per minibatch.
    pub batch_size: u32,
}

/// Hyperparameters as a function of the clock: `phases[i] = (from, h)`
/// means `h` holds for clocks `from..` until the next phase. Sorted by
/// `from`; the first phase starts at clock 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    phases: Vec<(Clock, Hyper)>,
}

/// A live change (`[[change]]`): the fields set change.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// New learning rate.
    pub learning_rate: Option<f32>,
    /// New SSP bound (for SSP, now or after the change).
    pub staleness: Option<u32>,
    /// New consistency model; `Ssp` takes its bound from `staleness`, else
    /// from the bound in force (or `default_bound` if none).
    pub consistency: Option<Consistency>,
    /// New batch size.
    pub batch_size: Option<u32>,
    /// New hidden widths of a multilayer perceptron (a live widening,
    /// [`super::widen`]).
    #[serde(default)]
    pub hidden: Option<Widths>,
}

/// Most hidden layers a widening names (the perceptron's own limit).
pub const MAX_LAYERS: usize = 8;

/// The hidden widths of a widening, input side first: a small copyable
/// list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Widths {
    n: u8,
    w: [u32; MAX_LAYERS],
}

impl Widths {
    /// Widths `w` (`None` if there are more than [`MAX_LAYERS`]).
    pub fn new(w: &[u32]) -> Option<Widths> {
        let mut out = Widths {
            n: w.len() as u8,
            w: [0; MAX_LAYERS],
        };
        out.w.get_mut(..w.len())?.copy_from_slice(w);
        Some(out)
    }

    /// The widths.
    pub fn get(&self) -> &[u32] {
        &self.w[..self.n as usize]
    }
}

impl std::fmt::Debug for Widths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.get()).finish()
    }
}

/// A change's debug form names `hidden` only when it is set, so that a
/// hyperparameter change reads (and its messages digest) as before
/// widenings existed.
impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Change");
        d.field("learning_rate", &self.learning_rate)
            .field("staleness", &self.staleness)
            .field("consistency", &self.consistency)
            .field("batch_size", &self.batch_size);
        if let Some(h) = &self.hidden {
            d.field("hidden", h);
        }
        d.finish()
    }
}

/// Committed changes `(boundary, change)` numbered from 1, from number
/// `after + 1` on: `(k, boundary, change)`.
pub fn numbered(changes: &[(Clock, Change)], after: u64) -> Vec<(u64, Clock, Change)> {
    changes
        .iter()
        .enumerate()
        .skip(after as usize)
        .map(|(i, &(b, c))| (i as u64 + 1, b, c))
        .collect()
}

impl Change {
    /// The `change_applied` event of `node` adopting change `k` at
    /// `boundary`.
    pub fn event(&self, node: super::ids::NodeId, k: u64, boundary: Clock) -> super::event::Event {
        super::event::Event::ChangeApplied {
            node,
            change: k,
            clock: boundary,
            learning_rate: self.learning_rate.map(super::event::Bits),
            staleness: self.staleness,
            consistency: self.consistency.map(|c| {
                match c {
                    Consistency::Bsp => "bsp",
                    Consistency::Ssp(_) => "ssp",
                    Consistency::Asp => "asp",
                }
                .into()
            }),
            batch_size: self.batch_size,
            hidden: super::event::Added(self.hidden.map(|h| h.get().to_vec())),
        }
    }

    /// Whether this change widens the model.
    pub fn widens(&self) -> bool {
        self.hidden.is_some()
    }

    /// The hyperparameters after applying this change to `h`.
    pub fn apply(&self, h: &Hyper, default_bound: u32) -> Hyper {
        let bound_now = match h.consistency {
            Consistency::Ssp(s) => s,
            _ => default_bound,
        };
        let consistency = match (self.consistency, self.staleness) {
            (Some(Consistency::Ssp(_)), s) => Consistency::Ssp(s.unwrap_or(bound_now)),
            (Some(c), _) => c,
            (None, Some(s)) => match h.consistency {
                Consistency::Ssp(_) => Consistency::Ssp(s),
                other => other,
            },
            (None, None) => h.consistency,
        };
        Hyper {
            consistency,
            learning_rate: self.learning_rate.unwrap_or(h.learning_rate),
            batch_size: self.batch_size.unwrap_or(h.batch_size),
        }
    }
}

impl Schedule {
    /// A schedule with one phase from clock 0.
    pub fn constant(h: Hyper) -> Schedule {
        Schedule {
            phases: vec![(Clock(0), h)],
        }
    }

    /// Hyperparameters in force at `clock`.
    pub fn at(&self, clock: Clock) -> &Hyper {
        let i = self.phases.partition_point(|(from, _)| *from <= clock);
        &self.phases[i.max(1) - 1].1
    }

    /// Applies `change` from clock `from` on (clocks before keep their
    /// hyperparameters; the change is layered over every later phase).
    pub fn with_change(&self, from: Clock, change: &Change, default_bound: u32) -> Schedule {
        let mut phases: Vec<(Clock, Hyper)> = Vec::new();
        for &(start, h) in &self.phases {
            if start < from {
                phases.push((start, h));
            }
        }
        let base = *self.at(from);
        phases.push((from, change.apply(&base, default_bound)));
        for &(start, h) in &self.phases {
            if start > from {
                phases.push((start, change.apply(&h, default_bound)));
            }
        }
        Schedule { phases }
    }

    /// A schedule switching to `later` at clock `from` (for tests that
    /// compare a live change with a schedule configured from the start).
    pub fn two_phases(first: Hyper, from: Clock, later: Hyper) -> Schedule {
        Schedule {
            phases: vec![(Clock(0), first), (from, later)],
        }
    }
}

/// Everything a node needs to know about its job.
#[derive(Clone, Debug)]
pub struct ProtocolConfig {
    /// Number of server nodes (and of key ranges).
    pub servers: u32,
    /// Number of workers.
    pub workers: u32,
    /// Copies of each key range.
    pub replication: u32,
    /// The key ranges.
    pub ranges: RangeMap,
    /// Clocks each worker computes.
    pub clocks: u32,
    /// Hyperparameters over clocks.
    pub schedule: Schedule,
    /// First retry timeout of a worker request; doubles on every retry up
    /// to 8 times this.
    pub request_timeout: Duration,
    /// Period of heartbeats to the coordinator.
    pub heartbeat_interval: Duration,
    /// Silence after which the coordinator declares a node dead.
    pub heartbeat_timeout: Duration,
    /// Tails serve reads only under a lease from the coordinator.
    pub read_leases: bool,
    /// Servers checkpoint their ranges this often (none: never).
    pub checkpoint_every: Option<Duration>,
    /// Live changes (`[[change]]`): when the coordinator applies each.
    pub changes: Vec<(Duration, Change)>,
    /// The SSP bound a change to `ssp` takes when none is in force.
    pub default_bound: u32,
    /// How pushes and pull answers are encoded (`[compression]`).
    pub compression: super::codec::Compression,
    /// Planted bugs switched on (normally none).
    pub bugs: Bugs,
    /// The parameters' initial values, indexed by key (`None`: zeros, the
    /// linear models' start). Every replica that starts from nothing — a
    /// server's ranges at job start, a range that lost every replica and
    /// checkpoint — starts from its range's slice of these.
    pub initial: Option<Arc<[f32]>>,
    /// The live widenings (`[[change]] hidden`): the model and key layout
    /// after each ([`super::widen`]).
    pub widen: super::widen::Plan,
}

impl ProtocolConfig {
    /// The initial values of `keys` (a range's keys), in key order.
    pub fn initial_params(&self, keys: Range<u32>) -> Vec<f32> {
        match &self.initial {
            None => vec![0.0; keys.len()],
            Some(v) => v[keys.start as usize..keys.end as usize].to_vec(),
        }
    }

    /// One server holding one range of `n` keys for one ASP worker, with
    /// timeouts and heartbeats too long to matter: a server to drive by
    /// hand (benchmarks, calibration, codec tests).
    pub fn single_server(n: u32) -> ProtocolConfig {
        ProtocolConfig {
            servers: 1,
            workers: 1,
            replication: 1,
            ranges: RangeMap::new(n, 1),
            clocks: u32::MAX,
            schedule: Schedule::constant(Hyper {
                consistency: Consistency::Asp,
                learning_rate: 0.01,
                batch_size: 1,
            }),
            request_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3600),
            heartbeat_timeout: Duration::from_secs(7200),
            read_leases: false,
            checkpoint_every: None,
            changes: Vec::new(),
            default_bound: 0,
            compression: Default::default(),
            bugs: Bugs::NONE,
            initial: None,
            widen: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_picks_the_phase_in_force() {
        let h = |lr| Hyper {
            consistency: Consistency::Bsp,
            learning_rate: lr,
            batch_size: 1,
        };
        let mut s = Schedule::constant(h(1.0));
        s.phases.push((Clock(10), h(2.0)));
        assert_eq!(s.at(Clock(0)).learning_rate, 1.0);
        assert_eq!(s.at(Clock(9)).learning_rate, 1.0);
        assert_eq!(s.at(Clock(10)).learning_rate, 2.0);
        assert_eq!(s.at(Clock(99)).learning_rate, 2.0);
    }
}
