//! The cost model's host-neutral part (docs/cost-model.md): what a
//! worker's minibatch costs and how much work a message is for a server's
//! CPU, from a scenario's `[compute]`. The simulator turns these into
//! simulated time (`sim::compute` for workers; the server CPU queue for
//! servers); the network's part lives with the network model.
//!
//! - A minibatch: `step_time`, or, with `worker_gflops` and no
//!   `step_time`, `round(flops / worker_gflops)` nanoseconds (FLOPs from
//!   `ml::Model::batch_flops`), then times the host's jitter and
//!   straggler slowdown.
//! - A message at a server: [`cpu_values`] values at `server_apply_rate`
//!   values per second ([`CostModel::cpu_time`]).
//!
//! May import: `crate::core`, `crate::scenario`. Never: a host
//! (`crate::sim`, `crate::net`), madsim, tokio.

use crate::core::codec::Payload;
use crate::core::Message;
use crate::scenario::{Compute, StepCost};
use std::time::Duration;

/// The cost figures of a run, the same for every host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    /// What one minibatch costs a worker at normal speed.
    pub step: StepCost,
    /// Each step's time is multiplied by a factor uniform in
    /// `[1 - jitter, 1 + jitter]` (the host draws it).
    pub jitter: f64,
    /// Values per second a server applies or copies out.
    pub server_apply_rate: f64,
}

impl CostModel {
    /// The cost model of a scenario's `[compute]`.
    pub fn new(c: &Compute) -> CostModel {
        CostModel {
            step: c.step(),
            jitter: c.jitter,
            server_apply_rate: c.server_apply_rate,
        }
    }

    /// A minibatch of `flops` floating-point operations at normal speed,
    /// before jitter: `step_time`, or `round(flops / worker_gflops)` ns.
    pub fn step_work(&self, flops: u64) -> Duration {
        match self.step {
            StepCost::Fixed(t) => t,
            StepCost::Flops { gflops } => {
                Duration::from_nanos((flops as f64 / gflops).round() as u64)
            }
        }
    }

    /// CPU time of `values` values at a server: `round(values * 10^9 /
    /// server_apply_rate)` ns.
    pub fn cpu_time(&self, values: u64) -> Duration {
        Duration::from_nanos((values as f64 * 1e9 / self.server_apply_rate).round() as u64)
    }

    /// CPU time of a message at a server: [`cpu_values`] at
    /// `server_apply_rate`.
    pub fn message_cpu_time(&self, msg: &Message) -> Duration {
        self.cpu_time(cpu_values(msg))
    }
}

/// The values a server applies or copies out for `msg`: a push's gradient
/// (`PushReq`; `ChainPush` of a push entry), a pull answer's values
/// (`PullResp`), a snapshot's parameters (`Snapshot`); 0 for any other
/// message (control messages cost no per-value work).
pub fn cpu_values(msg: &Message) -> u64 {
    match msg {
        Message::PushReq { values, .. } | Message::PullResp { values, .. } => {
            payload_values(values)
        }
        Message::ChainPush { entry, .. } => entry.push().map_or(0, |p| payload_values(&p.values)),
        Message::Snapshot { state, .. } => state.params.len() as u64,
        _ => 0,
    }
}

/// The entries of a payload a server touches: every float of a dense one,
/// the entries sent of a sparse or top-k one, every position of a
/// quantized one (each is decoded and applied).
pub fn payload_values(p: &Payload) -> u64 {
    match p {
        Payload::Dense(v) => v.len() as u64,
        Payload::Sparse { vals, .. } | Payload::Kept { vals, .. } => vals.len() as u64,
        Payload::Quantized { len, .. } => u64::from(*len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::msg::{Entry, Op, Push, RangeState};
    use crate::core::{Clock, Epoch, Keys, Membership, Seq};

    fn push(values: Payload) -> Message {
        Message::PushReq {
            epoch: Epoch(1),
            range: 0,
            worker: 0,
            seq: Seq {
                incarnation: 0,
                n: 1,
            },
            clock: Clock(0),
            keys: Keys::All,
            values,
        }
    }

    #[test]
    fn values_count_what_a_server_touches() {
        assert_eq!(
            cpu_values(&push(Payload::Dense(vec![0.5; 100].into()))),
            100
        );
        let sparse = Payload::Sparse {
            len: 1000,
            idx: vec![1, 7, 9],
            vals: vec![1.0; 3],
        };
        assert_eq!(cpu_values(&push(sparse.clone())), 3);
        let kept = Payload::Kept {
            of: 500,
            vals: vec![1.0; 5],
        };
        assert_eq!(cpu_values(&push(kept)), 5);
        let quantized = Payload::Quantized {
            len: 64,
            bits: 4,
            scale: 1.0,
            codes: vec![0; 32],
        };
        assert_eq!(cpu_values(&push(quantized)), 64);
        let resp = Message::PullResp {
            range: 0,
            clock: Clock(3),
            values: sparse,
            schedule: Vec::new(),
            held: 0,
            base: 0,
        };
        assert_eq!(cpu_values(&resp), 3);
        let entry = |op| Message::ChainPush {
            epoch: Epoch(1),
            range: 0,
            entry: Entry { index: 4, op },
        };
        let p = Push {
            worker: 1,
            seq: Seq {
                incarnation: 0,
                n: 2,
            },
            clock: Clock(1),
            keys: Keys::All,
            values: Payload::Dense(vec![0.0; 42].into()),
            lr: 0.1,
        };
        assert_eq!(cpu_values(&entry(Op::Push(p))), 42);
        assert_eq!(
            cpu_values(&entry(Op::Membership(Membership::initial(2)))),
            0
        );
        let snapshot = Message::Snapshot {
            range: 0,
            req: 1,
            id: "server-0.0.1".into(),
            state: RangeState {
                params: vec![0.0; 77].into(),
                table: Vec::new(),
                dedup: Vec::new(),
                applied: 0,
                applied_digest: 0,
                log_index: 0,
                membership: Membership::initial(2),
                widened: 0,
            },
        };
        assert_eq!(cpu_values(&snapshot), 77);
        let ack = Message::PushAck {
            range: 0,
            seq: Seq {
                incarnation: 0,
                n: 1,
            },
            clock: Clock(0),
        };
        assert_eq!(cpu_values(&ack), 0);
    }

    #[test]
    fn times_follow_the_documented_formulas() {
        let mut c = Compute {
            step_time: None,
            worker_gflops: Some(10.0),
            ..Compute::default()
        };
        c.server_apply_rate = 2e9;
        let m = CostModel::new(&c);
        // 2 * 10^7 FLOPs at 10 GFLOP/s: 2 ms; double the work, double the time.
        assert_eq!(m.step_work(20_000_000), Duration::from_millis(2));
        assert_eq!(m.step_work(40_000_000), Duration::from_millis(4));
        assert_eq!(m.step_work(126), Duration::from_nanos(13));
        // 10^6 values at 2 * 10^9 values/s: 0.5 ms.
        assert_eq!(m.cpu_time(1_000_000), Duration::from_micros(500));
        assert_eq!(
            m.message_cpu_time(&push(Payload::Dense(vec![0.0; 2000].into()))),
            Duration::from_micros(1)
        );
        // step_time wins over worker_gflops; the default is 20ms.
        c.step_time = Some(Duration::from_millis(7));
        assert_eq!(
            CostModel::new(&c).step_work(1 << 40),
            Duration::from_millis(7)
        );
        let d = CostModel::new(&Compute::default());
        assert_eq!(d.step_work(12345), Duration::from_millis(20));
    }
}
