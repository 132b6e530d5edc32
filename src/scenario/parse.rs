//! From TOML text to a validated [`Scenario`].
//!
//! May import: `crate::scenario`, `crate::core` (ids), toml, serde.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`.

use super::reader::{parse_bandwidth, parse_duration, Source, Table};
use super::types::*;
use super::ScenarioError;
use std::ops::Range;
use std::time::Duration;
use toml::de::DeTable;

type Result<T> = std::result::Result<T, ScenarioError>;

const TOP: &[&str] = &[
    "name",
    "description",
    "seed",
    "cluster",
    "model",
    "training",
    "network",
    "compute",
    "fault",
    "chaos",
    "change",
    "compression",
    "check",
];
const CLUSTER: &[&str] = &[
    "servers",
    "replication",
    "workers",
    "checkpoint_every",
    "heartbeat_timeout",
    "request_timeout",
    "heartbeat_interval",
    "read_leases",
    "placement",
];
const MODEL: &[&str] = &[
    "kind",
    "dataset",
    "hidden",
    "activation",
    "features",
    "examples",
    "density",
    "skew",
    "data_seed",
    "l2",
];
const TRAINING: &[&str] = &[
    "consistency",
    "staleness",
    "learning_rate",
    "batch_size",
    "clocks",
    "target_accuracy",
    "max_time",
    "eval_every",
];
const NETWORK: &[&str] = &[
    "latency",
    "bandwidth",
    "server_bandwidth",
    "worker_bandwidth",
    "loss",
];
const COMPUTE: &[&str] = &["step_time", "worker_gflops", "server_apply_rate", "jitter"];
const CHAOS: &[&str] = &[
    "crash_rate",
    "partition_rate",
    "clog_rate",
    "straggler_rate",
    "loss_rate",
    "slow_link_rate",
    "cut_rate",
    "max_duration",
    "min_duration",
    "until",
    "beyond_fault_model",
    "swarm",
];
const CHANGE: &[&str] = &[
    "at",
    "learning_rate",
    "staleness",
    "consistency",
    "batch_size",
    "hidden",
];
const COMPRESSION: &[&str] = &["kind", "ratio", "bits", "error_feedback", "pull_threshold"];
const CHECK: &[&str] = &[
    "staleness_bound",
    "no_lost_updates",
    "replicas_agree",
    "liveness",
    "min_accuracy",
    "deterministic",
];

/// Keys each fault kind takes.
const FAULT_KINDS: &[(&str, &[&str])] = &[
    ("crash", &["kind", "node", "at", "restart_after"]),
    ("partition", &["kind", "groups", "at", "duration"]),
    ("clog", &["kind", "from", "to", "at", "duration"]),
    ("loss", &["kind", "rate", "at", "duration"]),
    ("straggler", &["kind", "node", "slowdown", "at", "duration"]),
    (
        "slow_link",
        &["kind", "between", "latency", "bandwidth", "at", "duration"],
    ),
];

const CONSISTENCY: &[(&str, Consistency)] = &[
    ("bsp", Consistency::Bsp),
    ("ssp", Consistency::Ssp),
    ("asp", Consistency::Asp),
];

/// Parses and validates a scenario.
pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
    let src = Source { text, origin };
    let doc = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        src.error(span, format!("invalid TOML: {msg}"))
    })?;
    let top = Table::open(&src, "", doc.get_ref(), 0..0, TOP)?;
    let (name, _) = top.str("name")?.ok_or_else(|| {
        src.error(
            0..0,
            "name: missing; every scenario needs a name, e.g. name = \"my-scenario\"",
        )
    })?;
    if name.trim().is_empty() {
        return Err(top.bad(
            top.get("name").expect("present"),
            "name",
            "must not be empty",
        ));
    }
    let mut scn = Scenario::minimal(name);
    scn.description = top
        .str("description")?
        .map_or(String::new(), |(s, _)| s.to_string());
    scn.seed = top.u64("seed", 1)?;
    let cluster = top.table("cluster", CLUSTER)?.ok_or_else(|| {
        src.error(
            0..0,
            "[cluster]: missing; every scenario needs a [cluster] section (servers, workers)",
        )
    })?;
    scn.cluster = parse_cluster(&cluster)?;
    if let Some(t) = top.table("model", MODEL)? {
        scn.model = parse_model(&t)?;
    }
    if let Some(t) = top.table("training", TRAINING)? {
        scn.training = parse_training(&t)?;
    }
    if let Some(t) = top.table("network", NETWORK)? {
        scn.network = parse_network(&t)?;
    }
    if let Some(t) = top.table("compute", COMPUTE)? {
        scn.compute = parse_compute(&t)?;
    }
    let nodes = Nodes {
        servers: scn.cluster.servers,
        workers: scn.cluster.workers,
    };
    for (i, (table, span)) in top.tables("fault")?.into_iter().enumerate() {
        scn.faults.push(parse_fault(&src, i, table, span, &nodes)?);
    }
    check_crash_overlaps(&src, &scn.faults)?;
    if let Some(t) = top.table("chaos", CHAOS)? {
        scn.chaos = Some(parse_chaos(&t)?);
    }
    let mut widenings = Vec::new();
    for (i, (table, span)) in top.tables("change")?.into_iter().enumerate() {
        let t = Table::open(&src, format!("change[{i}]"), table, span.clone(), CHANGE)?;
        let c = parse_change(&t, src.line(&span))?;
        if let Some(v) = t.get("hidden") {
            let widths = c.hidden.clone().expect("parsed with the key");
            widenings.push((c.at, i, widths, src.error(v.span(), String::new())));
        }
        scn.changes.push(c);
    }
    scn.changes.sort_by_key(|c| c.at);
    check_widenings(&scn, widenings)?;
    if let Some(t) = top.table("compression", COMPRESSION)? {
        scn.compression = parse_compression(&t)?;
    }
    if let Some(t) = top.table("check", CHECK)? {
        scn.check = parse_check(&t)?;
    }
    Ok(scn)
}

fn parse_cluster(t: &Table) -> Result<Cluster> {
    let d = Cluster::default();
    let servers = t.u32("servers", d.servers, 1, 1024)?;
    let replication = t.u32("replication", d.replication, 1, 1024)?;
    if replication > servers {
        let v = t.get("replication").expect("given, since the default is 1");
        return Err(t.bad(
            v,
            "replication",
            format!(
                "{replication} copies need at least {replication} servers, but servers = {servers}"
            ),
        ));
    }
    let heartbeat_timeout = t
        .positive_duration("heartbeat_timeout")?
        .unwrap_or(d.heartbeat_timeout);
    let heartbeat_interval = t.positive_duration("heartbeat_interval")?;
    if let Some(i) = heartbeat_interval {
        if i >= heartbeat_timeout {
            let v = t.get("heartbeat_interval").expect("given");
            return Err(t.bad(
                v,
                "heartbeat_interval",
                format!(
                    "must be shorter than heartbeat_timeout ({})",
                    humantime::format_duration(heartbeat_timeout)
                ),
            ));
        }
    }
    Ok(Cluster {
        servers,
        replication,
        workers: t.u32("workers", d.workers, 1, 4096)?,
        checkpoint_every: t.positive_duration("checkpoint_every")?,
        heartbeat_timeout,
        request_timeout: t
            .positive_duration("request_timeout")?
            .unwrap_or(d.request_timeout),
        heartbeat_interval,
        read_leases: t.bool("read_leases", d.read_leases)?,
        placement: t
            .choice(
                "placement",
                &[
                    ("range", Placement::Range),
                    ("hash", Placement::Hash),
                    ("balanced", Placement::Balanced),
                ],
            )?
            .unwrap_or(d.placement),
    })
}

fn parse_model(t: &Table) -> Result<ModelSpec> {
    let d = ModelSpec::default();
    let kind = t
        .choice(
            "kind",
            &[
                ("logistic", ModelKind::Logistic),
                ("softmax", ModelKind::Softmax),
                ("sparse_logistic", ModelKind::SparseLogistic),
                ("mlp", ModelKind::Mlp),
            ],
        )?
        .unwrap_or(d.kind);
    let default_dataset = match kind {
        ModelKind::Logistic => DatasetKind::BreastCancer,
        ModelKind::Softmax | ModelKind::Mlp => DatasetKind::Digits,
        ModelKind::SparseLogistic => DatasetKind::Synthetic,
    };
    let dataset = t
        .choice(
            "dataset",
            &[
                ("breast_cancer", DatasetKind::BreastCancer),
                ("digits", DatasetKind::Digits),
                ("synthetic", DatasetKind::Synthetic),
            ],
        )?
        .unwrap_or(default_dataset);
    // The key the dataset is wrong for: the dataset if given, else the kind
    // whose default it is.
    let dataset_key = || {
        t.get("dataset")
            .or_else(|| t.get("kind"))
            .expect("the default dataset always suits its kind")
    };
    if dataset == DatasetKind::Digits && !matches!(kind, ModelKind::Softmax | ModelKind::Mlp) {
        return Err(t.bad(dataset_key(), "dataset", "digits has 10 classes; use kind = \"softmax\" or \"mlp\" (logistic models are binary: breast_cancer or synthetic)"));
    }
    if dataset == DatasetKind::Synthetic && kind == ModelKind::Mlp {
        return Err(t.bad(
            dataset_key(),
            "dataset",
            "a multilayer perceptron takes dense data: breast_cancer or digits, not synthetic (sparse)",
        ));
    }
    if dataset != DatasetKind::Synthetic {
        for key in ["features", "examples", "density", "skew"] {
            if let Some(v) = t.get(key) {
                return Err(t.bad(v, key, "only valid with dataset = \"synthetic\""));
            }
        }
    }
    if kind != ModelKind::Mlp {
        for key in ["hidden", "activation"] {
            if let Some(v) = t.get(key) {
                return Err(t.bad(v, key, "only valid with kind = \"mlp\""));
            }
        }
    }
    let hidden = match t.int_list("hidden", 1, i128::from(MAX_HIDDEN_WIDTH), MAX_HIDDEN_LAYERS)? {
        None => d.hidden,
        Some(widths) => widths.into_iter().map(|w| w as u32).collect(),
    };
    if let Some((features, classes)) = dataset.dense_shape() {
        let params = mlp_params(features, &hidden, classes);
        if params > MAX_MLP_PARAMS {
            return Err(t.bad(
                t.get("hidden").expect("the default is small"),
                "hidden",
                format!(
                    "{params} parameters on {}; valid: at most {MAX_MLP_PARAMS}",
                    dataset.name()
                ),
            ));
        }
    }
    Ok(ModelSpec {
        kind,
        dataset,
        hidden,
        activation: t
            .choice(
                "activation",
                &[("relu", Activation::Relu), ("tanh", Activation::Tanh)],
            )?
            .unwrap_or(d.activation),
        features: t.u32("features", d.features, 1, 100_000_000)?,
        examples: t.u32("examples", d.examples, 8, 100_000_000)?,
        density: t
            .num("density", |x| x > 0.0 && x <= 1.0, "a fraction in (0, 1]")?
            .unwrap_or(d.density),
        skew: t
            .num(
                "skew",
                |x| (0.0..=10.0).contains(&x),
                "a Zipf exponent in [0, 10]",
            )?
            .unwrap_or(d.skew),
        data_seed: t.u64("data_seed", d.data_seed)?,
        l2: t.num("l2", |x| x >= 0.0, "a number >= 0")?.unwrap_or(d.l2),
    })
}

fn parse_training(t: &Table) -> Result<Training> {
    let d = Training::default();
    Ok(Training {
        consistency: t
            .choice("consistency", CONSISTENCY)?
            .unwrap_or(d.consistency),
        staleness: t.u32("staleness", d.staleness, 0, 1_000_000)?,
        learning_rate: t
            .num("learning_rate", |x| x > 0.0, "a number > 0")?
            .unwrap_or(d.learning_rate),
        batch_size: t.u32("batch_size", d.batch_size, 1, 1_000_000)?,
        clocks: t.u32("clocks", d.clocks, 1, 10_000_000)?,
        target_accuracy: t.num(
            "target_accuracy",
            |x| x > 0.0 && x <= 1.0,
            "a fraction in (0, 1]",
        )?,
        max_time: t.positive_duration("max_time")?.unwrap_or(d.max_time),
        eval_every: t.positive_duration("eval_every")?.unwrap_or(d.eval_every),
    })
}

fn parse_network(t: &Table) -> Result<Network> {
    let d = Network::default();
    let (latency_min, latency_max) = match t.str("latency")? {
        None => (d.latency_min, d.latency_max),
        Some((s, span)) => {
            let bad = |m: String| {
                t.src
                    .error(span.clone(), format!("{}: {m}", t.field("latency")))
            };
            match s.split_once("..") {
                Some((a, b)) => {
                    let lo = parse_duration(a).map_err(bad)?;
                    let hi = parse_duration(b).map_err(bad)?;
                    if lo > hi {
                        return Err(bad(format!(
                            "range {s:?} is empty: its lower end is above its upper end"
                        )));
                    }
                    (lo, hi)
                }
                None => {
                    let x = parse_duration(s).map_err(bad)?;
                    (x, x)
                }
            }
        }
    };
    let bandwidth = |key: &str| -> Result<Option<f64>> {
        match t.str(key)? {
            None => Ok(None),
            Some((s, span)) => parse_bandwidth(s)
                .map(Some)
                .map_err(|m| t.src.error(span, format!("{}: {m}", t.field(key)))),
        }
    };
    Ok(Network {
        latency_min,
        latency_max,
        bandwidth_bps: bandwidth("bandwidth")?.unwrap_or(d.bandwidth_bps),
        server_bandwidth_bps: bandwidth("server_bandwidth")?,
        worker_bandwidth_bps: bandwidth("worker_bandwidth")?,
        loss: t
            .num(
                "loss",
                |x| (0.0..1.0).contains(&x),
                "a probability in [0, 1)",
            )?
            .unwrap_or(d.loss),
    })
}

/// `step_time` and `worker_gflops`: the contract lets `step_time` win when
/// both are given, so a file with both keeps its version-1 meaning; only
/// `worker_gflops` alone charges FLOPs. Neither: `step_time` is the
/// default 20ms.
fn parse_compute(t: &Table) -> Result<Compute> {
    let d = Compute::default();
    let worker_gflops = t.num("worker_gflops", |x| x > 0.0, "GFLOP/s > 0, e.g. 10.0")?;
    let step_time = match t.duration("step_time")? {
        Some((x, _)) => Some(x),
        None if worker_gflops.is_some() => None,
        None => d.step_time,
    };
    Ok(Compute {
        step_time,
        worker_gflops,
        server_apply_rate: t
            .num(
                "server_apply_rate",
                |x| x > 0.0,
                "values per second > 0, e.g. 1e9",
            )?
            .unwrap_or(d.server_apply_rate),
        jitter: t
            .num(
                "jitter",
                |x| (0.0..1.0).contains(&x),
                "a fraction in [0, 1)",
            )?
            .unwrap_or(d.jitter),
    })
}

/// The nodes that exist, for validating names.
struct Nodes {
    servers: u32,
    workers: u32,
}

impl Nodes {
    fn valid(&self) -> String {
        format!(
            "valid nodes are server-0..server-{}, worker-0..worker-{}, coordinator",
            self.servers - 1,
            self.workers - 1
        )
    }

    fn check(&self, name: &str) -> std::result::Result<NodeName, String> {
        let n: NodeName = name
            .parse()
            .map_err(|_| format!("unknown node {name:?}: {}", self.valid()))?;
        let exists = match n {
            NodeName::Coordinator => true,
            NodeName::Server(i) => i < self.servers,
            NodeName::Worker(i) => i < self.workers,
        };
        if exists {
            Ok(n)
        } else {
            Err(format!("unknown node {name:?}: {}", self.valid()))
        }
    }
}

fn node(t: &Table, key: &str, nodes: &Nodes) -> Result<NodeName> {
    let (s, span) = t
        .str(key)?
        .ok_or_else(|| t.missing(key, "name a node, e.g. \"server-0\""))?;
    nodes
        .check(s)
        .map_err(|m| t.src.error(span, format!("{}: {m}", t.field(key))))
}

fn node_list(
    t: &Table,
    key: &str,
    v: &toml::Spanned<toml::de::DeValue>,
    nodes: &Nodes,
) -> Result<Vec<NodeName>> {
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        return Err(t.bad(v, key, "expected an array of node names"));
    };
    items
        .iter()
        .map(|item| match item.get_ref() {
            toml::de::DeValue::String(s) => nodes.check(s).map_err(|m| t.bad(item, key, m)),
            _ => Err(t.bad(item, key, "expected a node name string")),
        })
        .collect()
}

fn parse_fault(
    src: &Source,
    i: usize,
    table: &DeTable,
    span: Range<usize>,
    nodes: &Nodes,
) -> Result<Fault> {
    let path = format!("fault[{i}]");
    let kinds: Vec<&str> = FAULT_KINDS.iter().map(|(k, _)| *k).collect();
    let kind_value = table.get("kind").ok_or_else(|| {
        src.error(
            span.clone(),
            format!("{path}.kind: missing; valid kinds: {}", kinds.join(", ")),
        )
    })?;
    let Some(kind) = kind_value.get_ref().as_str() else {
        return Err(src.error(
            kind_value.span(),
            format!(
                "{path}.kind: expected a string; valid kinds: {}",
                kinds.join(", ")
            ),
        ));
    };
    let Some((_, allowed)) = FAULT_KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(src.error(
            kind_value.span(),
            format!(
                "{path}.kind: unknown fault kind {kind:?}; valid kinds: {}",
                kinds.join(", ")
            ),
        ));
    };
    for (k, _) in table.iter() {
        if !allowed.contains(&k.get_ref().as_ref()) {
            return Err(src.error(
                k.span(),
                format!(
                    "{path}: key {:?} is not valid for fault kind {kind:?}; valid keys: {}",
                    k.get_ref(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    let t = Table::open(src, path, table, span.clone(), allowed)?;
    let at = t
        .duration("at")?
        .ok_or_else(|| t.missing("at", "when the fault starts, e.g. at = \"2s\""))?
        .0;
    let duration = t.positive_duration("duration")?;
    let kind = match kind {
        "crash" => FaultKind::Crash {
            node: node(&t, "node", nodes)?,
            restart_after: t.positive_duration("restart_after")?,
        },
        "partition" => {
            let v = t.get("groups").ok_or_else(|| {
                t.missing("groups", "e.g. groups = [[\"server-0\"], [\"worker-0\"]]")
            })?;
            let toml::de::DeValue::Array(items) = v.get_ref() else {
                return Err(t.bad(v, "groups", "expected an array of arrays of node names"));
            };
            let groups = items
                .iter()
                .map(|g| node_list(&t, "groups", g, nodes))
                .collect::<Result<Vec<_>>>()?;
            if groups.len() < 2 || groups.iter().any(|g| g.is_empty()) {
                return Err(t.bad(
                    v,
                    "groups",
                    "a partition needs at least two non-empty groups",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in groups.iter().flatten() {
                if !seen.insert(*n) {
                    return Err(t.bad(v, "groups", format!("{n} is in more than one group")));
                }
            }
            FaultKind::Partition { groups, duration }
        }
        "clog" => {
            let (from, to) = (node(&t, "from", nodes)?, node(&t, "to", nodes)?);
            if from == to {
                return Err(t.bad(
                    t.get("to").expect("read above"),
                    "to",
                    "a clog needs two different nodes",
                ));
            }
            FaultKind::Clog { from, to, duration }
        }
        "loss" => FaultKind::Loss {
            rate: t
                .num(
                    "rate",
                    |x| (0.0..=1.0).contains(&x),
                    "a probability in [0, 1]",
                )?
                .ok_or_else(|| t.missing("rate", "a loss probability, e.g. rate = 0.05"))?,
            duration,
        },
        "straggler" => {
            let n = node(&t, "node", nodes)?;
            if n.worker().is_none() {
                return Err(t.bad(
                    t.get("node").expect("read above"),
                    "node",
                    "a straggler must be a worker (worker-<i>)",
                ));
            }
            FaultKind::Straggler {
                node: n,
                slowdown: t
                    .num("slowdown", |x| x >= 1.0, "a factor >= 1")?
                    .ok_or_else(|| {
                        t.missing("slowdown", "how many times slower, e.g. slowdown = 4.0")
                    })?,
                duration,
            }
        }
        "slow_link" => {
            let v = t
                .get("between")
                .ok_or_else(|| t.missing("between", "two node names"))?;
            let pair = node_list(&t, "between", v, nodes)?;
            if pair.len() != 2 || pair[0] == pair[1] {
                return Err(t.bad(v, "between", "expected two different nodes"));
            }
            let latency = t.duration("latency")?.map(|(d, _)| d);
            let bandwidth_bps = match t.str("bandwidth")? {
                None => None,
                Some((s, span)) => Some(
                    parse_bandwidth(s)
                        .map_err(|m| src.error(span, format!("{}: {m}", t.field("bandwidth"))))?,
                ),
            };
            if latency.is_none() && bandwidth_bps.is_none() {
                return Err(t.missing("latency", "a slow link needs latency, bandwidth or both"));
            }
            FaultKind::SlowLink {
                between: [pair[0], pair[1]],
                latency: latency.unwrap_or(Duration::ZERO),
                bandwidth_bps,
                duration,
            }
        }
        _ => unreachable!("kind checked above"),
    };
    Ok(Fault {
        at,
        kind,
        line: src.line(&span),
    })
}

/// A node cannot crash again while it is down.
fn check_crash_overlaps(src: &Source, faults: &[Fault]) -> Result<()> {
    let crashes: Vec<(usize, NodeName, Duration, Option<Duration>)> = faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f.kind {
            FaultKind::Crash {
                node,
                restart_after,
            } => Some((i, node, f.at, restart_after.map(|r| f.at + r))),
            _ => None,
        })
        .collect();
    for (a, &(i, node, start_i, end_i)) in crashes.iter().enumerate() {
        for &(j, other, start_j, end_j) in &crashes[a + 1..] {
            let overlap = node == other
                && end_i.is_none_or(|e| start_j < e)
                && end_j.is_none_or(|e| start_i < e);
            if overlap {
                let f = &faults[j];
                return Err(ScenarioError {
                    file: src.origin.to_string(),
                    line: f.line.max(1),
                    column: 1,
                    message: format!(
                        "fault[{j}]: {node} crashes at {} while it is still down from fault[{i}] (line {}); \
                         a node cannot crash again before it restarts",
                        humantime::format_duration(start_j),
                        faults[i].line
                    ),
                });
            }
        }
    }
    Ok(())
}

fn parse_chaos(t: &Table) -> Result<Chaos> {
    let d = Chaos::default();
    let rate = |k: &str| -> Result<f64> {
        Ok(t.num(k, |x| x >= 0.0, "a rate >= 0 per simulated second")?
            .unwrap_or(0.0))
    };
    let max_duration = t
        .positive_duration("max_duration")?
        .unwrap_or(d.max_duration);
    let min_duration = match t.duration("min_duration")? {
        Some((m, span)) if m > max_duration => {
            return Err(t.src.error(
                span,
                format!(
                    "{}: {} is longer than max_duration ({}); valid: 0 ..= max_duration",
                    t.field("min_duration"),
                    humantime::format_duration(m),
                    humantime::format_duration(max_duration)
                ),
            ))
        }
        other => other.map(|(m, _)| m),
    };
    Ok(Chaos {
        crash_rate: rate("crash_rate")?,
        partition_rate: rate("partition_rate")?,
        clog_rate: rate("clog_rate")?,
        straggler_rate: rate("straggler_rate")?,
        loss_rate: rate("loss_rate")?,
        slow_link_rate: rate("slow_link_rate")?,
        cut_rate: rate("cut_rate")?,
        max_duration,
        min_duration,
        until: t.duration("until")?.map_or(d.until, |(x, _)| x),
        beyond_fault_model: t.bool("beyond_fault_model", false)?,
        swarm: t.bool("swarm", d.swarm)?,
    })
}

/// Each widening (`[[change]] hidden`), in the order of `at`, must name
/// the perceptron's number of layers and widths no narrower than those in
/// force: an error points at the `hidden` value. `found`: (at, index, an
/// error at the value, its message to be filled in).
type Widening = (Duration, usize, Vec<u32>, ScenarioError);

fn check_widenings(scn: &Scenario, mut found: Vec<Widening>) -> Result<()> {
    found.sort_by_key(|w| (w.0, w.1));
    let mut now = scn.model.hidden.clone();
    for (_, i, wanted, mut err) in found {
        let problem = if scn.model.kind != ModelKind::Mlp {
            Some("only a multilayer perceptron (kind = \"mlp\") can be widened".to_string())
        } else if wanted.len() != now.len() {
            Some(format!(
                "{} hidden layers {wanted:?}, but the model has {} {now:?}; widening keeps the number of layers",
                wanted.len(),
                now.len()
            ))
        } else {
            (0..now.len()).find(|&l| wanted[l] < now[l]).map(|l| {
                format!(
                    "hidden layer {} would narrow from {} to {} units; a layer may only grow",
                    l + 1,
                    now[l],
                    wanted[l]
                )
            })
        };
        if let Some(p) = problem {
            err.message = format!("change[{i}].hidden: {p}");
            return Err(err);
        }
        if let Some((features, classes)) = scn.model.dataset.dense_shape() {
            let params = mlp_params(features, &wanted, classes);
            if params > MAX_MLP_PARAMS {
                err.message = format!(
                    "change[{i}].hidden: {params} parameters on {}; valid: at most {MAX_MLP_PARAMS}",
                    scn.model.dataset.name()
                );
                return Err(err);
            }
        }
        now = wanted;
    }
    Ok(())
}

fn parse_change(t: &Table, line: usize) -> Result<Change> {
    let c = Change {
        at: t
            .duration("at")?
            .ok_or_else(|| t.missing("at", "when the change applies, e.g. at = \"6s\""))?
            .0,
        learning_rate: t.num("learning_rate", |x| x > 0.0, "a number > 0")?,
        staleness: t.int("staleness", 0, 1_000_000)?.map(|n| n as u32),
        consistency: t.choice("consistency", CONSISTENCY)?,
        batch_size: t.int("batch_size", 1, 1_000_000)?.map(|n| n as u32),
        hidden: t
            .int_list("hidden", 1, i128::from(MAX_HIDDEN_WIDTH), MAX_HIDDEN_LAYERS)?
            .map(|w| w.into_iter().map(|n| n as u32).collect()),
        line,
    };
    if c.learning_rate.is_none()
        && c.staleness.is_none()
        && c.consistency.is_none()
        && c.batch_size.is_none()
        && c.hidden.is_none()
    {
        return Err(t.missing(
            "learning_rate",
            "a change must set at least one of learning_rate, staleness, consistency, batch_size, hidden",
        ));
    }
    Ok(c)
}

fn parse_compression(t: &Table) -> Result<Compression> {
    let d = Compression::default();
    let bits = t.u32("bits", u32::from(d.bits), 1, 8)?;
    if ![1, 4, 8].contains(&bits) {
        return Err(t.bad(
            t.get("bits").expect("given"),
            "bits",
            format!("{bits} is not valid; valid: 1, 4 or 8"),
        ));
    }
    Ok(Compression {
        kind: t
            .choice(
                "kind",
                &[
                    ("none", CompressionKind::None),
                    ("topk", CompressionKind::TopK),
                    ("quantize", CompressionKind::Quantize),
                ],
            )?
            .unwrap_or(d.kind),
        ratio: t
            .num("ratio", |x| x > 0.0 && x <= 1.0, "a fraction in (0, 1]")?
            .unwrap_or(d.ratio),
        bits: bits as u8,
        error_feedback: t.bool("error_feedback", d.error_feedback)?,
        pull_threshold: t
            .num("pull_threshold", |x| x >= 0.0, "a number >= 0")?
            .unwrap_or(d.pull_threshold),
    })
}

fn parse_check(t: &Table) -> Result<Checks> {
    let d = Checks::default();
    let liveness = match t.get("liveness") {
        None => d.liveness,
        Some(v) => match v.get_ref() {
            toml::de::DeValue::Boolean(false) => None,
            toml::de::DeValue::Boolean(true) => d.liveness,
            _ => t.positive_duration("liveness")?,
        },
    };
    Ok(Checks {
        staleness_bound: t.bool("staleness_bound", d.staleness_bound)?,
        no_lost_updates: t.bool("no_lost_updates", d.no_lost_updates)?,
        replicas_agree: t.bool("replicas_agree", d.replicas_agree)?,
        liveness,
        min_accuracy: t.num(
            "min_accuracy",
            |x| (0.0..=1.0).contains(&x),
            "a fraction in [0, 1]",
        )?,
        deterministic: t.bool("deterministic", d.deterministic)?,
    })
}
