//! The Lua scripts, one per change of state (scripts/*.lua; each file's header is its
//! contract, and docs/redis.md lists them all).
//!
//! Each file starts with a `#!lua` shebang, so the server knows its flags before running it: a
//! server out of memory refuses a script that may grow memory before its first write, and
//! never half-way through. The shared helpers of scripts/prelude.lua are put after the
//! shebang line. They run by EVALSHA; the connection loads them all (SCRIPT LOAD) at each
//! connect and again when the server answers NOSCRIPT (a restart, a failover, SCRIPT FLUSH).

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = include_str!("scripts/prelude.lua");

/// The script text: its shebang line, the prelude, then its body.
fn assemble(file: &str) -> String {
    let (shebang, body) = file.split_once('\n').unwrap_or((file, ""));
    format!("{shebang}\n{PRELUDE}\n{body}")
}

/// A script: its text (for SCRIPT LOAD) and its SHA1 (for EVALSHA).
pub(crate) struct Lua {
    pub(crate) source: String,
    pub(crate) script: Script,
}

impl Lua {
    fn new(file: &str) -> Lua {
        let source = assemble(file);
        Lua { script: Script::new(&source), source }
    }
}

macro_rules! scripts {
    ($($name:ident => $file:literal,)*) => {
        $(
            pub(crate) static $name: LazyLock<Lua> =
                LazyLock::new(|| Lua::new(include_str!(concat!("scripts/", $file))));
        )*
        /// Every script, to load at connect.
        pub(crate) fn all() -> Vec<&'static Lua> {
            vec![$(&*$name),*]
        }
    };
}

scripts! {
    ENQUEUE => "enqueue.lua",
    CLAIM => "claim.lua",
    RECLAIM => "reclaim.lua",
    RENEW => "renew.lua",
    COMPLETE => "complete.lua",
    DEAD_LETTER => "dead_letter.lua",
    RETRY_LATER => "retry_later.lua",
    REQUEUE => "requeue.lua",
    PROMOTE => "promote.lua",
    DLQ_RETRY => "dlq_retry.lua",
    HEARTBEAT => "heartbeat.lua",
    PAUSE => "pause.lua",
    SPEND => "spend.lua",
    TRIM => "trim.lua",
    FORGET_CONSUMER => "forget_consumer.lua",
    DISCARD => "discard.lua",
    DEPTH => "depth.lua",
    LISTENER_COMMIT => "listener_commit.lua",
    LISTENER_LOCK => "listener_lock.lua",
    EVENTS_ADD => "events_add.lua",
    HEARTBEATS => "heartbeats.lua",
    WITHDRAW => "withdraw.lua",
    RECEIPT => "receipt.lua",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_keeps_its_shebang_first_and_declares_no_cluster() {
        for file in [
            include_str!("scripts/enqueue.lua"),
            include_str!("scripts/renew.lua"),
            include_str!("scripts/trim.lua"),
        ] {
            let text = assemble(file);
            let first = text.lines().next().unwrap_or_default();
            assert!(first.starts_with("#!lua flags=no-cluster"), "{first}");
            assert!(text.contains("local function now_ms()"));
        }
        assert_eq!(all().len(), 23);
    }
}
