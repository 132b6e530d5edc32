//! Where a real node's events go, with the logical clock that orders them
//! across machines; and how an events directory is read back and merged
//! for the checkers ([`super::judge`]).
//!
//! Every life of a node (one `--incarnation`) writes one JSON Lines file,
//! `<events_dir>/<node>-<incarnation>.jsonl`:
//!
//! ```text
//! {"header":{"pssim_events":2,"node":"server-1","incarnation":0,"seed":7,"scenario":"<TOML>",..}}
//! {"t_us":15005,"n":0,"lamport":15005,"ev":"worker_clock","worker":2,"clock":0}
//! ...                                  (one line per event, written as it happens)
//! {"final":{"id":"server-1","stats":{..},"replicas":[..],..}}   (when told to finish)
//! ```
//!
//! - `header`: what the directory needs to be judged on its own (the
//!   scenario as TOML, the seed, who wrote the file).
//! - `t_us`: the node's wall clock, microseconds since the cluster's origin:
//!   for time-based judgements only (liveness windows, time axes).
//! - `n`: the event's number in this file (0, 1, ...): the node's own order.
//! - `lamport`: the node's logical clock, a Lamport clock bounded below by
//!   the wall clock (a hybrid logical clock): each event or send takes
//!   `max(last + 1, t_us)`; a message carries its sender's stamp (in its
//!   frame, [`super::frame`]) and its receiver's clock moves to at least
//!   that. So an event caused by a message has a larger stamp than every
//!   event before the sending, whatever the machines' wall clocks say, and
//!   concurrent events keep roughly their wall-clock order. A later life
//!   continues from the last stamp of the life before it (read from its
//!   file in the same directory).
//! - `final`: the node's report (a server's replicas: the parameters the
//!   run's accuracy is computed from); a life without one died.
//!
//! `pssim local` adds `supervisor-0.jsonl`: the faults it began and healed,
//! the lives it killed (`crash` lines with `life`), and an `end` record
//! (when and how the run stopped).
//!
//! [`read_dir`] reads a directory back; [`merge`] orders every event by
//! `(lamport, node, incarnation, n)`: a total order that keeps each node's
//! own order exactly and puts every message's effects after its causes.
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use super::host::NodeReport;
use crate::core::{Event, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The version of the events file format this build writes and reads.
pub const FORMAT: u32 = 2;

/// One event with the real time it happened (since the time origin).
#[derive(Clone, Debug)]
pub struct Stamped {
    /// Time since the cluster's origin.
    pub t: Duration,
    /// What happened.
    pub ev: Event,
}

/// The first line of every events file: enough to judge the directory
/// without anything else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The file format ([`FORMAT`]).
    pub pssim_events: u32,
    /// Who wrote the file: a node's name, or `supervisor`.
    pub node: String,
    /// The node's life (0 for the supervisor).
    pub incarnation: u32,
    /// Seed of the workers' generators.
    pub seed: u64,
    /// Where the scenario came from (for messages).
    pub scenario_file: String,
    /// The scenario, as a file that parses back to it.
    pub scenario: String,
    /// The cluster's time origin, if one was given (Unix microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_unix_us: Option<u64>,
    /// The pssim version that wrote the file.
    pub pssim: String,
}

impl Header {
    /// The header of node `node`'s life `incarnation`.
    pub fn new(
        node: &str,
        incarnation: u32,
        seed: u64,
        scenario: &crate::scenario::Scenario,
    ) -> Header {
        Header {
            pssim_events: FORMAT,
            node: node.to_string(),
            incarnation,
            seed,
            scenario_file: scenario.name.clone(),
            scenario: scenario.to_toml(),
            origin_unix_us: None,
            pssim: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// How a supervised run stopped (`pssim local`'s `end` record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// When training finished or the run was stopped (µs since origin).
    pub end_us: u64,
    /// Wall seconds of the whole run until then (start-up included).
    pub wall_s: f64,
    /// `finished` or `max_time`.
    pub stopped: String,
    /// Whether every server was quiet and held the last view at the end.
    pub quiet: bool,
    /// When the last fault healed (µs since origin); `None`: some fault
    /// never heals.
    pub heal_us: Option<u64>,
    /// How the run was started.
    pub reproduce: String,
}

struct Inner {
    out: Option<LineWriter<File>>,
    path: Option<PathBuf>,
    /// Events written (the next one's `n`).
    n: u64,
    /// The logical clock.
    lamport: u64,
}

/// Where a node's events go, and its logical clock. Clones share both.
#[derive(Clone)]
pub struct EventSink(Arc<Mutex<Inner>>);

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("EventSink")
            .field("path", &g.path)
            .field("n", &g.n)
            .field("lamport", &g.lamport)
            .finish()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    n: u64,
    lamport: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    life: Option<u32>,
    #[serde(flatten)]
    ev: &'a Event,
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    header: &'a Header,
}

#[derive(Serialize)]
struct FinalLine<'a> {
    #[serde(rename = "final")]
    report: &'a NodeReport,
}

#[derive(Serialize)]
struct EndLine<'a> {
    end: &'a RunEnd,
}

impl EventSink {
    /// A sink that writes nothing (its clock still runs: the node's
    /// messages carry stamps either way).
    pub fn discard() -> EventSink {
        EventSink(Arc::new(Mutex::new(Inner {
            out: None,
            path: None,
            n: 0,
            lamport: 0,
        })))
    }

    /// The file of `header`'s node and life in `dir` (created, or
    /// truncated), its header written. A later life's clock starts after
    /// the last stamp of the latest earlier life found in `dir` (a warning
    /// on stderr if there is none: its events may then sort before the
    /// earlier life's, and `pssim judge` refuses the directory).
    pub fn create(dir: &Path, header: &Header) -> Result<EventSink, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{}-{}.jsonl", header.node, header.incarnation));
        let mut lamport = 0;
        if header.incarnation > 0 {
            match (0..header.incarnation).rev().find_map(|i| {
                let p = dir.join(format!("{}-{i}.jsonl", header.node));
                p.exists().then(|| last_lamport(&p).map(|l| (p, l)))
            }) {
                Some(Ok((_, l))) => lamport = l,
                Some(Err(e)) => return Err(e),
                None => eprintln!(
                    "pssim {}: no earlier life's events in {}: this life's logical clock starts \
                     from its wall clock, not after the earlier life's last event",
                    header.node,
                    dir.display()
                ),
            }
        }
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sink = EventSink(Arc::new(Mutex::new(Inner {
            out: Some(LineWriter::new(file)),
            path: Some(path.clone()),
            n: 0,
            lamport,
        })));
        sink.write_line(&HeaderLine { header })
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(sink)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_line<T: Serialize>(&self, line: &T) -> std::io::Result<()> {
        let mut g = self.lock();
        write_to(&mut g, line)
    }

    /// Records `ev` now, measured from `origin`.
    pub fn record(&self, origin: Instant, ev: Event) {
        self.record_life(origin.elapsed(), None, &ev);
    }

    /// Records `ev` at `t` (since the origin), with the life it concerns
    /// (the supervisor's `crash` lines).
    pub fn record_life(&self, t: Duration, life: Option<u32>, ev: &Event) {
        let mut g = self.lock();
        let t_us = t.as_micros() as u64;
        g.lamport = (g.lamport + 1).max(t_us);
        let line = Line {
            t_us,
            n: g.n,
            lamport: g.lamport,
            life,
            ev,
        };
        g.n += 1;
        if let Err(e) = write_to(&mut g, &line) {
            eprintln!("pssim: cannot write an event: {e}");
        }
    }

    /// The stamp for a message sent now (`now` since the origin): the
    /// clock's next value.
    pub fn stamp_send(&self, now: Duration) -> u64 {
        let mut g = self.lock();
        g.lamport = (g.lamport + 1).max(now.as_micros() as u64);
        g.lamport
    }

    /// A message stamped `lamport` arrived: the clock moves to at least
    /// that, so what it causes is stamped after it.
    pub fn on_receive(&self, lamport: u64) {
        let mut g = self.lock();
        g.lamport = g.lamport.max(lamport);
    }

    /// The clock's current value.
    pub fn lamport(&self) -> u64 {
        self.lock().lamport
    }

    /// Writes the node's final report (the file's last line).
    pub fn final_report(&self, report: &NodeReport) -> Result<(), String> {
        let path = self.lock().path.clone();
        self.write_line(&FinalLine { report }).map_err(|e| {
            format!(
                "{}: cannot write the final report: {e}",
                path.unwrap_or_default().display()
            )
        })
    }

    /// Writes how a supervised run ended (the supervisor file's last line).
    pub fn end(&self, end: &RunEnd) -> Result<(), String> {
        let path = self.lock().path.clone();
        self.write_line(&EndLine { end })
            .map_err(|e| format!("{}: {e}", path.unwrap_or_default().display()))
    }
}

fn write_to<T: Serialize>(g: &mut Inner, line: &T) -> std::io::Result<()> {
    let Some(w) = g.out.as_mut() else {
        return Ok(());
    };
    let mut text = serde_json::to_vec(line).expect("event lines serialize");
    text.push(b'\n');
    w.write_all(&text)
}

/// The last stamp written to an events file (0 if none).
fn last_lamport(path: &Path) -> Result<u64, String> {
    #[derive(Deserialize)]
    struct Stamp {
        lamport: Option<u64>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Stamp>(l).ok()?.lamport)
        .max()
        .unwrap_or(0))
}

/// One event as read back from a file.
#[derive(Clone, Debug)]
pub struct Logged {
    /// Wall time since the origin (the writer's clock).
    pub t: Duration,
    /// Its number in its file.
    pub n: u64,
    /// Its logical stamp.
    pub lamport: u64,
    /// The life it concerns (the supervisor's `crash` lines).
    pub life: Option<u32>,
    /// What happened.
    pub ev: Event,
}

/// One file of an events directory, read back.
#[derive(Clone, Debug)]
pub struct LogFile {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: Header,
    /// Its events, in its order.
    pub events: Vec<Logged>,
    /// The node's final report, if it wrote one.
    pub report: Option<NodeReport>,
    /// The supervisor's end record, if any.
    pub end: Option<RunEnd>,
}

#[derive(Deserialize)]
struct LineIn {
    t_us: u64,
    n: u64,
    lamport: u64,
    #[serde(default)]
    life: Option<u32>,
    #[serde(flatten)]
    ev: Event,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    header: Header,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinalIn {
    #[serde(rename = "final")]
    report: NodeReport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndIn {
    end: RunEnd,
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

/// Reads one events file. Lines of event kinds this version does not know
/// are skipped; anything else that is not a record is an error naming the
/// file and line. A last line cut short (its writer was killed mid-write)
/// is ignored.
pub fn read_file(path: &Path) -> Result<LogFile, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let at =
        |i: usize, what: &dyn std::fmt::Display| format!("{}:{}: {what}", path.display(), i + 1);
    let first = lines.first().map(String::as_str).unwrap_or("");
    let header = match serde_json::from_str::<HeaderIn>(first) {
        Ok(h) => h.header,
        Err(e) => {
            return Err(at(
                0,
                &format!(
                    "not a pssim events file: its first line must be a header record \
                     ({{\"header\":{{\"pssim_events\":{FORMAT},..}}}}, written by pssim node and \
                     pssim local of this version): {e}"
                ),
            ))
        }
    };
    if header.pssim_events != FORMAT {
        return Err(at(
            0,
            &format!(
                "events format {} (this pssim reads format {FORMAT}: judge with the build that wrote it)",
                header.pssim_events
            ),
        ));
    }
    let mut out = LogFile {
        path: path.to_path_buf(),
        header,
        events: Vec::new(),
        report: None,
        end: None,
    };
    for (i, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let last = i + 1 == lines.len();
        if out.report.is_some() || out.end.is_some() {
            return Err(at(i, &"a record after the final one"));
        }
        if line.starts_with("{\"final\"") {
            match serde_json::from_str::<FinalIn>(line) {
                Ok(f) => out.report = Some(f.report),
                Err(e) if e.is_eof() && last => {}
                Err(e) => return Err(at(i, &format!("bad final report: {e}"))),
            }
            continue;
        }
        if line.starts_with("{\"end\"") {
            match serde_json::from_str::<EndIn>(line) {
                Ok(f) => out.end = Some(f.end),
                Err(e) if e.is_eof() && last => {}
                Err(e) => return Err(at(i, &format!("bad end record: {e}"))),
            }
            continue;
        }
        match serde_json::from_str::<LineIn>(line) {
            Ok(l) => {
                if let Some(prev) = out.events.last() {
                    if l.lamport <= prev.lamport || l.n <= prev.n {
                        return Err(at(
                            i,
                            &format!(
                                "event n={} lamport={} does not follow n={} lamport={}: the \
                                 file's order is broken (edited or mixed files?)",
                                l.n, l.lamport, prev.n, prev.lamport
                            ),
                        ));
                    }
                }
                out.events.push(Logged {
                    t: Duration::from_micros(l.t_us),
                    n: l.n,
                    lamport: l.lamport,
                    life: l.life,
                    ev: l.ev,
                });
            }
            Err(e) if e.is_eof() && last => {}
            Err(_) if unknown_kind(line) => {}
            Err(e) => return Err(at(i, &e)),
        }
    }
    Ok(out)
}

/// An events directory, read back and checked.
#[derive(Clone, Debug)]
pub struct EventsDir {
    /// The directory.
    pub dir: PathBuf,
    /// The header every file agrees on (scenario, seed), from the first
    /// file.
    pub header: Header,
    /// Each node's lives, in incarnation order.
    pub lives: BTreeMap<NodeId, Vec<LogFile>>,
    /// The supervisor's file, if the run was supervised (`pssim local`).
    pub supervisor: Option<LogFile>,
}

/// Reads every `*.jsonl` file of `dir` (or of `dir/events`, the layout of
/// `pssim local --dir`). Errors name the file: a file that is not an
/// events file, files of different scenarios or seeds, two files of one
/// life, a later life whose clock does not continue its earlier one's.
pub fn read_dir(dir: &Path) -> Result<EventsDir, String> {
    let dir = if dir.join("events").is_dir() && !has_jsonl(dir)? {
        dir.join("events")
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no events files (*.jsonl): give the cluster file's events_dir (or pssim local's --dir)",
            dir.display()
        ));
    }
    let mut header: Option<(PathBuf, Header)> = None;
    let mut lives: BTreeMap<NodeId, Vec<LogFile>> = BTreeMap::new();
    let mut supervisor = None;
    for path in files {
        let f = read_file(&path)?;
        match &header {
            None => header = Some((path.clone(), f.header.clone())),
            Some((first, h)) => {
                if h.scenario != f.header.scenario || h.seed != f.header.seed {
                    return Err(format!(
                        "{}: another run than {}'s ({}): scenario or seed differ (seed {} vs {}); \
                         judge one run's files at a time",
                        path.display(),
                        first.display(),
                        if h.scenario != f.header.scenario {
                            "the scenario differs"
                        } else {
                            "the seed differs"
                        },
                        f.header.seed,
                        h.seed
                    ));
                }
            }
        }
        if f.header.node == "supervisor" {
            if supervisor.is_some() {
                return Err(format!("{}: a second supervisor file", path.display()));
            }
            supervisor = Some(f);
            continue;
        }
        let id: NodeId = f
            .header
            .node
            .parse()
            .map_err(|e| format!("{}:1: field `header.node`: {e}", path.display()))?;
        lives.entry(id).or_default().push(f);
    }
    for (id, ls) in lives.iter_mut() {
        ls.sort_by_key(|f| f.header.incarnation);
        for w in ls.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if a.header.incarnation == b.header.incarnation {
                return Err(format!(
                    "{} and {}: two files of {id}'s life {}",
                    a.path.display(),
                    b.path.display(),
                    a.header.incarnation
                ));
            }
            if let (Some(last), Some(first)) = (a.events.last(), b.events.first()) {
                if first.lamport <= last.lamport {
                    return Err(format!(
                        "{}: {id}'s life {} starts at logical time {}, not after its life {}'s \
                         last event ({}, {}): the later life did not find the earlier one's \
                         file when it started (start every life of a node with the same \
                         events directory)",
                        b.path.display(),
                        b.header.incarnation,
                        first.lamport,
                        a.header.incarnation,
                        last.lamport,
                        a.path.display()
                    ));
                }
            }
        }
    }
    let (_, header) = header.expect("at least one file");
    Ok(EventsDir {
        dir,
        header,
        lives,
        supervisor,
    })
}

fn has_jsonl(dir: &Path) -> Result<bool, String> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .any(|e| e.path().extension().is_some_and(|x| x == "jsonl")))
}

/// Where an event goes in the merged order: logical stamp, then the
/// writer (`None`: the supervisor), its life, its number.
type Key = (u64, Option<NodeId>, u32, u64);

/// Every event of `dir` in one total order consistent with causality:
/// by `(lamport, node, incarnation, n)`. Each node's own order is kept
/// exactly (stamps grow along a file and from one life to the next); an
/// event caused by a message comes after every event its sender had
/// before sending it. A life that ends without a final report, or is
/// followed by a later life, is closed by a `crash` of its node right
/// after its last event (at the supervisor's time for it, if it killed
/// it); the supervisor's other events (faults beginning and healing,
/// which nothing in the nodes' logs depends on) go by their wall time.
///
/// Times are each writer's wall clock, made non-decreasing along the
/// merged order (an event's time is at least its predecessor's), which
/// is what the time-based judgements (liveness, time axes) see.
pub fn merge(dir: &EventsDir) -> Vec<Stamped> {
    let mut keyed: Vec<(Key, Duration, Event)> = Vec::new();
    let killed: BTreeMap<(NodeId, u32), Duration> = dir
        .supervisor
        .iter()
        .flat_map(|s| &s.events)
        .filter_map(|l| match (&l.ev, l.life) {
            (Event::Crash { node }, Some(life)) => Some(((*node, life), l.t)),
            _ => None,
        })
        .collect();
    for (&id, ls) in &dir.lives {
        for (i, f) in ls.iter().enumerate() {
            let inc = f.header.incarnation;
            for l in &f.events {
                keyed.push(((l.lamport, Some(id), inc, l.n), l.t, l.ev.clone()));
            }
            if f.report.is_none() || i + 1 < ls.len() {
                let last = f.events.last();
                let t = killed
                    .get(&(id, inc))
                    .copied()
                    .or(last.map(|l| l.t))
                    .unwrap_or_default();
                let lamport = last.map_or(0, |l| l.lamport).max(t.as_micros() as u64);
                keyed.push((
                    (lamport, Some(id), inc, u64::MAX),
                    t,
                    Event::Crash { node: id },
                ));
            }
        }
    }
    if let Some(s) = &dir.supervisor {
        for l in &s.events {
            if !matches!(l.ev, Event::Crash { .. }) {
                keyed.push(((l.lamport, None, 0, l.n), l.t, l.ev.clone()));
            }
        }
    }
    keyed.sort_by_key(|a| a.0);
    let mut t_max = Duration::ZERO;
    keyed
        .into_iter()
        .map(|(_, t, ev)| {
            t_max = t_max.max(t);
            Stamped { t: t_max, ev }
        })
        .collect()
}

/// The same events ordered by their writers' wall clocks alone (what the
/// merge did before logical stamps): for comparison in tests and docs;
/// wrong as soon as clocks are skewed.
pub fn merge_by_wall_time(dir: &EventsDir) -> Vec<(NodeId, Stamped)> {
    let mut all: Vec<(NodeId, Stamped)> = dir
        .lives
        .iter()
        .flat_map(|(&id, ls)| {
            ls.iter().flat_map(move |f| {
                f.events.iter().map(move |l| {
                    (
                        id,
                        Stamped {
                            t: l.t,
                            ev: l.ev.clone(),
                        },
                    )
                })
            })
        })
        .collect();
    all.sort_by_key(|(_, s)| s.t);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Added, Bits};
    use crate::core::{Clock, Epoch, Seq};

    fn scn() -> crate::scenario::Scenario {
        crate::scenario::parse(
            "name = \"events\"\n[cluster]\nservers = 1\nworkers = 1\n",
            "inline",
        )
        .unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pssim-events-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn acked(n: u64) -> Event {
        Event::PushAcked {
            worker: 0,
            range: 0,
            seq: Seq { incarnation: 0, n },
            clock: Clock(n as u32),
        }
    }

    fn applied(n: u64) -> Event {
        Event::PushApplied {
            server: NodeId::Server(0),
            range: 0,
            worker: 0,
            seq: Seq { incarnation: 0, n },
            clock: Clock(n as u32),
            index: Some(n),
        }
    }

    #[test]
    fn events_round_trip_through_jsonl() {
        let dir = tmp("round-trip");
        let sink = EventSink::create(&dir, &Header::new("server-0", 0, 1, &scn())).unwrap();
        let evs = vec![
            acked(4),
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
        let path = dir.join("server-0-0.jsonl");
        let f = read_file(&path).unwrap();
        assert_eq!(
            f.events.iter().map(|l| l.ev.clone()).collect::<Vec<_>>(),
            evs
        );
        assert_eq!(f.events.iter().map(|l| l.n).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(f.events.windows(2).all(|w| w[0].lamport < w[1].lamport));
        assert_eq!(f.header.node, "server-0");
        assert!(f.report.is_none());
        // A later life continues the clock.
        let last = f.events.last().unwrap().lamport;
        let next = EventSink::create(&dir, &Header::new("server-0", 1, 1, &scn())).unwrap();
        assert_eq!(next.lamport(), last);
        next.record(
            origin,
            Event::Restart {
                node: NodeId::Server(0),
            },
        );
        let d = read_dir(&dir).unwrap();
        assert_eq!(d.lives[&NodeId::Server(0)].len(), 2);
        // A kind from a newer version is skipped; a malformed line is not;
        // a file without a header is refused.
        let head = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            &path,
            format!(
                "{head}\n{{\"t_us\":1,\"n\":0,\"lamport\":1,\"ev\":\"from_the_future\",\"x\":1}}\n"
            ),
        )
        .unwrap();
        assert!(read_file(&path).unwrap().events.is_empty());
        std::fs::write(
            &path,
            format!("{head}\n{{\"t_us\":1,\"n\":0,\"lamport\":1,\"ev\":\"push_acked\"}}\n{{}}\n"),
        )
        .unwrap();
        let e = read_file(&path).unwrap_err();
        assert!(e.contains("server-0-0.jsonl:2:"), "{e}");
        std::fs::write(
            &path,
            "{\"t_us\":1,\"ev\":\"crash\",\"node\":\"server-0\"}\n",
        )
        .unwrap();
        let e = read_file(&path).unwrap_err();
        assert!(e.contains(":1:") && e.contains("header"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A node whose wall clock runs 5 s ahead: by wall time its applies
    /// come after the acknowledgements they cause; by the logical stamps
    /// (the message carried the server's stamp) they come before.
    #[test]
    fn the_merge_follows_messages_not_skewed_wall_clocks() {
        let dir = tmp("skew");
        let server = EventSink::create(&dir, &Header::new("server-0", 0, 1, &scn())).unwrap();
        let worker = EventSink::create(&dir, &Header::new("worker-0", 0, 1, &scn())).unwrap();
        let skew = Duration::from_secs(5);
        for n in 0..3u64 {
            let t = Duration::from_millis(10 * n + 1);
            server.record_life(t + skew, None, &applied(n));
            let stamp = server.stamp_send(t + skew);
            worker.on_receive(stamp);
            worker.record_life(t + Duration::from_millis(1), None, &acked(n));
        }
        let d = read_dir(&dir).unwrap();
        let merged = merge(&d);
        let pos = |want: &Event| merged.iter().position(|s| &s.ev == want).unwrap();
        for n in 0..3 {
            assert!(pos(&applied(n)) < pos(&acked(n)), "{merged:?}");
        }
        // Times along the merge never go back.
        assert!(merged.windows(2).all(|w| w[0].t <= w[1].t));
        let wall = merge_by_wall_time(&d);
        let wpos = |want: &Event| wall.iter().position(|(_, s)| &s.ev == want).unwrap();
        assert!(wpos(&acked(0)) < wpos(&applied(0)));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_life_without_a_final_report_ends_in_a_crash() {
        let dir = tmp("crash");
        let origin = Instant::now();
        let w0 = EventSink::create(&dir, &Header::new("worker-0", 0, 1, &scn())).unwrap();
        w0.record(origin, acked(0));
        let w1 = EventSink::create(&dir, &Header::new("worker-0", 1, 1, &scn())).unwrap();
        w1.record(
            origin,
            Event::Restart {
                node: NodeId::Worker(0),
            },
        );
        let s = EventSink::create(&dir, &Header::new("server-0", 0, 1, &scn())).unwrap();
        s.record(origin, applied(0));
        s.final_report(&NodeReport {
            id: NodeId::Server(0),
            stats: Default::default(),
            replicas: Vec::new(),
            status: Default::default(),
            clock: 0,
        })
        .unwrap();
        let d = read_dir(&dir).unwrap();
        let evs: Vec<Event> = merge(&d).into_iter().map(|s| s.ev).collect();
        let crash = Event::Crash {
            node: NodeId::Worker(0),
        };
        // Life 0 ends in a crash before life 1 restarts; life 1 (no final)
        // ends in one too; the server reported: no crash.
        let crashes: Vec<usize> = evs
            .iter()
            .enumerate()
            .filter(|(_, e)| **e == crash)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(crashes.len(), 2, "{evs:?}");
        let restart = evs
            .iter()
            .position(|e| matches!(e, Event::Restart { .. }))
            .unwrap();
        assert!(crashes[0] < restart && restart < crashes[1]);
        assert!(!evs.contains(&Event::Crash {
            node: NodeId::Server(0)
        }));
        // Another run's file in the same directory is refused.
        let other = crate::scenario::parse(
            "name = \"other\"\n[cluster]\nservers = 1\nworkers = 1\n",
            "x",
        )
        .unwrap();
        EventSink::create(&dir, &Header::new("worker-1", 0, 1, &other)).unwrap();
        assert!(read_dir(&dir).unwrap_err().contains("another run"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
