//! `pssim local`: a whole scenario's cluster on loopback, as child
//! processes of this binary (`pssim node`) or as tasks of this process
//! (`--in-process`), supervised to the end of training, then judged like
//! a simulated run.
//!
//! The supervisor starts every node, injects the scenario's crashes (a
//! crash kills the process or task, a `restart_after` starts the next
//! incarnation, which recovers the node's durable state: from its data
//! directory `<dir>/data/<node>` for a process, from memory for a task),
//! waits until every worker has finished and the servers are quiet, asks
//! every node for its final report, then judges the events directory as
//! `pssim judge` does ([`super::judge::judge_dir`]): every node's life
//! writes `<dir>/events/<node>-<incarnation>.jsonl` (its final report
//! last), and the supervisor `<dir>/events/supervisor-0.jsonl` (the faults it
//! began and healed, the lives it killed, how and when the run ended,
//! when the last fault healed: for liveness).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use super::cluster::{self, Layout};
use super::events::{EventSink, Header, RunEnd};
use super::host::{self, NodeHandle, NodeOptions, NodeReport, Status};
use crate::core::{Durable, Event, NodeId};
use crate::outcome::Outcome;
use crate::scenario::{FaultKind, Scenario};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How to run a cluster locally.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Nodes as tasks of this process instead of child processes.
    pub in_process: bool,
    /// Seed of the workers' generators (default: the scenario's).
    pub seed: Option<u64>,
    /// Stop (and fail) if training has not finished after this long.
    pub timeout: Duration,
    /// Write the merged events as JSON Lines here.
    pub trace: Option<PathBuf>,
    /// Keep the cluster file, the events and the nodes' logs here instead
    /// of a temporary directory that is removed afterwards.
    pub dir: Option<PathBuf>,
    /// The `pssim` binary for child processes (default: this one).
    pub exe: Option<PathBuf>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            in_process: false,
            seed: None,
            timeout: Duration::from_secs(120),
            trace: None,
            dir: None,
            exe: None,
        }
    }
}

/// One planned action of the supervisor.
#[derive(Clone, Copy, Debug)]
enum Action {
    Kill(NodeId),
    Restart(NodeId),
    /// Fault `i` of the plan begins (its `fault_start` event; the nodes'
    /// transports apply it themselves).
    Begin(usize),
    /// Fault `i` of the plan heals.
    Heal(usize),
}

/// What a real run honours of a scenario: the fault plan (`[[fault]]`s
/// and `[chaos]`, [`super::faults::plan`]) — crashes the supervisor
/// injects (the coordinator's too: it recovers its state from its data
/// directory), network faults and stragglers every node's transport
/// applies — and the rest it ignores (said in the outcome's
/// `not_simulated`).
fn plan(faults: &crate::run::plan::Plan) -> Vec<(Duration, Action)> {
    let mut actions = Vec::new();
    for (i, f) in faults.faults.iter().enumerate() {
        // As the simulator records them: `fault_start` then the crash;
        // the restart then `fault_end`.
        actions.push((f.at, Action::Begin(i)));
        if let FaultKind::Crash { node, .. } = &f.kind {
            actions.push((f.at, Action::Kill(*node)));
            if let Some(end) = f.end() {
                actions.push((end, Action::Restart(*node)));
            }
        }
        if let Some(end) = f.end() {
            actions.push((end, Action::Heal(i)));
        }
    }
    // Heals before starts at one instant, as in the simulator.
    actions.sort_by_key(|&(t, a)| (t, !matches!(a, Action::Heal(_) | Action::Restart(_))));
    actions
}

/// Runs the nodes of a cluster; the supervisor's view of them.
trait Backend {
    /// Starts (or restarts) a node.
    fn start(&mut self, id: NodeId, incarnation: u32) -> Result<(), String>;
    /// Kills a node; returns once it is dead.
    fn kill(&mut self, id: NodeId);
    /// Waits up to `dt` for status news.
    fn poll(&mut self, dt: Duration);
    /// A live node's last status.
    fn status(&self, id: NodeId) -> Option<Status>;
    /// Stops every live node; each writes its final report to its events
    /// file. An error names the nodes that did not report.
    fn finish(&mut self) -> Result<(), String>;
}

/// Runs a scenario's cluster on loopback and judges it. `source` names the
/// scenario file (it is read again by child processes).
pub fn run(scn: &Scenario, source: &Path, opts: &LocalOptions) -> Result<Outcome, String> {
    let wall = Instant::now();
    let seed = opts.seed.unwrap_or(scn.seed);
    let model = Arc::new(super::faults::Model::new(scn, seed));
    let actions = plan(model.plan());
    let (temp, dir) = match &opts.dir {
        Some(d) => (false, d.clone()),
        None => {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let d =
                std::env::temp_dir().join(format!("pssim-local-{}-{nanos}", std::process::id()));
            (true, d)
        }
    };
    let events_dir = dir.join("events");
    std::fs::create_dir_all(&events_dir)
        .map_err(|e| format!("cannot create {}: {e}", events_dir.display()))?;
    // A directory used before: its events files are another run's.
    for f in std::fs::read_dir(&events_dir)
        .map_err(|e| format!("{}: {e}", events_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
    {
        std::fs::remove_file(&f).map_err(|e| format!("cannot remove {}: {e}", f.display()))?;
    }
    let header = |node: &str, incarnation: u32| {
        let mut h = Header::new(node, incarnation, seed, scn);
        h.scenario_file = source.display().to_string();
        h
    };
    let supervisor = EventSink::create(&events_dir, &header("supervisor", 0))?;
    let (peers, held) = cluster::loopback_layout(scn)
        .map_err(|e| format!("cannot find free loopback ports: {e}"))?;
    let origin = Instant::now();
    let origin_unix_us = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let job = Arc::new(crate::run::setup::job(scn));
    let mut backend: Box<dyn Backend> = if opts.in_process {
        Box::new(InProcess::new(
            scn,
            &job,
            seed,
            (peers.clone(), held),
            origin,
            model.clone(),
            (events_dir.clone(), header("", 0)),
        )?)
    } else {
        drop(held);
        let scenario =
            std::fs::canonicalize(source).map_err(|e| format!("{}: {e}", source.display()))?;
        let cluster_file = dir.join("cluster.toml");
        cluster::write(
            &cluster_file,
            &Layout {
                scenario,
                seed,
                events_dir: Some(events_dir.clone()),
                origin_unix_us: Some(origin_unix_us),
                step_time: None,
                peers: peers.clone(),
            },
        )
        .map_err(|e| format!("cannot write {}: {e}", cluster_file.display()))?;
        let exe = match &opts.exe {
            Some(e) => e.clone(),
            None => std::env::current_exe().map_err(|e| format!("cannot find pssim: {e}"))?,
        };
        Box::new(Processes::new(
            exe,
            cluster_file,
            dir.clone(),
            dir.join("data"),
        ))
    };
    let result = supervise(
        scn,
        &mut *backend,
        &peers,
        (&actions, model.plan()),
        (origin, &supervisor),
        opts.timeout,
    );
    drop(backend);
    let outcome = result.and_then(|sup| {
        let mut how = format!("pssim local {}", source.display());
        if opts.in_process {
            how.push_str(" --in-process");
        }
        how.push_str(&format!(" --seed {seed}"));
        // Liveness counts from when the last fault healed: as planned, or
        // when the supervisor carried it out, if later.
        let (planned, forever) = model.plan().last_heal();
        let heal = (!forever).then(|| planned.max(sup.last_action));
        supervisor.end(&RunEnd {
            end_us: sup.end.as_micros() as u64,
            wall_s: wall.elapsed().as_secs_f64(),
            stopped: sup.stopped.to_string(),
            quiet: sup.quiet,
            heal_us: heal.map(|h| h.as_micros() as u64),
            reproduce: how,
        })?;
        super::judge::judge_dir(&events_dir, opts.trace.clone()).map(|(_, o)| o)
    });
    if temp && outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

struct Supervised {
    /// When the supervisor carried out its last kill or restart.
    last_action: Duration,
    end: Duration,
    stopped: &'static str,
    quiet: bool,
}

fn supervise(
    scn: &Scenario,
    b: &mut dyn Backend,
    peers: &BTreeMap<NodeId, SocketAddr>,
    (actions, faults): (&[(Duration, Action)], &crate::run::plan::Plan),
    (origin, log): (Instant, &EventSink),
    timeout: Duration,
) -> Result<Supervised, String> {
    let mut incarnation: BTreeMap<NodeId, u32> = peers.keys().map(|&id| (id, 0)).collect();
    let mut up: BTreeMap<NodeId, bool> = peers.keys().map(|&id| (id, true)).collect();
    for &id in peers.keys() {
        b.start(id, 0)?;
    }
    let mut last_action = Duration::ZERO;
    let mut next = 0;
    let workers: Vec<NodeId> = peers
        .keys()
        .copied()
        .filter(|n| n.worker().is_some())
        .collect();
    let (end, stopped) = loop {
        let now = origin.elapsed();
        while let Some(&(at, action)) = actions.get(next) {
            if at > now {
                break;
            }
            next += 1;
            match action {
                Action::Kill(id) if up[&id] => {
                    b.kill(id);
                    up.insert(id, false);
                    last_action = origin.elapsed();
                    // Which life died, and when (the merge closes that
                    // life's events with a crash at this time).
                    log.record_life(
                        last_action,
                        Some(incarnation[&id]),
                        &Event::Crash { node: id },
                    );
                }
                Action::Restart(id) if !up[&id] => {
                    let inc = incarnation.get_mut(&id).expect("every node has an entry");
                    *inc += 1;
                    b.start(id, *inc)?;
                    up.insert(id, true);
                    last_action = origin.elapsed();
                }
                Action::Begin(i) => {
                    let f = &faults.faults[i];
                    log.record(
                        origin,
                        Event::FaultStart {
                            fault: f.kind.name().into(),
                            nodes: f.kind.nodes(),
                            detail: f.detail(),
                        },
                    );
                }
                Action::Heal(i) => {
                    let f = &faults.faults[i];
                    log.record(
                        origin,
                        Event::FaultEnd {
                            fault: f.kind.name().into(),
                            nodes: f.kind.nodes(),
                        },
                    );
                }
                _ => {}
            }
        }
        // A crashed worker that will not come back counts as finished.
        let returns = |id: NodeId| {
            actions[next..]
                .iter()
                .any(|(_, a)| matches!(a, Action::Restart(n) if *n == id))
        };
        let done = workers.iter().all(|&w| match b.status(w) {
            Some(s) => s.done,
            None => !up[&w] && !returns(w),
        });
        if done {
            break (origin.elapsed(), "finished");
        }
        if now >= timeout {
            break (now, "max_time");
        }
        b.poll(Duration::from_millis(5));
    };
    // Let replication settle before the replicas are compared, as the
    // simulator does: every live server quiet and on the coordinator's view.
    let grace_until = origin.elapsed() + scn.cluster.heartbeat_timeout * 8;
    let quiet = |b: &dyn Backend| {
        let epoch = b.status(NodeId::Coordinator).map(|s| s.epoch);
        peers.keys().filter(|n| n.server().is_some()).all(|&s| {
            b.status(s)
                .is_none_or(|st| st.quiet && (epoch.is_none() || Some(st.epoch) == epoch))
        })
    };
    while stopped == "finished" && !quiet(b) && origin.elapsed() < grace_until {
        b.poll(Duration::from_millis(5));
    }
    let quiet = quiet(b);
    b.finish()?;
    Ok(Supervised {
        last_action,
        end,
        stopped,
        quiet,
    })
}

/// Nodes as tasks of this process, on one tokio runtime.
struct InProcess {
    rt: tokio::runtime::Runtime,
    base: NodeOptions,
    nodes: BTreeMap<NodeId, NodeHandle>,
    durable: BTreeMap<NodeId, Arc<Mutex<Option<Durable>>>>,
    listeners: BTreeMap<NodeId, std::net::TcpListener>,
    /// The events directory, and the header every life's file starts with
    /// (its node and incarnation filled in).
    events: (PathBuf, Header),
    /// Each live node's events file.
    sinks: BTreeMap<NodeId, EventSink>,
}

impl InProcess {
    fn new(
        scn: &Scenario,
        job: &Arc<crate::core::Job>,
        seed: u64,
        // The nodes' addresses, and listeners holding them.
        (peers, held): (BTreeMap<NodeId, SocketAddr>, Vec<std::net::TcpListener>),
        origin: Instant,
        net_model: Arc<super::faults::Model>,
        events: (PathBuf, Header),
    ) -> Result<InProcess, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
        let cfg = crate::run::setup::protocol_config(scn, job, seed, crate::core::Bugs::NONE);
        let listeners = peers.keys().copied().zip(held).collect();
        Ok(InProcess {
            rt,
            base: NodeOptions {
                id: NodeId::Coordinator,
                incarnation: 0,
                cfg,
                job: Some(job.clone()),
                seed,
                peers: Arc::new(peers),
                origin,
                step_time: scn.compute.real_step_time(),
                max_frame_bytes: super::frame::DEFAULT_MAX_FRAME_BYTES,
                durable: Arc::default(),
                store: None,
                events: EventSink::discard(),
                net_model: Some(net_model),
            },
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            listeners,
            events,
            sinks: BTreeMap::new(),
        })
    }
}

impl Backend for InProcess {
    fn start(&mut self, id: NodeId, incarnation: u32) -> Result<(), String> {
        let addr = self.base.peers[&id];
        let _guard = self.rt.enter();
        let listener = match self.listeners.remove(&id) {
            Some(l) => l
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(l)),
            // A restart binds the address again.
            None => self.rt.block_on(tokio::net::TcpListener::bind(addr)),
        }
        .map_err(|e| format!("{id}: cannot listen on {addr}: {e}"))?;
        let header = Header {
            node: id.to_string(),
            incarnation,
            ..self.events.1.clone()
        };
        let events = EventSink::create(&self.events.0, &header)?;
        self.sinks.insert(id, events.clone());
        let opts = NodeOptions {
            id,
            incarnation,
            durable: self.durable.entry(id).or_default().clone(),
            events,
            ..self.base.clone()
        };
        self.nodes.insert(id, host::spawn_node(opts, listener));
        Ok(())
    }

    fn kill(&mut self, id: NodeId) {
        if let Some(h) = self.nodes.remove(&id) {
            h.task.abort();
            let _ = self.rt.block_on(h.task);
        }
    }

    fn poll(&mut self, dt: Duration) {
        std::thread::sleep(dt);
    }

    fn status(&self, id: NodeId) -> Option<Status> {
        self.nodes.get(&id).map(|h| *h.status.borrow())
    }

    fn finish(&mut self) -> Result<(), String> {
        let nodes = std::mem::take(&mut self.nodes);
        let sinks = &self.sinks;
        self.rt.block_on(async {
            for (id, h) in nodes {
                match h.finish().await {
                    Some(r) => sinks[&id].final_report(&r)?,
                    None => return Err(format!("{id} died before reporting")),
                }
                let _ = h.task.await;
            }
            Ok(())
        })
    }
}

/// What a child's stdout said.
enum Said {
    Status(Status),
    Final(Box<NodeReport>),
    Closed,
}

struct ChildNode {
    child: Child,
    stdin: Option<ChildStdin>,
    incarnation: u32,
    status: Option<Status>,
}

/// Nodes as child processes (`pssim node`).
struct Processes {
    exe: PathBuf,
    cluster_file: PathBuf,
    log_dir: PathBuf,
    /// The data directory of the coordinator and of each server is
    /// `<data_dir>/<node>`.
    data_dir: PathBuf,
    children: BTreeMap<NodeId, ChildNode>,
    tx: mpsc::Sender<(NodeId, u32, Said)>,
    rx: mpsc::Receiver<(NodeId, u32, Said)>,
    /// The nodes that said `final` (their report is in their events file).
    finals: BTreeMap<NodeId, NodeReport>,
}

impl Processes {
    fn new(exe: PathBuf, cluster_file: PathBuf, log_dir: PathBuf, data_dir: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel();
        Processes {
            exe,
            cluster_file,
            log_dir,
            data_dir,
            children: BTreeMap::new(),
            tx,
            rx,
            finals: BTreeMap::new(),
        }
    }

    fn handle(&mut self, id: NodeId, inc: u32, said: Said) {
        let Some(c) = self.children.get_mut(&id).filter(|c| c.incarnation == inc) else {
            return;
        };
        match said {
            Said::Status(s) => c.status = Some(s),
            Said::Final(r) => {
                self.finals.insert(id, *r);
            }
            Said::Closed => {}
        }
    }
}

impl Backend for Processes {
    fn start(&mut self, id: NodeId, incarnation: u32) -> Result<(), String> {
        let log_path = self.log_dir.join(format!("{id}-{incarnation}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.arg("node")
            .arg("--cluster")
            .arg(&self.cluster_file)
            .args(["--id", &id.to_string()])
            .args(["--incarnation", &incarnation.to_string()]);
        // Workers keep no durable state.
        if id.worker().is_none() {
            cmd.arg("--data-dir")
                .arg(self.data_dir.join(id.to_string()));
        }
        let mut child = cmd
            .arg("--exit-on-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let said = super::node::said(&line).map(|s| match s {
                    super::node::Said::Status(st) => Said::Status(st),
                    super::node::Said::Final(r) => Said::Final(r),
                });
                if let Some(s) = said {
                    if tx.send((id, incarnation, s)).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send((id, incarnation, Said::Closed));
        });
        let stdin = child.stdin.take();
        self.children.insert(
            id,
            ChildNode {
                child,
                stdin,
                incarnation,
                status: None,
            },
        );
        Ok(())
    }

    fn kill(&mut self, id: NodeId) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }

    fn poll(&mut self, dt: Duration) {
        if let Ok((id, inc, said)) = self.rx.recv_timeout(dt) {
            self.handle(id, inc, said);
            while let Ok((id, inc, said)) = self.rx.try_recv() {
                self.handle(id, inc, said);
            }
        }
    }

    fn status(&self, id: NodeId) -> Option<Status> {
        self.children.get(&id).map(|c| c.status.unwrap_or_default())
    }

    fn finish(&mut self) -> Result<(), String> {
        for c in self.children.values_mut() {
            if let Some(stdin) = c.stdin.as_mut() {
                let _ = stdin.write_all(b"finish\n").and_then(|()| stdin.flush());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.finals.len() < self.children.len() && Instant::now() < deadline {
            self.poll(Duration::from_millis(20));
        }
        let missing: Vec<String> = self
            .children
            .keys()
            .filter(|id| !self.finals.contains_key(id))
            .map(|id| id.to_string())
            .collect();
        for (_, mut c) in std::mem::take(&mut self.children) {
            drop(c.stdin.take());
            if c.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(1));
                let _ = c.child.kill();
            }
            let _ = c.child.wait();
        }
        if !missing.is_empty() {
            return Err(format!(
                "no final report from {} (their logs are in {})",
                missing.join(", "),
                self.log_dir.display()
            ));
        }
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }
}
