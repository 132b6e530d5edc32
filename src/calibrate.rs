//! `pssim calibrate`: measures this machine for the cost model
//! (docs/cost-model.md) and writes a `[compute]` block to paste into a
//! scenario.
//!
//! - The gradient FLOP rate of each model: the real gradient code
//!   (`ml::Model::gradient`, the sparse model's slotted path as a worker
//!   runs it) on real batches of the model's default data set, batch 32;
//!   the FLOPs are the model's own count (`ml::Model::batch_flops`), so
//!   `worker_gflops` set to the figure makes the simulated step take what
//!   the gradient takes here.
//! - The server apply rate: values per second a server applies from a
//!   dense push of 10^6 values (dedup, log entry, SGD step,
//!   acknowledgement: `core::Server::on_message`), as `pssim bench`
//!   measures it.
//!   The same beyond the caches: a push of 2^25 values (128 MiB of
//!   parameters), for models larger than the last-level cache.
//! - Memory bandwidth: a copy of 128 MiB (bytes copied per second).
//!
//! Each figure is the best of several rounds (other load on the machine
//! only slows a round down), on one core. The wall clock is read here on
//! purpose: this measures the real machine and runs outside any simulation
//! (nothing simulated reads it).
//!
//! May import: `crate::core` (a server to time), `crate::ml`,
//! `crate::run` (the scenario's job), `crate::scenario`. Never: a host
//! (`crate::sim`, `crate::net`), madsim, tokio.

use crate::core::codec::Payload;
use crate::core::{Clock, Command, Epoch, Keys, Message, NodeId, ProtocolConfig, Seq, Server};
use crate::ml::{Model, ParamView, Row};
use crate::scenario::{ModelKind, Scenario};
use std::hint::black_box;
use std::sync::Arc;
// Real wall time: calibration measures this machine, outside any simulation.
use std::time::{Duration, Instant};

/// Rounds per figure; the best counts.
const ROUNDS: usize = 5;
/// Wall time of one round of gradients.
const ROUND_TIME: Duration = Duration::from_millis(150);
/// Examples per minibatch (the scenario default).
const BATCH: usize = 32;
/// Values in the dense push a server applies (as `pssim bench`).
pub const APPLY_VALUES: u32 = 1_000_000;
/// Values in the push that does not fit in the caches.
pub const APPLY_VALUES_LARGE: u32 = 1 << 25;
/// Bytes of the memory copy.
const COPY_BYTES: usize = 128 << 20;

/// The models, in the order they are reported.
pub const MODELS: [ModelKind; 4] = [
    ModelKind::Logistic,
    ModelKind::Softmax,
    ModelKind::SparseLogistic,
    ModelKind::Mlp,
];

/// One model's gradient rate.
#[derive(Clone, Debug)]
pub struct ModelRate {
    /// The model.
    pub kind: ModelKind,
    /// Its data set and shape, for the report.
    pub data: String,
    /// Mean FLOPs per example (forward and backward).
    pub flops_per_example: f64,
    /// GFLOP/s of the gradient on one core.
    pub gflops: f64,
}

/// Everything `pssim calibrate` measures.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Per model, in [`MODELS`] order.
    pub models: Vec<ModelRate>,
    /// Values per second a server applies from a dense push of
    /// [`APPLY_VALUES`] (in cache, as `pssim bench`).
    pub apply_values_per_s: f64,
    /// The same for a push of [`APPLY_VALUES_LARGE`] (beyond the caches).
    pub apply_large_values_per_s: f64,
    /// Bytes per second of a large memory copy.
    pub copy_bytes_per_s: f64,
}

/// Measures everything (a few seconds).
pub fn calibrate() -> Calibration {
    Calibration {
        models: MODELS.iter().map(|&k| gradient_rate(k)).collect(),
        apply_values_per_s: apply_rate(APPLY_VALUES, 10),
        apply_large_values_per_s: apply_rate(APPLY_VALUES_LARGE, 1),
        copy_bytes_per_s: copy_rate(COPY_BYTES),
    }
}

/// The gradient FLOP rate of `kind` on its default data set (a
/// perceptron: the default shape, 64 relu hidden units): the best of
/// [`ROUNDS`] rounds of consecutive batches of [`BATCH`] training rows.
pub fn gradient_rate(kind: ModelKind) -> ModelRate {
    let mut scn = Scenario::minimal("calibrate");
    scn.model.kind = kind;
    scn.model.dataset = match kind {
        ModelKind::Logistic => crate::scenario::DatasetKind::BreastCancer,
        ModelKind::Softmax | ModelKind::Mlp => crate::scenario::DatasetKind::Digits,
        ModelKind::SparseLogistic => crate::scenario::DatasetKind::Synthetic,
    };
    let job = crate::run::setup::job(&scn);
    let (model, train) = (&job.model, &job.data.train);
    let rows: Vec<u32> = (0..train.rows() as u32).collect();
    let batches: Vec<&[u32]> = rows.chunks_exact(BATCH.min(rows.len())).take(64).collect();
    // Each batch as a worker holds it: its keys (every key of a dense
    // model), where its non-zeros sit, the pulled values, the gradient.
    struct Prepared<'a> {
        rows: &'a [u32],
        keys: Vec<u32>,
        slots: Vec<u32>,
        values: Vec<f32>,
        grad: Vec<f32>,
        flops: u64,
    }
    let mut prepared: Vec<Prepared> = batches
        .iter()
        .map(|&b| {
            let (mut keys, mut slots) = (Vec::new(), Vec::new());
            if job.sparse {
                model.batch_keys_slotted(train, b, &mut keys, &mut slots);
            }
            let n = if job.sparse {
                keys.len()
            } else {
                model.dim() as usize
            };
            let values: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
            Prepared {
                rows: b,
                flops: model.batch_flops(train, b, n),
                keys,
                slots,
                values,
                grad: vec![0.0; n],
            }
        })
        .collect();
    let run = |p: &mut Prepared, model: &Model| {
        if job.sparse {
            model.gradient_slotted(train, p.rows, &p.keys, &p.slots, &p.values, &mut p.grad)
        } else {
            let view = ParamView {
                keys: None,
                values: &p.values,
            };
            model.gradient(train, p.rows, view, &mut p.grad)
        }
    };
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let (mut flops, mut i) = (0u64, 0usize);
        let start = Instant::now();
        loop {
            let p = &mut prepared[i % batches.len()];
            black_box(run(p, model));
            flops += p.flops;
            i += 1;
            if i % 8 == 0 && start.elapsed() >= ROUND_TIME {
                break;
            }
        }
        best = best.max(flops as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    let examples: usize = batches.iter().map(|b| b.len()).sum();
    let flops: u64 = prepared.iter().map(|p| p.flops).sum();
    let nnz = batches
        .iter()
        .flat_map(|b| b.iter())
        .map(|&i| match train.row(i as usize) {
            Row::Dense(x) => x.len(),
            Row::Sparse(idx, _) => idx.len(),
        })
        .sum::<usize>() as f64
        / examples as f64;
    let d = &job.data;
    let data = match kind {
        ModelKind::Softmax => format!(
            "{}, {} features x {} classes",
            d.name, d.features, d.classes
        ),
        ModelKind::Logistic => format!("{}, {} features", d.name, d.features),
        ModelKind::SparseLogistic => {
            format!("{}; {nnz:.1} non-zeros per example measured", d.name)
        }
        ModelKind::Mlp => {
            let hidden: Vec<String> = scn.model.hidden.iter().map(u32::to_string).collect();
            format!(
                "{}, {}-{}-{} {}",
                d.name,
                d.features,
                hidden.join("-"),
                d.classes,
                scn.model.activation.name()
            )
        }
    };
    ModelRate {
        kind,
        data,
        flops_per_example: flops as f64 / examples as f64,
        gflops: best,
    }
}

/// A server applying `n`-value dense pushes (dedup, log entry, SGD step,
/// acknowledgement): values applied per second, the best of [`ROUNDS`]
/// rounds of `reps` pushes (each push timed alone, as `pssim bench` does).
pub fn apply_rate(n: u32, reps: u32) -> f64 {
    let cfg = Arc::new(ProtocolConfig::single_server(n));
    let mut server = Server::new(0, cfg);
    let values: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 1e-3).collect();
    let mut out: Vec<Command> = Vec::new();
    let mut seq = 0u64;
    let mut push = |server: &mut Server, out: &mut Vec<Command>| {
        let msg = Message::PushReq {
            epoch: Epoch(1),
            range: 0,
            worker: 0,
            seq: Seq {
                incarnation: 0,
                n: seq,
            },
            clock: Clock(seq as u32),
            keys: Keys::All,
            values: Payload::Dense(values.as_slice().into()),
        };
        seq += 1;
        let t = Instant::now();
        server.on_message(Duration::ZERO, NodeId::Worker(0), black_box(msg), out);
        let elapsed = t.elapsed();
        out.clear();
        elapsed
    };
    push(&mut server, &mut out); // warm up: the parameters' pages
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let total: Duration = (0..reps).map(|_| push(&mut server, &mut out)).sum();
        best = best.max(f64::from(n) * f64::from(reps) / total.as_secs_f64());
    }
    best
}

/// A copy of `bytes` bytes between two buffers: bytes copied per second,
/// the best of [`ROUNDS`] copies (the memory system moves twice that: it
/// reads and writes each byte).
pub fn copy_rate(bytes: usize) -> f64 {
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![1f32; n];
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.max((n * 4) as f64 / t.elapsed().as_secs_f64());
    }
    best
}

/// Three significant digits, in a form TOML reads as a float.
fn sig3(x: f64) -> String {
    format!("{x:.2e}")
}

impl Calibration {
    /// The rate of `kind`, if measured.
    pub fn gflops(&self, kind: ModelKind) -> Option<f64> {
        self.models
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.gflops)
    }

    /// The report: the raw figures as comments, then a `[compute]` block
    /// whose `worker_gflops` is the rate of `kind`. The lines and their
    /// order are fixed; only the measured numbers vary.
    pub fn report(&self, kind: ModelKind) -> String {
        let mut s = String::new();
        s.push_str(
            "# pssim calibrate: this machine, one core, best of 5 rounds (docs/cost-model.md)\n",
        );
        s.push_str("# worker gradient FLOP rate (the model's FLOPs / wall time, batches of 32):\n");
        for m in &self.models {
            s.push_str(&format!(
                "#   {:<16} {:>7.1} FLOP/example  {:>7.3} GFLOP/s  ({})\n",
                m.kind.name(),
                m.flops_per_example,
                m.gflops,
                m.data
            ));
        }
        s.push_str(&format!(
            "# server apply rate (dense push of {} values, as pssim bench): {} values/s\n",
            APPLY_VALUES,
            sig3(self.apply_values_per_s)
        ));
        s.push_str(&format!(
            "# server apply rate beyond the caches (dense push of {} values): {} values/s\n",
            APPLY_VALUES_LARGE,
            sig3(self.apply_large_values_per_s)
        ));
        s.push_str(&format!(
            "# memory bandwidth (copy of {} MiB): {:.2} GB/s copied ({:.2} GB/s read + write)\n",
            COPY_BYTES >> 20,
            self.copy_bytes_per_s / 1e9,
            2.0 * self.copy_bytes_per_s / 1e9
        ));
        let others: Vec<String> = self
            .models
            .iter()
            .filter(|m| m.kind != kind)
            .map(|m| format!("{} {:.3}", m.kind.name(), m.gflops))
            .collect();
        s.push_str("[compute]\n");
        s.push_str(&format!(
            "worker_gflops = {:.3}  # {}; {} (pssim calibrate --model KIND)\n",
            self.gflops(kind).unwrap_or(f64::NAN),
            kind.name(),
            others.join(", ")
        ));
        s.push_str(&format!(
            "server_apply_rate = {}  # values/s in cache; beyond the caches {}\n",
            sig3(self.apply_values_per_s),
            sig3(self.apply_large_values_per_s)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_a_compute_block_that_parses() {
        let c = Calibration {
            models: vec![
                ModelRate {
                    kind: ModelKind::Logistic,
                    data: "breast_cancer, 30 features".into(),
                    flops_per_example: 126.0,
                    gflops: 1.5,
                },
                ModelRate {
                    kind: ModelKind::Softmax,
                    data: "digits, 64 features x 10 classes".into(),
                    flops_per_example: 2620.0,
                    gflops: 3.25,
                },
                ModelRate {
                    kind: ModelKind::Mlp,
                    data: "digits, 64-64-10 relu".into(),
                    flops_per_example: 20476.0,
                    gflops: 4.5,
                },
            ],
            apply_values_per_s: 6.02e9,
            apply_large_values_per_s: 2.1e9,
            copy_bytes_per_s: 1.2e10,
        };
        let text = c.report(ModelKind::Softmax);
        let scn = crate::scenario::parse(
            &format!("name = \"x\"\n[cluster]\nservers = 1\n{text}"),
            "calibrate",
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(scn.compute.worker_gflops, Some(3.25));
        assert_eq!(scn.compute.step_time, None);
        assert_eq!(scn.compute.server_apply_rate, 6.02e9);
        assert!(text.contains("logistic 1.500"), "{text}");
        assert!(text.contains("mlp 4.500"), "{text}");
        assert!(
            text.contains("#   mlp              20476.0 FLOP/example    4.500 GFLOP/s  (digits, 64-64-10 relu)"),
            "{text}"
        );
        let mlp = c.report(ModelKind::Mlp);
        assert!(
            mlp.contains("worker_gflops = 4.500  # mlp; logistic 1.500, softmax 3.250"),
            "{mlp}"
        );
    }

    #[test]
    fn measurements_are_positive() {
        assert!(apply_rate(10_000, 2) > 0.0);
        assert!(copy_rate(1 << 20) > 0.0);
        let r = gradient_rate(ModelKind::Logistic);
        assert_eq!(r.flops_per_example, 126.0);
        assert!(r.gflops > 0.0);
        // The perceptron of docs/cost-model.md: 64-64-10, 9,576 forward and
        // 10,900 backward per example.
        let r = gradient_rate(ModelKind::Mlp);
        assert_eq!(r.flops_per_example, 20476.0);
        assert_eq!(r.data, "digits, 64-64-10 relu");
        assert!(r.gflops > 0.0);
    }
}
