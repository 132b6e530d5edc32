//! From a scenario to the protocol's configuration and the workers' job,
//! the same for both hosts.
//!
//! May import: `crate::core`, `crate::ml`, `crate::scenario`. Never: a host
//! (`crate::sim`, `crate::net`).

use crate::core::config::Widths;
use crate::core::widen::Plan;
use crate::core::{
    Bugs, Clock, Consistency, Event, Hyper, Job, ProtocolConfig, RangeMap, Schedule, View,
};
use crate::ml::{Activation, DataKind, DataSpec, KeyLayout, Loss, Model};
use crate::scenario::{self, DatasetKind, ModelKind, Placement, Scenario};
use std::sync::Arc;

/// The data set a scenario trains on.
pub fn data_spec(scn: &Scenario) -> DataSpec {
    let m = &scn.model;
    let kind = match m.dataset {
        DatasetKind::BreastCancer => DataKind::BreastCancer,
        DatasetKind::Digits => DataKind::Digits,
        DatasetKind::Synthetic => DataKind::Synthetic {
            features: m.features,
            examples: m.examples,
            density_ppm: (m.density * 1e6).round().clamp(1.0, 1e6) as u32,
            skew_ppm: (m.skew * 1e6).round().clamp(0.0, 1e7) as u32,
        },
    };
    DataSpec {
        kind,
        seed: m.data_seed,
    }
}

/// The workers' job: model, data and pull mode. Under `hash` placement
/// the model stores its parameters under permuted keys (seeded by
/// `data_seed`, so every node of a real cluster computes the same one).
/// A perceptron's shape and data were validated by [`scenario::parse`],
/// so building it cannot fail for a parsed scenario.
pub fn job(scn: &Scenario) -> Job {
    let data = crate::ml::data::load(data_spec(scn));
    let m = &scn.model;
    let mut model = match m.kind {
        ModelKind::Logistic | ModelKind::SparseLogistic => {
            Model::new(Loss::Logistic, data.features, data.classes, m.l2 as f32)
        }
        ModelKind::Softmax => Model::new(Loss::Softmax, data.features, data.classes, m.l2 as f32),
        ModelKind::Mlp => {
            let hidden: Vec<usize> = m.hidden.iter().map(|&h| h as usize).collect();
            let activation = match m.activation {
                scenario::Activation::Relu => Activation::Relu,
                scenario::Activation::Tanh => Activation::Tanh,
            };
            let model = Model::mlp(
                data.features,
                data.classes,
                &hidden,
                activation,
                m.l2 as f32,
            )
            .unwrap_or_else(|e| panic!("scenario::parse lets no such perceptron through: {e}"));
            if let Err(e) = model.check_data(&data.train) {
                panic!("scenario::parse lets no such data through: {e}");
            }
            model
        }
    };
    if scn.cluster.placement == Placement::Hash {
        let layout = KeyLayout::hashed(model.dim(), m.data_seed);
        model = model.with_layout(layout);
    }
    Job {
        model,
        data,
        sparse: m.kind == ModelKind::SparseLogistic,
    }
}

/// The parameters' initial values by key for a run with seed `seed`
/// (`None`: zeros, the linear models). A perceptron's are its seeded
/// Glorot weights ([`Model::initial_params`]) drawn from the run's seed:
/// the same scenario and seed start from the same weights on every host
/// and every node (a real cluster's nodes share the seed), while each seed
/// of a sweep starts from its own, as scikit-learn's `random_state`
/// seeds a perceptron's initialisation. (`data_seed` picks the data's
/// split, as scikit-learn's split seed does.)
pub fn initial_params(job: &Job, seed: u64) -> Option<Arc<[f32]>> {
    job.model.hidden()?;
    Some(job.model.initial_params(seed).into())
}

/// The cost model of a scenario (docs/cost-model.md): what a minibatch
/// costs a worker and a message a server's CPU.
pub fn cost_model(scn: &Scenario) -> crate::run::cost::CostModel {
    crate::run::cost::CostModel::new(&scn.compute)
}

/// The core's view of a consistency setting.
pub fn consistency(c: scenario::Consistency, staleness: u32) -> Consistency {
    match c {
        scenario::Consistency::Bsp => Consistency::Bsp,
        scenario::Consistency::Ssp => Consistency::Ssp(staleness),
        scenario::Consistency::Asp => Consistency::Asp,
    }
}

/// What a trace starts with (scenario-format.md, version 2): the first
/// view, and a `worker_admitted` at clock 0 for every initial worker, so
/// that a trace alone tells who is a member.
pub fn initial_events(servers: u32, replication: u32, workers: u32) -> Vec<Event> {
    let view = View::initial(servers, replication);
    std::iter::once(Event::View {
        epoch: view.epoch,
        chains: view.chains,
    })
    .chain((0..workers).map(|worker| Event::WorkerAdmitted {
        worker,
        incarnation: 0,
        clock: Clock(0),
    }))
    .collect()
}

/// The key ranges of a scenario's job (`[cluster] placement`): equal
/// intervals of keys for `range` and `hash` (whose model stores its
/// parameters under permuted keys, [`job`]); for `balanced`, intervals of
/// equal expected accesses per minibatch of the initial batch size, from
/// the training data (equal intervals for dense models, which touch every
/// key in every minibatch).
pub fn ranges(scn: &Scenario, job: &Job) -> RangeMap {
    let (dim, servers) = (job.model.dim(), scn.cluster.servers);
    match scn.cluster.placement {
        Placement::Range | Placement::Hash => RangeMap::new(dim, servers),
        Placement::Balanced => {
            match job
                .model
                .expected_accesses(&job.data.train, scn.training.batch_size)
            {
                Some(w) => RangeMap::balanced(&w, servers),
                None => RangeMap::new(dim, servers),
            }
        }
    }
}

/// The protocol parameters of a scenario and its job, for a run with
/// seed `seed` (which seeds a perceptron's initial values:
/// [`initial_params`]).
pub fn protocol_config(scn: &Scenario, job: &Job, seed: u64, bugs: Bugs) -> Arc<ProtocolConfig> {
    let c = &scn.cluster;
    let t = &scn.training;
    let hyper = Hyper {
        consistency: consistency(t.consistency, t.staleness),
        learning_rate: t.learning_rate as f32,
        batch_size: t.batch_size,
    };
    let ranges = ranges(scn, job);
    let changes: Vec<_> =
        scn.changes
            .iter()
            .map(|ch| {
                (
                    ch.at,
                    crate::core::config::Change {
                        learning_rate: ch.learning_rate.map(|x| x as f32),
                        staleness: ch.staleness,
                        consistency: ch.consistency.map(|k| consistency(k, t.staleness)),
                        batch_size: ch.batch_size,
                        hidden: ch.hidden.as_deref().map(|h| {
                            Widths::new(h).expect("the scenario reader bounds the layers")
                        }),
                    },
                )
            })
            .collect();
    let widen = Plan::new(&job.model, &ranges, seed, &changes)
        .expect("the scenario reader checks every widening");
    Arc::new(ProtocolConfig {
        servers: c.servers,
        workers: c.workers,
        replication: c.replication,
        ranges,
        clocks: t.clocks,
        schedule: Schedule::constant(hyper),
        request_timeout: c.request_timeout,
        heartbeat_interval: c.heartbeat_interval.unwrap_or(c.heartbeat_timeout / 4),
        heartbeat_timeout: c.heartbeat_timeout,
        read_leases: c.read_leases,
        checkpoint_every: c.checkpoint_every,
        changes,
        default_bound: t.staleness,
        compression: compression(&scn.compression),
        bugs,
        initial: initial_params(job, seed),
        widen,
    })
}

/// The core's view of `[compression]`.
pub fn compression(z: &scenario::Compression) -> crate::core::codec::Compression {
    use crate::core::codec::{Compression, Scheme};
    Compression {
        scheme: match z.kind {
            scenario::CompressionKind::None => Scheme::None,
            scenario::CompressionKind::TopK => Scheme::TopK {
                ratio: z.ratio as f32,
            },
            scenario::CompressionKind::Quantize => Scheme::Quantize { bits: z.bits },
        },
        error_feedback: z.error_feedback,
        pull_threshold: z.pull_threshold as f32,
    }
}

/// The scikit-learn test accuracy a run is compared with
/// (../shared/reference/README.md; README.md, "Reference accuracies"):
/// LogisticRegression (C=1) on the data set, or for a perceptron of one
/// hidden layer of 32, 64 or 128 units on digits, the lowest of
/// `MLPClassifier`'s five seeds at that width (scikit-learn ran no other
/// shape: any other perceptron is compared with the linear figure, a floor
/// it should clear).
pub fn reference_accuracy(model: &scenario::ModelSpec) -> Option<f64> {
    let mlp_digits = match (model.kind, model.dataset, model.hidden.as_slice()) {
        (ModelKind::Mlp, DatasetKind::Digits, [32]) => Some(0.9711),
        (ModelKind::Mlp, DatasetKind::Digits, [64]) => Some(0.9711),
        (ModelKind::Mlp, DatasetKind::Digits, [128]) => Some(0.9733),
        _ => None,
    };
    mlp_digits.or(match model.dataset {
        DatasetKind::BreastCancer => Some(0.9580),
        DatasetKind::Digits => Some(0.9667),
        DatasetKind::Synthetic => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(model: &str) -> Scenario {
        let text = format!("name = \"t\"\n[cluster]\nservers = 3\n[model]\n{model}\n");
        scenario::parse(&text, "t").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The parser's caps on a perceptron's size use the data sets' shapes:
    /// they must be the loaded data's.
    #[test]
    fn dense_shapes_are_the_data_sets() {
        for kind in [DatasetKind::BreastCancer, DatasetKind::Digits] {
            let mut scn = Scenario::minimal("t");
            scn.model.kind = ModelKind::Softmax;
            scn.model.dataset = kind;
            let data = crate::ml::data::load(data_spec(&scn));
            let shape = (data.features as u32, data.classes as u32);
            assert_eq!(kind.dense_shape(), Some(shape), "{kind:?}");
        }
    }

    /// Linear models start from zeros, as before perceptrons: no initial
    /// values in the config. A perceptron's are its model's, for the run's
    /// seed, by key (a hashed layout's too), and its parameter count is
    /// the parser's.
    #[test]
    fn only_a_perceptron_has_initial_values() {
        for model in [
            "kind = \"logistic\"",
            "kind = \"softmax\"",
            "kind = \"sparse_logistic\"\nfeatures = 500\nexamples = 100",
        ] {
            let scn = scenario(model);
            let job = job(&scn);
            let cfg = protocol_config(&scn, &job, 5, Bugs::NONE);
            assert!(cfg.initial.is_none(), "{model}");
            assert_eq!(cfg.initial_params(2..9), vec![0.0; 7]);
        }
        for model in [
            "kind = \"mlp\"",
            "kind = \"mlp\"\nhidden = [16, 8]\nactivation = \"tanh\"\ndataset = \"breast_cancer\"",
        ] {
            for placement in [Placement::Range, Placement::Hash] {
                let mut scn = scenario(model);
                scn.cluster.placement = placement;
                let job = job(&scn);
                let m = &scn.model;
                let (f, c) = m.dataset.dense_shape().unwrap();
                assert_eq!(
                    u64::from(job.model.dim()),
                    scenario::mlp_params(f, &m.hidden, c)
                );
                let hidden: Vec<usize> = m.hidden.iter().map(|&h| h as usize).collect();
                assert_eq!(job.model.hidden(), Some(hidden.as_slice()));
                let cfg = protocol_config(&scn, &job, 5, Bugs::NONE);
                let initial = cfg.initial.as_deref().expect("a perceptron's");
                assert_eq!(initial, job.model.initial_params(5).as_slice());
                assert_ne!(initial, job.model.initial_params(6).as_slice());
                let keys = cfg.ranges.keys(1);
                assert_eq!(
                    cfg.initial_params(keys.clone()),
                    job.model.initial_params_of(5, keys)
                );
            }
        }
    }

    #[test]
    fn a_perceptron_on_digits_is_compared_with_scikit_learns_perceptron() {
        let r = |model: &str| reference_accuracy(&scenario(model).model);
        assert_eq!(r("kind = \"softmax\""), Some(0.9667));
        assert_eq!(r("kind = \"mlp\""), Some(0.9711));
        assert_eq!(r("kind = \"mlp\"\nhidden = 128"), Some(0.9733));
        assert_eq!(r("kind = \"mlp\"\nhidden = [64, 32]"), Some(0.9667));
        assert_eq!(
            r("kind = \"mlp\"\ndataset = \"breast_cancer\""),
            Some(0.9580)
        );
    }
}
