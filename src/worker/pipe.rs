//! The named-pipe intake (PIPE_INTAKE=true): `pipes/<worker>.pipe`, a FIFO where producers
//! write one task JSON object a line. Each line is queued as a task through
//! [`Spool::submit`](crate::spool::Spool::submit), so the normal claim path validates and runs
//! it exactly as a submitted one; a line longer than MAX_TASK_BYTES is dead-lettered here,
//! since it is never kept whole.
//!
//! The FIFO is opened read-write and non-blocking: holding a write end ourselves, the loop
//! never sees end-of-file when a writer closes (which would make it readable forever), and a
//! read never waits. Not a durable queue: what sits in the pipe's kernel buffer is lost if
//! the worker dies before reading it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use serde_json::Value;

use super::{Daemon, PIPE};
use crate::error::Fatal;
use crate::format::task::{is_valid_id, Invalid};
use crate::spool::{Claim, Rejected};
use crate::sys::durable;

/// Mode of a FIFO the worker creates: the owner reads and writes, the group writes.
const FIFO_MODE: u32 = 0o620;
/// Reads of one wake-up at most, so a writer that never pauses cannot hold the loop.
const READS_PER_TURN: usize = 16;
/// Bytes of an over-long line quoted in its dead letter.
const PREVIEW_BYTES: usize = 4096;

/// What a stretch of the pipe held.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line, without its newline.
    Task(Vec<u8>),
    /// A line that passed the limit; only its start is kept, the rest is skipped.
    TooLong { preview: Vec<u8> },
}

/// Splits the byte stream into lines, holding at most `max` bytes of one line.
#[derive(Debug, Default)]
pub(super) struct Lines {
    buf: Vec<u8>,
    /// Inside an over-long line already reported: skip to its newline.
    skipping: bool,
}

impl Lines {
    pub(super) fn feed(&mut self, mut chunk: &[u8], max: usize, out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|b| *b == b'\n');
            let (part, ended) = match newline {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            chunk = newline.map_or(&[][..], |i| &chunk[i + 1..]);
            if self.skipping {
                self.skipping = !ended;
                continue;
            }
            if self.buf.len() + part.len() > max {
                let mut preview = std::mem::take(&mut self.buf);
                preview.truncate(PREVIEW_BYTES);
                let more = PREVIEW_BYTES - preview.len();
                preview.extend_from_slice(&part[..part.len().min(more)]);
                out.push(Line::TooLong { preview });
                self.skipping = !ended;
                continue;
            }
            self.buf.extend_from_slice(part);
            if ended {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    out.push(Line::Task(line));
                }
            }
        }
    }
}

/// The open FIFO and the line being read from it.
pub(super) struct PipeIntake {
    file: File,
    path: PathBuf,
    lines: Lines,
    seq: u64,
}

/// Creates the FIFO (mode 0620, whatever the umask) unless it exists, and opens it.
fn open_fifo(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        durable::create_dir(dir)?;
    }
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(FIFO_MODE)) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(FIFO_MODE))?,
        // An existing FIFO is used as it is, with the mode the operator gave it.
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "it exists and is not a FIFO"));
    }
    Ok(file)
}

impl PipeIntake {
    /// Reads what the pipe holds, up to a budget. Returns the lines, and whether the budget
    /// ran out before the pipe was empty.
    fn drain(&mut self, scratch: &mut [u8], max: usize) -> io::Result<(Vec<Line>, bool)> {
        let mut lines = Vec::new();
        for _ in 0..READS_PER_TURN {
            match (&self.file).read(scratch) {
                // Never while we hold a write end; no data either way.
                Ok(0) => return Ok((lines, false)),
                Ok(n) => self.lines.feed(&scratch[..n], max, &mut lines),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((lines, false)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((lines, true))
    }

    fn register(&self, registry: &Registry, token: Token, again: bool) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        if again {
            // Re-arming the edge-triggered registration reports the data still waiting.
            registry.reregister(&mut SourceFd(&fd), token, Interest::READABLE)
        } else {
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)
        }
    }

    /// The id a task line is queued under: its `task_id` when it has a valid one, else
    /// `pipe-<epoch ms>-<n>` (which becomes the id of a task without one).
    fn id_for(&mut self, line: &[u8]) -> String {
        let id = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("task_id").and_then(Value::as_str).map(str::to_string))
            .filter(|id| is_valid_id(id));
        id.unwrap_or_else(|| {
            self.seq += 1;
            let ms = crate::sys::clock::now_f64() * 1000.0;
            format!("pipe-{ms:.0}-{}", self.seq)
        })
    }
}

impl Daemon {
    /// With PIPE_INTAKE: creates and opens `pipes/<worker>.pipe` and adds it to the loop.
    pub(super) fn open_pipe(&mut self) -> Result<(), Fatal> {
        if !self.cfg.pipe_intake {
            return Ok(());
        }
        let path = self.cfg.paths.pipe(&self.cfg.worker);
        let fail = |e: io::Error| Fatal::io(format!("PIPE_INTAKE: cannot open {}: {e}", path.display()), &e);
        let file = open_fifo(&path).map_err(fail)?;
        let intake = PipeIntake { file, path: path.clone(), lines: Lines::default(), seq: 0 };
        intake.register(self.poll.registry(), PIPE, false).map_err(fail)?;
        self.log.info("taking tasks from the pipe too", &[("PIPE", &path.display())]);
        self.sources.pipe = Some(intake);
        Ok(())
    }

    /// The pipe is readable: queue its whole lines, dead-letter the over-long ones.
    pub(super) fn on_pipe(&mut self) {
        let Some(pipe) = self.sources.pipe.as_mut() else {
            return;
        };
        let max = usize::try_from(self.cfg.tuning.max_task_bytes).unwrap_or(usize::MAX);
        let (lines, more) = match pipe.drain(&mut self.scratch, max) {
            Ok(read) => read,
            Err(e) => {
                let path = pipe.path.display().to_string();
                self.io_error(&format!("cannot read {path}; the pipe intake stops until a restart"), &e);
                self.sources.pipe = None;
                return;
            }
        };
        let mut tasks = Vec::new();
        let mut too_long = Vec::new();
        for line in lines {
            match line {
                Line::Task(bytes) => tasks.push((pipe.id_for(&bytes), bytes)),
                Line::TooLong { preview } => too_long.push(preview),
            }
        }
        if more {
            if let Err(e) = pipe.register(self.poll.registry(), PIPE, true) {
                self.io_error("cannot watch the pipe again", &e);
            }
        }
        let source = crate::spool::layout::Layout::pipe_name(&self.cfg.worker);
        let ids: Vec<String> = tasks.iter().map(|t| t.0.clone()).collect();
        for (id, outcome) in ids.into_iter().zip(self.spool.submit(tasks)) {
            match outcome {
                Ok(queued) => self.log.debug("task queued from the pipe", &[("FILE", &queued)]),
                Err(e) => {
                    self.io_error(&format!("cannot queue a task line from the pipe as {id}; it is lost"), &e)
                }
            }
        }
        for preview in too_long {
            self.flight.seq += 1;
            // A line was never queued: its claim holds nothing.
            let claim = Claim::unqueued(self.flight.seq, &source);
            let why = Invalid::LineTooLong { max: max as u64 };
            let preview = Some(String::from_utf8_lossy(&preview).into_owned());
            let r = Rejected {
                why,
                fallback_id: None,
                doc: None,
                preview,
                keep_original: false,
                unfinished: None,
            };
            self.reject(claim, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(chunks: &[&[u8]], max: usize) -> Vec<Line> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.feed(c, max, &mut out);
        }
        out
    }

    fn task(s: &str) -> Line {
        Line::Task(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_across_reads_and_blank_lines() {
        let out = feed(&[b"{\"a\"", b":1}\n\n  \r\n{\"b\":2}\r\n{\"c\""], 100);
        assert_eq!(out, vec![task("{\"a\":1}"), task("{\"b\":2}")]);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_skipped() {
        let out = feed(&[b"0123456789", b"abcdef", b"ghij\nok\n"], 12);
        assert_eq!(out, vec![Line::TooLong { preview: b"0123456789abcdef".to_vec() }, task("ok")]);
        // Reported as soon as it passes the limit, without its end.
        let out = feed(&[b"ok\n0123456789abcdef"], 12);
        assert_eq!(out, vec![task("ok"), Line::TooLong { preview: b"0123456789abcdef".to_vec() }]);
        // A line of exactly the limit is fine.
        assert_eq!(feed(&[b"0123456789ab\n"], 12), vec![task("0123456789ab")]);
    }

    #[test]
    fn the_preview_is_bounded() {
        let long = vec![b'x'; 3 * PREVIEW_BYTES];
        let out = feed(&[&long, &long], 4 * PREVIEW_BYTES);
        match &out[..] {
            [Line::TooLong { preview }] => assert_eq!(preview.len(), PREVIEW_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fifo_is_created_0620_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pipes/w.pipe");
        drop(open_fifo(&path).expect("create"));
        let meta = fs::metadata(&path).expect("meta");
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o7777, FIFO_MODE);
        drop(open_fifo(&path).expect("reuse"));
        fs::remove_file(&path).expect("rm");
        fs::write(&path, "").expect("regular");
        assert!(open_fifo(&path).is_err(), "a regular file is not a pipe");
    }
}
