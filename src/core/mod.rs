//! The parameter-server protocol as sans-IO state machines.
//!
//! Nodes ([`Server`], [`Worker`], [`Coordinator`]) take messages, timer
//! firings and compute completions, with the current time passed in, and
//! return [`Command`]s for their host to execute: send a message, set a
//! timer, charge compute time, report an event. They never read a clock,
//! draw randomness of their own (a worker is handed a seeded generator) or
//! do I/O, so the same code runs under the simulator (`crate::sim`) and,
//! later, over TCP.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.
//! (`hasher` also uses xxhash_rust, as `msg` and `codec` do.)

pub mod bugs;
pub mod codec;
pub mod config;
pub mod coordinator;
pub mod event;
pub mod floats;
pub mod gate;
pub mod hasher;
pub mod ids;
pub mod keys;
pub mod msg;
pub mod server;
pub mod view;
pub mod widen;
pub mod worker;

pub use bugs::{Bug, Bugs};
pub use config::{Consistency, Hyper, ProtocolConfig, Schedule};
pub use coordinator::{Coordinator, CoordinatorState, LeaseBound};
pub use event::Event;
pub use ids::{Clock, Epoch, NodeId, RangeId, Seq, WorkerId};
pub use keys::RangeMap;
pub use msg::{Keys, Message};
pub use server::Server;
pub use view::{Membership, View};
pub use worker::{Job, Worker};

use std::time::Duration;

/// What a node asks its host to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// Send `msg` to `to` (may be lost, delayed or held by the network).
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Fire `timer` after `after`. Timers are not cancelled; nodes ignore
    /// stale ones (retry timers carry a generation).
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// Delay.
        after: Duration,
    },
    /// Charge the compute time of one minibatch, then call the worker's
    /// `on_compute_done`.
    Compute {
        /// The clock being computed.
        clock: Clock,
        /// Examples in the minibatch.
        examples: u32,
        /// The batch's floating-point work, forward and backward
        /// ([`crate::ml::Model::batch_flops`] of the model and the actual
        /// batch: a sparse batch counts its non-zeros). A host that models
        /// compute by FLOPs divides it by the worker's rate.
        flops: u64,
    },
    /// Report an event (checkers, trace).
    Emit(Event),
    /// Write state to the node's durable storage (it survives crashes; the
    /// host hands it back when the node restarts).
    Persist(Durable),
}

/// State a node keeps on durable storage. Serializable: a real host writes
/// it to a file (`net::store`); the simulator keeps it in memory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Durable {
    /// The coordinator's membership and view.
    Coordinator(coordinator::CoordinatorState),
    /// A server's last checkpoint of each range it held.
    Server(std::collections::BTreeMap<RangeId, msg::RangeState>),
}

/// A node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Worker: requests of the current phase are overdue; `gen` tells a
    /// current timer from a stale one.
    Retry {
        /// Generation.
        gen: u64,
    },
    /// Send a heartbeat to the coordinator.
    Heartbeat,
    /// Coordinator: look for nodes whose heartbeats stopped.
    FailureCheck,
    /// Server: write a checkpoint of every range held.
    Checkpoint,
    /// Coordinator: time to apply live change `k`.
    Change {
        /// The change's number.
        k: u64,
    },
}

impl Timer {
    /// Short name, for traces.
    pub fn name(self) -> &'static str {
        match self {
            Timer::Retry { .. } => "retry",
            Timer::Heartbeat => "heartbeat",
            Timer::FailureCheck => "failure_check",
            Timer::Checkpoint => "checkpoint",
            Timer::Change { .. } => "change",
        }
    }
}

/// Any node: what a host drives. One lives in each host slot and is never
/// moved, so the size difference between variants costs nothing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Node {
    /// A server.
    Server(Server),
    /// A worker.
    Worker(Worker),
    /// The coordinator.
    Coordinator(Coordinator),
}

impl Node {
    /// Starts the node.
    pub fn on_start(&mut self, now: Duration, out: &mut Vec<Command>) {
        match self {
            Node::Server(n) => n.on_start(now, out),
            Node::Worker(n) => n.on_start(now, out),
            Node::Coordinator(n) => n.on_start(now, out),
        }
    }

    /// Delivers a message.
    pub fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: Message,
        out: &mut Vec<Command>,
    ) {
        match self {
            Node::Server(n) => n.on_message(now, from, msg, out),
            Node::Worker(n) => n.on_message(now, from, msg, out),
            Node::Coordinator(n) => n.on_message(now, from, msg, out),
        }
    }

    /// Fires a timer.
    pub fn on_timer(&mut self, now: Duration, timer: Timer, out: &mut Vec<Command>) {
        match self {
            Node::Server(n) => n.on_timer(now, timer, out),
            Node::Worker(n) => n.on_timer(now, timer, out),
            Node::Coordinator(n) => n.on_timer(now, timer, out),
        }
    }

    /// Reports that compute time has been charged (workers only).
    pub fn on_compute_done(&mut self, now: Duration, out: &mut Vec<Command>) {
        if let Node::Worker(w) = self {
            w.on_compute_done(now, out);
        }
    }
}
