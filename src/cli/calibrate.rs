//! `pssim calibrate [--model KIND]`: measures this machine and prints a
//! `[compute]` block (the body is `crate::calibrate`).
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{say_raw, CalibrateModel};
use crate::scenario::ModelKind;
use std::io::Write;

/// Measures and prints the report; always 0.
pub fn calibrate(model: CalibrateModel, out: &mut dyn Write) -> std::io::Result<i32> {
    let kind = match model {
        CalibrateModel::Logistic => ModelKind::Logistic,
        CalibrateModel::Softmax => ModelKind::Softmax,
        CalibrateModel::SparseLogistic => ModelKind::SparseLogistic,
        CalibrateModel::Mlp => ModelKind::Mlp,
    };
    let c = crate::calibrate::calibrate();
    say_raw!(out, "{}", c.report(kind));
    Ok(0)
}
