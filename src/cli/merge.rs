//! `pssim sweep merge DIR...`: joins the `--out` directories of a sharded
//! sweep into one summary, printed and written as `pssim sweep` does. It
//! runs no simulation: it works in the real build too.
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::sweep::{report, Outputs};
use super::{bad_input, say, MergeArgs};
use crate::sweep::merge;
use std::io::Write;

/// Merges the shard directories `args.dirs`.
pub fn merge(args: &MergeArgs, out: &mut dyn Write) -> std::io::Result<i32> {
    let shards: Result<Vec<_>, _> = args.dirs.iter().map(|d| merge::read(d)).collect();
    let shards = match shards {
        Ok(s) => s,
        Err(e) => return Ok(bad_input(&e)),
    };
    let m = match merge::merge(&shards) {
        Ok(m) => m,
        Err(e) => return Ok(bad_input(&e)),
    };
    if !m.missing.is_empty() {
        let n: u64 = m.missing.iter().map(|(a, b)| b - a).sum();
        eprintln!(
            "warning: {n} seed(s) of {}..{} are in no shard: {}",
            m.results[0].summary.seeds.0,
            m.results[0].summary.seeds.1,
            crate::sweep::ranges(&m.missing)
        );
    }
    if args.plots.is_some() || args.report.is_some() {
        for note in &m.notes {
            eprintln!("note: {note}");
        }
    }
    if !args.json {
        let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
        say!(
            out,
            "pssim sweep merge · {} shard(s): {}",
            dirs.len(),
            dirs.join(", ")
        );
    }
    let to = Outputs {
        json: args.json,
        out: args.out.as_deref(),
        plots: args.plots.as_deref(),
        report: args.report.as_deref(),
    };
    report(&m.points, &m.report, &m.results, &m.plot, &to, out)
}
