//! pssim: a deterministic simulator for parameter-server machine learning.
//!
//! Data flows through the modules like this:
//!
//! ```text
//!  scenario (TOML) ──► sim::run ──► madsim runtime (seeded clock + RNG)
//!                        │             one task per node, driving:
//!                        │               core::{Server, Worker, Coordinator}
//!                        │             messages over sim::net (latency,
//!                        │             bandwidth, faults)
//!                        ▼
//!                   trace events ──► check::* (one property per file)
//!                        │        └─► trace hash, JSONL trace
//!                        ▼
//!                   outcome (JSON / summary)
//! ```
//!
//! - [`core`]: the protocol as sans-IO state machines.
//! - [`ml`]: data sets and models (what the workers compute).
//! - [`scenario`]: the scenario file format.
//! - [`sim`]: the madsim host: nodes, network, faults, compute time.
//! - [`check`]: properties checked over a run's events.
//! - [`net`]: real mode: the same core over TCP (`pssim node`, `pssim local`).

#[cfg(not(any(madsim, ps_real)))]
compile_error!(
    "pssim must be built with `--cfg madsim` (set in .cargo/config.toml). \
     A RUSTFLAGS environment variable replaces that setting: use \
     RUSTFLAGS=\"--cfg madsim ...\"."
);

pub mod bench;
pub mod check;
pub mod core;
pub mod ml;
pub mod net;
pub mod outcome;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod shrink;
pub mod sim;
pub mod summary;
pub mod sweep;
pub mod trace;
