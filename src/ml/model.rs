//! The models: logistic and softmax regression, and the multilayer
//! perceptron ([`super::mlp`], behind the same methods); key layout,
//! minibatch gradients over dense or sparse parameter views, evaluation,
//! initial parameters and widening.
//!
//! Key layout: a model with `O` outputs (1 for logistic, one per class for
//! softmax) over `F` features has `O * (F + 1)` keys; output `o`'s weight for
//! feature `j` has logical index `o * (F + 1) + j` and its bias
//! `o * (F + 1) + F`. The model's [`KeyLayout`] maps a logical index to its
//! key (the identity unless `[cluster] placement = "hash"`): every key the
//! model names — a minibatch's keys, a dense gradient's positions, the
//! parameters it evaluates — goes through it. A multilayer perceptron
//! numbers its parameters per weight layer, to-unit, from-unit, bias last,
//! and appends new ones when it widens ([`super::mlp`]).
//! Math uses the `libm` crate, so results are bit-identical across machines.
//!
//! Floating-point work ([`Model::example_flops`], [`Model::batch_flops`];
//! docs/cost-model.md): an example with `n` non-zero features (`n = F` for
//! a dense row, its non-zeros for a sparse one) costs, per output,
//! `2n + 4` FLOPs forward (a multiply-add per non-zero for the score, and
//! the loss: exponential, normalization, error) and `2n + 2` backward
//! (scaling the error, a multiply-add per non-zero into the gradient, the
//! bias); so `O * (4n + 6)` in all: logistic `4F + 6` over dense
//! features, softmax `C * (4F + 6)` for `C` classes, sparse logistic
//! `4 nnz + 6` per example. A transcendental function counts as one FLOP.
//! L2 adds 2 per gradient entry per batch. A multilayer perceptron counts
//! each layer (module docs of [`super::mlp`]): a hidden layer of `n x h`
//! weights `2nh + h` forward and `2nh + 2h` backward, plus `2nh` backward
//! for the errors passed down on every layer but the first; its softmax
//! output over `n` inputs as a linear softmax model, `C (2n + 4)` forward
//! and `C (2n + 2)` backward, plus `2nC` passed down. Digits with 64 relu
//! units (64-64-10): 9,576 forward and 10,900 backward.
//!
//! Initial parameters ([`Model::initial_params`]): zeros for the linear
//! models; seeded Glorot weights and zero biases for a perceptron, which
//! cannot start from zeros (every hidden unit would stay the same). Servers
//! start every range from these (the protocol config carries them).
//!
//! Multilayer perceptrons take dense data only: [`Model::check_data`]
//! says so for a sparse data set (the run layer's setup calls it; the
//! scenario parser already rejects a perceptron on synthetic data), and
//! [`Model::gradient`] panics on sparse rows.
//!
//! May import: `crate::ml`, std, rand, smartcore (the data sets). Never:
//! the protocol (`crate::core`), a host (`crate::sim`, `crate::net`).

use super::data::{Matrix, Row};
use super::mlp::{Activation, Affine, Mlp};
use super::placement::{self, KeyLayout};
use std::ops::Range;
use std::sync::Arc;

/// Which loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Binary logistic regression (labels 0/1), one output.
    Logistic,
    /// Multinomial logistic (softmax) regression, one output per class.
    Softmax,
}

/// A model's shape and loss: linear (logistic or softmax) or a multilayer
/// perceptron with a softmax output.
#[derive(Clone, Debug)]
pub struct Model {
    loss: Loss,
    features: usize,
    outputs: usize,
    l2: f32,
    layout: KeyLayout,
    /// The perceptron's layers and parameter tables (`None`: linear).
    net: Option<Arc<Mlp>>,
}

/// The parameters a gradient is computed against: either every key (dense),
/// or the values of a sorted key list (sparse pull).
#[derive(Clone, Copy, Debug)]
pub struct ParamView<'a> {
    /// `None`: `values[k]` is key `k`. `Some(keys)`: `values[i]` is key
    /// `keys[i]`, keys sorted ascending.
    pub keys: Option<&'a [u32]>,
    /// The values.
    pub values: &'a [f32],
}

impl<'a> ParamView<'a> {
    #[inline]
    pub(super) fn pos(&self, key: u32) -> usize {
        match self.keys {
            None => key as usize,
            Some(keys) => keys
                .binary_search(&key)
                .unwrap_or_else(|_| panic!("key {key} was not pulled")),
        }
    }
}

/// Floating-point operations of one example's gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flops {
    /// The forward pass: scores and loss.
    pub forward: u64,
    /// The backward pass: the gradient's contributions.
    pub backward: u64,
}

impl Flops {
    /// Forward and backward.
    pub fn total(self) -> u64 {
        self.forward + self.backward
    }
}

/// Loss and accuracy of parameters on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Fraction of examples classified correctly.
    pub accuracy: f64,
}

impl Model {
    /// A model for `classes` classes over `features` features. Logistic
    /// requires `classes == 2`.
    pub fn new(loss: Loss, features: usize, classes: usize, l2: f32) -> Model {
        let outputs = match loss {
            Loss::Logistic => {
                assert_eq!(classes, 2, "logistic regression is binary");
                1
            }
            Loss::Softmax => classes,
        };
        Model {
            loss,
            features,
            outputs,
            l2,
            layout: KeyLayout::identity(),
            net: None,
        }
    }

    /// A multilayer perceptron over `features` dense features with hidden
    /// layers of the given widths (at least one), `activation` on the
    /// hidden units and a softmax over `classes` outputs (two for binary
    /// data), L2 penalty `l2` on every parameter. Its initial values come
    /// from [`Model::initial_params`]. Errors name what is wrong with the
    /// shape.
    pub fn mlp(
        features: usize,
        classes: usize,
        hidden: &[usize],
        activation: Activation,
        l2: f32,
    ) -> Result<Model, String> {
        let net = Mlp::new(features, classes, hidden, activation)?;
        Ok(Model {
            loss: Loss::Softmax,
            features,
            outputs: classes,
            l2,
            layout: KeyLayout::identity(),
            net: Some(Arc::new(net)),
        })
    }

    /// The same model with its parameters stored under `layout`'s keys.
    pub fn with_layout(mut self, layout: KeyLayout) -> Model {
        if let Some(n) = layout.permuted_len() {
            assert_eq!(n, self.dim() as usize, "a layout covers every key");
        }
        if let Some(net) = &mut self.net {
            Arc::make_mut(net).relayout(&layout);
        }
        self.layout = layout;
        self
    }

    /// Whether the model can train on `data`: its rows have the model's
    /// features, and a multilayer perceptron needs dense rows.
    pub fn check_data(&self, data: &Matrix) -> Result<(), String> {
        if data.cols != self.features {
            return Err(format!(
                "the model has {} features, the data {}",
                self.features, data.cols
            ));
        }
        if self.net.is_some() && data.is_sparse() {
            return Err(
                "a multilayer perceptron takes dense data (breast_cancer, digits), not sparse"
                    .into(),
            );
        }
        Ok(())
    }

    /// The hidden layers' widths of a multilayer perceptron (`None`:
    /// linear).
    pub fn hidden(&self) -> Option<&[usize]> {
        self.net.as_deref().map(Mlp::hidden)
    }

    /// The hidden units' nonlinearity of a multilayer perceptron.
    pub fn activation(&self) -> Option<Activation> {
        self.net.as_deref().map(Mlp::activation)
    }

    /// The perceptron inside (`None`: linear).
    #[cfg(test)]
    pub(super) fn net(&self) -> Option<&Mlp> {
        self.net.as_deref()
    }

    /// A multilayer perceptron's key of weight layer `layer`'s weight from
    /// unit `from` of layer `layer` to unit `to` of layer `layer + 1`
    /// (layer 0 is the input; `from` = that layer's width names the bias).
    /// Panics for a linear model or a unit out of range.
    pub fn weight_key(&self, layer: usize, to: usize, from: usize) -> u32 {
        let net = self.net.as_deref().expect("a multilayer perceptron");
        net.key(layer, to, from)
    }

    /// The same parameter's logical index ([`Model::weight_key`]).
    pub fn weight_logical(&self, layer: usize, to: usize, from: usize) -> u32 {
        let net = self.net.as_deref().expect("a multilayer perceptron");
        net.logical(layer, to, from)
    }

    /// Initial parameters, indexed by key: zeros for a linear model; a
    /// perceptron's seeded Glorot weights and zero biases ([`super::mlp`]).
    pub fn initial_params(&self, seed: u64) -> Vec<f32> {
        self.initial_params_of(seed, 0..self.dim())
    }

    /// [`Model::initial_params`] of the keys in `keys` only (a server's
    /// range), in key order: each value depends on the seed and its
    /// parameter alone.
    pub fn initial_params_of(&self, seed: u64, keys: Range<u32>) -> Vec<f32> {
        assert!(keys.end <= self.dim(), "keys {keys:?} of {}", self.dim());
        match &self.net {
            None => vec![0.0; keys.len()],
            Some(net) => net.initial_params(seed, keys),
        }
    }

    /// A multilayer perceptron widened to hidden widths `hidden` (Net2Net:
    /// the same function, new units copies of seeded old ones): the new
    /// model, and how each of its keys derives from the old parameters.
    /// Errors if the model is linear, the number of hidden layers differs
    /// or a layer would narrow.
    pub fn widen(&self, hidden: &[usize], seed: u64) -> Result<Widening, String> {
        let Some(net) = &self.net else {
            return Err("only a multilayer perceptron can be widened".into());
        };
        let wide = net.widen(hidden, seed, &self.layout)?;
        Ok(Widening {
            old_dim: self.dim(),
            model: Model {
                net: Some(Arc::new(wide.net)),
                ..self.clone()
            },
            map: wide.map,
            sources: wide.sources,
        })
    }

    /// How logical parameter indices map to keys.
    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    /// Number of outputs (1 for logistic, one per class for softmax).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Expected accesses of each key per minibatch of `batch` rows of
    /// `data` (indexed by key; `None`: every key in every minibatch, as for
    /// dense data). See [`placement::expected_accesses`].
    pub fn expected_accesses(&self, data: &Matrix, batch: u32) -> Option<Vec<f64>> {
        if self.net.is_some() {
            return None; // every key in every minibatch
        }
        let logical = placement::expected_accesses(data, self.outputs, batch)?;
        if self.layout.is_identity() {
            return Some(logical);
        }
        let mut by_key = vec![0.0; logical.len()];
        for (i, w) in logical.into_iter().enumerate() {
            by_key[self.layout.key(i as u32) as usize] = w;
        }
        Some(by_key)
    }

    /// Number of parameters (keys).
    pub fn dim(&self) -> u32 {
        if let Some(net) = &self.net {
            return net.dim() as u32;
        }
        (self.outputs * (self.features + 1)) as u32
    }

    /// The floating-point work of one example with `nnz` non-zero
    /// features (all `features` for a dense row), forward and backward
    /// (module docs: per output `2n + 4` forward, `2n + 2` backward for a
    /// linear model; per layer for a perceptron).
    ///
    /// Extension point: every model reports its work here. The multilayer
    /// perceptron has its own arm: per layer of `fan_in x fan_out`
    /// weights, `2 fan_in fan_out` forward (the first layer's `fan_in` is
    /// the example's non-zeros) plus one per activation, and about twice
    /// the forward backward (the weight gradients and the errors passed
    /// down to the layer below; the first layer passes none).
    pub fn example_flops(&self, nnz: usize) -> Flops {
        if let Some(net) = &self.net {
            return net.example_flops(nnz);
        }
        let (n, o) = (nnz as u64, self.outputs as u64);
        match self.loss {
            Loss::Logistic | Loss::Softmax => Flops {
                forward: o * (2 * n + 4),
                backward: o * (2 * n + 2),
            },
        }
    }

    /// The floating-point work of [`Model::gradient`] over `rows` of
    /// `data` into a gradient of `params` entries: the sum of the rows'
    /// [`Model::example_flops`] (a sparse row counts its own non-zeros),
    /// plus `2 * params` for the L2 term when there is one.
    pub fn batch_flops(&self, data: &Matrix, rows: &[u32], params: usize) -> u64 {
        let examples: u64 = rows
            .iter()
            .map(|&i| {
                let nnz = match data.row(i as usize) {
                    Row::Dense(x) => x.len(),
                    Row::Sparse(idx, _) => idx.len(),
                };
                self.example_flops(nnz).total()
            })
            .sum();
        let l2 = if self.l2 > 0.0 { 2 * params as u64 } else { 0 };
        examples + l2
    }

    /// A linear model's key of output `output`'s weight for `feature` (its
    /// bias for `feature == F`); [`Model::weight_key`] for a perceptron.
    #[inline]
    pub fn key(&self, output: usize, feature: usize) -> u32 {
        self.layout
            .key((output * (self.features + 1) + feature) as u32)
    }

    /// The sorted keys the given rows touch (their non-zero features and
    /// the biases, for every output).
    pub fn batch_keys(&self, data: &Matrix, rows: &[u32], out: &mut Vec<u32>) {
        self.batch_keys_slotted(data, rows, out, &mut Vec::new());
    }

    /// As [`Model::batch_keys`], and also where each non-zero of each row
    /// sits in `keys`: `slots` lists, row by row (in `rows` order) and per
    /// output, the position of every non-zero's key, so that
    /// [`Model::gradient_slotted`] needs no search. Dense rows, and every
    /// row of a perceptron, touch every key and leave `slots` empty.
    pub fn batch_keys_slotted(
        &self,
        data: &Matrix,
        rows: &[u32],
        keys: &mut Vec<u32>,
        slots: &mut Vec<u32>,
    ) {
        keys.clear();
        slots.clear();
        // A dense row touches every key (a matrix is all dense or all
        // sparse), as does every row of a perceptron.
        if self.net.is_some() || (!data.is_sparse() && !rows.is_empty()) {
            keys.extend(0..self.dim());
            return;
        }
        // (key, slot index); biases get no slot (index u32::MAX).
        let nonzeros = data.warm(rows);
        let mut pairs: Vec<u64> = Vec::with_capacity((nonzeros + 1) * self.outputs);
        for &i in rows {
            let Row::Sparse(idx, _) = data.row(i as usize) else {
                unreachable!("a matrix's rows are all dense or all sparse");
            };
            for o in 0..self.outputs {
                for &j in idx {
                    let slot = pairs.len() as u64;
                    pairs.push(u64::from(self.key(o, j as usize)) << 32 | slot);
                }
            }
        }
        let n = pairs.len();
        pairs.extend(
            (0..self.outputs).map(|o| u64::from(self.key(o, self.features)) << 32 | 0xffff_ffff),
        );
        // Pairs of one key are in slot order (the biases' last): a stable
        // sort by the key alone gives the order of the whole `u64`s. A
        // radix sort (`keysort`: two passes below 2^22 keys, `radsort`'s
        // three by bytes above).
        super::keysort::sort_by_high_key(&mut pairs);
        slots.resize(n, 0);
        for p in pairs {
            let (key, slot) = ((p >> 32) as u32, p as u32);
            if keys.last() != Some(&key) {
                keys.push(key);
            }
            if slot != u32::MAX {
                slots[slot as usize] = (keys.len() - 1) as u32;
            }
        }
    }

    /// [`Model::gradient`] of a batch whose key positions
    /// [`Model::batch_keys_slotted`] found, without searching the key list.
    pub fn gradient_slotted(
        &self,
        data: &Matrix,
        rows: &[u32],
        keys: &[u32],
        slots: &[u32],
        values: &[f32],
        grad: &mut [f32],
    ) -> f64 {
        let params = ParamView {
            keys: Some(keys),
            values,
        };
        if slots.is_empty() {
            return self.gradient(data, rows, params, grad);
        }
        self.sparse_gradient(data, rows, slots, params, grad)
    }

    /// Writes the mean gradient over `rows` into `grad` (aligned with
    /// `params.values`) and returns the mean loss. A perceptron's view
    /// must hold every key.
    pub fn gradient(
        &self,
        data: &Matrix,
        rows: &[u32],
        params: ParamView<'_>,
        grad: &mut [f32],
    ) -> f64 {
        if let Some(net) = &self.net {
            let loss = net.gradient(data, rows, params, grad);
            if !rows.is_empty() {
                self.add_l2(grad, params.values);
            }
            return loss;
        }
        if rows
            .first()
            .is_some_and(|&i| matches!(data.row(i as usize), Row::Sparse(..)))
        {
            // Sparse rows: each non-zero's position, then the sparse path.
            let mut slots = Vec::new();
            for &i in rows {
                if let Row::Sparse(idx, _) = data.row(i as usize) {
                    for o in 0..self.outputs {
                        slots.extend(
                            idx.iter()
                                .map(|&j| params.pos(self.key(o, j as usize)) as u32),
                        );
                    }
                }
            }
            return self.sparse_gradient(data, rows, &slots, params, grad);
        }
        assert_eq!(grad.len(), params.values.len());
        grad.fill(0.0);
        if rows.is_empty() {
            return 0.0;
        }
        let scale = 1.0 / rows.len() as f32;
        let mut z = vec![0f32; self.outputs];
        let mut loss = 0f64;
        for &i in rows {
            let Row::Dense(x) = data.row(i as usize) else {
                unreachable!("a matrix's rows are all dense or all sparse");
            };
            let label = data.labels[i as usize] as usize;
            self.scores(
                Row::Dense(x),
                |o, j| params.values[params.pos(self.key(o, j))],
                &mut z,
            );
            loss += self.errors(&mut z, label);
            // z now holds d(loss)/d(score) per output.
            for (o, &err) in z.iter().enumerate() {
                let e = err * scale;
                if e == 0.0 {
                    continue;
                }
                let base = params.pos(self.key(o, 0));
                if params.keys.is_none() && self.layout.is_identity() {
                    for (g, &xj) in grad[base..base + x.len()].iter_mut().zip(x) {
                        *g += e * xj;
                    }
                } else {
                    for (j, &xj) in x.iter().enumerate() {
                        grad[params.pos(self.key(o, j))] += e * xj;
                    }
                }
                grad[params.pos(self.key(o, self.features))] += e;
            }
        }
        self.add_l2(grad, params.values);
        loss / rows.len() as f64
    }

    /// The gradient of sparse rows whose non-zeros sit at `slots` of the
    /// parameters (row by row, per output, as
    /// [`Model::batch_keys_slotted`] lists them).
    fn sparse_gradient(
        &self,
        data: &Matrix,
        rows: &[u32],
        slots: &[u32],
        params: ParamView<'_>,
        grad: &mut [f32],
    ) -> f64 {
        let values = params.values;
        assert_eq!(grad.len(), values.len());
        grad.fill(0.0);
        if rows.is_empty() {
            return 0.0;
        }
        data.warm_lengths(rows);
        let scale = 1.0 / rows.len() as f32;
        let bias: Vec<usize> = (0..self.outputs)
            .map(|o| params.pos(self.key(o, self.features)))
            .collect();
        let mut z = vec![0f32; self.outputs];
        let mut loss = 0f64;
        let mut at = 0;
        for &i in rows {
            let Row::Sparse(idx, vals) = data.row(i as usize) else {
                unreachable!("a matrix's rows are all dense or all sparse");
            };
            let label = data.labels[i as usize] as usize;
            let n = idx.len();
            let row_slots = &slots[at..at + n * self.outputs];
            at += n * self.outputs;
            for (o, zo) in z.iter_mut().enumerate() {
                let mut s = values[bias[o]];
                for (&p, &xj) in row_slots[o * n..(o + 1) * n].iter().zip(vals) {
                    s += values[p as usize] * xj;
                }
                *zo = s;
            }
            loss += self.errors(&mut z, label);
            // z now holds d(loss)/d(score) per output.
            for (o, &err) in z.iter().enumerate() {
                let e = err * scale;
                if e == 0.0 {
                    continue;
                }
                for (&p, &xj) in row_slots[o * n..(o + 1) * n].iter().zip(vals) {
                    grad[p as usize] += e * xj;
                }
                grad[bias[o]] += e;
            }
        }
        self.add_l2(grad, values);
        loss / rows.len() as f64
    }

    /// Adds the L2 term's gradient.
    fn add_l2(&self, grad: &mut [f32], values: &[f32]) {
        if self.l2 > 0.0 {
            for (g, &w) in grad.iter_mut().zip(values) {
                *g += self.l2 * w;
            }
        }
    }

    /// Scores `z[o] = w_o . x + b_o`, reading weights through `w(o, j)`.
    #[inline]
    fn scores(&self, row: Row<'_>, w: impl Fn(usize, usize) -> f32, z: &mut [f32]) {
        for (o, zo) in z.iter_mut().enumerate() {
            let mut s = w(o, self.features);
            match row {
                Row::Dense(x) => {
                    for (j, &xj) in x.iter().enumerate() {
                        s += w(o, j) * xj;
                    }
                }
                Row::Sparse(idx, vals) => {
                    for (&j, &xj) in idx.iter().zip(vals) {
                        s += w(o, j as usize) * xj;
                    }
                }
            }
            *zo = s;
        }
    }

    /// Turns scores into per-output errors (`p - onehot(label)`) in place and
    /// returns the example's loss.
    fn errors(&self, z: &mut [f32], label: usize) -> f64 {
        match self.loss {
            Loss::Logistic => {
                let s = z[0];
                let y = label as f32;
                z[0] = sigmoid(s) - y;
                f64::from(softplus(s) - y * s)
            }
            Loss::Softmax => softmax_errors(z, label),
        }
    }

    /// Predicted class of one example under full parameters.
    fn predict(&self, params: &[f32], row: Row<'_>, z: &mut [f32]) -> usize {
        self.scores(row, |o, j| params[self.key(o, j) as usize], z);
        match self.loss {
            Loss::Logistic => usize::from(z[0] > 0.0),
            Loss::Softmax => argmax(z),
        }
    }

    /// The predicted class of every example of `data` under full
    /// parameters (`dim()` values).
    pub fn predictions(&self, params: &[f32], data: &Matrix) -> Vec<usize> {
        assert_eq!(params.len(), self.dim() as usize);
        if let Some(net) = &self.net {
            return net.predictions(params, data);
        }
        let mut z = vec![0f32; self.outputs];
        (0..data.rows())
            .map(|i| self.predict(params, data.row(i), &mut z))
            .collect()
    }

    /// Mean loss and accuracy of full parameters (`dim()` values) on `data`.
    pub fn evaluate(&self, params: &[f32], data: &Matrix) -> Evaluation {
        assert_eq!(params.len(), self.dim() as usize);
        if let Some(net) = &self.net {
            return net.evaluate(params, data);
        }
        let mut z = vec![0f32; self.outputs];
        let mut correct = 0usize;
        let mut loss = 0f64;
        for i in 0..data.rows() {
            let row = data.row(i);
            let label = data.labels[i] as usize;
            if self.predict(params, row, &mut z) == label {
                correct += 1;
            }
            loss += self.errors(&mut z, label);
        }
        let n = data.rows().max(1) as f64;
        Evaluation {
            loss: loss / n,
            accuracy: correct as f64 / n,
        }
    }
}

/// A widened multilayer perceptron ([`Model::widen`]) and how to derive its
/// parameters from the old ones.
#[derive(Clone, Debug)]
pub struct Widening {
    /// The widened model (same layout, loss and L2; existing parameters
    /// keep their keys, new ones are appended).
    pub model: Model,
    /// For every key of the new model, indexed by key: `new[k] =
    /// map[k].a * old[map[k].src] + map[k].b`. An existing key reads
    /// itself (factor 1, or its share if its unit was copied); a new key
    /// reads the parameter of the unit it copies.
    pub map: Vec<Affine>,
    /// For every hidden layer, the old unit each unit of the widened layer
    /// copies (old units copy themselves).
    pub sources: Vec<Vec<u32>>,
    /// The old model's number of keys.
    pub old_dim: u32,
}

impl Widening {
    /// The widened parameters (indexed by new key) from the old ones
    /// (indexed by old key).
    pub fn apply(&self, old_by_key: &[f32]) -> Vec<f32> {
        assert_eq!(old_by_key.len(), self.old_dim as usize);
        self.map
            .iter()
            .map(|d| d.a * old_by_key[d.src as usize] + d.b)
            .collect()
    }
}

/// Turns softmax scores into per-output errors (`p - onehot(label)`) in
/// place and returns the example's cross-entropy loss.
pub(super) fn softmax_errors(z: &mut [f32], label: usize) -> f64 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in z.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let p_label = z[label] / sum;
    for (o, v) in z.iter_mut().enumerate() {
        *v = *v / sum - if o == label { 1.0 } else { 0.0 };
    }
    -f64::from(libm::logf(p_label.max(1e-30)))
}

pub(super) fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

#[inline]
fn sigmoid(s: f32) -> f32 {
    if s >= 0.0 {
        1.0 / (1.0 + libm::expf(-s))
    } else {
        let e = libm::expf(s);
        e / (1.0 + e)
    }
}

/// `ln(1 + e^s)` without overflow.
#[inline]
fn softplus(s: f32) -> f32 {
    if s > 0.0 {
        s + libm::log1pf(libm::expf(-s))
    } else {
        libm::log1pf(libm::expf(s))
    }
}

#[cfg(test)]
mod tests {
    use super::super::data::{load, DataKind, DataSpec};
    use super::*;

    /// Plain minibatch SGD on one machine: the reference a parameter server
    /// must match.
    fn sgd(model: &Model, data: &Matrix, epochs: usize, lr: f32, batch: usize) -> Vec<f32> {
        let mut w = vec![0f32; model.dim() as usize];
        let mut g = vec![0f32; w.len()];
        let rows: Vec<u32> = (0..data.rows() as u32).collect();
        for _ in 0..epochs {
            for b in rows.chunks(batch) {
                model.gradient(
                    data,
                    b,
                    ParamView {
                        keys: None,
                        values: &w,
                    },
                    &mut g,
                );
                for (wi, gi) in w.iter_mut().zip(&g) {
                    *wi -= lr * gi;
                }
            }
        }
        w
    }

    #[test]
    fn sgd_reaches_reference_accuracy_on_real_data() {
        // ../shared/reference: C=1 logistic regression scores 0.958 on
        // breast_cancer and 0.967 on digits; plain SGD lands near them.
        let bc = load(DataSpec {
            kind: DataKind::BreastCancer,
            seed: 0,
        });
        let m = Model::new(Loss::Logistic, bc.features, 2, 0.0);
        let w = sgd(&m, &bc.train, 20, 0.1, 32);
        let acc = m.evaluate(&w, &bc.test).accuracy;
        assert!(acc >= 0.94, "breast_cancer accuracy {acc}");

        let dg = load(DataSpec {
            kind: DataKind::Digits,
            seed: 0,
        });
        let m = Model::new(Loss::Softmax, dg.features, 10, 0.0);
        let w = sgd(&m, &dg.train, 20, 0.1, 32);
        let acc = m.evaluate(&w, &dg.test).accuracy;
        assert!(acc >= 0.94, "digits accuracy {acc}");
    }

    #[test]
    fn flops_follow_the_documented_formula() {
        let bc = load(DataSpec {
            kind: DataKind::BreastCancer,
            seed: 0,
        });
        let m = Model::new(Loss::Logistic, bc.features, 2, 0.0);
        assert_eq!(bc.features, 30);
        let f = m.example_flops(30);
        assert_eq!((f.forward, f.backward, f.total()), (64, 62, 126));
        // Proportional to the batch: every dense row costs the same.
        let one = m.batch_flops(&bc.train, &[0, 1, 2, 3], m.dim() as usize);
        let two = m.batch_flops(&bc.train, &[0, 1, 2, 3, 4, 5, 6, 7], m.dim() as usize);
        assert_eq!((one, two), (4 * 126, 8 * 126));
        let dg = load(DataSpec {
            kind: DataKind::Digits,
            seed: 0,
        });
        let s = Model::new(Loss::Softmax, dg.features, 10, 0.5);
        assert_eq!(s.example_flops(64).total(), 10 * (4 * 64 + 6));
        // L2 adds 2 per gradient entry, once per batch.
        let d = s.dim() as usize;
        assert_eq!(s.batch_flops(&dg.train, &[0], d), 2620 + 2 * d as u64);
        // Sparse rows count their own non-zeros.
        let sp = load(DataSpec {
            kind: DataKind::Synthetic {
                features: 2000,
                examples: 400,
                density_ppm: 5000,
                skew_ppm: 0,
            },
            seed: 1,
        });
        let m = Model::new(Loss::Logistic, sp.features, 2, 0.0);
        let rows = [3u32, 17];
        let nnz: usize = rows
            .iter()
            .map(|&i| match sp.train.row(i as usize) {
                Row::Sparse(idx, _) => idx.len(),
                Row::Dense(_) => unreachable!(),
            })
            .sum();
        assert_eq!(
            m.batch_flops(&sp.train, &rows, 0),
            4 * nnz as u64 + 6 * rows.len() as u64
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let dg = load(DataSpec {
            kind: DataKind::Digits,
            seed: 0,
        });
        let m = Model::new(Loss::Softmax, dg.features, 10, 0.01);
        let rows = [0u32, 5, 9];
        let mut w: Vec<f32> = (0..m.dim())
            .map(|k| ((k % 7) as f32 - 3.0) * 0.01)
            .collect();
        let mut g = vec![0f32; w.len()];
        m.gradient(
            &dg.train,
            &rows,
            ParamView {
                keys: None,
                values: &w,
            },
            &mut g,
        );
        let mut scratch = vec![0f32; w.len()];
        for k in [0usize, 64, 65, 300, 649] {
            let h = 1e-2f32;
            let orig = w[k];
            w[k] = orig + h;
            let lp = m.gradient(
                &dg.train,
                &rows,
                ParamView {
                    keys: None,
                    values: &w,
                },
                &mut scratch,
            );
            w[k] = orig - h;
            let lm = m.gradient(
                &dg.train,
                &rows,
                ParamView {
                    keys: None,
                    values: &w,
                },
                &mut scratch,
            );
            w[k] = orig;
            let l2_term = 0.5 * 0.01 * ((orig + h).powi(2) - (orig - h).powi(2)) as f64;
            let numeric = ((lp - lm) + l2_term) / (2.0 * f64::from(h));
            assert!(
                (numeric - f64::from(g[k])).abs() < 2e-3,
                "key {k}: {numeric} vs {}",
                g[k]
            );
        }
    }

    #[test]
    fn sparse_view_gives_the_dense_gradient_on_touched_keys() {
        let d = load(DataSpec {
            kind: DataKind::Synthetic {
                features: 2000,
                examples: 400,
                density_ppm: 5000,
                skew_ppm: 0,
            },
            seed: 1,
        });
        let m = Model::new(Loss::Logistic, d.features, 2, 0.0);
        let rows = [3u32, 17, 42, 99];
        let dense: Vec<f32> = (0..m.dim()).map(|k| (k % 5) as f32 * 0.1).collect();
        let mut gd = vec![0f32; dense.len()];
        let ld = m.gradient(
            &d.train,
            &rows,
            ParamView {
                keys: None,
                values: &dense,
            },
            &mut gd,
        );
        let mut keys = Vec::new();
        m.batch_keys(&d.train, &rows, &mut keys);
        let vals: Vec<f32> = keys.iter().map(|&k| dense[k as usize]).collect();
        let mut gs = vec![0f32; keys.len()];
        let ls = m.gradient(
            &d.train,
            &rows,
            ParamView {
                keys: Some(&keys),
                values: &vals,
            },
            &mut gs,
        );
        assert_eq!(ld, ls);
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(gs[i], gd[k as usize]);
        }
        // The slotted path: the same keys, the same bits, no search.
        let (mut keys2, mut slots) = (Vec::new(), Vec::new());
        m.batch_keys_slotted(&d.train, &rows, &mut keys2, &mut slots);
        assert_eq!(keys2, keys);
        assert!(!slots.is_empty());
        let mut gz = vec![0f32; keys.len()];
        let lz = m.gradient_slotted(&d.train, &rows, &keys, &slots, &vals, &mut gz);
        assert_eq!(lz.to_bits(), ls.to_bits());
        assert!(gz.iter().zip(&gs).all(|(a, b)| a.to_bits() == b.to_bits()));
        let touched: f32 = gs.iter().map(|g| g.abs()).sum();
        let all: f32 = gd.iter().map(|g| g.abs()).sum();
        assert!(
            (touched - all).abs() < 1e-4,
            "untouched keys must have zero gradient"
        );
    }

    /// A hashed layout stores the same model under other keys: training
    /// and evaluation give the same bits, read through the permutation.
    #[test]
    fn a_hashed_layout_trains_the_same_model_under_permuted_keys() {
        let dg = load(DataSpec {
            kind: DataKind::Digits,
            seed: 0,
        });
        let plain = Model::new(Loss::Softmax, dg.features, 10, 0.01);
        let layout = KeyLayout::hashed(plain.dim(), 5);
        let hashed = plain.clone().with_layout(layout.clone());
        let w = sgd(&plain, &dg.train, 2, 0.1, 32);
        let wh = sgd(&hashed, &dg.train, 2, 0.1, 32);
        for (i, &v) in w.iter().enumerate() {
            assert_eq!(v.to_bits(), wh[layout.key(i as u32) as usize].to_bits());
        }
        assert_eq!(plain.evaluate(&w, &dg.test), hashed.evaluate(&wh, &dg.test));
        // Sparse: a minibatch's keys are the permuted ones, sorted, and
        // the slotted gradient is the same, key for key.
        let d = load(DataSpec {
            kind: DataKind::Synthetic {
                features: 3000,
                examples: 400,
                density_ppm: 5000,
                skew_ppm: 1_100_000,
            },
            seed: 1,
        });
        let plain = Model::new(Loss::Logistic, d.features, 2, 0.0);
        let layout = KeyLayout::hashed(plain.dim(), 9);
        let hashed = plain.clone().with_layout(layout.clone());
        let rows = [1u32, 8, 30, 77];
        let params: Vec<f32> = (0..plain.dim()).map(|k| (k % 7) as f32 * 0.1).collect();
        let mut by_key = vec![0f32; params.len()];
        for (i, &v) in params.iter().enumerate() {
            by_key[layout.key(i as u32) as usize] = v;
        }
        let grad = |m: &Model, p: &[f32]| {
            let (mut keys, mut slots) = (Vec::new(), Vec::new());
            m.batch_keys_slotted(&d.train, &rows, &mut keys, &mut slots);
            assert!(keys.windows(2).all(|w| w[0] < w[1]));
            let vals: Vec<f32> = keys.iter().map(|&k| p[k as usize]).collect();
            let mut g = vec![0f32; keys.len()];
            let loss = m.gradient_slotted(&d.train, &rows, &keys, &slots, &vals, &mut g);
            let mut full = vec![0f32; p.len()];
            for (&k, &gi) in keys.iter().zip(&g) {
                full[k as usize] = gi;
            }
            (loss, full)
        };
        let (l, g) = grad(&plain, &params);
        let (lh, gh) = grad(&hashed, &by_key);
        assert_eq!(l.to_bits(), lh.to_bits());
        for (i, &v) in g.iter().enumerate() {
            assert_eq!(v.to_bits(), gh[layout.key(i as u32) as usize].to_bits());
        }
    }
}
