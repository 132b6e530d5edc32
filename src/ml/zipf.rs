//! Zipf-distributed feature draws without replacement, exact and in
//! bounded time.
//!
//! Feature `j` of `0..n` has weight `(j+1)^-s`: under `s = 0` every feature
//! is equally likely, under `s = 1.1` feature 0 is drawn about twice as often
//! as feature 1. A draw picks a feature with probability proportional to its
//! weight among the features not yet drawn for the current example (the
//! distribution of "draw Zipf(s), reject duplicates", without the rejection
//! loop, which would never end when an example needs more distinct
//! features than the tail's tiny weights give up in reasonable time).
//!
//! Method: inverse CDF over a Fenwick (binary indexed) tree of integer
//! weights, with blocks of 64 features as its leaves (the tree over blocks
//! stays in cache; a block is scanned). Weights are fixed point (`(j+1)^-s`
//! scaled so the total fits in 62 bits, at least 1 each), so taking a
//! feature out and putting it back is exact integer arithmetic: the tree
//! returns to the same state after every example and the draws are
//! bit-for-bit reproducible (any exact inverse CDF draws the same feature
//! for the same random number). Each draw, removal and restore costs
//! `O(log n)` plus a block's scan. The weights are computed with the
//! `libm` crate, so they are the same on every machine.
//!
//! `rand_distr::Zipf` (rejection-inversion) was not used: it draws with
//! replacement, and sampling distinct features with it needs the unbounded
//! rejection loop above; it is not a dependency either.
//!
//! May import: `crate::ml`, std, rand. Never: the protocol
//! (`crate::core`), a host (`crate::sim`, `crate::net`).

use rand::Rng;

/// Weighted draws without replacement from `0..n` with Zipf weights.
#[derive(Clone, Debug)]
pub struct ZipfUrn {
    /// Every feature's current fixed-point weight: 0 while it is drawn.
    cur: Vec<u64>,
    /// Fenwick tree over blocks of [`BLOCK`] features: `tree[i]` (1-based)
    /// sums the current weights of blocks `i - lowbit(i) .. i`. A draw
    /// walks this small tree (it stays in cache) to a block, then scans
    /// the block's weights: one random memory access per draw, where a
    /// tree over single features cost one per level.
    tree: Vec<u64>,
    exponent: f64,
    scale: f64,
    total: u64,
    /// Sum of the weights not drawn since the last restore (`total` less
    /// the weights in `taken`).
    left: u64,
    /// Features drawn since the last [`ZipfUrn::restore`], with their
    /// weights.
    taken: Vec<(u32, u64)>,
}

/// Features per leaf of the urn's tree (8 cache lines of weights).
const BLOCK: usize = 64;

impl ZipfUrn {
    /// An urn over `0..n` with exponent `s >= 0`.
    pub fn new(n: u32, s: f64) -> ZipfUrn {
        assert!(n >= 1 && s >= 0.0 && s.is_finite());
        // Total below 2^62: n weights of at most 2^shift each.
        let bits = 64 - u64::from(n).leading_zeros();
        let shift = 62 - bits;
        let scale = libm::ldexp(1.0, shift as i32);
        let cur: Vec<u64> = (0..n).map(|j| fixed_weight(j, s, scale)).collect();
        let total = cur.iter().sum();
        let blocks = (n as usize).div_ceil(BLOCK);
        let mut tree = vec![0u64; blocks + 1];
        // Linear-time build: each node passes its sum to its parent.
        for b in 0..blocks {
            let i = b + 1;
            tree[i] += cur[b * BLOCK..((b + 1) * BLOCK).min(cur.len())]
                .iter()
                .sum::<u64>();
            let parent = i + (i & i.wrapping_neg());
            if parent <= blocks {
                tree[parent] += tree[i];
            }
        }
        ZipfUrn {
            cur,
            tree,
            exponent: s,
            scale,
            total,
            left: total,
            taken: Vec::new(),
        }
    }

    /// Number of features.
    pub fn len(&self) -> u32 {
        self.cur.len() as u32
    }

    /// Whether the urn has no feature (never: `new` requires one).
    pub fn is_empty(&self) -> bool {
        self.cur.is_empty()
    }

    /// Feature `j`'s fixed-point weight.
    pub fn weight(&self, j: u32) -> u64 {
        fixed_weight(j, self.exponent, self.scale)
    }

    /// The exact probability of `j` on a fresh urn's first draw (the
    /// fixed-point weights; within about 2^-40 of the closed form
    /// `(j+1)^-s / H(n, s)` for the features that carry any mass).
    pub fn probability(&self, j: u32) -> f64 {
        self.weight(j) as f64 / self.total as f64
    }

    /// Sets feature `j`'s current weight to `w` (it was `old`).
    fn set(&mut self, j: u32, old: u64, w: u64) {
        self.cur[j as usize] = w;
        let mut i = j as usize / BLOCK + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i] - old + w;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of the remaining weights, from the tree (tests compare it with
    /// the running `left`).
    #[cfg(test)]
    fn remaining(&self) -> u64 {
        let mut i = self.tree.len() - 1;
        let mut s = 0u64;
        while i > 0 {
            s += self.tree[i];
            i &= i - 1;
        }
        s
    }

    /// The feature whose cumulative weight interval holds `u` (`u` below
    /// the remaining total): the block by the tree, the feature by a scan.
    fn find(&self, mut u: u64) -> u32 {
        let n = self.tree.len() - 1;
        let mut pos = 0usize;
        let mut step = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= u {
                u -= self.tree[next];
                pos = next;
            }
            step >>= 1;
        }
        let block = &self.cur[pos * BLOCK..((pos + 1) * BLOCK).min(self.cur.len())];
        for (k, &w) in block.iter().enumerate() {
            if u < w {
                return (pos * BLOCK + k) as u32;
            }
            u -= w;
        }
        unreachable!("u is below the remaining total")
    }

    /// Draws one feature not drawn since the last restore, with
    /// probability proportional to its weight among those; `None` once
    /// every feature is drawn.
    pub fn draw(&mut self, rng: &mut impl Rng) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        let j = self.find(rng.gen_range(0..self.left));
        let w = self.cur[j as usize];
        self.set(j, w, 0);
        self.left -= w;
        self.taken.push((j, w));
        Some(j)
    }

    /// Puts every drawn feature back.
    pub fn restore(&mut self) {
        let mut taken = std::mem::take(&mut self.taken);
        for &(j, w) in &taken {
            self.set(j, 0, w);
        }
        self.left = self.total;
        taken.clear();
        self.taken = taken;
    }

    /// `k` distinct features (all of them if `k >= n`), in draw order, then
    /// restores the urn.
    pub fn sample(&mut self, k: usize, rng: &mut impl Rng, out: &mut Vec<u32>) {
        out.clear();
        while out.len() < k {
            match self.draw(rng) {
                Some(j) => out.push(j),
                None => break,
            }
        }
        self.restore();
    }
}

/// `(j+1)^-s` in fixed point (`scale` is one), at least 1.
fn fixed_weight(j: u32, s: f64, scale: f64) -> u64 {
    let w = libm::pow(f64::from(j) + 1.0, -s) * scale;
    (libm::round(w) as u64).max(1)
}

/// The generalized harmonic number `H(n, s) = sum_{j=1..n} j^-s`, the
/// closed form's normalizer.
pub fn harmonic(n: u32, s: f64) -> f64 {
    (1..=n).map(|j| libm::pow(f64::from(j), -s)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// First draws of a fresh urn follow `(j+1)^-s / H(n, s)`: a chi-square
    /// test over every feature (well below the 99.9% quantile).
    #[test]
    fn first_draws_follow_the_closed_form() {
        for (n, s) in [(50u32, 1.1), (20, 0.0), (200, 0.7), (30, 2.0)] {
            let mut urn = ZipfUrn::new(n, s);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let draws = 200_000;
            let mut counts = vec![0u64; n as usize];
            let mut out = Vec::new();
            for _ in 0..draws {
                urn.sample(1, &mut rng, &mut out);
                counts[out[0] as usize] += 1;
            }
            let h = harmonic(n, s);
            let mut chi2 = 0.0;
            for (j, &c) in counts.iter().enumerate() {
                let p = (j as f64 + 1.0).powf(-s) / h;
                assert!((urn.probability(j as u32) - p).abs() < 1e-12, "{j}");
                let e = p * draws as f64;
                chi2 += (c as f64 - e).powi(2) / e;
            }
            // 99.9% quantile of chi-square with n-1 degrees of freedom is
            // below n - 1 + 4.5 * sqrt(2 (n - 1)) + 10 for these n.
            let df = f64::from(n - 1);
            let bound = df + 4.5 * (2.0 * df).sqrt() + 10.0;
            assert!(chi2 < bound, "n {n} s {s}: chi2 {chi2:.1} >= {bound:.1}");
        }
    }

    /// Without replacement: distinct features, every one once `k = n`; the
    /// urn is restored exactly after each sample.
    #[test]
    fn samples_are_distinct_and_the_urn_is_restored() {
        let mut urn = ZipfUrn::new(100, 1.5);
        let fresh = (urn.tree.clone(), urn.cur.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        for k in [1, 10, 60, 100, 150] {
            urn.sample(k, &mut rng, &mut out);
            assert_eq!(out.len(), k.min(100));
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), out.len());
            assert_eq!((&urn.tree, &urn.cur), (&fresh.0, &fresh.1));
        }
        // The running sum of what is left is the tree's, draw by draw.
        for _ in 0..100 {
            urn.draw(&mut rng);
            assert_eq!(urn.left, urn.remaining());
        }
        assert_eq!(urn.draw(&mut rng), None);
        urn.restore();
        assert_eq!(
            (urn.left, &urn.tree, &urn.cur),
            (urn.total, &fresh.0, &fresh.1)
        );
    }

    /// The second draw is the first one's distribution renormalized over
    /// the features left: P(second = j | first = 0) = w_j / (W - w_0).
    #[test]
    fn second_draws_renormalize_over_what_is_left() {
        let (n, s) = (10u32, 1.0);
        let mut urn = ZipfUrn::new(n, s);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut out = Vec::new();
        let mut after0 = vec![0u64; n as usize];
        let mut runs = 0u64;
        for _ in 0..300_000 {
            urn.sample(2, &mut rng, &mut out);
            if out[0] == 0 {
                after0[out[1] as usize] += 1;
                runs += 1;
            }
        }
        let rest = harmonic(n, s) - 1.0;
        assert_eq!(after0[0], 0);
        for (j, &count) in after0.iter().enumerate().skip(1) {
            let p = (j as f64 + 1.0).powf(-s) / rest;
            let got = count as f64 / runs as f64;
            assert!((got - p).abs() < 0.01, "{j}: {got:.4} vs {p:.4}");
        }
    }

    /// The blocked tree draws exactly what a plain inverse CDF over the
    /// weights left draws, for the same random numbers (sizes on and off
    /// the block boundary).
    #[test]
    fn draws_equal_a_linear_inverse_cdf() {
        use rand::Rng;
        for (n, s) in [
            (1u32, 0.5),
            (63, 1.1),
            (64, 0.0),
            (65, 0.7),
            (1000, 0.667),
            (4097, 2.0),
        ] {
            let mut urn = ZipfUrn::new(n, s);
            let mut naive: Vec<u64> = (0..n).map(|j| urn.weight(j)).collect();
            let mut a = ChaCha8Rng::seed_from_u64(u64::from(n));
            let mut b = a.clone();
            for round in 0..50 {
                for _ in 0..(round % 9 + 1) {
                    let got = urn.draw(&mut a);
                    let left: u64 = naive.iter().sum();
                    let want = (left > 0).then(|| {
                        let mut u = b.gen_range(0..left);
                        let j = naive.iter().position(|&w| {
                            let hit = u < w;
                            u = u.saturating_sub(w);
                            hit
                        });
                        j.expect("u below the total") as u32
                    });
                    assert_eq!(got, want, "n {n} round {round}");
                    if let Some(j) = want {
                        naive[j as usize] = 0;
                    }
                }
                urn.restore();
                naive = (0..n).map(|j| urn.weight(j)).collect();
            }
        }
    }

    #[test]
    fn uniform_weights_are_equal_and_huge_urns_fit() {
        let urn = ZipfUrn::new(1000, 0.0);
        assert!((0..1000).all(|j| urn.weight(j) == urn.weight(0)));
        let big = ZipfUrn::new(1 << 24, 1.1);
        assert!(big.total < 1 << 62);
        assert!(big.weight((1 << 24) - 1) >= 1);
    }
}
