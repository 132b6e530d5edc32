//! The scenario format: the contract's example parses and round-trips,
//! every class of bad input gets a precise error (file, line, column,
//! field, what is valid), mutated files never panic, and the CLI exits 2.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

use proptest::prelude::*;
use pssim::scenario::{
    apply_override, parse, Consistency, FaultKind, NodeName, Scenario, ScenarioError,
};
use std::process::Command;
use std::time::Duration;

/// The full example of ../shared/scenario-format.md, verbatim.
const CONTRACT_EXAMPLE: &str = r#"
name = "ssp-straggler"                  # required, used in output paths
description = "SSP s=3 rides out a 4x straggler"
seed = 7                                # default seed; `--seed` overrides

[cluster]
servers = 4          # server nodes; the key space is split into ranges over them
replication = 2      # copies of each key range (1 = none); chain/primary-backup
workers = 8
checkpoint_every = "2s"  # optional: servers write their ranges to simulated
                         # durable storage; a restarted server without a live
                         # replica restores its last checkpoint
heartbeat_timeout = "200ms"  # optional: failure-detection timeout

[model]
kind = "logistic"          # logistic | softmax | sparse_logistic
dataset = "breast_cancer"  # breast_cancer | digits | synthetic

[training]
consistency = "ssp"   # bsp | ssp | asp
staleness = 3         # ssp bound s: a worker at clock c may read only if every
                      # update from clocks <= c - s - 1 is visible
learning_rate = 0.1
batch_size = 32
clocks = 200          # iterations (clock ticks) per worker
target_accuracy = 0.95  # optional: stop when test accuracy reaches it

[network]
latency = "1ms..5ms"  # uniform range, or a single value
bandwidth = "1Gbps"   # per link, each direction; bits per second
loss = 0.0            # base packet-loss probability

[compute]
step_time = "20ms"    # modeled compute time of one minibatch on a normal worker

[[fault]]
kind = "crash"            # node stops; state in memory is lost
node = "server-1"         # nodes: server-<i>, worker-<i>, coordinator
at = "4s"
restart_after = "3s"      # optional; omitted = stays down

[[fault]]
kind = "partition"        # nodes in different groups cannot talk
groups = [["server-0", "worker-0", "worker-1"], ["server-1", "coordinator"]]
at = "2s"
duration = "5s"           # nodes not listed stay connected to everyone

[[fault]]
kind = "clog"             # one-way: messages from -> to are held, then delivered
from = "worker-3"
to = "server-2"
at = "1s"
duration = "2s"

[[fault]]
kind = "loss"             # packet loss rate for the whole network
rate = 0.05
at = "0s"
duration = "10s"

[[fault]]
kind = "straggler"        # compute takes `slowdown` times longer
node = "worker-2"
slowdown = 4.0
at = "0s"

[[fault]]
kind = "slow_link"        # extra latency / lower bandwidth on one link, both ways
between = ["worker-5", "server-0"]
latency = "50ms"
bandwidth = "10Mbps"
at = "3s"
duration = "4s"

[chaos]
crash_rate = 0.05
partition_rate = 0.05
clog_rate = 0.1
straggler_rate = 0.1
max_duration = "5s"
until = "60s"             # no new chaos after this; liveness is judged after it
beyond_fault_model = false

[[change]]
at = "6s"
learning_rate = 0.05
staleness = 1

[compression]             # what a push or pull puts on the wire
kind = "topk"             # none | topk | quantize
ratio = 0.01              # topk: fraction of gradient entries kept per push
bits = 8                  # quantize: 8, 4 or 1 bits per value (with a scale)
error_feedback = true     # keep the residual on the worker, add it next time
pull_threshold = 0.0      # servers skip values that changed less than this

[check]                   # all default to true where they apply
staleness_bound = true    # no read violates the SSP bound in force
no_lost_updates = true    # every acknowledged push is in the final parameters
replicas_agree = true     # replicas of a range hold equal values once quiet
liveness = "30s"          # after the last fault heals, every live worker
                          # advances its clock within this time
min_accuracy = 0.93       # final test accuracy at least this
deterministic = false     # default false (costs a second run)
"#;

const MINIMAL: &str = "name = \"m\"\n[cluster]\nservers = 2\nworkers = 3\n";

fn err(text: &str) -> ScenarioError {
    parse(text, "t.toml").expect_err("must be rejected")
}

#[test]
fn the_contract_example_parses_with_every_field() {
    let s = parse(CONTRACT_EXAMPLE, "example.toml").unwrap();
    assert_eq!(s.name, "ssp-straggler");
    assert_eq!(s.seed, 7);
    assert_eq!(
        (s.cluster.servers, s.cluster.replication, s.cluster.workers),
        (4, 2, 8)
    );
    assert_eq!(s.cluster.checkpoint_every, Some(Duration::from_secs(2)));
    assert_eq!(s.cluster.heartbeat_timeout, Duration::from_millis(200));
    assert_eq!(s.training.consistency, Consistency::Ssp);
    assert_eq!(s.training.target_accuracy, Some(0.95));
    assert_eq!(s.network.latency_min, Duration::from_millis(1));
    assert_eq!(s.network.latency_max, Duration::from_millis(5));
    assert_eq!(s.network.bandwidth_bps, 1e9);
    assert_eq!(s.faults.len(), 6);
    assert!(matches!(
        s.faults[0].kind,
        FaultKind::Crash { node: NodeName::Server(1), restart_after: Some(d) } if d == Duration::from_secs(3)
    ));
    match &s.faults[1].kind {
        FaultKind::Partition { groups, duration } => {
            assert_eq!(groups.len(), 2);
            assert!(groups[1].contains(&NodeName::Coordinator));
            assert_eq!(*duration, Some(Duration::from_secs(5)));
        }
        k => panic!("{k:?}"),
    }
    match &s.faults[5].kind {
        FaultKind::SlowLink {
            between,
            latency,
            bandwidth_bps,
            ..
        } => {
            assert_eq!(between, &[NodeName::Worker(5), NodeName::Server(0)]);
            assert_eq!(*latency, Duration::from_millis(50));
            assert_eq!(*bandwidth_bps, Some(1e7));
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(
        s.faults[4].kind.duration(),
        None,
        "a straggler without duration lasts to the end"
    );
    let chaos = s.chaos.as_ref().unwrap();
    assert_eq!(
        (chaos.clog_rate, chaos.until),
        (0.1, Duration::from_secs(60))
    );
    assert_eq!(s.changes[0].staleness, Some(1));
    assert_eq!(s.compression.ratio, 0.01);
    assert_eq!(s.check.liveness, Some(Duration::from_secs(30)));
    assert_eq!(s.check.min_accuracy, Some(0.93));
}

/// A scenario with the source line numbers of its faults and changes
/// cleared (they differ between a file and its rewrite).
fn without_lines(mut s: Scenario) -> Scenario {
    s.faults.iter_mut().for_each(|f| f.line = 0);
    s.changes.iter_mut().for_each(|c| c.line = 0);
    s
}

#[test]
fn scenarios_round_trip_through_to_toml() {
    let mut library: Vec<String> = std::fs::read_dir("scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    library.sort();
    assert!(
        library
            .iter()
            .any(|t| t.contains("at = \"1200ms\"\nhidden = 96\n")),
        "mlp-widen's widening is among them"
    );
    let texts = [CONTRACT_EXAMPLE.to_string(), MINIMAL.to_string()];
    for text in texts.iter().chain(&library) {
        let s = parse(text, "a").unwrap();
        let again = parse(&s.to_toml(), "b").unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
        assert_eq!(without_lines(s), without_lines(again));
    }
}

/// Version 2's cost keys: interfaces per node kind, a worker's FLOP rate
/// and a server's apply rate.
#[test]
fn cost_model_keys_parse_with_their_defaults_and_round_trip() {
    use pssim::scenario::{StepCost, DEFAULT_SERVER_APPLY_RATE};
    let d = parse(MINIMAL, "m").unwrap();
    assert_eq!(d.network.server_bandwidth(), 1e9);
    assert_eq!(d.network.worker_bandwidth(), 1e9);
    assert_eq!(d.network.interface_bps(NodeName::Coordinator), 1e9);
    assert_eq!(d.compute.step(), StepCost::Fixed(Duration::from_millis(20)));
    assert_eq!(d.compute.server_apply_rate, DEFAULT_SERVER_APPLY_RATE);

    let text = format!(
        "{MINIMAL}[network]\nbandwidth = \"1Gbps\"\nserver_bandwidth = \"10Gbps\"\n\
         [compute]\nworker_gflops = 12.5\nserver_apply_rate = 2e9\n"
    );
    let s = parse(&text, "v2").unwrap();
    assert_eq!(s.network.server_bandwidth_bps, Some(1e10));
    assert_eq!(s.network.worker_bandwidth_bps, None);
    assert_eq!(s.network.interface_bps(NodeName::Server(1)), 1e10);
    assert_eq!(s.network.interface_bps(NodeName::Worker(2)), 1e9);
    assert_eq!(s.compute.step(), StepCost::Flops { gflops: 12.5 });
    assert_eq!(s.compute.step_time, None);
    assert_eq!(s.compute.server_apply_rate, 2e9);

    // Both: step_time wins, as the contract says ("otherwise step_time").
    let both = format!("{MINIMAL}[compute]\nstep_time = \"5ms\"\nworker_gflops = 10.0\n");
    let b = parse(&both, "both").unwrap();
    assert_eq!(b.compute.step(), StepCost::Fixed(Duration::from_millis(5)));
    assert_eq!(b.compute.worker_gflops, Some(10.0));

    let workers = format!("{MINIMAL}[network]\nworker_bandwidth = \"25Gbps\"\n");
    for s in [s, b, parse(&workers, "w").unwrap()] {
        let again = parse(&s.to_toml(), "again").unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
        assert_eq!(s, again, "{}", s.to_toml());
    }
    // --set reaches the new keys.
    let t = apply_override(MINIMAL, "compute.worker_gflops=4").unwrap();
    assert_eq!(
        parse(&t, "x").unwrap().compute.step(),
        StepCost::Flops { gflops: 4.0 }
    );
}

/// `[model] kind = "mlp"`: the contract's keys, their defaults (digits,
/// one hidden layer of 64 relu units) and a round trip.
#[test]
fn mlp_keys_parse_default_and_round_trip() {
    use pssim::scenario::{Activation, DatasetKind, ModelKind};
    let d = parse(&format!("{MINIMAL}[model]\nkind = \"mlp\"\n"), "d").unwrap();
    assert_eq!(d.model.kind, ModelKind::Mlp);
    assert_eq!(d.model.dataset, DatasetKind::Digits);
    assert_eq!(d.model.hidden, vec![64]);
    assert_eq!(d.model.activation, Activation::Relu);
    // The contract's [model] block, with its comments.
    let contract = format!(
        "{MINIMAL}[model]\n\
         kind = \"mlp\"          # logistic | softmax | sparse_logistic | mlp\n\
         hidden = 64           # width of the hidden layer, or a list [64, 32] (default 64)\n\
         activation = \"relu\"   # relu | tanh (default relu)\n"
    );
    assert_eq!(parse(&contract, "c").unwrap().model, d.model);
    let deep = format!(
        "{MINIMAL}[model]\nkind = \"mlp\"\ndataset = \"breast_cancer\"\n\
         hidden = [64, 32]\nactivation = \"tanh\"\nl2 = 0.001\n"
    );
    let m = parse(&deep, "m").unwrap();
    assert_eq!(m.model.dataset, DatasetKind::BreastCancer);
    assert_eq!(m.model.hidden, vec![64, 32]);
    assert_eq!(m.model.activation, Activation::Tanh);
    for s in [
        d,
        m,
        parse(
            &std::fs::read_to_string("scenarios/mlp-ssp.toml").unwrap(),
            "f",
        )
        .unwrap(),
    ] {
        let again = parse(&s.to_toml(), "again").unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
        assert_eq!(
            without_lines(s.clone()),
            without_lines(again),
            "{}",
            s.to_toml()
        );
    }
    // A linear model's file names no perceptron keys.
    assert!(!parse(MINIMAL, "l").unwrap().to_toml().contains("hidden"));
    // --set reaches them (a list too).
    let t = apply_override(
        &format!("{MINIMAL}[model]\nkind = \"mlp\"\n"),
        "model.hidden=[32,16]",
    )
    .unwrap();
    assert_eq!(parse(&t, "x").unwrap().model.hidden, vec![32, 16]);
}

#[test]
fn defaults_are_documented_values() {
    let s = parse(MINIMAL, "m").unwrap();
    assert_eq!(s.seed, 1);
    assert_eq!(s.training.staleness, 3);
    assert_eq!(s.training.clocks, 100);
    assert_eq!(s.cluster.replication, 1);
    assert!(s.check.staleness_bound && s.check.no_lost_updates && !s.check.deterministic);
}

/// (input, expected line, substrings of the message)
fn cases() -> Vec<(String, usize, Vec<&'static str>)> {
    let with = |extra: &str| format!("{MINIMAL}{extra}");
    vec![
        (with("colour = 1\n"), 5, vec!["unknown key \"colour\" in [cluster]", "valid keys: servers"]),
        (format!("colour = 1\n{MINIMAL}"), 1, vec!["unknown key \"colour\" at the top level", "valid keys: name"]),
        (
            with("[training]\nlearning_rat = 0.1\n"),
            6,
            vec!["unknown key \"learning_rat\" in [training]", "learning_rate"],
        ),
        (with("[training]\nlearning_rate = -0.1\n"), 6, vec!["training.learning_rate", "valid: a number > 0"]),
        (with("[training]\nclocks = \"ten\"\n"), 6, vec!["training.clocks", "expected an integer, found a string"]),
        (with("[training]\nconsistency = \"strong\"\n"), 6, vec!["unknown value \"strong\"", "\"bsp\", \"ssp\", \"asp\""]),
        (with("[network]\nlatency = 5\n"), 6, vec!["network.latency", "expected a string"]),
        (with("[network]\nlatency = \"5ms..1ms\"\n"), 6, vec!["range \"5ms..1ms\" is empty"]),
        (with("[network]\nbandwidth = \"fast\"\n"), 6, vec!["network.bandwidth", "1Gbps"]),
        (with("[network]\nloss = 1.5\n"), 6, vec!["network.loss", "[0, 1)"]),
        (with("[network]\nserver_bandwidth = \"10G\"\n"), 6, vec!["network.server_bandwidth", "1Gbps"]),
        (with("[network]\nworker_bandwidth = 10\n"), 6, vec!["network.worker_bandwidth", "expected a string"]),
        (with("[network]\nbandwith = \"1Gbps\"\n"), 6, vec!["unknown key \"bandwith\" in [network]", "server_bandwidth, worker_bandwidth"]),
        (with("[compute]\nworker_gflops = 0\n"), 6, vec!["compute.worker_gflops", "valid: GFLOP/s > 0"]),
        (with("[compute]\nworker_gflops = \"fast\"\n"), 6, vec!["compute.worker_gflops", "expected a number"]),
        (with("[compute]\nserver_apply_rate = -1e9\n"), 6, vec!["compute.server_apply_rate", "values per second > 0"]),
        (with("[compute]\nserver_apply = 1e9\n"), 6, vec!["unknown key \"server_apply\" in [compute]", "worker_gflops, server_apply_rate"]),
        (
            with("[[fault]]\nkind = \"crash\"\nnode = \"server-9\"\nat = \"1s\"\n"),
            7,
            vec!["fault[0].node", "unknown node \"server-9\"", "server-0..server-1, worker-0..worker-2, coordinator"],
        ),
        (
            with("[[fault]]\nkind = \"crash\"\nnode = \"server-0\"\ngroups = []\nat = \"1s\"\n"),
            8,
            vec!["key \"groups\" is not valid for fault kind \"crash\"", "valid keys: kind, node, at, restart_after"],
        ),
        (with("[[fault]]\nkind = \"meteor\"\nat = \"1s\"\n"), 6, vec!["unknown fault kind \"meteor\"", "partition"]),
        (with("[[fault]]\nkind = \"loss\"\nrate = 0.1\n"), 5, vec!["fault[0].at: missing"]),
        (with("[[fault]]\nkind = \"loss\"\nrate = 0.1\nat = \"-1s\"\n"), 8, vec!["fault[0].at", "bad duration"]),
        (
            with("[[fault]]\nkind = \"straggler\"\nnode = \"server-0\"\nslowdown = 2.0\nat = \"0s\"\n"),
            7,
            vec!["a straggler must be a worker"],
        ),
        (
            with("[[fault]]\nkind = \"partition\"\ngroups = [[\"server-0\"], [\"server-0\"]]\nat = \"0s\"\n"),
            7,
            vec!["server-0 is in more than one group"],
        ),
        (
            with("[[fault]]\nkind = \"crash\"\nnode = \"server-0\"\nat = \"1s\"\n[[fault]]\nkind = \"crash\"\nnode = \"server-0\"\nat = \"2s\"\n"),
            9,
            vec!["server-0 crashes at 2s while it is still down from fault[0] (line 5)"],
        ),
        ("[cluster]\nservers = 2\n".to_string(), 1, vec!["name: missing"]),
        ("name = \"x\"\n".to_string(), 1, vec!["[cluster]: missing"]),
        ("name = \"x\"\n[cluster]\nservers = 2\nreplication = 3\n".to_string(), 4, vec!["need at least 3 servers"]),
        ("name = \"x\"\n[cluster]\nservers = 99999999999\n".to_string(), 3, vec!["out of range", "1..=1024"]),
        (with("[model]\nkind = \"logistic\"\ndataset = \"digits\"\n"), 7, vec!["use kind = \"softmax\""]),
        (with("[model]\ndataset = \"digits\"\nkind = \"softmax\"\nfeatures = 10\n"), 8, vec!["only valid with dataset = \"synthetic\""]),
        // The multilayer perceptron's keys.
        (with("[model]\nkind = \"softmax\"\nhidden = 64\n"), 7, vec!["model.hidden", "only valid with kind = \"mlp\""]),
        (with("[model]\nhidden = [64]\n"), 6, vec!["model.hidden", "only valid with kind = \"mlp\""]),
        (with("[model]\nkind = \"logistic\"\nactivation = \"relu\"\n"), 7, vec!["model.activation", "only valid with kind = \"mlp\""]),
        (
            with("[model]\nkind = \"mlp\"\ndataset = \"synthetic\"\n"),
            7,
            vec!["model.dataset", "dense data: breast_cancer or digits, not synthetic"],
        ),
        (with("[model]\nkind = \"mlp\"\nhidden = []\n"), 7, vec!["model.hidden", "an empty list"]),
        (with("[model]\nkind = \"mlp\"\nhidden = 0\n"), 7, vec!["model.hidden", "0 is out of range; valid: 1..=65536"]),
        (with("[model]\nkind = \"mlp\"\nhidden = [\n  64,\n  0,\n]\n"), 9, vec!["model.hidden", "0 is out of range"]),
        (with("[model]\nkind = \"mlp\"\nhidden = 100000\n"), 7, vec!["model.hidden", "100000 is out of range; valid: 1..=65536"]),
        (with("[model]\nkind = \"mlp\"\nhidden = -3\n"), 7, vec!["model.hidden", "out of range"]),
        (
            with("[model]\nkind = \"mlp\"\nhidden = [8, 8, 8, 8, 8, 8, 8, 8, 8]\n"),
            7,
            vec!["model.hidden", "9 values; valid: at most 8"],
        ),
        (
            with("[model]\nkind = \"mlp\"\nhidden = [65536, 65536]\n"),
            7,
            vec!["model.hidden", "4299948042 parameters on digits; valid: at most 100000000"],
        ),
        (with("[model]\nkind = \"mlp\"\nhidden = \"64\"\n"), 7, vec!["model.hidden", "expected an integer or an array of integers, found a string"]),
        (with("[model]\nkind = \"mlp\"\nhidden = 6.4\n"), 7, vec!["model.hidden", "found a float"]),
        (with("[model]\nkind = \"mlp\"\nhidden = [64, \"32\"]\n"), 7, vec!["model.hidden", "found a string"]),
        (with("[model]\nkind = \"mlp\"\nhidden = [[64]]\n"), 7, vec!["model.hidden", "found an array"]),
        (with("[model]\nkind = \"mlp\"\nactivation = \"sigmoid\"\n"), 7, vec!["model.activation", "unknown value \"sigmoid\"", "\"relu\", \"tanh\""]),
        (with("[model]\nkind = \"mlp\"\nactivation = 1\n"), 7, vec!["model.activation", "expected a string"]),
        (with("[model]\nkind = \"perceptron\"\n"), 6, vec!["model.kind", "\"softmax\", \"sparse_logistic\", \"mlp\""]),
        (
            with("[model]\nkind = \"mlp\"\nhidden = 64\n[[change]]\nat = \"1s\"\nhidden = 32\n"),
            10,
            vec!["change[0].hidden: hidden layer 1 would narrow from 64 to 32 units; a layer may only grow"],
        ),
        (
            // Judged in the order of `at`: the second in the file comes first.
            with("[model]\nkind = \"mlp\"\nhidden = [16, 8]\n[[change]]\nat = \"2s\"\nhidden = [20, 9]\n[[change]]\nat = \"1s\"\nhidden = [24, 8]\n"),
            10,
            vec!["change[0].hidden: hidden layer 1 would narrow from 24 to 20 units"],
        ),
        (
            with("[model]\nkind = \"mlp\"\nhidden = [16, 8]\n[[change]]\nat = \"1s\"\nhidden = 32\n"),
            10,
            vec!["change[0].hidden: 1 hidden layers [32], but the model has 2 [16, 8]; widening keeps the number of layers"],
        ),
        (
            with("[model]\nkind = \"softmax\"\n[[change]]\nat = \"1s\"\nhidden = 96\n"),
            9,
            vec!["change[0].hidden: only a multilayer perceptron (kind = \"mlp\") can be widened"],
        ),
        (
            with("[model]\nkind = \"mlp\"\nhidden = [64, 64]\n[[change]]\nat = \"1s\"\nhidden = [65536, 65536]\n"),
            10,
            vec!["change[0].hidden: 4299948042 parameters on digits; valid: at most 100000000"],
        ),
        (
            with("[model]\nkind = \"mlp\"\n[[change]]\nat = \"1s\"\nhidden = 0\n"),
            9,
            vec!["change[0].hidden", "0 is out of range; valid: 1..=65536"],
        ),
        (with("[[change]]\nat = \"1s\"\n"), 5, vec!["at least one of learning_rate"]),
        (with("[compression]\nbits = 3\n"), 6, vec!["valid: 1, 4 or 8"]),
        (
            "name = \"x\"\n[cluster]\nservers = 2\nplacement = \"random\"\n".to_string(),
            4,
            vec!["cluster.placement", "unknown value \"random\"", "\"range\", \"hash\", \"balanced\""],
        ),
        ("name = \"x\"\n[cluster]\nplacement = 3\n".to_string(), 3, vec!["cluster.placement", "expected a string"]),
        (
            with("[model]\nkind = \"sparse_logistic\"\nskew = -0.5\n"),
            7,
            vec!["model.skew", "valid: a Zipf exponent in [0, 10]"],
        ),
        (with("[model]\nkind = \"sparse_logistic\"\nskew = \"high\"\n"), 7, vec!["model.skew", "expected a number"]),
        (with("[model]\nkind = \"logistic\"\nskew = 1.1\n"), 7, vec!["model.skew", "only valid with dataset = \"synthetic\""]),
        (with("[check]\nliveness = \"soon\"\n"), 6, vec!["check.liveness", "bad duration"]),
        (with("[chaos]\ncut_rate = -1\n"), 6, vec!["chaos.cut_rate", "valid: a rate >= 0"]),
        (with("[chaos]\nswarm = \"no\"\n"), 6, vec!["chaos.swarm", "expected true or false"]),
        (with("[chaos]\nmin_duration = 3\n"), 6, vec!["chaos.min_duration", "expected a duration string"]),
        (
            with("[chaos]\nmax_duration = \"1s\"\nmin_duration = \"2s\"\n"),
            7,
            vec!["chaos.min_duration: 2s is longer than max_duration (1s)", "valid: 0 ..= max_duration"],
        ),
        (with("[chaos]\nmin_duraton = \"1s\"\n"), 6, vec!["unknown key \"min_duraton\" in [chaos]", "min_duration"]),
        ("name = \"x\"\n[cluster\nservers = 2\n".to_string(), 2, vec!["invalid TOML"]),
        (with("[training]\nclocks = 1\nclocks = 2\n"), 7, vec!["invalid TOML"]),
    ]
}

#[test]
fn bad_input_is_reported_with_line_column_field_and_what_is_valid() {
    for (text, line, needles) in cases() {
        let e = err(&text);
        assert_eq!(e.file, "t.toml");
        assert_eq!(e.line, line, "wrong line for {e}\n--- input:\n{text}");
        assert!(e.column >= 1, "{e}");
        for n in needles {
            assert!(
                e.message.contains(n),
                "{e:?} should mention {n:?}\n--- input:\n{text}"
            );
        }
        // Display is `file:line:column: message`.
        assert!(e.to_string().starts_with(&format!("t.toml:{line}:")), "{e}");
    }
}

/// `[chaos]` extension keys: the churn profile's cut-offs, a shortest
/// fault duration, and swarm testing switched off.
const CHURN: &str = r#"
[chaos]
cut_rate = 6.0
loss_rate = 3.0
min_duration = "200ms"
max_duration = "400ms"
until = "2500ms"
swarm = false
"#;

#[test]
fn chaos_churn_keys_parse_default_and_round_trip() {
    let s = parse(&format!("{MINIMAL}{CHURN}"), "churn.toml").unwrap();
    let ch = s.chaos.as_ref().unwrap();
    assert_eq!((ch.cut_rate, ch.loss_rate, ch.crash_rate), (6.0, 3.0, 0.0));
    assert_eq!(ch.min_duration, Some(Duration::from_millis(200)));
    assert_eq!(ch.max_duration, Duration::from_millis(400));
    assert_eq!(ch.until, Duration::from_millis(2500));
    assert!(!ch.swarm);
    let again = parse(&s.to_toml(), "again").unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
    assert_eq!(without_lines(s), without_lines(again));

    // Defaults: no cuts, no shortest duration (max_duration x U[0.05, 1]),
    // swarm testing on; a shortest duration may equal the longest.
    let s = parse(&format!("{MINIMAL}[chaos]\nclog_rate = 1.0\n"), "d.toml").unwrap();
    let ch = s.chaos.as_ref().unwrap();
    assert_eq!((ch.cut_rate, ch.min_duration, ch.swarm), (0.0, None, true));
    let again = parse(&s.to_toml(), "again").unwrap();
    assert_eq!(without_lines(s), without_lines(again));
    let s = parse(
        &format!("{MINIMAL}[chaos]\nmin_duration = \"5s\"\nmax_duration = \"5s\"\n"),
        "eq.toml",
    )
    .unwrap();
    assert_eq!(s.chaos.unwrap().min_duration, Some(Duration::from_secs(5)));
    let s = parse(
        &format!("{MINIMAL}[chaos]\nmin_duration = \"0s\"\n"),
        "z.toml",
    )
    .unwrap();
    assert_eq!(s.chaos.unwrap().min_duration, Some(Duration::ZERO));
}

#[test]
fn the_churn_library_file_round_trips() {
    let text = std::fs::read_to_string("scenarios/chaos-churn.toml").unwrap();
    let s = parse(&text, "scenarios/chaos-churn.toml").unwrap();
    let ch = s.chaos.as_ref().unwrap();
    assert!(ch.cut_rate > 0.0 && ch.min_duration.is_some() && !ch.swarm);
    let again = parse(&s.to_toml(), "again").unwrap();
    assert_eq!(without_lines(s), without_lines(again));
}

/// Version 2's `[cluster] placement` and `[model] skew`: parsed, range
/// placement and skew 0 (uniform) by default, written back by the writer.
#[test]
fn placement_and_skew_parse_default_and_round_trip() {
    use pssim::scenario::Placement;
    let s = parse(MINIMAL, "m").unwrap();
    assert_eq!(s.cluster.placement, Placement::Range);
    assert_eq!(s.model.skew, 0.0);
    for (name, p) in [
        ("range", Placement::Range),
        ("hash", Placement::Hash),
        ("balanced", Placement::Balanced),
    ] {
        let text = format!(
            "name = \"p\"\n[cluster]\nservers = 4\nplacement = \"{name}\"\n\
             [model]\nkind = \"sparse_logistic\"\nskew = 1.1\n"
        );
        let s = parse(&text, "p").unwrap();
        assert_eq!(s.cluster.placement, p);
        assert_eq!(s.model.skew, 1.1);
        let written = s.to_toml();
        assert!(
            written.contains(&format!("placement = \"{name}\"")),
            "{written}"
        );
        assert!(written.contains("skew = 1.1"), "{written}");
        assert_eq!(parse(&written, "again").unwrap(), s);
    }
    // Skew 0 is the default: uniform.
    let s = parse(
        &format!("{MINIMAL}[model]\nkind = \"sparse_logistic\"\nskew = 0.0\n"),
        "z",
    )
    .unwrap();
    assert_eq!(s.model.skew, 0.0);
    assert_eq!(parse(&s.to_toml(), "z2").unwrap(), s);
    let t = apply_override(MINIMAL, "cluster.placement=hash").unwrap();
    assert_eq!(parse(&t, "o").unwrap().cluster.placement, Placement::Hash);
}

#[test]
fn liveness_can_be_switched_off() {
    let s = parse(&format!("{MINIMAL}[check]\nliveness = false\n"), "x").unwrap();
    assert_eq!(s.check.liveness, None);
}

#[test]
fn overrides_set_nested_keys_and_report_bad_input() {
    let t = apply_override(MINIMAL, "training.staleness=4").unwrap();
    assert_eq!(parse(&t, "x").unwrap().training.staleness, 4);
    let t = apply_override(MINIMAL, "network.latency=5ms").unwrap();
    assert_eq!(
        parse(&t, "x").unwrap().network.latency_max,
        Duration::from_millis(5)
    );
    let t = apply_override(MINIMAL, "training.consistency=\"bsp\"").unwrap();
    assert_eq!(
        parse(&t, "x").unwrap().training.consistency,
        Consistency::Bsp
    );
    let e = apply_override(MINIMAL, "name.x=1").unwrap_err();
    assert_eq!(e.file, "--set");
    assert!(e.message.contains("name: is not a table"), "{e}");
    assert!(apply_override(MINIMAL, "no-equals-sign").is_err());
    // An override with a bad value is caught by validation, naming the key.
    let t = apply_override(MINIMAL, "training.staleness=-1").unwrap();
    assert!(parse(&t, "x")
        .unwrap_err()
        .message
        .contains("training.staleness"));
}

/// Applies one mutation to a scenario text.
fn mutate(text: &str, op: u8, pos: usize, pick: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = pos % text.len().max(1);
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let line = pos % lines.len().max(1);
    const JUNK: [&str; 12] = [
        "\"x\"",
        "-1",
        "1e999",
        "[]",
        "{}",
        "true",
        "\"worker-99\"",
        "\"-5s\"",
        "nan",
        "99999999999999999999",
        "\"\"",
        "0",
    ];
    match op % 8 {
        0 => format!(
            "{}{}",
            &text[..at],
            &text[at..].chars().skip(1).collect::<String>()
        ),
        1 => lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != line)
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join("\n"),
        2 => {
            let mut v = lines.clone();
            v.insert(line, lines.get(line).copied().unwrap_or(""));
            v.join("\n")
        }
        3 => lines
            .iter()
            .enumerate()
            .map(|(i, l)| match (i == line, l.split_once('=')) {
                (true, Some((k, _))) => format!("{k}= {}", JUNK[pick % JUNK.len()]),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        4 => {
            let mut v = lines.clone();
            v.insert(line, "mystery_key = 3");
            v.join("\n")
        }
        5 => text.replacen(['1', '2', '3', '4', '5'], "-", 1 + pick % 3),
        6 => text
            .replace("server-0", "server-77")
            .replace("worker-1", "worker-x"),
        _ => {
            let mut b = text.as_bytes().to_vec();
            if !b.is_empty() {
                let i = pos % b.len();
                b[i] = (pick % 256) as u8;
            }
            String::from_utf8_lossy(&b).into_owned()
        }
    }
}

/// The text of every scenario file in `scenarios/`, in name order.
fn library() -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir("scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn fault_timeline_mistakes_are_named_with_their_line() {
    let cases = [
        // A crash of a node that is still down.
        (
            "[[fault]]\nkind = \"crash\"\nnode = \"worker-1\"\nat = \"1s\"\nrestart_after = \"2s\"\n\
             [[fault]]\nkind = \"crash\"\nnode = \"worker-1\"\nat = \"2s\"\n",
            "worker-1",
        ),
        // A node that does not exist.
        (
            "[[fault]]\nkind = \"straggler\"\nnode = \"worker-9\"\nslowdown = 2.0\nat = \"0s\"\n",
            "worker-9",
        ),
        // A negative duration.
        (
            "[[fault]]\nkind = \"loss\"\nrate = 0.1\nat = \"0s\"\nduration = \"-1s\"\n",
            "duration",
        ),
        // A key of another kind.
        (
            "[[fault]]\nkind = \"clog\"\nfrom = \"worker-0\"\nto = \"server-0\"\nat = \"0s\"\nrate = 0.5\n",
            "rate",
        ),
        // A partition with one group.
        (
            "[[fault]]\nkind = \"partition\"\ngroups = [[\"worker-0\"]]\nat = \"0s\"\n",
            "groups",
        ),
        // A straggler that speeds up.
        (
            "[[fault]]\nkind = \"straggler\"\nnode = \"worker-0\"\nslowdown = 0.5\nat = \"0s\"\n",
            "slowdown",
        ),
    ];
    for (faults, needle) in cases {
        let text = format!("{MINIMAL}{faults}");
        let e = parse(&text, "faults.toml").expect_err(faults);
        assert!(e.line > MINIMAL.lines().count(), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_scenarios_never_panic_and_errors_point_at_a_line(
        base in 0usize..100,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..4),
    ) {
        // The contract's example, a minimal file, and the library's files
        // (faults of every kind, chaos).
        let library = library();
        let mut text = match base % (library.len() + 2) {
            0 => CONTRACT_EXAMPLE.to_string(),
            1 => MINIMAL.to_string(),
            i => library[i - 2].clone(),
        };
        for (op, pos, pick) in ops {
            text = mutate(&text, op, pos, pick);
        }
        match parse(&text, "fuzz.toml") {
            Ok(s) => {
                // Whatever parses must round-trip.
                let again = parse(&s.to_toml(), "again");
                prop_assert!(again.is_ok(), "{:?}", again);
                prop_assert_eq!(without_lines(s), without_lines(again.unwrap()));
            }
            Err(e) => {
                prop_assert!(e.line >= 1, "{e}");
                prop_assert!(e.column >= 1, "{e}");
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.line <= text.lines().count().max(1) + 1, "line {} beyond the input: {e}", e.line);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text, "bytes.toml");
    }
}

fn pssim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pssim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_exits_2_on_bad_input_with_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("pssim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("{MINIMAL}[training]\nclocks = -3\n")).unwrap();
    let bad = bad.to_str().unwrap();
    let (code, _, stderr) = pssim(&["run", bad]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{bad}:6:10: training.clocks")),
        "{stderr}"
    );
    let (code, _, stderr) = pssim(&["check", bad]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, _) = pssim(&["run", "/nonexistent/x.toml"]);
    assert_eq!(code, 2);
    let (code, _, _) = pssim(&["run", "scenarios/default.toml", "--no-such-flag"]);
    assert_eq!(code, 2);
    let (code, _, stderr) = pssim(&["run", "scenarios/default.toml", "--bug", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("known bugs"), "{stderr}");
    let (code, _, stderr) = pssim(&[
        "run",
        "scenarios/default.toml",
        "--set",
        "training.staleness=-1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stdout, _) = pssim(&["check", "scenarios/default.toml"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("ok"));
    for bad_sweep in [
        ["--seeds", "10..5"],
        ["--seeds", "abc"],
        ["--shard", "3/3"],
        ["--jobs", "0"],
    ] {
        let mut args = vec!["sweep", "scenarios/default.toml", "--seeds", "0..2"];
        args.extend(bad_sweep);
        let (code, _, stderr) = pssim(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}

#[test]
fn sweeps_report_counts_failing_seeds_and_write_csv_and_json() {
    let dir = std::env::temp_dir().join(format!("pssim-sweep-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let (code, stdout, stderr) = pssim(&[
        "sweep",
        "scenarios/default.toml",
        "--seeds",
        "0..6",
        "--jobs",
        "2",
        "--shard",
        "1/2",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("runs       3 · passed 3 · failed 0"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let seeds: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(seeds, ["3", "4", "5"], "shard 1/2 of 0..6");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"], 3);
    assert_eq!(summary["passed"], 3);
    // A planted bug fails every seed: exit 1, each failure with its REPRODUCE.
    let (code, stdout, _) = pssim(&[
        "sweep",
        "scenarios/default.toml",
        "--seeds",
        "0..=1",
        "--bug",
        "gradient_ascent",
        "--json",
    ]);
    assert_eq!(code, 1);
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["failed"], 2);
    assert_eq!(
        summary["failures"][1]["reproduce"],
        "pssim run scenarios/default.toml --seed 1 --bug gradient_ascent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pssim"))
        .args(["bugs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `pssim bugs | head -0`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}
