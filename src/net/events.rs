//! Where a real node's events go: a shared in-memory log (nodes that are
//! tasks of one process) or a JSON Lines file per node (separate
//! processes), read back and merged by time for the checkers.
//!
//! Each line is `{"t_us": <microseconds since the cluster's time origin>,
//! "ev": "<name>", ...}`, the format of the simulator's `--trace` files.

use crate::core::event::Bits;
use crate::core::{Clock, Epoch, Event, NodeId, RangeId, Seq, WorkerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, LineWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event with the real time it happened (since the time origin).
#[derive(Clone, Debug)]
pub struct Stamped {
    /// Time since the cluster's origin.
    pub t: Duration,
    /// What happened.
    pub ev: Event,
}

/// Where events go.
#[derive(Clone, Debug)]
pub enum EventSink {
    /// Appended to a log shared by every node of the process, stamped under
    /// its lock: the log is in a real-time order consistent with causality.
    Memory(Arc<Mutex<Vec<Stamped>>>),
    /// Written as JSON Lines, one line per `write`: a killed process loses
    /// nothing it reported.
    Jsonl(Arc<Mutex<LineWriter<File>>>),
    /// Dropped.
    Discard,
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    #[serde(flatten)]
    ev: &'a Event,
}

impl EventSink {
    /// A file sink writing to `path` (created or truncated).
    pub fn jsonl(path: &Path) -> std::io::Result<EventSink> {
        Ok(EventSink::Jsonl(Arc::new(Mutex::new(LineWriter::new(
            File::create(path)?,
        )))))
    }

    /// Records `ev` now, measured from `origin`.
    pub fn record(&self, origin: Instant, ev: Event) {
        match self {
            EventSink::Memory(log) => {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                let t = origin.elapsed();
                log.push(Stamped { t, ev });
            }
            EventSink::Jsonl(w) => {
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                let line = Line {
                    t_us: origin.elapsed().as_micros() as u64,
                    ev: &ev,
                };
                let mut text = serde_json::to_vec(&line).expect("events serialize");
                text.push(b'\n');
                if let Err(e) = w.write_all(&text) {
                    eprintln!("pssim: cannot write an event: {e}");
                }
            }
            EventSink::Discard => {}
        }
    }
}

/// `Event` as read back from JSON (the core's type only serializes: its
/// names are `&'static str`). Variants the TCP host never writes
/// (deliveries, drops, timers, faults) and unknown ones map to `Other`.
#[derive(Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
enum Wire {
    Crash {
        node: NodeId,
    },
    Restart {
        node: NodeId,
    },
    WorkerAdmitted {
        worker: WorkerId,
        incarnation: u32,
        clock: Clock,
    },
    WorkerRemoved {
        worker: WorkerId,
        incarnation: u32,
    },
    View {
        epoch: Epoch,
        chains: Vec<Vec<NodeId>>,
    },
    PushApplied {
        server: NodeId,
        range: RangeId,
        worker: WorkerId,
        seq: Seq,
        clock: Clock,
    },
    PushAcked {
        worker: WorkerId,
        range: RangeId,
        seq: Seq,
        clock: Clock,
    },
    PullAnswered {
        server: NodeId,
        range: RangeId,
        worker: WorkerId,
        clock: Clock,
        bound: Option<u32>,
    },
    PullFilterMismatch {
        worker: WorkerId,
        range: RangeId,
        clock: Clock,
    },
    WorkerClock {
        worker: WorkerId,
        clock: Clock,
    },
    WorkerDone {
        worker: WorkerId,
        clock: Clock,
    },
    CatchUp {
        server: NodeId,
        range: RangeId,
        from: NodeId,
    },
    Checkpoint {
        server: NodeId,
        range: RangeId,
    },
    Restore {
        server: NodeId,
        range: RangeId,
    },
    ChangeApplied {
        node: NodeId,
        change: u64,
        clock: Clock,
        learning_rate: Option<f32>,
        staleness: Option<u32>,
        consistency: Option<String>,
        batch_size: Option<u32>,
    },
    ReplicaDropped {
        server: NodeId,
        range: RangeId,
    },
    Final {
        server: NodeId,
        range: RangeId,
        digest: String,
        applied: u64,
        applied_set: String,
        clock_table: String,
        dedup_table: String,
    },
    #[serde(other)]
    Other,
}

/// A name read back as the `&'static str` events carry: each distinct name
/// is allocated once per process.
fn intern(s: String) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&n) = names.get(s.as_str()) {
        return n;
    }
    let n: &'static str = Box::leak(s.into_boxed_str());
    names.insert(n);
    n
}

impl Wire {
    fn into_event(self) -> Option<Event> {
        Some(match self {
            Wire::Crash { node } => Event::Crash { node },
            Wire::Restart { node } => Event::Restart { node },
            Wire::WorkerAdmitted {
                worker,
                incarnation,
                clock,
            } => Event::WorkerAdmitted {
                worker,
                incarnation,
                clock,
            },
            Wire::WorkerRemoved {
                worker,
                incarnation,
            } => Event::WorkerRemoved {
                worker,
                incarnation,
            },
            Wire::View { epoch, chains } => Event::View { epoch, chains },
            Wire::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
            } => Event::PushApplied {
                server,
                range,
                worker,
                seq,
                clock,
            },
            Wire::PushAcked {
                worker,
                range,
                seq,
                clock,
            } => Event::PushAcked {
                worker,
                range,
                seq,
                clock,
            },
            Wire::PullAnswered {
                server,
                range,
                worker,
                clock,
                bound,
            } => Event::PullAnswered {
                server,
                range,
                worker,
                clock,
                bound,
            },
            Wire::PullFilterMismatch {
                worker,
                range,
                clock,
            } => Event::PullFilterMismatch {
                worker,
                range,
                clock,
            },
            Wire::WorkerClock { worker, clock } => Event::WorkerClock { worker, clock },
            Wire::WorkerDone { worker, clock } => Event::WorkerDone { worker, clock },
            Wire::CatchUp {
                server,
                range,
                from,
            } => Event::CatchUp {
                server,
                range,
                from,
            },
            Wire::Checkpoint { server, range } => Event::Checkpoint { server, range },
            Wire::Restore { server, range } => Event::Restore { server, range },
            Wire::ChangeApplied {
                node,
                change,
                clock,
                learning_rate,
                staleness,
                consistency,
                batch_size,
            } => Event::ChangeApplied {
                node,
                change,
                clock,
                learning_rate: learning_rate.map(Bits),
                staleness,
                consistency: consistency.map(intern),
                batch_size,
            },
            Wire::ReplicaDropped { server, range } => Event::ReplicaDropped { server, range },
            Wire::Final {
                server,
                range,
                digest,
                applied,
                applied_set,
                clock_table,
                dedup_table,
            } => Event::Final {
                server,
                range,
                digest,
                applied,
                applied_set,
                clock_table,
                dedup_table,
            },
            Wire::Other => return None,
        })
    }
}

#[derive(Deserialize)]
struct WireLine {
    t_us: u64,
    #[serde(flatten)]
    ev: Wire,
}

/// Reads a JSON Lines event file. Lines of events the checkers do not use
/// are skipped; a line that is not an event is an error naming the file
/// and line. A last line cut short (its writer was killed mid-write) is
/// ignored.
pub fn read_jsonl(path: &Path) -> Result<Vec<Stamped>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<WireLine>(line) {
            Ok(w) => {
                if let Some(ev) = w.ev.into_event() {
                    out.push(Stamped {
                        t: Duration::from_micros(w.t_us),
                        ev,
                    });
                }
            }
            Err(e) if e.is_eof() && i + 1 == lines.len() => {}
            Err(e) => return Err(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

/// Merges per-node logs by time; events of one log keep their order, and
/// of equal times the earlier log's come first.
pub fn merge(logs: Vec<Vec<Stamped>>) -> Vec<Stamped> {
    let mut all: Vec<Stamped> = logs.into_iter().flatten().collect();
    all.sort_by_key(|s| s.t);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_jsonl() {
        let dir = std::env::temp_dir().join(format!("pssim-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.jsonl");
        let sink = EventSink::jsonl(&path).unwrap();
        let evs = vec![
            Event::PushAcked {
                worker: 1,
                range: 0,
                seq: Seq {
                    incarnation: 0,
                    n: 4,
                },
                clock: Clock(4),
            },
            Event::ChangeApplied {
                node: NodeId::Server(1),
                change: 1,
                clock: Clock(9),
                learning_rate: Some(Bits(0.5)),
                staleness: None,
                consistency: Some("bsp"),
                batch_size: None,
            },
            Event::View {
                epoch: Epoch(2),
                chains: vec![vec![NodeId::Server(0), NodeId::Server(1)]],
            },
        ];
        let origin = Instant::now();
        for e in &evs {
            sink.record(origin, e.clone());
        }
        let back: Vec<Event> = read_jsonl(&path)
            .unwrap()
            .into_iter()
            .map(|s| s.ev)
            .collect();
        assert_eq!(back, evs);
        std::fs::remove_dir_all(&dir).ok();
    }
}
