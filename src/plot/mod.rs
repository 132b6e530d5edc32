//! Plots for design reviews (plotters, PNG and SVG, the bundled DejaVu
//! font, no system libraries): byte-identical when a seed is rerun.
//!
//! One chart per file: `throughput.rs` (updates/s and bytes/s with fault
//! intervals shaded and failovers marked), `accuracy.rs` (test accuracy and
//! training loss against the reference), `staleness.rs` (how far behind
//! reads were, with the bound), `timeline.rs` (per-worker pull / compute /
//! push), `tradeoff.rs` (a parameter sweep: time to target and idle
//! fraction against the swept value), `load.rs` (per-server interface and
//! CPU utilisation, for a run whose host metered them).
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

pub mod accuracy;
pub mod load;
pub mod scaling;
pub mod staleness;
pub mod throughput;
pub mod timeline;
pub mod tradeoff;

use crate::outcome::Outcome;
use crate::scenario::Scenario;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Pixel size of every chart.
pub const SIZE: (u32, u32) = (1000, 560);

/// The font family every chart uses (DejaVu Sans, bundled).
pub const FONT: &str = "sans-serif";

static FONTS: Once = Once::new();

/// Registers the bundled font (once per process).
pub fn register_fonts() {
    FONTS.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .and_then(|()| {
                plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
            });
        assert!(ok.is_ok(), "the bundled DejaVu font is valid");
    });
}

/// Colours, colour-blind safe (Okabe-Ito).
pub mod palette {
    use plotters::style::RGBColor;
    /// Blue.
    pub const BLUE: RGBColor = RGBColor(0, 114, 178);
    /// Orange.
    pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
    /// Green.
    pub const GREEN: RGBColor = RGBColor(0, 158, 115);
    /// Vermillion.
    pub const RED: RGBColor = RGBColor(213, 94, 0);
    /// Purple.
    pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
    /// Sky blue.
    pub const SKY: RGBColor = RGBColor(86, 180, 233);
    /// Grey.
    pub const GREY: RGBColor = RGBColor(120, 120, 120);

    /// Yellow.
    pub const YELLOW: RGBColor = RGBColor(240, 228, 66);
    /// Black.
    pub const BLACK: RGBColor = RGBColor(40, 40, 40);

    /// A colour per series index.
    pub fn series(i: usize) -> RGBColor {
        [BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, BLACK, GREY][i % 9]
    }
}

/// A drawing error, as text.
pub type PlotResult = Result<(), String>;

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// File name (without extension).
    fn name(&self) -> &'static str;
    /// Draws the chart.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult;
}

/// Draws `chart` into `dir/<name>.png` and `dir/<name>.svg`; returns both
/// paths.
pub fn both(dir: &Path, chart: &impl Chart) -> Result<Vec<PathBuf>, String> {
    register_fonts();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let png = dir.join(format!("{}.png", chart.name()));
    let svg = dir.join(format!("{}.svg", chart.name()));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root)?;
        root.present()
            .map_err(|e| format!("{}: {e}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root)?;
        root.present()
            .map_err(|e| format!("{}: {e}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

/// Draws `chart` as an SVG document in memory (for the HTML report).
pub fn svg_string(chart: &impl Chart) -> Result<String, String> {
    register_fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// A chart over `f64 x f64`.
pub type Chart2d<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draws a dashed line through `points` with a legend entry.
pub fn dashed<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart2d<'a, DB>,
    points: Vec<(f64, f64)>,
    (dash, gap): (u32, u32),
    colour: RGBColor,
    label: String,
) -> PlotResult {
    chart
        .draw_series(DashedLineSeries::new(
            points,
            dash,
            gap,
            colour.stroke_width(2),
        ))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    Ok(())
}

/// Draws the legend box in `position`.
pub fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart2d<'a, DB>,
    position: SeriesLabelPosition,
) -> PlotResult {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(palette::GREY)
        .draw()
        .map_err(err)
}

/// The shading colour of a fault kind.
pub fn fault_colour(kind: &str) -> RGBColor {
    match kind {
        "crash" => palette::RED,
        "partition" => palette::PURPLE,
        "clog" => palette::ORANGE,
        "loss" => palette::GREY,
        "straggler" => palette::GREEN,
        _ => palette::SKY,
    }
}

/// Shades every fault interval of `o` from 0 up to `top` on a chart that
/// ends at `end` (a fault that never heals runs to the end; a short one
/// keeps a visible width).
pub fn shade_faults<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart2d<'a, DB>,
    o: &Outcome,
    end: f64,
    top: f64,
) -> PlotResult {
    for f in &o.faults {
        let x1 = f.end_s.unwrap_or(end).min(end);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, 0.0), (x1.max(f.start_s + end / 400.0), top)],
                fault_colour(f.kind).mix(0.13).filled(),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// The fault kinds of `o`, each once, by name (for a legend).
pub fn fault_kinds(o: &Outcome) -> Vec<&'static str> {
    let mut kinds: Vec<&str> = o.faults.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Turns a plotters error into text.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes every chart of one run into `dir`; returns the files written.
pub fn run(scn: &Scenario, o: &Outcome, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    files.extend(both(dir, &throughput::Throughput { scn, o })?);
    files.extend(both(dir, &accuracy::Accuracy { scn, o })?);
    files.extend(both(dir, &staleness::Staleness { scn, o })?);
    files.extend(both(dir, &timeline::Timeline { scn, o })?);
    if !o.load.is_empty() {
        files.extend(both(dir, &load::Load { o })?);
    }
    Ok(files)
}

/// A chart's caption: the scenario and seed.
pub fn caption(what: &str, o: &Outcome) -> String {
    format!("{what} · {} · seed {}", o.scenario, o.seed)
}

/// Upper end of an axis: `max` rounded up a little (at least `floor`).
pub fn headroom(max: f64, floor: f64) -> f64 {
    if max.is_finite() && max > floor {
        max * 1.1
    } else {
        floor
    }
}

/// Writes the plots of a sweep into `dir`: convergence of each point's
/// first seed (if the results have its curve), and (for a grid over one
/// numeric key) the trade-off.
pub fn sweep(
    report: &crate::sweep::GridReport,
    results: &[crate::sweep::SweepResult],
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let runs: Vec<(String, &crate::sweep::Curve)> = report
        .points
        .iter()
        .zip(results)
        .filter_map(|(p, r)| {
            let label: Vec<String> = report
                .varying
                .iter()
                .filter_map(|k| {
                    p.sets
                        .iter()
                        .find_map(|s| s.split_once('=').filter(|(kk, _)| kk.trim() == k))
                        .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), v.trim()))
                })
                .collect();
            r.first.as_ref().map(|o| (label.join(" "), o))
        })
        .collect();
    for x in [accuracy::Progress::Time, accuracy::Progress::Bytes] {
        if runs.is_empty() || x == accuracy::Progress::Bytes && runs.len() < 2 {
            continue; // Only comparisons need it.
        }
        files.extend(both(
            dir,
            &accuracy::Convergence {
                scenario: &report.scenario,
                runs: &runs,
                x,
            },
        )?);
    }
    if let Some(points) = scaling_points(report) {
        files.extend(both(
            dir,
            &scaling::Scaling {
                scenario: &report.scenario,
                seeds: report.points[0].summary.runs,
                points: &points,
            },
        )?);
    }
    if let Some(points) = tradeoff_points(report) {
        files.extend(both(
            dir,
            &tradeoff::Tradeoff {
                scenario: &report.scenario,
                key: &report.varying[0],
                seeds: report.points[0].summary.runs,
                points: &points,
            },
        )?);
    }
    Ok(files)
}

/// The scaling study's points: a grid over exactly `cluster.servers` and
/// `cluster.workers` (`None` for any other sweep).
pub fn scaling_points(report: &crate::sweep::GridReport) -> Option<Vec<scaling::Point>> {
    let (s, w) = ("cluster.servers", "cluster.workers");
    let mut keys: Vec<&str> = report.varying.iter().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != [s, w] {
        return None;
    }
    report
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let median = |k: &str| p.summary.percentiles.get(k).map_or(f64::NAN, |q| q.p50);
            Some(scaling::Point {
                servers: report.value(i, s)?.parse().ok()?,
                workers: report.value(i, w)?.parse().ok()?,
                per_clock: median("time_per_clock_s"),
                to_target: median("time_to_target_s"),
                bottleneck: p.summary.main_bottleneck().map(str::to_string),
            })
        })
        .collect()
}

/// The trade-off points of a grid over one numeric key (`None` for any
/// other sweep).
pub fn tradeoff_points(report: &crate::sweep::GridReport) -> Option<Vec<tradeoff::Point>> {
    if report.varying.len() != 1 {
        return None;
    }
    let key = &report.varying[0];
    report
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x: f64 = report.value(i, key)?.parse().ok()?;
            let pc = |k: &str| {
                p.summary
                    .percentiles
                    .get(k)
                    .map_or((f64::NAN, f64::NAN, f64::NAN), |q| (q.p10, q.p50, q.p90))
            };
            Some(tradeoff::Point {
                x,
                time: pc("time_to_target_s"),
                clocks: pc("clocks_to_target"),
                idle: pc("idle_fraction"),
                reached: p.summary.reached_target,
                runs: p.summary.runs,
                targeted: p.summary.target_accuracy.is_some(),
            })
        })
        .collect()
}
