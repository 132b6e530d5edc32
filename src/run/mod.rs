//! The host-neutral run layer: what the simulator (`crate::sim`) and real
//! mode (`crate::net`) share, so that both hosts turn a scenario into the
//! same protocol configuration and job, and turn a run's events into the
//! same records and the same [`crate::outcome::Outcome`].
//!
//! ```text
//!  Scenario ──► setup::{protocol_config, job}        (both hosts)
//!           ──► setup::cost_model ──► cost::CostModel (step and server CPU costs)
//!           ──► plan::Plan (faults + [chaos] draws)   (the host injects them)
//!  host events ──► collect::Collector::record ──► trace::Recorder (hash, checkers)
//!                                              ├─► metrics (series), failover, timeline
//!  host's resource use ──► Collector::{busy, delivered} ──► load::LoadMeter (if fed)
//!  host's end-of-run account (finals::FinalReplica, sample::Sample, metrics::Traffic)
//!           ──► assemble::{empty, complete} ──► Outcome (judged)
//! ```
//!
//! May import: `crate::core`, `crate::ml`, `crate::scenario`,
//! `crate::check`, `crate::trace`, `crate::outcome` (the type it
//! assembles). Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

pub mod assemble;
pub mod chaos;
pub mod collect;
pub mod cost;
pub mod failover;
pub mod finals;
pub mod load;
pub mod metrics;
pub mod plan;
pub mod sample;
pub mod setup;
pub mod timeline;
