//! The scenario's types, with their defaults.
//!
//! May import: `crate::scenario`, `crate::core` (ids), toml, serde.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`.

use crate::core::NodeId;
use std::time::Duration;

/// A node named in a scenario: `server-<i>`, `worker-<i>` or `coordinator`.
pub type NodeName = NodeId;

/// A whole scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Required; used in output paths.
    pub name: String,
    /// What the scenario shows. Default "".
    pub description: String,
    /// Default seed (`--seed` overrides). Default 1.
    pub seed: u64,
    /// `[cluster]`.
    pub cluster: Cluster,
    /// `[model]`.
    pub model: ModelSpec,
    /// `[training]`.
    pub training: Training,
    /// `[network]`.
    pub network: Network,
    /// `[compute]`.
    pub compute: Compute,
    /// `[[fault]]`, in file order.
    pub faults: Vec<Fault>,
    /// `[chaos]`, if present.
    pub chaos: Option<Chaos>,
    /// `[[change]]`, sorted by `at` (stable).
    pub changes: Vec<Change>,
    /// `[compression]`.
    pub compression: Compression,
    /// `[check]`.
    pub check: Checks,
}

impl Scenario {
    /// A scenario with every default and the given name.
    pub fn minimal(name: &str) -> Scenario {
        Scenario {
            name: name.to_string(),
            description: String::new(),
            seed: 1,
            cluster: Cluster::default(),
            model: ModelSpec::default(),
            training: Training::default(),
            network: Network::default(),
            compute: Compute::default(),
            faults: Vec::new(),
            chaos: None,
            changes: Vec::new(),
            compression: Compression::default(),
            check: Checks::default(),
        }
    }
}

/// `[cluster]`: the nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Server nodes; the key space is split into one range per server.
    /// Default 2, at least 1.
    pub servers: u32,
    /// Copies of each key range (1 = none), `1..=servers`. Default 1.
    pub replication: u32,
    /// Workers. Default 4, at least 1.
    pub workers: u32,
    /// Servers checkpoint their ranges this often (optional).
    pub checkpoint_every: Option<Duration>,
    /// Silence after which the coordinator declares a node dead.
    /// Default 500ms.
    pub heartbeat_timeout: Duration,
    /// Extension: a worker's first retry timeout (doubles per retry, up to
    /// 8x). Default 200ms.
    pub request_timeout: Duration,
    /// Extension: how often nodes send heartbeats (and the coordinator
    /// checks for silence). Default `heartbeat_timeout / 4`; must be
    /// shorter than `heartbeat_timeout`. A shorter period makes a false
    /// suspicion under packet loss rarer (it takes more heartbeats lost in
    /// a row) at the cost of more messages (docs/protocol.md).
    pub heartbeat_interval: Option<Duration>,
    /// Extension: tails serve reads only under a lease from the
    /// coordinator (default true). Without, a tail the coordinator removed
    /// while it was cut off may answer readers that still route to it
    /// from a membership it no longer shares: stale reads
    /// (`staleness_bound` catches them; docs/protocol.md, "Leases").
    pub read_leases: bool,
    /// How keys map to key ranges. Default `range`.
    pub placement: Placement,
}

/// `[cluster] placement`: how keys map to key ranges (docs/protocol.md,
/// "Keys, ranges and views").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// Contiguous intervals of the model's keys, of equal size.
    #[default]
    Range,
    /// Keys spread over ranges by a seeded permutation of the key space.
    Hash,
    /// Contiguous intervals cut so that each range gets an equal share of
    /// the expected accesses (from the data; as `range` for dense models).
    Balanced,
}

impl Placement {
    /// Its name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Range => "range",
            Placement::Hash => "hash",
            Placement::Balanced => "balanced",
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            servers: 2,
            replication: 1,
            workers: 4,
            checkpoint_every: None,
            heartbeat_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(200),
            heartbeat_interval: None,
            read_leases: true,
            placement: Placement::Range,
        }
    }
}

/// The model's loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Binary logistic regression, dense pulls (every key).
    Logistic,
    /// Multiclass softmax regression, dense pulls.
    Softmax,
    /// Binary logistic regression pulling only the keys a minibatch touches.
    SparseLogistic,
    /// A multilayer perceptron (hidden layers of `hidden` units, a softmax
    /// output) on dense data, dense pulls.
    Mlp,
}

impl ModelKind {
    /// Its name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Logistic => "logistic",
            ModelKind::Softmax => "softmax",
            ModelKind::SparseLogistic => "sparse_logistic",
            ModelKind::Mlp => "mlp",
        }
    }
}

/// `[model] activation`: a perceptron's hidden units' nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// `max(0, s)`.
    #[default]
    Relu,
    /// `tanh(s)`.
    Tanh,
}

impl Activation {
    /// Its name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }
}

/// Most units a hidden layer may have (`[model] hidden`).
pub const MAX_HIDDEN_WIDTH: u32 = 65_536;
/// Most hidden layers a perceptron may have.
pub const MAX_HIDDEN_LAYERS: usize = 8;

/// The data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// Wisconsin breast cancer (569 x 30, 2 classes).
    BreastCancer,
    /// Handwritten digits (1797 x 64, 10 classes).
    Digits,
    /// Seeded synthetic sparse binary data.
    Synthetic,
}

impl DatasetKind {
    /// Its name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::BreastCancer => "breast_cancer",
            DatasetKind::Digits => "digits",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// Features and classes of a dense data set (`None`: synthetic, whose
    /// features the scenario sets).
    pub fn dense_shape(self) -> Option<(u32, u32)> {
        match self {
            DatasetKind::BreastCancer => Some((30, 2)),
            DatasetKind::Digits => Some((64, 10)),
            DatasetKind::Synthetic => None,
        }
    }
}

/// Most parameters a perceptron may have (as many as the largest
/// synthetic linear model: 10^8 features).
pub const MAX_MLP_PARAMS: u64 = 100_000_000;

/// Parameters of a perceptron over `features` inputs with `hidden` layers
/// and `classes` outputs: a weight per pair of units of adjacent layers and
/// a bias per unit above the input.
pub fn mlp_params(features: u32, hidden: &[u32], classes: u32) -> u64 {
    let sizes: Vec<u64> = std::iter::once(features)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(classes))
        .map(u64::from)
        .collect();
    sizes.windows(2).map(|w| (w[0] + 1) * w[1]).sum()
}

/// `[model]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Default `logistic`.
    pub kind: ModelKind,
    /// Default: breast_cancer for logistic, digits for softmax and mlp,
    /// synthetic for sparse_logistic.
    pub dataset: DatasetKind,
    /// Mlp only: the hidden layers' widths, input side first, each in
    /// `1..=MAX_HIDDEN_WIDTH`, at most `MAX_HIDDEN_LAYERS` layers. Default
    /// `[64]` (`hidden = 64` in a file; a list for several layers).
    pub hidden: Vec<u32>,
    /// Mlp only: the hidden units' nonlinearity. Default relu.
    pub activation: Activation,
    /// Synthetic only: features. Default 100000.
    pub features: u32,
    /// Synthetic only: examples (train + test). Default 20000.
    pub examples: u32,
    /// Synthetic only: fraction of non-zero features per example. Default
    /// 0.001.
    pub density: f64,
    /// Synthetic only: Zipf exponent of feature popularity over the
    /// feature index (feature 0 most frequent). Default 0: uniform.
    pub skew: f64,
    /// Extension: seed of the train/test split and of synthetic data.
    /// Default 0 (the same data for every run seed).
    pub data_seed: u64,
    /// Extension: L2 regularisation. Default 0.
    pub l2: f64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            kind: ModelKind::Logistic,
            dataset: DatasetKind::BreastCancer,
            hidden: vec![64],
            activation: Activation::Relu,
            features: 100_000,
            examples: 20_000,
            density: 0.001,
            skew: 0.0,
            data_seed: 0,
            l2: 0.0,
        }
    }
}

/// Read consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Bulk synchronous (bound 0).
    Bsp,
    /// Stale synchronous with bound `staleness`.
    Ssp,
    /// Asynchronous (no bound).
    Asp,
}

/// `[training]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    /// Default `ssp`.
    pub consistency: Consistency,
    /// SSP bound. Default 3 (ignored by bsp and asp).
    pub staleness: u32,
    /// Server-side SGD step. Default 0.1.
    pub learning_rate: f64,
    /// Default 32.
    pub batch_size: u32,
    /// Clocks per worker. Default 100.
    pub clocks: u32,
    /// Stop once test accuracy reaches this (optional).
    pub target_accuracy: Option<f64>,
    /// Extension: hard stop of simulated time. Default 600s.
    pub max_time: Duration,
    /// Extension: the accuracy observer's period. Default 250ms.
    pub eval_every: Duration,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            consistency: Consistency::Ssp,
            staleness: 3,
            learning_rate: 0.1,
            batch_size: 32,
            clocks: 100,
            target_accuracy: None,
            max_time: Duration::from_secs(600),
            eval_every: Duration::from_millis(250),
        }
    }
}

/// `[network]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Lowest one-way latency. Default 1ms.
    pub latency_min: Duration,
    /// Highest one-way latency. Default 1ms.
    pub latency_max: Duration,
    /// Each node's network interface, per direction (version 2; version 1
    /// read it per link), bits per second. Default 1Gbps.
    pub bandwidth_bps: f64,
    /// `server_bandwidth`: the servers' interfaces, if given (default
    /// `bandwidth_bps`; see [`Network::server_bandwidth`]).
    pub server_bandwidth_bps: Option<f64>,
    /// `worker_bandwidth`: the workers' interfaces, if given (default
    /// `bandwidth_bps`; see [`Network::worker_bandwidth`]).
    pub worker_bandwidth_bps: Option<f64>,
    /// Base loss probability, `[0, 1)`. Default 0.
    pub loss: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(1),
            bandwidth_bps: 1e9,
            server_bandwidth_bps: None,
            worker_bandwidth_bps: None,
            loss: 0.0,
        }
    }
}

impl Network {
    /// A server's interface, per direction, bits per second:
    /// `server_bandwidth`, else `bandwidth`.
    pub fn server_bandwidth(&self) -> f64 {
        self.server_bandwidth_bps.unwrap_or(self.bandwidth_bps)
    }

    /// A worker's interface, per direction, bits per second:
    /// `worker_bandwidth`, else `bandwidth`.
    pub fn worker_bandwidth(&self) -> f64 {
        self.worker_bandwidth_bps.unwrap_or(self.bandwidth_bps)
    }

    /// The interface of `node`, per direction, bits per second (the
    /// coordinator has `bandwidth`).
    pub fn interface_bps(&self, node: NodeName) -> f64 {
        match node {
            NodeName::Server(_) => self.server_bandwidth(),
            NodeName::Worker(_) => self.worker_bandwidth(),
            NodeName::Coordinator => self.bandwidth_bps,
        }
    }
}

/// The default `step_time`: 20ms, as in version 1.
pub const DEFAULT_STEP_TIME: Duration = Duration::from_millis(20);

/// The default `server_apply_rate`, values per second: `pssim calibrate`
/// on the project's machine (2 cores; 1.26e10 to 1.31e10 values/s applying
/// a dense push of 10^6 values; docs/cost-model.md, "This machine"),
/// rounded down.
pub const DEFAULT_SERVER_APPLY_RATE: f64 = 1e10;

/// What one minibatch costs a worker (see [`Compute::step`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepCost {
    /// A fixed time (`step_time`).
    Fixed(Duration),
    /// The batch's floating-point work at this many GFLOP/s
    /// (`worker_gflops`).
    Flops {
        /// GFLOP/s of one worker.
        gflops: f64,
    },
}

/// `[compute]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Compute {
    /// `step_time`: one minibatch on a normal worker. The parser fills in
    /// the default 20ms unless `worker_gflops` is given without it, so
    /// this is `None` only when the FLOPs set the step time. Code that
    /// sets `worker_gflops` must clear it: when both are given,
    /// `step_time` wins (the contract: "with `worker_gflops` and no
    /// `step_time` ... otherwise `step_time` as in version 1").
    pub step_time: Option<Duration>,
    /// `worker_gflops`: a worker's floating-point rate, GFLOP/s (> 0).
    /// Without `step_time`, a minibatch costs the model's FLOPs for that
    /// batch divided by this rate (docs/cost-model.md).
    pub worker_gflops: Option<f64>,
    /// Extension: each step takes its time times a factor uniform in
    /// `[1 - jitter, 1 + jitter]`. Default 0.
    pub jitter: f64,
    /// `server_apply_rate`: values per second a server applies (pushes)
    /// or copies out (pulls). Default [`DEFAULT_SERVER_APPLY_RATE`].
    pub server_apply_rate: f64,
}

impl Default for Compute {
    fn default() -> Self {
        Compute {
            step_time: Some(DEFAULT_STEP_TIME),
            worker_gflops: None,
            jitter: 0.0,
            server_apply_rate: DEFAULT_SERVER_APPLY_RATE,
        }
    }
}

impl Compute {
    /// What a minibatch costs: `step_time` if given, else the FLOPs at
    /// `worker_gflops` if given, else the default 20ms.
    pub fn step(&self) -> StepCost {
        match (self.step_time, self.worker_gflops) {
            (Some(t), _) => StepCost::Fixed(t),
            (None, Some(gflops)) => StepCost::Flops { gflops },
            (None, None) => StepCost::Fixed(DEFAULT_STEP_TIME),
        }
    }

    /// What real mode waits per minibatch on top of computing it for
    /// real: `step_time`; nothing under `worker_gflops` (the real
    /// computation is the cost the simulator models from this machine's
    /// calibrated rate); the default step time if neither is given.
    pub fn real_step_time(&self) -> Duration {
        match (self.step_time, self.worker_gflops) {
            (Some(t), _) => t,
            (None, Some(_)) => Duration::ZERO,
            (None, None) => DEFAULT_STEP_TIME,
        }
    }
}

/// One `[[fault]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Simulated time it starts.
    pub at: Duration,
    /// What it is.
    pub kind: FaultKind,
    /// Line of its `[[fault]]` header (0 when built in code).
    pub line: usize,
}

/// Fault kinds. Overlaps: partitions combine (a pair is cut if any active
/// partition separates it), the highest active loss rate wins, the slowest
/// straggler on a worker wins, slow links add latency and take the lowest
/// bandwidth; a node cannot crash while it is down.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// The node stops and loses its memory; restarts after `restart_after`
    /// if given.
    Crash {
        /// The node.
        node: NodeName,
        /// Down time.
        restart_after: Option<Duration>,
    },
    /// Nodes in different groups cannot talk; unlisted nodes reach everyone.
    Partition {
        /// At least two non-empty, disjoint groups.
        groups: Vec<Vec<NodeName>>,
        /// How long (`None`: to the end).
        duration: Option<Duration>,
    },
    /// Messages `from -> to` are held, then delivered when it ends.
    Clog {
        /// Sender.
        from: NodeName,
        /// Receiver.
        to: NodeName,
        /// How long.
        duration: Option<Duration>,
    },
    /// Every message is lost with probability `rate`.
    Loss {
        /// In `[0, 1]`.
        rate: f64,
        /// How long.
        duration: Option<Duration>,
    },
    /// A worker's compute takes `slowdown` times longer.
    Straggler {
        /// A worker.
        node: NodeName,
        /// At least 1.
        slowdown: f64,
        /// How long.
        duration: Option<Duration>,
    },
    /// Extra latency and/or lower bandwidth on one link, both directions.
    SlowLink {
        /// Two distinct nodes.
        between: [NodeName; 2],
        /// Extra one-way latency (default 0).
        latency: Duration,
        /// Bandwidth cap.
        bandwidth_bps: Option<f64>,
        /// How long.
        duration: Option<Duration>,
    },
}

impl FaultKind {
    /// The `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Crash { .. } => "crash",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Clog { .. } => "clog",
            FaultKind::Loss { .. } => "loss",
            FaultKind::Straggler { .. } => "straggler",
            FaultKind::SlowLink { .. } => "slow_link",
        }
    }

    /// How long it lasts (`restart_after` for a crash); `None`: to the end.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            FaultKind::Crash { restart_after, .. } => *restart_after,
            FaultKind::Partition { duration, .. }
            | FaultKind::Clog { duration, .. }
            | FaultKind::Loss { duration, .. }
            | FaultKind::Straggler { duration, .. }
            | FaultKind::SlowLink { duration, .. } => *duration,
        }
    }

    /// The nodes it names.
    pub fn nodes(&self) -> Vec<NodeName> {
        match self {
            FaultKind::Crash { node, .. } | FaultKind::Straggler { node, .. } => vec![*node],
            FaultKind::Partition { groups, .. } => groups.iter().flatten().copied().collect(),
            FaultKind::Clog { from, to, .. } => vec![*from, *to],
            FaultKind::Loss { .. } => Vec::new(),
            FaultKind::SlowLink { between, .. } => between.to_vec(),
        }
    }
}

/// `[chaos]`: random faults drawn from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Chaos {
    /// Crashes per simulated second. Default 0.
    pub crash_rate: f64,
    /// Partitions per simulated second. Default 0.
    pub partition_rate: f64,
    /// Clogs per simulated second. Default 0.
    pub clog_rate: f64,
    /// Stragglers per simulated second. Default 0.
    pub straggler_rate: f64,
    /// Extension: loss bursts per simulated second. Default 0.
    pub loss_rate: f64,
    /// Extension: slow links per simulated second. Default 0.
    pub slow_link_rate: f64,
    /// Extension: cut-offs from the coordinator per simulated second: a
    /// server or worker loses its link to the coordinator alone (both ways,
    /// or one way in either direction), every other link intact. Default 0.
    pub cut_rate: f64,
    /// Longest drawn fault. Default 5s.
    pub max_duration: Duration,
    /// Extension: shortest drawn fault; each lasts `U[min_duration,
    /// max_duration]`. Default none: `max_duration x U[0.05, 1]`.
    pub min_duration: Option<Duration>,
    /// Extension: swarm testing (each seed enables a random subset of the
    /// kinds at a random intensity). `false`: every kind with a rate is
    /// drawn at its rate on every seed. Default true.
    pub swarm: bool,
    /// No new chaos after this. Default 60s.
    pub until: Duration,
    /// Allow more than `replication - 1` servers of a range down at once.
    /// Default false.
    pub beyond_fault_model: bool,
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            crash_rate: 0.0,
            partition_rate: 0.0,
            clog_rate: 0.0,
            straggler_rate: 0.0,
            loss_rate: 0.0,
            slow_link_rate: 0.0,
            cut_rate: 0.0,
            max_duration: Duration::from_secs(5),
            min_duration: None,
            swarm: true,
            until: Duration::from_secs(60),
            beyond_fault_model: false,
        }
    }
}

/// One `[[change]]`: hyperparameters changed while training runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// When the coordinator applies it.
    pub at: Duration,
    /// New learning rate.
    pub learning_rate: Option<f64>,
    /// New SSP bound.
    pub staleness: Option<u32>,
    /// New consistency model.
    pub consistency: Option<Consistency>,
    /// New batch size.
    pub batch_size: Option<u32>,
    /// New hidden widths (a live widening of a perceptron).
    pub hidden: Option<Vec<u32>>,
    /// Line of its `[[change]]` header (0 when built in code).
    pub line: usize,
}

/// What a push or pull puts on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionKind {
    /// Raw floats.
    None,
    /// Largest `ratio` fraction of entries.
    TopK,
    /// `bits` per value with a scale.
    Quantize,
}

/// `[compression]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Compression {
    /// Default none.
    pub kind: CompressionKind,
    /// topk: fraction kept, `(0, 1]`. Default 0.01.
    pub ratio: f64,
    /// quantize: 1, 4 or 8. Default 8.
    pub bits: u8,
    /// Keep the residual on the worker. Default true.
    pub error_feedback: bool,
    /// Servers skip values that changed less than this since the worker's
    /// last pull. Default 0 (send all).
    pub pull_threshold: f64,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            kind: CompressionKind::None,
            ratio: 0.01,
            bits: 8,
            error_feedback: true,
            pull_threshold: 0.0,
        }
    }
}

/// `[check]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Checks {
    /// No read violates the bound in force. Default true.
    pub staleness_bound: bool,
    /// Every acknowledged push is in the final parameters. Default true.
    pub no_lost_updates: bool,
    /// Replicas hold equal values once quiet. Default true.
    pub replicas_agree: bool,
    /// After the last fault heals, every live worker advances within this.
    /// Default 30s; `false` disables.
    pub liveness: Option<Duration>,
    /// Final test accuracy at least this (optional).
    pub min_accuracy: Option<f64>,
    /// Run twice and compare trace hashes. Default false.
    pub deterministic: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            staleness_bound: true,
            no_lost_updates: true,
            replicas_agree: true,
            liveness: Some(Duration::from_secs(30)),
            min_accuracy: None,
            deterministic: false,
        }
    }
}
