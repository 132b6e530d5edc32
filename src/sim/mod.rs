//! The madsim host: runs the protocol core on a seeded simulated clock and
//! network.
//!
//! Every server, worker and the coordinator is a madsim node running one
//! task ([`node::node_main`]) that feeds its protocol state machine from an
//! inbox of due inputs. Messages cross [`net::Network`], which adds latency
//! and faults and shares every node's interfaces max-min fairly
//! ([`net_flows`]); servers queue their work on a CPU; compute time comes from
//! [`compute::ComputeModel`]. All time is madsim's, all randomness is drawn
//! from madsim's seeded generator, so a seed replays a run exactly. What a
//! run's events feed and how its outcome is assembled is host-neutral
//! (`crate::run`), shared with real mode.
//!
//! May import: `crate::core`, `crate::ml`, `crate::scenario`, `crate::run`,
//! `crate::check`, `crate::trace`, `crate::outcome`, madsim. Never:
//! `crate::net` (hosts never import each other).

pub mod by_id;
pub mod compute;
pub mod faults;
pub mod inbox;
pub mod net;
pub mod net_flows;
pub mod node;
pub mod observer;
pub mod run;
pub mod world;

pub use run::{run, run_once, RunOptions, RunResult};
