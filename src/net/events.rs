//! Where a real node's events go: a shared in-memory log (nodes that are
//! tasks of one process) or a JSON Lines file per node (separate
//! processes), read back and merged by time for the checkers.
//!
//! Each line is `{"t_us": <microseconds since the cluster's time origin>,
//! "ev": "<name>", ...}`, the format of the simulator's `--trace` files.
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use crate::core::Event;
use serde::{Deserialize, Serialize};
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

#[derive(Deserialize)]
struct LineIn {
    t_us: u64,
    #[serde(flatten)]
    ev: Event,
}

/// Whether a line names an event kind this version does not know (written
/// by a newer one): skipped rather than an error.
fn unknown_kind(line: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind {
        ev: String,
    }
    serde_json::from_str::<Kind>(line).is_ok_and(|k| {
        let probe = format!(r#"{{"ev":{:?}}}"#, k.ev);
        serde_json::from_str::<Event>(&probe)
            .err()
            .is_some_and(|e| e.to_string().contains("unknown variant"))
    })
}

/// Reads a JSON Lines event file. Lines of event kinds this version does
/// not know are skipped; a line that is not an event is an error naming the file
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
        match serde_json::from_str::<LineIn>(line) {
            Ok(l) => out.push(Stamped {
                t: Duration::from_micros(l.t_us),
                ev: l.ev,
            }),
            Err(e) if e.is_eof() && i + 1 == lines.len() => {}
            Err(_) if unknown_kind(line) => {}
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
    use crate::core::event::{Added, Bits};
    use crate::core::{Clock, Epoch, NodeId, Seq};

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
                consistency: Some("bsp".into()),
                batch_size: None,
                hidden: Added(Some(vec![96, 32])),
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
        // A kind from a newer version is skipped; a malformed line is not.
        std::fs::write(&path, "{\"t_us\":1,\"ev\":\"from_the_future\",\"x\":1}\n").unwrap();
        assert!(read_jsonl(&path).unwrap().is_empty());
        std::fs::write(&path, "{\"t_us\":1,\"ev\":\"push_acked\"}\n{}\n").unwrap();
        assert!(read_jsonl(&path).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
