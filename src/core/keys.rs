//! The key space and its split into contiguous ranges.
//!
//! A model has `dim` parameters, keys `0..dim`. They are split into
//! `ranges` contiguous ranges of (nearly) equal size:
//! range `r` holds keys `[r*dim/ranges, (r+1)*dim/ranges)` (integer division),
//! so the first ranges are never larger than the last ones by more than one
//! key. There is one range per server; with replication `k`, range `r` lives
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

    proptest! {
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
