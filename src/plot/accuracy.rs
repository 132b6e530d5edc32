//! Test accuracy and training loss over simulated time, with the
//! reference accuracy (scikit-learn on the same data) as a dashed line and
//! the target accuracy, if any, dotted.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{caption, dashed, err, headroom, legend, palette, Chart, PlotResult, FONT};
use crate::outcome::Outcome;
use crate::scenario::Scenario;
use crate::sweep::{Curve, CurveSample};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Axes of test accuracy (0 to 1) over simulated time (0 to `end`).
fn accuracy_axes<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    end: f64,
    margin: u32,
    x_desc: &str,
    y0: f64,
) -> Result<super::Chart2d<'a, DB>, String> {
    let mut chart = ChartBuilder::on(area)
        .margin(margin)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..end, y0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("test accuracy")
        .label_style((FONT, 13))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The scikit-learn reference accuracy, if known, dashed across `0..end`.
fn reference<'a, DB: DrawingBackend + 'a>(
    chart: &mut super::Chart2d<'a, DB>,
    r: Option<f64>,
    end: f64,
) -> PlotResult {
    match r {
        Some(r) => dashed(
            chart,
            vec![(0.0, r), (end, r)],
            (8, 5),
            palette::GREY,
            format!("scikit-learn reference {r:.4}"),
        ),
        None => Ok(()),
    }
}

/// The chart.
pub struct Accuracy<'a> {
    /// The scenario run.
    pub scn: &'a Scenario,
    /// Its outcome.
    pub o: &'a Outcome,
}

impl Chart for Accuracy<'_> {
    fn name(&self) -> &'static str {
        "accuracy"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let o = self.o;
        let end = o
            .accuracy
            .last()
            .map_or(1.0, |s| s.t_s)
            .max(o.sim_time_s)
            .max(1e-3);
        let root = root
            .titled(&caption("convergence", o), (FONT, 22))
            .map_err(err)?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        // Accuracy.
        let mut chart = accuracy_axes(&left, end, 10, TIME, 0.0)?;
        chart
            .draw_series(LineSeries::new(
                o.accuracy.iter().map(|s| (s.t_s, s.accuracy)),
                palette::BLUE.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{} (final {:.4})", o.scenario, o.final_accuracy))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], palette::BLUE.stroke_width(2))
            });
        reference(&mut chart, o.reference_accuracy, end)?;
        if let Some(t) = o.target_accuracy {
            dashed(
                &mut chart,
                vec![(0.0, t), (end, t)],
                (2, 4),
                palette::GREEN,
                format!("target {t:.3}"),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        // Loss.
        let finite = o.accuracy.iter().map(|s| s.loss).filter(|l| l.is_finite());
        let lmax = headroom(finite.fold(0.0, f64::max), 0.1);
        let mut chart = ChartBuilder::on(&right)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..end, 0f64..lmax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("training loss")
            .label_style((FONT, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                o.accuracy
                    .iter()
                    .filter(|s| s.loss.is_finite())
                    .map(|s| (s.t_s, s.loss)),
                palette::ORANGE.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    }
}

/// Test accuracy over simulated time of several runs (one per
/// configuration of a sweep), against the reference.
pub struct Convergence<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// Label and accuracy curve of each run.
    pub runs: &'a [(String, &'a Curve)],
    /// What the x axis shows.
    pub x: Progress,
}

/// The x axis of a [`Convergence`] chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Simulated seconds.
    Time,
    /// Megabytes of pushes and pulls sent so far.
    Bytes,
}

const TIME: &str = "simulated time (s)";

impl Progress {
    fn at(self, s: &CurveSample) -> f64 {
        match self {
            Progress::Time => s.t_s,
            Progress::Bytes => (s.bytes_pushed + s.bytes_pulled) as f64 / 1e6,
        }
    }
}

impl Chart for Convergence<'_> {
    fn name(&self) -> &'static str {
        match self.x {
            Progress::Time => "convergence",
            Progress::Bytes => "accuracy-vs-bytes",
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let x = self.x;
        let end = self
            .runs
            .iter()
            .flat_map(|(_, o)| o.samples.last().map(|s| x.at(s)))
            .fold(1e-3, f64::max);
        let what = match x {
            Progress::Time => "test accuracy",
            Progress::Bytes => "test accuracy against bytes sent",
        };
        let root = root
            .titled(
                &format!("{what} · {} · one line per configuration", self.scenario),
                (FONT, 22),
            )
            .map_err(err)?;
        let x_desc = match x {
            Progress::Time => TIME,
            Progress::Bytes => "pushed + pulled (MB)",
        };
        // Against bytes, what matters is the last points: zoom in on them
        // (a tenth below the lowest final accuracy).
        let y0 = match x {
            Progress::Time => 0.0,
            Progress::Bytes => {
                let low = self
                    .runs
                    .iter()
                    .map(|(_, o)| o.final_accuracy)
                    .fold(1.0, f64::min);
                ((low - 0.1) * 10.0).floor().clamp(0.0, 9.0) / 10.0
            }
        };
        let mut chart = accuracy_axes(&root, end, 12, x_desc, y0)?;
        for (i, (label, o)) in self.runs.iter().enumerate() {
            let c = palette::series(i);
            let name = if label.is_empty() {
                o.scenario.clone()
            } else {
                label.clone()
            };
            chart
                .draw_series(LineSeries::new(
                    o.samples.iter().map(|s| (x.at(s), s.accuracy)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{name} (final {:.3})", o.final_accuracy))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        let r = self.runs.first().and_then(|(_, o)| o.reference_accuracy);
        reference(&mut chart, r, end)?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}
