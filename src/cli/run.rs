//! `pssim run FILE` and `pssim` (the default scenario): one simulated run,
//! its summary or JSON, and the files asked for (outcome, plots, report).
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{bad_input, load, parse_bugs, say, say_raw, RunArgs};
use crate::outcome::Outcome;
use crate::sim::{self, RunOptions};
use std::io::Write;
use std::path::Path;

/// Runs the scenario `text` (named `source`) with `args`.
pub fn run(source: &str, text: &str, args: &RunArgs, out: &mut dyn Write) -> std::io::Result<i32> {
    let mut scn = match load(source, text, &args.sets) {
        Ok(s) => s,
        Err(e) => return Ok(bad_input(&e)),
    };
    let bugs = match parse_bugs(&args.bugs) {
        Ok(b) => b,
        Err(e) => return Ok(bad_input(&e)),
    };
    if args.check_determinism {
        scn.check.deterministic = true;
    }
    let opts = RunOptions {
        seed: args.seed.unwrap_or(scn.seed),
        bugs,
        trace: args.trace.clone(),
        trace_low_level: args.trace_all,
        keep_events: false,
        source: source.to_string(),
        sets: args.sets.clone(),
        schedule: None,
    };
    let result = sim::run(&scn, &opts);
    let o = &result.outcome;
    let summary = crate::summary::render(&scn, o);
    if args.json {
        say!(
            out,
            "{}",
            serde_json::to_string(&o).expect("outcome serializes")
        );
    } else {
        say_raw!(out, "{summary}");
    }
    if let Some(dir) = &args.out {
        if let Err(e) = write_out(dir, o, &summary) {
            eprintln!("error: writing {}: {e}", dir.display());
            return Ok(2);
        }
    }
    if let Some(dir) = &args.plots {
        match crate::plot::run(&scn, o, dir) {
            Ok(files) if !args.json => {
                say!(out, "plots      {} files in {}", files.len(), dir.display())
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: writing plots into {}: {e}", dir.display());
                return Ok(2);
            }
        }
    }
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, crate::report::run(&scn, o)) {
            eprintln!("error: writing {}: {e}", path.display());
            return Ok(2);
        }
    }
    Ok(o.exit_code())
}

/// Writes `outcome.json`, `summary.txt` and the CSV series into `dir`.
pub fn write_out(dir: &Path, o: &Outcome, summary: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(o)?)?;
    std::fs::write(dir.join("summary.txt"), summary)?;
    crate::outcome::write_csv(o, dir)?;
    Ok(())
}
