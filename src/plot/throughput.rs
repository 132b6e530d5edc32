//! Throughput over simulated time — pushes acknowledged per second and
//! bytes on the wire per second, each smoothed over eight clock periods
//! (a triangular window; stated on the axis) — with every fault interval shaded and
//! labelled (as Jepsen's plots do) and server failovers marked.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{
    caption, err, fault_colour, fault_kinds, headroom, palette, shade_faults, Chart, PlotResult,
    FONT,
};
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
        let w = window(o);
        let acked: Vec<f64> = o.series.iter().map(|b| b.acked as f64).collect();
        let bytes: Vec<f64> = o.series.iter().map(|b| b.bytes as f64 / 1e6).collect();
        let over = format!(", smoothed over {:.2} s", 2.0 * w);
        self.panel(
            &top,
            end,
            &smooth(&acked, w, dt),
            &format!("pushes acked / s{over}"),
            palette::BLUE,
            true,
        )?;
        self.panel(
            &bottom,
            end,
            &smooth(&bytes, w, dt),
            &format!("MB / s on the wire{over}"),
            palette::ORANGE,
            false,
        )?;
        Ok(())
    }
}

/// The width of the moving window, in seconds: four clock periods (the
/// run's mean: simulated time over the slowest worker's clocks), at least
/// one bucket. A whole number of clock periods sees the same number of
/// clocks wherever it sits, so the bucket width against the clock period
/// draws no saw-tooth.
fn window(o: &Outcome) -> f64 {
    let dt = o.series_interval_s.max(1e-9);
    let period = o.sim_time_s / f64::from(o.min_clock.max(1));
    (4.0 * period).max(dt)
}

/// [`moving_rate`] over `w`, then a centred moving mean of that over the
/// buckets nearest `w` wide: a triangular window `2w` wide at the base,
/// which irons out what a burst of pushes entering or leaving a box window
/// leaves (pushes come in bursts at clock ends).
fn smooth(counts: &[f64], w: f64, dt: f64) -> Vec<(f64, f64)> {
    let once = moving_rate(counts, w, dt);
    let half = ((w / dt).round() as usize) / 2;
    (0..once.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(once.len());
            let mean = once[lo..hi].iter().map(|p| p.1).sum::<f64>() / (hi - lo) as f64;
            (once[i].0, mean)
        })
        .collect()
}

/// The per-second rate of `counts` (per bucket of `dt` seconds) at each
/// bucket's middle, as a centred moving mean over `w` seconds: the
/// cumulative count (linear within a bucket) across the window, over the
/// window's width (clipped at the run's edges).
fn moving_rate(counts: &[f64], w: f64, dt: f64) -> Vec<(f64, f64)> {
    let mut cum = Vec::with_capacity(counts.len() + 1);
    cum.push(0.0);
    for c in counts {
        cum.push(cum.last().copied().unwrap_or(0.0) + c);
    }
    let n = counts.len();
    let end = n as f64 * dt;
    let at = |t: f64| {
        let x = (t / dt).clamp(0.0, n as f64);
        let i = (x.floor() as usize).min(n.saturating_sub(1));
        cum[i] + (x - i as f64) * counts.get(i).copied().unwrap_or(0.0)
    };
    (0..n)
        .map(|i| {
            let mid = (i as f64 + 0.5) * dt;
            let (lo, hi) = ((mid - w / 2.0).max(0.0), (mid + w / 2.0).min(end));
            (mid, (at(hi) - at(lo)) / (hi - lo).max(1e-12))
        })
        .collect()
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
        shade_faults(&mut chart, o, end, ymax * 1.15)?;
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
            for k in fault_kinds(o) {
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

#[cfg(test)]
mod tests {
    use super::moving_rate;

    #[test]
    fn a_moving_mean_over_whole_periods_flattens_a_saw_tooth() {
        // One clock (3 pushes) every 0.075 s, counted in 0.05 s buckets:
        // 3, 0, 3, 3, 0, 3, ... pushes per bucket (a saw-tooth).
        let dt = 0.05;
        let counts: Vec<f64> = (0..60)
            .map(|i| {
                let (a, b) = (i as f64 * dt, (i + 1) as f64 * dt);
                let clocks = |t: f64| (t / 0.075 + 1e-9).floor();
                3.0 * (clocks(b) - clocks(a))
            })
            .collect();
        let raw = moving_rate(&counts, dt, dt);
        assert!(raw.iter().any(|p| p.1 < 1e-6) && raw.iter().any(|p| (p.1 - 60.0).abs() < 1e-6));
        // 40 pushes per second; four periods (0.3 s) see it everywhere
        // inside the run.
        let smooth = moving_rate(&counts, 0.3, dt);
        for &(_, r) in &smooth[3..57] {
            assert!((r - 40.0).abs() <= 40.0 * 0.1, "{r}");
        }
    }
}
