//! The HTML report: one self-contained file (no scripts, no external
//! resources) with the scenario, the checks and their violations, the
//! metrics, the faults, the plots inline as SVG, and the REPRODUCE line.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use crate::check::Status;
use crate::outcome::Outcome;
use crate::plot;
use crate::scenario::Scenario;
use crate::sweep::{Curve, GridReport, SweepResult};
use std::fmt::Write as _;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 2em auto; max-width: 1060px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.pass { color: #007a4d; font-weight: bold; }
.fail { color: #c0392b; font-weight: bold; }
.skipped { color: #888; }
.verdict { font-size: 1.3em; padding: 0.2em 0.6em; border-radius: 4px; color: white; }
.verdict.pass { background: #009e73; } .verdict.fail { background: #d55e00; }
pre, code { background: #f7f7f7; padding: 0.1em 0.3em; font-size: 0.9em; }
pre { padding: 0.8em; overflow-x: auto; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

fn status_cell(s: Status) -> String {
    format!("<span class=\"{s}\">{s}</span>")
}

fn figure(svg: Result<String, String>, caption: &str) -> String {
    match svg {
        Ok(svg) => {
            // Drop the XML prolog: the SVG is inline.
            let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            format!(
                "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
                esc(caption)
            )
        }
        Err(e) => format!("<p class=\"fail\">plot failed: {}</p>\n", esc(&e)),
    }
}

/// The report of one run.
pub fn run(scn: &Scenario, o: &Outcome) -> String {
    let mut b = String::new();
    let verdict = if o.passed { "pass" } else { "fail" };
    let _ = writeln!(
        b,
        "<h1>pssim · {} · seed {} <span class=\"verdict {verdict}\">{}</span></h1>",
        esc(&o.scenario),
        o.seed,
        verdict.to_uppercase()
    );
    if !scn.description.is_empty() {
        let _ = writeln!(b, "<p>{}</p>", esc(&scn.description));
    }
    let _ = writeln!(b, "<p>Reproduce: <code>{}</code></p>", esc(&o.reproduce));
    let _ = writeln!(
        b,
        "<h2>Checks</h2>\n<table><tr><th>check</th><th>verdict</th><th>violations</th></tr>"
    );
    for (name, status) in &o.checks {
        let v: Vec<String> = o
            .violations
            .get(name)
            .into_iter()
            .flatten()
            .map(|v| esc(v))
            .collect();
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            status_cell(*status),
            v.join("<br>")
        );
    }
    b.push_str("</table>\n");
    if let Some(p) = &o.panic {
        let _ = writeln!(b, "<p class=\"fail\">panic: {}</p>", esc(p));
    }
    let _ = writeln!(b, "<h2>Metrics</h2>\n<table>");
    let reference = o
        .reference_accuracy
        .map_or("-".to_string(), |r| format!("{r:.4}"));
    let time_to_target = o
        .time_to_target_s
        .map_or("-".to_string(), |t| format!("{t:.3} s"));
    let rows = [
        ("final test accuracy", format!("{:.4}", o.final_accuracy)),
        ("reference accuracy (scikit-learn)", reference),
        ("time to target accuracy", time_to_target),
        (
            "simulated time",
            format!("{:.3} s ({})", o.sim_time_s, o.stopped),
        ),
        ("wall time", format!("{:.3} s", o.wall_time_s)),
        (
            "messages",
            format!("{} ({} dropped)", o.messages, o.messages_dropped),
        ),
        (
            "bytes",
            format!(
                "{} ({} pushed, {} pulled)",
                o.bytes, o.bytes_pushed, o.bytes_pulled
            ),
        ),
        ("pushes acknowledged", o.pushes_acked.to_string()),
        (
            "updates lost / duplicated",
            format!("{} / {}", o.updates_lost, o.updates_duplicated),
        ),
        (
            "worker idle fraction",
            format!("{:.1}%", o.idle_fraction * 100.0),
        ),
        ("trace hash", o.trace_hash.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    b.push_str("</table>\n");
    if !o.faults.is_empty() || !o.failovers.is_empty() {
        let _ = writeln!(b, "<h2>Faults</h2>");
        if let Some(s) = &o.swarm {
            let _ = writeln!(b, "<p>chaos swarm: {}</p>", esc(s));
        }
        let _ = writeln!(b, "<table><tr><th>start (s)</th><th>end (s)</th><th>kind</th><th>nodes</th><th>detail</th></tr>");
        for f in &o.faults {
            let end = f.end_s.map_or("never".to_string(), |e| format!("{e:.3}"));
            let _ = writeln!(
                b,
                "<tr><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.start_s,
                end,
                esc(f.kind),
                esc(&f.nodes.join(", ")),
                esc(&f.detail)
            );
        }
        b.push_str("</table>\n");
        for f in &o.failovers {
            let rec = f
                .recovery_s
                .map_or("not served again within the run".to_string(), |r| {
                    format!("served again after {:.0} ms", r * 1e3)
                });
            let _ = writeln!(
                b,
                "<p>failover: {} crashed at {:.3} s; ranges {:?} {}</p>",
                esc(&f.server),
                f.crash_s,
                f.ranges,
                esc(&rec)
            );
        }
    }
    let _ = writeln!(b, "<h2>Plots</h2>");
    b.push_str(&figure(
        plot::svg_string(&plot::throughput::Throughput { scn, o }),
        "Throughput over simulated time; faults shaded, failovers marked.",
    ));
    b.push_str(&figure(
        plot::svg_string(&plot::accuracy::Accuracy { scn, o }),
        "Test accuracy and training loss; the reference dashed.",
    ));
    b.push_str(&figure(
        plot::svg_string(&plot::staleness::Staleness { scn, o }),
        "Clocks behind per read, per reader; the SSP bound in red.",
    ));
    b.push_str(&figure(
        plot::svg_string(&plot::timeline::Timeline { scn, o }),
        "Per-worker timelines: pull, compute, push.",
    ));
    if !o.load.is_empty() {
        b.push_str(&figure(
            plot::svg_string(&plot::load::Load { o }),
            "Per-server utilisation of the inbound and outbound interface and the CPU; faults shaded.",
        ));
    }
    let _ = writeln!(b, "<h2>Scenario</h2>\n<pre>{}</pre>", esc(&scn.to_toml()));
    page(&format!("pssim · {} · seed {}", o.scenario, o.seed), &b)
}

/// The report of a sweep (a grid or a single point) of a scenario
/// described as `description`.
pub fn sweep(description: &str, report: &GridReport, results: &[SweepResult]) -> String {
    let mut b = String::new();
    let verdict = if report.failed == 0 { "pass" } else { "fail" };
    let _ = writeln!(
        b,
        "<h1>pssim sweep · {} <span class=\"verdict {verdict}\">{}</span></h1>",
        esc(&report.scenario),
        verdict.to_uppercase()
    );
    if !description.is_empty() {
        let _ = writeln!(b, "<p>{}</p>", esc(description));
    }
    let _ = writeln!(
        b,
        "<p>{} runs · {} passed · {} failed</p>",
        report.runs, report.passed, report.failed
    );
    let missing: Vec<(u64, u64)> = report
        .points
        .first()
        .map_or(Vec::new(), |p| p.summary.missing.clone());
    if !missing.is_empty() {
        let _ = writeln!(
            b,
            "<p class=\"fail\">Seeds in no shard: {}</p>",
            esc(&crate::sweep::ranges(&missing))
        );
    }
    let _ = writeln!(b, "<h2>Points</h2>\n<pre>{}</pre>", esc(&report.render()));
    if !report.failures.is_empty() {
        let _ = writeln!(b, "<h2>Failing seeds</h2>\n<table><tr><th>seed</th><th>reproduce</th><th>first violation</th></tr>");
        for f in report.failures.iter().take(50) {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                f.seed,
                esc(&f.reproduce),
                esc(&f.message)
            );
        }
        b.push_str("</table>\n");
    }
    let _ = writeln!(b, "<h2>Plots</h2>");
    let runs: Vec<(String, &Curve)> = report
        .points
        .iter()
        .zip(results)
        .filter_map(|(p, r)| r.first.as_ref().map(|o| (p.sets.join(" "), o)))
        .collect();
    if runs.is_empty() {
        b.push_str(
            "<p>No accuracy curve of a first seed (merged shards without plot-data.json).</p>\n",
        );
    } else {
        b.push_str(&figure(
            plot::svg_string(&plot::accuracy::Convergence {
                scenario: &report.scenario,
                runs: &runs,
                x: plot::accuracy::Progress::Time,
            }),
            "Test accuracy of each point's first seed.",
        ));
    }
    if runs.len() > 1 {
        b.push_str(&figure(
            plot::svg_string(&plot::accuracy::Convergence {
                scenario: &report.scenario,
                runs: &runs,
                x: plot::accuracy::Progress::Bytes,
            }),
            "The same runs against the bytes of pushes and pulls sent.",
        ));
    }
    if let Some(t) = plot::tradeoff_points(report) {
        let chart = plot::tradeoff::Tradeoff {
            scenario: &report.scenario,
            key: &report.varying[0],
            seeds: report.points[0].summary.runs,
            points: &t,
        };
        b.push_str(&figure(
            plot::svg_string(&chart),
            &format!("Time to target and idle fraction against {}.", chart.key),
        ));
    }
    page(&format!("pssim sweep · {}", report.scenario), &b)
}
