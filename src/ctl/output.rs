//! Human output: aligned tables and key/value blocks, ages and durations. Scripts use
//! `--json` instead; nothing here is meant to be parsed.

use std::io::Write;

use serde_json::Value;

use super::exit::CtlError;

/// Writes `text` to stdout (a closed pipe becomes a quiet exit 0).
pub fn print(text: &str) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes one JSON document and a newline.
pub fn print_json(value: &Value) -> Result<(), CtlError> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    print(&text)
}

/// Columns padded to their widest cell, two spaces apart; the last is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// `key  value` lines with the keys aligned; a value of several lines is indented under it.
pub fn block(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let mut lines = value.lines();
        let first = format!("{key:<width$}  {}", lines.next().unwrap_or(""));
        out.push_str(first.trim_end());
        out.push('\n');
        for line in lines {
            let more = format!("{:width$}  {line}", "");
            out.push_str(more.trim_end());
            out.push('\n');
        }
    }
    out
}

/// `4s`, `2m05s`, `3h02m`, `2d04h`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The text of a JSON value for a table cell: strings bare, `-` for null or missing.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The first line of `s`, at most `max` characters (with `…` when cut).
pub fn one_line(s: &str, max: usize) -> String {
    let first = s.lines().next().unwrap_or("");
    let cut = s.lines().nth(1).is_some() || first.chars().count() > max;
    if cut {
        let kept: String = first.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let rows = vec![
            vec!["marie".into(), "idle".into(), "3s".into()],
            vec!["a".into(), "busy".into(), "x".into()],
        ];
        assert_eq!(
            table(&["WORKER", "STATE", "AGE"], &rows),
            "WORKER  STATE  AGE\nmarie   idle   3s\na       busy   x\n"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(age(-1.0), "0s");
        assert_eq!(age(4.4), "4s");
        assert_eq!(age(125.0), "2m05s");
        assert_eq!(age(3600.0 * 3.0 + 120.0), "3h02m");
        assert_eq!(age(86_400.0 * 2.0 + 3600.0 * 4.0), "2d04h");
    }

    #[test]
    fn blocks_and_lines() {
        assert_eq!(block(&[("a", "1".into()), ("long", "x\ny".into())]), "a     1\nlong  x\n      y\n");
        assert_eq!(one_line("abc\ndef", 10), "abc…");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("abc", 4), "abc");
    }
}
