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

// The real build (`cargo build-real`, `--cfg ps_real`) has no simulator:
// the modules that need madsim's runtime, and those built on a simulated
// run's outcome, are left out; `net` (`pssim node`) and what it needs stay.
#[cfg(madsim)]
pub mod bench;
pub mod check;
pub mod core;
pub mod ml;
pub mod net;
#[cfg(madsim)]
pub mod outcome;
#[cfg(madsim)]
pub mod plot;
#[cfg(madsim)]
pub mod report;
pub mod scenario;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod sim;
/// The real build keeps only the simulator's madsim-free scenario setup.
#[cfg(not(madsim))]
pub mod sim {
    pub mod setup;
}
#[cfg(madsim)]
pub mod summary;
#[cfg(madsim)]
pub mod sweep;
pub mod trace;
