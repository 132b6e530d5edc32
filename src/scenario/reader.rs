//! Reading typed values out of a parsed TOML document with their positions,
//! so every error names file, line, column, the field's path and what would
//! be valid.
//!
//! May import: `crate::scenario`, `crate::core` (ids), toml, serde.
//! Never: a host (`crate::sim`, `crate::net`), `crate::run`.

use super::ScenarioError;
use std::ops::Range;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The text being read, for turning byte offsets into lines and columns.
pub struct Source<'a> {
    pub text: &'a str,
    pub origin: &'a str,
}

impl Source<'_> {
    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        (line, column)
    }

    /// An error at `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let (line, column) = self.position(span.start);
        ScenarioError {
            file: self.origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// 1-based line of a span.
    pub fn line(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }
}

/// A table being read: keys must be among `allowed`; values are looked up
/// and typed with errors that name `path.key`.
pub struct Table<'s, 'a, 'i> {
    pub src: &'s Source<'a>,
    pub path: String,
    pub table: &'s DeTable<'i>,
    pub span: Range<usize>,
}

/// Human name of a TOML value's type.
pub fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Result<T> = std::result::Result<T, ScenarioError>;

impl<'s, 'a, 'i> Table<'s, 'a, 'i> {
    /// Opens a table, rejecting keys not in `allowed`.
    pub fn open(
        src: &'s Source<'a>,
        path: impl Into<String>,
        table: &'s DeTable<'i>,
        span: Range<usize>,
        allowed: &[&str],
    ) -> Result<Self> {
        let t = Table {
            src,
            path: path.into(),
            table,
            span,
        };
        for (k, _) in table.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let where_ = if t.path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in [{}]", t.path)
                };
                return Err(src.error(
                    k.span(),
                    format!(
                        "unknown key {:?} {where_}; valid keys: {}",
                        k.get_ref(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(t)
    }

    /// The dotted path of `key`.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'s Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    /// An error about `key`'s value.
    pub fn bad(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        msg: impl std::fmt::Display,
    ) -> ScenarioError {
        self.src
            .error(v.span(), format!("{}: {msg}", self.field(key)))
    }

    /// An error about the table itself (a missing key, say).
    pub fn missing(&self, key: &str, what: &str) -> ScenarioError {
        self.src.error(
            self.span.clone(),
            format!("{}: missing; {what}", self.field(key)),
        )
    }

    fn wrong_type(&self, v: &Spanned<DeValue<'_>>, key: &str, expected: &str) -> ScenarioError {
        self.bad(
            v,
            key,
            format!("expected {expected}, found {}", type_name(v.get_ref())),
        )
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Result<Option<(&'s str, Range<usize>)>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some((s.as_ref(), v.span()))),
                _ => Err(self.wrong_type(v, key, "a string")),
            },
        }
    }

    /// A boolean value.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .get_ref()
                .as_bool()
                .ok_or_else(|| self.wrong_type(v, key, "true or false")),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, key: &str, min: i128, max: i128) -> Result<Option<i128>> {
        self.get(key)
            .map(|v| self.int_value(v, key, min, max, "an integer"))
            .transpose()
    }

    /// `v` (a value of `key`, or an element of it) as an integer in
    /// `min..=max`; `expected` names what `key` takes.
    fn int_value(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        min: i128,
        max: i128,
        expected: &str,
    ) -> Result<i128> {
        let DeValue::Integer(i) = v.get_ref() else {
            return Err(self.wrong_type(v, key, expected));
        };
        let n = i128::from_str_radix(i.as_str(), i.radix())
            .map_err(|_| self.bad(v, key, "integer out of range"))?;
        if n < min || n > max {
            return Err(self.bad(v, key, format!("{n} is out of range; valid: {min}..={max}")));
        }
        Ok(n)
    }

    /// A `u32` in `min..=max`, or `default`.
    pub fn u32(&self, key: &str, default: u32, min: u32, max: u32) -> Result<u32> {
        Ok(self
            .int(key, i128::from(min), i128::from(max))?
            .map_or(default, |n| n as u32))
    }

    /// A `u64`, or `default`.
    pub fn u64(&self, key: &str, default: u64) -> Result<u64> {
        Ok(self
            .int(key, 0, i128::from(u64::MAX))?
            .map_or(default, |n| n as u64))
    }

    /// An integer in `min..=max`, or an array of one to `max_len` of them
    /// (`hidden = 64`, `hidden = [64, 32]`); each error points at the
    /// offending element.
    pub fn int_list(
        &self,
        key: &str,
        min: i128,
        max: i128,
        max_len: usize,
    ) -> Result<Option<Vec<i128>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = "an integer or an array of integers";
        let items: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
            DeValue::Integer(_) => vec![v],
            DeValue::Array(items) => items.iter().collect(),
            _ => return Err(self.wrong_type(v, key, expected)),
        };
        if items.is_empty() {
            return Err(self.bad(v, key, "an empty list; give at least one value"));
        }
        if items.len() > max_len {
            return Err(self.bad(
                v,
                key,
                format!("{} values; valid: at most {max_len}", items.len()),
            ));
        }
        items
            .into_iter()
            .map(|item| self.int_value(item, key, min, max, expected))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A finite number (integer or float) satisfying `ok`, described by
    /// `valid` in errors.
    pub fn num(&self, key: &str, ok: impl Fn(f64) -> bool, valid: &str) -> Result<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => return Err(self.wrong_type(v, key, "a number")),
        };
        match x {
            Some(x) if x.is_finite() && ok(x) => Ok(Some(x)),
            Some(x) => Err(self.bad(v, key, format!("{x} is not valid; valid: {valid}"))),
            None => Err(self.bad(v, key, "not a number")),
        }
    }

    /// A duration string ("250ms", "3s", "1m").
    pub fn duration(&self, key: &str) -> Result<Option<(Duration, Range<usize>)>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::String(s) = v.get_ref() else {
            return Err(self.wrong_type(v, key, "a duration string such as \"250ms\""));
        };
        parse_duration(s)
            .map(|d| Some((d, v.span())))
            .map_err(|e| self.bad(v, key, e))
    }

    /// A duration that must be positive.
    pub fn positive_duration(&self, key: &str) -> Result<Option<Duration>> {
        match self.duration(key)? {
            Some((d, span)) if d.is_zero() => Err(self.src.error(
                span,
                format!("{}: must be greater than zero", self.field(key)),
            )),
            other => Ok(other.map(|(d, _)| d)),
        }
    }

    /// One of the named choices.
    pub fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        let Some((s, span)) = self.str(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, t)| Some(*t))
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.src.error(
                    span,
                    format!(
                        "{}: unknown value {s:?}; valid: {}",
                        self.field(key),
                        names.join(", ")
                    ),
                )
            })
    }

    /// A sub-table (`[section]`), if present.
    pub fn table(&self, key: &str, allowed: &[&str]) -> Result<Option<Table<'s, 'a, 'i>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => {
                Table::open(self.src, self.field(key), t, v.span(), allowed).map(Some)
            }
            _ => Err(self.wrong_type(v, key, "a table")),
        }
    }

    /// An array of tables (`[[fault]]`), each with its span.
    pub fn tables(&self, key: &str) -> Result<Vec<(&'s DeTable<'i>, Range<usize>)>> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(v, key, &format!("an array of tables ([[{key}]])")));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Table(t) => Ok((t, item.span())),
                _ => Err(self.wrong_type(item, key, &format!("a table ([[{key}]])"))),
            })
            .collect()
    }
}

/// Parses a duration ("250ms", "3s", "1m", "1m 30s").
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("bad duration {s:?} ({e}); expected e.g. \"250ms\", \"3s\", \"1m\""))
}

/// Parses a bandwidth ("1Gbps", "10Mbps", "1.5Gbps", "500bps") to bits per
/// second.
pub fn parse_bandwidth(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let Some(num_unit) = lower.strip_suffix("bps") else {
        return Err(format!(
            "bad bandwidth {s:?}; expected e.g. \"1Gbps\", \"10Mbps\", \"100Kbps\""
        ));
    };
    let (num, scale) = match num_unit.chars().last() {
        Some('k') => (&num_unit[..num_unit.len() - 1], 1e3),
        Some('m') => (&num_unit[..num_unit.len() - 1], 1e6),
        Some('g') => (&num_unit[..num_unit.len() - 1], 1e9),
        Some('t') => (&num_unit[..num_unit.len() - 1], 1e12),
        _ => (num_unit, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x * scale),
        _ => Err(format!(
            "bad bandwidth {s:?}; expected a positive number and a unit, e.g. \"1Gbps\""
        )),
    }
}

/// Writes a bandwidth in the largest unit that keeps it exact.
pub fn format_bandwidth(bps: f64) -> String {
    for (scale, unit) in [(1e12, "Tbps"), (1e9, "Gbps"), (1e6, "Mbps"), (1e3, "Kbps")] {
        let x = bps / scale;
        if x >= 1.0 && (x * scale - bps).abs() < 1e-6 && x.fract() == 0.0 {
            return format!("{x}{unit}");
        }
    }
    format!("{bps}bps")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_parse_and_print() {
        assert_eq!(parse_bandwidth("1Gbps"), Ok(1e9));
        assert_eq!(parse_bandwidth("10mbps"), Ok(1e7));
        assert_eq!(parse_bandwidth("1.5Gbps"), Ok(1.5e9));
        assert_eq!(parse_bandwidth("500bps"), Ok(500.0));
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("-1Gbps").is_err());
        assert!(parse_bandwidth("0Mbps").is_err());
        for bw in [1e9, 1e7, 1.5e9, 500.0, 123456.0] {
            assert_eq!(parse_bandwidth(&format_bandwidth(bw)), Ok(bw));
        }
    }

    #[test]
    fn positions_are_one_based() {
        let src = Source {
            text: "a\nbc\n",
            origin: "f",
        };
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(3), (2, 2));
    }
}
