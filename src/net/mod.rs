//! Real mode: the protocol core over TCP, with real time.
//!
//! The same sans-IO state machines the simulator drives (`crate::core`)
//! run here under tokio on real sockets ([`host`]), speaking length-prefixed
//! frames ([`frame`]). A cluster file ([`cluster`]) says where each node
//! listens; `pssim node` runs one node ([`node`]), `pssim local` a whole
//! cluster on loopback ([`local`]); events from every node ([`events`]) are
//! merged by time and judged by the simulator's checkers ([`judge`]).
//!
//! Real tokio (not madsim's) is used: it runs outside any madsim runtime,
//! so this module works in the default (`--cfg madsim`) build as well as in
//! the real build (`cargo build-real`). The real build has `pssim node`
//! only: `local` and `judge` build the simulator's `Outcome`, which needs
//! the default build.

pub mod alloc;
pub mod bench;
pub mod cluster;
pub mod events;
pub mod frame;
pub mod host;
#[cfg(madsim)]
pub mod judge;
#[cfg(madsim)]
pub mod local;
pub mod node;
