//! Identifiers shared by every part of the protocol: nodes, clocks, push
//! sequence numbers and view epochs.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A node of the cluster. Printed and parsed as `server-3`, `worker-0`,
/// `coordinator`: the names scenario files and traces use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    /// The single coordinator (membership, views, failure detection).
    Coordinator,
    /// Server `i`, `0 <= i < cluster.servers`.
    Server(u32),
    /// Worker `i`, `0 <= i < cluster.workers`.
    Worker(u32),
}

impl NodeId {
    /// The worker index, if this is a worker.
    pub fn worker(self) -> Option<u32> {
        match self {
            NodeId::Worker(w) => Some(w),
            _ => None,
        }
    }

    /// The server index, if this is a server.
    pub fn server(self) -> Option<u32> {
        match self {
            NodeId::Server(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Coordinator => f.write_str("coordinator"),
            NodeId::Server(i) => write!(f, "server-{i}"),
            NodeId::Worker(i) => write!(f, "worker-{i}"),
        }
    }
}

impl FromStr for NodeId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "coordinator" {
            return Ok(NodeId::Coordinator);
        }
        let parse_index = |rest: &str| {
            rest.parse::<u32>()
                .map_err(|_| format!("bad node index in {s:?}"))
        };
        if let Some(rest) = s.strip_prefix("server-") {
            return parse_index(rest).map(NodeId::Server);
        }
        if let Some(rest) = s.strip_prefix("worker-") {
            return parse_index(rest).map(NodeId::Worker);
        }
        Err(format!(
            "unknown node {s:?}: expected server-<i>, worker-<i> or coordinator"
        ))
    }
}

/// Serializes a type as its `Display` string and parses it back with
/// `FromStr` (node names, `seq`s: readable in traces and scenario files).
macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(NodeId);

/// A worker's iteration counter. A worker at clock `c` pulls, computes one
/// minibatch and pushes; its push "for clock c" completes that clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Clock(pub u32);

impl Clock {
    /// The clock after this one.
    pub fn next(self) -> Clock {
        Clock(self.0 + 1)
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A push's identity for exactly-once application: the worker's incarnation
/// (bumped on every restart) and a counter within it. Retries reuse the
/// sequence number; ordering is lexicographic, so a restarted worker's pushes
/// always sort after its earlier life's. Printed as `"incarnation.n"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq {
    /// How many times the worker has started before this life.
    pub incarnation: u32,
    /// Counter of pushes within this incarnation, from 0.
    pub n: u64,
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.incarnation, self.n)
    }
}

impl FromStr for Seq {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('.')
            .ok_or_else(|| format!("bad seq {s:?}: expected \"incarnation.n\""))?;
        Ok(Seq {
            incarnation: a.parse().map_err(|_| format!("bad seq {s:?}"))?,
            n: b.parse().map_err(|_| format!("bad seq {s:?}"))?,
        })
    }
}

serde_as_string!(Seq);

/// A view's number. Every reconfiguration publishes a view with a higher
/// epoch; nodes reject requests stamped with an older one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Index of a key range (`0 <= r < servers`).
pub type RangeId = u32;

/// Index of a worker (`0 <= w < workers`).
pub type WorkerId = u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        for n in [NodeId::Coordinator, NodeId::Server(3), NodeId::Worker(12)] {
            assert_eq!(n.to_string().parse::<NodeId>().unwrap(), n);
        }
        assert!("server-x".parse::<NodeId>().is_err());
        assert!("client-1".parse::<NodeId>().is_err());
    }

    #[test]
    fn seq_orders_by_incarnation_first() {
        let a = Seq {
            incarnation: 0,
            n: 99,
        };
        let b = Seq {
            incarnation: 1,
            n: 0,
        };
        assert!(a < b);
        assert_eq!("1.0".parse::<Seq>().unwrap(), b);
    }
}
