//! Sorting a minibatch's `(key, position)` pairs by key, stably.
//!
//! A minibatch of 64 examples with 40 non-zeros each is 2,560 pairs, sorted
//! once per worker and clock. `radsort` sorts by bytes: keys below 2^24
//! take three passes. Below 2^22 (every linear model of up to four million
//! parameters) two passes of half the key's bits each do the same work
//! with counts of at most 2,048 buckets, which stay in the first-level
//! cache; its buffers are kept from one sort to the next. In the scale
//! run: 807 perf samples against radsort's 1,250 (three 200-clock runs
//! each). Wider keys, and inputs of under 64 pairs, go to `radsort`.
//! Either way the sort is stable, so the order is the same to the last
//! pair (tested against the standard library's stable sort).
//!
//! May import: std, radsort. Never: the protocol (`crate::core`), a host
//! (`crate::sim`, `crate::net`).

/// Keys of at most this many bits are sorted in two passes.
const TWO_PASS_BITS: u32 = 22;

/// Sorts `pairs` (key in the high 32 bits) by key, keeping the order of
/// pairs with equal keys.
pub fn sort_by_high_key(pairs: &mut [u64]) {
    // The keys' width from their bits' union (one OR per pair; a 64-bit
    // maximum takes several instructions per pair on baseline x86-64).
    let union = pairs.iter().fold(0, |a, &p| a | p >> 32);
    let bits = 64 - union.leading_zeros();
    if bits > TWO_PASS_BITS || pairs.len() < 64 {
        radsort::sort_by_key(pairs, |&p| (p >> 32) as u32);
        return;
    }
    // Two digits of `d` bits: the low one first (LSD), each a stable
    // counting pass.
    let d = bits.div_ceil(2).max(1);
    let n = 1usize << d;
    SCRATCH.with_borrow_mut(|(counts, spare)| {
        counts.clear();
        counts.resize(2 * n, 0);
        // Every place is written below: what the last sort left is fine.
        if spare.len() < pairs.len() {
            spare.resize(pairs.len(), 0);
        }
        two_passes(pairs, d, counts, &mut spare[..pairs.len()]);
    });
}

thread_local! {
    /// The counts and the second buffer, kept from one sort to the next:
    /// allocating them (zeroed) per sort cost as much as the passes saved.
    static SCRATCH: std::cell::RefCell<(Vec<u32>, Vec<u64>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// The two counting passes over digits of `d` bits (`counts`: `2 << d`
/// zeros; `spare` as long as `pairs`).
fn two_passes(pairs: &mut [u64], d: u32, counts: &mut [u32], spare: &mut [u64]) {
    let n = 1usize << d;
    let mask = (n - 1) as u64;
    let (lo, hi) = counts.split_at_mut(n);
    for &p in pairs.iter() {
        let k = p >> 32;
        lo[(k & mask) as usize] += 1;
        hi[((k >> d) & mask) as usize] += 1;
    }
    for counts in [&mut *lo, &mut *hi] {
        let mut sum = 0;
        for c in counts.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
    }
    for &p in pairs.iter() {
        let b = &mut lo[((p >> 32) & mask) as usize];
        spare[*b as usize] = p;
        *b += 1;
    }
    for &p in spare.iter() {
        let b = &mut hi[((p >> (32 + d)) & mask) as usize];
        pairs[*b as usize] = p;
        *b += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(pairs: &[u64]) -> Vec<u64> {
        let mut v = pairs.to_vec();
        v.sort_by_key(|&p| p >> 32);
        v
    }

    proptest! {
        /// The same order as a stable sort by key, for keys of every width
        /// (two passes up to 22 bits, radsort above) and sizes on both
        /// sides of the small-input cut.
        #[test]
        fn sorts_as_a_stable_sort_by_key(
            bits in 1u32..=32,
            keys in prop::collection::vec(any::<u32>(), 0..600),
        ) {
            let bound = 1u64 << bits;
            let pairs: Vec<u64> = keys
                .iter()
                .enumerate()
                .map(|(i, &k)| (u64::from(k) % bound) << 32 | i as u64)
                .collect();
            let mut sorted = pairs.clone();
            sort_by_high_key(&mut sorted);
            prop_assert_eq!(sorted, reference(&pairs));
        }
    }

    /// Many equal keys (a hot feature in every example) keep their order.
    #[test]
    fn equal_keys_keep_their_order() {
        let pairs: Vec<u64> = (0..3000u64).map(|i| (i % 3) << 32 | i).collect();
        let mut sorted = pairs.clone();
        sort_by_high_key(&mut sorted);
        assert_eq!(sorted, reference(&pairs));
    }
}
