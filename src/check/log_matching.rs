//! `log_matching`: the replicas of a range hold the same push at every log
//! index they both hold, and each replica's state applies indices in
//! increasing order (log matching, as in Raft and chain replication).
//!
//! Judged online from `push_applied` events (their `index`) and `view`
//! events. The replicas of a range are the servers of its chain in the
//! current view (the last `view` event so far); a copy outside the chains
//! is not one: a head cut off by a partition may apply entries at indices
//! the new chain reuses later, a crashed head's unreplicated entries vanish,
//! and a restarted or restored state starts over. So:
//!
//! - when a replica applies an entry at index `i`, every other replica of
//!   the range that holds an entry at `i` must hold the same push
//!   (worker, seq, clock);
//! - when a view is published, every two replicas of a range must hold the
//!   same push at every index both hold (a server may enter the chain with
//!   a log it built outside it);
//! - within one state lineage an index applied must be above every index
//!   applied before (for any copy, in the chains or not).
//!
//! What a replica holds is followed through crashes, `replica_dropped`,
//! snapshots (`snapshot_installed` replaces the learner's log with the one
//! its source had at `snapshot_sent`), checkpoints and restores
//! ([`Lineage`]). Membership changes are log entries too (they consume
//! indices and emit no event), so gaps are normal. A conflict is reported
//! once per range and index.
//!
//! Storage: the pushes applied at each index of a range are kept once per
//! range (almost always one: its first), and each state keeps only, per
//! such version, the set of indices at which it holds it: replicas that
//! agree share everything, and a snapshot or a checkpoint copies a handful
//! of intervals.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::intervals::IntervalSet;
use super::lineage::Lineage;
use super::{LogClash, LogPush, Report, Violation, Violations};
use crate::core::{Clock, Epoch, Event, NodeId, RangeId, Seq};
use std::collections::BTreeMap;
use std::time::Duration;

/// Indices per chunk of a range's first pushes.
const CHUNK: u64 = 512;

/// The first push applied at each of `CHUNK` consecutive indices.
#[derive(Debug)]
struct Chunk {
    /// Bit `o`: index `o` of the chunk has a push.
    present: [u64; (CHUNK / 64) as usize],
    at: [LogPush; CHUNK as usize],
}

impl Chunk {
    fn new() -> Box<Chunk> {
        Box::new(Chunk {
            present: [0; (CHUNK / 64) as usize],
            at: [(0, Seq::default(), Clock(0)); CHUNK as usize],
        })
    }

    fn get(&self, o: usize) -> Option<LogPush> {
        (self.present[o / 64] >> (o % 64) & 1 == 1).then(|| self.at[o])
    }

    fn set(&mut self, o: usize, p: LogPush) {
        self.present[o / 64] |= 1 << (o % 64);
        self.at[o] = p;
    }
}

/// The distinct pushes applied at each index of one range, anywhere: the
/// first is version 0, later different ones versions 1, 2, ...
#[derive(Debug, Default)]
struct RangeLog {
    /// Version 0 of each index, by chunk.
    first: BTreeMap<u64, Box<Chunk>>,
    /// (index, version >= 1) -> push.
    others: BTreeMap<(u64, u32), LogPush>,
    /// Indices a conflict was reported at.
    reported: IntervalSet,
}

impl RangeLog {
    /// The version of `push` at `index`, registered if new.
    fn version_of(&mut self, index: u64, push: LogPush) -> u32 {
        let o = (index % CHUNK) as usize;
        let chunk = self.first.entry(index / CHUNK).or_insert_with(Chunk::new);
        match chunk.get(o) {
            None => {
                chunk.set(o, push);
                return 0;
            }
            Some(p) if p == push => return 0,
            Some(_) => {}
        }
        let mut next = 1;
        for (&(_, v), &p) in self.others.range((index, 1)..=(index, u32::MAX)) {
            if p == push {
                return v;
            }
            next = v + 1;
        }
        self.others.insert((index, next), push);
        next
    }

    /// Version `v` of `index` (registered before).
    fn push(&self, index: u64, v: u32) -> LogPush {
        let p = if v == 0 {
            self.first
                .get(&(index / CHUNK))
                .and_then(|c| c.get((index % CHUNK) as usize))
        } else {
            self.others.get(&(index, v)).copied()
        };
        p.expect("a version is registered before a state holds it")
    }
}

/// One state's log: per version, the indices at which it holds it.
#[derive(Clone, Debug, Default)]
struct Log {
    held: Vec<IntervalSet>,
    /// The highest index applied, and its version.
    last: Option<(u64, u32)>,
}

impl Log {
    /// The version this state holds at `index`, if it holds one.
    fn at(&self, index: u64) -> Option<u32> {
        self.held
            .iter()
            .position(|s| s.contains(index))
            .map(|v| v as u32)
    }
}

/// The checker.
#[derive(Debug, Default)]
pub struct LogMatchingCheck {
    logs: Lineage<Log>,
    ranges: BTreeMap<RangeId, RangeLog>,
    /// Per range: the chain of the current view, head first.
    chains: Vec<Vec<NodeId>>,
    violations: Violations,
}

impl LogMatchingCheck {
    /// Observes one event at simulated time `t`.
    pub fn observe(&mut self, t: Duration, ev: &Event) {
        self.logs.observe(ev);
        match ev {
            &Event::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
                index: Some(index),
            } => self.applied(t, server, range, index, (worker, seq, clock)),
            Event::View { epoch, chains } => {
                self.chains.clone_from(chains);
                self.view(t, *epoch);
            }
            _ => {}
        }
    }

    fn applied(&mut self, t: Duration, server: NodeId, range: RangeId, index: u64, push: LogPush) {
        let rl = self.ranges.entry(range).or_default();
        let v = rl.version_of(index, push);
        let log = &mut self.logs.get_mut(server, range).state;
        if let Some((last, lv)) = log.last.filter(|&(last, _)| index <= last) {
            self.violations.push(Violation::LogMismatch {
                t,
                range,
                index,
                server,
                push,
                other: server,
                other_push: rl.push(last, lv),
                clash: LogClash::Reordered { after: last },
            });
        }
        if log.at(index).is_none() {
            if log.held.len() <= v as usize {
                log.held.resize_with(v as usize + 1, IntervalSet::default);
            }
            log.held[v as usize].insert(index);
        }
        if log.last.is_none_or(|(last, _)| index > last) {
            log.last = Some((index, v));
        }
        // Against the other replicas, if the applier is one.
        let Some(chain) = self.chains.get(range as usize) else {
            return;
        };
        if !chain.contains(&server) || rl.reported.contains(index) {
            return;
        }
        for &other in chain.iter().filter(|&&o| o != server) {
            let held = self.logs.get(other, range).and_then(|l| l.state.at(index));
            if let Some(vo) = held.filter(|&vo| vo != v) {
                rl.reported.insert(index);
                self.violations.push(Violation::LogMismatch {
                    t,
                    range,
                    index,
                    server,
                    push,
                    other,
                    other_push: rl.push(index, vo),
                    clash: LogClash::Applied,
                });
                break;
            }
        }
    }

    /// A new view: every two replicas of a range agree wherever both hold
    /// an entry.
    fn view(&mut self, t: Duration, epoch: Epoch) {
        for (range, chain) in self.chains.iter().enumerate() {
            let range = range as RangeId;
            for (i, &a) in chain.iter().enumerate() {
                for &b in &chain[i + 1..] {
                    let (Some(la), Some(lb)) = (self.logs.get(a, range), self.logs.get(b, range))
                    else {
                        continue;
                    };
                    for (va, ha) in la.state.held.iter().enumerate() {
                        for (vb, hb) in lb.state.held.iter().enumerate() {
                            if va == vb {
                                continue;
                            }
                            let Some(rl) = self.ranges.get_mut(&range) else {
                                continue;
                            };
                            for (s, e) in both(ha, hb) {
                                for (gs, ge) in rl.reported.gaps(s, e) {
                                    for index in gs..ge {
                                        self.violations.push(Violation::LogMismatch {
                                            t,
                                            range,
                                            index,
                                            server: a,
                                            push: rl.push(index, va as u32),
                                            other: b,
                                            other_push: rl.push(index, vb as u32),
                                            clash: LogClash::View(epoch),
                                        });
                                    }
                                }
                                for index in s..e {
                                    rl.reported.insert(index);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The verdict.
    pub fn report(&self, enabled: bool) -> Report {
        self.violations.report("log_matching", enabled)
    }
}

/// The intervals of integers in both sets.
fn both(a: &IntervalSet, b: &IntervalSet) -> Vec<(u64, u64)> {
    let (a, b): (Vec<_>, Vec<_>) = (a.spans().collect(), b.spans().collect());
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use crate::core::WorkerId;

    const S0: NodeId = NodeId::Server(0);
    const S1: NodeId = NodeId::Server(1);
    const S2: NodeId = NodeId::Server(2);

    fn view(epoch: u64, chain: &[NodeId]) -> Event {
        Event::View {
            epoch: Epoch(epoch),
            chains: vec![chain.to_vec()],
        }
    }

    fn apply(server: NodeId, worker: WorkerId, clock: u32, index: u64) -> Event {
        Event::PushApplied {
            server,
            range: 0,
            worker,
            seq: Seq {
                incarnation: 0,
                n: u64::from(clock),
            },
            clock: Clock(clock),
            index: Some(index),
        }
    }

    fn run(events: &[Event]) -> Report {
        let mut c = LogMatchingCheck::default();
        for (i, e) in events.iter().enumerate() {
            c.observe(Duration::from_millis(i as u64), e);
        }
        c.report(true)
    }

    #[test]
    fn replicas_applying_the_same_entries_pass() {
        let r = run(&[
            view(1, &[S0, S1]),
            apply(S0, 0, 0, 1),
            apply(S0, 1, 0, 2),
            // Index 3 is a membership entry: no event, a gap.
            apply(S0, 0, 1, 4),
            apply(S1, 0, 0, 1),
            apply(S1, 1, 0, 2),
            apply(S1, 0, 1, 4),
            view(2, &[S0, S1]),
        ]);
        assert_eq!(r.status, Status::Pass, "{:?}", r.violations);
        assert_eq!(run(&[]).status, Status::Pass);
        let mut c = LogMatchingCheck::default();
        c.observe(Duration::ZERO, &apply(S0, 0, 0, 1));
        assert_eq!(c.report(false).status, Status::Skipped);
    }

    #[test]
    fn a_different_push_at_an_index_is_named() {
        let r = run(&[
            view(1, &[S0, S1, S2]),
            apply(S0, 0, 0, 1),
            apply(S1, 0, 0, 1),
            apply(S0, 0, 1, 2),
            apply(S1, 1, 1, 2),
            // Once per index, not once per replica.
            apply(S2, 0, 0, 1),
            apply(S2, 1, 1, 2),
            apply(S0, 1, 1, 3),
        ]);
        assert_eq!((r.status, r.total), (Status::Fail, 1), "{:?}", r.violations);
        let msg = r.violations[0].to_string();
        assert_eq!(
            msg,
            "log mismatch at 0.004000s: server-1 applied worker-1's push 0.1 (clock 1) at \
             index 2 of range 0, where the replica server-0 holds worker-0's push 0.1 (clock 1)"
        );
        // An index not above the last one applied to the state.
        let r = run(&[
            view(1, &[S0]),
            apply(S0, 0, 0, 1),
            apply(S0, 0, 1, 3),
            apply(S0, 1, 0, 2),
        ]);
        assert_eq!(r.total, 1, "{:?}", r.violations);
        assert!(
            r.violations[0].to_string().contains(
                "server-0 applied index 2 of range 0 (worker-1's push 0.0 (clock 0)) after \
                 index 3 (worker-0's push 0.1 (clock 1))"
            ),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn a_cut_off_heads_index_reused_by_the_new_chain_passes() {
        let r = run(&[
            view(1, &[S0, S1, S2]),
            apply(S0, 0, 0, 1),
            apply(S1, 0, 0, 1),
            apply(S2, 0, 0, 1),
            // S0 is cut off; it applies index 2 on its side alone.
            apply(S0, 1, 0, 2),
            view(2, &[S1, S2]),
            // The new chain reuses index 2 for another push.
            apply(S1, 2, 0, 2),
            apply(S2, 2, 0, 2),
            // S0 learns the view and drops its copy; it comes back with a
            // snapshot of the new chain's.
            Event::ReplicaDropped {
                server: S0,
                range: 0,
            },
            Event::SnapshotSent {
                server: S2,
                range: 0,
                to: S0,
                id: "server-2.0.1".into(),
            },
            Event::SnapshotInstalled {
                server: S0,
                range: 0,
                from: S2,
                id: "server-2.0.1".into(),
            },
            view(3, &[S1, S2, S0]),
            apply(S1, 0, 1, 3),
            apply(S2, 0, 1, 3),
            apply(S0, 0, 1, 3),
        ]);
        assert_eq!(r.status, Status::Pass, "{:?}", r.violations);
        // Had S0 kept its copy and rejoined with it, the view makes two
        // replicas that disagree at index 2.
        let r = run(&[
            view(1, &[S0, S1]),
            apply(S0, 0, 0, 1),
            apply(S1, 0, 0, 1),
            apply(S0, 1, 0, 2),
            view(2, &[S1]),
            apply(S1, 2, 0, 2),
            view(3, &[S1, S0]),
        ]);
        assert_eq!(r.total, 1, "{:?}", r.violations);
        let msg = r.violations[0].to_string();
        assert!(
            msg.contains("view 3 makes server-1 and server-0 replicas of range 0")
                && msg.contains("index 2"),
            "{msg}"
        );
    }

    #[test]
    fn a_snapshot_carries_the_log_and_replaces_the_learners() {
        let sent = |id: &str| Event::SnapshotSent {
            server: S0,
            range: 0,
            to: S1,
            id: id.into(),
        };
        let installed = |id: &str| Event::SnapshotInstalled {
            server: S1,
            range: 0,
            from: S0,
            id: id.into(),
        };
        let r = run(&[
            view(1, &[S0]),
            apply(S0, 0, 0, 1),
            apply(S0, 1, 0, 2),
            // The learner built a log of its own before (not a replica).
            apply(S1, 3, 0, 1),
            apply(S1, 3, 1, 2),
            apply(S1, 3, 2, 3),
            sent("a"),
            apply(S0, 0, 1, 3),
            installed("a"),
            // The snapshot's log replaced the learner's: index 3 is next,
            // and it holds index 1 and 2 as its source does.
            apply(S1, 0, 1, 3),
            view(2, &[S0, S1]),
            apply(S0, 1, 1, 4),
            apply(S1, 1, 1, 4),
        ]);
        assert_eq!(r.status, Status::Pass, "{:?}", r.violations);
        // A snapshot taken before a different entry: the learner then
        // applies what its source does not hold there.
        let r = run(&[
            view(1, &[S0]),
            apply(S0, 0, 0, 1),
            sent("a"),
            installed("a"),
            view(2, &[S0, S1]),
            apply(S1, 0, 0, 1),
        ]);
        assert_eq!(r.total, 1, "{:?}", r.violations);
        assert!(
            r.violations[0].to_string().contains("after index 1"),
            "{}",
            r.violations[0]
        );
        let r = run(&[
            view(1, &[S0]),
            apply(S0, 0, 0, 1),
            sent("a"),
            installed("a"),
            view(2, &[S0, S1]),
            apply(S0, 0, 1, 2),
            apply(S1, 1, 1, 2),
        ]);
        assert_eq!(r.total, 1, "{:?}", r.violations);
        assert!(
            r.violations[0]
                .to_string()
                .contains("server-1 applied worker-1's push 0.1 (clock 1) at index 2"),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn crashes_and_restores_start_a_new_lineage() {
        let r = run(&[
            view(1, &[S0]),
            apply(S0, 0, 0, 1),
            apply(S0, 0, 1, 2),
            Event::Checkpoint {
                server: S0,
                range: 0,
            },
            apply(S0, 0, 2, 3),
            Event::Crash { node: S0 },
            Event::Restart { node: S0 },
            Event::Restore {
                server: S0,
                range: 0,
            },
            // Index 3 again, another push: the crash lost the first.
            apply(S0, 1, 2, 3),
            Event::Crash { node: S0 },
            Event::Restart { node: S0 },
            // Empty: it starts over from index 1.
            apply(S0, 2, 0, 1),
        ]);
        assert_eq!(r.status, Status::Pass, "{:?}", r.violations);
    }
}
