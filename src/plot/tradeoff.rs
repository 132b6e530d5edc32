//! A parameter sweep's trade-off: time to the target accuracy and worker
//! idle fraction against the swept value (median over seeds, with the
//! 10th-90th percentile range as error bars).
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{err, headroom, palette, Chart, PlotResult, FONT};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One point of the sweep: a value of the swept parameter and the spread
/// of each metric over seeds.
#[derive(Clone, Debug)]
pub struct Point {
    /// The swept value.
    pub x: f64,
    /// Time to target (s): p10, median, p90 (NaN if never reached).
    pub time: (f64, f64, f64),
    /// Idle fraction: p10, median, p90.
    pub idle: (f64, f64, f64),
}

/// The chart.
pub struct Tradeoff<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// The swept key, e.g. `training.staleness`.
    pub key: &'a str,
    /// Seeds per point.
    pub seeds: u64,
    /// The points, by `x`.
    pub points: &'a [Point],
}

impl Chart for Tradeoff<'_> {
    fn name(&self) -> &'static str {
        "tradeoff"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let root = root
            .titled(
                &format!(
                    "{} vs {} · median of {} seeds (bars: p10-p90)",
                    self.scenario, self.key, self.seeds
                ),
                (FONT, 20),
            )
            .map_err(err)?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let xmax = self.points.iter().map(|p| p.x).fold(0.0, f64::max);
        let xr = -0.5..xmax + 0.5;
        let panel = |area: &DrawingArea<DB, Shift>,
                     what: &str,
                     pick: &dyn Fn(&Point) -> (f64, f64, f64),
                     colour: RGBColor,
                     percent: bool|
         -> PlotResult {
            let ymax = headroom(
                self.points
                    .iter()
                    .map(|p| pick(p).2)
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max),
                if percent { 0.05 } else { 0.1 },
            );
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(xr.clone(), 0f64..ymax)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(self.key)
                .y_desc(what)
                .label_style((FONT, 13))
                .light_line_style(RGBColor(238, 238, 238))
                .y_label_formatter(&|y| {
                    if percent {
                        format!("{:.0}%", y * 100.0)
                    } else {
                        format!("{y:.2}")
                    }
                })
                .draw()
                .map_err(err)?;
            let pts: Vec<(f64, (f64, f64, f64))> = self
                .points
                .iter()
                .map(|p| (p.x, pick(p)))
                .filter(|(_, v)| v.1.is_finite())
                .collect();
            chart
                .draw_series(pts.iter().map(|&(x, (lo, _, hi))| {
                    PathElement::new(vec![(x, lo), (x, hi)], colour.stroke_width(2))
                }))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|&(x, v)| (x, v.1)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, v)| Circle::new((x, v.1), 5, colour.filled())),
                )
                .map_err(err)?;
            Ok(())
        };
        panel(
            &left,
            "time to target accuracy (s)",
            &|p| p.time,
            palette::BLUE,
            false,
        )?;
        panel(
            &right,
            "worker idle fraction",
            &|p| p.idle,
            palette::ORANGE,
            true,
        )?;
        Ok(())
    }
}
