//! Parse setup: guessing separator, header, column types and NA strings from a sample, like
//! H2O's ParseSetup. The guess is returned to users (`POST /3/ParseSetup`) and every field can
//! be overridden.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{FrameError, FrameResult};

/// Column types a frame can hold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// 64-bit integers.
    Int,
    /// 64-bit floats.
    Real,
    /// Booleans.
    Bool,
    /// Timestamps, stored as milliseconds since the epoch.
    Time,
    /// Categorical strings, dictionary-encoded.
    Enum,
    /// Free strings.
    String,
}

impl ColumnType {
    /// The Arrow type this column is stored as.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Int => DataType::Int64,
            ColumnType::Real => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Time => DataType::Timestamp(TimeUnit::Millisecond, None),
            ColumnType::Enum => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            ColumnType::String => DataType::Utf8,
        }
    }
}

/// How to parse a delimited text file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParseSetup {
    /// Field separator.
    pub separator: char,
    /// Whether the first line holds column names.
    pub header: bool,
    /// Column names.
    pub column_names: Vec<String>,
    /// Column types.
    pub column_types: Vec<ColumnType>,
    /// Cell texts that mean "missing".
    pub na_strings: Vec<String>,
    /// Column indices to leave out.
    #[serde(default)]
    pub skipped_columns: Vec<usize>,
}

/// User overrides of a guessed setup; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SetupOverrides {
    /// Separator.
    pub separator: Option<char>,
    /// Header present.
    pub header: Option<bool>,
    /// Column names.
    pub column_names: Option<Vec<String>>,
    /// Column types.
    pub column_types: Option<Vec<ColumnType>>,
    /// NA strings.
    pub na_strings: Option<Vec<String>>,
    /// Columns to skip.
    pub skipped_columns: Option<Vec<usize>>,
}

/// The NA strings assumed when none are given.
pub const DEFAULT_NA: &[&str] = &["", "NA", "N/A", "null", "NULL"];
const SEPARATORS: &[char] = &[',', '\t', ';', '|'];
const SAMPLE_LINES: usize = 1000;

/// Splits one line into fields, honouring double quotes (`""` is an escaped quote).
pub fn split_fields(line: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Sample records (a quoted field may hold newlines): complete records only (a last record
/// cut off by the sample end is dropped unless the sample is the whole file).
fn sample_lines(sample: &[u8], whole_file: bool) -> Vec<String> {
    crate::import::split::records(sample)
        .filter(|r| whole_file || r.ends_with(b"\n"))
        .map(|r| String::from_utf8_lossy(r).trim_end_matches(['\n', '\r']).to_string())
        .filter(|l| !l.trim().is_empty())
        .take(SAMPLE_LINES)
        .collect()
}

fn guess_separator(lines: &[String]) -> char {
    let mut best = (',', 0usize, 0usize);
    for &sep in SEPARATORS {
        let counts: Vec<usize> = lines.iter().map(|l| split_fields(l, sep).len() - 1).collect();
        let Some(&first) = counts.first() else { continue };
        let consistent = counts.iter().filter(|c| **c == first).count();
        if first > 0 && (consistent > best.1 || (consistent == best.1 && first > best.2)) {
            best = (sep, consistent, first);
        }
    }
    best.0
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().chain(&b[5..7]).chain(&b[8..10]).all(u8::is_ascii_digit);
    date && (b.len() == 10 || ((b[10] == b' ' || b[10] == b'T') && b.len() >= 19 && b[13] == b':' && b[16] == b':'))
}

fn is_bool(s: &str) -> bool {
    matches!(s, "true" | "false" | "TRUE" | "FALSE" | "True" | "False")
}

fn guess_type(values: &[&str]) -> ColumnType {
    let present: Vec<&str> = values.iter().copied().filter(|v| !DEFAULT_NA.contains(v)).collect();
    if present.is_empty() {
        return ColumnType::Real;
    }
    // A type wins with 90% of the values, as H2O votes: the rest are bad values that become
    // missing (and are counted) instead of turning a numeric column into text.
    let n = present.len();
    let wins = |k: usize| k * 10 >= n * 9;
    let ints = present.iter().filter(|v| v.parse::<i64>().is_ok()).count();
    let reals = present.iter().filter(|v| v.parse::<f64>().is_ok()).count();
    if wins(reals) {
        return if ints == reals { ColumnType::Int } else { ColumnType::Real };
    }
    if wins(present.iter().filter(|v| is_bool(v)).count()) {
        return ColumnType::Bool;
    }
    if wins(present.iter().filter(|v| is_time(v)).count()) {
        return ColumnType::Time;
    }
    text_type(&present)
}

/// Categorical unless nearly every value is distinct (ids, free text), as H2O guesses.
pub(crate) fn text_type(present: &[&str]) -> ColumnType {
    let distinct: HashSet<&str> = present.iter().copied().collect();
    if distinct.len() <= 64.max(present.len() * 9 / 10) {
        ColumnType::Enum
    } else {
        ColumnType::String
    }
}

/// Guesses the setup from the start of a file (`whole_file`: the sample is the entire file).
pub fn guess(sample: &[u8], whole_file: bool, url: &str) -> FrameResult<ParseSetup> {
    // A byte-order mark is no part of the first column's name.
    let sample = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    let lines = sample_lines(sample, whole_file);
    let Some(first) = lines.first() else {
        return Ok(ParseSetup {
            separator: ',',
            header: false,
            column_names: vec![],
            column_types: vec![],
            na_strings: na_default(),
            skipped_columns: vec![],
        });
    };
    let separator = guess_separator(&lines);
    let rows: Vec<Vec<String>> = lines.iter().map(|l| split_fields(l, separator)).collect();
    let ncols = rows[0].len();
    let body = &rows[1.min(rows.len())..];
    let mut types = Vec::with_capacity(ncols);
    for c in 0..ncols {
        let vals: Vec<&str> = body.iter().filter_map(|r| r.get(c).map(String::as_str)).collect();
        types.push(guess_type(&vals));
    }
    // Header: some column is typed (not text) in the body but its first cell does not fit;
    // or every column is text and no first cell appears again below it.
    let first_cells = &rows[0];
    let typed_mismatch = types
        .iter()
        .zip(first_cells)
        .any(|(t, v)| !matches!(t, ColumnType::Enum | ColumnType::String) && guess_type(&[v]) != *t && !DEFAULT_NA.contains(&v.as_str()));
    let all_text = types.iter().all(|t| matches!(t, ColumnType::Enum | ColumnType::String));
    let unique_first = !body.is_empty()
        && (0..ncols).all(|c| {
            let v = &first_cells[c];
            !v.is_empty() && guess_type(&[v]) == ColumnType::Enum && !body.iter().any(|r| r.get(c) == Some(v))
        });
    let header = typed_mismatch
        || (all_text && unique_first)
        || (body.is_empty() && guess_type(&first_cells.iter().map(String::as_str).collect::<Vec<_>>()) == ColumnType::Enum);
    if !header {
        // Without a header the first line is data too.
        for (c, t) in types.iter_mut().enumerate() {
            let vals: Vec<&str> = rows.iter().filter_map(|r| r.get(c).map(String::as_str)).collect();
            *t = guess_type(&vals);
        }
    }
    let column_names = if header { dedupe_names(first_cells) } else { (1..=ncols).map(|i| format!("C{i}")).collect() };
    // Only NA spellings seen in the sample go into the setup: each one costs a pattern match
    // per cell while parsing. Others met later still become missing (see parse.rs).
    let data_rows = if header { &rows[1..] } else { &rows[..] };
    let mut na_strings = vec![String::new()];
    for na in DEFAULT_NA.iter().filter(|s| !s.is_empty()) {
        if data_rows.iter().any(|r| r.iter().any(|c| c == na)) {
            na_strings.push(na.to_string());
        }
    }
    if ncols == 0 || first.is_empty() {
        return Err(FrameError::Parse { url: url.into(), reason: "the first line is empty".into() });
    }
    Ok(ParseSetup { separator, header, column_names, column_types: types, na_strings, skipped_columns: vec![] })
}

fn na_default() -> Vec<String> {
    DEFAULT_NA.iter().map(|s| s.to_string()).collect()
}

fn dedupe_names(names: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let base = if n.trim().is_empty() { format!("C{}", i + 1) } else { n.trim().to_string() };
            let mut name = base.clone();
            let mut k = 1;
            while !seen.insert(name.clone()) {
                k += 1;
                name = format!("{base}_{k}");
            }
            name
        })
        .collect()
}

impl ParseSetup {
    /// Applies user overrides, checking that lengths agree.
    pub fn apply(mut self, o: &SetupOverrides) -> FrameResult<Self> {
        if let Some(s) = o.separator {
            self.separator = s;
        }
        if let Some(h) = o.header {
            self.header = h;
        }
        if let Some(n) = &o.column_names {
            self.column_names = n.clone();
        }
        if let Some(t) = &o.column_types {
            self.column_types = t.clone();
        }
        if let Some(na) = &o.na_strings {
            self.na_strings = na.clone();
        }
        if let Some(s) = &o.skipped_columns {
            self.skipped_columns = s.clone();
        }
        if self.column_names.len() != self.column_types.len() {
            return Err(FrameError::InvalidArgument {
                what: "parse setup",
                reason: format!("{} column names but {} column types", self.column_names.len(), self.column_types.len()),
            });
        }
        if let Some(bad) = self.skipped_columns.iter().find(|c| **c >= self.column_names.len()) {
            return Err(FrameError::InvalidArgument { what: "skipped_columns", reason: format!("column {bad} does not exist") });
        }
        if !self.separator.is_ascii() {
            return Err(FrameError::InvalidArgument { what: "separator", reason: "it must be one ASCII character".into() });
        }
        Ok(self)
    }

    /// The schema of the frame (skipped columns left out).
    pub fn schema(&self) -> Schema {
        let fields: Vec<Field> = self
            .column_names
            .iter()
            .zip(&self.column_types)
            .enumerate()
            .filter(|(i, _)| !self.skipped_columns.contains(i))
            .map(|(_, (n, t))| Field::new(n, t.arrow_type(), true))
            .collect();
        Schema::new(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_the_benchmark_shape() {
        let csv = "i1,f1,c10,ts,b\n1,0.5,cat_1,2020-01-01 00:00:01,true\n2,,cat_2,2021-02-03 04:05:06,false\n3,1e3,cat_1,2022-12-31 23:59:59,true\n";
        let s = guess(csv.as_bytes(), true, "x").unwrap();
        assert_eq!(s.separator, ',');
        assert!(s.header);
        assert_eq!(s.column_names, vec!["i1", "f1", "c10", "ts", "b"]);
        assert_eq!(s.column_types, vec![ColumnType::Int, ColumnType::Real, ColumnType::Enum, ColumnType::Time, ColumnType::Bool]);
    }

    #[test]
    fn no_header_tabs_and_quotes() {
        let s = guess(b"1\t\"a\tb\"\n2\tc\n", true, "x").unwrap();
        assert_eq!(s.separator, '\t');
        assert!(!s.header);
        assert_eq!(s.column_names, vec!["C1", "C2"]);
        assert_eq!(split_fields("1,\"x,\"\"y\"\"\",z", ','), vec!["1", "x,\"y\"", "z"]);
    }

    #[test]
    fn text_only_header_and_empty_input() {
        let s = guess(b"name,city\nann,paris\nbob,rome\nann,rome\n", true, "x").unwrap();
        assert!(s.header);
        assert_eq!(s.column_names, vec!["name", "city"]);
        let e = guess(b"", true, "x").unwrap();
        assert!(e.column_names.is_empty());
    }

    #[test]
    fn a_few_bad_values_do_not_make_a_numeric_column_text() {
        let mut csv = String::from("a,b\n");
        for i in 0..50 {
            csv.push_str(&format!("{i},x{}\n", i % 3));
        }
        csv.push_str("oops,x1\n");
        let s = guess(csv.as_bytes(), true, "x").unwrap();
        assert_eq!(s.column_types, vec![ColumnType::Int, ColumnType::Enum]);
    }

    #[test]
    fn overrides_are_checked() {
        let s = guess(b"a,b\n1,2\n", true, "x").unwrap();
        let o = SetupOverrides { column_types: Some(vec![ColumnType::Real]), ..Default::default() };
        assert!(s.clone().apply(&o).unwrap_err().to_string().contains("2 column names but 1 column types"));
        let o = SetupOverrides {
            column_types: Some(vec![ColumnType::Real, ColumnType::String]),
            skipped_columns: Some(vec![0]),
            ..Default::default()
        };
        let s = s.apply(&o).unwrap();
        assert_eq!(s.schema().fields().len(), 1);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn guessing_never_panics(sample in proptest::collection::vec(any::<u8>(), 0..2048), whole in any::<bool>()) {
                let _ = guess(&sample, whole, "fuzz");
            }
        }
    }
}
