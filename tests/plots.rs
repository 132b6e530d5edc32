//! Plots: every chart is written as PNG and SVG, and rerunning a seed gives
//! byte-identical files (bundled font, deterministic runs).
// Needs the simulator build (not `cargo test-real`).
#![cfg(madsim)]

mod common;

use common::*;
use pssim::core::Bugs;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pssim-plots-{name}-{}", std::process::id()))
}

#[test]
fn run_plots_are_written_and_byte_identical_for_a_seed() {
    let scn = file("scenarios/replicated-server-crash.toml");
    let (a, b) = (tmp("a"), tmp("b"));
    let mut written = Vec::new();
    for dir in [&a, &b] {
        let o = run_with(&scn, 3, Bugs::NONE, "x");
        written = pssim::plot::run(&scn, &o, dir).unwrap();
    }
    // Throughput, accuracy, staleness, timeline and load, PNG and SVG.
    assert_eq!(written.len(), 10, "{written:?}");
    for f in &written {
        let name = f.file_name().unwrap();
        let x = std::fs::read(a.join(name)).unwrap();
        let y = std::fs::read(b.join(name)).unwrap();
        assert!(x.len() > 1000, "{name:?} is nearly empty");
        assert!(x == y, "{name:?} differs between two runs of one seed");
        if name.to_string_lossy().ends_with(".png") {
            assert_eq!(&x[1..4], b"PNG");
        } else {
            assert!(String::from_utf8_lossy(&x).contains("<svg"));
        }
    }
    // The failover is marked on the throughput chart.
    let svg = std::fs::read_to_string(a.join("throughput.svg")).unwrap();
    assert!(svg.contains("server-1 down"), "no failover mark");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn a_staleness_grid_sweep_plots_the_trade_off() {
    let out = tmp("grid");
    let bin = env!("CARGO_BIN_EXE_pssim");
    let status = std::process::Command::new(bin)
        .args([
            "sweep",
            "scenarios/staleness-tradeoff.toml",
            "--set",
            "training.staleness=0,4,16",
            "--set",
            "training.clocks=60",
            "--seeds",
            "0..2",
            "--plots",
        ])
        .arg(&out)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("grid sweep") && stdout.contains("3 point(s)"),
        "{stdout}"
    );
    for f in [
        "tradeoff.png",
        "tradeoff.svg",
        "convergence.png",
        "runs.csv",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"], 6);
    assert_eq!(summary["points"].as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_html_report_is_self_contained_and_complete() {
    let scn = file("scenarios/replicated-server-crash.toml");
    let o = run_with(
        &scn,
        1,
        Bugs::NONE,
        "scenarios/replicated-server-crash.toml",
    );
    let html = pssim::report::run(&scn, &o);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needed in [
        "replicas_agree",
        "no_lost_updates",
        "pssim run scenarios/replicated-server-crash.toml --seed 1",
        "served again after",
        "[cluster]",
    ] {
        assert!(html.contains(needed), "the report lacks {needed:?}");
    }
    assert_eq!(
        html.matches("<svg").count(),
        5,
        "five inline plots (load included)"
    );
    // Nothing to fetch: no scripts, no external images or styles.
    for banned in ["<script", "src=", "<link", "url("] {
        assert!(!html.contains(banned), "the report contains {banned:?}");
    }
    // Text from the scenario is escaped.
    assert!(pssim::report::esc("<a & \"b\">") == "&lt;a &amp; &quot;b&quot;&gt;");
}
