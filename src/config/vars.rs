//! The table of every setting: name, default, what it expects, whether SIGHUP applies it.
//!
//! One table feeds the loader, `--check-config`, the commented env file and the man page, so a
//! variable cannot be documented in one place and forgotten in another.

/// When a changed value takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Applied on SIGHUP.
    Live,
    /// Read at start-up only; a change on SIGHUP is reported and ignored.
    Restart,
}

/// One configuration variable.
#[derive(Debug)]
pub struct Var {
    pub name: &'static str,
    /// `None`: no default (unset unless given).
    pub default: Option<&'static str>,
    pub expects: &'static str,
    pub reload: Reload,
    pub doc: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    expects: &'static str,
    reload: Reload,
    doc: &'static str,
) -> Var {
    Var { name, default, expects, reload, doc }
}

use Reload::{Live, Restart};

pub const VARS: &[Var] = &[
    var(
        "WATCHER_ROOT",
        Some("/var/lib/worker-watcher"),
        "a directory path",
        Restart,
        "Root of the spool (tasks/, results/, triggers/, heartbeats/, dlq/, pipes/).",
    ),
    var("TASK_DIR", None, "a directory path", Restart, "Parent of the queues; default ROOT/tasks."),
    var(
        "TRIGGER_DIR",
        None,
        "a directory path",
        Restart,
        "Parent of the claim receipts; default ROOT/triggers.",
    ),
    var("RESULT_DIR", None, "a directory path", Restart, "Parent of the results; default ROOT/results."),
    var(
        "HEARTBEAT_DIR",
        None,
        "a directory path",
        Restart,
        "Folder of the heartbeats; default ROOT/heartbeats.",
    ),
    var("DLQ_DIR", None, "a directory path", Restart, "Parent of the dead-letter queues; default ROOT/dlq."),
    var(
        "PROMPT_DIR",
        None,
        "a directory path",
        Live,
        "Folder of per-worker system prompts (NAME.md); default ROOT/prompts.",
    ),
    var(
        "LOCK_DIR",
        None,
        "a directory path",
        Restart,
        "Folder of the per-worker lock files (NAME.lock), for workers of one name on several \
         hosts sharing a spool; default: the lock is taken on the queue folder.",
    ),
    var("MAX_CONCURRENT_TASKS", Some("3"), "a whole number from 1 to 1024", Live, "Agent runs at once."),
    var(
        "TASK_TIMEOUT",
        Some("600"),
        "a number of seconds from 0.1 to 31536000",
        Live,
        "Default time limit of one attempt; a task's \"timeout\" overrides it.",
    ),
    var(
        "KILL_GRACE",
        Some("10"),
        "a number of seconds from 0 to 3600",
        Live,
        "Time between SIGTERM and SIGKILL to an agent's process group.",
    ),
    var(
        "SHUTDOWN_GRACE",
        Some("30"),
        "a number of seconds from 0 to 86400",
        Live,
        "On SIGTERM, how long running tasks may finish before they are killed and re-queued.",
    ),
    var(
        "HEARTBEAT_INTERVAL",
        Some("10"),
        "a number of seconds from 0.1 to 3600",
        Live,
        "How often the heartbeat file is rewritten.",
    ),
    var(
        "MAX_RETRIES",
        Some("3"),
        "a whole number >= 0",
        Live,
        "Retries after the first failed attempt; a task's \"max_retries\" overrides it.",
    ),
    var("RETRY_BACKOFF", Some("2.0"), "a number >= 1", Live, "Multiplier of the delay between retries."),
    var(
        "INITIAL_RETRY_DELAY",
        Some("1.0"),
        "a number of seconds from 0 to 86400",
        Live,
        "Delay before the first retry.",
    ),
    var(
        "MAX_RETRY_DELAY",
        Some("300"),
        "a number of seconds from 0 to 604800",
        Live,
        "Cap of the delay between retries, and of the wait for a retry time read back from disk at a \
         restart (which a step of the wall clock may have moved).",
    ),
    var(
        "MAX_RECLAIMS",
        Some("3"),
        "a whole number >= 0",
        Live,
        "Times a task found in flight after a crash is re-queued before it is dead-lettered.",
    ),
    var(
        "CIRCUIT_BREAKER_THRESHOLD",
        Some("5"),
        "a whole number >= 1",
        Live,
        "Consecutive failed attempts that open the circuit breaker.",
    ),
    var(
        "CIRCUIT_BREAKER_TIMEOUT",
        Some("60"),
        "a number of seconds from 0.1 to 86400",
        Live,
        "How long the breaker stays open before one trial task runs.",
    ),
    var(
        "CIRCUIT_BREAKER_MAX_TIMEOUT",
        Some("600"),
        "a number of seconds from 0.1 to 86400",
        Live,
        "Each failed trial in a row doubles how long the breaker stays open, up to this (never \
         less than CIRCUIT_BREAKER_TIMEOUT); an outage of the agent's service is tried at this pace.",
    ),
    var(
        "CLAUDE_COMMAND",
        Some("claude"),
        "a command (words split like a shell, no shell run)",
        Live,
        "The agent program.",
    ),
    var(
        "CLAUDE_ARGS",
        Some("-p --output-format json"),
        "arguments (split like a shell; empty for none)",
        Live,
        "Arguments given to the agent before --append-system-prompt.",
    ),
    var(
        "MAX_TASK_BYTES",
        Some("1048576"),
        "a whole number of bytes >= 1",
        Live,
        "Largest task file accepted.",
    ),
    var(
        "MAX_OUTPUT_BYTES",
        Some("1048576"),
        "a whole number of bytes >= 0",
        Live,
        "Agent stdout kept in the result; the rest is counted and dropped.",
    ),
    var(
        "RESCAN_INTERVAL",
        None,
        "0 (off) or a number of seconds from 1 to 86400",
        Live,
        "Safety rescan of the queue, for filesystems where inotify misses writes. Unset: off, \
         or every 5 s when the queue is on NFS, CIFS/SMB, FUSE, 9p or Ceph (statfs at start-up).",
    ),
    var(
        "TASK_QUIET_PERIOD",
        Some("10"),
        "a number of seconds from 0 to 3600",
        Live,
        "A task file that is not JSON is not judged while it may still be being written in place: \
         while a process has it open for writing (when the worker can tell), else until it has \
         stayed unchanged this long. Then it is dead-lettered.",
    ),
    var(
        "LOG_LEVEL",
        Some("INFO"),
        "one of DEBUG, INFO, WARNING, ERROR",
        Live,
        "Least severe message logged.",
    ),
    var(
        "LOG_TARGET",
        Some("auto"),
        "auto, journal or stderr",
        Restart,
        "Where to log: native journal entries with structured fields, or lines on stderr; auto \
         picks the journal when stderr is connected to it (JOURNAL_STREAM).",
    ),
    var(
        "LOG_FORMAT",
        Some("json"),
        "json or text",
        Restart,
        "Format of log lines on stderr when not logging to the journal.",
    ),
    var("ENABLE_METRICS", Some("true"), "true or false", Restart, "Serve Prometheus metrics."),
    var(
        "METRICS_PORT",
        Some("9090"),
        "a TCP port from 0 to 65535 (0: any free port)",
        Restart,
        "Port of the metrics endpoint on all interfaces (0.0.0.0), outside systemd and without METRICS_LISTEN.",
    ),
    var(
        "METRICS_LISTEN",
        None,
        "ADDR:PORT (e.g. 127.0.0.1:9101, [::]:0) or an absolute unix socket path (%i: the worker's name)",
        Restart,
        "Where to serve metrics instead of METRICS_PORT; honoured under systemd when no socket is passed.",
    ),
    var(
        "PIPE_INTAKE",
        Some("false"),
        "true or false",
        Restart,
        "Create pipes/NAME.pipe (a FIFO, mode 0620) and queue each task JSON line written to it.",
    ),
    var(
        "EMPTY_OUTPUT",
        Some("warn"),
        "accept, warn or fail",
        Live,
        "What exit 0 with no output at all in under a second is: a success, a success logged as \
         suspect, or a failure (reason empty_output).",
    ),
    var(
        "RATE_LIMIT_PAUSE",
        Some("300"),
        "a number of seconds from 1 to 86400",
        Live,
        "How long the worker pauses after a usage or rate limit whose reset time the agent did not give, \
         or gave in the past or more than 8 days ahead; at most 8 days.",
    ),
    var(
        "REPEATED_FAILURE_LIMIT",
        Some("2"),
        "a whole number >= 0 (0: off)",
        Live,
        "Give up (reason repeated_failure) when this many failed attempts in a row failed the same way \
         (same reason, exit status and error text); runs held by a rate limit or an outage of the agent's \
         service are not failed attempts.",
    ),
    var(
        "MAX_TASK_RUNS",
        Some("20"),
        "a whole number >= 0 (0: off)",
        Live,
        "Give up (reason attempt_limit) when a task's attempts and reclaims reach this many; runs \
         stopped by a rate limit or an outage of the agent's service are not counted.",
    ),
    var(
        "MAX_TASK_WALL_TIME",
        Some("86400"),
        "0 (off) or a number of seconds from 1 to 31536000",
        Live,
        "Give up (reason time_limit) on a task still failing after a worker has held it this long since \
         its first start (its runs and retry waits, on the monotonic clock: a step of the wall clock \
         does not count, nor does time the worker was stopped, nor time it was held by a rate limit \
         or an outage of the agent's service).",
    ),
    var(
        "AGENT_MAX_TURNS_FLAG",
        Some("--max-turns"),
        "an option name (empty: never passed)",
        Live,
        "Option that gives the agent a task's \"max_turns\".",
    ),
    var(
        "AGENT_MAX_BUDGET_FLAG",
        Some("--max-budget-usd"),
        "an option name (empty: never passed)",
        Live,
        "Option that gives the agent a task's \"max_budget_usd\".",
    ),
    var(
        "AGENT_SESSION_FLAG",
        None,
        "an option name (empty: off)",
        Live,
        "Option that names a task's new agent session (a UUID); unset: --session-id when \
         CLAUDE_COMMAND is claude, else off. The session id is kept in the task's state.",
    ),
    var(
        "AGENT_RESUME_FLAG",
        None,
        "an option name (empty: off)",
        Live,
        "Option that resumes a task's session on its next run (a retry, a reclaim, dlq retry); unset: \
         --resume when CLAUDE_COMMAND is claude, else off (each run then starts a new session).",
    ),
    var(
        "WORKER_BUDGET_USD",
        Some("0"),
        "a number of US dollars >= 0 (0: no cap)",
        Live,
        "Spend cap of the worker: when the agents' reported cost within WORKER_BUDGET_WINDOW reaches it, \
         the worker pauses until enough of that spend is older than the window.",
    ),
    var(
        "WORKER_BUDGET_WINDOW",
        Some("86400"),
        "a number of seconds from 1 to 31536000",
        Live,
        "The rolling window of WORKER_BUDGET_USD.",
    ),
    var(
        "AGENT_PREFLIGHT",
        Some("false"),
        "true or false",
        Restart,
        "Before READY, run the agent once on a one-line prompt; if that run fails, exit with status 78 \
         instead of filling the dead-letter queue. (The agent command is always checked.)",
    ),
    // The backend of the spool: the folders, or a Redis/Valkey engine shared by many hosts
    // (docs/redis.md). The listener and watcherctl read these too.
    var(
        "SPOOL",
        Some("file"),
        "file, redis://[user@]host[:port][/db], rediss://..., redis+unix:///path/to.sock[?db=N] or \
         redis-sentinel://host[:port],host[:port]/service[/db]",
        Restart,
        "Where the queues, results and heartbeats are: the folders under WATCHER_ROOT (file), or a Redis \
         or Valkey engine that workers on many hosts share. Never a password in the URL: see \
         SPOOL_PASSWORD_FILE.",
    ),
    var(
        "SPOOL_PASSWORD_FILE",
        None,
        "a file path",
        Restart,
        "File holding the engine's password (one line). Unset: the systemd credential spool-password \
         (LoadCredential=, read from $CREDENTIALS_DIRECTORY) if there is one, else no password.",
    ),
    var(
        "SPOOL_PREFIX",
        Some("ww"),
        "1-64 characters of A-Z a-z 0-9 . _ -",
        Restart,
        "Prefix of every key in the engine, so that several fleets can share one engine.",
    ),
    var(
        "SPOOL_CONSUMER",
        None,
        "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
        Restart,
        "This host's name in the engine: stable across restarts (what it held when it died is its own \
         to recover), and never shared by two hosts. Unset: the host name.",
    ),
    var(
        "LEASE",
        None,
        "a number of seconds from 0.5 to 86400",
        Restart,
        "With an engine: how long a host's tasks stay its own without a renewal (each heartbeat renews \
         them); after that, another host with free slots takes them over. Unset: three times \
         HEARTBEAT_INTERVAL; it must be longer than HEARTBEAT_INTERVAL.",
    ),
    var(
        "RESULT_TTL",
        Some("21600"),
        "a number of seconds from 1 to 31536000",
        Restart,
        "With an engine: how long a result stays in it (and a task id stays taken); the listener's \
         archive of results is the lasting record.",
    ),
    var(
        "SPOOL_TIMEOUT",
        Some("2"),
        "a number of seconds from 0.1 to 60",
        Restart,
        "With an engine: time limit of connecting to it and of each exchange with it.",
    ),
    // orchestrator-listener's own (it also reads WATCHER_ROOT, the folders, KILL_GRACE, the
    // LOG_* and metrics settings above).
    var(
        "WORKERS",
        None,
        "worker names separated by commas (e.g. marie,anga,fabien), none of them orchestrator",
        Restart,
        "orchestrator-listener: the workers to follow; unset: every worker with a folder in \
         tasks/ or results/, or a heartbeat, as they appear.",
    ),
    var(
        "HEARTBEAT_STALE_AFTER",
        None,
        "a number of seconds from 1 to 604800",
        Live,
        "orchestrator-listener: age after which a heartbeat is stale and its worker unhealthy; \
         unset: three times the heartbeat_interval the heartbeat itself states.",
    ),
    var(
        "ORCHESTRATOR_NOTIFY_COMMAND",
        None,
        "a command (words split like a shell, no shell run)",
        Live,
        "orchestrator-listener: run for each event written, with the event's JSON on stdin.",
    ),
    var(
        "ORCHESTRATOR_NOTIFY_CONCURRENCY",
        Some("4"),
        "a whole number from 1 to 64",
        Live,
        "orchestrator-listener: notify commands running at once; the others wait their turn.",
    ),
    var(
        "ORCHESTRATOR_NOTIFY_TIMEOUT",
        Some("30"),
        "a number of seconds from 0.1 to 86400",
        Live,
        "orchestrator-listener: time limit of one notify command (then SIGTERM, SIGKILL after KILL_GRACE).",
    ),
    var(
        "LISTENER_FILES",
        Some("true"),
        "true or false",
        Restart,
        "orchestrator-listener with an engine (SPOOL): also write each result to results/W/<id>.json \
         (the lasting archive: results leave the engine after RESULT_TTL) and each event to \
         triggers/orchestrator/, for orchestrators that read files. The folders' listener always does.",
    ),
    var(
        "LISTENER_BACKFILL",
        Some("86400"),
        "a number of seconds from 0 to 315360000",
        Live,
        "orchestrator-listener: results it has no record of (its first start, a new worker) \
         are announced when younger than this, and only counted when older.",
    ),
];

/// The table entry for `name`.
pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}
