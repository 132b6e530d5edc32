//! `pssim node`: one node of a real cluster as a process.
//!
//! It listens on its address from the cluster file and runs until told to
//! finish. It talks to whoever supervises it (`pssim local`, or a person)
//! in lines:
//!
//! - stdout `ready <addr>` once it listens (a first life then waits until
//!   every peer listens too, up to the cluster file's `startup_timeout`,
//!   before its first step: [`super::conn::await_peers`]; a signal,
//!   `finish` or, with `--exit-on-eof`, the end of stdin while it waits
//!   stops it there, with nothing to report);
//! - stdout `status {"done":..,"quiet":..,"epoch":..}` whenever that changes;
//! - stdin `finish`, SIGTERM or SIGINT (Ctrl-C) make it finish: it writes
//!   its final report (a server's report holds its replicas: the parameters
//!   the run's accuracy is computed from) to its events file and to stdout
//!   as `final {<report as JSON>}`, and exits with code 0;
//! - with `--exit-on-eof`, the end of stdin (its supervisor died) makes it
//!   exit at once, without a report (as a crash). Without it, stdin is
//!   only read for `finish`: a node started with stdin closed
//!   (`</dev/null`, `nohup`, a service manager) runs until a signal.
//!
//! Events go to `<events_dir>/<node>-<incarnation>.jsonl` if the cluster
//! file names an events directory ([`super::events`]: a header with the
//! scenario, the events with their Lamport stamps, the final report), so
//! that `pssim judge` can judge the directory afterwards.
//!
//! `PSSIM_TEST_CLOCK_SKEW_MS` (a test hook, signed milliseconds) sets the
//! node's wall clock that far ahead of (or behind) the cluster's: what a
//! machine whose clock is off looks like.
//!
//! With a data directory (`--data-dir`), the node's durable state (the
//! coordinator's membership and view, a server's checkpoints) is written
//! there ([`super::store`]) and an earlier life's is recovered from there
//! at start; a state file that cannot be recovered is an error (exit code
//! 2), never a fresh start. Without one, the state lives in memory and
//! dies with the process.
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use super::cluster::Cluster;
use super::events::{EventSink, Header};
use super::host::{self, NodeOptions};
use super::store::Store;
use crate::core::NodeId;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Runs node `id` (life `incarnation`) of `cluster`, keeping its durable
/// state in `data_dir` if given, until it is told to finish. Errors are
/// for the user (exit code 2).
pub fn run(
    cluster: &Cluster,
    id: NodeId,
    incarnation: u32,
    data_dir: Option<&Path>,
    exit_on_eof: bool,
) -> Result<(), String> {
    let addr = cluster.addr(id).ok_or_else(|| {
        format!(
            "{}: {id} is not a node of this cluster ({} servers, {} workers)",
            cluster.path.display(),
            cluster.scenario.cluster.servers,
            cluster.scenario.cluster.workers
        )
    })?;
    let scn = &cluster.scenario;
    // Recover first: a node that cannot must not start (nor write events).
    let (store, recovered) = match data_dir {
        Some(dir) => {
            let store = Store::open(dir, id, incarnation).map_err(|e| e.to_string())?;
            let recovered = store.recover().map_err(|e| e.to_string())?;
            (Some(Arc::new(store)), recovered)
        }
        None => (None, None),
    };
    let origin = skewed(origin(cluster.origin_unix_us), clock_skew()?);
    let events = match &cluster.events_dir {
        Some(dir) => {
            let mut header = Header::new(&id.to_string(), incarnation, cluster.seed, scn);
            header.scenario_file = cluster.scenario_path.display().to_string();
            header.origin_unix_us = cluster.origin_unix_us;
            EventSink::create(dir, &header)?
        }
        None => EventSink::discard(),
    };
    // Servers and the coordinator need only the model's size; workers
    // the data too (loading it is the same call).
    let job = Arc::new(crate::run::setup::job(scn));
    let cfg = crate::run::setup::protocol_config(scn, &job, cluster.seed, crate::core::Bugs::NONE);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let opts = NodeOptions {
        id,
        incarnation,
        cfg,
        job: id.worker().map(|_| job.clone()),
        seed: cluster.seed,
        peers: Arc::new(cluster.peers.clone()),
        origin,
        step_time: cluster.step_time,
        max_frame_bytes: cluster.max_frame_bytes,
        durable: Arc::new(Mutex::new(recovered)),
        store,
        events: events.clone(),
        net_model: Some(Arc::new(super::faults::Model::new(scn, cluster.seed))),
    };
    let (finish_tx, mut finish_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "finish" => {
                    let _ = finish_tx.send(true);
                    return;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if exit_on_eof {
            let _ = finish_tx.send(false);
        }
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{id}: cannot listen on {addr}: {e}"))?;
        let mut signals = Signals::new().map_err(|e| format!("{id}: cannot watch signals: {e}"))?;
        say(&format!("ready {addr}"));
        // The start-up barrier: a first life's first messages must not be
        // dropped on peers not yet listening. The listener is bound, so
        // peers waiting for this node get through meanwhile (their hellos
        // wait in its accept queue). A later life joins a running cluster
        // where a dead peer is the protocol's business: it does not wait.
        // A signal, `finish` or (with `--exit-on-eof`) the end of stdin
        // while it waits stops the node before its first step, with
        // nothing to report (`pssim judge` ends that life with a crash).
        if incarnation == 0 && !cluster.startup_timeout.is_zero() {
            let health = super::conn::Health::new(opts.cfg.heartbeat_timeout);
            let barrier =
                super::conn::await_peers(id, &cluster.peers, cluster.startup_timeout, &health);
            let why = tokio::select! {
                waited = barrier => {
                    waited.map_err(|missing| unreachable(cluster, id, &missing))?;
                    None
                }
                signal = signals.recv() => Some(signal),
                Some(finish) = finish_rx.recv() => {
                    Some(if finish { "finish" } else { "end of stdin" })
                }
            };
            if let Some(why) = why {
                eprintln!(
                    "pssim {id}: {why} while waiting for its peers: stopping before the first step (no report)"
                );
                return Ok(());
            }
        }
        let handle = host::spawn_node(opts, listener);
        let mut status = handle.status.clone();
        // Closed when stdin ends without `--exit-on-eof`: then only a
        // signal finishes the node.
        let mut stdin_open = true;
        let finish = loop {
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return Err(format!("{id}: the node stopped unexpectedly"));
                    }
                    let s = *status.borrow_and_update();
                    say(&format!("status {}", serde_json::to_string(&s).expect("status serializes")));
                }
                finish = finish_rx.recv(), if stdin_open => match finish {
                    Some(finish) => break finish,
                    None => stdin_open = false,
                },
                signal = signals.recv() => {
                    eprintln!("pssim {id}: {signal}: finishing");
                    break true;
                }
            }
        };
        if finish {
            if let Some(r) = handle.finish().await {
                if let Err(e) = events.final_report(&r) {
                    eprintln!("pssim {id}: {e}");
                }
                say(&format!("final {}", serde_json::to_string(&r).expect("reports serialize")));
            }
        }
        Ok(())
    })?;
    // Do not wait for timer tasks still sleeping.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// The start-up barrier's error: which peers never accepted a connection.
fn unreachable(
    cluster: &Cluster,
    id: NodeId,
    missing: &[(NodeId, std::net::SocketAddr, String)],
) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|(peer, addr, why)| format!("{peer} at {addr} ({why})"))
        .collect();
    format!(
        "{id}: start-up: {} of {} peers still unreachable after {:?} (field `startup_timeout` of {}): {}",
        missing.len(),
        cluster.peers.len() - 1,
        cluster.startup_timeout,
        cluster.path.display(),
        list.join(", ")
    )
}

/// What a node says on one line of its stdout (the lines above).
#[derive(Debug)]
pub enum Said {
    /// `status {..}`: its progress changed.
    Status(host::Status),
    /// `final {..}`: its final report.
    Final(Box<host::NodeReport>),
}

/// A supervisor's reading of one stdout line of a node: `None` for any
/// other line (`ready ..`, or one that does not parse).
pub fn said(line: &str) -> Option<Said> {
    if let Some(j) = line.strip_prefix("status ") {
        serde_json::from_str(j).ok().map(Said::Status)
    } else if let Some(j) = line.strip_prefix("final ") {
        serde_json::from_str(j)
            .ok()
            .map(|r| Said::Final(Box::new(r)))
    } else {
        None
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The `Instant` of the cluster's time zero (given in Unix microseconds,
/// so that processes on one machine stamp events on one time line); now
/// if none is given.
fn origin(unix_us: Option<u64>) -> Instant {
    let now = Instant::now();
    let Some(us) = unix_us else { return now };
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH + Duration::from_micros(us))
        .unwrap_or(Duration::ZERO);
    now.checked_sub(since).unwrap_or(now)
}

/// The test hook `PSSIM_TEST_CLOCK_SKEW_MS`: how far this node's wall
/// clock is set ahead (negative: behind).
fn clock_skew() -> Result<i64, String> {
    match std::env::var("PSSIM_TEST_CLOCK_SKEW_MS") {
        Err(_) => Ok(0),
        Ok(v) => v.trim().parse().map_err(|_| {
            format!(
                "PSSIM_TEST_CLOCK_SKEW_MS={v:?}: expected whole milliseconds, e.g. 3000 or -3000"
            )
        }),
    }
}

/// The origin of a clock `skew_ms` ahead of the one whose origin is
/// `origin` (times measured from it are that much larger).
fn skewed(origin: Instant, skew_ms: i64) -> Instant {
    let d = Duration::from_millis(skew_ms.unsigned_abs());
    let shifted = if skew_ms >= 0 {
        origin.checked_sub(d)
    } else {
        origin.checked_add(d)
    };
    shifted.unwrap_or(origin)
}

/// The signals that make a node finish: SIGTERM (`kill`, service managers)
/// and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside the runtime.
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
