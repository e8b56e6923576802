//! What can go wrong talking to the engine, sorted by what the caller must do about it.

use std::fmt;

/// An engine call that did not give its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The engine refused a write because memory is full (`OOM`: maxmemory with noeviction,
    /// or the enqueue limit). Nothing was written: hold the op and try again later.
    OutOfMemory(String),
    /// The connection failed, closed or timed out. An op that was sent may or may not have
    /// run: every script is safe to send again (enqueue and complete are idempotent by id; a
    /// claim whose reply was lost is found again in the consumer's own pending list).
    Connection(String),
    /// The server cannot take writes now (`READONLY` replica after a failover, `LOADING` its
    /// AOF, `BUSY` with a script, `MASTERDOWN`, `NOREPLICAS`): reconnect and try again.
    Unavailable(String),
    /// Any other error the server answered: a bug or a misconfiguration, not retried blindly.
    Server(String),
    /// A reply not shaped as the script's contract says.
    Reply(String),
    /// The engine is not safe to use (check.rs): the one line names the setting to change.
    Refused(String),
}

impl EngineError {
    /// Whether the connection should be dropped and made again before the next call.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, EngineError::Connection(_) | EngineError::Unavailable(_))
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::OutOfMemory(m) => write!(f, "engine memory full: {m}"),
            EngineError::Connection(m) => write!(f, "engine connection: {m}"),
            EngineError::Unavailable(m) => write!(f, "engine unavailable: {m}"),
            EngineError::Server(m) => write!(f, "engine error: {m}"),
            EngineError::Reply(m) => write!(f, "unexpected engine reply: {m}"),
            EngineError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EngineError {}

/// Sorts a server error by its code (the first word of its message).
pub(crate) fn from_code(code: &str, text: String) -> EngineError {
    match code {
        "OOM" => EngineError::OutOfMemory(text),
        "READONLY" | "LOADING" | "BUSY" | "MASTERDOWN" | "NOREPLICAS" | "TRYAGAIN" | "CLUSTERDOWN" => {
            EngineError::Unavailable(text)
        }
        _ => EngineError::Server(text),
    }
}

impl From<redis::RedisError> for EngineError {
    fn from(e: redis::RedisError) -> EngineError {
        let text = e.to_string();
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            return EngineError::Connection(text);
        }
        match e.code() {
            Some(code) => from_code(code, text),
            None => EngineError::Server(text),
        }
    }
}

impl From<redis::ServerError> for EngineError {
    fn from(e: redis::ServerError) -> EngineError {
        let text = match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_owned(),
        };
        from_code(e.code(), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_what_to_do() {
        assert!(matches!(from_code("OOM", "x".into()), EngineError::OutOfMemory(_)));
        for code in ["READONLY", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS"] {
            let e = from_code(code, code.into());
            assert!(e.needs_reconnect(), "{code}");
        }
        assert!(!from_code("ERR", "x".into()).needs_reconnect());
        assert!(EngineError::Connection("reset".into()).needs_reconnect());
    }
}
