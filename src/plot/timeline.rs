//! Per-worker timelines: each worker's clocks as pull (waiting for
//! parameters), compute, and push (waiting for acknowledgements) — what a
//! straggler does to BSP versus SSP at a glance.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{caption, err, palette, Chart, PlotResult, FONT};
use crate::outcome::Outcome;
use crate::run::timeline::Activity;
use crate::scenario::Scenario;
use plotters::coord::Shift;
use plotters::prelude::*;

/// The chart.
pub struct Timeline<'a> {
    /// The scenario run.
    pub scn: &'a Scenario,
    /// Its outcome.
    pub o: &'a Outcome,
}

fn colour(a: Activity) -> RGBColor {
    match a {
        Activity::Pull => palette::SKY,
        Activity::Compute => palette::GREEN,
        Activity::Push => palette::ORANGE,
    }
}

impl Chart for Timeline<'_> {
    fn name(&self) -> &'static str {
        "timeline"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let o = self.o;
        let workers = self.scn.cluster.workers.max(1);
        let end = o
            .timeline
            .iter()
            .map(|s| s.end_s)
            .fold(o.sim_time_s, f64::max)
            .max(1e-3);
        let root = root
            .titled(
                &format!(
                    "{} · mean idle {:.0}%",
                    caption("worker timelines", o),
                    o.idle_fraction * 100.0
                ),
                (FONT, 22),
            )
            .map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..end, -0.5f64..workers as f64 - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_labels(workers as usize)
            .y_label_formatter(&|y| {
                let w = y.round();
                if (y - w).abs() < 1e-6 && w >= 0.0 {
                    format!("worker-{w:.0}")
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .label_style((FONT, 12))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(err)?;
        for a in [Activity::Pull, Activity::Compute, Activity::Push] {
            let c = colour(a);
            let bars = o.timeline.iter().filter(|s| s.activity == a).map(|s| {
                let y = s.worker as f64;
                Rectangle::new([(s.start_s, y - 0.35), (s.end_s, y + 0.35)], c.filled())
            });
            let name = match a {
                Activity::Pull => "pull (waiting for parameters)",
                Activity::Compute => "compute",
                Activity::Push => "push (waiting for acknowledgements)",
            };
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.9))
            .border_style(palette::GREY)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}
