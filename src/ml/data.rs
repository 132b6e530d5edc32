//! Training data: the real breast_cancer and digits data sets and seeded
//! synthetic sparse data, split 75/25, standardized, sharded over workers.
//!
//! Provenance: breast_cancer (569 x 30, 2 classes, UCI Wisconsin Diagnostic)
//! and digits (1797 x 64, 10 classes, UCI Optical Recognition of Handwritten
//! Digits) come from the `smartcore` crate's `datasets` feature, which ships
//! the same rows as scikit-learn.
//!
//! May import: `crate::ml`, std, rand, smartcore (the data sets). Never:
//! the protocol (`crate::core`), a host (`crate::sim`, `crate::net`).

use super::zipf::ZipfUrn;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Which data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataKind {
    /// Wisconsin breast cancer: 30 dense features, 2 classes.
    BreastCancer,
    /// Handwritten digits: 64 dense features (8x8 pixels), 10 classes.
    Digits,
    /// Seeded synthetic sparse binary classification.
    Synthetic {
        /// Number of features.
        features: u32,
        /// Number of examples (train + test).
        examples: u32,
        /// Non-zero features per example, as millionths of `features`
        /// (an integer, so the spec can be a map key).
        density_ppm: u32,
        /// Feature popularity: `None` is version 1's draw (feature
        /// `floor(F * u^3)`); `Some(s)` draws features from Zipf with
        /// exponent `s / 10^6` over the feature index, without replacement
        /// within an example (0: uniform).
        skew_ppm: u32,
    },
}

/// What to load: the data set and the seed of its split (and, for synthetic
/// data, of its generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DataSpec {
    /// The data set.
    pub kind: DataKind,
    /// Seed of the train/test permutation and of synthetic generation.
    pub seed: u64,
}

/// One example's features.
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    /// All features, in order.
    Dense(&'a [f32]),
    /// Non-zero features: sorted indices and their values.
    Sparse(&'a [u32], &'a [f32]),
}

/// Examples with labels, stored densely or in CSR form.
#[derive(Clone, Debug)]
pub struct Matrix {
    /// Number of features per example.
    pub cols: usize,
    /// Class label of each example (`0..classes`).
    pub labels: Vec<u32>,
    storage: Storage,
}

#[derive(Clone, Debug)]
enum Storage {
    Dense(Vec<f32>),
    /// Binary features (every non-zero is 1, as in the synthetic sets):
    /// `ones` is as long as the longest row, and each row's values are
    /// its prefix (a value per non-zero was a quarter of a large set's
    /// memory).
    Sparse {
        indptr: Vec<usize>,
        indices: Vec<u32>,
        ones: Vec<f32>,
    },
}

impl Matrix {
    /// Number of examples.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Example `i`'s features.
    pub fn row(&self, i: usize) -> Row<'_> {
        match &self.storage {
            Storage::Dense(x) => Row::Dense(&x[i * self.cols..(i + 1) * self.cols]),
            Storage::Sparse {
                indptr,
                indices,
                ones,
            } => {
                let span = indptr[i]..indptr[i + 1];
                let len = span.len();
                Row::Sparse(&indices[span], &ones[..len])
            }
        }
    }

    /// Number of entries of `rows` (a sparse row's non-zeros, a dense
    /// row's features), reading every cache line of each sparse row's
    /// indices on the way: these loads do not depend on each other, so
    /// their cache misses overlap, where a loop over the rows' contents
    /// meets them one row at a time (rows drawn at random from a set of
    /// tens of megabytes: three quarters of a minibatch's key gathering
    /// waited on them). Reading only both ends of each row left the lines
    /// between them to miss in that loop.
    pub fn warm(&self, rows: &[u32]) -> usize {
        let (mut entries, mut seen) = (0, 0u32);
        for &i in rows {
            match self.row(i as usize) {
                Row::Dense(x) => entries += x.len(),
                Row::Sparse(idx, _) => {
                    entries += idx.len();
                    // One index per line (16 per 64 bytes), and the last.
                    for &j in idx.iter().step_by(16) {
                        seen ^= j;
                    }
                    if let Some(&j) = idx.last() {
                        seen ^= j;
                    }
                }
            }
        }
        std::hint::black_box(seen);
        entries
    }

    /// Number of entries of `rows`, as [`Matrix::warm`] counts them, reading
    /// only each row's label and where it starts and ends (for a loop that
    /// needs the rows' labels and lengths and not their indices: these of
    /// randomly drawn rows miss the cache too, and here the loads overlap).
    pub fn warm_lengths(&self, rows: &[u32]) -> usize {
        let labels = rows.iter().fold(0u32, |x, &i| x ^ self.labels[i as usize]);
        std::hint::black_box(labels);
        let entries = match &self.storage {
            Storage::Dense(_) => rows.len() * self.cols,
            Storage::Sparse { indptr, .. } => rows
                .iter()
                .map(|&i| indptr[i as usize + 1] - indptr[i as usize])
                .sum(),
        };
        // Read even where the caller drops the count (the gradient does).
        std::hint::black_box(entries)
    }

    /// Whether examples are stored sparsely.
    pub fn is_sparse(&self) -> bool {
        matches!(self.storage, Storage::Sparse { .. })
    }

    fn dense(cols: usize, x: Vec<f32>, labels: Vec<u32>) -> Matrix {
        debug_assert_eq!(x.len(), cols * labels.len());
        Matrix {
            cols,
            labels,
            storage: Storage::Dense(x),
        }
    }
}

/// A data set split into training and test examples.
#[derive(Debug)]
pub struct Dataset {
    /// Name, for output.
    pub name: String,
    /// Number of features.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Training split (75%), standardized with its own statistics.
    pub train: Matrix,
    /// Test split (25%), standardized with the training statistics.
    pub test: Matrix,
}

impl Dataset {
    /// The training rows worker `w` of `workers` trains on: every
    /// `workers`-th row of the (already shuffled) training split.
    pub fn shard(&self, w: u32, workers: u32) -> Vec<u32> {
        (w..self.train.rows() as u32)
            .step_by(workers as usize)
            .collect()
    }
}

/// Loads (once per process and spec) the data set.
pub fn load(spec: DataSpec) -> Arc<Dataset> {
    static CACHE: OnceLock<Mutex<BTreeMap<DataSpec, Arc<Dataset>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(d) = cache.lock().expect("data cache").get(&spec) {
        return d.clone();
    }
    // Built outside the lock: two threads may build the same spec at once;
    // both results are identical, so whichever lands first is kept.
    let built = Arc::new(build(spec));
    cache
        .lock()
        .expect("data cache")
        .entry(spec)
        .or_insert(built)
        .clone()
}

fn build(spec: DataSpec) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    match spec.kind {
        DataKind::BreastCancer => {
            let d = smartcore::dataset::breast_cancer::load_dataset();
            let y: Vec<f32> = d.target.iter().map(|&c| c as f32).collect();
            split_dense("breast_cancer", d.num_features, 2, d.data, &y, &mut rng)
        }
        DataKind::Digits => {
            let d = smartcore::dataset::digits::load_dataset();
            split_dense("digits", d.num_features, 10, d.data, &d.target, &mut rng)
        }
        DataKind::Synthetic {
            features,
            examples,
            density_ppm,
            skew_ppm,
        } => synthetic(features, examples, density_ppm, skew_ppm, &mut rng),
    }
}

/// Number of test examples for `n` examples: 25%, rounded up (as
/// scikit-learn's `train_test_split(test_size=0.25)`).
fn test_count(n: usize) -> usize {
    n.div_ceil(4)
}

fn split_dense(
    name: &str,
    cols: usize,
    classes: usize,
    x: Vec<f32>,
    y: &[f32],
    rng: &mut ChaCha8Rng,
) -> Dataset {
    let n = y.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let (test_rows, train_rows) = order.split_at(test_count(n));
    let gather = |rows: &[usize]| {
        let mut xs = Vec::with_capacity(rows.len() * cols);
        for &i in rows {
            xs.extend_from_slice(&x[i * cols..(i + 1) * cols]);
        }
        let labels = rows.iter().map(|&i| y[i] as u32).collect();
        Matrix::dense(cols, xs, labels)
    };
    let mut train = gather(train_rows);
    let mut test = gather(test_rows);
    let (mean, scale) = standardizer(&train);
    for m in [&mut train, &mut test] {
        if let Storage::Dense(xs) = &mut m.storage {
            for row in xs.chunks_exact_mut(cols) {
                for ((v, mu), s) in row.iter_mut().zip(&mean).zip(&scale) {
                    *v = (*v - mu) / s;
                }
            }
        }
    }
    Dataset {
        name: name.to_string(),
        features: cols,
        classes,
        train,
        test,
    }
}

/// Per-feature mean and standard deviation (population, as scikit-learn's
/// StandardScaler); a constant feature gets scale 1.
fn standardizer(m: &Matrix) -> (Vec<f32>, Vec<f32>) {
    let Storage::Dense(xs) = &m.storage else {
        unreachable!("only dense data is standardized")
    };
    let n = m.rows() as f64;
    let mut mean = vec![0f64; m.cols];
    let mut sq = vec![0f64; m.cols];
    for row in xs.chunks_exact(m.cols) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|s| *s /= n);
    for row in xs.chunks_exact(m.cols) {
        for (j, &v) in row.iter().enumerate() {
            sq[j] += (f64::from(v) - mean[j]).powi(2);
        }
    }
    let scale = sq
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-12 {
                sd as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), scale)
}

/// Synthetic sparse binary classification, in the spirit of click-through
/// data:
/// - features are binary; each example holds exactly `nnz` distinct
///   features drawn from Zipf(s) over the feature index (`skew = s`),
///   feature 0 the most frequent ([`super::zipf`]); `s = 0` (the default)
///   is uniform, `s = 2/3` is about version 1's generator (feature
///   `floor(F * u^3)`: the first 0.1% of features take 10% of all
///   occurrences and most features are rare);
/// - the hidden weights are standard normal on that frequent head (the
///   first `max(10, F/1000)` features) and 10x smaller on the tail, as most
///   signal in real sparse data lives in common features;
/// - the label is the sign of the standardized margin plus N(0, 0.3^2)
///   noise (Bayes accuracy about 0.9).
///
/// Plain SGD reaches about 0.84 test accuracy at 10^5 features and 0.79 at
/// 10^6 (20000 examples, 100 non-zeros each), overfitting the rare tail.
fn synthetic(
    features: u32,
    examples: u32,
    density_ppm: u32,
    skew_ppm: u32,
    rng: &mut ChaCha8Rng,
) -> Dataset {
    let f = features as usize;
    let nnz = ((u64::from(features) * u64::from(density_ppm)) / 1_000_000).max(1) as usize;
    let head = (f / 1000).max(10);
    let truth: Vec<f32> = (0..f)
        .map(|j| normal(rng) * if j < head { 1.0 } else { 0.1 })
        .collect();
    let mut urn = ZipfUrn::new(features, f64::from(skew_ppm) / 1e6);
    let n = examples as usize;
    let n_test = test_count(n);
    // Rows are generated independently, so the first quarter is a fair,
    // seeded test split: written straight into its own matrix (a copy
    // of the whole set made the setup's memory peak).
    let mut parts = [
        (n_test, vec![0usize], Vec::new()),
        (n - n_test, vec![0], Vec::new()),
    ];
    for (rows, _, indices) in parts.iter_mut() {
        indices.reserve_exact(*rows * nnz);
    }
    let mut margins = Vec::with_capacity(n);
    let mut row = Vec::with_capacity(nnz);
    for i in 0..n {
        row.clear();
        urn.sample(nnz, rng, &mut row);
        row.sort_unstable();
        margins.push(row.iter().map(|&j| truth[j as usize]).sum::<f32>());
        let (_, indptr, indices) = &mut parts[usize::from(i >= n_test)];
        indices.extend_from_slice(&row);
        indptr.push(indices.len());
    }
    drop(urn);
    let mean = margins.iter().sum::<f32>() / margins.len() as f32;
    let sd = (margins.iter().map(|m| (m - mean).powi(2)).sum::<f32>() / margins.len() as f32)
        .sqrt()
        .max(1e-6);
    let mut labels: Vec<u32> = margins
        .iter()
        .map(|m| u32::from((m - mean) / sd + 0.3 * normal(rng) > 0.0))
        .collect();
    let [(_, test_ptr, test_idx), (_, train_ptr, train_idx)] = parts;
    let train_labels = labels.split_off(n_test);
    let matrix = |labels: Vec<u32>, indptr: Vec<usize>, indices: Vec<u32>| Matrix {
        cols: f,
        labels,
        storage: Storage::Sparse {
            indptr,
            indices,
            ones: vec![1.0; nnz],
        },
    };
    let skew = if skew_ppm == 0 {
        String::new()
    } else {
        format!(", skew {}", f64::from(skew_ppm) / 1e6)
    };
    Dataset {
        name: format!("synthetic({features}x{examples}, {nnz} nnz/example{skew})"),
        features: f,
        classes: 2,
        test: matrix(labels, test_ptr, test_idx),
        train: matrix(train_labels, train_ptr, train_idx),
    }
}

/// A standard normal draw (Box-Muller), from the given seeded generator.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: DataKind) -> DataSpec {
        DataSpec { kind, seed: 0 }
    }

    #[test]
    fn real_sets_have_their_published_shapes() {
        let bc = load(spec(DataKind::BreastCancer));
        assert_eq!(bc.train.rows() + bc.test.rows(), 569);
        assert_eq!(bc.test.rows(), 143);
        assert_eq!(bc.features, 30);
        let dg = load(spec(DataKind::Digits));
        assert_eq!(dg.train.rows() + dg.test.rows(), 1797);
        assert_eq!(dg.test.rows(), 450);
        assert_eq!(dg.features, 64);
        assert!(dg.train.labels.iter().all(|&c| c < 10));
        // 212 malignant, 357 benign in the original data.
        let ones = bc
            .train
            .labels
            .iter()
            .chain(&bc.test.labels)
            .filter(|&&c| c == 1)
            .count();
        assert!(ones == 357 || ones == 212, "{ones}");
    }

    #[test]
    fn training_split_is_standardized() {
        let d = load(spec(DataKind::BreastCancer));
        for j in 0..d.features {
            let col: Vec<f64> = (0..d.train.rows())
                .map(|i| match d.train.row(i) {
                    Row::Dense(r) => f64::from(r[j]),
                    Row::Sparse(..) => unreachable!(),
                })
                .collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 1e-4, "feature {j} mean {mean}");
            assert!((var - 1.0).abs() < 1e-3, "feature {j} var {var}");
        }
    }

    #[test]
    fn splits_are_seeded() {
        let a = build(DataSpec {
            kind: DataKind::Digits,
            seed: 1,
        });
        let b = build(DataSpec {
            kind: DataKind::Digits,
            seed: 1,
        });
        let c = build(DataSpec {
            kind: DataKind::Digits,
            seed: 2,
        });
        assert_eq!(a.test.labels, b.test.labels);
        assert_ne!(a.test.labels, c.test.labels);
    }

    #[test]
    fn shards_partition_the_training_rows() {
        let d = load(spec(DataKind::Digits));
        let mut all: Vec<u32> = (0..5).flat_map(|w| d.shard(w, 5)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..d.train.rows() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn synthetic_rows_are_sparse_sorted_and_balanced() {
        let d = build(DataSpec {
            kind: DataKind::Synthetic {
                features: 5000,
                examples: 2000,
                density_ppm: 4000,
                skew_ppm: 0,
            },
            seed: 3,
        });
        assert_eq!(d.test.rows(), 500);
        for i in 0..d.train.rows() {
            let Row::Sparse(idx, _) = d.train.row(i) else {
                panic!()
            };
            assert!(!idx.is_empty() && idx.len() <= 20);
            assert!(idx.windows(2).all(|w| w[0] < w[1]));
        }
        let pos = d.train.labels.iter().filter(|&&y| y == 1).count() as f64 / d.train.rows() as f64;
        assert!((0.3..0.7).contains(&pos), "positives {pos}");
        // `warm` counts a batch's entries, repeated rows included.
        let rows = [7u32, 0, 7, 1499];
        let want: usize = rows
            .iter()
            .map(|&i| match d.train.row(i as usize) {
                Row::Sparse(idx, _) => idx.len(),
                Row::Dense(_) => unreachable!(),
            })
            .sum();
        assert_eq!(d.train.warm(&rows), want);
        assert_eq!(d.train.warm(&[]), 0);
        assert_eq!(d.train.warm_lengths(&rows), want);
        let dense = load(spec(DataKind::Digits));
        assert_eq!(dense.train.warm(&[0, 5, 5]), 3 * 64);
        assert_eq!(dense.train.warm_lengths(&[0, 5, 5]), 3 * 64);
    }

    #[test]
    fn skewed_synthetic_rows_hold_exactly_nnz_zipf_features() {
        let spec = |skew_ppm| DataSpec {
            kind: DataKind::Synthetic {
                features: 2000,
                examples: 4000,
                density_ppm: 10_000,
                skew_ppm,
            },
            seed: 4,
        };
        let freq = |d: &Dataset| {
            let mut c = vec![0u64; d.features];
            for i in 0..d.train.rows() {
                let Row::Sparse(idx, _) = d.train.row(i) else {
                    panic!()
                };
                assert_eq!(idx.len(), 20, "exactly nnz distinct features");
                assert!(idx.windows(2).all(|w| w[0] < w[1]));
                idx.iter().for_each(|&j| c[j as usize] += 1);
            }
            c
        };
        let skewed = build(spec(1_100_000));
        let c = freq(&skewed);
        // Feature 0 first, the head far above the tail.
        assert_eq!(c.iter().max(), Some(&c[0]));
        let head: u64 = c[..20].iter().sum();
        let tail: u64 = c[1000..].iter().sum();
        assert!(head > 5 * tail, "head {head} tail {tail}");
        assert!(skewed.name.contains("skew 1.1"), "{}", skewed.name);
        // Skew 0: every feature about equally often (20 x 3000 / 2000 = 30).
        let c = freq(&build(spec(0)));
        let (lo, hi) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        assert!(*lo >= 8 && *hi <= 60, "uniform counts {lo}..{hi}");
        // Seeded: the same spec gives the same rows.
        let again = build(spec(1_100_000));
        assert_eq!(again.train.labels, skewed.train.labels);
    }
}
