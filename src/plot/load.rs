//! Load over simulated time: each server's utilisation (work over
//! capacity) per time-series bucket, one line per server, in three stacked
//! panels — inbound interface, outbound interface, CPU — with every fault
//! interval shaded as on the throughput chart. Drawn only for a run whose
//! host metered its nodes (the outcome's `load`).
//!
//! May import: `crate::outcome`, `crate::run` (its records),
//! `crate::scenario`, `crate::check`, `crate::sweep` (its types),
//! `crate::plot`. Never: a host (`crate::sim`, `crate::net`), madsim, tokio.

use super::{
    caption, err, fault_colour, fault_kinds, palette, shade_faults, Chart, PlotResult, FONT,
};
use crate::outcome::Outcome;
use crate::run::load::Resource;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::time::Duration;

/// The chart.
pub struct Load<'a> {
    /// The outcome of a run with load data.
    pub o: &'a Outcome,
}

/// Width of the strip left of the panels that holds the shared y label.
const LABEL_PX: u32 = 26;

/// Width of the key right of the panels.
const KEY_PX: u32 = 150;

/// Colours repeat after this many servers; the next round is dashed.
const COLOURS: usize = 9;

fn title(r: Resource) -> &'static str {
    match r {
        Resource::NicIn => "inbound interface (nic_in)",
        Resource::NicOut => "outbound interface (nic_out)",
        Resource::Cpu => "CPU (cpu)",
    }
}

impl Chart for Load<'_> {
    fn name(&self) -> &'static str {
        "load"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> PlotResult {
        let o = self.o;
        let dt = o.load_series.interval_s.max(1e-9);
        let end = o.sim_time_s.max(dt);
        let root = root.titled(&caption("load", o), (FONT, 22)).map_err(err)?;
        let (w, h) = root.dim_in_pixel();
        let (label, rest) = root.split_horizontally(LABEL_PX);
        let (panels, key) = rest.split_horizontally(w.saturating_sub(LABEL_PX + KEY_PX));
        let width = humantime::format_duration(Duration::from_secs_f64(dt));
        let style = TextStyle::from((FONT, 14).into_font())
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Top));
        label
            .draw_text(
                &format!("utilisation (% of capacity, per {width})"),
                &style,
                (4, h as i32 / 2),
            )
            .map_err(err)?;
        let areas = panels.split_evenly((3, 1));
        for (i, (area, r)) in areas.iter().zip(Resource::ALL).enumerate() {
            self.panel(area, r, end, dt, i + 1 == Resource::ALL.len())?;
        }
        self.key(&key)
    }
}

impl Load<'_> {
    /// One resource's panel: a line per server.
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        r: Resource,
        end: f64,
        dt: f64,
        bottom: bool,
    ) -> PlotResult {
        let servers = &self.o.load_series.servers;
        let peak = servers
            .iter()
            .flat_map(|s| &s.util[r.index()])
            .fold(0.0, |m: f64, u| m.max(u * 100.0));
        // A host that over-reports shows above 100% rather than clipped.
        let top = peak.max(100.0);
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(if bottom { 32 } else { 18 })
            .y_label_area_size(46)
            .build_cartesian_2d(0f64..end, 0f64..top)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_labels(5)
            .y_label_formatter(&|y| format!("{y:.0}%"))
            .label_style((FONT, 12))
            .light_line_style(RGBColor(238, 238, 238));
        if bottom {
            mesh.x_desc("simulated time (s)");
        }
        mesh.draw().map_err(err)?;
        shade_faults(&mut chart, self.o, end, top)?;
        for (i, s) in servers.iter().enumerate() {
            let points: Vec<(f64, f64)> = s.util[r.index()]
                .iter()
                .enumerate()
                .map(|(j, u)| {
                    let lo = j as f64 * dt;
                    ((lo + (lo + dt).min(end)) / 2.0, u * 100.0)
                })
                .collect();
            let colour = palette::series(i).stroke_width(2);
            if (i / COLOURS) % 2 == 1 {
                chart
                    .draw_series(DashedLineSeries::new(points, 8, 4, colour))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(points, colour))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(std::iter::once(Text::new(
                title(r),
                (end * 0.01, top * 0.97),
                (FONT, 13).into_font(),
            )))
            .map_err(err)?;
        Ok(())
    }

    /// The key: a swatch per server (as many as fit) and per fault kind.
    fn key<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> PlotResult {
        const ROW: i32 = 16;
        let text = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let servers = &self.o.load_series.servers;
        let kinds = fault_kinds(self.o);
        let rows = (area.dim_in_pixel().1 as i32 / ROW - 2).max(1) as usize;
        let room = rows.saturating_sub(kinds.len());
        let shown = if servers.len() > room {
            room.saturating_sub(1)
        } else {
            servers.len()
        };
        let mut y = 2 * ROW;
        for (i, s) in servers.iter().enumerate().take(shown) {
            let colour = palette::series(i).stroke_width(2);
            let dashed = (i / COLOURS) % 2 == 1;
            let segments: &[(i32, i32)] = if dashed {
                &[(8, 16), (20, 28)]
            } else {
                &[(8, 28)]
            };
            for &(a, b) in segments {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], colour))
                    .map_err(err)?;
            }
            area.draw_text(&s.node, &text, (34, y)).map_err(err)?;
            y += ROW;
        }
        if shown < servers.len() {
            let more = format!("... and {} more", servers.len() - shown);
            area.draw_text(&more, &text, (8, y)).map_err(err)?;
            y += ROW;
        }
        for k in kinds {
            area.draw(&Rectangle::new(
                [(8, y - 5), (28, y + 5)],
                fault_colour(k).mix(0.35).filled(),
            ))
            .map_err(err)?;
            area.draw_text(&format!("{k} (shaded)"), &text, (34, y))
                .map_err(err)?;
            y += ROW;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::load::{NodeLoad, ServerUtil};

    /// A 1 s run of two servers in 10 ms buckets with a crash, metered
    /// if `metered`.
    fn outcome(metered: bool) -> (crate::scenario::Scenario, Outcome) {
        let (scn, mut o) =
            crate::run::assemble::bare("name = \"load\"\n[cluster]\nservers = 2\nworkers = 1\n");
        o.sim_time_s = 1.0;
        o.faults.push(crate::outcome::FaultRecord {
            kind: "crash",
            nodes: vec!["server-1".into()],
            start_s: 0.4,
            end_s: Some(0.6),
            origin: crate::run::plan::Origin::Scenario,
            detail: String::new(),
        });
        if metered {
            o.load_series.interval_s = 0.01;
            for i in 0..2u32 {
                let ramp: Vec<f64> = (0..100).map(|j| f64::from(j * (i + 1)) / 200.0).collect();
                o.load_series.servers.push(ServerUtil {
                    node: format!("server-{i}"),
                    util: [ramp.clone(), vec![0.3; 100], ramp],
                });
                o.load.insert(format!("server-{i}"), NodeLoad::default());
            }
            o.bottleneck = Some("server-1 nic_in".into());
        }
        (scn, o)
    }

    #[test]
    fn the_load_chart_draws_every_server_and_resource_with_the_faults() {
        let (_, o) = outcome(true);
        let svg = super::super::svg_string(&Load { o: &o }).expect("drawn");
        for needed in [
            "<svg",
            "utilisation (% of capacity, per 10ms)",
            "inbound interface (nic_in)",
            "outbound interface (nic_out)",
            "CPU (cpu)",
            "server-0",
            "server-1",
            "crash (shaded)",
            "100%",
            "simulated time (s)",
        ] {
            assert!(svg.contains(needed), "the load chart lacks {needed:?}");
        }
        // Each server's colour: a line in each of the three panels and
        // its swatch in the key.
        for colour in [palette::series(0), palette::series(1)] {
            let RGBColor(r, g, b) = colour;
            let stroke =
                format!("<polyline fill=\"none\" opacity=\"1\" stroke=\"#{r:02X}{g:02X}{b:02X}\"");
            assert_eq!(svg.matches(&stroke).count(), 4, "{stroke}");
        }
    }

    #[test]
    fn the_load_chart_is_written_only_for_a_run_with_load_data() {
        for metered in [false, true] {
            let (scn, o) = outcome(metered);
            let dir = std::env::temp_dir()
                .join(format!("pssim-load-plot-{metered}-{}", std::process::id()));
            let files = super::super::run(&scn, &o, &dir).expect("written");
            let load = files
                .iter()
                .filter(|f| f.file_stem().is_some_and(|n| n == "load"))
                .count();
            assert_eq!(load, if metered { 2 } else { 0 }, "{files:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
