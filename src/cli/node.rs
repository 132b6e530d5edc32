//! Real mode's commands: `pssim node` (one node of a cluster),
//! `pssim local` (a whole cluster on loopback, judged like a simulation)
//! and `pssim judge` (a cluster's events directory, judged afterwards).
//!
//! May import: anything in the library (the top layer). Never: code
//! that belongs in a lower layer (a command only parses, calls and prints).

use super::{bad_input, say, say_raw, Role};
use crate::core::NodeId;
use crate::net::local::LocalOptions;
use crate::scenario;
use std::io::Write;
use std::path::Path;

/// Which node `--role`/`--id` name.
pub fn node_id(role: Option<Role>, id: Option<&str>) -> Result<NodeId, String> {
    match (role, id) {
        (Some(Role::Coordinator), None | Some("0")) | (None, Some("coordinator")) => {
            Ok(NodeId::Coordinator)
        }
        (Some(role @ (Role::Server | Role::Worker)), Some(n)) => match n.parse::<u32>() {
            Ok(i) if matches!(role, Role::Server) => Ok(NodeId::Server(i)),
            Ok(i) => Ok(NodeId::Worker(i)),
            Err(_) => Err(format!(
                "--id {n:?}: with --role, the id is an index (0, 1, ...)"
            )),
        },
        (None, Some(name)) => name.parse::<NodeId>().map_err(|e| format!("--id: {e}")),
        (Some(_), None) => Err("--id: which server or worker (an index)?".to_string()),
        (Some(Role::Coordinator), Some(n)) => {
            Err(format!("--id {n:?}: there is one coordinator; omit --id"))
        }
        (None, None) => Err("name the node: --role server|worker|coordinator --id N".to_string()),
    }
}

/// Runs one node of the cluster file `cluster` until it is told to stop.
pub fn node(
    cluster: &Path,
    role: Option<Role>,
    id: Option<&str>,
    incarnation: u32,
    data_dir: Option<&Path>,
    exit_on_eof: bool,
) -> i32 {
    let id = match node_id(role, id) {
        Ok(id) => id,
        Err(e) => return bad_input(&e),
    };
    let cluster = match crate::net::cluster::Cluster::load(cluster) {
        Ok(c) => c,
        Err(e) => return bad_input(&e),
    };
    match crate::net::node::run(&cluster, id, incarnation, data_dir, exit_on_eof) {
        Ok(()) => 0,
        Err(e) => bad_input(&e),
    }
}

/// Runs the scenario `file` for real on loopback and prints its outcome.
pub fn local(
    file: &Path,
    opts: &LocalOptions,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let scn = match scenario::load(file) {
        Ok(s) => s,
        Err(e) => return Ok(bad_input(&e)),
    };
    match crate::net::local::run(&scn, file, opts) {
        Ok(o) => print_outcome(&scn, &o, json, out),
        Err(e) => Ok(bad_input(&e)),
    }
}

/// Prints a real run's outcome (JSON or the summary); its exit code.
fn print_outcome(
    scn: &crate::scenario::Scenario,
    o: &crate::outcome::Outcome,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    if json {
        say!(
            out,
            "{}",
            serde_json::to_string(o).expect("outcome serializes")
        );
    } else {
        say_raw!(out, "{}", crate::summary::render(scn, o));
    }
    Ok(o.exit_code())
}

/// Judges the events directory `dir` and prints its outcome.
pub fn judge(
    dir: &Path,
    json: bool,
    trace: Option<std::path::PathBuf>,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    match crate::net::judge::judge_dir(dir, trace) {
        Ok((scn, o)) => print_outcome(&scn, &o, json, out),
        Err(e) => Ok(bad_input(&e)),
    }
}
