//! The cluster file: which scenario a real cluster runs and where each node
//! listens, so the same binary runs a node on any machine.
//!
//! ```toml
//! scenario = "../scenarios/replicated-server-crash.toml"  # relative to this file
//! seed = 7                      # optional: seeds the workers' minibatches (default: the scenario's)
//! events_dir = "events"         # optional: each node writes <node>.jsonl here
//! origin_unix_us = 1732540000000000  # optional: the cluster's time zero (event stamps)
//! max_frame_bytes = 268435456   # optional: largest frame a node accepts (default 256 MiB)
//! step_time = "5ms"             # optional: compute time per minibatch (default: the scenario's)
//! startup_timeout = "60s"       # optional: how long a first life waits for its peers (default 60 s; "0s": not at all)
//!
//! [nodes]
//! coordinator = "10.0.0.1:7000"
//! servers = ["10.0.0.2:7001", "10.0.0.3:7001"]      # cluster.servers of them
//! workers = ["10.0.0.4:7101", "10.0.0.4:7102"]      # cluster.workers of them
//! ```
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use super::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::core::NodeId;
use crate::scenario::{self, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cluster file that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ClusterError {
    /// The cluster file.
    pub file: String,
    /// What is wrong (naming the field) and what would be valid.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: PathBuf,
    seed: Option<u64>,
    events_dir: Option<PathBuf>,
    origin_unix_us: Option<u64>,
    max_frame_bytes: Option<u32>,
    step_time: Option<String>,
    startup_timeout: Option<String>,
    nodes: Nodes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nodes {
    coordinator: String,
    servers: Vec<String>,
    workers: Vec<String>,
}

/// A validated cluster file.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The cluster file itself.
    pub path: PathBuf,
    /// The scenario file (resolved against the cluster file's directory).
    pub scenario_path: PathBuf,
    /// The scenario.
    pub scenario: Scenario,
    /// Seed of the workers' minibatch generators.
    pub seed: u64,
    /// Where nodes write their events, if anywhere.
    pub events_dir: Option<PathBuf>,
    /// The cluster's time zero, in microseconds since the Unix epoch.
    pub origin_unix_us: Option<u64>,
    /// Largest frame a node accepts.
    pub max_frame_bytes: u32,
    /// Compute time per minibatch.
    pub step_time: Duration,
    /// How long a node's first life waits, before its first step, until
    /// every peer accepts connections (the start-up barrier,
    /// [`super::conn::await_peers`]); zero: it does not wait. Default
    /// [`DEFAULT_STARTUP_TIMEOUT`].
    pub startup_timeout: Duration,
    /// Every node's address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
}

/// How long a node waits for its peers at start unless the cluster file
/// says otherwise: time for an operator to start every node by hand.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<Cluster, ClusterError> {
        let err = |message: String| ClusterError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the cluster file: {e}")))?;
        let f: File = toml::from_str(&text).map_err(|e| err(toml_message(&e, &text)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let scenario_path = base.join(&f.scenario);
        let scn =
            scenario::load(&scenario_path).map_err(|e| err(format!("field `scenario`: {e}")))?;
        let mut peers = BTreeMap::new();
        let mut add = |id: NodeId, field: String, addr: &str| -> Result<(), ClusterError> {
            let a: SocketAddr = addr.parse().map_err(|_| {
                err(format!(
                    "field `{field}`: {addr:?} is not an address (expected IP:PORT, e.g. \"127.0.0.1:7000\")"
                ))
            })?;
            if let Some((other, _)) = peers.iter().find(|(_, &b)| b == a) {
                return Err(err(format!(
                    "field `{field}`: {a} is also the address of {other}"
                )));
            }
            peers.insert(id, a);
            Ok(())
        };
        add(
            NodeId::Coordinator,
            "nodes.coordinator".into(),
            &f.nodes.coordinator,
        )?;
        let count = |field: &str, got: usize, want: u32| {
            if got == want as usize {
                Ok(())
            } else {
                Err(err(format!(
                    "field `nodes.{field}`: {got} address(es), but the scenario ({}) has {want} {field}",
                    scenario_path.display()
                )))
            }
        };
        count("servers", f.nodes.servers.len(), scn.cluster.servers)?;
        count("workers", f.nodes.workers.len(), scn.cluster.workers)?;
        for (i, a) in f.nodes.servers.iter().enumerate() {
            add(NodeId::Server(i as u32), format!("nodes.servers[{i}]"), a)?;
        }
        for (i, a) in f.nodes.workers.iter().enumerate() {
            add(NodeId::Worker(i as u32), format!("nodes.workers[{i}]"), a)?;
        }
        let max_frame_bytes = f.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
        if max_frame_bytes < 1024 {
            return Err(err(format!(
                "field `max_frame_bytes`: {max_frame_bytes} is too small (at least 1024)"
            )));
        }
        let step_time = match &f.step_time {
            None => scn.compute.real_step_time(),
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                err(format!(
                    "field `step_time`: {s:?}: {e} (expected a duration such as \"5ms\")"
                ))
            })?,
        };
        let startup_timeout = match &f.startup_timeout {
            None => DEFAULT_STARTUP_TIMEOUT,
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                err(format!(
                    "field `startup_timeout`: {s:?}: {e} (expected a duration such as \"60s\", or \"0s\" not to wait)"
                ))
            })?,
        };
        Ok(Cluster {
            path: path.to_path_buf(),
            seed: f.seed.unwrap_or(scn.seed),
            events_dir: f.events_dir.map(|d| base.join(d)),
            origin_unix_us: f.origin_unix_us,
            max_frame_bytes,
            step_time,
            startup_timeout,
            scenario_path,
            scenario: scn,
            peers,
        })
    }

    /// The address of a node of the cluster.
    pub fn addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.peers.get(&id).copied()
    }
}

/// A toml error as `line L, column C: message`.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg.to_string(),
    }
}

/// What [`write`] puts in a cluster file.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The scenario file (written as an absolute path).
    pub scenario: PathBuf,
    /// Seed of the workers' generators.
    pub seed: u64,
    /// Events directory.
    pub events_dir: Option<PathBuf>,
    /// Time zero.
    pub origin_unix_us: Option<u64>,
    /// Compute time per minibatch, if not the scenario's.
    pub step_time: Option<Duration>,
    /// Every node's address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
}

/// Writes a cluster file.
pub fn write(path: &Path, l: &Layout) -> std::io::Result<()> {
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let mut s = String::from("# Written by `pssim local`.\n");
    let _ = writeln!(s, "scenario = {}", quote(&l.scenario));
    let _ = writeln!(s, "seed = {}", l.seed);
    if let Some(d) = &l.events_dir {
        let _ = writeln!(s, "events_dir = {}", quote(d));
    }
    if let Some(o) = l.origin_unix_us {
        let _ = writeln!(s, "origin_unix_us = {o}");
    }
    if let Some(t) = l.step_time {
        let _ = writeln!(s, "step_time = \"{}us\"", t.as_micros());
    }
    let list = |pred: fn(&NodeId) -> bool| {
        l.peers
            .iter()
            .filter(|(id, _)| pred(id))
            .map(|(_, a)| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "\n[nodes]");
    if let Some(a) = l.peers.get(&NodeId::Coordinator) {
        let _ = writeln!(s, "coordinator = \"{a}\"");
    }
    let _ = writeln!(s, "servers = [{}]", list(|id| id.server().is_some()));
    let _ = writeln!(s, "workers = [{}]", list(|id| id.worker().is_some()));
    std::fs::write(path, s)
}

/// Free loopback addresses for every node of a scenario's cluster, with
/// the listeners that hold them (drop them before other processes bind).
pub fn loopback_layout(
    scn: &Scenario,
) -> std::io::Result<(BTreeMap<NodeId, SocketAddr>, Vec<std::net::TcpListener>)> {
    let mut peers = BTreeMap::new();
    let mut held = Vec::new();
    for id in crate::run::plan::all_nodes(scn.cluster.servers, scn.cluster.workers) {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        peers.insert(id, l.local_addr()?);
        held.push(l);
    }
    Ok((peers, held))
}
