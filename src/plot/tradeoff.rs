//! A parameter sweep's trade-off: time to the target accuracy, clocks to
//! it and worker idle fraction against the swept value (median over
//! seeds, with the 10th-90th percentile range as error bars). Runs that
//! never reached the target are not dropped: they rank after every run
//! that did, a point whose median is among them is drawn as a cross at
//! the top of its panel, a bar whose 90th percentile is among them runs
//! to the top, and each such point is labelled with how many runs reached
//! the target.
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
    /// Time to target (s): p10, median, p90 (not finite where runs that
    /// never reached it fall).
    pub time: (f64, f64, f64),
    /// Clocks per worker to target: p10, median, p90 (likewise).
    pub clocks: (f64, f64, f64),
    /// Idle fraction: p10, median, p90.
    pub idle: (f64, f64, f64),
    /// Runs that reached the target, of `runs`.
    pub reached: u64,
    /// Runs at this point.
    pub runs: u64,
    /// Whether the scenario set a target accuracy.
    pub targeted: bool,
}

impl Point {
    /// Whether a percentile `m` of time or clocks to target falls among
    /// runs that never reached it (infinite in a sweep's summary, `null` in
    /// its JSON).
    fn median_never(&self, m: f64) -> bool {
        self.targeted && !m.is_finite()
    }
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
                    "{} vs {} · median of {} seeds (bars: p10-p90; x: median never reached)",
                    self.scenario, self.key, self.seeds
                ),
                (FONT, 20),
            )
            .map_err(err)?;
        let w = root.dim_in_pixel().0;
        let (left, rest) = root.split_horizontally(w / 3);
        let (middle, right) = rest.split_horizontally(w / 3);
        let xmax = self.points.iter().map(|p| p.x).fold(f64::MIN, f64::max);
        let xmin = self.points.iter().map(|p| p.x).fold(f64::MAX, f64::min);
        // Half a unit around integer values (a bound), 6% of the span
        // around others (a learning rate).
        let integers = self.points.iter().all(|p| p.x.fract() == 0.0);
        let pad = if integers || xmax <= xmin {
            0.5
        } else {
            0.06 * (xmax - xmin)
        };
        let xr = xmin - pad..xmax + pad;
        let panel = |area: &DrawingArea<DB, Shift>,
                     what: &str,
                     pick: &dyn Fn(&Point) -> (f64, f64, f64),
                     colour: RGBColor,
                     percent: bool,
                     to_target: bool|
         -> PlotResult {
            let high = self
                .points
                .iter()
                .flat_map(|p| [pick(p).1, pick(p).2])
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            let ymax = if percent {
                headroom(high, 0.05)
            } else if high > 0.0 {
                high * 1.1
            } else {
                1.0
            };
            // Times under a tenth of a second in milliseconds.
            let ms = !percent && what.ends_with("(s)") && ymax < 0.1;
            let what = if ms {
                what.replace("(s)", "(ms)")
            } else {
                what.to_string()
            };
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(xr.clone(), 0f64..ymax)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(self.key)
                .x_label_formatter(&|x| {
                    if integers {
                        format!("{x:.0}")
                    } else {
                        format!("{x}")
                    }
                })
                .y_desc(what.as_str())
                .label_style((FONT, 13))
                .light_line_style(RGBColor(238, 238, 238))
                .y_label_formatter(&|y| {
                    if percent {
                        format!("{:.0}%", y * 100.0)
                    } else {
                        if ms {
                            format!("{:.2}", y * 1e3)
                        } else if ymax >= 10.0 {
                            format!("{y:.0}")
                        } else {
                            format!("{y:.2}")
                        }
                    }
                })
                .draw()
                .map_err(err)?;
            // Bars: a percentile among runs that never got there reaches
            // the top.
            let top = |v: f64| if v.is_finite() { v } else { ymax };
            chart
                .draw_series(self.points.iter().filter_map(|p| {
                    let (lo, mid, hi) = pick(p);
                    (mid.is_finite() || (to_target && p.targeted && lo.is_finite())).then(|| {
                        PathElement::new(
                            vec![(p.x, top(lo)), (p.x, top(hi))],
                            colour.stroke_width(2),
                        )
                    })
                }))
                .map_err(err)?;
            let pts: Vec<(f64, f64)> = self
                .points
                .iter()
                .map(|p| (p.x, pick(p).1))
                .filter(|(_, m)| m.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, m)| Circle::new((x, m), 5, colour.filled())),
                )
                .map_err(err)?;
            if to_target {
                // Medians among runs that never got there: a cross at the top.
                chart
                    .draw_series(
                        self.points
                            .iter()
                            .filter(|p| p.median_never(pick(p).1))
                            .map(|p| {
                                Cross::new((p.x, ymax * 0.96), 7, palette::RED.stroke_width(3))
                            }),
                    )
                    .map_err(err)?;
                // How many runs reached the target, where not all did.
                chart
                    .draw_series(
                        self.points
                            .iter()
                            .filter(|p| p.targeted && p.reached < p.runs)
                            .map(|p| {
                                let m = pick(p).1;
                                let y = if m.is_finite() { m } else { ymax * 0.96 };
                                Text::new(
                                    format!("{}/{}", p.reached, p.runs),
                                    (p.x + 0.15, y - ymax * 0.02),
                                    (FONT, 12).into_font().color(&palette::RED),
                                )
                            }),
                    )
                    .map_err(err)?;
            }
            Ok(())
        };
        panel(
            &left,
            "time to target accuracy (s)",
            &|p| p.time,
            palette::BLUE,
            false,
            true,
        )?;
        panel(
            &middle,
            "clocks per worker to target",
            &|p| p.clocks,
            palette::GREEN,
            false,
            true,
        )?;
        panel(
            &right,
            "worker idle fraction",
            &|p| p.idle,
            palette::ORANGE,
            true,
            false,
        )?;
        Ok(())
    }
}
