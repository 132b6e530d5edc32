//! The fault task: starts and heals every fault of the run's plan
//! ([`crate::run::plan::Plan`]) at its simulated time, on the simulated
//! world.
//!
//! May import: `crate::run`, `crate::core`, `crate::scenario`, `super`
//! (sim). Never: `crate::net`.

use super::world::{lock, Shared, World};
use crate::core::Event;
use crate::run::plan::{Plan, Planned};
use crate::scenario::FaultKind;
use std::time::Duration;

/// The fault task: walks the plan in time order.
pub async fn inject(shared: Shared, plan: Plan) {
    let mut actions: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, f) in plan.faults.iter().enumerate() {
        actions.push((f.at, true, i));
        if let Some(end) = f.end() {
            actions.push((end, false, i));
        }
    }
    // Heals before starts at the same instant; then plan order.
    actions.sort_by_key(|&(t, start, i)| (t, start, i));
    let start = lock(&shared).start;
    for (t, is_start, i) in actions {
        super::inbox::sleep_exact(start + t).await;
        let mut w = lock(&shared);
        let f = &plan.faults[i];
        if is_start {
            begin(&mut w, f);
        } else {
            heal(&mut w, f);
        }
    }
}

fn begin(w: &mut World, f: &Planned) {
    w.record(Event::FaultStart {
        fault: f.kind.name().into(),
        nodes: f.kind.nodes(),
        detail: f.detail(),
    });
    match &f.kind {
        FaultKind::Crash {
            node,
            restart_after,
        } => w.crash(*node, restart_after.is_some()),
        FaultKind::Partition { groups, .. } => w.net.add_partition(f.id, groups),
        FaultKind::Clog { from, to, .. } => w.net.add_clog(f.id, *from, *to),
        FaultKind::Loss { rate, .. } => w.net.add_loss(f.id, *rate),
        FaultKind::Straggler { node, slowdown, .. } => {
            w.compute.add_straggler(f.id, *node, *slowdown)
        }
        FaultKind::SlowLink {
            between,
            latency,
            bandwidth_bps,
            ..
        } => w
            .net
            .add_slow_link(f.id, between[0], between[1], *latency, *bandwidth_bps),
    }
}

fn heal(w: &mut World, f: &Planned) {
    match &f.kind {
        FaultKind::Crash { node, .. } => w.restart(*node),
        FaultKind::Straggler { node, .. } => {
            w.compute.heal(f.id);
            w.restraggle(*node);
        }
        _ => {
            if let Some((from, to)) = w.net.heal(f.id) {
                w.release(from, to);
            }
        }
    }
    w.record(Event::FaultEnd {
        fault: f.kind.name().into(),
        nodes: f.kind.nodes(),
    });
}
