//! Live widening (`[[change]] hidden`): driven by hand through real
//! `core::Server`s (the sans-IO core alone), the widening is logged at its
//! boundary and keeps the function the model computes; under the
//! simulator, the library scenario widening under faults passes every
//! check and every replica widens.

#[cfg(madsim)]
mod common;

use pssim::core::codec::Payload;
use pssim::core::config::{Change, Widths};
use pssim::core::widen::Plan;
use pssim::core::{
    Bugs, Clock, Command, Consistency, Hyper, Keys, Message, NodeId, ProtocolConfig, RangeMap,
    Schedule, Seq, Server,
};
use pssim::ml::{Activation, DataKind, DataSpec, Model, ParamView};
use std::sync::Arc;
use std::time::Duration;

const SERVERS: u32 = 3;

fn config(model: &Model, seed: u64, change: Change) -> Arc<ProtocolConfig> {
    let ranges = RangeMap::new(model.dim(), SERVERS);
    let changes = vec![(Duration::from_secs(1), change)];
    let widen = Plan::new(model, &ranges, seed, &changes).unwrap();
    Arc::new(ProtocolConfig {
        servers: SERVERS,
        workers: 1,
        replication: 1,
        ranges,
        clocks: 1000,
        schedule: Schedule::constant(Hyper {
            consistency: Consistency::Bsp,
            learning_rate: 0.1,
            batch_size: 32,
        }),
        request_timeout: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(100),
        heartbeat_timeout: Duration::from_secs(500),
        read_leases: false,
        checkpoint_every: None,
        changes,
        default_bound: 0,
        compression: Default::default(),
        bugs: Bugs::NONE,
        initial: Some(model.initial_params(seed).into()),
        widen,
    })
}

/// The servers' values by key, and the widening level they hold (all
/// ranges at one level).
fn assemble(cfg: &ProtocolConfig, servers: &[Server]) -> (Vec<f32>, u32) {
    let level = servers[0].replicas()[&0].widened;
    let mut v = vec![f32::NAN; cfg.widen.dim(&cfg.ranges, level) as usize];
    for (r, s) in servers.iter().enumerate() {
        let rep = &s.replicas()[&(r as u32)];
        assert_eq!(rep.widened, level, "every range at one level");
        cfg.widen
            .scatter(&cfg.ranges, level, r as u32, &rep.params, &mut v);
    }
    assert!(v.iter().all(|x| x.is_finite()), "every key assembled");
    (v, level)
}

/// Hands `msg` from `from` to server `s`; what it asks its host to do.
fn deliver(s: &mut Server, from: NodeId, msg: Message) -> Vec<Command> {
    let mut out = Vec::new();
    s.on_message(Duration::ZERO, from, msg, &mut out);
    out
}

/// Worker 0 pushes `grad` (by key, at widening `level`) for `clock` to
/// range `r`, push number `n`.
fn push(
    cfg: &ProtocolConfig,
    s: &mut Server,
    r: u32,
    n: u64,
    clock: u32,
    grad: &[f32],
    level: u32,
) {
    let v = cfg.widen.gather(&cfg.ranges, level, r, grad);
    let epoch = s.view().epoch;
    let msg = Message::PushReq {
        epoch,
        range: r,
        worker: 0,
        seq: Seq { incarnation: 0, n },
        clock: Clock(clock),
        keys: Keys::All,
        values: Payload::Dense(v.into()),
    };
    deliver(s, NodeId::Worker(0), msg);
}

/// How many values a pull for `clock` gets, if it is answered at once,
/// from a worker holding `changes` live changes.
fn pull(s: &mut Server, r: u32, clock: u32, changes: u64) -> Option<usize> {
    let epoch = s.view().epoch;
    let msg = Message::PullReq {
        epoch,
        range: r,
        worker: 0,
        incarnation: 0,
        clock: Clock(clock),
        keys: Keys::All,
        schedule: changes,
        base: 0,
    };
    deliver(s, NodeId::Worker(0), msg)
        .iter()
        .find_map(|c| match c {
            Command::Send {
                msg: Message::PullResp { values, .. },
                ..
            } => Some(values.len()),
            _ => None,
        })
}

/// The coordinator commits `change` as live change 1 at `boundary`.
fn commit(s: &mut Server, boundary: u32, change: Change) -> Vec<Command> {
    let msg = Message::Commit {
        k: 1,
        boundary: Clock(boundary),
        change,
    };
    deliver(s, NodeId::Coordinator, msg)
}

/// A worker trains for `B` clocks, the widening commits at boundary `B`:
/// every server logs it once the clocks before `B` are in, and the
/// parameters at the boundary before and after give the same prediction
/// on every test example and the same loss (the widening keeps the
/// function; its seeded split shares change nothing here, only the
/// copies' later gradients). Reads for clocks before `B` are no longer
/// answered, reads at `B` get the widened ranges, a late push of clock
/// `B - 1` is refused and a push of clock `B` applies.
#[test]
fn widening_at_the_boundary_keeps_the_function() {
    let data = pssim::ml::data::load(DataSpec {
        kind: DataKind::Digits,
        seed: 5,
    });
    for act in [Activation::Relu, Activation::Tanh] {
        let model = Model::mlp(data.features, 10, &[16, 8], act, 0.0).unwrap();
        let change = Change {
            learning_rate: None,
            staleness: None,
            consistency: None,
            batch_size: None,
            hidden: Widths::new(&[24, 13]),
        };
        let cfg = config(&model, 11, change);
        let mut servers: Vec<Server> = (0..SERVERS).map(|i| Server::new(i, cfg.clone())).collect();
        let boundary = 12u32;
        let mut n = 0;
        let mut grad = vec![0f32; model.dim() as usize];
        for c in 0..boundary {
            let (w, _) = assemble(&cfg, &servers);
            let rows: Vec<u32> = (c * 32..(c + 1) * 32).collect();
            let view = ParamView {
                keys: None,
                values: &w,
            };
            model.gradient(&data.train, &rows, view, &mut grad);
            for (r, s) in servers.iter_mut().enumerate() {
                push(&cfg, s, r as u32, n, c, &grad, 0);
            }
            n += 1;
        }
        let (before, level) = assemble(&cfg, &servers);
        assert_eq!(level, 0);
        // Before the commit, a read at the boundary gets the old ranges.
        assert_eq!(
            pull(&mut servers[1], 1, boundary, 0),
            Some(cfg.ranges.len(1))
        );
        for s in &mut servers {
            let out = commit(s, boundary, change);
            assert!(
                out.iter().any(|c| matches!(
                    c,
                    Command::Emit(pssim::core::Event::RangeWidened { level: 1, .. })
                )),
                "the widening is logged at the commit: every clock before it is in"
            );
        }
        let (after, level) = assemble(&cfg, &servers);
        assert_eq!(level, 1);
        let wide = cfg.widen.model(&model, 1);
        assert_eq!(after.len(), wide.dim() as usize);
        assert!(after.len() > before.len());
        assert_eq!(
            model.predictions(&before, &data.test),
            wide.predictions(&after, &data.test),
            "{act:?}: every prediction kept"
        );
        let (a, b) = (
            model.evaluate(&before, &data.test),
            wide.evaluate(&after, &data.test),
        );
        assert!(
            (a.loss - b.loss).abs() <= 1e-5 * a.loss,
            "{act:?}: loss {} before, {} after",
            a.loss,
            b.loss
        );
        // Old keys keep their positions; the ranges grew.
        for r in 0..SERVERS {
            let len = cfg.ranges.len(r) + cfg.widen.extra(1, r).len();
            assert_eq!(pull(&mut servers[r as usize], r, boundary, 1), Some(len));
            assert_eq!(pull(&mut servers[r as usize], r, boundary - 1, 1), None);
        }
        // A late push of the old model is refused; one of the widened
        // model applies.
        let applied = servers[0].replicas()[&0].applied;
        push(&cfg, &mut servers[0], 0, n, boundary - 1, &grad, 0);
        assert_eq!(
            servers[0].replicas()[&0].applied,
            applied,
            "late push refused"
        );
        let mut wide_grad = vec![0f32; wide.dim() as usize];
        let view = ParamView {
            keys: None,
            values: &after,
        };
        wide.gradient(&data.train, &[1, 2, 3], view, &mut wide_grad);
        push(&cfg, &mut servers[0], 0, n + 1, boundary, &wide_grad, 1);
        assert_eq!(servers[0].replicas()[&0].applied, applied + 1);
    }
}

/// A widening is logged only once the clocks before its boundary are in:
/// committed with a clock still missing, nothing is widened, and the
/// missing push releases it.
#[test]
fn the_widening_waits_for_the_clocks_before_its_boundary() {
    let data = pssim::ml::data::load(DataSpec {
        kind: DataKind::Digits,
        seed: 5,
    });
    let model = Model::mlp(data.features, 10, &[8], Activation::Relu, 0.0).unwrap();
    let change = Change {
        learning_rate: None,
        staleness: None,
        consistency: None,
        batch_size: None,
        hidden: Widths::new(&[12]),
    };
    let cfg = config(&model, 3, change);
    let mut s = Server::new(0, cfg.clone());
    let grad = vec![0.01f32; model.dim() as usize];
    for c in 0..4 {
        push(&cfg, &mut s, 0, c as u64, c, &grad, 0);
    }
    commit(&mut s, 5, change);
    assert_eq!(s.replicas()[&0].widened, 0, "clock 4 is not in yet");
    push(&cfg, &mut s, 0, 4, 4, &grad, 0);
    assert_eq!(s.replicas()[&0].widened, 1, "the last clock released it");
}

/// The library scenario (two widenings under a server crash, a worker
/// crash and 2% message loss) passes every check on several seeds, and
/// every replica of the final view holds both widenings.
#[cfg(madsim)]
#[test]
fn the_widening_scenario_passes_and_every_replica_widens() {
    for seed in 1..=3 {
        let (o, trace) = common::run_traced("scenarios/mlp-widen.toml", seed, Bugs::NONE);
        // Every check passes: `live_changes` (every update and read met
        // the widenings of its clock), `replicas_agree` (every final
        // replica has the same values), and the rest.
        common::assert_passed(&o);
        let widened = common::events(&trace, "range_widened");
        for range in 0..4 {
            for (level, change) in [(1, 1), (2, 3)] {
                assert!(
                    widened.iter().any(|w| w["range"] == range
                        && w["level"] == level
                        && w["change"] == change),
                    "seed {seed}: range {range} never widened to level {level}"
                );
            }
        }
        assert!(
            o.final_accuracy >= 0.93,
            "seed {seed}: accuracy {}",
            o.final_accuracy
        );
    }
}

/// Real mode: `pssim local` widens the same way over TCP (its crashes
/// included; loss is not injected there), every check passes, every range
/// widens twice, and the final accuracy lands in the band of the
/// simulated seeds.
#[cfg(madsim)]
#[test]
fn widening_works_for_real_as_in_simulation() {
    let trace = std::env::temp_dir().join(format!("pssim-widen-real-{}.jsonl", std::process::id()));
    let o = common::local_in_simulated_band(
        "scenarios/mlp-widen.toml",
        &[
            "--timeout",
            "60s",
            "--seed",
            "1",
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    assert_eq!(o["passed"], true, "{o}");
    assert_eq!(o["checks"]["live_changes"], "pass", "{o}");
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let mut widened: Vec<(u64, u64)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["ev"] == "range_widened")
        .map(|e| (e["range"].as_u64().unwrap(), e["level"].as_u64().unwrap()))
        .collect();
    widened.sort_unstable();
    widened.dedup();
    let want: Vec<(u64, u64)> = (0..4).flat_map(|r| [(r, 1), (r, 2)]).collect();
    assert_eq!(widened, want);
}
