//! Real mode: the protocol core over TCP, with real time.
//!
//! The same sans-IO state machines the simulator drives (`crate::core`)
//! run here under tokio on real sockets ([`host`]), speaking length-prefixed
//! frames ([`frame`]) on connections that notice when they stall
//! ([`conn`]), heartbeats as datagrams ([`datagram`]). A cluster file
//! ([`cluster`]) says where each node listens; `pssim node` runs one
//! node ([`node`]), keeping its durable state in a data directory
//! ([`store`]), `pssim local` a whole cluster on loopback ([`local`]); events from every node ([`events`], Lamport-stamped,
//! one file per node life) are merged in logical order and judged by the
//! simulator's checkers ([`judge`], `pssim judge`).
//!
//! Real tokio (not madsim's) is used: it runs outside any madsim runtime,
//! so this module works in the default (`--cfg madsim`) build as well as in
//! the real build (`cargo build-real`). Setup, the collector and the
//! outcome assembly are host-neutral (`crate::run`), shared with the
//! simulator.
//!
//! May import: `crate::core`, `crate::ml`, `crate::scenario`, `crate::run`,
//! `crate::check`, `crate::trace`, `crate::outcome`, tokio, postcard (the
//! state files of [`store`]), socket2 (connection options, [`conn`]). Never:
//! `crate::sim` (hosts never import each other), madsim.

pub mod alloc;
pub mod bench;
pub mod cluster;
pub mod conn;
pub mod datagram;
pub mod events;
pub mod faults;
pub mod frame;
pub mod host;
pub mod judge;
pub mod local;
pub mod node;
pub mod store;
