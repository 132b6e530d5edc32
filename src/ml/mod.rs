//! The machine-learning side: data sets and linear models. Pure functions,
//! no I/O and no randomness of their own beyond seeded generators.

pub mod data;
pub mod model;

pub use data::{DataKind, DataSpec, Dataset, Matrix, Row};
pub use model::{Evaluation, Loss, Model, ParamView};
