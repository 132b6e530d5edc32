//! Protocol parameters shared by every node of a job.

use super::bugs::Bugs;
use super::ids::Clock;
use super::keys::RangeMap;
use std::time::Duration;

/// Consistency model of reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    phases: Vec<(Clock, Hyper)>,
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
    /// Servers checkpoint their ranges this often (none: never).
    pub checkpoint_every: Option<Duration>,
    /// Planted bugs switched on (normally none).
    pub bugs: Bugs,
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
