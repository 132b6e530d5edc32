//! `replicas_agree`: once the system is quiet, the replicas of each range
//! hold equal parameters, equal sets of applied pushes, and equal clock and
//! dedup tables.
//!
//! Judged on the `final` events (one per replica in the last view, taken
//! after replication settled): every replica of a range is compared with
//! the range's first. Skipped when replication had not settled by the end
//! of the run (the run stopped early, or catch-ups were still under way):
//! replicas legitimately differ while entries are in flight.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::{Report, Violation, Violations};
use crate::core::{Event, NodeId, RangeId};
use std::collections::BTreeMap;

/// What one replica reported at the end.
#[derive(Clone, Debug, PartialEq)]
struct FinalState {
    server: NodeId,
    digest: String,
    applied: u64,
    applied_set: String,
    clock_table: String,
    dedup_table: String,
}

/// The checker.
#[derive(Debug, Default)]
pub struct ReplicasCheck {
    finals: BTreeMap<RangeId, Vec<FinalState>>,
}

impl ReplicasCheck {
    /// Observes one event.
    pub fn observe(&mut self, ev: &Event) {
        if let Event::Final {
            server,
            range,
            digest,
            applied,
            applied_set,
            clock_table,
            dedup_table,
        } = ev
        {
            self.finals.entry(*range).or_default().push(FinalState {
                server: *server,
                digest: digest.clone(),
                applied: *applied,
                applied_set: applied_set.clone(),
                clock_table: clock_table.clone(),
                dedup_table: dedup_table.clone(),
            });
        }
    }

    /// The verdict; `quiet`: replication had settled when the finals were
    /// taken.
    pub fn report(&self, enabled: bool, quiet: bool) -> Report {
        let mut v = Violations::default();
        for (&range, reps) in &self.finals {
            let Some(first) = reps.first() else { continue };
            for other in &reps[1..] {
                let what = if other.digest != first.digest {
                    Some("parameters")
                } else if other.applied != first.applied || other.applied_set != first.applied_set {
                    Some("applied pushes")
                } else if other.clock_table != first.clock_table {
                    Some("clock table")
                } else if other.dedup_table != first.dedup_table {
                    Some("dedup table")
                } else {
                    None
                };
                if let Some(what) = what {
                    v.push(Violation::ReplicasDisagree {
                        range,
                        a: first.server,
                        b: other.server,
                        what,
                        applied: (first.applied, other.applied),
                    });
                }
            }
        }
        v.report("replicas_agree", enabled && quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn fin(server: u32, digest: &str, applied: u64) -> Event {
        Event::Final {
            server: NodeId::Server(server),
            range: 0,
            digest: digest.into(),
            applied,
            applied_set: format!("{applied}"),
            clock_table: "t".into(),
            dedup_table: "d".into(),
        }
    }

    #[test]
    fn equal_replicas_pass_and_a_differing_one_is_named() {
        let mut c = ReplicasCheck::default();
        c.observe(&fin(0, "aa", 5));
        c.observe(&fin(1, "aa", 5));
        assert_eq!(c.report(true, true).status, Status::Pass);
        c.observe(&fin(2, "ab", 4));
        let r = c.report(true, true);
        assert_eq!(r.status, Status::Fail);
        let msg = r.violations[0].to_string();
        assert!(
            msg.contains("server-2") && msg.contains("parameters"),
            "{msg}"
        );
        assert_eq!(c.report(true, false).status, Status::Skipped);
    }
}
