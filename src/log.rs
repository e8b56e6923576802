//! Logging with structured fields: one line on stderr per event (JSON or text).
//!
//! Field names are the journal's (`TASK_ID`, `ATTEMPT`, …) so one call site serves both the
//! journal and stderr; stderr lowercases them. Not a global logger: each daemon owns one, so
//! tests never share state.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

/// Severity, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// syslog priority, for the journal's PRIORITY field.
    pub fn priority(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Warning => 4,
            Level::Error => 3,
        }
    }
}

impl FromStr for Level {
    type Err = ();

    /// The names of Python's logging module, as the old design's LOG_LEVEL used them.
    fn from_str(s: &str) -> Result<Level, ()> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(Level::Debug),
            "INFO" => Ok(Level::Info),
            "WARNING" | "WARN" => Ok(Level::Warning),
            "ERROR" | "CRITICAL" => Ok(Level::Error),
            _ => Err(()),
        }
    }
}

/// Format of stderr lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// A structured field: journal-style upper-case name and its value.
pub type Field<'a> = (&'static str, &'a dyn fmt::Display);

/// A daemon's logger.
#[derive(Debug)]
pub struct Logger {
    pub level: Level,
    format: Format,
    worker: String,
}

impl Logger {
    pub fn new(level: Level, format: Format, worker: &str) -> Logger {
        Logger { level, format, worker: worker.to_string() }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    pub fn log(&self, level: Level, message: &str, fields: &[Field]) {
        if !self.enabled(level) {
            return;
        }
        let line = match self.format {
            Format::Json => self.json_line(level, message, fields),
            Format::Text => self.text_line(level, message, fields),
        };
        // One write per line so lines from several processes do not interleave; a closed
        // stderr is not a reason to stop working.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    pub fn debug(&self, message: &str, fields: &[Field]) {
        self.log(Level::Debug, message, fields)
    }

    pub fn info(&self, message: &str, fields: &[Field]) {
        self.log(Level::Info, message, fields)
    }

    pub fn warn(&self, message: &str, fields: &[Field]) {
        self.log(Level::Warning, message, fields)
    }

    pub fn error(&self, message: &str, fields: &[Field]) {
        self.log(Level::Error, message, fields)
    }

    fn json_line(&self, level: Level, message: &str, fields: &[Field]) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), crate::clock::rfc3339_now().into());
        obj.insert("level".into(), level.as_str().into());
        obj.insert("worker".into(), self.worker.clone().into());
        obj.insert("message".into(), message.into());
        for (name, value) in fields {
            obj.insert(name.to_ascii_lowercase(), value.to_string().into());
        }
        let mut line = serde_json::Value::Object(obj).to_string();
        line.push('\n');
        line
    }

    fn text_line(&self, level: Level, message: &str, fields: &[Field]) -> String {
        let mut line = format!(
            "{} {:<7} {}: {}",
            crate::clock::rfc3339_now(),
            level.as_str().to_ascii_uppercase(),
            self.worker,
            message
        );
        for (name, value) in fields {
            if *name == "MESSAGE_ID" {
                continue;
            }
            line.push_str(&format!(" {}={}", name.to_ascii_lowercase(), value));
        }
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_python_names() {
        assert_eq!("warning".parse(), Ok(Level::Warning));
        assert_eq!("WARN".parse(), Ok(Level::Warning));
        assert_eq!("CRITICAL".parse(), Ok(Level::Error));
        assert_eq!("verbose".parse::<Level>(), Err(()));
        assert!(Level::Error > Level::Info);
    }

    #[test]
    fn json_line_is_one_object_with_lowercase_fields() {
        let l = Logger::new(Level::Info, Format::Json, "marie");
        let line = l.json_line(Level::Info, "task completed", &[("TASK_ID", &"t1"), ("ATTEMPT", &2)]);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("json");
        assert_eq!(v["task_id"], "t1");
        assert_eq!(v["attempt"], "2");
        assert_eq!(v["worker"], "marie");
        assert_eq!(v["level"], "info");
    }

    #[test]
    fn text_line_has_fields() {
        let l = Logger::new(Level::Info, Format::Text, "anga");
        let line = l.text_line(Level::Warning, "retrying", &[("TASK_ID", &"x")]);
        assert!(line.contains("WARNING anga: retrying task_id=x"), "{line}");
    }
}
