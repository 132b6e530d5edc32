//! `pssim shrink FILE --seed N`: the smallest fault schedule that still
//! fails, written as a scenario file.
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{bad_input, load, parse_bugs, say, say_raw};
use crate::sim::RunOptions;
use std::io::Write;
use std::path::PathBuf;

/// The command's flags.
pub struct Flags<'a> {
    /// Seed (default: the scenario's).
    pub seed: Option<u64>,
    /// Planted bugs.
    pub bugs: &'a [String],
    /// `--set` overrides.
    pub sets: &'a [String],
    /// Where to write the shrunk scenario (default: print it).
    pub out: Option<PathBuf>,
    /// Runs to spend at most.
    pub budget: u64,
}

/// Shrinks the failing run of `text` (named `source`).
pub fn shrink(
    source: &str,
    text: &str,
    flags: &Flags,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let scn = match load(source, text, flags.sets) {
        Ok(s) => s,
        Err(e) => return Ok(bad_input(&e)),
    };
    let bugs = match parse_bugs(flags.bugs) {
        Ok(b) => b,
        Err(e) => return Ok(bad_input(&e)),
    };
    let opts = RunOptions {
        seed: flags.seed.unwrap_or(scn.seed),
        bugs,
        source: source.to_string(),
        sets: flags.sets.to_vec(),
        ..RunOptions::default()
    };
    let shrunk = match crate::shrink::shrink(&scn, &opts, flags.budget) {
        Ok(s) => s,
        Err(crate::shrink::ShrinkError::Passes) => {
            say!(
                out,
                "{source} --seed {}: every check passes; nothing to shrink",
                opts.seed
            );
            return Ok(0);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let failing: Vec<&str> = shrunk.failing.iter().map(String::as_str).collect();
    let mut toml = format!(
        "# Shrunk by `pssim shrink {source} --seed {}`: {} fault(s) -> {}, still failing {}.\n",
        opts.seed,
        shrunk.faults.0,
        shrunk.faults.1,
        failing.join(", ")
    );
    let mut small = shrunk.scenario.clone();
    small.seed = opts.seed;
    toml.push_str(&small.to_toml());
    eprintln!(
        "shrunk {} fault(s) to {} in {} runs; still failing: {}",
        shrunk.faults.0,
        shrunk.faults.1,
        shrunk.runs,
        failing.join(", ")
    );
    for (name, msgs) in &shrunk.outcome.violations {
        if let Some(m) = msgs.first() {
            eprintln!("  {name}: {m}");
        }
    }
    match &flags.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &toml) {
                eprintln!("error: writing {}: {e}", path.display());
                return Ok(2);
            }
            let mut repro = format!("pssim run {} --seed {}", path.display(), opts.seed);
            for b in opts.bugs.iter() {
                repro.push_str(&format!(" --bug {b}"));
            }
            eprintln!("wrote {}\nREPRODUCE: {repro}", path.display());
        }
        None => say_raw!(out, "{toml}"),
    }
    Ok(0)
}
