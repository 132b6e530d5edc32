//! A set of integers stored as disjoint half-open intervals. Pushes of a
//! worker arrive clock after clock, so the sets the checkers keep collapse
//! to a handful of intervals however long the run.
//!
//! May import: `crate::check`, `crate::core` (events, ids), smallvec.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`: a checker
//! judges from events only.

use smallvec::SmallVec;

/// Disjoint, non-adjacent intervals `[start, end)`, sorted by start. A
/// sorted vector, not a tree: the sets hold a handful of intervals and are
/// queried on every read of a run (for every member), where a binary
/// search over a few entries beats walking a B-tree.
///
/// The first two spans are held inline (`SmallVec`): a checker keeps one
/// set per replica and worker life, nearly always a single gap-free span,
/// and a set on the heap cost a cache miss on every insert (4% of the
/// scale benchmark's time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    spans: SmallVec<[(u64, u64); 2]>,
}

impl IntervalSet {
    /// Index of the span that starts at or before `x` (the only one that
    /// can hold `x`), if any.
    fn at_or_before(&self, x: u64) -> Option<usize> {
        self.spans.partition_point(|&(s, _)| s <= x).checked_sub(1)
    }

    /// Adds `x`; returns false if it was already present.
    pub fn insert(&mut self, x: u64) -> bool {
        let i = self.at_or_before(x);
        if let Some(i) = i {
            if x < self.spans[i].1 {
                return false;
            }
        }
        let joins_left = i.filter(|&i| self.spans[i].1 == x);
        let next = i.map_or(0, |i| i + 1);
        let joins_right = (next < self.spans.len() && self.spans[next].0 == x + 1).then_some(next);
        match (joins_left, joins_right) {
            (Some(l), Some(r)) => {
                self.spans[l].1 = self.spans[r].1;
                self.spans.remove(r);
            }
            (Some(l), None) => self.spans[l].1 = x + 1,
            (None, Some(r)) => self.spans[r].0 = x,
            (None, None) => self.spans.insert(next, (x, x + 1)),
        }
        true
    }

    /// Whether `x` is present.
    pub fn contains(&self, x: u64) -> bool {
        self.at_or_before(x).is_some_and(|i| x < self.spans[i].1)
    }

    /// Number of integers present.
    pub fn len(&self) -> u64 {
        self.spans.iter().map(|&(s, e)| e - s).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The first number at or after `from` not in the set (`from` itself
    /// if it is missing): everything in `[from, first_missing(from))` is in.
    pub fn first_missing(&self, from: u64) -> u64 {
        match self.at_or_before(from) {
            Some(i) if self.spans[i].1 > from => self.spans[i].1,
            _ => from,
        }
    }

    /// The sub-intervals of `[from, to)` not in the set, in order.
    pub fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = from;
        let first = self.at_or_before(from).unwrap_or(0);
        for &(s, e) in &self.spans[first..] {
            if at >= to || s >= to {
                break;
            }
            if e <= at {
                continue;
            }
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < to {
            out.push((at, to));
        }
        out
    }

    /// The intervals, in order.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.spans.iter().copied()
    }

    /// Number of integers of `self` not in `other`.
    pub fn count_missing_from(&self, other: &IntervalSet) -> u64 {
        self.spans()
            .map(|(s, e)| other.gaps(s, e).iter().map(|(a, b)| b - a).sum::<u64>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_a_set(xs in proptest::collection::vec(0u64..60, 0..80), from in 0u64..60, len in 0u64..30) {
            let mut s = IntervalSet::default();
            let mut model = BTreeSet::new();
            for &x in &xs {
                prop_assert_eq!(s.insert(x), model.insert(x));
            }
            for x in 0..70 {
                prop_assert_eq!(s.contains(x), model.contains(&x));
            }
            prop_assert_eq!(s.len(), model.len() as u64);
            let to = from + len;
            let gaps: BTreeSet<u64> = s.gaps(from, to).iter().flat_map(|&(a, b)| a..b).collect();
            let expect: BTreeSet<u64> = (from..to).filter(|x| !model.contains(x)).collect();
            prop_assert_eq!(gaps, expect);
            let first = (from..).find(|x| !model.contains(x)).expect("finite set");
            prop_assert_eq!(s.first_missing(from), first);
            // Spans are disjoint and never adjacent.
            let spans: Vec<_> = s.spans().collect();
            for w in spans.windows(2) {
                prop_assert!(w[0].1 < w[1].0);
            }
        }
    }
}
