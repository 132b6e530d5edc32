//! Property tests of the consistency gate, driving a real `core::Server`
//! with random interleavings of pulls, pushes and clock advances from
//! several workers (no simulator: the sans-IO core alone).
//!
//! Properties: (1) no answered pull breaks the bound: a pull for clock `c`
//! under bound `s` is answered only after every worker's pushes of clocks
//! `<= c - s - 1` were delivered; (2) no pull is held forever: the run
//! always completes (the slowest worker can always read), and nothing is
//! left waiting at the end. A planted gate bug must break property (1).

use proptest::prelude::*;
use pssim::core::codec::Payload;
use pssim::core::{
    Bug, Bugs, Clock, Command, Consistency, Epoch, Event, Hyper, Keys, Message, NodeId,
    ProtocolConfig, RangeMap, Schedule, Seq, Server,
};
use std::sync::Arc;
use std::time::Duration;

fn config(workers: u32, consistency: Consistency, bugs: Bugs) -> Arc<ProtocolConfig> {
    Arc::new(ProtocolConfig {
        servers: 1,
        workers,
        replication: 1,
        ranges: RangeMap::new(4, 1),
        clocks: 1000,
        schedule: Schedule::constant(Hyper {
            consistency,
            learning_rate: 0.1,
            batch_size: 1,
        }),
        request_timeout: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(500),
        read_leases: false,
        checkpoint_every: None,
        changes: Vec::new(),
        default_bound: 3,
        compression: Default::default(),
        bugs,
        initial: None,
        widen: Default::default(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Pulling,
    Pushing,
}

/// Result of one interleaving: bound violations seen, whether every
/// worker finished, and pulls left unanswered.
struct Run {
    violations: Vec<String>,
    finished: bool,
}

/// Drives `workers` workers for `clocks` clocks; `order` picks which worker
/// acts next (indices taken modulo the workers that can act).
fn drive(workers: u32, clocks: u32, consistency: Consistency, bugs: Bugs, order: &[usize]) -> Run {
    let cfg = config(workers, consistency, bugs);
    let bound = consistency.bound();
    let mut server = Server::new(0, cfg);
    let mut clock = vec![0u32; workers as usize];
    let mut phase = vec![Phase::Pulling; workers as usize];
    let mut awaiting = vec![false; workers as usize];
    // pushed[w] = clocks of w whose pushes were delivered to the server.
    let mut pushed = vec![0u32; workers as usize];
    let mut violations = Vec::new();
    let mut out = Vec::new();
    let mut step = 0usize;
    let now = Duration::ZERO;
    loop {
        let ready: Vec<usize> = (0..workers as usize)
            .filter(|&w| clock[w] < clocks && !awaiting[w])
            .collect();
        if ready.is_empty() {
            break;
        }
        let w = ready[order.get(step).copied().unwrap_or(0) % ready.len()];
        step += 1;
        let worker = NodeId::Worker(w as u32);
        let msg = match phase[w] {
            Phase::Pulling => Message::PullReq {
                epoch: Epoch(1),
                range: 0,
                worker: w as u32,
                incarnation: 0,
                clock: Clock(clock[w]),
                keys: Keys::All,
                schedule: 0,
                base: 0,
            },
            Phase::Pushing => {
                pushed[w] = clock[w] + 1;
                Message::PushReq {
                    epoch: Epoch(1),
                    range: 0,
                    worker: w as u32,
                    seq: Seq {
                        incarnation: 0,
                        n: u64::from(clock[w]),
                    },
                    clock: Clock(clock[w]),
                    keys: Keys::All,
                    values: Payload::Dense(vec![0.5; 4].into()),
                }
            }
        };
        awaiting[w] = true;
        server.on_message(now, worker, msg, &mut out);
        for cmd in out.drain(..) {
            match cmd {
                Command::Emit(Event::PullAnswered {
                    worker: r,
                    clock: c,
                    ..
                }) => {
                    if let Some(s) = bound {
                        for (v, &p) in pushed.iter().enumerate() {
                            if c.0 > s && p < c.0 - s {
                                violations.push(format!(
                                    "worker-{r} read clock {c} (s={s}) with worker-{v} at {p} pushed clocks"
                                ));
                            }
                        }
                    }
                }
                Command::Send {
                    to: NodeId::Worker(r),
                    msg: Message::PullResp { clock: c, .. },
                } => {
                    let r = r as usize;
                    assert_eq!(phase[r], Phase::Pulling);
                    assert_eq!(c.0, clock[r]);
                    phase[r] = Phase::Pushing;
                    awaiting[r] = false;
                }
                Command::Send {
                    to: NodeId::Worker(r),
                    msg: Message::PushAck { clock: c, .. },
                } => {
                    let r = r as usize;
                    assert_eq!(phase[r], Phase::Pushing);
                    assert_eq!(c.0, clock[r]);
                    phase[r] = Phase::Pulling;
                    clock[r] += 1;
                    awaiting[r] = false;
                }
                _ => {}
            }
        }
    }
    Run {
        violations,
        finished: clock.iter().all(|&c| c == clocks),
    }
}

fn consistency_strategy() -> impl Strategy<Value = Consistency> {
    prop_oneof![
        Just(Consistency::Bsp),
        (0u32..5).prop_map(Consistency::Ssp),
        Just(Consistency::Asp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_gate_never_breaks_the_bound_and_never_holds_a_pull_forever(
        workers in 1u32..6,
        clocks in 1u32..12,
        consistency in consistency_strategy(),
        order in proptest::collection::vec(0usize..1000, 0..200),
    ) {
        let run = drive(workers, clocks, consistency, Bugs::NONE, &order);
        prop_assert!(run.violations.is_empty(), "{:?}", run.violations);
        prop_assert!(run.finished, "a pull was held forever: not every worker finished");
    }
}

/// The property above must be able to fail: with the gate's planted bugs,
/// some interleaving breaks the bound.
#[test]
fn a_broken_gate_is_caught() {
    for bug in [Bug::GateOffByOne, Bug::GateIgnoresBound] {
        let caught = (0..200u64).any(|seed| {
            // A deterministic, varied interleaving per seed.
            let order: Vec<usize> = (0..200)
                .map(|i| ((seed * 7919 + i * 104729) % 997) as usize)
                .collect();
            !drive(3, 10, Consistency::Ssp(1), Bugs::NONE.with(bug), &order)
                .violations
                .is_empty()
        });
        assert!(caught, "{bug} was not caught");
    }
}
