//! The TCP host: one protocol node (the unchanged sans-IO core) driven by
//! tokio over real sockets and the real clock.
//!
//! ```text
//!  peers ──TCP──► accept ─► reader task per connection (hello, then frames)
//!                                 │ Input::Msg
//!  timer tasks (tokio::time) ─────┼──► node task: core::Node ──► Commands
//!  compute tasks ─────────────────┘        │ Send ─► writer task per peer ──TCP──► peer
//!                                          │ Emit ─► EventSink (real elapsed time,
//!                                          │         Lamport stamp: sends tick it,
//!                                          │         receives move it past the sender's)
//!                                          │ Persist ─► store (data directory: survives
//!                                          │            the process) or memory slot
//!                                          │            (survives a kill of the task)
//!  control (finish) ──────────────────────►│ status (done / quiet / epoch) ─► watch
//! ```
//!
//! Every node listens on its address; a node sends on its own outbound
//! connection to the receiver's listener (one per peer, opened on first
//! use, hello first). Heartbeats go as UDP datagrams instead, from and to
//! the nodes' addresses ([`super::datagram`]). A send that fails drops the
//! message, as a real network loses it: the protocol's retries and
//! heartbeats recover. A bad
//! frame closes only the connection it came on. A connection that stalls
//! (unacknowledged bytes, a write making no progress, an end seen by the
//! kernel) is closed and the next message dials again ([`super::conn`]).
//! A step's durable state is
//! written (and fsynced, with a store) before any of its messages or
//! events leaves the node; a node that cannot write it stops.
//!
//! May import: `crate::core`, `crate::run`, `super` (net), tokio. Never:
//! `crate::sim` (hosts never import each other), madsim.

use super::conn::{self, Health};
use super::datagram::{self, Order};
use super::events::EventSink;
use super::frame::{self, Frame, FrameError};
use super::store::Store;
use crate::core::{
    Command, Coordinator, Durable, Event, Job, Message, Node, NodeId, ProtocolConfig, Server,
    Timer, Worker,
};
pub use crate::run::finals::FinalReplica;
use crate::run::metrics::Traffic;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connection attempt, messages to that peer are dropped
/// for this long instead of each waiting for its own attempt.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Everything a node needs to run.
#[derive(Clone)]
pub struct NodeOptions {
    /// Who it is.
    pub id: NodeId,
    /// Its life number (0 first; a restarted node gets the next).
    pub incarnation: u32,
    /// Protocol parameters (every node of a cluster has the same).
    pub cfg: Arc<ProtocolConfig>,
    /// What workers train (servers and the coordinator need none).
    pub job: Option<Arc<Job>>,
    /// Seeds a worker's minibatch generator (with its id and incarnation).
    pub seed: u64,
    /// Every node's listening address.
    pub peers: Arc<BTreeMap<NodeId, SocketAddr>>,
    /// Time zero of the cluster: `now` for the core and event stamps.
    pub origin: Instant,
    /// Compute time charged per minibatch (the gradient itself is computed
    /// for real in `on_compute_done`).
    pub step_time: Duration,
    /// Largest frame accepted.
    pub max_frame_bytes: u32,
    /// The state the node boots from (an earlier life's), and, without
    /// `store`, its durable storage: survives the node task (in-process
    /// restarts), not the process.
    pub durable: Arc<Mutex<Option<Durable>>>,
    /// The node's data directory, if it has one: `Persist` writes there
    /// (and no longer to `durable`). Default: none.
    pub store: Option<Arc<Store>>,
    /// Where events go.
    pub events: EventSink,
    /// The scenario's network and network faults, applied to what this
    /// node sends ([`super::faults`]); `None`: sent as it comes.
    pub net_model: Option<Arc<super::faults::Model>>,
}

/// What a node reports of itself, for the run's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// A worker that finished its clocks (always true for other nodes).
    pub done: bool,
    /// A server with nothing left to replicate or copy (always true for
    /// other nodes).
    pub quiet: bool,
    /// The view epoch the node holds (0 for workers).
    pub epoch: u64,
}

/// A node's account at the end of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node.
    pub id: NodeId,
    /// What it sent.
    pub stats: Traffic,
    /// A server's replicas.
    pub replicas: Vec<FinalReplica>,
    /// Its last status.
    pub status: Status,
    /// A worker's clock.
    pub clock: u32,
}

/// Orders for a running node.
#[derive(Debug)]
pub enum Control {
    /// Stop and report.
    Finish(oneshot::Sender<NodeReport>),
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// Orders.
    pub control: mpsc::Sender<Control>,
    /// Its status, updated after every input.
    pub status: watch::Receiver<Status>,
    /// The node task; aborting it kills the node (its listener, its
    /// connections and its timers go with it).
    pub task: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// Stops the node and returns its report (`None` if it already died).
    pub async fn finish(&self) -> Option<NodeReport> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Finish(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// An input for the node task.
// Messages are nearly every input: boxing them would cost an allocation
// each for the few timers it saves.
#[allow(clippy::large_enum_variant)]
enum Input {
    /// `lamport`: the sender's logical clock when it sent it. `after`:
    /// `None` for a message read from a connection; for a datagram, the
    /// stamp of the last message the sender had handed to its connection
    /// to this node and not known lost (0: none), which must be delivered
    /// first ([`Order`]).
    Msg {
        from: NodeId,
        incarnation: u32,
        msg: Message,
        lamport: u64,
        after: Option<u64>,
    },
    Timer(Timer),
    ComputeDone,
}

/// Starts a node on `listener` (bound to its address). Must be called
/// inside a tokio runtime.
pub fn spawn_node(opts: NodeOptions, listener: TcpListener) -> NodeHandle {
    let (control_tx, control_rx) = mpsc::channel(4);
    let (status_tx, status_rx) = watch::channel(Status::default());
    let task = tokio::spawn(run(opts, listener, control_rx, status_tx));
    NodeHandle {
        control: control_tx,
        status: status_rx,
        task,
    }
}

fn boot(opts: &NodeOptions) -> Node {
    let durable = opts
        .durable
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match opts.id {
        NodeId::Coordinator => {
            let state = match durable {
                Some(Durable::Coordinator(s)) => Some(s),
                _ => None,
            };
            Node::Coordinator(Coordinator::new(opts.cfg.clone(), state))
        }
        NodeId::Server(s) if opts.incarnation == 0 => {
            Node::Server(Server::new(s, opts.cfg.clone()))
        }
        NodeId::Server(s) => Node::Server(Server::restarted(
            s,
            opts.incarnation,
            opts.cfg.clone(),
            durable,
        )),
        NodeId::Worker(w) => {
            let seed = opts.seed ^ (u64::from(w) << 32 | u64::from(opts.incarnation));
            Node::Worker(Worker::new(
                w,
                opts.incarnation,
                opts.cfg.clone(),
                opts.job.clone().expect("a worker is started with its job"),
                ChaCha8Rng::seed_from_u64(seed),
            ))
        }
    }
}

fn status_of(node: &Node) -> Status {
    match node {
        Node::Worker(w) => Status {
            done: w.is_done(),
            quiet: true,
            epoch: 0,
        },
        Node::Server(s) => Status {
            done: true,
            quiet: s.is_quiet(),
            epoch: s.view().epoch.0,
        },
        Node::Coordinator(c) => Status {
            done: true,
            quiet: true,
            epoch: c.view().epoch.0,
        },
    }
}

fn report_of(node: &Node, stats: Traffic) -> NodeReport {
    let mut replicas = Vec::new();
    let mut clock = 0;
    match node {
        Node::Server(s) => {
            for (&range, rep) in s.replicas() {
                replicas.push(FinalReplica::of(range, rep));
            }
        }
        Node::Worker(w) => clock = w.clock().0,
        Node::Coordinator(_) => {}
    }
    NodeReport {
        id: match node {
            Node::Server(s) => s.id(),
            Node::Worker(w) => NodeId::Worker(w.id()),
            Node::Coordinator(_) => NodeId::Coordinator,
        },
        stats,
        replicas,
        status: status_of(node),
        clock,
    }
}

async fn run(
    opts: NodeOptions,
    listener: TcpListener,
    mut control: mpsc::Receiver<Control>,
    status: watch::Sender<Status>,
) {
    // Every task of the node lives in `tasks`: dropping it (the node task
    // ends or is aborted) closes the listener, the connections and the
    // timers at once, as a crash would.
    let mut tasks = JoinSet::new();
    let (tx, mut inputs) = mpsc::unbounded_channel::<Input>();
    let stats = Arc::new(Mutex::new(Traffic::default()));
    let health = Health::new(opts.cfg.heartbeat_timeout);
    let udp = datagram::bind(&listener, opts.id).await;
    if let Some(u) = &udp {
        tasks.spawn(udp_loop(
            u.clone(),
            opts.id,
            opts.max_frame_bytes,
            tx.clone(),
        ));
    }
    tasks.spawn(accept_loop(
        listener,
        opts.id,
        opts.max_frame_bytes,
        health,
        tx.clone(),
    ));
    let mut outbox = Outbox {
        health,
        to_coordinator: datagram::control_health(health, opts.cfg.heartbeat_interval),
        me: opts.id,
        incarnation: opts.incarnation,
        peers: opts.peers.clone(),
        writers: BTreeMap::new(),
        udp,
        stats: stats.clone(),
        origin: opts.origin,
        events: opts.events.clone(),
        shaper: opts
            .net_model
            .as_ref()
            .map(|m| m.shaper(opts.id, opts.incarnation)),
    };
    let mut node = boot(&opts);
    let mut order = Order::default();
    if opts.incarnation > 0 {
        opts.events
            .record(opts.origin, Event::Restart { node: opts.id });
    }
    let mut out = Vec::new();
    node.on_start(opts.origin.elapsed(), &mut out);
    if let Err(e) = execute(&opts, &mut out, &mut outbox, &mut tasks, &tx) {
        persist_failed(&opts, &e);
        return;
    }
    status.send_replace(status_of(&node));
    loop {
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { break };
                let now = opts.origin.elapsed();
                match input {
                    Input::Msg { from, incarnation, msg, lamport, after } => {
                        for (msg, lamport) in order.admit((from, incarnation), msg, lamport, after) {
                            opts.events.on_receive(lamport);
                            node.on_message(now, from, msg, &mut out);
                        }
                    }
                    Input::Timer(t) => node.on_timer(now, t, &mut out),
                    Input::ComputeDone => node.on_compute_done(now, &mut out),
                }
                if let Err(e) = execute(&opts, &mut out, &mut outbox, &mut tasks, &tx) {
                    persist_failed(&opts, &e);
                    return;
                }
                let s = status_of(&node);
                status.send_if_modified(|old| std::mem::replace(old, s) != s);
            }
            c = control.recv() => {
                match c {
                    Some(Control::Finish(reply)) => {
                        let stats = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        let _ = reply.send(report_of(&node, stats));
                    }
                    None => {}
                }
                break;
            }
        }
        // Reap finished timer and compute tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
}

/// A node that cannot keep its durable state must not go on (what it
/// sends next may rely on that state having been written): it stops, as
/// if it had crashed.
fn persist_failed(opts: &NodeOptions, e: &super::store::StoreError) {
    eprintln!(
        "pssim {}: cannot write its durable state: {e}; the node stops",
        opts.id
    );
}

/// Writes the last state a step persisted (each is a whole state, so the
/// last supersedes the others) to the store or the memory slot.
fn persist(opts: &NodeOptions, out: &mut Vec<Command>) -> Result<(), super::store::StoreError> {
    let Some(i) = out.iter().rposition(|c| matches!(c, Command::Persist(_))) else {
        return Ok(());
    };
    let Command::Persist(state) = out.remove(i) else {
        unreachable!("found a Persist at {i}")
    };
    out.retain(|c| !matches!(c, Command::Persist(_)));
    match &opts.store {
        Some(store) => {
            let write = || store.write(&state);
            // An fsync blocks: on a multi-threaded runtime, let the node's
            // other tasks (readers, writers, timers) move to other threads.
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(write)
                }
                _ => write(),
            }
        }
        None => {
            *opts.durable.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
            Ok(())
        }
    }
}

fn execute(
    opts: &NodeOptions,
    out: &mut Vec<Command>,
    outbox: &mut Outbox,
    tasks: &mut JoinSet<()>,
    tx: &mpsc::UnboundedSender<Input>,
) -> Result<(), super::store::StoreError> {
    // Write-ahead: the step's durable state is stored before any of its
    // messages or events leaves the node (a restarted coordinator must
    // know every lease bound and view it may have announced; a checkpoint
    // event must name a checkpoint that is on disk).
    persist(opts, out)?;
    for cmd in out.drain(..) {
        match cmd {
            Command::Send { to, msg } => outbox.send(to, msg, tasks),
            Command::SetTimer { timer, after } => {
                let tx = tx.clone();
                tasks.spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Input::Timer(timer));
                });
            }
            Command::Compute { .. } => {
                let tx = tx.clone();
                let step = match &mut outbox.shaper {
                    Some(s) => s.step_time(opts.origin.elapsed(), opts.step_time),
                    None => opts.step_time,
                };
                if step.is_zero() {
                    let _ = tx.send(Input::ComputeDone);
                } else {
                    tasks.spawn(async move {
                        tokio::time::sleep(step).await;
                        let _ = tx.send(Input::ComputeDone);
                    });
                }
            }
            Command::Emit(ev) => opts.events.record(opts.origin, ev),
            Command::Persist(_) => unreachable!("persisted before the step's other commands"),
        }
    }
    Ok(())
}

/// Outbound connections, one writer task per peer.
struct Outbox {
    /// Deadlines of the connections.
    health: Health,
    /// Deadlines of the connection to the coordinator, with datagrams
    /// ([`datagram::control_health`]).
    to_coordinator: Health,
    me: NodeId,
    incarnation: u32,
    peers: Arc<BTreeMap<NodeId, SocketAddr>>,
    /// Per peer: its writer, fed messages with the time to write them
    /// and their Lamport stamps.
    writers: BTreeMap<NodeId, Writer>,
    /// The node's datagram socket (`None`: heartbeats go on the
    /// connections too).
    udp: Option<Arc<UdpSocket>>,
    stats: Arc<Mutex<Traffic>>,
    origin: Instant,
    /// The node's events and logical clock (a send is stamped from it).
    events: EventSink,
    /// The network model applied to what is sent (`None`: none).
    shaper: Option<super::faults::Shaper>,
}

/// One peer's writer task, as the outbox sees it.
struct Writer {
    /// Messages with the time to write them and their Lamport stamps.
    tx: mpsc::UnboundedSender<(Message, Instant, u64)>,
    /// The stamp of the last message handed to it.
    handed: u64,
    /// Set by the writer: every message stamped up to this one is either
    /// delivered or lost for good (dropped, or on a connection it reset or
    /// saw end).
    settled: Arc<AtomicU64>,
}

impl Outbox {
    fn send(&mut self, to: NodeId, msg: Message, tasks: &mut JoinSet<()>) {
        let Some(&addr) = self.peers.get(&to) else {
            eprintln!("pssim {}: no address for {to}; message dropped", self.me);
            return;
        };
        let writer = self.writers.entry(to).or_insert_with(|| {
            let (wtx, wrx) = mpsc::unbounded_channel();
            let hello = Frame::Hello {
                from: self.me,
                incarnation: self.incarnation,
            };
            let settled = Arc::new(AtomicU64::new(0));
            let health = if to == NodeId::Coordinator && self.udp.is_some() {
                self.to_coordinator
            } else {
                self.health
            };
            tasks.spawn(write_loop(
                hello,
                addr,
                health,
                wrx,
                self.stats.clone(),
                settled.clone(),
            ));
            Writer {
                tx: wtx,
                handed: 0,
                settled,
            }
        });
        let lamport = self.events.stamp_send(self.origin.elapsed());
        let at = match &mut self.shaper {
            None => Instant::now(),
            Some(shaper) => match shaper.send(self.origin.elapsed(), to, msg.wire_size()) {
                super::faults::Verdict::Drop => {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
                    return;
                }
                super::faults::Verdict::At(t) => self.origin + t,
            },
        };
        if let (Some(udp), true) = (&self.udp, datagram::carries(&msg)) {
            // Behind whatever this peer's connection may still deliver.
            let after = if writer.handed > writer.settled.load(Ordering::Acquire) {
                writer.handed
            } else {
                0
            };
            let bytes = datagram::encode(self.me, self.incarnation, lamport, after, &msg);
            if at <= Instant::now() {
                // At once: a datagram never waits behind anything.
                datagram::send(udp, &bytes, addr, &msg, &self.stats);
            } else {
                let (udp, stats) = (udp.clone(), self.stats.clone());
                tasks.spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    datagram::send(&udp, &bytes, addr, &msg, &stats);
                });
            }
            return;
        }
        if writer.tx.send((msg, at, lamport)).is_err() {
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
        } else {
            writer.handed = lamport;
        }
    }
}

/// Dials `addr` and says hello.
async fn connect(addr: SocketAddr, hello: &Frame, h: &Health) -> std::io::Result<TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut s = conn::dial(addr, h).await?;
    conn::Deadline::new(&mut s, h.write_stall)
        .write_all(&frame::encode(hello))
        .await?;
    Ok(s)
}

async fn write_loop(
    hello: Frame,
    addr: SocketAddr,
    h: Health,
    mut rx: mpsc::UnboundedReceiver<(Message, Instant, u64)>,
    stats: Arc<Mutex<Traffic>>,
    settled: Arc<AtomicU64>,
) {
    let mut conn: Option<TcpStream> = None;
    // The stamp of the last message written on `conn`.
    let mut on_conn = 0;
    let mut retry_at = tokio::time::Instant::now();
    let mut buf = Vec::new();
    loop {
        // The next message, or `None` if the connection ended first (the
        // peer closed it, or the kernel gave up on it).
        let next = match &conn {
            Some(c) => tokio::select! {
                m = rx.recv() => Some(m),
                () = conn::ended(c) => None,
            },
            None => Some(rx.recv().await),
        };
        let (msg, at, lamport) = match next {
            Some(Some(m)) => m,
            Some(None) => break,
            None => {
                // Dial afresh for the next message rather than lose it
                // on a dead connection. What it still held is lost.
                conn = None;
                settled.fetch_max(on_conn, Ordering::Release);
                continue;
            }
        };
        // The modelled network's delivery time (in order: the shaper never
        // gives a link's message an earlier time than the one before).
        tokio::time::sleep_until(at.into()).await;
        if conn.is_none() && tokio::time::Instant::now() >= retry_at {
            match connect(addr, &hello, &h).await {
                Ok(s) => conn = Some(s),
                Err(_) => retry_at = tokio::time::Instant::now() + RECONNECT_BACKOFF,
            }
        }
        let Some(stream) = conn.as_mut() else {
            stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
            settled.fetch_max(lamport, Ordering::Release);
            continue;
        };
        let mut frame = Frame::Msg { lamport, msg };
        let res = frame::write_frame(
            &mut conn::Deadline::new(stream, h.write_stall),
            &mut frame,
            &mut buf,
        )
        .await;
        let Frame::Msg { msg, .. } = frame else {
            unreachable!("a message frame stays one")
        };
        match res {
            // Raw: the real frame plus what compression saved (as modelled).
            Ok(size) => {
                on_conn = lamport;
                stats.lock().unwrap_or_else(|e| e.into_inner()).count(
                    &msg,
                    size,
                    size + msg.raw_wire_size() - msg.wire_size(),
                )
            }
            Err(_) => {
                // Stalled or broken: reset it, so no frame still queued on
                // it arrives after the next connection's.
                if let Some(c) = conn.take() {
                    conn::abort(c);
                }
                settled.fetch_max(lamport, Ordering::Release);
                stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
            }
        }
        if buf.capacity() > 1 << 20 {
            // Do not keep a large push's buffer for the small messages after.
            buf = Vec::new();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    me: NodeId,
    max_frame_bytes: u32,
    h: Health,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut readers = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Keepalive and the user timeout end a half-open inbound
                // connection whose writer vanished (its reader with it).
                let _ = conn::tune(&stream, &h);
                readers.spawn(read_loop(stream, peer, me, max_frame_bytes, tx.clone()));
            }
            Err(e) => {
                eprintln!("pssim {me}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        while readers.try_join_next().is_some() {}
    }
}

/// Reads one inbound connection: a hello, then messages, until the peer
/// closes it or sends something that is not a frame.
async fn read_loop(
    mut stream: TcpStream,
    peer: SocketAddr,
    me: NodeId,
    max_frame_bytes: u32,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut buf = Vec::new();
    let hello = tokio::time::timeout(
        HELLO_TIMEOUT,
        frame::read_frame(&mut stream, &mut buf, max_frame_bytes),
    )
    .await;
    let (from, incarnation) = match hello {
        Ok(Ok(Some(Frame::Hello { from, incarnation }))) => (from, incarnation),
        Ok(Ok(None)) => return,
        // A start-up barrier's probe (`conn::await_peers`): reset unsaid.
        Ok(Err(FrameError::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
        Ok(Ok(Some(Frame::Msg { msg: m, .. }))) => {
            eprintln!(
                "pssim {me}: connection from {peer} sent {} before its hello; closing it",
                m.kind()
            );
            return;
        }
        Ok(Err(e)) => {
            eprintln!("pssim {me}: connection from {peer}: {e}; closing it");
            return;
        }
        Err(_) => {
            eprintln!("pssim {me}: connection from {peer} sent no hello within {HELLO_TIMEOUT:?}; closing it");
            return;
        }
    };
    loop {
        match frame::read_frame(&mut stream, &mut buf, max_frame_bytes).await {
            Ok(Some(Frame::Msg { lamport, msg })) => {
                let input = Input::Msg {
                    from,
                    incarnation,
                    msg,
                    lamport,
                    after: None,
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
            Ok(Some(Frame::Hello { .. })) => {
                eprintln!("pssim {me}: {from} ({peer}) said hello twice; closing the connection");
                return;
            }
            Ok(None) => return,
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => {
                eprintln!("pssim {me}: connection from {from} ({peer}): {e}; closing it");
                return;
            }
        }
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
    }
}

/// Reads the node's datagrams: each a heartbeat with its sender and stamps
/// ([`datagram::decode`]); anything else is ignored (the first few said on
/// stderr).
async fn udp_loop(
    udp: Arc<UdpSocket>,
    me: NodeId,
    max_frame_bytes: u32,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut buf = vec![0u8; datagram::MAX_BYTES];
    let mut complaints = 0u32;
    loop {
        let (n, peer) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => {
                // ICMP errors of earlier sends surface here: not fatal.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        match datagram::decode(&buf[..n], max_frame_bytes) {
            Ok(d) => {
                let input = Input::Msg {
                    from: d.from,
                    incarnation: d.incarnation,
                    msg: d.msg,
                    lamport: d.lamport,
                    after: Some(d.after),
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
            Err(e) => {
                if complaints < 10 {
                    complaints += 1;
                    eprintln!("pssim {me}: datagram from {peer} ignored: {e}");
                }
            }
        }
    }
}
