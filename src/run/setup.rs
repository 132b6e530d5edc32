//! From a scenario to the protocol's configuration and the workers' job,
//! the same for both hosts.
//!
//! May import: `crate::core`, `crate::ml`, `crate::scenario`. Never: a host
//! (`crate::sim`, `crate::net`).

use crate::core::{
    Bugs, Clock, Consistency, Event, Hyper, Job, ProtocolConfig, RangeMap, Schedule, View,
};
use crate::ml::{DataKind, DataSpec, KeyLayout, Loss, Model};
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
pub fn job(scn: &Scenario) -> Job {
    let data = crate::ml::data::load(data_spec(scn));
    let loss = match scn.model.kind {
        ModelKind::Logistic | ModelKind::SparseLogistic => Loss::Logistic,
        ModelKind::Softmax => Loss::Softmax,
    };
    let mut model = Model::new(loss, data.features, data.classes, scn.model.l2 as f32);
    if scn.cluster.placement == Placement::Hash {
        let layout = KeyLayout::hashed(model.dim(), scn.model.data_seed);
        model = model.with_layout(layout);
    }
    Job {
        model,
        data,
        sparse: scn.model.kind == ModelKind::SparseLogistic,
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
    Arc::new(ProtocolConfig {
        servers: c.servers,
        workers: c.workers,
        replication: c.replication,
        ranges: ranges(scn, job),
        clocks: t.clocks,
        schedule: Schedule::constant(hyper),
        request_timeout: c.request_timeout,
        heartbeat_interval: c.heartbeat_interval.unwrap_or(c.heartbeat_timeout / 4),
        heartbeat_timeout: c.heartbeat_timeout,
        read_leases: c.read_leases,
        checkpoint_every: c.checkpoint_every,
        changes: scn
            .changes
            .iter()
            .map(|ch| {
                (
                    ch.at,
                    crate::core::config::Change {
                        learning_rate: ch.learning_rate.map(|x| x as f32),
                        staleness: ch.staleness,
                        consistency: ch.consistency.map(|k| consistency(k, t.staleness)),
                        batch_size: ch.batch_size,
                    },
                )
            })
            .collect(),
        default_bound: t.staleness,
        compression: compression(&scn.compression),
        bugs,
        initial: initial_params(job, seed),
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

/// Test accuracy of scikit-learn's LogisticRegression (C=1) on the real data
/// sets (../shared/reference/README.md), the figure a run is compared with.
pub fn reference_accuracy(dataset: DatasetKind) -> Option<f64> {
    match dataset {
        DatasetKind::BreastCancer => Some(0.9580),
        DatasetKind::Digits => Some(0.9667),
        DatasetKind::Synthetic => None,
    }
}
