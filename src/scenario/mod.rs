//! The scenario file format (../shared/scenario-format.md, version 2 as far
//! as docs/scenario-format.md says it is implemented).
//!
//! [`parse`] validates a whole file and reports the first problem with its
//! file, line, column, the field's dotted path (`training.learning_rate`,
//! `fault[2].node`), what was wrong and what would be valid. Unknown keys
//! are errors that list the valid keys. [`Scenario::to_toml`] writes a
//! scenario back (used for generated and shrunk scenarios), and
//! [`apply_override`] edits one key (`--set training.staleness=4`).
//!
//! May import: `crate::scenario`, `crate::core` (ids), toml, serde.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`.

mod parse;
mod reader;
mod types;
mod write;

pub use parse::parse;
pub use types::*;

use std::path::Path;

/// A scenario that cannot be used, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file (as named by the user), or `--set`.
    pub file: String,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: origin.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the scenario file: {e}"),
    })?;
    parse(&text, &origin)
}

impl Scenario {
    /// The scenario as a file that parses back to it.
    pub fn to_toml(&self) -> String {
        write::to_toml(self)
    }
}

/// Sets one key of a scenario's TOML text: `assignment` is
/// `dotted.key=value`, the value read as TOML if it parses (`4`, `0.1`,
/// `true`, `"x"`) and as a string otherwise (`5ms`). Missing tables are
/// created.
pub fn apply_override(text: &str, assignment: &str) -> Result<String, ScenarioError> {
    let err = |message: String| ScenarioError {
        file: "--set".into(),
        line: 1,
        column: 1,
        message,
    };
    let (path, raw) = assignment.split_once('=').ok_or_else(|| {
        err(format!(
            "{assignment:?}: expected KEY=VALUE, e.g. training.staleness=4"
        ))
    })?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(err(format!("{path:?}: bad key path")));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| err(format!("the scenario is not valid TOML: {e}")))?;
    let mut table = &mut doc;
    for (i, k) in keys[..keys.len() - 1].iter().enumerate() {
        let entry = table
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| err(format!("{}: is not a table", keys[..=i].join("."))))?;
    }
    table.insert(keys[keys.len() - 1].to_string(), value);
    toml::to_string(&doc).map_err(|e| err(format!("cannot write the scenario: {e}")))
}
