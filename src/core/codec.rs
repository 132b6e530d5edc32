//! What a push or a pull answer puts on the wire: raw floats, a sparse
//! selection (top-k pushes, filtered pulls) or quantized codes.
//!
//! Top-k and quantization lose information; a worker with error feedback
//! keeps what was not sent (the residual) and adds it to its next gradient
//! ([`Encoder`]), so nothing is lost for good (Seide et al., 1-bit SGD,
//! Interspeech'14; Stich et al., sparsified SGD with memory, NeurIPS'18).
//! Encoding is a pure function of its input (ties broken by position), so
//! runs stay deterministic.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::floats::Floats;
use super::hasher::BufXxh3;
use super::msg::Keys;
use serde::{Deserialize, Serialize};

/// Values of a message, by position in its key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// One float per position (shared: a pull answer holds the replica's
    /// vector, copied only if the replica changes while it is held).
    Dense(Floats),
    /// Only positions `idx` (ascending) of `len`: a push's other positions
    /// are zero; a pull answer's other positions are unchanged since the
    /// reader's last pull.
    Sparse {
        /// Positions covered.
        len: u32,
        /// Positions sent.
        idx: Vec<u32>,
        /// Their values.
        vals: Vec<f32>,
    },
    /// A sparse model's top-k push: values of the keys sent (the kept
    /// ones), chosen from `of` keys.
    Kept {
        /// Keys the gradient had before selection.
        of: u32,
        /// One value per key sent.
        vals: Vec<f32>,
    },
    /// `bits` per position, packed little-end first: with `L = 2^(bits-1) -
    /// 1`, code `c` means `scale * (c - L) / L` (8 and 4 bits); one bit
    /// means `+scale` or `-scale`.
    Quantized {
        /// Positions covered.
        len: u32,
        /// 1, 4 or 8.
        bits: u8,
        /// Largest magnitude (8, 4 bits) or mean magnitude (1 bit).
        scale: f32,
        /// Packed codes.
        codes: Vec<u8>,
    },
}

/// Bytes of a vector's count on the wire.
const COUNT: usize = 4;

impl Payload {
    /// An empty dense payload.
    pub fn empty() -> Payload {
        Payload::Dense(Floats::default())
    }

    /// Positions covered.
    pub fn len(&self) -> usize {
        match self {
            Payload::Dense(v) => v.len(),
            Payload::Kept { vals, .. } => vals.len(),
            Payload::Sparse { len, .. } | Payload::Quantized { len, .. } => *len as usize,
        }
    }

    /// Whether it covers no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on the wire: raw floats are a plain vector (a flag in the
    /// message's tag byte says so); other encodings add a kind byte.
    pub fn wire_size(&self) -> usize {
        match self {
            Payload::Dense(v) => COUNT + 4 * v.len(),
            Payload::Kept { vals, .. } => 1 + 4 + COUNT + 4 * vals.len(),
            Payload::Sparse { idx, vals, .. } => {
                1 + 4 + COUNT + 4 * idx.len() + COUNT + 4 * vals.len()
            }
            Payload::Quantized { codes, .. } => 1 + 4 + 1 + 4 + COUNT + codes.len(),
        }
    }

    /// Bytes the same positions would take as raw floats (for a `Kept`
    /// payload: every key's value before selection).
    pub fn raw_size(&self) -> usize {
        match self {
            Payload::Kept { of, .. } => COUNT + 4 * *of as usize,
            _ => COUNT + 4 * self.len(),
        }
    }

    /// Keys a sparse top-k push left out of its key list.
    pub fn dropped_keys(&self) -> usize {
        match self {
            Payload::Kept { of, vals } => *of as usize - vals.len(),
            _ => 0,
        }
    }

    /// Calls `f(position, value)` for every position sent, ascending.
    pub fn for_each(&self, mut f: impl FnMut(usize, f32)) {
        match self {
            Payload::Dense(v) => v.iter().enumerate().for_each(|(i, &x)| f(i, x)),
            Payload::Kept { vals, .. } => vals.iter().enumerate().for_each(|(i, &x)| f(i, x)),
            Payload::Sparse { idx, vals, .. } => {
                for (&i, &x) in idx.iter().zip(vals) {
                    f(i as usize, x);
                }
            }
            &Payload::Quantized {
                len,
                bits,
                scale,
                ref codes,
            } => {
                for i in 0..len as usize {
                    f(i, dequantize(code_at(codes, bits, i), bits, scale));
                }
            }
        }
    }

    /// Writes the positions sent into `out` (length [`Payload::len`]),
    /// leaving the others as they are.
    pub fn write_into(&self, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.len());
        match self {
            Payload::Dense(v) => out.copy_from_slice(v),
            Payload::Kept { vals, .. } => out.copy_from_slice(vals),
            other => other.for_each(|i, x| out[i] = x),
        }
    }

    /// Feeds the payload's exact content to a digest (raw floats hash as
    /// they did before compression existed, so uncompressed runs keep
    /// their trace hashes).
    pub fn digest_into(&self, h: &mut BufXxh3) {
        match self {
            Payload::Dense(v) => super::msg::hash_values(h, v),
            Payload::Kept { of, vals } => {
                h.update(b"k");
                h.update(&of.to_le_bytes());
                super::msg::hash_values(h, vals);
            }
            Payload::Sparse { len, idx, vals } => {
                h.update(b"s");
                h.update(&len.to_le_bytes());
                for &i in idx {
                    h.update(&i.to_le_bytes());
                }
                super::msg::hash_values(h, vals);
            }
            Payload::Quantized {
                len,
                bits,
                scale,
                codes,
            } => {
                h.update(b"q");
                h.update(&len.to_le_bytes());
                h.update(&[*bits]);
                h.update(&scale.to_bits().to_le_bytes());
                h.update(codes);
            }
        }
    }
}

/// How pushes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scheme {
    /// Raw floats.
    None,
    /// The largest `ratio` fraction of entries (at least one).
    TopK {
        /// Fraction kept, in (0, 1].
        ratio: f32,
    },
    /// `bits` per value with a scale.
    Quantize {
        /// 1, 4 or 8.
        bits: u8,
    },
}

/// Settings of `[compression]` as the protocol uses them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    /// Push encoding.
    pub scheme: Scheme,
    /// Keep the residual on the worker and add it to the next gradient.
    pub error_feedback: bool,
    /// Servers leave out of a dense pull answer the values that changed
    /// less than this since the reader's last answer (0: send all).
    pub pull_threshold: f32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            scheme: Scheme::None,
            error_feedback: true,
            pull_threshold: 0.0,
        }
    }
}

/// A worker's push encoder with its error-feedback memory.
#[derive(Clone, Default)]
pub struct Encoder {
    /// Residual by key (empty until first used; then one float per key of
    /// the model, so a lookup is an index even for sparse models).
    residual: Vec<f32>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("residual_norm1", &self.residual_norm1())
            .finish()
    }
}

impl Encoder {
    /// Encodes the push of `values` (one per key of `keys`; a dense push's
    /// keys are `offset..` followed by `extra`, a range's appended keys
    /// after a live widening, `crate::core::widen`) for a model of `dim`
    /// keys, adding the residual first and keeping the new one when
    /// `c.error_feedback`. Returns the keys and payload to send: a sparse
    /// model's top-k push sends only the kept keys.
    pub fn encode(
        &mut self,
        c: &Compression,
        dim: usize,
        offset: usize,
        extra: &[u32],
        keys: Keys,
        values: &[f32],
    ) -> (Keys, Payload) {
        if c.scheme == Scheme::None || values.is_empty() {
            return (keys, Payload::Dense(values.into()));
        }
        let contiguous = values.len().saturating_sub(extra.len());
        let key = |i: usize| match &keys {
            Keys::All if i < contiguous => offset + i,
            Keys::All => extra[i - contiguous] as usize,
            Keys::List(ks) => ks[i] as usize,
        };
        let mut g = values.to_vec();
        if c.error_feedback {
            self.residual.resize(dim, 0.0);
            for (i, x) in g.iter_mut().enumerate() {
                *x += std::mem::take(&mut self.residual[key(i)]);
            }
        }
        let payload = match c.scheme {
            Scheme::None => unreachable!("handled above"),
            Scheme::TopK { ratio } => top_k(&g, ratio),
            Scheme::Quantize { bits } => quantize(&g, bits),
        };
        if c.error_feedback {
            // Residual = what was meant minus what was sent.
            for (i, x) in g.iter().enumerate() {
                self.residual[key(i)] = *x;
            }
            payload.for_each(|i, sent| self.residual[key(i)] -= sent);
        }
        match (keys, payload) {
            (Keys::List(ks), Payload::Sparse { idx, vals, .. }) => {
                let kept = idx.iter().map(|&i| ks[i as usize]).collect();
                let of = ks.len() as u32;
                (Keys::List(kept), Payload::Kept { of, vals })
            }
            (keys, payload) => (keys, payload),
        }
    }

    /// Sum of the residual's magnitudes (what is owed to the servers).
    pub fn residual_norm1(&self) -> f64 {
        self.residual.iter().map(|x| f64::from(x.abs())).sum()
    }
}

/// The `max(1, ceil(ratio * n))` entries of largest magnitude, ties to the
/// lower position.
pub fn top_k(g: &[f32], ratio: f32) -> Payload {
    let n = g.len();
    // The tolerance keeps e.g. 0.4 (an f32) of 5 at 2, not 3.
    let k = ((f64::from(ratio) * n as f64 - 1e-6).ceil() as usize).clamp(1, n.max(1));
    let mut order: Vec<u32> = (0..n as u32).collect();
    let by_size = |a: &u32, b: &u32| {
        g[*b as usize]
            .abs()
            .total_cmp(&g[*a as usize].abs())
            .then(a.cmp(b))
    };
    if k < n {
        order.select_nth_unstable_by(k, by_size);
        order.truncate(k);
    }
    order.sort_unstable();
    let vals = order.iter().map(|&i| g[i as usize]).collect();
    Payload::Sparse {
        len: n as u32,
        idx: order,
        vals,
    }
}

/// `bits` per value: 8 and 4 bits round to `2^(bits-1) - 1` levels either
/// side of zero, scaled by the largest magnitude; 1 bit keeps the sign,
/// scaled by the mean magnitude.
pub fn quantize(g: &[f32], bits: u8) -> Payload {
    assert!(matches!(bits, 1 | 4 | 8), "bits must be 1, 4 or 8");
    let scale = if bits == 1 {
        (g.iter().map(|x| f64::from(x.abs())).sum::<f64>() / g.len().max(1) as f64) as f32
    } else {
        g.iter().fold(0.0f32, |m, x| m.max(x.abs()))
    };
    let levels = levels(bits);
    let mut codes = vec![0u8; (g.len() * bits as usize).div_ceil(8)];
    for (i, &x) in g.iter().enumerate() {
        let c = if bits == 1 {
            u8::from(x >= 0.0)
        } else if scale > 0.0 {
            let q = (x / scale * levels).round().clamp(-levels, levels);
            (q + levels) as u8
        } else {
            levels as u8
        };
        let bit = i * bits as usize;
        codes[bit / 8] |= c << (bit % 8);
    }
    Payload::Quantized {
        len: g.len() as u32,
        bits,
        scale,
        codes,
    }
}

fn levels(bits: u8) -> f32 {
    f32::from((1u8 << (bits - 1)) - 1)
}

fn code_at(codes: &[u8], bits: u8, i: usize) -> u8 {
    let bit = i * bits as usize;
    let mask = if bits == 8 { 0xff } else { (1u8 << bits) - 1 };
    (codes[bit / 8] >> (bit % 8)) & mask
}

fn dequantize(c: u8, bits: u8, scale: f32) -> f32 {
    if bits == 1 {
        if c == 1 {
            scale
        } else {
            -scale
        }
    } else {
        let l = levels(bits);
        scale * (f32::from(c) - l) / l
    }
}

/// The answer to a dense pull under the significance filter: the values of
/// `current` that moved at least `threshold` from what the reader holds
/// (`held`, updated to what it will hold), or all of them when that is
/// smaller on the wire.
pub fn filtered(current: &[f32], held: &mut [f32], threshold: f32) -> Payload {
    let mut idx = Vec::new();
    let mut vals = Vec::new();
    for (i, (&c, h)) in current.iter().zip(held.iter_mut()).enumerate() {
        // A NaN difference (a diverged value) counts as moved.
        let moved = (c - *h).abs().partial_cmp(&threshold) != Some(std::cmp::Ordering::Less);
        if moved {
            idx.push(i as u32);
            vals.push(c);
            *h = c;
        }
    }
    if 2 * idx.len() >= current.len() {
        held.copy_from_slice(current);
        return Payload::Dense(current.into());
    }
    Payload::Sparse {
        len: current.len() as u32,
        idx,
        vals,
    }
}

/// Digest of the values a reader holds, to match a server's record of what
/// it sent.
pub fn held_digest(values: &[f32]) -> u64 {
    let mut h = BufXxh3::new();
    super::msg::hash_values(&mut h, values);
    // 0 means "nothing held".
    h.into_digest().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(p: &Payload) -> Vec<f32> {
        let mut v = vec![0.0; p.len()];
        p.write_into(&mut v);
        v
    }

    #[test]
    fn top_k_keeps_the_largest_with_ties_to_lower_positions() {
        let p = top_k(&[0.1, -3.0, 2.0, -2.0, 0.0], 0.4);
        assert_eq!(decode(&p), vec![0.0, -3.0, 2.0, 0.0, 0.0]);
        assert_eq!(decode(&top_k(&[1.0, 2.0], 0.001)), vec![0.0, 2.0]);
        assert_eq!(top_k(&[], 0.5).len(), 0);
    }

    #[test]
    fn quantization_error_is_within_half_a_level() {
        let g: Vec<f32> = (0..101)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for bits in [8u8, 4] {
            let p = quantize(&g, bits);
            let max = g.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let step = max / levels(bits);
            for (a, b) in g.iter().zip(decode(&p)) {
                assert!(
                    (a - b).abs() <= step / 2.0 + 1e-6,
                    "{bits} bits: {a} vs {b}"
                );
            }
            assert_eq!(p.wire_size(), 14 + (101 * bits as usize).div_ceil(8));
        }
        let p = quantize(&[2.0, -1.0, 0.0, -3.0], 1);
        assert_eq!(decode(&p), vec![1.5, -1.5, 1.5, -1.5]);
    }

    #[test]
    fn error_feedback_sends_every_unit_of_gradient_eventually() {
        // The same gradient pushed repeatedly: with feedback the sum sent
        // tracks the sum meant to within the residual; without, the small
        // entries are never sent.
        let g = [1.0f32, 0.5, 0.25, 0.125];
        for ef in [true, false] {
            let c = Compression {
                scheme: Scheme::TopK { ratio: 0.25 },
                error_feedback: ef,
                pull_threshold: 0.0,
            };
            let mut enc = Encoder::default();
            let mut sent = [0.0f32; 4];
            for _ in 0..64 {
                let (_, p) = enc.encode(&c, 4, 0, &[], Keys::All, &g);
                p.for_each(|i, x| sent[i] += x);
            }
            if ef {
                // Conservation: sent + residual = meant, and the residual
                // stays bounded.
                for ((s, x), r) in sent.iter().zip(g).zip(&enc.residual) {
                    assert!(
                        (s + r - 64.0 * x).abs() <= 1e-4,
                        "{s} + {r} vs {}",
                        64.0 * x
                    );
                    assert!(r.abs() <= 4.0, "residual {r}");
                }
            } else {
                assert_eq!(sent, [64.0, 0.0, 0.0, 0.0]);
            }
        }
    }

    #[test]
    fn sparse_top_k_sends_only_kept_keys_and_remembers_the_rest() {
        let c = Compression {
            scheme: Scheme::TopK { ratio: 0.5 },
            ..Compression::default()
        };
        let mut enc = Encoder::default();
        let (k, p) = enc.encode(&c, 100, 0, &[], Keys::List(vec![3, 7].into()), &[0.1, -0.2]);
        assert_eq!(k, Keys::List(vec![7].into()));
        assert_eq!(
            p,
            Payload::Kept {
                of: 2,
                vals: vec![-0.2]
            }
        );
        assert_eq!(p.raw_size() - p.len() * 4, 8);
        assert_eq!(p.dropped_keys(), 1);
        // Key 3's residual joins its next gradient.
        let (k, p) = enc.encode(&c, 100, 0, &[], Keys::List(vec![3, 9].into()), &[0.1, 0.15]);
        assert_eq!(k, Keys::List(vec![3].into()));
        assert_eq!(
            p,
            Payload::Kept {
                of: 2,
                vals: vec![0.2]
            }
        );
        assert!((enc.residual_norm1() - 0.15).abs() < 1e-6);
    }

    #[test]
    fn filter_keeps_reader_within_threshold_and_tracks_what_it_holds() {
        let mut held = vec![0.0f32; 8];
        let mut reader = vec![0.0f32; 8];
        let mut cur = [0.0f32; 8];
        for step in 0..50u32 {
            for (i, c) in cur.iter_mut().enumerate() {
                *c += 0.01 * (i as f32 + 1.0) * if step % 3 == 0 { -1.0 } else { 1.0 };
            }
            let p = filtered(&cur, &mut held, 0.05);
            p.write_into(&mut reader);
            assert_eq!(reader, held, "the record is what the reader holds");
            for (r, c) in reader.iter().zip(cur) {
                assert!((r - c).abs() < 0.05);
            }
        }
        assert!(matches!(
            filtered(&[1.0, 1.0], &mut [0.0, 0.0], 0.5),
            Payload::Dense(_)
        ));
    }
}
