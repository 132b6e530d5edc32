//! `pssim node`: one node of a real cluster as a process.
//!
//! It listens on its address from the cluster file and runs until told to
//! finish. It talks to whoever supervises it (`pssim local`, or a person)
//! in lines:
//!
//! - stdout `ready <addr>` once it listens (a first life then waits until
//!   every peer listens too, up to the cluster file's `startup_timeout`,
//!   before its first step: [`super::conn::await_peers`]);
//! - stdout `status {"done":..,"quiet":..,"epoch":..}` whenever that changes;
//! - stdin `finish` makes it print `final {<its report as JSON>}` and exit
//!   (a server's report holds its replicas: the parameters the run's
//!   accuracy is computed from);
//! - with `--exit-on-eof`, the end of stdin (its supervisor died) makes it
//!   exit at once.
//!
//! Events go to `<events_dir>/<node>-<incarnation>.jsonl` if the cluster
//! file names an events directory.
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
use super::events::EventSink;
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
    let origin = origin(cluster.origin_unix_us);
    let events = match &cluster.events_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = dir.join(format!("{id}-{incarnation}.jsonl"));
            EventSink::jsonl(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => EventSink::Discard,
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
        events,
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
        say(&format!("ready {addr}"));
        // The start-up barrier: a first life's first messages must not be
        // dropped on peers not yet listening. The listener is bound, so
        // peers waiting for this node get through meanwhile (their hellos
        // wait in its accept queue). A later life joins a running cluster
        // where a dead peer is the protocol's business: it does not wait.
        if incarnation == 0 && !cluster.startup_timeout.is_zero() {
            let health = super::conn::Health::new(opts.cfg.heartbeat_timeout);
            super::conn::await_peers(id, &cluster.peers, cluster.startup_timeout, &health)
                .await
                .map_err(|missing| unreachable(cluster, id, &missing))?;
        }
        let handle = host::spawn_node(opts, listener);
        let mut status = handle.status.clone();
        loop {
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return Err(format!("{id}: the node stopped unexpectedly"));
                    }
                    let s = *status.borrow_and_update();
                    say(&format!("status {}", serde_json::to_string(&s).expect("status serializes")));
                }
                finish = finish_rx.recv() => {
                    if finish == Some(true) {
                        if let Some(r) = handle.finish().await {
                            say(&format!("final {}", serde_json::to_string(&r).expect("reports serialize")));
                        }
                    }
                    return Ok(());
                }
            }
        }
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
