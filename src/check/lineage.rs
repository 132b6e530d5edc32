//! What state each replica holds, followed through crashes, state transfers
//! and checkpoint restores: the part every state-tracking checker shares.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use crate::core::{Event, NodeId, RangeId};
use std::collections::BTreeMap;

/// Per-replica state `S` of some checker, kept in step with the events that
/// replace a replica's state wholesale:
/// - `crash` of a server drops its replicas (memory is lost);
/// - `snapshot_sent` takes a copy of the source's state as it is then, and
///   `snapshot_installed` replaces the learner's state with that copy
///   (`catch_up` is only a marker: it changes no state);
/// - `checkpoint` saves a copy, `restore` brings it back;
/// - `replica_dropped` drops one replica (its server left the chain).
///
/// A replica first seen after its server crashed starts with
/// `lost_history = true`: its state may lack updates acknowledged earlier.
#[derive(Clone, Debug, Default)]
pub struct Lineage<S> {
    live: BTreeMap<(NodeId, RangeId), Tracked<S>>,
    checkpoints: BTreeMap<(NodeId, RangeId), Tracked<S>>,
    /// Snapshots taken for learners, by id: the source's state then.
    snapshots: BTreeMap<String, Tracked<S>>,
    crashed: BTreeMap<NodeId, ()>,
    dropped: BTreeMap<(NodeId, RangeId), ()>,
}

/// One replica's state plus whether its history was cut.
#[derive(Clone, Debug, Default)]
pub struct Tracked<S> {
    /// The checker's state.
    pub state: S,
    /// Whether this state started empty after a crash (or from a
    /// checkpoint), so it may lack acknowledged updates.
    pub lost_history: bool,
}

impl<S: Clone + Default> Lineage<S> {
    /// Follows the lineage-changing events; call for every event.
    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::Crash { node } if node.server().is_some() => {
                self.live.retain(|(s, _), _| s != node);
                self.crashed.insert(*node, ());
            }
            Event::ReplicaDropped { server, range } => {
                self.live.remove(&(*server, *range));
                self.dropped.insert((*server, *range), ());
            }
            Event::SnapshotSent {
                server, range, id, ..
            } => {
                let copy = self.get_mut(*server, *range).clone();
                self.snapshots.insert(id.clone(), copy);
            }
            Event::SnapshotInstalled {
                server, range, id, ..
            } => {
                let copy = self.snapshots.get(id).cloned().unwrap_or_default();
                self.live.insert((*server, *range), copy);
            }
            Event::Checkpoint { server, range } => {
                let copy = self.get_mut(*server, *range).clone();
                self.checkpoints.insert((*server, *range), copy);
            }
            Event::Restore { server, range } => {
                let mut copy = self
                    .checkpoints
                    .get(&(*server, *range))
                    .cloned()
                    .unwrap_or_default();
                copy.lost_history = true;
                self.live.insert((*server, *range), copy);
            }
            _ => {}
        }
    }

    /// The state of `server`'s replica of `range`, created empty on first
    /// use.
    pub fn get_mut(&mut self, server: NodeId, range: RangeId) -> &mut Tracked<S> {
        let lost =
            self.crashed.contains_key(&server) || self.dropped.contains_key(&(server, range));
        self.live.entry((server, range)).or_insert_with(|| Tracked {
            state: S::default(),
            lost_history: lost,
        })
    }

    /// The state of a replica, if it holds any.
    pub fn get(&self, server: NodeId, range: RangeId) -> Option<&Tracked<S>> {
        self.live.get(&(server, range))
    }
}
