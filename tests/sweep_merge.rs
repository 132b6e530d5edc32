//! `pssim sweep merge DIR...`: the shards of a sweep, merged, report what
//! the unsharded sweep reports (wall-clock fields aside), write the same
//! files and draw the same plots; bad input exits 2 and names what is
//! wrong. Called in-process, as tests/cli.rs does.

use clap::Parser;
use pssim::cli::{self, Cli};
use std::path::{Path, PathBuf};

/// Runs `pssim ARGS...` in-process: (exit code, what it printed).
fn pssim(args: &[&str]) -> (u8, String) {
    let cli = Cli::try_parse_from(std::iter::once("pssim").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {args:?}: {e}"));
    let mut out = Vec::new();
    let code = cli::main(cli, &mut out);
    (code, String::from_utf8(out).expect("utf-8 output"))
}

/// A fresh temporary directory for one test.
fn tmp(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pssim-merge-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A summary's JSON without what depends on the wall clock or the split.
#[cfg(madsim)]
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    let strip = |s: &mut serde_json::Value| {
        let o = s.as_object_mut().unwrap();
        for k in ["wall_time_s", "seeds_per_s", "jobs", "shard", "all_seeds"] {
            o.remove(k);
        }
        o["percentiles"]
            .as_object_mut()
            .unwrap()
            .remove("wall_time_s");
    };
    if let Some(points) = v.get_mut("points") {
        for p in points.as_array_mut().unwrap() {
            strip(&mut p["summary"]);
        }
    } else {
        strip(&mut v);
    }
    v
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `runs.csv` without the per-run wall time.
#[cfg(madsim)]
fn rows(dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join("runs.csv")).unwrap();
    let wall = r.headers().unwrap().iter().position(|h| h == "wall_time_s");
    r.records()
        .map(|x| {
            x.unwrap()
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != wall)
                .map(|(_, f)| f.to_string())
                .collect()
        })
        .collect()
}

/// Every file of `a` is in `b`, byte for byte.
#[cfg(madsim)]
fn same_files(a: &Path, b: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(a).unwrap() {
        let p = e.unwrap().path();
        let q = b.join(p.file_name().unwrap());
        assert!(
            std::fs::read(&p).unwrap() == std::fs::read(&q).unwrap_or_default(),
            "{} differs from {}",
            q.display(),
            p.display()
        );
        n += 1;
    }
    n
}

/// A sweep of `args`, unsharded into `dir/all` and as `n` shards into
/// `dir/shard-I`; the unsharded `--json` summary and its exit code.
#[cfg(madsim)]
fn sweep_and_shards(dir: &Path, args: &[&str], n: u64) -> (u8, serde_json::Value) {
    let all = dir.join("all");
    let (plots, report) = (dir.join("all-plots"), dir.join("all.html"));
    let mut a = vec!["sweep"];
    a.extend(args);
    a.extend(["--out", s(&all), "--plots", s(&plots)]);
    a.extend(["--report", s(&report), "--json"]);
    let (code, out) = pssim(&a);
    for i in 0..n {
        let shard = format!("{i}/{n}");
        let out = dir.join(format!("shard-{i}"));
        let mut a = vec!["sweep"];
        a.extend(args);
        a.extend(["--shard", &shard, "--out", s(&out)]);
        let (c, text) = pssim(&a);
        assert!(c <= 1, "{a:?}: {text}");
    }
    (code, json(&out))
}

#[cfg(madsim)]
#[test]
fn merged_shards_report_what_the_unsharded_sweep_reports() {
    let dir = tmp("single");
    // no_dedup fails some seeds of chaos-light (duplicated updates).
    let sweep = [
        "scenarios/chaos-light.toml",
        "--seeds",
        "0..8",
        "--bug",
        "no_dedup",
        "--jobs",
        "2",
    ];
    let (code, whole) = sweep_and_shards(&dir, &sweep, 3);
    assert_eq!(code, 1, "some seeds fail: {whole}");
    let failed = whole["failed"].as_u64().unwrap();
    assert!(failed > 0 && failed < 8, "{whole}");
    assert!(whole["updates_duplicated"].as_u64().unwrap() > 0);
    let shard = |i: usize| dir.join(format!("shard-{i}"));
    // In any order.
    let (m, mp, mr) = (dir.join("m"), dir.join("m-plots"), dir.join("m.html"));
    let (code, out) = pssim(&[
        "sweep",
        "merge",
        s(&shard(2)),
        s(&shard(0)),
        s(&shard(1)),
        "--json",
        "--out",
        s(&m),
        "--plots",
        s(&mp),
        "--report",
        s(&mr),
    ]);
    assert_eq!(code, 1, "{out}");
    let merged = json(&out);
    assert_eq!(merged["seeds"], serde_json::json!([0, 8]));
    assert_eq!(merged["failures"].as_array().unwrap().len() as u64, failed);
    assert_eq!(merged["bugs"], serde_json::json!(["no_dedup"]));
    assert_eq!(comparable(merged), comparable(whole.clone()));
    // The files: summary.json as printed, runs.csv by seed.
    let written = json(&std::fs::read_to_string(m.join("summary.json")).unwrap());
    assert_eq!(comparable(written), comparable(whole));
    assert_eq!(rows(&m), rows(&dir.join("all")));
    // The same plots and report, byte for byte.
    assert_eq!(same_files(&dir.join("all-plots"), &mp), 2, "convergence");
    assert_eq!(
        std::fs::read_to_string(dir.join("all.html")).unwrap(),
        std::fs::read_to_string(&mr).unwrap()
    );
    // As text: the sweep's report, with the REPRODUCE lines.
    let (code, text) = pssim(&["sweep", "merge", s(&shard(0)), s(&shard(1)), s(&shard(2))]);
    assert_eq!(code, 1);
    assert!(text.contains("pssim sweep merge · 3 shard(s)"), "{text}");
    assert!(text.contains("seeds 0..8 · FAIL"), "{text}");
    assert!(
        text.contains("REPRODUCE: pssim run scenarios/chaos-light.toml --seed"),
        "{text}"
    );
    assert!(!text.contains("missing    seeds"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(madsim)]
#[test]
fn a_sharded_grid_merges_point_by_point() {
    let dir = tmp("grid");
    let sweep = [
        "scenarios/default.toml",
        "--seeds",
        "0..5",
        "--set",
        "training.staleness=0,2",
        "--jobs",
        "2",
    ];
    let (code, whole) = sweep_and_shards(&dir, &sweep, 2);
    assert_eq!(code, 0, "{whole}");
    assert_eq!(whole["points"].as_array().unwrap().len(), 2);
    let (m, mp, mr) = (dir.join("m"), dir.join("m-plots"), dir.join("m.html"));
    let (code, out) = pssim(&[
        "sweep",
        "merge",
        s(&dir.join("shard-0")),
        s(&dir.join("shard-1")),
        "--json",
        "--out",
        s(&m),
        "--plots",
        s(&mp),
        "--report",
        s(&mr),
    ]);
    assert_eq!(code, 0, "{out}");
    let merged = json(&out);
    assert_eq!(merged["runs"], 10);
    assert_eq!(comparable(merged), comparable(whole));
    assert_eq!(rows(&m), rows(&dir.join("all")));
    // Convergence, accuracy against bytes and the trade-off.
    assert_eq!(same_files(&dir.join("all-plots"), &mp), 6);
    assert_eq!(
        std::fs::read_to_string(dir.join("all.html")).unwrap(),
        std::fs::read_to_string(&mr).unwrap()
    );
    let (code, text) = pssim(&[
        "sweep",
        "merge",
        s(&dir.join("shard-0")),
        s(&dir.join("shard-1")),
    ]);
    assert_eq!(code, 0);
    assert!(text.contains("== training.staleness=2"), "{text}");
    assert!(text.contains("pssim grid sweep"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(madsim)]
#[test]
fn gaps_are_reported_and_a_merge_merges_again() {
    let dir = tmp("gaps");
    let sweep = ["scenarios/default.toml", "--seeds", "0..6", "--jobs", "2"];
    let (_, whole) = sweep_and_shards(&dir, &sweep, 3);
    let shard = |i: usize| dir.join(format!("shard-{i}"));
    let partial = dir.join("partial");
    let (code, out) = pssim(&[
        "sweep",
        "merge",
        s(&shard(0)),
        s(&shard(2)),
        "--json",
        "--out",
        s(&partial),
    ]);
    assert_eq!(code, 0, "{out}");
    let m = json(&out);
    assert_eq!(m["seeds"], serde_json::json!([0, 6]));
    assert_eq!(m["runs"], 4);
    assert_eq!(
        m["missing"],
        serde_json::json!([[2, 4]]),
        "shard 1/3 is 2..4"
    );
    let (_, text) = pssim(&["sweep", "merge", s(&shard(0)), s(&shard(2))]);
    assert!(
        text.contains("missing    seeds 2..4 (2 in no shard)"),
        "{text}"
    );
    // The merge of the rest fills the gap.
    let (code, out) = pssim(&["sweep", "merge", s(&partial), s(&shard(1)), "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(comparable(json(&out)), comparable(whole));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The error of merging `dirs` (the library's, to read the message; the
/// command prints it and exits 2).
fn merge_error(dirs: &[&Path]) -> String {
    let (code, out) = pssim(
        &std::iter::once("sweep")
            .chain(std::iter::once("merge"))
            .chain(dirs.iter().map(|d| s(d)))
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, 2, "{dirs:?}: {out}");
    let shards: Result<Vec<_>, String> =
        dirs.iter().map(|d| pssim::sweep::merge::read(d)).collect();
    match shards {
        Err(e) => e,
        Ok(shards) => pssim::sweep::merge::merge(&shards).expect_err("a bad merge"),
    }
}

#[cfg(madsim)]
#[test]
fn bad_input_exits_2_and_says_what_is_wrong() {
    let dir = tmp("bad");
    let d = |n: &str| dir.join(n);
    let sweep = |out: &str, args: &[&str]| {
        let o = d(out);
        let mut a = vec!["sweep"];
        a.extend(args);
        a.extend(["--jobs", "2", "--out", s(&o)]);
        let (code, text) = pssim(&a);
        assert!(code <= 1, "{a:?}: {text}");
    };
    let default = ["scenarios/default.toml", "--seeds", "0..4"];
    let with = |extra: &[&'static str]| {
        let mut a: Vec<&str> = default.to_vec();
        a.extend(extra);
        a
    };
    sweep("a0", &with(&["--shard", "0/2"]));
    sweep("a1", &with(&["--shard", "1/2"]));
    sweep(
        "wide1",
        &[
            "scenarios/default.toml",
            "--seeds",
            "0..6",
            "--shard",
            "1/2",
        ],
    );
    sweep("third1", &with(&["--shard", "1/3"]));
    sweep("bug1", &with(&["--shard", "1/2", "--bug", "no_dedup"]));
    sweep(
        "set1",
        &with(&["--shard", "1/2", "--set", "training.staleness=1"]),
    );
    sweep("det1", &with(&["--shard", "1/2", "--check-determinism"]));
    sweep(
        "other1",
        &[
            "scenarios/packet-loss.toml",
            "--seeds",
            "0..4",
            "--shard",
            "1/2",
        ],
    );
    sweep(
        "grid0",
        &with(&["--shard", "0/2", "--set", "training.staleness=0,2"]),
    );
    sweep(
        "grid1",
        &with(&["--shard", "1/2", "--set", "training.staleness=0,4"]),
    );

    let a0 = d("a0");
    let e = merge_error(&[&a0, &d("nope")]);
    assert!(e.contains("nope: no such directory"), "{e}");
    let e = merge_error(&[&a0, &d("other1")]);
    assert!(
        e.contains("shards of different scenarios") && e.contains("other1"),
        "{e}"
    );
    let e = merge_error(&[&d("grid0"), &d("grid1")]);
    assert!(e.contains("shards of different grid points"), "{e}");
    let e = merge_error(&[&a0, &d("grid1")]);
    assert!(e.contains("different grid points"), "{e}");
    let e = merge_error(&[&a0, &a0]);
    assert!(e.contains("seeds 0..2 are in two shards"), "{e}");
    let e = merge_error(&[&a0, &d("third1")]);
    assert!(e.contains("seeds 1..2 are in two shards"), "{e}");
    let e = merge_error(&[&a0, &d("bug1")]);
    assert!(
        e.contains("different --bug") && e.contains("no_dedup"),
        "{e}"
    );
    let e = merge_error(&[&a0, &d("set1")]);
    assert!(
        e.contains("different --set") && e.contains("training.staleness=1"),
        "{e}"
    );
    let e = merge_error(&[&a0, &d("det1")]);
    assert!(e.contains("different --check-determinism"), "{e}");
    let e = merge_error(&[&a0, &d("wide1")]);
    assert!(
        e.contains("different sweeps") && e.contains("--seeds 0..6"),
        "{e}"
    );

    // Broken copies of a good shard.
    let broken = |name: &str, file: &str, edit: &dyn Fn(&Path)| {
        let b = d(name);
        std::fs::create_dir_all(&b).unwrap();
        for f in ["runs.csv", "summary.json", "plot-data.json"] {
            std::fs::copy(d("a1").join(f), b.join(f)).unwrap();
        }
        edit(&b.join(file));
        let e = merge_error(&[&a0, &b]);
        assert!(e.contains(name), "{e} names {name}");
        e
    };
    let remove = |p: &Path| std::fs::remove_file(p).unwrap();
    let e = broken("no-runs", "runs.csv", &remove);
    assert!(e.contains("runs.csv: cannot read"), "{e}");
    let e = broken("no-summary", "summary.json", &remove);
    assert!(e.contains("summary.json: cannot read"), "{e}");
    let e = broken("bad-json", "summary.json", &|p| {
        std::fs::write(p, "{ no").unwrap()
    });
    assert!(e.contains("summary.json: not valid JSON"), "{e}");
    let e = broken("not-ours", "summary.json", &|p| {
        std::fs::write(p, "{}").unwrap()
    });
    assert!(e.contains("not the summary.json of a pssim sweep"), "{e}");
    let e = broken("bad-row", "runs.csv", &|p| {
        let t = std::fs::read_to_string(p).unwrap();
        std::fs::write(p, t.replacen("\n2,", "\nx,", 1)).unwrap();
    });
    assert!(
        e.contains("runs.csv:2: not a row") && e.contains("column `seed`"),
        "{e}"
    );
    let e = broken("short", "runs.csv", &|p| {
        let t = std::fs::read_to_string(p).unwrap();
        let keep: Vec<&str> = t.lines().take(2).collect();
        std::fs::write(p, keep.join("\n") + "\n").unwrap();
    });
    assert!(e.contains("runs.csv does not match summary.json"), "{e}");
    let e = broken("bad-plot", "plot-data.json", &|p| {
        std::fs::write(p, "[").unwrap()
    });
    assert!(e.contains("plot-data.json"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shards written by the library, merged by the command: no simulation,
/// so this runs in the real build (`cargo test-real`) too.
#[test]
fn merge_needs_no_simulator() {
    use pssim::sweep::{write, Failure, Row, Summary};
    let dir = tmp("nosim");
    let row = |seed: u64| Row {
        seed,
        passed: seed != 3,
        failed_checks: if seed == 3 {
            "liveness".into()
        } else {
            String::new()
        },
        final_accuracy: 0.9 + seed as f64 / 1000.0,
        sim_time_s: 1.0 + seed as f64,
        wall_time_s: 0.01,
        messages: 100 + seed,
        bytes: 1000,
        bytes_pushed: 500,
        bytes_pulled: 500,
        pushes_acked: 10,
        updates_lost: 0,
        updates_duplicated: 0,
        faults: 0,
        target_accuracy: Some(0.9),
        time_to_target_s: seed.is_multiple_of(2).then_some(0.5),
        clocks_to_target: seed.is_multiple_of(2).then_some(12.0),
        idle_fraction: 0.3,
        time_per_clock_s: 0.1,
        bottleneck: String::new(),
        stopped: "finished".into(),
        trace_hash: format!("{seed:032x}"),
        reproduce: format!("pssim run x.toml --seed {seed}"),
    };
    let shard = |i: u64, a: u64, b: u64| {
        let rows: Vec<Row> = (a..b).map(row).collect();
        let failures = rows
            .iter()
            .filter(|r| !r.passed)
            .map(|r| Failure {
                seed: r.seed,
                reproduce: r.reproduce.clone(),
                checks: vec!["liveness".into()],
                message: "liveness: stuck".into(),
            })
            .collect();
        let mut sum = Summary::of("x", a..b, Some((i, 2)), 1, &rows, failures, 0.5);
        sum.all_seeds = Some((0, 6));
        let out = dir.join(format!("s{i}"));
        write(&out, &rows, &sum).unwrap();
        out
    };
    let (s0, s1) = (shard(0, 0, 3), shard(1, 3, 6));
    let (code, out) = pssim(&["sweep", "merge", s(&s0), s(&s1), "--json"]);
    assert_eq!(code, 1, "seed 3 failed: {out}");
    let m = json(&out);
    assert_eq!(
        (m["runs"].clone(), m["failed"].clone()),
        (6.into(), 1.into())
    );
    assert_eq!(m["failures"][0]["reproduce"], "pssim run x.toml --seed 3");
    assert_eq!(m["check_failures"]["liveness"], 1);
    assert_eq!(m["percentiles"]["messages"]["p50"], 102.0);
    assert_eq!(m["percentiles"]["time_to_target_s"]["min"], 0.5);
    assert_eq!(m["wall_time_s"], 1.0, "the shards' machine time");
    assert_eq!(merge_error(&[&s0, &s0]), "seeds 0..3 are in two shards: {0} and {0} (a shard given twice, or shards of different splits)".replace("{0}", s(&s0)));
    let _ = std::fs::remove_dir_all(&dir);
}
