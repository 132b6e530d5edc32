//! Unit tests of the coordinator: failover and catch-up sessions,
//! removal, admission, recovery from durable state.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::*;
use crate::core::ids::Epoch;
use crate::core::{Bugs, Consistency, Hyper, RangeMap, Schedule};

fn cfg() -> Arc<ProtocolConfig> {
    Arc::new(ProtocolConfig {
        servers: 2,
        workers: 2,
        replication: 1,
        ranges: RangeMap::new(10, 2),
        clocks: 100,
        schedule: Schedule::constant(Hyper {
            consistency: Consistency::Ssp(1),
            learning_rate: 0.1,
            batch_size: 1,
        }),
        request_timeout: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(50),
        heartbeat_timeout: Duration::from_millis(200),
        read_leases: false,
        checkpoint_every: None,
        changes: Vec::new(),
        default_bound: 3,
        compression: Default::default(),
        bugs: Bugs::NONE,
        initial: None,
        widen: Default::default(),
    })
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn hb(
    c: &mut Coordinator,
    now: u64,
    w: WorkerId,
    inc: u32,
    clock: u32,
    joining: bool,
) -> Vec<Command> {
    let mut out = Vec::new();
    let msg = Message::WorkerHeartbeat {
        worker: w,
        incarnation: inc,
        clock: Clock(clock),
        joining,
        epoch: Epoch(1),
        done: false,
    };
    c.on_message(ms(now), NodeId::Worker(w), msg, &mut out);
    out
}

fn server_hb(c: &mut Coordinator, now: u64, s: u32, held: &[u32]) -> Vec<Command> {
    let mut out = Vec::new();
    let msg = Message::ServerHeartbeat {
        epoch: c.view().epoch,
        membership: c.membership().version,
        sent: ms(now),
        held: held.to_vec(),
        schedule: 0,
        fallback: Vec::new(),
        incarnation: 0,
        wants: crate::core::Clock(0),
    };
    c.on_message(ms(now), NodeId::Server(s), msg, &mut out);
    out
}

fn replicated() -> Arc<ProtocolConfig> {
    let mut cfg = (*cfg()).clone();
    cfg.servers = 3;
    cfg.replication = 2;
    cfg.ranges = RangeMap::new(30, 3);
    Arc::new(cfg)
}

#[test]
fn a_silent_server_leaves_its_chains_and_a_restarted_one_catches_up_first() {
    let mut c = Coordinator::new(replicated(), None);
    let mut out = Vec::new();
    c.on_start(ms(0), &mut out);
    // Server 1 (head of range 1, backup of range 0) goes silent.
    server_hb(&mut c, 150, 0, &[0, 2]);
    server_hb(&mut c, 150, 2, &[1, 2]);
    out.clear();
    c.on_timer(ms(250), Timer::FailureCheck, &mut out);
    let s = NodeId::Server;
    assert_eq!(c.view().epoch, Epoch(2));
    assert_eq!(
        c.view().chains,
        vec![vec![s(0)], vec![s(2)], vec![s(2), s(0)]]
    );
    assert!(events(&out).iter().any(|e| matches!(e, Event::View { .. })));
    // It comes back empty: asked to copy ranges 0 and 1 from their tails,
    // and not in any chain until it reports having done so.
    let out = server_hb(&mut c, 300, 1, &[]);
    let asked: Vec<(u32, NodeId)> = out
        .iter()
        .filter_map(|c| match c {
            Command::Send {
                msg: Message::CatchUp { range, from, .. },
                ..
            } => Some((*range, from.unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(0, s(0)), (1, s(2))]);
    assert_eq!(c.view().epoch, Epoch(2));
    let session = |out: &[Command], range: u32| {
        out.iter()
            .find_map(|c| match c {
                Command::Send {
                    msg:
                        Message::CatchUp {
                            range: r, session, ..
                        },
                    ..
                } if *r == range => Some(*session),
                _ => None,
            })
            .unwrap()
    };
    let (s0, s1) = (session(&out, 0), session(&out, 1));
    // A report for an older session is ignored.
    let mut stale = Vec::new();
    let join = |range, from, session| Message::JoinReady {
        membership: u64::MAX,
        range,
        from,
        session,
        schedule: 0,
    };
    c.on_message(ms(310), s(1), join(1, s(2), 0), &mut stale);
    assert_eq!(c.view().chains[1], vec![s(2)]);
    let mut out = Vec::new();
    c.on_message(ms(320), s(1), join(1, s(2), s1), &mut out);
    assert_eq!(c.view().chains[1], vec![s(2), s(1)], "appended as the tail");
    // A copy from a replica that is no longer the tail is refused.
    let mut out = Vec::new();
    c.on_message(ms(330), s(1), join(0, s(2), s0), &mut out);
    assert_eq!(c.view().chains[0], vec![s(0)]);
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Send {
            msg: Message::CatchUp { range: 0, .. },
            ..
        }
    )));
}

fn events(out: &[Command]) -> Vec<&Event> {
    out.iter()
        .filter_map(|c| match c {
            Command::Emit(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn silent_workers_are_removed() {
    let mut c = Coordinator::new(cfg(), None);
    let mut out = Vec::new();
    c.on_start(ms(0), &mut out);
    hb(&mut c, 150, 0, 0, 3, false);
    server_hb(&mut c, 150, 0, &[0]);
    server_hb(&mut c, 150, 1, &[1]);
    out.clear();
    c.on_timer(ms(250), Timer::FailureCheck, &mut out);
    assert_eq!(
        events(&out),
        vec![&Event::WorkerRemoved {
            worker: 1,
            incarnation: 0
        }]
    );
    assert!(!c.membership().members.contains_key(&1));
    assert_eq!(c.membership().version, 2);
    assert!(out.iter().any(|c| matches!(c, Command::Persist(_))));
}

#[test]
fn a_restarted_worker_is_admitted_above_what_the_replicas_hold_after_every_server_applied_it() {
    let mut c = Coordinator::new(cfg(), None);
    let mut out = Vec::new();
    c.on_start(ms(0), &mut out);
    hb(&mut c, 10, 0, 0, 7, false);
    let out = hb(&mut c, 20, 1, 1, 0, true);
    assert_eq!(
        events(&out),
        vec![&Event::WorkerRemoved {
            worker: 1,
            incarnation: 0
        }],
        "the old life goes at once; no admission before the servers hold it"
    );
    // Phase one: the old life is fenced off, the new one not yet counted.
    let v1 = c.membership().version;
    assert!(!c.membership().members.contains_key(&1));
    assert!(c.membership().fenced(1, 0, Clock(100)));
    assert!(!c.membership().fenced(1, 1, Clock(0)));
    let ack = |c: &mut Coordinator, t, s, version, done: Vec<(u32, u32, Clock)>| {
        let mut out = Vec::new();
        c.on_message(
            ms(t),
            NodeId::Server(s),
            Message::MembershipAck { version, done },
            &mut out,
        );
        out
    };
    // The replicas hold 9 clocks of the old life (it got further than its
    // last heartbeat said): the new life starts there, not at 7.
    assert!(events(&ack(&mut c, 30, 0, v1, vec![(1, 0, Clock(9))])).is_empty());
    assert_eq!(c.membership().version, v1, "waits for every server");
    let out = ack(&mut c, 31, 1, v1, vec![(1, 0, Clock(8))]);
    assert!(events(&out).is_empty());
    let v2 = c.membership().version;
    assert_eq!(v2, v1 + 1);
    let member = Member {
        incarnation: 1,
        start_clock: Clock(9),
    };
    assert_eq!(c.membership().members[&1], member);
    assert!(c.membership().fenced(1, 1, Clock(8)));
    // Phase two: announced once every server's replicas count it.
    assert!(events(&ack(&mut c, 40, 0, v2, vec![])).is_empty());
    let out = ack(&mut c, 41, 1, v2, vec![]);
    assert_eq!(
        events(&out),
        vec![&Event::WorkerAdmitted {
            worker: 1,
            incarnation: 1,
            clock: Clock(9)
        }]
    );
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Send {
            to: NodeId::Worker(1),
            msg: Message::Admit {
                start_clock: Clock(9),
                ..
            }
        }
    )));
}

#[test]
fn a_recovered_coordinator_keeps_its_versions() {
    let mut c = Coordinator::new(cfg(), None);
    let mut out = Vec::new();
    c.on_start(ms(0), &mut out);
    c.on_timer(ms(500), Timer::FailureCheck, &mut out);
    let state = out
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::Persist(Durable::Coordinator(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let again = Coordinator::new(cfg(), Some(state));
    assert_eq!(again.membership().version, c.membership().version);
    assert!(again.membership().members.is_empty());
}

/// The lease of an earlier life survives a coordinator restart: server 0
/// (life 0) was granted a read lease up to some ceiling; the coordinator
/// restarts, server 0 restarts too (life 1) and fences low, yet the
/// boundary of the next live change is past what life 0 may have served.
#[test]
fn a_boundary_clears_the_lease_of_an_earlier_life_across_a_coordinator_restart() {
    let mut cfg = (*cfg()).clone();
    cfg.read_leases = true;
    cfg.changes = vec![(
        ms(2000),
        Change {
            learning_rate: Some(0.05),
            staleness: None,
            consistency: None,
            batch_size: None,
            hidden: None,
        },
    )];
    let cfg = Arc::new(cfg);
    let mut c = Coordinator::new(cfg.clone(), None);
    let mut out = Vec::new();
    c.on_start(ms(0), &mut out);
    hb(&mut c, 10, 0, 0, 0, true);
    hb(&mut c, 1000, 0, 0, 20, false);
    out = server_hb(&mut c, 1000, 0, &[0]);
    let ceiling = out
        .iter()
        .find_map(|c| match c {
            Command::Send {
                msg: Message::Lease { ceiling, .. },
                ..
            } => Some(*ceiling),
            _ => None,
        })
        .expect("a lease");
    assert!(ceiling > Clock(20), "{ceiling:?}");
    let state = out
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::Persist(Durable::Coordinator(s)) => Some(s.clone()),
            _ => None,
        })
        .expect("the bound is written before the lease is sent");
    assert!(state.ceilings[&0].bound >= ceiling);
    // The coordinator restarts; both servers come back and fence at 3.
    let mut c = Coordinator::new(cfg, Some(state));
    let mut out = Vec::new();
    c.on_start(ms(1500), &mut out);
    c.on_timer(ms(2000), Timer::Change { k: 1 }, &mut out);
    let attempt = out
        .iter()
        .find_map(|c| match c {
            Command::Send {
                msg: Message::Prepare { attempt, .. },
                ..
            } => Some(*attempt),
            _ => None,
        })
        .expect("a prepare");
    let mut out = Vec::new();
    for (s, life) in [(0, 1), (1, 0)] {
        let msg = Message::Prepared {
            k: 1,
            attempt,
            max_clock: Clock(3),
            incarnation: life,
        };
        c.on_message(ms(2010), NodeId::Server(s), msg, &mut out);
    }
    let boundary = out
        .iter()
        .find_map(|c| match c {
            Command::Send {
                msg: Message::Commit { boundary, .. },
                ..
            } => Some(*boundary),
            _ => None,
        })
        .expect("a commit");
    assert!(boundary > ceiling, "{boundary:?} <= {ceiling:?}");
}
