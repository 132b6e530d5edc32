//! The scaling study: time per clock and time to the target accuracy
//! against the number of servers, one line per worker count (medians over
//! seeds), each point marked by the kind of resource that was the run's
//! bottleneck (docs/cost-model.md, "Scaling study").
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{err, headroom, palette, Chart, PlotResult, FONT};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One point of the grid.
#[derive(Clone, Debug)]
pub struct Point {
    /// Servers.
    pub servers: u32,
    /// Workers.
    pub workers: u32,
    /// Median simulated seconds per clock.
    pub per_clock: f64,
    /// Median simulated seconds to the target accuracy (NaN: not reached).
    pub to_target: f64,
    /// The kind of bottleneck most seeds had (`"server nic_in"`, ...).
    pub bottleneck: Option<String>,
}

/// The chart.
pub struct Scaling<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// Seeds per point.
    pub seeds: u64,
    /// The points.
    pub points: &'a [Point],
}

/// The marker of a bottleneck kind, and its legend text.
fn marker(kind: Option<&str>) -> (usize, &'static str) {
    match kind {
        Some(k) if k.starts_with("server nic") => (0, "server interface"),
        Some(k) if k.starts_with("worker nic") => (1, "worker interface"),
        Some("server cpu") => (2, "server CPU"),
        Some("worker cpu") => (3, "worker compute"),
        _ => (4, "other"),
    }
}

impl Scaling<'_> {
    /// The distinct values of `of` over the points, in order.
    fn values(&self, of: fn(&Point) -> u32) -> Vec<u32> {
        let mut v: Vec<u32> = self.points.iter().map(of).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Chart for Scaling<'_> {
    fn name(&self) -> &'static str {
        "scaling"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let root = root
            .titled(
                &format!(
                    "{} · servers x workers · median of {} seed(s) · marker: bottleneck",
                    self.scenario, self.seeds
                ),
                (FONT, 20),
            )
            .map_err(err)?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let servers = self.values(|p| p.servers);
        let workers = self.values(|p| p.workers);
        // Servers on an even spacing (1, 2, 4, ... are doublings).
        let at = |s: u32| servers.iter().position(|&x| x == s).unwrap_or(0) as f64;
        let xr = -0.3..servers.len() as f64 - 0.7;
        let panel = |area: &DrawingArea<DB, Shift>,
                     what: &str,
                     pick: &dyn Fn(&Point) -> f64,
                     legend: bool|
         -> PlotResult {
            let ymax = headroom(
                self.points
                    .iter()
                    .map(pick)
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max),
                0.001,
            );
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(xr.clone(), 0f64..ymax)
                .map_err(err)?;
            let labels = servers.clone();
            chart
                .configure_mesh()
                .x_desc("servers")
                .y_desc(what)
                .x_labels(servers.len())
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 0.01 && i >= 0.0 {
                        labels
                            .get(i as usize)
                            .map_or(String::new(), |s| s.to_string())
                    } else {
                        String::new()
                    }
                })
                .label_style((FONT, 13))
                .light_line_style(RGBColor(238, 238, 238))
                .draw()
                .map_err(err)?;
            for (k, &w) in workers.iter().enumerate() {
                let colour = palette::series(k);
                let mut pts: Vec<&Point> = self
                    .points
                    .iter()
                    .filter(|p| p.workers == w && pick(p).is_finite())
                    .collect();
                pts.sort_by_key(|p| p.servers);
                let line = chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (at(p.servers), pick(p))),
                        colour.stroke_width(2),
                    ))
                    .map_err(err)?;
                if legend {
                    line.label(format!("{w} workers")).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                }
                for p in pts {
                    let xy = (at(p.servers), pick(p));
                    let style = colour.filled();
                    match marker(p.bottleneck.as_deref()).0 {
                        0 => chart.draw_series(std::iter::once(Circle::new(xy, 6, style))),
                        1 => chart.draw_series(std::iter::once(TriangleMarker::new(xy, 7, style))),
                        2 => chart.draw_series(std::iter::once(
                            EmptyElement::at(xy) + Rectangle::new([(-5, -5), (5, 5)], style),
                        )),
                        3 => chart.draw_series(std::iter::once(Cross::new(
                            xy,
                            6,
                            colour.stroke_width(3),
                        ))),
                        _ => chart.draw_series(std::iter::once(Circle::new(
                            xy,
                            5,
                            colour.stroke_width(1),
                        ))),
                    }
                    .map_err(err)?;
                }
            }
            if legend {
                // The markers' meaning, in grey.
                let grey = RGBColor(90, 90, 90);
                let mut kinds: Vec<(usize, &str)> = self
                    .points
                    .iter()
                    .map(|p| marker(p.bottleneck.as_deref()))
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                for (m, name) in kinds {
                    chart
                        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                        .map_err(err)?
                        .label(format!(
                            "{}: {name}",
                            ["circle", "triangle", "square", "cross", "ring"][m]
                        ))
                        .legend(move |(x, y)| Circle::new((x + 9, y), 0, grey.filled()));
                }
                chart
                    .configure_series_labels()
                    .label_font((FONT, 13))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            Ok(())
        };
        panel(&left, "time per clock (s)", &|p| p.per_clock, true)?;
        panel(
            &right,
            "time to target accuracy (s)",
            &|p| p.to_target,
            false,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_renders_with_a_line_per_worker_count() {
        let points: Vec<Point> = [1u32, 2, 4]
            .iter()
            .flat_map(|&s| {
                [4u32, 16].map(move |w| Point {
                    servers: s,
                    workers: w,
                    per_clock: 0.01 * f64::from(w) / f64::from(s),
                    to_target: 0.1 * f64::from(w) / f64::from(s),
                    bottleneck: Some(
                        if s == 4 {
                            "worker cpu"
                        } else {
                            "server nic_in"
                        }
                        .into(),
                    ),
                })
            })
            .collect();
        let chart = Scaling {
            scenario: "scaling",
            seeds: 3,
            points: &points,
        };
        let svg = super::super::svg_string(&chart).expect("renders");
        assert!(svg.contains("16 workers") && svg.contains("server interface"));
        assert!(svg.contains("worker compute"));
    }
}
