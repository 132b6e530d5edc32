//! `pssim bench [--scale [--large] | --tcp]`: performance against baselines measured in the
//! same run.
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{bad_input, say_raw, DEFAULT_SCENARIO, DEFAULT_SOURCE};
use crate::scenario;
use std::io::Write;
use std::path::Path;

/// Runs the benchmarks (or only the scale one, or only the real TCP one)
/// and prints the table.
pub fn bench(
    json: Option<&Path>,
    scale: bool,
    large: bool,
    tcp: bool,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let ms = if tcp {
        crate::bench::run_tcp()
    } else if scale {
        match scenario::parse(crate::bench::SCALE_SCENARIO, "scenarios/scale.toml") {
            Ok(s) => crate::bench::run_scale(&s, large),
            Err(e) => return Ok(bad_input(&e)),
        }
    } else {
        match scenario::parse(DEFAULT_SCENARIO, DEFAULT_SOURCE) {
            Ok(s) => crate::bench::run_all(&s),
            Err(e) => return Ok(bad_input(&e)),
        }
    };
    say_raw!(out, "{}", crate::bench::table(&ms));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&ms).expect("measurements serialize");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: writing {}: {e}", path.display());
            return Ok(2);
        }
    }
    Ok(0)
}
