//! The `pssim` command line: the flags (clap) and every command's body,
//! in the library so that tests can call a command and read what it
//! prints. `src/bin/pssim.rs` only parses and calls [`main`].
//!
//! Each command writes its report to the `out` it is given (standard
//! output in the binary) and errors to standard error, and returns the
//! exit code: 0 all checks pass, 1 a check failed, 2 bad input.
//!
//! May import: anything in the library (this is the top layer). The
//! simulator's commands (`run`, `sweep`, `shrink`, `bench`) exist only in
//! the default build; the real build keeps `node`, `local`, `judge`,
//! `check`, `bugs` and `sweep merge` (it runs no simulation).
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

mod args;
#[cfg(madsim)]
mod bench;
mod calibrate;
mod check;
mod merge;
mod node;
#[cfg(madsim)]
mod run;
#[cfg(madsim)]
mod shrink;
mod sweep;

pub use args::{CalibrateModel, Cli, Cmd, MergeArgs, Role, RunArgs, SweepArgs, SweepCmd};

use crate::core::{Bug, Bugs};
use crate::scenario::{self, Scenario, ScenarioError};
use std::io::Write;
use std::path::Path;

/// The scenario `pssim` runs with no arguments.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
/// Where the default scenario lives in the repository (for REPRODUCE).
pub const DEFAULT_SOURCE: &str = "scenarios/default.toml";

/// Writes a line to a command's output; a failed write (a closed pipe:
/// `pssim … | head`) ends the command quietly.
macro_rules! say {
    ($out:expr, $($t:tt)*) => {
        writeln!($out, $($t)*)?
    };
}
/// As `say!`, without the newline.
macro_rules! say_raw {
    ($out:expr, $($t:tt)*) => {
        write!($out, $($t)*)?
    };
}
pub(crate) use {say, say_raw};

/// Runs the command `cli` names, writing its report to `out`; returns the
/// exit code. A closed output ends the command with 0, as `head` expects.
pub fn main(cli: Cli, out: &mut dyn Write) -> u8 {
    match dispatch(cli, out) {
        Ok(code) => code as u8,
        Err(_) => 0,
    }
}

fn dispatch(cli: Cli, out: &mut dyn Write) -> std::io::Result<i32> {
    match cli.cmd {
        #[cfg(madsim)]
        None => {
            // The main job: the default scenario, with its plots.
            let mut args = cli.run.clone();
            args.plots
                .get_or_insert_with(|| std::path::PathBuf::from("plots/default"));
            run::run(DEFAULT_SOURCE, DEFAULT_SCENARIO, &args, out)
        }
        #[cfg(madsim)]
        Some(Cmd::Run { file, args }) => match read(&file) {
            Ok(text) => run::run(&file.display().to_string(), &text, &args, out),
            Err(e) => Ok(bad_input(&e)),
        },
        Some(Cmd::Check { files }) => check::check(&files, out),
        #[cfg(madsim)]
        Some(Cmd::Shrink {
            file,
            seed,
            bugs,
            sets,
            out: to,
            budget,
        }) => match read(&file) {
            Ok(text) => shrink::shrink(
                &file.display().to_string(),
                &text,
                &shrink::Flags {
                    seed,
                    bugs: &bugs,
                    sets: &sets,
                    out: to,
                    budget,
                },
                out,
            ),
            Err(e) => Ok(bad_input(&e)),
        },
        Some(Cmd::Sweep {
            merge: Some(SweepCmd::Merge(args)),
            ..
        }) => merge::merge(&args, out),
        #[cfg(madsim)]
        Some(Cmd::Sweep {
            merge: None,
            file,
            args,
        }) => match file.as_deref().map(|f| (f, read(f))) {
            Some((f, Ok(text))) => sweep::sweep(&f.display().to_string(), &text, &args, out),
            Some((_, Err(e))) => Ok(bad_input(&e)),
            None => Ok(bad_input(&"pssim sweep: a scenario FILE, or merge DIR...")),
        },
        Some(Cmd::Bugs) => check::bugs(out),
        Some(Cmd::Calibrate { model }) => calibrate::calibrate(model, out),
        #[cfg(madsim)]
        Some(Cmd::Bench {
            json,
            scale,
            large,
            tcp,
        }) => bench::bench(json.as_deref(), scale, large, tcp, out),
        #[cfg(not(madsim))]
        None
        | Some(
            Cmd::Run { .. }
            | Cmd::Shrink { .. }
            | Cmd::Sweep { merge: None, .. }
            | Cmd::Bench { .. },
        ) => Ok(bad_input(
            &"this pssim is the real build (cargo build-real): it runs `pssim node`, \
              `pssim local`, `judge`, `check`, `bugs` and `sweep merge`; simulations need the \
              default build (cargo build)",
        )),
        Some(Cmd::Node {
            cluster,
            role,
            id,
            incarnation,
            data_dir,
            exit_on_eof,
        }) => Ok(node::node(
            &cluster,
            role,
            id.as_deref(),
            incarnation,
            data_dir.as_deref(),
            exit_on_eof,
        )),
        Some(Cmd::Judge { dir, json, trace }) => node::judge(&dir, json, trace, out),
        Some(Cmd::Local {
            file,
            in_process,
            seed,
            json,
            timeout,
            trace,
            dir,
        }) => {
            let timeout = match humantime::parse_duration(&timeout) {
                Ok(t) => t,
                Err(e) => return Ok(bad_input(&format!("--timeout {timeout:?}: {e}"))),
            };
            let opts = crate::net::local::LocalOptions {
                in_process,
                seed,
                timeout,
                trace,
                dir,
                exe: None,
            };
            node::local(&file, &opts, json, out)
        }
    }
}

/// Reads a scenario file, or says why not.
pub fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the scenario file: {e}"),
    })
}

/// Reports bad input on standard error; its exit code.
pub fn bad_input(e: &dyn std::fmt::Display) -> i32 {
    eprintln!("error: {e}");
    2
}

/// Parses a scenario with `--set` overrides applied.
pub fn load(source: &str, text: &str, sets: &[String]) -> Result<Scenario, ScenarioError> {
    let mut text = text.to_string();
    for s in sets {
        text = scenario::apply_override(&text, s)?;
    }
    scenario::parse(&text, source)
}

/// Parses `--bug` names.
pub fn parse_bugs(names: &[String]) -> Result<Bugs, String> {
    let mut bugs = Bugs::NONE;
    for name in names {
        bugs = bugs.with(name.parse::<Bug>().map_err(|e| format!("--bug: {e}"))?);
    }
    Ok(bugs)
}
