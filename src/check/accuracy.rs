//! `min_accuracy`: the final test accuracy reaches the scenario's minimum.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::{Report, Violation};

/// Judges a final accuracy against an optional minimum (`None`: skipped).
pub fn check(final_accuracy: f64, min: Option<f64>) -> Report {
    match min {
        None => Report::new("min_accuracy", false, Vec::new(), 0),
        Some(min) if final_accuracy >= min => Report::new("min_accuracy", true, Vec::new(), 0),
        Some(min) => Report::new(
            "min_accuracy",
            true,
            vec![Violation::LowAccuracy {
                accuracy: final_accuracy,
                min,
            }],
            1,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn below_the_minimum_fails() {
        assert_eq!(check(0.9, Some(0.95)).status, Status::Fail);
        assert_eq!(check(0.96, Some(0.95)).status, Status::Pass);
        assert_eq!(check(0.1, None).status, Status::Skipped);
        // NaN (a diverged model) never passes.
        assert_eq!(check(f64::NAN, Some(0.5)).status, Status::Fail);
    }
}
