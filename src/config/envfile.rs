//! Env files read exactly as systemd's `EnvironmentFile=` reads them, because the same file
//! feeds both: systemd puts its values in the daemon's environment at start, and the daemon
//! reads it again itself (at start and on SIGHUP). A secret must come out of both byte for byte.
//!
//! The state machine is systemd's `parse_env_file_internal()` (src/basic/env-file.c), byte for
//! byte, as systemd 247 to 253 run it (Debian 12 has 252), followed by what
//! `load_env_file_push()` and `strv_env_clean_with_callback()` do with each assignment:
//! - no variable expansion: `$`, backticks and backslashes are kept as written;
//! - `KEY=value`: leading whitespace of the line and around `=` is dropped, and trailing
//!   whitespace of an unquoted value; `#` or `;` starts a comment only at the start of a line;
//! - `'...'` keeps everything literally (newlines too); in `"..."`, a backslash before `"`,
//!   `\`, `` ` `` or `$` is dropped, before a newline both go (a continuation line), and before
//!   anything else it is kept; quoted and unquoted parts join up (`A="x"y` is `xy`), and a quote
//!   in the middle of an unquoted value is an ordinary character;
//! - outside quotes, a backslash keeps the next character literally, and before a newline
//!   joins the next line;
//! - CR ends a line as LF does, so CRLF files read as expected;
//! - a later assignment of a variable replaces an earlier one.
//!
//! What systemd would ignore (with an error in its log, or silently) or read differently from
//! one version to another is reported as a [`Problem`]; the daemon refuses the file for it,
//! with the line number and never the line's text (it may hold a secret).

use std::fmt;

/// A line the daemon refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A line that is not a comment and has no `=`: systemd ignores it.
    NoEquals,
    /// A name that is not letters, digits and `_` (or starts with a digit): systemd ignores
    /// the assignment.
    BadName,
    /// `export NAME=…`: systemd ignores the assignment.
    Export,
    /// A byte-order mark before the first name: systemd ignores the first assignment.
    ByteOrderMark,
    /// Not UTF-8: systemd reads nothing of the file.
    InvalidUtf8,
    /// A comment ending in a backslash: systemd before 254 takes the next line as part of the
    /// comment, later versions do not.
    CommentContinues,
    /// A quote never closed: systemd takes the rest of the file as the value.
    Unterminated,
    /// A NUL byte: systemd reads nothing of the file.
    Nul,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::NoEquals => "not a NAME=value assignment nor a comment (systemd ignores such a line)",
            Kind::BadName => "a variable name must be letters, digits and _, not starting with a digit (systemd ignores this assignment)",
            Kind::Export => "`export` is not part of the syntax (systemd ignores this assignment); remove it",
            Kind::ByteOrderMark => "the file starts with a byte-order mark (systemd then ignores the first assignment); save it without one",
            Kind::InvalidUtf8 => "not valid UTF-8 (systemd reads nothing of such a file)",
            Kind::CommentContinues => "a comment ends in a backslash (systemd before 254 also ignores the next line, later versions do not); remove the backslash",
            Kind::Unterminated => "a quote opened here is never closed (systemd takes the rest of the file as the value)",
            Kind::Nul => "a NUL byte (systemd reads nothing of such a file)",
        };
        write!(f, "line {}: {what}", self.line)
    }
}

/// A parsed file: what systemd sets from it, and what the daemon refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// In the order of first assignment; a later assignment replaces the value.
    pub vars: Vec<(String, String)>,
    pub problems: Vec<Problem>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
    CommentEscape,
}

const WHITESPACE: &[u8] = b" \t\n\r";
const NEWLINE: &[u8] = b"\n\r";
const COMMENTS: &[u8] = b"#;";
const SHELL_NEED_ESCAPE: &[u8] = b"\"\\`$";

#[derive(Default)]
struct Parser {
    key: Vec<u8>,
    value: Vec<u8>,
    /// Where trailing whitespace of the key / the unquoted value starts (systemd's
    /// `last_key_whitespace`, `last_value_whitespace`).
    key_ws: Option<usize>,
    value_ws: Option<usize>,
    /// 1 + the newlines read so far; the line a key or a quote started on.
    line: usize,
    key_line: usize,
    quote_line: usize,
    /// Assignments in order, with their line.
    pushed: Vec<(Vec<u8>, Vec<u8>, usize)>,
    problems: Vec<Problem>,
}

/// Reads `input` as systemd's `EnvironmentFile=` does.
pub fn parse(input: &[u8]) -> Parsed {
    if let Some(at) = input.iter().position(|b| *b == 0) {
        // systemd's read_full_stream() refuses a file with a NUL byte: nothing of it is set.
        let line = 1 + input[..at].iter().filter(|b| **b == b'\n').count();
        return Parsed { vars: Vec::new(), problems: vec![Problem { line, kind: Kind::Nul }] };
    }
    let mut p = Parser { line: 1, ..Parser::default() };
    if input.starts_with(b"\xEF\xBB\xBF") {
        p.problem(1, Kind::ByteOrderMark);
    }
    let mut state = State::PreKey;
    for &c in input {
        state = p.step(state, c);
        if c == b'\n' {
            p.line += 1;
        }
    }
    p.finish(state);
    p.into_parsed()
}

impl Parser {
    /// One byte of systemd's state machine; `src/basic/env-file.c` has the same cases in the
    /// same order.
    fn step(&mut self, state: State, c: u8) -> State {
        use State::*;
        match state {
            PreKey if COMMENTS.contains(&c) => Comment,
            PreKey if WHITESPACE.contains(&c) => PreKey,
            PreKey => {
                self.key_ws = None;
                self.key_line = self.line;
                self.key.push(c);
                Key
            }
            Key if NEWLINE.contains(&c) => {
                self.problem(self.key_line, Kind::NoEquals);
                self.key.clear();
                PreKey
            }
            Key if c == b'=' => {
                self.value_ws = None;
                PreValue
            }
            Key => {
                trailing(&mut self.key_ws, self.key.len(), c);
                self.key.push(c);
                Key
            }
            PreValue if NEWLINE.contains(&c) => self.push(),
            PreValue if c == b'\'' || c == b'"' => {
                self.quote_line = self.line;
                if c == b'"' {
                    DoubleQuote
                } else {
                    SingleQuote
                }
            }
            PreValue if c == b'\\' => ValueEscape,
            PreValue if WHITESPACE.contains(&c) => PreValue,
            PreValue => {
                self.value.push(c);
                Value
            }
            Value if NEWLINE.contains(&c) => self.push(),
            Value if c == b'\\' => {
                self.value_ws = None;
                ValueEscape
            }
            Value => {
                trailing(&mut self.value_ws, self.value.len(), c);
                self.value.push(c);
                Value
            }
            // An escaped newline (a continuation line) is dropped with its backslash.
            ValueEscape => {
                if !NEWLINE.contains(&c) {
                    self.value.push(c);
                }
                Value
            }
            SingleQuote if c == b'\'' => PreValue,
            SingleQuote => {
                self.value.push(c);
                SingleQuote
            }
            DoubleQuote if c == b'"' => PreValue,
            DoubleQuote if c == b'\\' => DoubleQuoteEscape,
            DoubleQuote => {
                self.value.push(c);
                DoubleQuote
            }
            // As the shell does: the backslash goes before " \ ` $ and a newline (LF only),
            // and stays before anything else.
            DoubleQuoteEscape => {
                if SHELL_NEED_ESCAPE.contains(&c) {
                    self.value.push(c);
                } else if c != b'\n' {
                    self.value.extend_from_slice(&[b'\\', c]);
                }
                DoubleQuote
            }
            Comment if c == b'\\' => CommentEscape,
            Comment if NEWLINE.contains(&c) => PreKey,
            Comment => Comment,
            // systemd 252 goes back to the comment whatever `c` is, so an escaped newline
            // continues it; 254 and later end the comment there. Read as 252 does, refused.
            CommentEscape => {
                if NEWLINE.contains(&c) {
                    self.problem(self.line, Kind::CommentContinues);
                }
                Comment
            }
        }
    }

    /// End of the input: what systemd does after its loop.
    fn finish(&mut self, state: State) {
        use State::*;
        match state {
            SingleQuote | DoubleQuote | DoubleQuoteEscape => {
                self.problem(self.quote_line, Kind::Unterminated);
                self.push();
            }
            PreValue | Value | ValueEscape => {
                self.push();
            }
            Key => self.problem(self.key_line, Kind::NoEquals),
            PreKey | Comment | CommentEscape => {}
        }
    }

    /// One assignment, its key's and its unquoted value's trailing whitespace cut (systemd
    /// cuts the value's only in the unquoted state, the only one where it can be set).
    fn push(&mut self) -> State {
        if let Some(n) = self.value_ws.take() {
            self.value.truncate(n);
        }
        if let Some(n) = self.key_ws.take() {
            self.key.truncate(n);
        }
        let (key, value) = (std::mem::take(&mut self.key), std::mem::take(&mut self.value));
        self.pushed.push((key, value, self.key_line));
        State::PreKey
    }

    fn problem(&mut self, line: usize, kind: Kind) {
        self.problems.push(Problem { line, kind });
    }

    /// What `load_env_file_push()` (UTF-8 or nothing) and `strv_env_clean_with_callback()`
    /// (valid names only) make of the assignments.
    fn into_parsed(mut self) -> Parsed {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (key, value, line) in std::mem::take(&mut self.pushed) {
            let (Ok(key), Ok(value)) = (String::from_utf8(key), String::from_utf8(value)) else {
                self.problem(line, Kind::InvalidUtf8);
                vars.clear();
                break;
            };
            if !valid_name(&key) {
                let export = key.strip_prefix("export").is_some_and(|r| r.starts_with([' ', '\t']));
                self.problem(line, if export { Kind::Export } else { Kind::BadName });
                continue;
            }
            match vars.iter_mut().find(|(k, _)| *k == key) {
                Some(v) => v.1 = value,
                None => vars.push((key, value)),
            }
        }
        self.problems.sort_by_key(|p| p.line);
        Parsed { vars, problems: self.problems }
    }
}

/// systemd's trailing-whitespace mark: where the current run of whitespace started.
fn trailing(mark: &mut Option<usize>, len: usize, c: u8) {
    if !WHITESPACE.contains(&c) {
        *mark = None;
    } else if mark.is_none() {
        *mark = Some(len);
    }
}

/// systemd's `env_name_is_valid()`: letters, digits and `_`, not starting with a digit.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests;
