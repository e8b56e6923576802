//! The journal side of the logger: whether to log to the journal, and one native journal
//! entry per event through the `libsystemd` crate.
//!
//! Not the fallback: when an entry cannot be sent, the caller writes the line to stderr.

use libsystemd::logging::{journal_send, Priority};

use super::{Field, Level};

/// SYSLOG_IDENTIFIER of the worker's entries: the binary's name, as journald gives the lines of its
/// stderr stream, so `journalctl -t worker-watcher` finds both.
pub const IDENTIFIER: &str = "worker-watcher";

/// LOG_TARGET: where the logger writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The journal when stderr is connected to it, else stderr.
    Auto,
    Journal,
    Stderr,
}

impl std::str::FromStr for Target {
    type Err = ();

    fn from_str(s: &str) -> Result<Target, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Target::Auto),
            "journal" => Ok(Target::Journal),
            "stderr" => Ok(Target::Stderr),
            _ => Err(()),
        }
    }
}

/// Where log lines go, decided once at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Journal,
}

impl Sink {
    /// The sink for `target`. Auto means the journal when `journal_stream` (the value of
    /// JOURNAL_STREAM, `DEV:INODE`) names the file that stderr is (`stderr`, its device and
    /// inode): systemd's sign that stderr is a journal stream, not merely inherited by a
    /// child of a service that redirected it.
    pub fn choose(target: Target, journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> Sink {
        match target {
            Target::Journal => Sink::Journal,
            Target::Stderr => Sink::Stderr,
            Target::Auto => {
                let connected = journal_stream.and_then(parse_stream).is_some_and(|s| Some(s) == stderr);
                if connected {
                    Sink::Journal
                } else {
                    Sink::Stderr
                }
            }
        }
    }

    /// [`Sink::choose`] with this process's stderr; `journal_stream` from the environment.
    pub fn detect(target: Target, journal_stream: Option<&str>) -> Sink {
        Sink::choose(target, journal_stream, stderr_id())
    }
}

/// Device and inode of fd 2, if it is open.
pub fn stderr_id() -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(libc::STDERR_FILENO).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// `DEV:INODE`, both decimal, as systemd writes JOURNAL_STREAM.
fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn priority(level: Level) -> Priority {
    match level {
        Level::Debug => Priority::Debug,
        Level::Info => Priority::Info,
        Level::Warning => Priority::Warning,
        Level::Error => Priority::Error,
    }
}

/// The fields of an entry besides PRIORITY and MESSAGE (which `journal_send` writes first):
/// the identifier, the worker (unless empty), then the call site's fields under their own
/// names.
pub fn entry_fields(identifier: &str, worker: &str, fields: &[Field]) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(fields.len() + 2);
    out.push(("SYSLOG_IDENTIFIER", identifier.to_string()));
    if !worker.is_empty() {
        out.push(("WORKER", worker.to_string()));
    }
    out.extend(fields.iter().map(|(name, value)| (*name, value.to_string())));
    out
}

/// Sends one entry. MESSAGE is `text` as given: no timestamp (journald keeps its own).
pub fn send(
    level: Level,
    text: &str,
    identifier: &str,
    worker: &str,
    fields: &[Field],
) -> Result<(), String> {
    let entry = entry_fields(identifier, worker, fields);
    journal_send(priority(level), text, entry.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_the_journal_only_when_stderr_is_the_stream() {
        let me = Some((64769, 123456));
        assert_eq!(Sink::choose(Target::Auto, Some("64769:123456"), me), Sink::Journal);
        // Inherited JOURNAL_STREAM, but stderr was redirected elsewhere.
        assert_eq!(Sink::choose(Target::Auto, Some("64769:999"), me), Sink::Stderr);
        assert_eq!(Sink::choose(Target::Auto, None, me), Sink::Stderr);
        assert_eq!(Sink::choose(Target::Auto, Some("garbage"), me), Sink::Stderr);
        assert_eq!(Sink::choose(Target::Auto, Some("64769:123456"), None), Sink::Stderr);
    }

    #[test]
    fn explicit_targets_win() {
        assert_eq!(Sink::choose(Target::Journal, None, None), Sink::Journal);
        assert_eq!(Sink::choose(Target::Stderr, Some("1:2"), Some((1, 2))), Sink::Stderr);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(" Journal ".parse(), Ok(Target::Journal));
        assert_eq!("auto".parse(), Ok(Target::Auto));
        assert_eq!("STDERR".parse(), Ok(Target::Stderr));
        assert_eq!("syslog".parse::<Target>(), Err(()));
    }

    #[test]
    fn detect_compares_with_the_real_stderr() {
        let Some((dev, ino)) = stderr_id() else { return };
        assert_eq!(Sink::detect(Target::Auto, Some(&format!("{dev}:{ino}"))), Sink::Journal);
        assert_eq!(Sink::detect(Target::Auto, Some(&format!("{dev}:{}", ino + 1))), Sink::Stderr);
    }

    #[test]
    fn entries_carry_identifier_worker_and_fields() {
        let f = entry_fields(
            IDENTIFIER,
            "anga",
            &[("MESSAGE_ID", &super::super::ids::TASK_COMPLETED), ("TASK_ID", &"t-1"), ("ATTEMPT", &2)],
        );
        assert_eq!(
            f,
            vec![
                ("SYSLOG_IDENTIFIER", "worker-watcher".to_string()),
                ("WORKER", "anga".into()),
                ("MESSAGE_ID", "e111f1c9c6c142d1a1dc25cbbc27f439".into()),
                ("TASK_ID", "t-1".into()),
                ("ATTEMPT", "2".into()),
            ]
        );
    }

    #[test]
    fn a_daemon_of_no_one_worker_has_no_worker_field() {
        let f = entry_fields("orchestrator-listener", "", &[("WORKER", &"marie")]);
        assert_eq!(
            f,
            vec![("SYSLOG_IDENTIFIER", "orchestrator-listener".to_string()), ("WORKER", "marie".into())]
        );
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        for level in [Level::Debug, Level::Info, Level::Warning, Level::Error] {
            assert_eq!(u8::from(priority(level)), level.priority());
        }
    }
}
