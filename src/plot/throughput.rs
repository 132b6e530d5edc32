//! Throughput over simulated time — pushes acknowledged per second and
//! bytes on the wire per second — with every fault interval shaded and
//! labelled (as Jepsen's plots do) and server failovers marked.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{caption, err, headroom, palette, Chart, PlotResult, FONT};
use crate::outcome::Outcome;
use crate::scenario::Scenario;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The chart.
pub struct Throughput<'a> {
    /// The scenario run.
    pub scn: &'a Scenario,
    /// Its outcome.
    pub o: &'a Outcome,
}

/// The shading colour of a fault kind.
fn fault_colour(kind: &str) -> RGBColor {
    match kind {
        "crash" => palette::RED,
        "partition" => palette::PURPLE,
        "clog" => palette::ORANGE,
        "loss" => palette::GREY,
        "straggler" => palette::GREEN,
        _ => palette::SKY,
    }
}

/// Faults labelled on the chart at most (all are shaded).
const LABELLED: usize = 16;

impl Chart for Throughput<'_> {
    fn name(&self) -> &'static str {
        "throughput"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let o = self.o;
        let dt = o.series_interval_s.max(1e-9);
        let end = (o.series.len() as f64 * dt).max(o.sim_time_s).max(dt);
        let root = root
            .titled(&caption("throughput", o), (FONT, 22))
            .map_err(err)?;
        let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 58 / 100);
        let updates: Vec<(f64, f64)> = o
            .series
            .iter()
            .enumerate()
            .map(|(i, b)| ((i as f64 + 0.5) * dt, b.acked as f64 / dt))
            .collect();
        let bytes: Vec<(f64, f64)> = o
            .series
            .iter()
            .enumerate()
            .map(|(i, b)| ((i as f64 + 0.5) * dt, b.bytes as f64 / dt / 1e6))
            .collect();
        self.panel(&top, end, &updates, "pushes acked / s", palette::BLUE, true)?;
        self.panel(
            &bottom,
            end,
            &bytes,
            "MB / s on the wire",
            palette::ORANGE,
            false,
        )?;
        Ok(())
    }
}

impl Throughput<'_> {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        end: f64,
        points: &[(f64, f64)],
        what: &str,
        colour: RGBColor,
        labels: bool,
    ) -> PlotResult {
        let o = self.o;
        let ymax = headroom(points.iter().map(|p| p.1).fold(0.0, f64::max), 1.0);
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..end, 0f64..ymax * 1.15)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(what)
            .y_label_formatter(&|y| {
                if ymax >= 20.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .label_style((FONT, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(err)?;
        for f in &o.faults {
            let x1 = f.end_s.unwrap_or(end).min(end);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (f.start_s, 0.0),
                        (x1.max(f.start_s + end / 400.0), ymax * 1.15),
                    ],
                    fault_colour(f.kind).mix(0.13).filled(),
                )))
                .map_err(err)?;
        }
        if labels {
            // Label faults where there is room: a label takes its row
            // until its text ends (about 6.5 px per character).
            let px = area.dim_in_pixel().0.saturating_sub(90).max(1) as f64;
            let mut row_free = [f64::NEG_INFINITY; 3];
            let mut labelled = 0;
            for f in &o.faults {
                let nodes = if f.nodes.len() > 2 {
                    format!("{} nodes", f.nodes.len())
                } else {
                    f.nodes.join("→")
                };
                let text = format!("{} {nodes}", f.kind);
                let width = text.chars().count() as f64 * 6.5 / px * end;
                let Some(row) = row_free.iter().position(|&x| x <= f.start_s) else {
                    continue;
                };
                if labelled == LABELLED {
                    break;
                }
                labelled += 1;
                row_free[row] = f.start_s + width;
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (f.start_s, ymax * (1.13 - 0.06 * row as f64)),
                        (FONT, 11).into_font().color(&fault_colour(f.kind)),
                    )))
                    .map_err(err)?;
            }
            // A legend entry per kind present.
            let mut kinds: Vec<&str> = o.faults.iter().map(|f| f.kind).collect();
            kinds.sort();
            kinds.dedup();
            for k in kinds {
                let c = fault_colour(k);
                chart
                    .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                    .map_err(err)?
                    .label(format!("{k} (shaded)"))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.mix(0.35).filled())
                    });
            }
        }
        for f in &o.failovers {
            let marks = std::iter::once((f.crash_s, palette::RED))
                .chain(f.recovery_s.map(|r| (f.crash_s + r, palette::GREEN)));
            for (x, c) in marks {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x, 0.0), (x, ymax * 1.15)],
                        6,
                        4,
                        c.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            if labels {
                let text = match f.recovery_s {
                    Some(r) => format!("{} down; served again after {:.0} ms", f.server, r * 1e3),
                    None => format!("{} down", f.server),
                };
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (f.crash_s + end / 150.0, ymax * 0.93),
                        (FONT, 12).into_font().color(&palette::RED),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(err)?;
        if labels && !o.faults.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 11))
                .background_style(WHITE.mix(0.85))
                .border_style(palette::GREY)
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}
