//! pssim: a deterministic simulator for parameter-server machine learning.
//!
//! Layers, from the bottom up (each imports only those below it, and the
//! two hosts never import each other):
//!
//! ```text
//!  core (protocol, sans-IO) · ml (data, models) · scenario (file format)
//!    │
//!  check (one property per file) · trace (recorder: hash, checkers, JSONL)
//!    │
//!  run (host-neutral: scenario → config/job, fault plan, collector,
//!    │   metrics, timelines, failovers, outcome assembly)
//!    ├──────────────────────────────┐
//!  sim (madsim host)              net (TCP host)
//!    │  seeded clock + network       real sockets + clock
//!    └──────────► events ──► run::collect ──► run::assemble ──► Outcome
//!
//!  outcome · summary · plot · report   (verdicts and views: no host)
//!  sweep · shrink · bench              (tools that drive the simulator)
//!  calibrate                           (measures this machine for the cost model)
//!  cli                                 (the command line; bin/ is a shell)
//! ```
//!
//! - [`core`]: the protocol as sans-IO state machines.
//! - [`ml`]: data sets and models (what the workers compute).
//! - [`scenario`]: the scenario file format.
//! - [`check`]: properties checked over a run's events; [`trace`] feeds them.
//! - [`run`]: what both hosts share, from a scenario to an [`outcome::Outcome`].
//! - [`sim`]: the madsim host: nodes, network, faults, compute time.
//! - [`net`]: real mode: the same core over TCP (`pssim node`, `pssim local`,
//!   `pssim judge`).
//! - [`outcome`], [`summary`], [`plot`], [`report`]: what a run reports.
//! - [`sweep`], [`shrink`], [`bench`]: seeds in parallel, delta debugging,
//!   performance against same-run baselines.
//! - [`calibrate`]: this machine's gradient FLOP rates, server apply rate
//!   and memory bandwidth, as a `[compute]` block (docs/cost-model.md).
//! - [`cli`]: every `pssim` command's body, callable from tests.
//!
//! May import: every module (it declares them). Never: logic of its own.

#[cfg(not(any(madsim, ps_real)))]
compile_error!(
    "pssim must be built with `--cfg madsim` (set in .cargo/config.toml). \
     A RUSTFLAGS environment variable replaces that setting: use \
     RUSTFLAGS=\"--cfg madsim ...\"."
);

// The real build (`cargo build-real`, `--cfg ps_real`) leaves out the
// simulator and the tools that drive it (`bench`, `shrink`, and the part of
// `sweep` that runs seeds); everything else is host-neutral or real mode.
#[cfg(madsim)]
pub mod bench;
pub mod calibrate;
pub mod check;
pub mod cli;
pub mod core;
pub mod ml;
pub mod net;
pub mod outcome;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod sim;
pub mod summary;
pub mod sweep;
pub mod trace;
