//! Values keyed by an id that only grows (messages in flight by message
//! id): a deque indexed by `id - base`, trimmed from the front as the
//! oldest leave. Lookups, inserts and removals are O(1) (a B-tree map was
//! 4% of a message-bound run); iteration is in id order, as a B-tree
//! map's. Ids skipped (used for other things) cost an empty slot while an
//! older value is still held.
//!
//! May import: std. Never: `crate::net` (hosts never import each other),
//! the protocol or a clock (it only stores values).

use std::collections::VecDeque;

/// A map from increasing ids to values.
#[derive(Debug)]
pub struct ById<T> {
    /// The id of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<T>>,
}

impl<T> Default for ById<T> {
    fn default() -> ById<T> {
        ById {
            base: 0,
            slots: VecDeque::new(),
        }
    }
}

impl<T> ById<T> {
    /// Adds `value` under `id`, larger than every id added before.
    pub fn insert(&mut self, id: u64, value: T) {
        if self.slots.is_empty() {
            self.base = id;
        }
        let end = self.base + self.slots.len() as u64;
        assert!(id >= end, "ids only grow: {id} after {end}");
        for _ in end..id {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(value));
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let i = id.checked_sub(self.base)?;
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    /// The value under `id`.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.slots.get(self.slot(id)?)?.as_ref()
    }

    /// The value under `id`, to change.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let i = self.slot(id)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Takes the value under `id` out.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let i = self.slot(id)?;
        let v = self.slots[i].take();
        self.trim();
        v
    }

    /// Keeps only the values `keep` accepts, visited in id order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for s in self.slots.iter_mut() {
            if s.as_ref().is_some_and(|v| !keep(v)) {
                *s = None;
            }
        }
        self.trim();
    }

    /// Drops empty slots at the front.
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random inserts (with gaps), removals and retains agree with a
    /// B-tree map.
    #[test]
    fn behaves_as_a_btree_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut a, mut b) = (ById::default(), BTreeMap::new());
        let mut next = 5u64;
        for step in 0..20_000u64 {
            match rng.gen_range(0..10) {
                0..=4 => {
                    next += rng.gen_range(1..4);
                    a.insert(next, step);
                    b.insert(next, step);
                }
                5..=8 => {
                    let id = next.saturating_sub(rng.gen_range(0..30));
                    assert_eq!(a.remove(id), b.remove(&id));
                }
                _ => {
                    let m = rng.gen_range(2..7);
                    let mut seen = Vec::new();
                    a.retain(|v| {
                        seen.push(*v);
                        v % m != 0
                    });
                    let order: Vec<u64> = b.values().copied().collect();
                    assert_eq!(seen, order, "retain visits in id order");
                    b.retain(|_, v| *v % m != 0);
                }
            }
            let id = next.saturating_sub(rng.gen_range(0..30));
            assert_eq!(a.get(id), b.get(&id));
            if let Some(v) = a.get_mut(id) {
                *v += 1;
                *b.get_mut(&id).unwrap() += 1;
            }
        }
        let left: Vec<u64> = b.keys().copied().collect();
        for id in left {
            assert_eq!(a.remove(id), b.remove(&id));
        }
        assert!(a.slots.is_empty(), "emptied and trimmed");
    }
}
