//! `deterministic`: a second run of the same seed has the same trace hash.
//! On a mismatch, the per-event digests of both runs locate the first
//! event that differs.
//!
//! May import: `crate::check`, `crate::core` (events, ids). Never: a
//! host (`crate::sim`, `crate::net`), `crate::run`: a checker judges from
//! events only.

use super::{Report, Violation};

/// Compares two runs. `events_*` are per-event digests with a rendering of
/// each event, when kept.
pub fn check(
    enabled: bool,
    first: &str,
    second: &str,
    events_first: &[(u64, String)],
    events_second: &[(u64, String)],
) -> Report {
    if !enabled {
        return Report::new("deterministic", false, Vec::new(), 0);
    }
    if first == second {
        return Report::new("deterministic", true, Vec::new(), 0);
    }
    let divergence = first_divergence(events_first, events_second);
    Report::new(
        "deterministic",
        true,
        vec![Violation::Nondeterministic {
            first: first.to_string(),
            second: second.to_string(),
            divergence,
        }],
        1,
    )
}

/// Describes the first position where two event sequences differ.
pub fn first_divergence(a: &[(u64, String)], b: &[(u64, String)]) -> Option<String> {
    let i = a.iter().zip(b).position(|(x, y)| x.0 != y.0);
    match i {
        Some(i) => Some(format!(
            "event #{i}: first run {} / second run {}",
            a[i].1, b[i].1
        )),
        None if a.len() != b.len() => Some(format!(
            "one run has {} events, the other {}",
            a.len(),
            b.len()
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn different_hashes_fail_and_locate_the_divergence() {
        let a = vec![(1, "x".to_string()), (2, "y".to_string())];
        let b = vec![(1, "x".to_string()), (3, "z".to_string())];
        let r = check(true, "aa", "bb", &a, &b);
        assert_eq!(r.status, Status::Fail);
        assert!(r.violations[0]
            .to_string()
            .contains("event #1: first run y / second run z"));
        assert_eq!(check(true, "aa", "aa", &a, &a).status, Status::Pass);
        assert_eq!(check(false, "aa", "bb", &a, &b).status, Status::Skipped);
    }
}
