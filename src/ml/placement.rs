//! Where a model's parameters sit in the key space (`[cluster] placement`,
//! the model's half of it; the protocol's half is where ranges are cut,
//! `core::keys::RangeMap`).
//!
//! A model numbers its parameters `0..dim` (its *logical* index: output
//! `o`, feature `j` is `o*(F+1)+j`). A [`KeyLayout`] maps each logical
//! index to the key it is stored under, a bijection of `0..dim`:
//! - identity for `range` and `balanced` placement (a logical index is its
//!   key; ranges are contiguous intervals of it);
//! - a seeded pseudo-random permutation for `hash` placement
//!   ([`Feistel`]), so that a range, still a contiguous interval of keys,
//!   holds features scattered over the whole feature index.
//!
//! Appended parameters: a model can grow (a multilayer perceptron's
//! widening, [`super::Model::widen`]) by appending logical indices
//! `dim..dim'` after its original ones. A permutation covers the original
//! `0..dim` only and maps every logical index at or beyond its length to
//! itself, so the grown model's keys are still a bijection of `0..dim'`:
//! the original parameters keep their (scattered) keys and the appended
//! ones land after the original key space, in logical order. Re-hashing
//! the grown key space instead would move nearly every existing parameter
//! to another key, and so to another server, at each widening.
//!
//! Everything that turns parameters into keys goes through the model
//! ([`super::Model`]): the keys a minibatch pulls and pushes, the dense
//! gradient's positions and evaluation. So a parameter vector indexed by
//! key (what servers hold, what the run layer assembles from the replicas)
//! is read correctly under every layout, and the protocol core never learns
//! which placement is in force.
//!
//! [`expected_accesses`] estimates how often each key is touched, from the
//! data, for `balanced` placement.
//!
//! May import: `crate::ml`, std. Never: the protocol (`crate::core`), a
//! host (`crate::sim`, `crate::net`).

use super::data::{Matrix, Row};
use std::sync::Arc;

/// How logical parameter indices map to keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLayout {
    /// `None`: identity. `Some(p)`: logical index `i` is key `p[i]`.
    table: Option<Arc<[u32]>>,
}

impl KeyLayout {
    /// Every logical index is its own key.
    pub fn identity() -> KeyLayout {
        KeyLayout { table: None }
    }

    /// A seeded permutation of `0..dim` (`hash` placement).
    pub fn hashed(dim: u32, seed: u64) -> KeyLayout {
        let f = Feistel::new(dim, seed);
        KeyLayout {
            table: Some((0..dim).map(|i| f.apply(i)).collect()),
        }
    }

    /// Whether every logical index is its own key.
    pub fn is_identity(&self) -> bool {
        self.table.is_none()
    }

    /// The key of logical index `i`: its permuted key below
    /// [`KeyLayout::permuted_len`], itself from there on (appended
    /// parameters, module docs).
    #[inline]
    pub fn key(&self, i: u32) -> u32 {
        match &self.table {
            None => i,
            Some(t) => t.get(i as usize).copied().unwrap_or(i),
        }
    }

    /// Number of indices a permutation covers (`None` for the identity,
    /// which covers any number); indices from there on are their own keys.
    pub fn permuted_len(&self) -> Option<usize> {
        self.table.as_ref().map(|t| t.len())
    }
}

/// A pseudo-random permutation of `0..n`: a 4-round balanced Feistel
/// network over the smallest even-bit power of two `>= n`, keyed by a seed,
/// with cycle walking (re-apply until the value falls below `n`; at most
/// a few times on average, as the domain is under `4n`). A Feistel network
/// is a bijection whatever its round function, and cycle walking keeps it
/// one on `0..n`.
#[derive(Clone, Debug)]
pub struct Feistel {
    n: u32,
    half: u32,
    keys: [u64; 4],
}

/// The SplitMix64 finalizer: a cheap, well-mixing 64-bit hash.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Feistel {
    /// The permutation of `0..n` for `seed`.
    pub fn new(n: u32, seed: u64) -> Feistel {
        let bits = (32 - n.saturating_sub(1).leading_zeros()).max(2);
        let half = bits.div_ceil(2);
        let mut s = seed ^ 0x5eed_9ace_0fc0_ffee;
        let keys = std::array::from_fn(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(s)
        });
        Feistel { n, half, keys }
    }

    fn round_trip(&self, x: u32) -> u32 {
        let mask = (1u32 << self.half) - 1;
        let (mut l, mut r) = (x >> self.half, x & mask);
        for k in self.keys {
            let f = (mix(u64::from(r) ^ k) as u32) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half) | r
    }

    /// Where `x` (below `n`) goes.
    pub fn apply(&self, x: u32) -> u32 {
        debug_assert!(x < self.n);
        let mut y = self.round_trip(x);
        while y >= self.n {
            y = self.round_trip(y);
        }
        y
    }
}

/// Expected accesses of each logical parameter index per minibatch of
/// `batch` training rows, for a model of `outputs` outputs over the data's
/// features (index `o*(F+1)+j`, bias `o*(F+1)+F`): a feature that a
/// fraction `q` of the training rows hold is in a random minibatch with
/// probability `1 - (1-q)^batch`, and a worker pulls and pushes it once
/// per minibatch that holds it; every bias is in every minibatch. Dense
/// data touches every key in every minibatch: `None` (all equal).
pub fn expected_accesses(data: &Matrix, outputs: usize, batch: u32) -> Option<Vec<f64>> {
    if !data.is_sparse() {
        return None;
    }
    let f = data.cols;
    let n = data.rows();
    let mut counts = vec![0u64; f];
    for i in 0..n {
        if let Row::Sparse(idx, _) = data.row(i) {
            for &j in idx {
                counts[j as usize] += 1;
            }
        }
    }
    let per_feature = counts.iter().map(|&c| {
        let q = c as f64 / n.max(1) as f64;
        1.0 - libm::pow(1.0 - q, f64::from(batch))
    });
    let one: Vec<f64> = per_feature
        .chain(std::iter::once(if n > 0 { 1.0 } else { 0.0 }))
        .collect();
    Some((0..outputs).flat_map(|_| one.iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feistel_is_a_permutation_for_every_size() {
        for n in [1u32, 2, 3, 4, 5, 17, 64, 100, 1000, 4097, 65_537] {
            for seed in [0u64, 1, 99] {
                let f = Feistel::new(n, seed);
                let mut seen = vec![false; n as usize];
                for x in 0..n {
                    let y = f.apply(x);
                    assert!(y < n && !seen[y as usize], "n {n} seed {seed}: {x} -> {y}");
                    seen[y as usize] = true;
                }
            }
        }
    }

    #[test]
    fn feistel_depends_on_the_seed_and_scatters_neighbours() {
        let (a, b) = (Feistel::new(10_000, 1), Feistel::new(10_000, 2));
        let same = (0..10_000).filter(|&x| a.apply(x) == b.apply(x)).count();
        assert!(same < 50, "{same} fixed points between seeds");
        // The first 100 indices land all over the key space.
        let mut firsts: Vec<u32> = (0..100).map(|x| a.apply(x)).collect();
        firsts.sort_unstable();
        let quarter = firsts.iter().filter(|&&y| y < 2500).count();
        assert!(
            (10..=40).contains(&quarter),
            "{quarter} of 100 in the first quarter"
        );
    }

    #[test]
    fn indices_beyond_a_permutation_are_their_own_keys() {
        let layout = KeyLayout::hashed(100, 3);
        let keys: Vec<u32> = (0..130).map(|i| layout.key(i)).collect();
        let mut first: Vec<u32> = keys[..100].to_vec();
        first.sort_unstable();
        assert_eq!(first, (0..100).collect::<Vec<_>>());
        assert_eq!(keys[100..], (100..130).collect::<Vec<_>>()[..]);
    }
}
