//! The coordinator: tracks every node's heartbeats and each worker's
//! progress, and owns the view and the membership.

use super::config::ProtocolConfig;
use super::ids::{Clock, NodeId, WorkerId};
use super::msg::Message;
use super::view::{Membership, View};
use super::{Command, Timer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What the coordinator last heard from a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Incarnation heard from.
    pub incarnation: u32,
    /// Clock it reported.
    pub clock: Clock,
    /// Whether it reported having finished.
    pub done: bool,
    /// When it was last heard from.
    pub last_seen: Duration,
}

/// The coordinator node.
#[derive(Debug)]
pub struct Coordinator {
    cfg: Arc<ProtocolConfig>,
    view: View,
    membership: Membership,
    workers: BTreeMap<WorkerId, WorkerStatus>,
    servers_seen: BTreeMap<u32, Duration>,
}

impl Coordinator {
    /// The coordinator of a fresh job.
    pub fn new(cfg: Arc<ProtocolConfig>) -> Coordinator {
        Coordinator {
            view: View::initial(cfg.servers, cfg.replication),
            membership: Membership::initial(cfg.workers),
            workers: BTreeMap::new(),
            servers_seen: BTreeMap::new(),
            cfg,
        }
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The current membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Per worker, what was last heard.
    pub fn workers(&self) -> &BTreeMap<WorkerId, WorkerStatus> {
        &self.workers
    }

    /// Whether every worker reported that it finished.
    pub fn all_done(&self) -> bool {
        self.workers.len() == self.cfg.workers as usize && self.workers.values().all(|w| w.done)
    }

    /// Starts the failure detector's clock.
    pub fn on_start(&mut self, _now: Duration, out: &mut Vec<Command>) {
        out.push(Command::SetTimer {
            timer: Timer::FailureCheck,
            after: self.cfg.heartbeat_timeout,
        });
    }

    /// Handles a message.
    pub fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: Message,
        _out: &mut Vec<Command>,
    ) {
        match msg {
            Message::WorkerHeartbeat {
                worker,
                incarnation,
                clock,
                done,
                ..
            } => {
                self.workers.insert(
                    worker,
                    WorkerStatus {
                        incarnation,
                        clock,
                        done,
                        last_seen: now,
                    },
                );
            }
            Message::ServerHeartbeat { .. } => {
                if let Some(s) = from.server() {
                    self.servers_seen.insert(s, now);
                }
            }
            _ => {}
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, _now: Duration, timer: Timer, out: &mut Vec<Command>) {
        if timer == Timer::FailureCheck {
            out.push(Command::SetTimer {
                timer: Timer::FailureCheck,
                after: self.cfg.heartbeat_timeout,
            });
        }
    }
}
