//! The command line's flags (clap). Every field is documented where it
//! is declared: clap turns the doc comments into `--help`.
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pssim",
    version,
    about = "Deterministic simulator for parameter-server machine learning",
    long_about = "Runs the parameter-server protocol (servers, workers, coordinator) on a seeded \
                  simulated network and clock, trains a real model, injects faults and checks \
                  properties. With no subcommand, runs the built-in default scenario.\n\n\
                  Exit codes: 0 all checks pass, 1 a check failed, 2 bad input.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The command (none: the default scenario).
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// Flags of the default run.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run a scenario file.
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Validate scenario files without running them.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one simulation per seed, in parallel, and summarize; or merge
    /// the outputs of a sharded sweep (`pssim sweep merge DIR...`).
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        long_about = "Run one simulation per seed, in parallel, and summarize:\n\n    \
                      pssim sweep FILE --seeds A..B [--shard I/N] [--out DIR] ...\n\n\
                      prints pass/fail counts, per-check failures, lost/duplicated updates, \
                      percentiles and each failing seed's REPRODUCE line. `--set KEY=a,b,c` \
                      sweeps a grid. `--shard I/N` runs one slice of the seeds (a CI matrix, \
                      a job array); join the slices' --out directories with\n\n    \
                      pssim sweep merge DIR... [--out DIR] [--plots DIR] [--report FILE] [--json]\n\n\
                      which reports exactly what one unsharded sweep over all their seeds \
                      would (see `pssim sweep merge --help`).\n\n\
                      Exit codes: 0 all seeds pass, 1 a seed failed, 2 bad input."
    )]
    Sweep {
        /// Merge the outputs of sharded sweeps instead of running one.
        #[command(subcommand)]
        merge: Option<SweepCmd>,
        /// The scenario file (TOML).
        #[arg(required = true)]
        file: Option<PathBuf>,
        #[command(flatten)]
        args: SweepArgs,
    },
    /// Shrink a failing run to the smallest fault schedule that still fails.
    Shrink {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Switch on a planted protocol bug; repeatable.
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Override a scenario key; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Write the smallest failing scenario to FILE (default: print it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Runs to spend at most.
        #[arg(long, default_value_t = 400)]
        budget: u64,
    },
    /// List the planted protocol bugs (`--bug NAME`).
    Bugs,
    /// Run one node of a real cluster over TCP (see docs/real-mode.md).
    #[command(
        long_about = "Run one node of a real cluster over TCP (see docs/real-mode.md).\n\n\
                      It prints `ready ADDR` once it listens and `status {..}` whenever its \
                      status changes. It finishes on stdin `finish`, on SIGTERM (`kill PID`, \
                      systemctl stop) or on SIGINT (Ctrl-C): it writes its final report (a \
                      server's replicas: what the run's accuracy is computed from) to its events \
                      file and to stdout as `final {..}`, and exits with code 0. A node started \
                      with stdin closed (`</dev/null`, nohup, a service manager) runs until a \
                      signal. SIGKILL is a crash: no final report.\n\n\
                      It listens on its address over TCP and, for heartbeats, over UDP on the \
                      same port (both must be open between the nodes; a node that cannot bind \
                      UDP sends its heartbeats over TCP).\n\n\
                      A first life (--incarnation 0) then waits until every peer listens, up to \
                      the cluster file's startup_timeout (default 60s); `finish` or a signal \
                      meanwhile stops it before its first step, without a report.\n\n\
                      If the cluster file names an events_dir, the node writes \
                      <events_dir>/<node>-<incarnation>.jsonl there; `pssim judge DIR` judges \
                      the directory once every node is done.\n\n\
                      Exit codes: 0 finished, 2 bad input (cluster file, data directory) or \
                      peers still unreachable at startup_timeout."
    )]
    Node {
        /// The cluster file (TOML): the scenario and every node's address.
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// The node's role; `--id` is then its index.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// The node: an index with `--role`, or a name (`server-1`,
        /// `worker-0`, `coordinator`).
        #[arg(long, value_name = "N|NAME")]
        id: Option<String>,
        /// Life number: 0 at the start of the job, then 1, 2, ... for
        /// restarts (a restarted server copies its ranges back).
        #[arg(long, default_value_t = 0)]
        incarnation: u32,
        /// Keep the node's durable state (the coordinator's membership and
        /// view, a server's checkpoints) in DIR, created if needed, and
        /// recover it from there when a later life (`--incarnation`)
        /// starts. Without it the state dies with the process.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Exit at once, without a final report (as a crash), when stdin
        /// reaches its end: for a supervisor that talks to the node over a
        /// pipe (`pssim local`), so the node dies with it. Without it the end
        /// of stdin is ignored and the node runs until `finish` or a signal.
        #[arg(long)]
        exit_on_eof: bool,
    },
    /// Judge a real cluster's events directory (`pssim node`s started by
    /// hand, or `pssim local --dir`), like `pssim local` judges its own run.
    #[command(
        long_about = "Judge a real cluster's events directory: the events_dir of its \
                      cluster file (every node's <node>-<incarnation>.jsonl, copied together \
                      if the nodes ran on different machines), or a `pssim local --dir DIR`. \
                      The scenario and seed come from the files' headers, the final parameters \
                      (accuracy) from the servers' final reports; events are merged in logical \
                      order (Lamport stamps carried by every message), so skewed machine clocks \
                      cannot put an effect before its cause. Run it once every node has finished \
                      (a life without a final report counts as crashed). See docs/real-mode.md.\n\n\
                      Exit codes: 0 all checks pass, 1 a check failed, 2 bad input (naming the \
                      file and line)."
    )]
    Judge {
        /// The events directory (or a directory holding `events/`).
        dir: PathBuf,
        /// Print the outcome as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Write the merged event trace (JSON Lines) to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Run a scenario's cluster for real over TCP on loopback, and judge it
    /// like a simulated run.
    Local {
        /// The scenario file (TOML).
        file: PathBuf,
        /// Run the nodes as tasks of this process instead of child
        /// processes.
        #[arg(long)]
        in_process: bool,
        /// Seed of the workers' minibatch order (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the outcome as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Give up (and fail) if training has not finished after this long.
        #[arg(long, value_name = "DURATION", default_value = "120s")]
        timeout: String,
        /// Write the merged event trace (JSON Lines) to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Keep the cluster file, events (DIR/events: `pssim judge DIR`
        /// judges them again) and node logs in DIR (default: a temporary
        /// directory, removed after a successful run).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Measure performance against baselines taken in the same run.
    Bench {
        /// Also write the measurements as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Run only the scale benchmark (scenarios/scale.toml: 10^6
        /// features, 16 servers, 128 workers, 1000 clocks; about a minute):
        /// wall time and peak memory.
        #[arg(long)]
        scale: bool,
        /// With --scale: the larger point instead, scenarios/scale.toml
        /// with 1,024 workers, 64 servers and 100 clocks (about 20 minutes
        /// on one core): how far one machine goes.
        #[arg(long, requires = "scale")]
        large: bool,
        /// Run only the real TCP benchmark (push+pull of 10^7 floats through
        /// the TCP host, against raw loopback TCP; a few seconds).
        #[arg(long, conflicts_with = "scale")]
        tcp: bool,
    },
    /// Measure this machine for the cost model (gradient FLOP rates,
    /// server apply rate, memory bandwidth) and print a `[compute]` block
    /// to paste into a scenario (docs/cost-model.md; a few seconds).
    Calibrate {
        /// The model whose gradient rate goes into `worker_gflops` (the
        /// others are listed in comments).
        #[arg(long, value_enum, default_value_t = CalibrateModel::Softmax)]
        model: CalibrateModel,
    },
}

/// A model kind, for `pssim calibrate --model`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CalibrateModel {
    /// Logistic regression on breast_cancer (30 dense features).
    Logistic,
    /// Softmax regression on digits (64 features, 10 classes).
    Softmax,
    /// Sparse logistic regression on the default synthetic data.
    SparseLogistic,
    /// A multilayer perceptron on digits (64 relu hidden units).
    Mlp,
}

/// What `pssim sweep` does instead of running a sweep.
#[derive(Subcommand, Clone)]
pub enum SweepCmd {
    /// Join the --out directories of sharded sweeps into one summary.
    #[command(
        long_about = "Join the --out directories of sharded sweeps (`pssim sweep FILE \
                      --seeds A..B --shard I/N --out DIR_I`, or sweeps over disjoint seed \
                      ranges) into one summary: exactly what one unsharded sweep over the \
                      union of their seeds reports (counts, failures with their REPRODUCE \
                      lines, per-check failures, lost/duplicated totals, percentiles \
                      recomputed from every row), printed and written as `pssim sweep` does. \
                      Wall time is the sum of the shards'.\n\n\
                      Refused (exit 2): a missing directory, a missing or corrupt runs.csv or \
                      summary.json, shards of different scenarios, grid points, --bug, --set \
                      or --seeds, and a seed in two shards. Seeds in no shard are reported \
                      (`missing`). The convergence plots need the plot-data.json that --out writes.\n\n\
                      Exit codes: 0 all seeds pass, 1 a seed failed, 2 bad input."
    )]
    Merge(MergeArgs),
}

#[derive(Args, Clone)]
pub struct MergeArgs {
    /// The shards' output directories (`pssim sweep ... --out DIR`).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Print the merged summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the merged runs.csv (sorted by seed), summary.json and
    /// plot-data.json into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the sweep's plots (PNG and SVG) into DIR.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write a self-contained HTML report of the merged sweep.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// A node's role in a real cluster.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Role {
    /// A parameter server.
    Server,
    /// A worker.
    Worker,
    /// The coordinator.
    Coordinator,
}

#[derive(Args, Clone)]
pub struct SweepArgs {
    /// Seeds: `A..B` (B excluded) or `A..=B`.
    #[arg(long, value_name = "A..B", required = true)]
    pub seeds: Option<String>,
    /// Parallel runs (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only the I-th of N contiguous slices of the seeds (I from 0);
    /// `pssim sweep merge` joins the slices' --out directories.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Print the sweep summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write runs.csv (one row per seed), summary.json and plot-data.json
    /// (what merged shards plot) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the sweep's plots (PNG and SVG) into DIR: the trade-off
    /// against a swept parameter, convergence per configuration.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write a self-contained HTML report of the sweep.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Switch on a planted protocol bug; repeatable.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// Override a scenario key; repeatable. `KEY=a,b,c` sweeps the values:
    /// one sweep per combination of the listed values.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run each seed twice and compare trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
}

#[derive(Args, Clone, Default)]
pub struct RunArgs {
    /// Seed (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the outcome as one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write outcome.json, summary.txt and CSV time series into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the plots (PNG and SVG) into DIR.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write a self-contained HTML report (checks, metrics, faults, plots).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the event trace (JSON Lines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Include deliveries, drops and timer firings in the trace.
    #[arg(long, requires = "trace")]
    pub trace_all: bool,
    /// Switch on a planted protocol bug (see `pssim bugs`); repeatable.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// Run twice and compare trace hashes (the `deterministic` check).
    #[arg(long)]
    pub check_determinism: bool,
    /// Override a scenario key, e.g. `--set training.staleness=4`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}
