//! Failover time: from a server's crash until every range it held is
//! served again, in both directions (a pull answered by another replica and
//! a push acknowledged, both after the crash). With replication this is
//! failure detection plus a view change; without, it includes the restart.
//!
//! May import: `crate::core`. Never: a host (`crate::sim`, `crate::net`).

use crate::core::{Event, NodeId, RangeId, View};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// One server crash and how long its ranges took to recover.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failover {
    /// The crashed server.
    pub server: String,
    /// Simulated second of the crash.
    pub crash_s: f64,
    /// Ranges it held.
    pub ranges: Vec<RangeId>,
    /// Seconds until every one of them served a pull and acknowledged a
    /// push again (`None`: not within the run).
    pub recovery_s: Option<f64>,
}

#[derive(Debug)]
struct Open {
    server: NodeId,
    at: Duration,
    ranges: BTreeSet<RangeId>,
    pulled: BTreeSet<RangeId>,
    pushed: BTreeSet<RangeId>,
    /// The crashed server is back (it may serve its ranges itself again).
    restarted: bool,
}

/// Follows crashes through the event stream.
#[derive(Debug, Default)]
pub struct FailoverTracker {
    open: Vec<Open>,
    done: Vec<Failover>,
}

impl FailoverTracker {
    /// Observes an event at `t`; `view` is the last view published.
    pub fn observe(&mut self, t: Duration, ev: &Event, view: &View) {
        match *ev {
            Event::Crash { node } if node.server().is_some() => {
                let ranges: BTreeSet<RangeId> = view.ranges_of(node).map(|(r, _)| r).collect();
                if !ranges.is_empty() {
                    self.open.push(Open {
                        server: node,
                        at: t,
                        ranges,
                        pulled: BTreeSet::new(),
                        pushed: BTreeSet::new(),
                        restarted: false,
                    });
                }
            }
            Event::Restart { node } => {
                for o in &mut self.open {
                    o.restarted |= o.server == node;
                }
                return;
            }
            Event::PullAnswered { server, range, .. } => {
                for o in &mut self.open {
                    if server != o.server || o.restarted {
                        o.pulled.insert(range);
                    }
                }
            }
            Event::PushAcked { range, .. } => {
                for o in &mut self.open {
                    o.pushed.insert(range);
                }
            }
            _ => return,
        }
        let (done, open): (Vec<Open>, Vec<Open>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|o| o.ranges.is_subset(&o.pulled) && o.ranges.is_subset(&o.pushed));
        self.open = open;
        for o in done {
            self.done.push(Failover {
                server: o.server.to_string(),
                crash_s: o.at.as_secs_f64(),
                ranges: o.ranges.into_iter().collect(),
                recovery_s: Some((t - o.at).as_secs_f64()),
            });
        }
    }

    /// Every crash, in order, the unrecovered ones last.
    pub fn finish(mut self) -> Vec<Failover> {
        for o in self.open {
            self.done.push(Failover {
                server: o.server.to_string(),
                crash_s: o.at.as_secs_f64(),
                ranges: o.ranges.into_iter().collect(),
                recovery_s: None,
            });
        }
        self.done
    }
}
