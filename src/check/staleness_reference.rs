//! The staleness checker as it was before [`super::staleness_index`]
//! (every read walks every member), kept as the reference its fast paths
//! are tested against: random event sequences — pushes applied and
//! acknowledged out of order, reads, membership changes, crashes,
//! snapshots, checkpoints, drops, final replicas — must give the same
//! verdicts (violations, their text and order), histogram and read count
//! after every event. Test-only.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::intervals::IntervalSet;
use super::lineage::Lineage;
use super::{Report, Violation, Violations};
use crate::core::{Clock, Event, NodeId, RangeId, WorkerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// One worker life's pushes to a range: (worker, incarnation).
type Life = (WorkerId, u32);

/// Per replica: per worker life, the clocks applied.
type Held = BTreeMap<Life, IntervalSet>;

/// A push that breaks the bound if it counts: its range, life and clock,
/// and the violation it is.
type Candidate = (RangeId, Life, u64, Violation);

/// A read that missed only pushes not acknowledged at the time: the
/// violation it is if one of them counts, its range, and those pushes.
type Deferred = (Violation, RangeId, Vec<(Life, u64)>);

/// A read, for reporting a late update against it.
#[derive(Clone, Copy, Debug)]
struct Read {
    t: Duration,
    server: NodeId,
    reader: WorkerId,
    clock: Clock,
    bound: u32,
}

/// The checker as it was.
#[derive(Debug)]
pub struct Reference {
    /// Members now (worker index; any life of it counts).
    members: BTreeMap<WorkerId, u32>,
    /// Per replica: what its state holds.
    applied: Lineage<Held>,
    /// Per (range, life): clocks applied at some replica so far.
    known: BTreeMap<(RangeId, Life), IntervalSet>,
    /// Per (range, life): clocks acknowledged so far.
    acked: BTreeMap<(RangeId, Life), IntervalSet>,
    /// Per (range, worker): the read with the highest last needed clock
    /// among reads made while the worker was a member.
    covered: BTreeMap<(RangeId, WorkerId), (u64, Read)>,
    /// Late pushes: they break the bound if they count.
    candidates: Vec<Candidate>,
    /// Reads that missed pushes not acknowledged then.
    deferred: Vec<Deferred>,
    /// Reads that missed an acknowledged push.
    violations: Violations,
    reads: u64,
    /// Per reader: how many clocks behind its own each read was (see
    /// [`Reference::histogram`]).
    behind: BTreeMap<(WorkerId, u32), u64>,
    /// The final replicas (from `final` events).
    finals: Vec<(NodeId, RangeId)>,
}

impl Reference {
    /// A checker for a job of `workers` workers. Membership comes from the
    /// trace (its initial `worker_admitted` events); the workers are
    /// assumed members until the first such event, for traces without them.
    pub fn new(workers: u32) -> Reference {
        Reference {
            members: (0..workers).map(|w| (w, 0)).collect(),
            applied: Lineage::default(),
            known: BTreeMap::new(),
            acked: BTreeMap::new(),
            covered: BTreeMap::new(),
            candidates: Vec::new(),
            deferred: Vec::new(),
            violations: Violations::default(),
            reads: 0,
            behind: BTreeMap::new(),
            finals: Vec::new(),
        }
    }

    /// Observes one event.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        self.applied.observe(ev);
        match *ev {
            Event::WorkerAdmitted {
                worker,
                incarnation,
                ..
            } => {
                self.members.insert(worker, incarnation);
            }
            Event::WorkerRemoved { worker, .. } => {
                self.members.remove(&worker);
            }
            Event::Final { server, range, .. } => self.finals.push((server, range)),
            Event::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
                ..
            } => {
                let life = (worker, seq.incarnation);
                let k = u64::from(clock.0);
                self.applied
                    .get_mut(server, range)
                    .state
                    .entry(life)
                    .or_default()
                    .insert(k);
                self.first_known(t, range, life, clock, server);
            }
            Event::PushAcked {
                worker,
                range,
                seq,
                clock,
            } => {
                let life = (worker, seq.incarnation);
                self.acked
                    .entry((range, life))
                    .or_default()
                    .insert(u64::from(clock.0));
                // An acknowledged push counts even if no replica applied it.
                self.first_known(t, range, life, clock, NodeId::Worker(worker));
            }
            Event::PullAnswered {
                server,
                range,
                worker,
                clock,
                bound,
            } => {
                if !self.members.contains_key(&worker) {
                    // The bound is promised to members.
                    return;
                }
                self.record_behind(server, range, worker, clock);
                let Some(bound) = bound else { return };
                self.reads += 1;
                let Some(last_needed) = clock.0.checked_sub(bound + 1) else {
                    return;
                };
                let read = Read {
                    t,
                    server,
                    reader: worker,
                    clock,
                    bound,
                };
                self.judge_read(range, u64::from(last_needed), read);
            }
            _ => {}
        }
    }

    /// A push becomes known (applied somewhere, or acknowledged): if it
    /// was known nowhere before, every read already made that needed it
    /// missed it — a late update if it counts.
    fn first_known(&mut self, t: Duration, range: RangeId, life: Life, clock: Clock, at: NodeId) {
        let k = u64::from(clock.0);
        if !self.known.entry((range, life)).or_default().insert(k) {
            return;
        }
        let worker = life.0;
        if let Some(&(last_needed, read)) = self.covered.get(&(range, worker)) {
            if k <= last_needed {
                self.candidates.push((
                    range,
                    life,
                    k,
                    Violation::LateUpdate {
                        t: read.t,
                        server: read.server,
                        range,
                        reader: read.reader,
                        clock: read.clock,
                        bound: read.bound,
                        worker,
                        missing_clock: clock,
                        applied_t: t,
                        applied_at: at,
                    },
                ));
            }
        }
    }

    /// Checks one read against every member's pushes known so far, and
    /// remembers it for pushes that arrive later. A missing push already
    /// acknowledged makes the read a violation at once; one not (yet)
    /// acknowledged is judged at the end.
    fn judge_read(&mut self, range: RangeId, last_needed: u64, read: Read) {
        let held = self.applied.get_mut(read.server, range);
        let empty = IntervalSet::default();
        let mut deferred = Vec::new();
        let mut first_acked = None;
        for &w in self.members.keys() {
            let c = self.covered.entry((range, w)).or_insert((0, read));
            if last_needed >= c.0 {
                *c = (last_needed, read);
            }
            // Every life of `w` with pushes to this range known so far.
            for (&(_, (_, life)), known) in
                self.known.range((range, (w, 0))..=(range, (w, u32::MAX)))
            {
                let have = held.state.get(&(w, life)).unwrap_or(&empty);
                let acked = self.acked.get(&(range, (w, life))).unwrap_or(&empty);
                for (a, b) in known.spans() {
                    let b = b.min(last_needed + 1);
                    if a >= b {
                        break;
                    }
                    for (ga, gb) in have.gaps(a, b) {
                        for k in ga..gb {
                            if acked.contains(k) {
                                first_acked.get_or_insert((w, k));
                            } else {
                                deferred.push(((w, life), k));
                            }
                        }
                    }
                }
            }
        }
        let violation = |(w, k): (WorkerId, u64)| Violation::StaleRead {
            t: read.t,
            server: read.server,
            range,
            reader: read.reader,
            clock: read.clock,
            bound: read.bound,
            missing_worker: w,
            missing_clock: Clock(k as u32),
        };
        if let Some(first) = first_acked {
            self.violations.push(violation(first));
        } else if let Some(&((w, _), k)) = deferred.first() {
            self.deferred.push((violation((w, k)), range, deferred));
        }
    }

    /// How far behind a read by `reader` at `clock` is: `clock` minus the
    /// fewest clocks of any member the replica has applied without a gap,
    /// counting each member's latest life known at the replica from the
    /// first clock it holds (0: it sees every member up to the reader's
    /// own clock).
    fn record_behind(&mut self, server: NodeId, range: RangeId, reader: WorkerId, clock: Clock) {
        let Some(rep) = self.applied.get(server, range) else {
            return;
        };
        let c = u64::from(clock.0);
        let seen = self
            .members
            .keys()
            .map(|&w| {
                rep.state
                    .range((w, 0)..=(w, u32::MAX))
                    .next_back()
                    .and_then(|(_, set)| set.spans().next().map(|(a, _)| (a, set)))
                    .map_or(c, |(a, set)| set.first_missing(a.min(c)).min(c))
            })
            .min()
            .unwrap_or(c);
        *self.behind.entry((reader, (c - seen) as u32)).or_default() += 1;
    }

    /// Reads by members, per reader and per clocks behind: a read by `v`
    /// at clock `c` is `c - min_w d_w` clocks behind, where member `w`'s
    /// updates of clocks `< d_w` are all applied at the replica read. Under
    /// SSP with bound `s` every read is at most `s` behind.
    pub fn histogram(&self) -> &BTreeMap<(WorkerId, u32), u64> {
        &self.behind
    }

    /// Reads checked so far (pulls answered under SSP or BSP).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Whether a push counts: acknowledged, or in a final replica's state.
    fn counts(&self, range: RangeId, life: Life, k: u64) -> bool {
        self.acked
            .get(&(range, life))
            .is_some_and(|s| s.contains(k))
            || self.finals.iter().any(|&(s, r)| {
                r == range
                    && self
                        .applied
                        .get(s, r)
                        .and_then(|t| t.state.get(&life))
                        .is_some_and(|set| set.contains(k))
            })
    }

    /// The verdict: reads that missed an acknowledged push, reads that
    /// missed a push that counts in the end, and late pushes that count.
    pub fn report(&self, enabled: bool) -> Report {
        let mut v = self.violations.clone();
        for (violation, range, missing) in &self.deferred {
            if missing
                .iter()
                .any(|&(life, k)| self.counts(*range, life, k))
            {
                v.push(violation.clone());
            }
        }
        for (range, life, k, violation) in &self.candidates {
            if self.counts(*range, *life, *k) {
                v.push(violation.clone());
            }
        }
        v.report("staleness_bound", enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::super::staleness::StalenessCheck;
    use super::*;
    use crate::core::Seq;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const SERVERS: u32 = 3;
    const RANGES: u32 = 2;
    const WORKERS: u32 = 4;

    /// A random but mostly plausible run: workers push clock after clock to
    /// the ranges, the pushes go down the range's chain of two servers
    /// (not always all the way, now and then elsewhere too) and are mostly
    /// acknowledged; some are for an earlier or a skipped clock; workers
    /// read near their own clock, mostly at the tail; now and then a
    /// membership change and, in half the runs, a crash, a snapshot, a
    /// checkpoint or restore, a dropped replica.
    fn random_events(rng: &mut ChaCha8Rng, len: usize) -> Vec<Event> {
        let server = |rng: &mut ChaCha8Rng| NodeId::Server(rng.gen_range(0..SERVERS));
        // Range r's replicas, head first.
        let chain = |r: u32| [NodeId::Server(r), NodeId::Server((r + 1) % SERVERS)];
        let mut out = Vec::new();
        if rng.gen_bool(0.5) {
            for w in 0..WORKERS {
                out.push(Event::WorkerAdmitted {
                    worker: w,
                    incarnation: 0,
                    clock: Clock(0),
                });
            }
        }
        // Per worker: life, and next clock per range.
        let mut lives: Vec<(u32, [u32; RANGES as usize])> =
            (0..WORKERS).map(|_| (0, [0; RANGES as usize])).collect();
        let mut snapshots: Vec<String> = Vec::new();
        // Half the runs have no faults (crashes, drops, installs, restores).
        let calm = rng.gen_bool(0.5);
        // How often a push stops short of the tail.
        let lossy = [0.0, 0.01, 0.05][rng.gen_range(0..3)];
        while out.len() < len {
            let w = rng.gen_range(0..WORKERS);
            let range = rng.gen_range(0..RANGES);
            let (inc, nexts) = lives[w as usize];
            let next = nexts[range as usize];
            let push = |clock: u32| Seq {
                incarnation: inc,
                n: u64::from(clock),
            };
            let mut roll = rng.gen_range(0..1000);
            if calm && roll >= 950 {
                roll = 600; // a read instead of a fault
            }
            match roll {
                0..=499 => {
                    // Worker w pushes its next clock to this range (or,
                    // now and then, an earlier or a skipped one).                    // skips a range now and then).
                    let clock = if rng.gen_bool(0.03) {
                        rng.gen_range(0..next + 2)
                    } else {
                        next
                    };
                    // Applied down the range's chain, most of the way,
                    // and now and then at some other server.
                    let reach = if rng.gen_bool(lossy) {
                        rng.gen_range(0..2)
                    } else {
                        2
                    };
                    let mut at: Vec<NodeId> = chain(range)[..reach].to_vec();
                    if rng.gen_bool(0.05) {
                        at.push(server(rng));
                    }
                    for s in at {
                        out.push(Event::PushApplied {
                            server: s,
                            range,
                            worker: w,
                            seq: push(clock),
                            clock: Clock(clock),
                            index: None,
                        });
                    }
                    if rng.gen_bool(0.7) {
                        out.push(Event::PushAcked {
                            worker: w,
                            range,
                            seq: push(clock),
                            clock: Clock(clock),
                        });
                    }
                    lives[w as usize].1[range as usize] = clock.max(next) + 1;
                }
                500..=899 => {
                    // Mostly a read the gate allows: every worker pushed
                    // the clocks it needs to every range.
                    let floor = lives.iter().flat_map(|l| l.1).min().expect("workers");
                    let bound = rng.gen_range(0..3);
                    out.push(Event::PullAnswered {
                        server: if rng.gen_bool(0.95) {
                            chain(range)[1]
                        } else {
                            server(rng)
                        },
                        range,
                        worker: w,
                        clock: Clock(floor + bound + u32::from(rng.gen_bool(0.02))),
                        bound: Some(bound).filter(|_| rng.gen_bool(0.9)),
                    })
                }
                900..=924 => out.push(Event::WorkerRemoved {
                    worker: w,
                    incarnation: inc,
                }),
                925..=949 => {
                    let new_life = rng.gen_bool(0.5);
                    if new_life {
                        let start = next.saturating_sub(rng.gen_range(0..3));
                        lives[w as usize] = (inc + 1, [start; RANGES as usize]);
                    }
                    let (incarnation, nexts) = lives[w as usize];
                    let clock = nexts[range as usize];
                    out.push(Event::WorkerAdmitted {
                        worker: w,
                        incarnation,
                        clock: Clock(clock),
                    });
                }
                950..=956 => out.push(Event::Crash { node: server(rng) }),
                957..=960 => out.push(Event::ReplicaDropped {
                    server: server(rng),
                    range,
                }),
                961..=970 => {
                    let id = format!("s{}", out.len());
                    snapshots.push(id.clone());
                    out.push(Event::SnapshotSent {
                        server: server(rng),
                        range,
                        to: server(rng),
                        id,
                    });
                }
                971..=980 => {
                    let id = if snapshots.is_empty() || rng.gen_bool(0.1) {
                        "unknown".to_string()
                    } else {
                        snapshots[rng.gen_range(0..snapshots.len())].clone()
                    };
                    out.push(Event::SnapshotInstalled {
                        server: server(rng),
                        range,
                        from: server(rng),
                        id,
                    });
                }
                981..=986 => out.push(Event::Checkpoint {
                    server: server(rng),
                    range,
                }),
                987..=992 => out.push(Event::Restore {
                    server: server(rng),
                    range,
                }),
                _ => out.push(Event::Crash {
                    node: NodeId::Worker(w),
                }),
            }
        }
        for _ in 0..rng.gen_range(0..3) {
            out.push(Event::Final {
                server: server(rng),
                range: rng.gen_range(0..RANGES),
                digest: String::new(),
                applied: 0,
                applied_set: String::new(),
                clock_table: String::new(),
                dedup_table: String::new(),
            });
        }
        out
    }

    fn same(a: &Report, b: &Report) -> bool {
        a.status == b.status && a.violations == b.violations && a.total == b.total
    }

    /// The fast checker and the walk it replaced agree after every event
    /// of 2000 random sequences, and the index kept in step equals the one
    /// built from scratch.
    #[test]
    fn the_fast_checker_gives_the_walks_verdicts() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (mut cleared, mut walked, mut failed) = (0, 0, 0);
        for run in 0..2000 {
            let len = rng.gen_range(20..250);
            let events = random_events(&mut rng, len);
            let mut fast = StalenessCheck::new(WORKERS);
            let mut slow = Reference::new(WORKERS);
            for (i, e) in events.iter().enumerate() {
                let t = Duration::from_millis(i as u64);
                fast.observe(t, e);
                slow.observe(t, e);
                let (a, b) = (fast.report(true), slow.report(true));
                let at = format!("run {run}, event {i} {e:?}");
                assert!(same(&a, &b), "{at}\nfast {a:?}\nwalk {b:?}");
                assert_eq!(fast.histogram(), slow.histogram(), "{at}");
                assert_eq!(fast.reads(), slow.reads(), "{at}");
                if let Err(e) = fast.audit() {
                    panic!("{at}: {e}");
                }
            }
            failed += u32::from(slow.report(true).total > 0);
            cleared += fast.paths().0;
            walked += fast.paths().1;
        }
        // Both paths, and both verdicts, were exercised.
        assert!(cleared > 10_000 && walked > 3_000, "{cleared} {walked}");
        assert!((400..1600).contains(&failed), "{failed}");
    }
}
