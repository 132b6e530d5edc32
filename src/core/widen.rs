//! Live widening, protocol side: where a widened perceptron's parameters
//! live, and how each replica derives them from its own state.
//!
//! A `[[change]] hidden = ..` is committed at a clock boundary `B` like
//! any live change (prepare, commit). The widened model
//! ([`crate::ml::Model::widen`], seeded from the run seed and the change's
//! number) keeps every existing key and appends the new ones after the
//! old key space; each new value is `a * old[src] + b` of one old key
//! `src`, and an existing key reads itself (times its unit's split share).
//!
//! **Layout and assignment.** Existing ranges never move: range `r` keeps
//! its contiguous keys and holds, after them, its *appended keys*: every
//! new key whose source lies in `r` (in key order; a second widening
//! appends after the first's). So every widened value is computed from
//! the range's own state, with no transfer between servers: a replica's
//! parameter vector is its old vector followed by the new values, and a
//! widening is one log entry (`Op::Widen`) that every replica of the chain
//! applies in order, as it applies pushes, so replicas, catch-up,
//! snapshots and checkpoints carry widened states unchanged. New keys are
//! spread over the ranges as their sources are (a new unit's incoming
//! weights copy one row, so they go where that row is; its outgoing
//! weights copy a column, spread over every range holding that layer).
//!
//! **When.** The entry for boundary `B` is logged by the head once every
//! member's pushes of clocks `< B` are applied there (the gate's bound-0
//! test at `B`), so the widened values derive from the state at the
//! boundary: a widening is a barrier even under SSP or ASP. Reads for
//! clocks `>= B` wait for the entry, and a replica that applied it no
//! longer answers reads for clocks `< B` (only a worker that is not a
//! member, or a stale retry, asks for those: every member has finished
//! them). A push for a clock `< B` arriving after the entry comes from a
//! life no reader waits for; the head refuses it, as it refuses fenced
//! pushes.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::config::Change;
use super::ids::{Clock, RangeId};
use super::keys::RangeMap;
use crate::ml::Model;
use std::sync::Arc;
use std::time::Duration;

/// One widened value of a replica: `a * old[src] + b`, `src` a position
/// in the same replica's vector before the widening.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Local {
    /// Position read in the old vector.
    pub src: u32,
    /// Factor.
    pub a: f32,
    /// Offset.
    pub b: f32,
}

/// One widening: its change, the widened model and where its keys live.
#[derive(Debug)]
pub struct Step {
    /// The live change's number (1, 2, ... among all changes).
    pub change: u64,
    /// The model from this widening on.
    pub model: Model,
    /// Per range: its appended keys after this widening (this and every
    /// earlier one), ascending.
    pub extra: Vec<Vec<u32>>,
    /// Per range: how each value of the widened vector derives from the
    /// vector before.
    pub maps: Vec<Vec<Local>>,
}

/// Every widening of a job, in change order (level `i` is the model after
/// `i` widenings; level 0 the configured model).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    steps: Arc<Vec<Step>>,
}

/// Position of `key` in range `r`'s vector: its contiguous keys, then its
/// appended keys `extra`.
fn position(ranges: &RangeMap, extra: &[u32], r: RangeId, key: u32) -> Option<u32> {
    let k = ranges.keys(r);
    if k.contains(&key) {
        return Some(key - k.start);
    }
    let i = extra.binary_search(&key).ok()?;
    Some((k.len() + i) as u32)
}

/// The seed of change `k`'s widening, from the run seed.
fn change_seed(seed: u64, k: u64) -> u64 {
    seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

impl Plan {
    /// The widenings among `changes` (in order), of `base` whose keys are
    /// split by `ranges`. Errors name the change (1-based) and why: a
    /// model that cannot widen, a layer count that differs, a narrowing.
    pub fn new(
        base: &Model,
        ranges: &RangeMap,
        seed: u64,
        changes: &[(Duration, Change)],
    ) -> Result<Plan, String> {
        let mut steps: Vec<Step> = Vec::new();
        for (i, (_, c)) in changes.iter().enumerate() {
            let Some(h) = c.hidden else { continue };
            let k = i as u64 + 1;
            let hidden: Vec<usize> = h.get().iter().map(|&w| w as usize).collect();
            let (model, prev_extra) = match steps.last() {
                Some(s) => (&s.model, s.extra.clone()),
                None => (base, vec![Vec::new(); ranges.ranges() as usize]),
            };
            let w = model
                .widen(&hidden, change_seed(seed, k))
                .map_err(|e| format!("change {k}: {e}"))?;
            // Old keys keep their ranges; a new key goes to its source's.
            let owner = |key: u32| -> RangeId {
                if key < ranges.dim() {
                    ranges.range_of(key)
                } else {
                    (0..ranges.ranges())
                        .find(|&r| prev_extra[r as usize].binary_search(&key).is_ok())
                        .expect("every appended key has a range")
                }
            };
            let mut extra = prev_extra.clone();
            for key in w.old_dim..w.model.dim() {
                extra[owner(w.map[key as usize].src) as usize].push(key);
            }
            let maps = (0..ranges.ranges())
                .map(|r| {
                    let keys = ranges.keys(r);
                    keys.chain(extra[r as usize].iter().copied())
                        .map(|key| {
                            let d = w.map[key as usize];
                            let src = position(ranges, &prev_extra[r as usize], r, d.src)
                                .expect("a widened value reads its own range");
                            Local {
                                src,
                                a: d.a,
                                b: d.b,
                            }
                        })
                        .collect()
                })
                .collect();
            steps.push(Step {
                change: k,
                model: w.model,
                extra,
                maps,
            });
        }
        Ok(Plan {
            steps: Arc::new(steps),
        })
    }

    /// Number of widenings.
    pub fn levels(&self) -> u32 {
        self.steps.len() as u32
    }

    /// The widening that makes level `level` (1-based).
    pub fn step(&self, level: u32) -> &Step {
        &self.steps[level as usize - 1]
    }

    /// The model at `level`.
    pub fn model<'a>(&'a self, base: &'a Model, level: u32) -> &'a Model {
        match level {
            0 => base,
            l => &self.step(l).model,
        }
    }

    /// Range `r`'s appended keys at `level`.
    pub fn extra(&self, level: u32, r: RangeId) -> &[u32] {
        match level {
            0 => &[],
            l => &self.step(l).extra[r as usize],
        }
    }

    /// Number of keys at `level`.
    pub fn dim(&self, ranges: &RangeMap, level: u32) -> u32 {
        match level {
            0 => ranges.dim(),
            l => self.step(l).model.dim(),
        }
    }

    /// Range `r`'s vector widened from level `from` to level `to`.
    pub fn widen_values(&self, r: RangeId, from: u32, to: u32, mut v: Vec<f32>) -> Vec<f32> {
        for level in from + 1..=to {
            v = apply(&self.step(level).maps[r as usize], &v);
        }
        v
    }

    /// The level in force at `clock` under committed changes `changes`
    /// (boundary, change): the widenings whose boundary is at or before it.
    pub fn level_at(changes: &[(Clock, Change)], clock: Clock) -> u32 {
        changes
            .iter()
            .filter(|(b, c)| c.widens() && *b <= clock)
            .count() as u32
    }

    /// The boundary of widening `level` (1-based) among committed
    /// `changes`, if committed.
    pub fn boundary(changes: &[(Clock, Change)], level: u32) -> Option<Clock> {
        changes
            .iter()
            .filter(|(_, c)| c.widens())
            .nth(level as usize - 1)
            .map(|&(b, _)| b)
    }

    /// Range `r`'s values at `level`, gathered from a vector indexed by key.
    pub fn gather(&self, ranges: &RangeMap, level: u32, r: RangeId, by_key: &[f32]) -> Vec<f32> {
        let k = ranges.keys(r);
        let mut v = by_key[k.start as usize..k.end as usize].to_vec();
        v.extend(self.extra(level, r).iter().map(|&key| by_key[key as usize]));
        v
    }

    /// Writes range `r`'s values at `level` into a vector indexed by key.
    pub fn scatter(
        &self,
        ranges: &RangeMap,
        level: u32,
        r: RangeId,
        v: &[f32],
        by_key: &mut [f32],
    ) {
        let k = ranges.keys(r);
        let (head, tail) = v.split_at(k.len());
        by_key[k.start as usize..k.end as usize].copy_from_slice(head);
        for (&key, &x) in self.extra(level, r).iter().zip(tail) {
            by_key[key as usize] = x;
        }
    }
}

/// `v` widened by one step's map of a range.
pub fn apply(map: &[Local], v: &[f32]) -> Vec<f32> {
    map.iter().map(|d| d.a * v[d.src as usize] + d.b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Widths;
    use crate::ml::data::{load, DataKind, DataSpec};
    use crate::ml::{Activation, KeyLayout};

    fn change(hidden: Option<&[u32]>) -> (Duration, Change) {
        let c = Change {
            learning_rate: Some(0.1),
            staleness: None,
            consistency: None,
            batch_size: None,
            hidden: hidden.map(|h| Widths::new(h).unwrap()),
        };
        (Duration::ZERO, c)
    }

    /// Widening range by range, each from its own vector, gives exactly
    /// the widened model's values, so the same predictions and loss as
    /// before: for contiguous and hashed layouts, several range counts,
    /// two widenings with a hyperparameter change between them.
    #[test]
    fn ranges_widen_locally_to_the_same_function() {
        let dg = load(DataSpec {
            kind: DataKind::Digits,
            seed: 3,
        });
        let plain = Model::mlp(dg.features, 10, &[12, 8], Activation::Relu, 0.0).unwrap();
        let hashed = plain.clone().with_layout(KeyLayout::hashed(plain.dim(), 9));
        let changes = [
            change(Some(&[16, 8])),
            change(None),
            change(Some(&[20, 11])),
        ];
        for base in [plain, hashed] {
            for n in [1u32, 3, 7] {
                let ranges = RangeMap::new(base.dim(), n);
                let plan = Plan::new(&base, &ranges, 42, &changes).unwrap();
                assert_eq!(plan.levels(), 2);
                assert_eq!((plan.step(1).change, plan.step(2).change), (1, 3));
                // Trained-looking values: the initial ones, perturbed.
                let mut by_key = base.initial_params(7);
                for (i, x) in by_key.iter_mut().enumerate() {
                    *x += ((i * 37 % 101) as f32 - 50.0) * 1e-3;
                }
                let mut model = &base;
                let mut vecs: Vec<Vec<f32>> = (0..n)
                    .map(|r| plan.gather(&ranges, 0, r, &by_key))
                    .collect();
                for level in 1..=2 {
                    let direct = model
                        .widen(
                            plan.step(level).model.hidden().unwrap(),
                            change_seed(42, plan.step(level).change),
                        )
                        .unwrap();
                    let expect = direct.apply(&by_key);
                    let mut got = vec![f32::NAN; expect.len()];
                    for r in 0..n {
                        vecs[r as usize] =
                            plan.widen_values(r, level - 1, level, vecs[r as usize].clone());
                        plan.scatter(&ranges, level, r, &vecs[r as usize], &mut got);
                    }
                    for (k, (a, b)) in got.iter().zip(&expect).enumerate() {
                        assert_eq!(a.to_bits(), b.to_bits(), "key {k} at level {level}");
                    }
                    let wide = plan.model(&base, level);
                    let (before, after) = (
                        model.evaluate(&by_key, &dg.test),
                        wide.evaluate(&got, &dg.test),
                    );
                    assert_eq!(before.accuracy, after.accuracy);
                    assert!(
                        (before.loss - after.loss).abs() < 1e-5 * before.loss,
                        "{before:?} {after:?}"
                    );
                    // Gathering the widened vector gives each range's own.
                    for r in 0..n {
                        assert_eq!(plan.gather(&ranges, level, r, &got), vecs[r as usize]);
                    }
                    // Every new key has exactly one range.
                    let total: usize = (0..n)
                        .map(|r| ranges.len(r) + plan.extra(level, r).len())
                        .sum();
                    assert_eq!(total as u32, plan.dim(&ranges, level));
                    by_key = got;
                    model = wide;
                }
            }
        }
    }

    #[test]
    fn narrowing_and_linear_models_are_refused() {
        let m = Model::mlp(64, 10, &[12], Activation::Tanh, 0.0).unwrap();
        let ranges = RangeMap::new(m.dim(), 2);
        let e = Plan::new(&m, &ranges, 1, &[change(Some(&[8]))]).unwrap_err();
        assert!(
            e.starts_with("change 1: hidden layer 1 would narrow"),
            "{e}"
        );
        let lin = Model::new(crate::ml::Loss::Softmax, 64, 10, 0.0);
        let e = Plan::new(&lin, &RangeMap::new(lin.dim(), 2), 1, &[change(Some(&[8]))]);
        assert!(e.unwrap_err().contains("only a multilayer perceptron"));
        // Without a widening the plan is empty.
        let p = Plan::new(&m, &ranges, 1, &[change(None)]).unwrap();
        assert_eq!(p.levels(), 0);
        assert_eq!(p.dim(&ranges, 0), m.dim());
    }

    /// New keys spread as their sources do: widening digits' 32-unit
    /// perceptron over 4 ranges to 64 and then 96 units leaves the
    /// largest range at most 8% above the mean (range layout: 1772, 1943,
    /// 1602, 1893 keys) or 2% (hashed: 1765, 1830, 1802, 1813).
    #[test]
    fn appended_keys_spread_over_the_ranges() {
        let base = Model::mlp(64, 10, &[32], Activation::Relu, 0.0).unwrap();
        for (hashed, limit) in [(false, 1.08), (true, 1.02)] {
            let m = match hashed {
                true => base.clone().with_layout(KeyLayout::hashed(base.dim(), 1)),
                false => base.clone(),
            };
            let ranges = RangeMap::new(m.dim(), 4);
            let plan =
                Plan::new(&m, &ranges, 1, &[change(Some(&[64])), change(Some(&[96]))]).unwrap();
            let sizes: Vec<usize> = (0..4)
                .map(|r| ranges.len(r) + plan.extra(2, r).len())
                .collect();
            let mean = sizes.iter().sum::<usize>() as f64 / 4.0;
            let max = *sizes.iter().max().unwrap() as f64;
            assert!(max <= limit * mean, "hashed {hashed}: {sizes:?}");
        }
    }
}
