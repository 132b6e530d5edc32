//! Maps keyed by small ids (workers, ranges) and by worker life, for the
//! checkers' per-event lookups: worker and range ids are small and dense
//! (`0..workers`, and the ones a live change adds after them), so a value
//! is found by indexing a vector, not by walking a B-tree of every worker
//! (the staleness checker looked up a replica's lives, the pushes known per
//! range and each replica's prefixes a dozen times per push applied).
//! Ids past [`DENSE`] (only a hand-edited trace has them) go to a B-tree,
//! so a stray id cannot make a huge vector. Iteration is in id order, as a
//! `BTreeMap` keyed by the same ids iterates.
//!
//! May import: `crate::check`, `crate::core` (ids), smallvec. Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`.

use crate::core::WorkerId;

/// A small id: a worker's or a range's.
pub type Id = u32;
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// Ids below this are held in a vector.
const DENSE: Id = 1 << 16;

/// A map from small ids to `V`, ordered by id.
#[derive(Clone, Debug)]
pub struct IdMap<V> {
    /// Index `w`: id `w`'s value, if any.
    dense: Vec<Option<V>>,
    /// Values of ids at or past [`DENSE`].
    spill: BTreeMap<Id, V>,
}

/// Equal if they map the same ids to equal values (however long the
/// vectors grew).
impl<V: PartialEq> PartialEq for IdMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<V: Eq> Eq for IdMap<V> {}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            dense: Vec::new(),
            spill: BTreeMap::new(),
        }
    }
}

impl<V> IdMap<V> {
    /// Id `w`'s value.
    #[inline]
    pub fn get(&self, w: Id) -> Option<&V> {
        if w < DENSE {
            self.dense.get(w as usize).and_then(Option::as_ref)
        } else {
            self.spill.get(&w)
        }
    }

    /// Id `w`'s value, mutably.
    #[inline]
    pub fn get_mut(&mut self, w: Id) -> Option<&mut V> {
        if w < DENSE {
            self.dense.get_mut(w as usize).and_then(Option::as_mut)
        } else {
            self.spill.get_mut(&w)
        }
    }

    /// The vector's place for id `w` (below [`DENSE`]), grown to hold it.
    #[inline]
    fn place(&mut self, w: Id) -> &mut Option<V> {
        let i = w as usize;
        if i >= self.dense.len() {
            self.dense.resize_with(i + 1, || None);
        }
        &mut self.dense[i]
    }

    /// Id `w`'s value, made by `make` if it has none.
    #[inline]
    pub fn get_or_insert_with(&mut self, w: Id, make: impl FnOnce() -> V) -> &mut V {
        if w < DENSE {
            self.place(w).get_or_insert_with(make)
        } else {
            self.spill.entry(w).or_insert_with(make)
        }
    }

    /// Sets id `w`'s value; returns the old one.
    pub fn insert(&mut self, w: Id, v: V) -> Option<V> {
        if w < DENSE {
            self.place(w).replace(v)
        } else {
            self.spill.insert(w, v)
        }
    }

    /// Takes id `w`'s value out.
    pub fn remove(&mut self, w: Id) -> Option<V> {
        if w < DENSE {
            self.dense.get_mut(w as usize).and_then(Option::take)
        } else {
            self.spill.remove(&w)
        }
    }

    /// Every value with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &V)> + '_ {
        self.dense
            .iter()
            .enumerate()
            .filter_map(|(w, v)| v.as_ref().map(|v| (w as Id, v)))
            .chain(self.spill.iter().map(|(&w, v)| (w, v)))
    }
}

/// A map from worker lives `(worker, incarnation)` to `V`, ordered as the
/// pairs are: per worker (a [`IdMap`]) its lives by incarnation, nearly
/// always one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifeMap<V> {
    by_worker: IdMap<SmallVec<[(u32, V); 1]>>,
}

impl<V> Default for LifeMap<V> {
    fn default() -> Self {
        LifeMap {
            by_worker: IdMap::default(),
        }
    }
}

impl<V> LifeMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `life`.
    #[inline]
    pub fn get(&self, life: &(WorkerId, u32)) -> Option<&V> {
        let lives = self.by_worker.get(life.0)?;
        lives.iter().find(|l| l.0 == life.1).map(|l| &l.1)
    }

    /// The value of `life`, made by `make` if it has none.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        life: (WorkerId, u32),
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let lives = self.by_worker.get_or_insert_with(life.0, SmallVec::new);
        let at = lives.partition_point(|l| l.0 < life.1);
        if lives.get(at).is_none_or(|l| l.0 != life.1) {
            lives.insert(at, (life.1, make()));
        }
        &mut lives[at].1
    }

    /// Sets the value of `life`.
    pub fn insert(&mut self, life: (WorkerId, u32), v: V) {
        let mut v = Some(v);
        let slot = self.get_or_insert_with(life, || v.take().expect("taken once"));
        if let Some(v) = v {
            *slot = v;
        }
    }

    /// Takes the value of `life` out.
    pub fn remove(&mut self, life: &(WorkerId, u32)) -> Option<V> {
        let lives = self.by_worker.get_mut(life.0)?;
        let at = lives.iter().position(|l| l.0 == life.1)?;
        let v = lives.remove(at).1;
        if lives.is_empty() {
            self.by_worker.remove(life.0);
        }
        Some(v)
    }

    /// Worker `w`'s lives with their values, by incarnation.
    #[inline]
    pub fn lives(&self, w: WorkerId) -> &[(u32, V)] {
        self.by_worker.get(w).map_or(&[], |l| l.as_slice())
    }

    /// Every worker with lives, in id order.
    pub fn workers(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.by_worker.iter().map(|(w, _)| w)
    }

    /// Every life with its value, in `(worker, incarnation)` order.
    pub fn iter(&self) -> impl Iterator<Item = ((WorkerId, u32), &V)> + '_ {
        self.by_worker
            .iter()
            .flat_map(|(w, lives)| lives.iter().map(move |(i, v)| ((w, *i), v)))
    }
}

impl<V: Default> LifeMap<V> {
    /// The value of `life`, a default one if it has none.
    #[inline]
    pub fn entry(&mut self, life: (WorkerId, u32)) -> &mut V {
        self.get_or_insert_with(life, V::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = WorkerId> {
        prop_oneof![0u32..40, DENSE - 2..DENSE + 2, Just(WorkerId::MAX)]
    }

    proptest! {
        /// Random inserts, updates and removals: the same contents and
        /// order as a `BTreeMap` fed the same operations.
        #[test]
        fn a_worker_map_behaves_like_a_btree_map(ops in proptest::collection::vec((id(), 0u8..3, any::<u16>()), 0..120)) {
            let mut m = IdMap::default();
            let mut model = BTreeMap::new();
            for (w, op, v) in ops {
                match op {
                    0 => prop_assert_eq!(m.insert(w, v), model.insert(w, v)),
                    1 => prop_assert_eq!(m.remove(w), model.remove(&w)),
                    _ => {
                        *m.get_or_insert_with(w, || 7) += 1;
                        *model.entry(w).or_insert(7) += 1;
                    }
                }
                prop_assert_eq!(m.get(w), model.get(&w));
            }
            let got: Vec<_> = m.iter().map(|(w, &v)| (w, v)).collect();
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn a_life_map_behaves_like_a_btree_map(ops in proptest::collection::vec((id(), 0u32..4, any::<u16>()), 0..120)) {
            let mut m = LifeMap::new();
            let mut model = BTreeMap::new();
            for (w, inc, v) in ops {
                if v % 3 == 0 {
                    *m.entry((w, inc)) += u32::from(v);
                    *model.entry((w, inc)).or_default() += u32::from(v);
                } else {
                    m.insert((w, inc), u32::from(v));
                    model.insert((w, inc), u32::from(v));
                }
                if v % 5 == 0 {
                    prop_assert_eq!(m.remove(&(w, inc)), model.remove(&(w, inc)));
                }
                prop_assert_eq!(m.get(&(w, inc)), model.get(&(w, inc)));
                let lives: Vec<_> = m.lives(w).iter().map(|&(i, v)| ((w, i), v)).collect();
                let want: Vec<_> = model.range((w, 0)..=(w, u32::MAX)).map(|(&k, &v)| (k, v)).collect();
                prop_assert_eq!(lives, want);
            }
            let got: Vec<_> = m.iter().map(|(k, &v)| (k, v)).collect();
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }
}
