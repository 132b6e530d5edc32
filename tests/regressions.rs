//! The regression corpus: every scenario and seed that once exposed a bug,
//! pinned in `tests/regressions/` with a comment on what it caught. Each
//! must pass now.
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::core::Bugs;

#[test]
fn every_pinned_regression_passes() {
    let mut files: Vec<_> = std::fs::read_dir("tests/regressions")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus holds {} files", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# caught: "),
            "{} does not say what it caught",
            path.display()
        );
        let scn = pssim::scenario::parse(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let o = run_with(&scn, scn.seed, Bugs::NONE, &path.display().to_string());
        assert_passed(&o);
    }
}
