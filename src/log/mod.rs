//! Logging with structured fields: a native journal entry per event under journald
//! ([`journal`]), else one line on stderr (JSON or text).
//!
//! Field names are the journal's (`TASK_ID`, `ATTEMPT`, …) so one call site serves both the
//! journal and stderr; stderr lowercases them. Key events carry a `MESSAGE_ID` from [`ids`].
//! Not a global logger: each daemon owns one, so tests never share state.

pub mod ids;
pub(crate) mod journal;

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

pub use journal::{Sink, Target};

/// Severity, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    /// The name on stderr lines, JSON and text alike: Python's, in capitals, as the old design
    /// wrote it and as LOG_LEVEL takes it, so that `… | grep ERROR` finds the errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
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

impl std::str::FromStr for Format {
    type Err = ();

    fn from_str(s: &str) -> Result<Format, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            _ => Err(()),
        }
    }
}

/// A structured field: journal-style upper-case name and its value.
pub type Field<'a> = (&'static str, &'a dyn fmt::Display);

/// A daemon's logger.
#[derive(Debug)]
pub struct Logger {
    pub level: Level,
    format: Format,
    sink: Sink,
    /// SYSLOG_IDENTIFIER of journal entries and the name on text lines.
    identifier: &'static str,
    /// WORKER= of every entry; empty for a daemon of no one worker (the listener).
    worker: String,
    /// The last journal entry could not be sent (its failure was reported on stderr).
    journal_failing: Cell<bool>,
}

impl Logger {
    /// The logger of worker `worker`'s daemon.
    pub fn new(level: Level, format: Format, sink: Sink, worker: &str) -> Logger {
        Logger::with_identity(level, format, sink, journal::IDENTIFIER, worker)
    }

    /// A logger for `identifier` (a program's name); `worker` is empty for a daemon that
    /// serves every worker, whose call sites name the worker in a `WORKER` field.
    pub fn with_identity(
        level: Level,
        format: Format,
        sink: Sink,
        identifier: &'static str,
        worker: &str,
    ) -> Logger {
        Logger {
            level,
            format,
            sink,
            identifier,
            worker: worker.to_string(),
            journal_failing: Cell::new(false),
        }
    }

    pub fn sink(&self) -> Sink {
        self.sink
    }

    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    pub fn log(&self, level: Level, message: &str, fields: &[Field]) {
        if !self.enabled(level) {
            return;
        }
        if self.sink == Sink::Journal {
            let text = format!("{message}{}", pairs(fields));
            match journal::send(level, &text, self.identifier, &self.worker, fields) {
                Ok(()) => return self.journal_failing.set(false),
                Err(e) => self.journal_failed(&e),
            }
        }
        self.write_line(level, message, fields);
    }

    /// The first failure of a run of them is said on stderr; each entry that could not be
    /// sent goes to stderr instead.
    fn journal_failed(&self, error: &str) {
        if !self.journal_failing.replace(true) {
            let why = format!("cannot log to the journal ({error}); logging to stderr until it works again");
            self.write_line(Level::Warning, &why, &[]);
        }
    }

    fn write_line(&self, level: Level, message: &str, fields: &[Field]) {
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
        obj.insert("ts".into(), crate::sys::clock::rfc3339_now().into());
        obj.insert("level".into(), level.as_str().into());
        if !self.worker.is_empty() {
            obj.insert("worker".into(), self.worker.clone().into());
        }
        obj.insert("message".into(), message.into());
        for (name, value) in fields {
            obj.insert(name.to_ascii_lowercase(), value.to_string().into());
        }
        let mut line = serde_json::Value::Object(obj).to_string();
        line.push('\n');
        line
    }

    fn text_line(&self, level: Level, message: &str, fields: &[Field]) -> String {
        format!(
            "{} {:<7} {}: {}{}\n",
            crate::sys::clock::rfc3339_now(),
            level.as_str(),
            if self.worker.is_empty() { self.identifier } else { &self.worker },
            message,
            pairs(fields)
        )
    }
}

/// ` name=value` for each field but MESSAGE_ID, names lowercased; a value that is empty or
/// has spaces or quotes is quoted, so the text stays one line that splits unambiguously.
fn pairs(fields: &[Field]) -> String {
    let mut out = String::new();
    for (name, value) in fields.iter().filter(|(name, _)| *name != "MESSAGE_ID") {
        let value = value.to_string();
        let plain = !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '"');
        if plain {
            out.push_str(&format!(" {}={value}", name.to_ascii_lowercase()));
        } else {
            out.push_str(&format!(" {}={value:?}", name.to_ascii_lowercase()));
        }
    }
    out
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
        let l = Logger::new(Level::Info, Format::Json, Sink::Stderr, "marie");
        let line = l.json_line(Level::Info, "task completed", &[("TASK_ID", &"t1"), ("ATTEMPT", &2)]);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("json");
        assert_eq!(v["task_id"], "t1");
        assert_eq!(v["attempt"], "2");
        assert_eq!(v["worker"], "marie");
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn text_line_has_fields() {
        let l = Logger::new(Level::Info, Format::Text, Sink::Stderr, "anga");
        let line = l.text_line(Level::Warning, "retrying", &[("TASK_ID", &"x")]);
        assert!(line.contains("WARNING anga: retrying task_id=x"), "{line}");
    }

    #[test]
    fn pairs_skip_the_message_id_and_quote_what_has_spaces() {
        let text = pairs(&[
            ("MESSAGE_ID", &ids::TASK_FAILED),
            ("TASK_ID", &"t1"),
            ("ERROR", &"exit status 3"),
            ("FILE", &""),
        ]);
        assert_eq!(text, r#" task_id=t1 error="exit status 3" file="""#);
    }
}
