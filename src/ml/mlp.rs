//! A multilayer perceptron (`[model] kind = "mlp"`): one or more hidden
//! layers of relu or tanh units and a softmax output, on dense data; its
//! parameter tables, seeded initialisation and Net2Net widening. The
//! [`super::Model`] type wraps it, so workers and the run layer call the
//! same methods as for the linear models.
//!
//! Shape: layer sizes `n_0 = F` (features), `n_1..n_L` (the hidden
//! widths), `n_{L+1} = C` (classes; breast_cancer's two classes get a
//! two-way softmax). Weight layer `m` (`0..=L`) maps layer `m` to layer
//! `m+1`: a weight for every (to-unit, from-unit) pair and a bias per
//! to-unit.
//!
//! Parameter tables: a *slot* is a position in the canonical order for the
//! current widths, layer `m`, then to-unit, then from-unit, the bias last:
//! slot `start_m + to * (n_m + 1) + from`, `from = n_m` for the bias. So a
//! layer's table is a row-major `n_{m+1} x (n_m + 1)` matrix, which the
//! gradient reads and writes contiguously. Each slot records its logical
//! index (and the key the layout maps it to). A fresh model's logical index
//! is its slot. Widening appends: every existing (layer, to, from)
//! parameter keeps its logical index, and the new ones get the next indices
//! in canonical slot order of the widened model (layer, to, from, bias
//! last). With a hashed layout, appended logical indices are their own
//! keys ([`KeyLayout::key`]), so they land after the original key space.
//!
//! Initialisation ([`super::Model::initial_params`]): Glorot/Xavier uniform weights,
//! `U(-r, r)` with `r = sqrt(6 / (fan_in + fan_out))` for every layer
//! (relu and tanh alike, as scikit-learn's `MLPClassifier`; He's
//! `sqrt(6 / fan_in)` for relu was no better on digits), biases 0. Each
//! value is a pure function of the seed and its logical index (a SplitMix64
//! hash), so any subset of keys can be computed on its own.
//!
//! Widening ([`super::Model::widen`], Net2Net's function-preserving widening, Chen
//! et al. 2016): new unit `u` of hidden layer `l` copies an old unit
//! `g(u)` of that layer, drawn uniformly from the seed (old units copy
//! themselves). With `g` the identity on the input and output layers and
//! `c(j)` the number of units copying old unit `j` (itself included), the
//! widened parameters are
//!
//! ```text
//! W'_m[to, from] = W_m[g(to), g(from)] * s_m(from, g(to))
//! b'_m[to]       = b_m[g(to)]
//! ```
//!
//! where `s` splits the outgoing weights of `j`'s copies: `1` when
//! `c(j) = 1`, else `(1 + 0.1 (r(from) - mean r)) / c(j)`, `r` seeded in
//! `[-1, 1]` per (weight layer, from-unit, old to-unit) and the mean over
//! `j`'s copies, so the shares of a group sum to 1. Every new value is one
//! old value times a factor: a per-key affine map `new[k] = a old[src] +
//! b` (here `b = 0`), which the protocol can apply range by range. Since
//! copies have equal activations, any shares summing to 1 compute the same
//! function; an even split `1/c` would too, but then the copies' gradients
//! would stay equal forever and they could never diverge. Unequal shares
//! give each copy a different error, so copies part after the first step
//! while the function is kept exactly (up to rounding): perturbing the
//! incoming weights instead would change the function. Several layers
//! widening at once compose: a new unit of layer `l+1` copying `j` reads
//! `j`'s weights from `g(from)` and takes the split share of layer `l`'s
//! copies, by the same formula.
//!
//! Floating-point work ([`super::Model::example_flops`], counted as the code does
//! it): a hidden layer of `n x h` weights (`n` the first layer's non-zeros
//! or the layer below's width) costs `2nh + h` forward (a multiply-add per
//! weight, an activation per unit) and `2nh + 2h` backward (a multiply-add
//! per weight gradient, the bias, the activation's derivative), plus `2nh`
//! for the errors passed down to the layer below, which every layer but the
//! first does; the softmax output over `n = n_L` inputs counts as a linear
//! softmax model (`C (2n + 4)` forward, `C (2n + 2)` backward) plus `2nC`
//! errors passed down. So backward is about twice forward on every layer
//! but the first, which passes nothing down.
//!
//! May import: `crate::ml`, std, libm. Never: the protocol (`crate::core`),
//! a host (`crate::sim`, `crate::net`).

use super::data::{Matrix, Row};
use super::model::{argmax, softmax_errors, Evaluation, Flops, ParamView};
use super::placement::{mix, KeyLayout};
use std::ops::Range;

/// The hidden units' nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(0, s)`.
    Relu,
    /// `tanh(s)`.
    Tanh,
}

impl Activation {
    #[inline]
    fn apply(self, s: f32) -> f32 {
        match self {
            Activation::Relu => s.max(0.0),
            Activation::Tanh => libm::tanhf(s),
        }
    }

    /// The derivative, from the activation's value `a`.
    #[inline]
    fn derivative(self, a: f32) -> f32 {
        match self {
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - a * a,
        }
    }
}

/// How one parameter of a widened model derives from the old model's:
/// `new = a * old[src] + b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// The old key it reads.
    pub src: u32,
    /// Factor: 1 for a parameter copied whole, the split share for an
    /// outgoing weight of a copied unit.
    pub a: f32,
    /// Offset (0 in the present scheme; part of the form so that a
    /// perturbation by offset needs no new protocol).
    pub b: f32,
}

/// Scale of the seeded deviation of an outgoing weight's share from the
/// even split: `(1 + SPLIT_JITTER (r - mean r)) / c` with `r` in `[-1, 1]`
/// (module docs), so within 20% of `1/c`: enough for copies to part at
/// once, small beside the weight itself.
const SPLIT_JITTER: f64 = 0.1;

/// Domain tags of the seeded hashes, so that initial values, copied units
/// and split shares drawn from one seed are independent.
const TAG_INIT: u64 = 0x1a17_0000_0000_0001;
const TAG_SOURCE: u64 = 0x1a17_0000_0000_0002;
const TAG_SPLIT: u64 = 0x1a17_0000_0000_0003;

/// A SplitMix64 hash of a seed, a domain tag and some integers.
fn hash(seed: u64, tag: u64, parts: &[u64]) -> u64 {
    let mut h = mix(seed ^ tag);
    for &p in parts {
        h = mix(h ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    h
}

/// A hash's top 53 bits as a uniform value in `[-1, 1)`.
fn symmetric_unit(h: u64) -> f64 {
    (h >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
}

/// What [`Mlp::widen`] gives: the widened perceptron, how each of its keys
/// derives from the old keys (indexed by new key), and for every hidden
/// layer the old unit each of its units copies.
pub(crate) struct Widened {
    pub(crate) net: Mlp,
    pub(crate) map: Vec<Affine>,
    pub(crate) sources: Vec<Vec<u32>>,
}

/// A multilayer perceptron's shape and parameter tables (module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mlp {
    /// Units per layer: features, the hidden widths, classes.
    sizes: Vec<usize>,
    activation: Activation,
    /// First slot of each weight layer, and the number of slots last.
    starts: Vec<usize>,
    /// Slot -> logical index.
    logical: Vec<u32>,
    /// Slot -> key (the logical index through the model's layout).
    keys: Vec<u32>,
}

/// First slot of each weight layer for the given layer sizes, and the
/// total last.
fn starts_of(sizes: &[usize]) -> Vec<usize> {
    let mut starts = vec![0];
    for w in sizes.windows(2) {
        starts.push(starts.last().unwrap() + (w[0] + 1) * w[1]);
    }
    starts
}

/// A dot product in eight lanes (a fixed order, so the same bits on every
/// machine, and one the compiler can vectorise).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl Mlp {
    /// A fresh perceptron (logical index = slot, identity keys), or why
    /// the shape is not one.
    pub(crate) fn new(
        features: usize,
        classes: usize,
        hidden: &[usize],
        activation: Activation,
    ) -> Result<Mlp, String> {
        if features == 0 {
            return Err("a multilayer perceptron needs at least one feature".into());
        }
        if classes < 2 {
            return Err(format!(
                "a multilayer perceptron needs at least 2 classes, not {classes}"
            ));
        }
        if hidden.is_empty() {
            return Err("a multilayer perceptron needs at least one hidden layer".into());
        }
        if let Some(i) = hidden.iter().position(|&h| h == 0) {
            return Err(format!("hidden layer {} has no units", i + 1));
        }
        let sizes: Vec<usize> = std::iter::once(features)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(classes))
            .collect();
        let starts = starts_of(&sizes);
        let dim = *starts.last().unwrap();
        if dim > u32::MAX as usize {
            return Err(format!("{dim} parameters do not fit 32-bit keys"));
        }
        let logical: Vec<u32> = (0..dim as u32).collect();
        Ok(Mlp {
            sizes,
            activation,
            starts,
            keys: logical.clone(),
            logical,
        })
    }

    /// The same perceptron with its logical indices mapped through
    /// `layout`.
    pub(crate) fn relayout(&mut self, layout: &KeyLayout) {
        self.keys = self.logical.iter().map(|&i| layout.key(i)).collect();
    }

    /// Number of parameters.
    pub(crate) fn dim(&self) -> usize {
        self.logical.len()
    }

    /// The hidden layers' widths.
    pub(crate) fn hidden(&self) -> &[usize] {
        &self.sizes[1..self.sizes.len() - 1]
    }

    /// The hidden units' nonlinearity.
    pub(crate) fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of weight layers (hidden layers + 1).
    fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The slot of weight layer `m`'s weight from `from` to `to` (its bias
    /// for `from == n_m`).
    fn slot(&self, m: usize, to: usize, from: usize) -> usize {
        assert!(to < self.sizes[m + 1] && from <= self.sizes[m]);
        self.starts[m] + to * (self.sizes[m] + 1) + from
    }

    /// The key of weight layer `m`'s weight from unit `from` of layer `m`
    /// to unit `to` of layer `m + 1` (the bias for `from == n_m`).
    pub(crate) fn key(&self, m: usize, to: usize, from: usize) -> u32 {
        self.keys[self.slot(m, to, from)]
    }

    /// The logical index of the same parameter.
    pub(crate) fn logical(&self, m: usize, to: usize, from: usize) -> u32 {
        self.logical[self.slot(m, to, from)]
    }

    /// Units of all layers above the input (activations and errors are
    /// kept in buffers of this length, layer after layer).
    fn units(&self) -> usize {
        self.sizes[1..].iter().sum()
    }

    /// Where layer `m + 1`'s units start in such a buffer.
    fn unit_start(&self, m: usize) -> usize {
        self.sizes[1..=m].iter().sum()
    }

    /// Example `i`'s features, which must be dense.
    fn dense_row<'a>(&self, data: &'a Matrix, i: u32) -> &'a [f32] {
        match data.row(i as usize) {
            Row::Dense(x) => {
                assert_eq!(x.len(), self.sizes[0], "features of example {i}");
                x
            }
            Row::Sparse(..) => panic!(
                "a multilayer perceptron takes dense data only (Model::check_data rejects sparse)"
            ),
        }
    }

    /// The parameters in slot order, read from a view that holds them all.
    /// Also whether a key is its own position in the view.
    fn gather(&self, params: ParamView<'_>) -> (Vec<f32>, bool) {
        let dim = self.dim();
        let direct = match params.keys {
            None => true,
            // Sorted distinct keys of 0..dim, as many as dim: all of them.
            Some(keys) => {
                keys.len() == dim
                    && keys.first() == Some(&0)
                    && keys.last() == Some(&(dim as u32 - 1))
            }
        };
        let w = if direct {
            assert_eq!(params.values.len(), dim, "a perceptron reads every key");
            self.keys
                .iter()
                .map(|&k| params.values[k as usize])
                .collect()
        } else {
            self.keys
                .iter()
                .map(|&k| params.values[params.pos(k)])
                .collect()
        };
        (w, direct)
    }

    /// Forward pass: every layer's outputs into `acts` (hidden layers
    /// activated, the output layer's raw scores last).
    fn forward(&self, w: &[f32], x: &[f32], acts: &mut [f32]) {
        let layers = self.layers();
        let mut at = 0;
        for m in 0..layers {
            let (fan_in, fan_out) = (self.sizes[m], self.sizes[m + 1]);
            let (done, rest) = acts.split_at_mut(at);
            let input = if m == 0 { x } else { &done[at - fan_in..] };
            let table = &w[self.starts[m]..self.starts[m + 1]];
            let hidden = m + 1 < layers;
            for (o, row) in rest[..fan_out]
                .iter_mut()
                .zip(table.chunks_exact(fan_in + 1))
            {
                let s = row[fan_in] + dot(&row[..fan_in], input);
                *o = if hidden { self.activation.apply(s) } else { s };
            }
            at += fan_out;
        }
    }

    /// Backward pass of one example: `deltas` holds d(loss)/d(score) of the
    /// output layer (scaled for the batch) in its last segment; adds the
    /// weight gradients into `gw` (slot order), using the rest of `deltas`
    /// for the errors of the hidden layers.
    fn backward(&self, w: &[f32], x: &[f32], acts: &[f32], deltas: &mut [f32], gw: &mut [f32]) {
        for m in (0..self.layers()).rev() {
            let (fan_in, fan_out) = (self.sizes[m], self.sizes[m + 1]);
            let at = self.unit_start(m);
            let input = if m == 0 { x } else { &acts[at - fan_in..at] };
            let (below, here) = deltas.split_at_mut(at);
            let mut down = if m > 0 {
                let d = &mut below[at - fan_in..];
                d.fill(0.0);
                Some(d)
            } else {
                None
            };
            let (start, width) = (self.starts[m], fan_in + 1);
            for (to, &d) in here[..fan_out].iter().enumerate() {
                if d == 0.0 {
                    continue;
                }
                let row = start + to * width..start + (to + 1) * width;
                let g = &mut gw[row.clone()];
                for (gi, &a) in g[..fan_in].iter_mut().zip(input) {
                    *gi += d * a;
                }
                g[fan_in] += d;
                if let Some(down) = down.as_deref_mut() {
                    for (di, &wi) in down.iter_mut().zip(&w[row]) {
                        *di += d * wi;
                    }
                }
            }
            if let Some(down) = down {
                for (di, &a) in down.iter_mut().zip(input) {
                    *di *= self.activation.derivative(a);
                }
            }
        }
    }

    /// The mean gradient over `rows` into `grad` (aligned with
    /// `params.values`, which must hold every key), without the L2 term;
    /// returns the mean loss.
    pub(crate) fn gradient(
        &self,
        data: &Matrix,
        rows: &[u32],
        params: ParamView<'_>,
        grad: &mut [f32],
    ) -> f64 {
        assert_eq!(grad.len(), params.values.len());
        grad.fill(0.0);
        if rows.is_empty() {
            return 0.0;
        }
        let (w, direct) = self.gather(params);
        let mut gw = vec![0f32; w.len()];
        let mut acts = vec![0f32; self.units()];
        let mut deltas = vec![0f32; acts.len()];
        let out = self.unit_start(self.layers() - 1)..acts.len();
        let scale = 1.0 / rows.len() as f32;
        let mut loss = 0f64;
        for &i in rows {
            let x = self.dense_row(data, i);
            self.forward(&w, x, &mut acts);
            let z = &mut deltas[out.clone()];
            z.copy_from_slice(&acts[out.clone()]);
            loss += softmax_errors(z, data.labels[i as usize] as usize);
            // z now holds d(loss)/d(score) per output.
            for e in z.iter_mut() {
                *e *= scale;
            }
            self.backward(&w, x, &acts, &mut deltas, &mut gw);
        }
        for (&k, &g) in self.keys.iter().zip(&gw) {
            let p = if direct { k as usize } else { params.pos(k) };
            grad[p] = g;
        }
        loss / rows.len() as f64
    }

    /// Mean loss and accuracy of full parameters (indexed by key).
    pub(crate) fn evaluate(&self, params: &[f32], data: &Matrix) -> Evaluation {
        let (w, _) = self.gather(ParamView {
            keys: None,
            values: params,
        });
        let mut acts = vec![0f32; self.units()];
        let out = self.unit_start(self.layers() - 1)..acts.len();
        let mut z = vec![0f32; out.len()];
        let (mut correct, mut loss) = (0usize, 0f64);
        for i in 0..data.rows() {
            let x = self.dense_row(data, i as u32);
            self.forward(&w, x, &mut acts);
            z.copy_from_slice(&acts[out.clone()]);
            let label = data.labels[i] as usize;
            if argmax(&z) == label {
                correct += 1;
            }
            loss += softmax_errors(&mut z, label);
        }
        let n = data.rows().max(1) as f64;
        Evaluation {
            loss: loss / n,
            accuracy: correct as f64 / n,
        }
    }

    /// The predicted class of every example of `data`.
    pub(crate) fn predictions(&self, params: &[f32], data: &Matrix) -> Vec<usize> {
        let (w, _) = self.gather(ParamView {
            keys: None,
            values: params,
        });
        let mut acts = vec![0f32; self.units()];
        let out = self.unit_start(self.layers() - 1)..acts.len();
        (0..data.rows())
            .map(|i| {
                self.forward(&w, self.dense_row(data, i as u32), &mut acts);
                argmax(&acts[out.clone()])
            })
            .collect()
    }

    /// Floating-point work of one example with `nnz` non-zero features
    /// (module docs).
    pub(crate) fn example_flops(&self, nnz: usize) -> Flops {
        let mut f = Flops::default();
        let layers = self.layers();
        for m in 0..layers {
            let n = if m == 0 { nnz } else { self.sizes[m] } as u64;
            let h = self.sizes[m + 1] as u64;
            if m + 1 < layers {
                f.forward += 2 * n * h + h;
                f.backward += 2 * n * h + 2 * h;
            } else {
                f.forward += h * (2 * n + 4);
                f.backward += h * (2 * n + 2);
            }
            if m > 0 {
                f.backward += 2 * n * h;
            }
        }
        f
    }

    /// Initial values of the keys in `keys` (module docs), in key order.
    pub(crate) fn initial_params(&self, seed: u64, keys: Range<u32>) -> Vec<f32> {
        let mut v = vec![0f32; keys.len()];
        for m in 0..self.layers() {
            let (fan_in, fan_out) = (self.sizes[m], self.sizes[m + 1]);
            let bound = libm::sqrt(6.0 / (fan_in + fan_out) as f64);
            for s in self.starts[m]..self.starts[m + 1] {
                let (k, from) = (self.keys[s], (s - self.starts[m]) % (fan_in + 1));
                if from == fan_in || !keys.contains(&k) {
                    continue; // biases start at 0
                }
                let u = symmetric_unit(hash(seed, TAG_INIT, &[u64::from(self.logical[s])]));
                v[(k - keys.start) as usize] = (bound * u) as f32;
            }
        }
        v
    }

    /// The perceptron with hidden widths `hidden` (each at least the
    /// present one), its keys under `layout`; for every new key, how it
    /// derives from the old keys; and for every hidden layer, the old unit
    /// each new-layer unit copies (module docs).
    pub(crate) fn widen(
        &self,
        hidden: &[usize],
        seed: u64,
        layout: &KeyLayout,
    ) -> Result<Widened, String> {
        let old_hidden = self.hidden();
        if hidden.len() != old_hidden.len() {
            return Err(format!(
                "widening to {} hidden layers {hidden:?}, but the model has {} {old_hidden:?}; \
                 widening keeps the number of layers",
                hidden.len(),
                old_hidden.len(),
            ));
        }
        for (i, (&new, &old)) in hidden.iter().zip(old_hidden).enumerate() {
            if new < old {
                return Err(format!(
                    "hidden layer {} would narrow from {old} to {new} units; a layer may only grow",
                    i + 1
                ));
            }
        }
        let mut sizes = self.sizes.clone();
        sizes[1..=hidden.len()].copy_from_slice(hidden);
        // The old unit each unit copies, per layer (the identity on the
        // input and output layers and on the old units).
        let sources: Vec<Vec<u32>> = sizes
            .iter()
            .zip(&self.sizes)
            .enumerate()
            .map(|(l, (&new, &old))| {
                (0..new)
                    .map(|u| {
                        if u < old {
                            u as u32
                        } else {
                            (hash(seed, TAG_SOURCE, &[l as u64, u as u64]) % old as u64) as u32
                        }
                    })
                    .collect()
            })
            .collect();
        // The units copying each old unit, itself first.
        let copies: Vec<Vec<Vec<u32>>> = sources
            .iter()
            .zip(&self.sizes)
            .map(|(src, &old)| {
                let mut c = vec![Vec::new(); old];
                for (u, &j) in src.iter().enumerate() {
                    c[j as usize].push(u as u32);
                }
                c
            })
            .collect();
        // The share of weight layer m's outgoing weight of unit `from`
        // (layer m, new index) into old unit `to` of layer m + 1.
        let share = |m: usize, from: usize, to: usize| -> f32 {
            let group = &copies[m][sources[m][from] as usize];
            if group.len() == 1 {
                return 1.0;
            }
            let r = |u: u32| {
                symmetric_unit(hash(seed, TAG_SPLIT, &[m as u64, u64::from(u), to as u64]))
            };
            let c = group.len() as f64;
            let mean = group.iter().map(|&u| r(u)).sum::<f64>() / c;
            ((1.0 + SPLIT_JITTER * (r(from as u32) - mean)) / c) as f32
        };

        let starts = starts_of(&sizes);
        let dim = *starts.last().unwrap();
        if dim > u32::MAX as usize {
            return Err(format!("{dim} parameters do not fit 32-bit keys"));
        }
        let mut next = self.dim() as u32;
        let mut logical = Vec::with_capacity(dim);
        for m in 0..self.layers() {
            let (fan_in, fan_out) = (sizes[m], sizes[m + 1]);
            let (old_in, old_out) = (self.sizes[m], self.sizes[m + 1]);
            for to in 0..fan_out {
                for from in 0..=fan_in {
                    let old_from = if from == fan_in {
                        Some(old_in)
                    } else {
                        (from < old_in).then_some(from)
                    };
                    logical.push(match old_from {
                        Some(f) if to < old_out => self.logical(m, to, f),
                        _ => {
                            next += 1;
                            next - 1
                        }
                    });
                }
            }
        }
        assert_eq!(next as usize, dim, "every new parameter is appended");
        let mut wide = Mlp {
            sizes,
            activation: self.activation,
            starts,
            keys: Vec::new(),
            logical,
        };
        wide.relayout(layout);

        let unset = Affine {
            src: u32::MAX,
            a: 0.0,
            b: 0.0,
        };
        let mut map = vec![unset; dim];
        for m in 0..wide.layers() {
            for to in 0..wide.sizes[m + 1] {
                let t = sources[m + 1][to] as usize;
                // Each from-unit's source, then the bias (None).
                let froms = sources[m].iter().map(|&j| Some(j as usize));
                for (from, j) in froms.chain(std::iter::once(None)).enumerate() {
                    let (f, a) = match j {
                        Some(j) => (j, share(m, from, t)),
                        None => (self.sizes[m], 1.0),
                    };
                    let k = wide.key(m, to, from) as usize;
                    assert_eq!(map[k], unset, "key {k} derived twice");
                    map[k] = Affine {
                        src: self.key(m, t, f),
                        a,
                        b: 0.0,
                    };
                }
            }
        }
        Ok(Widened {
            net: wide,
            map,
            sources: sources[1..=hidden.len()].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::data::{load, DataKind, DataSpec, Dataset};
    use super::super::model::Model;
    use super::*;
    use std::sync::Arc;

    fn digits(seed: u64) -> Arc<Dataset> {
        load(DataSpec {
            kind: DataKind::Digits,
            seed,
        })
    }

    fn dense_view(values: &[f32]) -> ParamView<'_> {
        ParamView { keys: None, values }
    }

    /// Plain minibatch SGD from `w`: step `s` takes the `s`-th batch of
    /// `batch` training rows, cycling over the (shuffled) training split.
    fn sgd(m: &Model, data: &Matrix, w: &mut [f32], steps: usize, lr: f32, batch: usize) {
        let rows: Vec<u32> = (0..data.rows() as u32).collect();
        let batches: Vec<&[u32]> = rows.chunks(batch).collect();
        let mut g = vec![0f32; w.len()];
        for s in 0..steps {
            m.gradient(data, batches[s % batches.len()], dense_view(w), &mut g);
            for (wi, gi) in w.iter_mut().zip(&g) {
                *wi -= lr * gi;
            }
        }
    }

    /// An independent f64 reference of the mean loss (plus the L2 term),
    /// with parameters in slot order (a fresh model under the identity
    /// layout, whose keys are its slots).
    fn reference_loss(
        sizes: &[usize],
        act: Activation,
        w: &[f64],
        data: &Matrix,
        rows: &[u32],
        l2: f64,
    ) -> f64 {
        let mut total = 0.0;
        for &i in rows {
            let Row::Dense(x) = data.row(i as usize) else {
                unreachable!()
            };
            let mut a: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let mut at = 0;
            for m in 0..sizes.len() - 1 {
                let (n_in, n_out) = (sizes[m], sizes[m + 1]);
                let mut next = vec![0.0; n_out];
                for (to, z) in next.iter_mut().enumerate() {
                    let row = &w[at + to * (n_in + 1)..at + (to + 1) * (n_in + 1)];
                    *z = row[n_in] + row[..n_in].iter().zip(&a).map(|(p, q)| p * q).sum::<f64>();
                    if m + 2 < sizes.len() {
                        *z = match act {
                            Activation::Relu => z.max(0.0),
                            Activation::Tanh => z.tanh(),
                        };
                    }
                }
                at += (n_in + 1) * n_out;
                a = next;
            }
            let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = a.iter().map(|z| (z - max).exp()).sum::<f64>().ln() + max;
            total += log_sum - a[data.labels[i as usize] as usize];
        }
        total / rows.len() as f64 + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn gradient_matches_f64_finite_differences() {
        let dg = digits(0);
        let rows = [0u32, 5, 9, 13];
        let l2 = 0.01f32;
        for act in [Activation::Relu, Activation::Tanh] {
            for hidden in [&[7usize][..], &[7, 5]] {
                let m = Model::mlp(64, 10, hidden, act, l2).unwrap();
                let sizes: Vec<usize> = [64].iter().chain(hidden).chain(&[10]).copied().collect();
                // Seeded weights, and biases off zero so that they matter.
                let mut w = m.initial_params(3);
                for (k, v) in w.iter_mut().enumerate() {
                    *v += 0.05 * libm::sinf(k as f32);
                }
                let mut g = vec![0f32; w.len()];
                let loss = m.gradient(&dg.train, &rows, dense_view(&w), &mut g);
                let mut p: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
                let plain = reference_loss(&sizes, act, &p, &dg.train, &rows, 0.0);
                assert!(
                    (plain - loss).abs() < 1e-5,
                    "{act:?} {hidden:?}: loss {loss} vs {plain}"
                );
                let h = 1e-5;
                for k in 0..p.len() {
                    let orig = p[k];
                    p[k] = orig + h;
                    let up = reference_loss(&sizes, act, &p, &dg.train, &rows, f64::from(l2));
                    p[k] = orig - h;
                    let down = reference_loss(&sizes, act, &p, &dg.train, &rows, f64::from(l2));
                    p[k] = orig;
                    let numeric = (up - down) / (2.0 * h);
                    let analytic = f64::from(g[k]);
                    assert!(
                        (numeric - analytic).abs() <= 1e-4 + 1e-3 * numeric.abs(),
                        "{act:?} {hidden:?} key {k}: numeric {numeric} vs analytic {analytic}"
                    );
                }
            }
        }
    }

    /// ../shared/reference: scikit-learn's MLPClassifier with 64 units
    /// scores 0.971-0.982 on digits; plain SGD (batch 32, rate 0.1, 600
    /// steps) 0.949-0.976.
    #[test]
    fn sgd_reaches_reference_accuracy_on_real_data() {
        for act in [Activation::Relu, Activation::Tanh] {
            for seed in 1..=3u64 {
                for (kind, floor) in [(DataKind::Digits, 0.95), (DataKind::BreastCancer, 0.94)] {
                    let d = load(DataSpec { kind, seed });
                    let m = Model::mlp(d.features, d.classes, &[64], act, 0.0).unwrap();
                    let mut w = m.initial_params(seed);
                    sgd(&m, &d.train, &mut w, 600, 0.1, 32);
                    let acc = m.evaluate(&w, &d.test).accuracy;
                    eprintln!("{kind:?} {act:?} seed {seed}: {acc:.4}");
                    assert!(acc >= floor, "{kind:?} seed {seed}: accuracy {acc}");
                }
            }
        }
    }

    /// Every test example's output scores under full parameters.
    fn scores(m: &Model, by_key: &[f32], data: &Matrix) -> Vec<Vec<f32>> {
        let net = m.net().unwrap();
        let (w, _) = net.gather(dense_view(by_key));
        let mut acts = vec![0f32; net.units()];
        let out = net.unit_start(net.layers() - 1)..acts.len();
        (0..data.rows() as u32)
            .map(|i| {
                net.forward(&w, net.dense_row(data, i), &mut acts);
                acts[out.clone()].to_vec()
            })
            .collect()
    }

    /// Every (weight layer, to, from) of a model's shape, in canonical
    /// order.
    fn params(sizes: &[usize]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for m in 0..sizes.len() - 1 {
            for to in 0..sizes[m + 1] {
                for from in 0..=sizes[m] {
                    v.push((m, to, from));
                }
            }
        }
        v
    }

    fn sizes_of(m: &Model) -> Vec<usize> {
        m.net().unwrap().sizes.clone()
    }

    /// A model trained a little from its seeded start (biases non-zero,
    /// units distinct), and its parameters.
    fn trained(hidden: &[usize], act: Activation, layout_seed: Option<u64>) -> (Model, Vec<f32>) {
        let dg = digits(2);
        let mut m = Model::mlp(64, 10, hidden, act, 0.0).unwrap();
        if let Some(s) = layout_seed {
            let dim = m.dim();
            m = m.with_layout(KeyLayout::hashed(dim, s));
        }
        let mut w = m.initial_params(7);
        sgd(&m, &dg.train, &mut w, 40, 0.1, 32);
        (m, w)
    }

    /// The widened model computes the old function: the same prediction
    /// for every test example, scores and loss equal up to rounding.
    fn assert_same_function(old: &Model, w: &[f32], new: &Model, v: &[f32], what: &str) {
        let dg = digits(2);
        let (a, b) = (scores(old, w, &dg.test), scores(new, v, &dg.test));
        for (i, (za, zb)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                argmax(za),
                argmax(zb),
                "{what}: example {i} {za:?} vs {zb:?}"
            );
            for (x, y) in za.iter().zip(zb) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                    "{what}: example {i} {x} vs {y}"
                );
            }
        }
        let (ea, eb) = (old.evaluate(w, &dg.test), new.evaluate(v, &dg.test));
        assert_eq!(ea.accuracy, eb.accuracy, "{what}");
        assert!(
            (ea.loss - eb.loss).abs() <= 1e-5 * ea.loss,
            "{what}: loss {} vs {}",
            ea.loss,
            eb.loss
        );
    }

    #[test]
    fn widening_keeps_the_function_and_appends_keys() {
        let cases: [(&[usize], &[usize]); 4] = [
            (&[16], &[24]),
            (&[16], &[45]),
            (&[16, 12], &[24, 20]),
            (&[16, 12], &[16, 30]),
        ];
        for act in [Activation::Relu, Activation::Tanh] {
            for (from, to) in cases {
                let what = format!("{act:?} {from:?} -> {to:?}");
                let (m, w) = trained(from, act, None);
                let wide = m.widen(to, 11).unwrap();
                let n = &wide.model;
                assert_eq!(n.hidden(), Some(to), "{what}");
                let v = wide.apply(&w);
                assert_eq!(v.len(), n.dim() as usize);
                assert_same_function(&m, &w, n, &v, &what);
                // Existing parameters keep their logical indices and keys
                // and read themselves.
                let old_dim = m.dim();
                for (l, t, f) in params(&sizes_of(&m)) {
                    // The bias moves to the widened layer's bias slot.
                    let nf = if f == sizes_of(&m)[l] {
                        sizes_of(n)[l]
                    } else {
                        f
                    };
                    let k = m.weight_key(l, t, f);
                    assert_eq!(n.weight_key(l, t, nf), k, "{what}");
                    assert_eq!(n.weight_logical(l, t, nf), m.weight_logical(l, t, f));
                    assert_eq!(wide.map[k as usize].src, k, "{what}: key {k}");
                }
                // New parameters are appended, in canonical order.
                let fresh: Vec<u32> = params(&sizes_of(n))
                    .into_iter()
                    .map(|(l, t, f)| n.weight_logical(l, t, f))
                    .filter(|&i| i >= old_dim)
                    .collect();
                assert_eq!(fresh, (old_dim..n.dim()).collect::<Vec<_>>(), "{what}");
            }
        }
    }

    #[test]
    fn new_units_copy_their_source_and_split_its_outgoing_weights() {
        let (m, w) = trained(&[16, 12], Activation::Tanh, None);
        let wide = m.widen(&[24, 20], 5).unwrap();
        let (n, v) = (&wide.model, wide.apply(&w));
        let (old, new) = (sizes_of(&m), sizes_of(n));
        for l in 1..=2 {
            let src = &wide.sources[l - 1];
            assert_eq!(src.len(), new[l]);
            assert!(src[..old[l]]
                .iter()
                .enumerate()
                .all(|(u, &j)| u as u32 == j));
            assert!(src[old[l]..].iter().all(|&j| (j as usize) < old[l]));
            // Incoming weights and bias: the source unit's.
            for (u, &j) in src.iter().enumerate().skip(old[l]) {
                let j = j as usize;
                for f in 0..=new[l - 1] {
                    let (a, b) = (n.weight_key(l - 1, u, f), n.weight_key(l - 1, j, f));
                    assert_eq!(
                        v[a as usize].to_bits(),
                        v[b as usize].to_bits(),
                        "layer {l} unit {u} from {f}"
                    );
                }
            }
            // Outgoing weights: the shares of a source's copies sum to 1,
            // unevenly (the perturbation), and add up to the old weight.
            let mut uneven = 0;
            for j in 0..old[l] {
                let group: Vec<usize> = (0..new[l]).filter(|&u| src[u] as usize == j).collect();
                for t in 0..old[l + 1] {
                    let shares: Vec<f32> = group
                        .iter()
                        .map(|&u| wide.map[n.weight_key(l, t, u) as usize].a)
                        .collect();
                    let sum: f32 = shares.iter().sum();
                    assert!(
                        (sum - 1.0).abs() < 1e-6,
                        "layer {l} unit {j} to {t}: {shares:?}"
                    );
                    let even = 1.0 / group.len() as f32;
                    uneven += shares.iter().filter(|&&a| (a - even).abs() > 1e-3).count();
                    // Two layers at once: a copy in layer l + 1 reads the
                    // same split weights as its source.
                    for to in (0..new[l + 1])
                        .filter(|&to| wide.sources.get(l).map_or(to == t, |s| s[to] as usize == t))
                    {
                        let total: f32 = group
                            .iter()
                            .map(|&u| v[n.weight_key(l, to, u) as usize])
                            .sum();
                        let before = w[m.weight_key(l, t, j) as usize];
                        assert!(
                            (total - before).abs() <= 1e-6 * (1.0 + before.abs()),
                            "layer {l} unit {j} -> {to}: {total} vs {before}"
                        );
                    }
                }
            }
            assert!(uneven > 0, "layer {l}: every split even");
        }
    }

    #[test]
    fn widening_twice_keeps_the_function_and_the_indices() {
        let (m, w) = trained(&[10, 8], Activation::Relu, None);
        let once = m.widen(&[14, 8], 1).unwrap();
        let v1 = once.apply(&w);
        let twice = once.model.widen(&[14, 15], 2).unwrap();
        let v2 = twice.apply(&v1);
        assert_same_function(&m, &w, &twice.model, &v2, "twice");
        let n = &twice.model;
        for (l, t, f) in params(&sizes_of(&once.model)) {
            let nf = if f == sizes_of(&once.model)[l] {
                sizes_of(n)[l]
            } else {
                f
            };
            assert_eq!(
                n.weight_logical(l, t, nf),
                once.model.weight_logical(l, t, f)
            );
        }
    }

    #[test]
    fn narrowing_and_other_shapes_are_errors() {
        let m = Model::mlp(64, 10, &[16, 12], Activation::Relu, 0.0).unwrap();
        let e = m.widen(&[16, 8], 1).unwrap_err();
        assert!(
            e.contains("hidden layer 2") && e.contains("12") && e.contains('8'),
            "{e}"
        );
        let e = m.widen(&[32], 1).unwrap_err();
        assert!(e.contains("1 hidden layers") && e.contains("has 2"), "{e}");
        let linear = Model::new(super::super::model::Loss::Softmax, 64, 10, 0.0);
        assert!(linear.widen(&[8], 1).is_err());
        assert!(Model::mlp(64, 10, &[], Activation::Relu, 0.0).is_err());
        assert!(Model::mlp(64, 10, &[8, 0], Activation::Relu, 0.0)
            .unwrap_err()
            .contains("hidden layer 2"));
        assert!(Model::mlp(64, 1, &[8], Activation::Relu, 0.0).is_err());
        // Widening to the same widths is the identity.
        let same = m.widen(&[16, 12], 1).unwrap();
        let w = m.initial_params(4);
        assert_eq!(same.apply(&w), w);
    }

    /// Unequal shares of the outgoing weights make copies part; the even
    /// Net2Net split (the control) keeps them equal forever.
    #[test]
    fn copies_diverge_after_training() {
        let dg = digits(2);
        for act in [Activation::Relu, Activation::Tanh] {
            let (m, w) = trained(&[16], act, None);
            let wide = m.widen(&[24], 3).unwrap();
            let n = &wide.model;
            let src = &wide.sources[0];
            let incoming = |v: &[f32], u: usize| -> Vec<u32> {
                (0..=64)
                    .map(|f| v[n.weight_key(0, u, f) as usize].to_bits())
                    .collect()
            };
            let mut even = wide.clone();
            for u in 0..24 {
                let c = src.iter().filter(|&&j| j == src[u]).count();
                for t in 0..10 {
                    even.map[n.weight_key(1, t, u) as usize].a = 1.0 / c as f32;
                }
            }
            for (map, diverge) in [(&wide, true), (&even, false)] {
                let mut v = map.apply(&w);
                assert!((16..24).all(|u| incoming(&v, u) == incoming(&v, src[u] as usize)));
                sgd(n, &dg.train, &mut v, 5, 0.1, 32);
                let parted = (16..24)
                    .filter(|&u| incoming(&v, u) != incoming(&v, src[u] as usize))
                    .count();
                if diverge {
                    // A relu copy of a unit dead on every example stays.
                    let need = if act == Activation::Tanh { 8 } else { 6 };
                    assert!(parted >= need, "{act:?}: {parted} of 8 copies parted");
                } else {
                    assert_eq!(parted, 0, "{act:?}: an even split parted copies");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_bits() {
        let dg = digits(1);
        let m = Model::mlp(64, 10, &[12, 9], Activation::Tanh, 0.01).unwrap();
        let (a, b) = (m.initial_params(9), m.initial_params(9));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_ne!(a, m.initial_params(10));
        // Biases start at zero, weights within the Glorot bound.
        let r = (6.0f32 / (64 + 12) as f32).sqrt();
        assert!((0..12).all(|t| a[m.weight_key(0, t, 64) as usize] == 0.0));
        assert!((0..12).all(|t| (0..64).all(|f| a[m.weight_key(0, t, f) as usize].abs() <= r)));
        // Any range alone gives the same values.
        assert_eq!(m.initial_params_of(9, 100..300), a[100..300].to_vec());
        let rows: Vec<u32> = (0..32).collect();
        let grad = |p: &[f32]| {
            let mut g = vec![0f32; p.len()];
            let l = m.gradient(&dg.train, &rows, dense_view(p), &mut g);
            (
                l.to_bits(),
                g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(grad(&a), grad(&b));
        let (w1, w2) = (m.widen(&[20, 9], 4).unwrap(), m.widen(&[20, 9], 4).unwrap());
        assert_eq!(w1.map, w2.map);
        assert_eq!(w1.sources, w2.sources);
        let other = m.widen(&[20, 9], 5).unwrap();
        assert!(other.map != w1.map, "the widening depends on its seed");
    }

    /// The worker's paths: every key pulled, no slots, the same bits as
    /// the dense view; every key in every minibatch.
    #[test]
    fn the_slotted_path_is_the_dense_one() {
        let dg = digits(1);
        let m = Model::mlp(64, 10, &[16], Activation::Relu, 0.001).unwrap();
        let w = m.initial_params(2);
        let rows = [4u32, 8, 15, 16, 23, 42];
        let (mut keys, mut slots) = (Vec::new(), vec![7]);
        m.batch_keys_slotted(&dg.train, &rows, &mut keys, &mut slots);
        assert_eq!(keys, (0..m.dim()).collect::<Vec<_>>());
        assert!(slots.is_empty());
        assert!(m.expected_accesses(&dg.train, 32).is_none());
        let mut gd = vec![0f32; w.len()];
        let ld = m.gradient(&dg.train, &rows, dense_view(&w), &mut gd);
        let mut gs = vec![0f32; w.len()];
        let ls = m.gradient_slotted(&dg.train, &rows, &keys, &slots, &w, &mut gs);
        assert_eq!(ld.to_bits(), ls.to_bits());
        assert!(gd.iter().zip(&gs).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(gd.iter().any(|&g| g != 0.0));
        // Sparse data is refused up front.
        let sp = load(DataSpec {
            kind: DataKind::Synthetic {
                features: 64,
                examples: 40,
                density_ppm: 100_000,
                skew_ppm: 0,
            },
            seed: 1,
        });
        assert!(m.check_data(&sp.train).unwrap_err().contains("dense"));
        assert!(m.check_data(&dg.train).is_ok());
    }

    /// A hashed layout stores the same perceptron under other keys:
    /// initial values, training and widening give the same bits read
    /// through it; widening appends keys after the permuted key space.
    #[test]
    fn a_hashed_layout_holds_the_same_perceptron() {
        let dg = digits(2);
        let (plain, w) = trained(&[16, 12], Activation::Relu, None);
        let (hashed, wh) = trained(&[16, 12], Activation::Relu, Some(5));
        let layout = hashed.layout().clone();
        assert!(!layout.is_identity());
        let moved = (0..plain.dim()).filter(|&i| layout.key(i) != i).count();
        assert!(moved > plain.dim() as usize / 2, "{moved} keys moved");
        for (i, &x) in w.iter().enumerate() {
            assert_eq!(x.to_bits(), wh[layout.key(i as u32) as usize].to_bits());
        }
        assert_eq!(plain.evaluate(&w, &dg.test), hashed.evaluate(&wh, &dg.test));
        let (wp, whd) = (
            plain.widen(&[20, 16], 8).unwrap(),
            hashed.widen(&[20, 16], 8).unwrap(),
        );
        let (vp, vh) = (wp.apply(&w), whd.apply(&wh));
        let n = &whd.model;
        assert_same_function(&hashed, &wh, n, &vh, "hashed");
        for (l, t, f) in params(&sizes_of(n)) {
            let (kp, kh) = (wp.model.weight_key(l, t, f), n.weight_key(l, t, f));
            assert_eq!(vp[kp as usize].to_bits(), vh[kh as usize].to_bits());
            let i = n.weight_logical(l, t, f);
            if i >= hashed.dim() {
                assert_eq!(kh, i, "an appended index is its own key");
            } else {
                assert_eq!(kh, layout.key(i));
            }
        }
    }

    #[test]
    fn flops_follow_the_documented_formula() {
        let dg = digits(0);
        let m = Model::mlp(64, 10, &[64], Activation::Relu, 0.0).unwrap();
        let f = m.example_flops(64);
        assert_eq!((f.forward, f.backward), (9576, 10_900));
        // 64-32-16-10: 4128 + 1040 + 360 forward; 4160 + (1056 + 1024) +
        // (340 + 320) backward.
        let m = Model::mlp(64, 10, &[32, 16], Activation::Tanh, 0.5).unwrap();
        let f = m.example_flops(64);
        assert_eq!((f.forward, f.backward), (5528, 6900));
        let d = m.dim() as usize;
        assert_eq!(
            m.batch_flops(&dg.train, &[0, 1, 2], d),
            3 * 12_428 + 2 * d as u64
        );
    }
}
