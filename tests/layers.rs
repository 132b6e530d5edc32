//! The architecture, enforced: each layer imports only the layers below
//! it, and the two hosts (`sim`: madsim, `net`: tokio TCP) never import
//! each other (docs/ARCHITECTURE.md). Reads every source file and fails
//! on an import its module's rule does not allow, naming file and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crate's modules a file under `path` may name (`crate::X`), and the
/// host runtimes it may use.
fn allowed(path: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const VIEWS: &[&str] = &[
        "outcome", "run", "scenario", "check", "trace", "sweep", "plot", "core",
    ];
    let top = path.split('/').nth(1).unwrap_or("");
    let top = top.trim_end_matches(".rs");
    match top {
        "core" => (&["core", "ml"], &[]),
        "ml" => (&["ml"], &[]),
        "scenario" => (&["scenario", "core"], &[]),
        "check" => (&["check", "core"], &[]),
        "trace" => (&["trace", "check", "core"], &[]),
        "run" => (
            &["run", "core", "ml", "scenario", "check", "trace", "outcome"],
            &[],
        ),
        "outcome" | "summary" | "plot" | "report" => (VIEWS, &[]),
        "sweep" if path.ends_with("exec.rs") => (&["sweep", "outcome", "scenario", "sim"], &[]),
        "sweep" => (&["sweep", "outcome", "scenario"], &[]),
        "sim" => (
            &[
                "sim", "core", "ml", "scenario", "run", "check", "trace", "outcome",
            ],
            &["madsim"],
        ),
        "net" => (
            &[
                "net", "core", "ml", "scenario", "run", "check", "trace", "outcome", "summary",
            ],
            &["tokio"],
        ),
        // The simulator's tools drive it (and bench times real TCP too).
        "shrink" => (&["shrink", "sim", "outcome", "scenario"], &[]),
        "bench" => (
            &[
                "bench",
                "sim",
                "net",
                "core",
                "scenario",
                "sweep",
                "run",
                "outcome",
                "calibrate",
            ],
            &["madsim"],
        ),
        // Measures the real machine: no host, no simulation.
        "calibrate" => (&["calibrate", "core", "ml", "run", "scenario"], &[]),
        // The top: the command line may call anything.
        "cli" | "bin" | "lib" => (&["*"], &["*"]),
        other => panic!("{path}: module `{other}` has no layering rule in tests/layers.rs"),
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable src/") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::X` (or `pssim::X`) names and runtime crates used on a line of code.
fn imports(line: &str) -> (BTreeSet<String>, BTreeSet<&'static str>) {
    let mut mods = BTreeSet::new();
    for prefix in ["crate::", "pssim::"] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            mods.insert(name);
        }
    }
    let mut runtimes = BTreeSet::new();
    for rt in ["madsim", "tokio"] {
        let used = line.contains(&format!("{rt}::"))
            && !line.contains(&format!("{rt}::\"")) // a string naming it
            && !line.contains(&format!("`{rt}::"));
        if used {
            runtimes.insert(rt);
        }
    }
    (mods, runtimes)
}

#[test]
fn every_import_respects_the_layering() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let path = f.display().to_string();
        let (mods, runtimes) = allowed(&path);
        let text = std::fs::read_to_string(f).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let (used, rts) = imports(code);
            for m in used {
                if !mods.contains(&"*") && !mods.contains(&m.as_str()) {
                    bad.push(format!(
                        "{path}:{}: imports crate::{m}: {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
            for rt in rts {
                if !runtimes.contains(&"*") && !runtimes.contains(&rt) {
                    bad.push(format!("{path}:{}: uses {rt}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that cross the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_rule_catches_a_host_importing_the_other() {
    // The checker itself must be able to fail: a line of net/ naming sim.
    let (mods, _) = allowed("src/net/host.rs");
    let (used, _) = imports("use crate::sim::world::World;");
    assert!(used.iter().any(|m| !mods.contains(&m.as_str())));
    let (_, rts) = imports("let h = madsim::runtime::Handle::current();");
    assert!(rts.contains("madsim") && !allowed("src/net/host.rs").1.contains(&"madsim"));
}

#[test]
fn every_module_header_says_what_it_may_import() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("readable source");
            let header: String = text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            !(header.contains("May import") && header.contains("Never"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "module headers without a `May import: ... Never: ...` rule:\n{}",
        missing.join("\n")
    );
}
