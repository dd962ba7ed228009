//! Printing shared by the command groups: `--output json|text`, proto3 JSON, protobuf values
//! and timestamps as a person reads them, and aligned tables. Kept in one place so every group
//! prints the same thing the same way.

use std::path::Path;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The API's messages as proto3 JSON, for scripts.
    Json,
    /// Short lines and tables, for people.
    Text,
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A timestamp as `YYYY-MM-DD HH:MM:SSZ`, or `-` when unset.
pub fn time(timestamp: Option<&pbjson_types::Timestamp>) -> String {
    let Some(timestamp) = timestamp else {
        return "-".to_owned();
    };
    let nanos = u32::try_from(timestamp.nanos).unwrap_or(0);
    chrono::DateTime::from_timestamp(timestamp.seconds, nanos)
        .map(|time| time.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// A protobuf value as compact JSON; protobuf keeps every number as a double, so whole ones
/// are printed without the `.0`.
pub fn compact(value: &pbjson_types::Value) -> String {
    whole_numbers(serde_json::to_value(value).unwrap_or_default()).to_string()
}

/// A protobuf struct as compact JSON, numbers as in [`compact`].
pub fn compact_struct(value: &pbjson_types::Struct) -> String {
    whole_numbers(serde_json::to_value(value).unwrap_or_default()).to_string()
}

fn whole_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    /// Doubles represent every integer up to 2^53 exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() <= EXACT => Value::from(float as i64),
            _ => Value::Number(number),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, whole_numbers(value)))
                .collect(),
        ),
        other => other,
    }
}

/// Prints `rows` under `header` in columns two spaces apart; the last column is not padded,
/// so long descriptions and messages do not push trailing spaces.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|title| (*title).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        println!("{}", table_line(&widths, row));
    }
}

fn table_line(widths: &[usize], row: &[String]) -> String {
    let last = row.len().saturating_sub(1);
    let cells: Vec<String> = row
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(index, (cell, width))| {
            let cell = if cell.is_empty() { "-" } else { cell.as_str() };
            if index == last {
                cell.to_owned()
            } else {
                format!("{cell:<width$}")
            }
        })
        .collect();
    cells.join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_doubles_print_as_integers() {
        let value = serde_json::json!({"port": 8080.0, "ratio": 0.5, "list": [1.0, "x"]});
        assert_eq!(
            whole_numbers(value).to_string(),
            r#"{"list":[1,"x"],"port":8080,"ratio":0.5}"#
        );
    }

    #[test]
    fn table_cells_align_and_empty_ones_show_a_dash() {
        let widths = [4, 3, 5];
        let row = ["ab".to_owned(), String::new(), "last".to_owned()];
        assert_eq!(table_line(&widths, &row), "ab    -    last");
    }
}
