//! The machine-learning side: data sets (with a Zipf sampler for skewed
//! synthetic data), linear models, the multilayer perceptron and its
//! widening, and their key layout. Pure functions, no I/O and no
//! randomness of their own beyond seeded generators.
//!
//! May import: `crate::ml`, std, rand, smartcore (the data sets), libm
//! (bit-identical math), radsort (a minibatch's keys). Never: the
//! protocol (`crate::core`), a host (`crate::sim`, `crate::net`).

pub mod data;
pub mod keysort;
pub mod mlp;
pub mod model;
pub mod placement;
pub mod zipf;

pub use data::{DataKind, DataSpec, Dataset, Matrix, Row};
pub use mlp::{Activation, Affine};
pub use model::{Evaluation, Flops, Loss, Model, ParamView, Widening};
pub use placement::KeyLayout;
