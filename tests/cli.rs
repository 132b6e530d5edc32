//! The command line's bodies, called as a library (`pssim::cli`): what
//! each command prints and its exit code, without a process.

use clap::Parser;
use pssim::cli::{self, Cli};

/// Runs `pssim ARGS...` in-process: (exit code, what it printed).
fn pssim(args: &[&str]) -> (u8, String) {
    let cli = Cli::try_parse_from(std::iter::once("pssim").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {args:?}: {e}"));
    let mut out = Vec::new();
    let code = cli::main(cli, &mut out);
    (code, String::from_utf8(out).expect("utf-8 output"))
}

// Runs the simulator: the real build refuses `run` and `sweep` (exit 2).
#[cfg(madsim)]
#[test]
fn run_json_prints_the_outcome_with_its_reproduce_line() {
    let (code, out) = pssim(&["run", "scenarios/default.toml", "--seed", "2", "--json"]);
    assert_eq!(code, 0, "{out}");
    let o: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(o["seed"], 2);
    assert_eq!(o["passed"], true);
    assert_eq!(o["reproduce"], "pssim run scenarios/default.toml --seed 2");
    assert_eq!(o["checks"]["staleness_bound"], "pass");
}

// Runs the simulator: the real build refuses `run` and `sweep` (exit 2).
#[cfg(madsim)]
#[test]
fn a_summary_ends_with_reproduce() {
    let (code, out) = pssim(&[
        "run",
        "scenarios/default.toml",
        "--set",
        "training.clocks=5",
    ]);
    assert_eq!(code, 1, "min_accuracy fails after 5 clocks:\n{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains(
            "REPRODUCE: pssim run scenarios/default.toml --seed 1 --set training.clocks=5"
        ),
        "{out}"
    );
}

#[test]
fn bad_input_exits_2() {
    assert_eq!(pssim(&["run", "no/such/file.toml"]).0, 2);
    assert_eq!(
        pssim(&["run", "scenarios/default.toml", "--set", "cluster.nope=1"]).0,
        2
    );
    assert_eq!(
        pssim(&["run", "scenarios/default.toml", "--bug", "no_such_bug"]).0,
        2
    );
    assert_eq!(
        pssim(&["sweep", "scenarios/default.toml", "--seeds", "5..2"]).0,
        2
    );
    assert_eq!(
        pssim(&["local", "scenarios/default.toml", "--timeout", "soon"]).0,
        2
    );
    assert_eq!(
        pssim(&[
            "node",
            "--cluster",
            "no/such/cluster.toml",
            "--id",
            "server-0"
        ])
        .0,
        2
    );
}

#[test]
fn check_validates_every_library_scenario() {
    let files: Vec<String> = std::fs::read_dir("scenarios")
        .expect("scenarios/")
        .map(|e| e.expect("entry").path().display().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let (code, out) = pssim(&args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), files.len(), "{out}");
}

#[test]
fn bugs_lists_every_planted_bug() {
    let (code, out) = pssim(&["bugs"]);
    assert_eq!(code, 0);
    for b in pssim::core::Bug::ALL {
        assert!(out.contains(b.name()), "{} missing:\n{out}", b.name());
    }
}

// Runs the simulator: the real build refuses `run` and `sweep` (exit 2).
#[cfg(madsim)]
#[test]
fn sweep_counts_passes_and_writes_its_files() {
    let dir = std::env::temp_dir().join(format!("pssim-cli-sweep-{}", std::process::id()));
    let d = dir.display().to_string();
    let (code, out) = pssim(&[
        "sweep",
        "scenarios/default.toml",
        "--seeds",
        "1..4",
        "--jobs",
        "2",
        "--json",
        "--out",
        &d,
    ]);
    assert_eq!(code, 0, "{out}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON summary");
    assert_eq!(s["runs"], 3);
    assert_eq!(s["passed"], 3);
    assert!(dir.join("runs.csv").exists() && dir.join("summary.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
