//! The key space and its split into contiguous ranges.
//!
//! A model has `dim` parameters, keys `0..dim`. They are split into
//! `ranges` contiguous ranges, cut by the placement (`[cluster]
//! placement`):
//! - `range` and `hash` ([`RangeMap::new`]): ranges of (nearly) equal size,
//!   range `r` holds keys `[r*dim/ranges, (r+1)*dim/ranges)` (integer
//!   division), so the first ranges are never larger than the last ones by
//!   more than one key (under `hash` the model stores its parameters under
//!   permuted keys, `ml::placement`, so such a range holds scattered
//!   features);
//! - `balanced` ([`RangeMap::balanced`]): cut so that each range holds an
//!   equal share of the keys' expected accesses.
//!
//! There is one range per server; with replication `k`, range `r` lives
//! on servers `r, r+1, .., r+k-1 (mod servers)`, head first (see
//! [`crate::core::view::View::initial`]).
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::ids::RangeId;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Maps keys to ranges and back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeMap {
    dim: u32,
    /// `starts[r]` is range r's first key; `starts[ranges] == dim`.
    starts: Vec<u32>,
}

impl RangeMap {
    /// Splits `dim` keys into `ranges` contiguous ranges.
    pub fn new(dim: u32, ranges: u32) -> Self {
        assert!(ranges >= 1, "at least one range");
        let starts = (0..=ranges)
            .map(|r| (u64::from(r) * u64::from(dim) / u64::from(ranges)) as u32)
            .collect();
        RangeMap { dim, starts }
    }

    /// Splits `weights.len()` keys into `ranges` contiguous ranges of about
    /// equal total weight (`weights[k] >= 0`: key `k`'s expected accesses).
    /// Cut `r` is put at the key boundary whose prefix weight is nearest
    /// `r/ranges` of the total, keeping every range non-empty when there are
    /// at least as many keys as ranges. Equal weights (or a zero total) cut
    /// exactly as [`RangeMap::new`]. A range's share then differs from
    /// `1/ranges` by at most the largest single weight over the total.
    pub fn balanced(weights: &[f64], ranges: u32) -> Self {
        assert!(ranges >= 1, "at least one range");
        let dim = weights.len() as u32;
        let total: f64 = weights.iter().sum();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        if uniform || total.is_nan() || total <= 0.0 {
            return RangeMap::new(dim, ranges);
        }
        // prefix[k] = weight of keys 0..k.
        let mut prefix = Vec::with_capacity(weights.len() + 1);
        let mut acc = 0.0;
        prefix.push(0.0);
        for &w in weights {
            acc += w;
            prefix.push(acc);
        }
        let mut starts = vec![0u32];
        let mut k = 0usize;
        for r in 1..ranges {
            let target = total * f64::from(r) / f64::from(ranges);
            // First boundary at or past the target, or the one before it if
            // nearer.
            while k < weights.len() && prefix[k] < target {
                k += 1;
            }
            let mut cut = k;
            if cut > 0 && target - prefix[cut - 1] < prefix[cut] - target {
                cut -= 1;
            }
            let prev = *starts.last().expect("starts begins with 0") as usize;
            let left = (ranges - r) as usize; // ranges still to come
            if weights.len() >= ranges as usize {
                cut = cut.clamp(prev + 1, weights.len() - left);
            } else {
                cut = cut.max(prev);
            }
            starts.push(cut as u32);
            k = k.max(cut);
        }
        starts.push(dim);
        RangeMap { dim, starts }
    }

    /// Number of keys (model parameters).
    pub fn dim(&self) -> u32 {
        self.dim
    }

    /// Number of ranges.
    pub fn ranges(&self) -> u32 {
        (self.starts.len() - 1) as u32
    }

    /// The keys of range `r`.
    pub fn keys(&self, r: RangeId) -> Range<u32> {
        self.starts[r as usize]..self.starts[r as usize + 1]
    }

    /// Number of keys in range `r`.
    pub fn len(&self, r: RangeId) -> usize {
        self.keys(r).len()
    }

    /// Whether range `r` holds no key (models smaller than the server count).
    pub fn is_empty(&self, r: RangeId) -> bool {
        self.len(r) == 0
    }

    /// The range that owns `key`.
    pub fn range_of(&self, key: u32) -> RangeId {
        debug_assert!(key < self.dim);
        (self.starts.partition_point(|&s| s <= key) - 1) as RangeId
    }

    /// Splits sorted keys into per-range slices: `out[r]` is the index range
    /// of `keys` that falls in range `r`.
    pub fn split_sorted(&self, keys: &[u32], out: &mut Vec<Range<usize>>) {
        out.clear();
        let mut at = 0;
        for r in 0..self.ranges() {
            let end_key = self.starts[r as usize + 1];
            let end = at + keys[at..].partition_point(|&k| k < end_key);
            out.push(at..end);
            at = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_cover_the_key_space() {
        let m = RangeMap::new(10, 3);
        assert_eq!(m.keys(0), 0..3);
        assert_eq!(m.keys(1), 3..6);
        assert_eq!(m.keys(2), 6..10);
        assert_eq!(m.range_of(5), 1);
        assert_eq!(m.range_of(9), 2);
    }

    #[test]
    fn more_ranges_than_keys_leaves_some_empty() {
        let m = RangeMap::new(2, 4);
        let total: usize = (0..4).map(|r| m.len(r)).sum();
        assert_eq!(total, 2);
        assert!(m.is_empty(0));
    }

    #[test]
    fn balanced_cuts_equal_weight_shares() {
        // A head-heavy access pattern: key k weighs 1/(k+1).
        let w: Vec<f64> = (0..10_000).map(|k| 1.0 / (f64::from(k) + 1.0)).collect();
        let m = RangeMap::balanced(&w, 4);
        let total: f64 = w.iter().sum();
        for r in 0..4 {
            let share: f64 = w[m.keys(r).start as usize..m.keys(r).end as usize]
                .iter()
                .sum::<f64>()
                / total;
            assert!((share - 0.25).abs() < 0.01, "range {r}: {share}");
        }
        // The head range is narrow, the tail ones wide.
        assert!(m.len(0) < 20 && m.len(3) > 5000, "{m:?}");
    }

    #[test]
    fn balanced_with_equal_weights_is_range() {
        for (dim, ranges) in [(10u32, 3u32), (650, 4), (2, 4), (1001, 8)] {
            let w = vec![1.0; dim as usize];
            assert_eq!(RangeMap::balanced(&w, ranges), RangeMap::new(dim, ranges));
        }
    }

    #[test]
    fn balanced_keeps_ranges_non_empty_past_a_heavy_key() {
        let m = RangeMap::balanced(&[100.0, 1.0, 1.0, 1.0], 3);
        assert!((0..3).all(|r| !m.is_empty(r)), "{m:?}");
        assert_eq!(m.keys(0), 0..1);
    }

    proptest! {
        #[test]
        fn balanced_ranges_partition_the_keys(weights in proptest::collection::vec(0.0f64..10.0, 1..300), ranges in 1u32..12) {
            let m = RangeMap::balanced(&weights, ranges);
            prop_assert_eq!(m.dim() as usize, weights.len());
            prop_assert_eq!(m.ranges(), ranges);
            let mut next = 0;
            for r in 0..ranges {
                let k = m.keys(r);
                prop_assert_eq!(k.start, next);
                prop_assert!(k.end >= k.start);
                if weights.len() >= ranges as usize {
                    prop_assert!(!k.is_empty());
                }
                for key in k.clone() {
                    prop_assert_eq!(m.range_of(key), r);
                }
                next = k.end;
            }
            prop_assert_eq!(next as usize, weights.len());
            // Each share is within the heaviest key of 1/ranges.
            let total: f64 = weights.iter().sum();
            let heaviest = weights.iter().copied().fold(0.0, f64::max);
            if total > 0.0 && weights.len() >= 2 * ranges as usize {
                for r in 0..ranges {
                    let k = m.keys(r);
                    let share: f64 = weights[k.start as usize..k.end as usize].iter().sum();
                    prop_assert!((share - total / f64::from(ranges)).abs() <= heaviest * 2.0 + 1e-9,
                        "range {} holds {} of {}", r, share, total);
                }
            }
        }

        #[test]
        fn every_key_is_in_exactly_its_range(dim in 1u32..5000, ranges in 1u32..40, key_frac in 0.0f64..1.0) {
            let m = RangeMap::new(dim, ranges);
            let key = ((f64::from(dim) * key_frac) as u32).min(dim - 1);
            let r = m.range_of(key);
            prop_assert!(m.keys(r).contains(&key));
            let sizes: Vec<usize> = (0..ranges).map(|r| m.len(r)).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }

        #[test]
        fn split_sorted_partitions_keys(mut keys in proptest::collection::vec(0u32..1000, 0..200), ranges in 1u32..9) {
            keys.sort_unstable();
            keys.dedup();
            let m = RangeMap::new(1000, ranges);
            let mut parts = Vec::new();
            m.split_sorted(&keys, &mut parts);
            prop_assert_eq!(parts.len(), ranges as usize);
            for (r, p) in parts.iter().enumerate() {
                for &k in &keys[p.clone()] {
                    prop_assert_eq!(m.range_of(k), r as u32);
                }
            }
            prop_assert_eq!(parts.last().unwrap().end, keys.len());
        }
    }
}
