//! A set of integers stored as disjoint half-open intervals. Pushes of a
//! worker arrive clock after clock, so the sets the checkers keep collapse
//! to a handful of intervals however long the run.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent intervals `[start, end)`, keyed by start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    spans: BTreeMap<u64, u64>,
}

impl IntervalSet {
    /// Adds `x`; returns false if it was already present.
    pub fn insert(&mut self, x: u64) -> bool {
        if self.contains(x) {
            return false;
        }
        let left = self
            .spans
            .range(..=x)
            .next_back()
            .filter(|(_, &e)| e == x)
            .map(|(&s, _)| s);
        let right_end = self.spans.remove(&(x + 1));
        let start = left.unwrap_or(x);
        let end = right_end.unwrap_or(x + 1);
        self.spans.insert(start, end);
        true
    }

    /// Whether `x` is present.
    pub fn contains(&self, x: u64) -> bool {
        self.spans
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &e)| x < e)
    }

    /// Number of integers present.
    pub fn len(&self) -> u64 {
        self.spans.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The sub-intervals of `[from, to)` not in the set, in order.
    pub fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = from;
        let first = self
            .spans
            .range(..=from)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(from);
        for (&s, &e) in self.spans.range(first..) {
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
        self.spans.iter().map(|(&s, &e)| (s, e))
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
            // Spans are disjoint and never adjacent.
            let spans: Vec<_> = s.spans().collect();
            for w in spans.windows(2) {
                prop_assert!(w[0].1 < w[1].0);
            }
        }
    }
}
