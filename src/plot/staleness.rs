//! How far behind reads were: for every read, how many clocks behind the
//! reader's own clock the replica's state was (see
//! `check::staleness::StalenessCheck::histogram`), stacked per reader, with
//! the SSP bound drawn.
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{caption, dashed, err, headroom, legend, palette, Chart, PlotResult, FONT};
use crate::outcome::Outcome;
use crate::scenario::{Consistency, Scenario};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// The chart.
pub struct Staleness<'a> {
    /// The scenario run.
    pub scn: &'a Scenario,
    /// Its outcome.
    pub o: &'a Outcome,
}

impl Chart for Staleness<'_> {
    fn name(&self) -> &'static str {
        "staleness"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let o = self.o;
        let bound = match self.scn.training.consistency {
            Consistency::Bsp => Some(0),
            Consistency::Ssp => Some(self.scn.training.staleness),
            Consistency::Asp => None,
        };
        let max_behind = o
            .staleness_histogram
            .iter()
            .map(|&(_, b, _)| b)
            .max()
            .unwrap_or(0)
            .max(bound.unwrap_or(0));
        let mut totals: BTreeMap<u32, u64> = BTreeMap::new();
        for &(_, b, n) in &o.staleness_histogram {
            *totals.entry(b).or_default() += n;
        }
        let ymax = headroom(totals.values().copied().max().unwrap_or(0) as f64, 1.0);
        let root = root
            .titled(&caption("read staleness", o), (FONT, 22))
            .map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..max_behind as f64 + 1.5, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("clocks behind the reader's own clock")
            .y_desc("reads")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_labels((max_behind as usize + 3).min(24))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(err)?;
        // Stacked bars, one colour per reader.
        let workers: Vec<u32> = {
            let mut w: Vec<u32> = o.staleness_histogram.iter().map(|&(w, _, _)| w).collect();
            w.dedup();
            w.sort();
            w.dedup();
            w
        };
        let mut base: BTreeMap<u32, u64> = BTreeMap::new();
        for (i, &w) in workers.iter().enumerate() {
            let colour = palette::series(i);
            let bars: Vec<Rectangle<(f64, f64)>> = o
                .staleness_histogram
                .iter()
                .filter(|&&(x, _, _)| x == w)
                .map(|&(_, b, n)| {
                    let y0 = *base.get(&b).unwrap_or(&0);
                    base.insert(b, y0 + n);
                    Rectangle::new(
                        [
                            (b as f64 - 0.4, y0 as f64),
                            (b as f64 + 0.4, (y0 + n) as f64),
                        ],
                        colour.filled(),
                    )
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(format!("worker-{w}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        if let Some(s) = bound {
            let x = s as f64 + 0.5;
            dashed(
                &mut chart,
                vec![(x, 0.0), (x, ymax)],
                (8, 5),
                palette::RED,
                format!("bound s = {s}"),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}
