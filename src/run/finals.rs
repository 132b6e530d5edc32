//! The end of a run as the hosts read it: every live server's replicas
//! ([`FinalReplica`]), the `final` event of each replica in the last
//! view's chains, and the model assembled from the replicas.
//!
//! May import: `crate::core`. Never: a host (`crate::sim`, `crate::net`).

use crate::core::server::Replica;
use crate::core::widen::Plan;
use crate::core::{Event, NodeId, RangeId, RangeMap, View};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A server's replica at the end of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinalReplica {
    /// The range.
    pub range: RangeId,
    /// Its parameters.
    pub params: Vec<f32>,
    /// Digest of the parameters' bits (hex).
    pub digest: String,
    /// Pushes applied.
    pub applied: u64,
    /// Digest of the set of pushes applied (hex).
    pub applied_set: String,
    /// Digest of the clock table (hex).
    pub clock_table: String,
    /// Digest of the dedup table (hex).
    pub dedup_table: String,
    /// Live widenings applied (the model level of `params`).
    #[serde(default)]
    pub widened: u32,
}

impl FinalReplica {
    /// What a replica holds now.
    pub fn of(range: RangeId, rep: &Replica) -> FinalReplica {
        let (table, dedup) = rep.table_digests();
        FinalReplica {
            range,
            params: rep.params.to_vec(),
            digest: format!("{:016x}", rep.params_digest()),
            applied: rep.applied,
            applied_set: format!("{:016x}", rep.applied_digest),
            clock_table: format!("{table:016x}"),
            dedup_table: format!("{dedup:016x}"),
            widened: rep.widened,
        }
    }

    /// Its `final` event, as `server`'s replica.
    pub fn event(&self, server: NodeId) -> Event {
        Event::Final {
            server,
            range: self.range,
            digest: self.digest.clone(),
            applied: self.applied,
            applied_set: self.applied_set.clone(),
            clock_table: self.clock_table.clone(),
            dedup_table: self.dedup_table.clone(),
        }
    }
}

/// The model as it stands: each range read from the last replica of its
/// chain in `view` that `replica` finds (the tail, whose state every
/// replica has), else from the first of `servers` that holds it (a copy
/// outside the chain), else the job's `initial` values (`None`: zeros),
/// which a replica started from nothing would hold. With live widenings
/// ([`crate::core::widen`]) a replica also says its level: the model is
/// assembled at the highest level found, a range still below it widened
/// locally as its replicas will widen it. Returns the values, by key, and
/// that level.
pub fn assemble<'a>(
    ranges: &RangeMap,
    plan: &Plan,
    initial: Option<&[f32]>,
    view: &View,
    servers: impl Iterator<Item = NodeId> + Clone,
    replica: impl Fn(NodeId, RangeId) -> Option<(&'a [f32], u32)>,
) -> (Vec<f32>, u32) {
    let found: Vec<Option<(&[f32], u32)>> = (0..ranges.ranges())
        .map(|r| {
            let chain = &view.chains[r as usize];
            chain
                .iter()
                .rev()
                .copied()
                .chain(servers.clone())
                .find_map(|s| replica(s, r))
        })
        .collect();
    let level = found.iter().flatten().map(|&(_, l)| l).max().unwrap_or(0);
    let mut params = match initial {
        Some(v) => v.to_vec(),
        None => vec![0f32; ranges.dim() as usize],
    };
    if level == 0 {
        for (r, found) in found.iter().enumerate() {
            if let Some((values, _)) = found {
                let k = ranges.keys(r as RangeId);
                if values.len() == k.len() {
                    params[k.start as usize..k.end as usize].copy_from_slice(values);
                }
            }
        }
        return (params, 0);
    }
    let mut wide = vec![0f32; plan.dim(ranges, level) as usize];
    for (r, found) in found.iter().enumerate() {
        let r = r as RangeId;
        let (values, at) = match found {
            Some((v, at)) => (v.to_vec(), *at),
            None => (plan.gather(ranges, 0, r, &params), 0),
        };
        let values = plan.widen_values(r, at, level, values);
        plan.scatter(ranges, level, r, &values, &mut wide);
    }
    (wide, level)
}

/// The `final` events of a run (one per replica in the last view's chains,
/// range by range, head first) and the final model, from every live
/// server's replicas (a range none holds at its `initial` values:
/// [`assemble`]).
pub fn finals(
    ranges: &RangeMap,
    plan: &Plan,
    initial: Option<&[f32]>,
    view: &View,
    replicas: &BTreeMap<NodeId, Vec<FinalReplica>>,
) -> (Vec<Event>, Vec<f32>, u32) {
    let find = |server: NodeId, range: RangeId| {
        replicas
            .get(&server)
            .and_then(|reps| reps.iter().find(|x| x.range == range))
    };
    let mut events = Vec::new();
    for r in 0..ranges.ranges() {
        for &server in &view.chains[r as usize] {
            if let Some(rep) = find(server, r) {
                events.push(rep.event(server));
            }
        }
    }
    let (params, level) = assemble(
        ranges,
        plan,
        initial,
        view,
        replicas.keys().copied(),
        |s, r| find(s, r).map(|rep| (&rep.params[..], rep.widened)),
    );
    (events, params, level)
}
