//! The machine-learning side: data sets and linear models. Pure functions,
//! no I/O and no randomness of their own beyond seeded generators.
//!
//! May import: `crate::ml`, std, rand, smartcore (the data sets). Never:
//! the protocol (`crate::core`), a host (`crate::sim`, `crate::net`).

pub mod data;
pub mod model;

pub use data::{DataKind, DataSpec, Dataset, Matrix, Row};
pub use model::{Evaluation, Flops, Loss, Model, ParamView};
