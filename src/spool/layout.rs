//! The one owner of the spool's layout, worker-watcher-tasks(5): every folder and file of the
//! spool, the suffix of its records, which names are a producer's files in the making, and
//! which worker names would collide with the spool's own folders.
//!
//! Nothing else names a spool folder, a suffix or a file: the folder backends (the worker's
//! [`super::fs`], the listener's and watcherctl's) ask here, and an architecture test holds
//! the rest of `src/` to it. What the folders are on another engine (Redis keys) is that
//! engine's own layout ([`crate::engine::redis::keys`]).
//!
//! ```text
//! ROOT/                               WATCHER_ROOT
//!   .env                              the env file read when none is named
//!   tasks/W/<id>.json                 TASK_DIR: the queue
//!   tasks/W/.inflight/                claimed tasks
//!   tasks/W/.rejected/<name>.orig     originals kept beside their dead letters
//!   tasks/W/.spend.json               the worker's spend ledger
//!   tasks/W/.cancel/<id>.json         requests to cancel a task (watcherctl cancel)
//!   tasks/W/.imported/                task files `watcherctl spool import` moved to an engine
//!   triggers/W/<id>.json              TRIGGER_DIR: claim receipts
//!   triggers/orchestrator/<id>.json   the listener's events
//!   results/W/<id>.json               RESULT_DIR: final outcomes
//!   results/W/.retried/<id>.<ms>.json results set aside by a later run of the task
//!   heartbeats/W.json                 HEARTBEAT_DIR
//!   dlq/W/<name>.json                 DLQ_DIR: dead letters
//!   dlq/W/.retried/<name>.<ms>.json   dead letters retried
//!   dlq/W/.imported/                  dead letters `watcherctl spool import` moved to an engine
//!   pipes/W.pipe                      the optional FIFO intake
//!   prompts/W.md                      PROMPT_DIR: the worker's system prompt
//!   listener/state.json               the listener's state (its lock is on the folder)
//!   listener/taken/W.N                the listener's logs of the results taken
//! LOCK_DIR/W.lock                     the worker's lock, when LOCK_DIR is set
//! ROOT/locks/W.lock                   the worker's lock on an engine, without LOCK_DIR
//! ```

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const TASKS: &str = "tasks";
const TRIGGERS: &str = "triggers";
const RESULTS: &str = "results";
const HEARTBEATS: &str = "heartbeats";
const DLQ: &str = "dlq";
const PROMPTS: &str = "prompts";
const PIPES: &str = "pipes";
/// The listener's state folder, in the root.
const LISTENER: &str = "listener";
/// The events' folder, in the triggers folder beside the workers' receipts.
const EVENTS: &str = "orchestrator";
const INFLIGHT: &str = ".inflight";
/// Requests to cancel a task, in the queue folder (a dot-folder: never taken for a task).
const CANCELS: &str = ".cancel";
const REJECTED: &str = ".rejected";
/// The folder, inside a worker's results and dead letters, of what a later run of the same
/// task id replaced (`watcherctl dlq retry`, a corrected task replacing an invalid one).
const RETRIED: &str = ".retried";
const ENV_FILE: &str = ".env";
/// The worker's spend ledger: a dot-file in the queue folder, so never taken for a task.
const LEDGER: &str = ".spend.json";
const LISTENER_STATE: &str = "state.json";
const TAKEN: &str = "taken";
/// Every record of the spool (task, result, receipt, heartbeat, dead letter, event).
const SUFFIX: &str = ".json";
const PIPE_SUFFIX: &str = ".pipe";
const PROMPT_SUFFIX: &str = ".md";
const LOCK_SUFFIX: &str = ".lock";
/// The folder of the workers' locks when the queues are on an engine (no queue folder to
/// lock) and LOCK_DIR is unset.
const LOCKS: &str = "locks";
const ORIGINAL_SUFFIX: &str = ".orig";
/// The folder, inside a worker's queue and dead letters, of what `watcherctl spool import`
/// moved to an engine (kept, never read again by the daemons).
const IMPORTED: &str = ".imported";

/// Worker names the spool uses for itself, with the folder each would collide with.
/// Compared without regard to case: on a case-insensitive filesystem (CIFS, a macOS share)
/// `Orchestrator` is the same folder. The dot-folders (`.inflight`, `.rejected`, `.retried`)
/// and temp names start with `.`, which no worker name may.
pub const RESERVED: &[(&str, &str)] =
    &[(EVENTS, "TRIGGER_DIR/orchestrator/ is where orchestrator-listener writes its events")];

/// How a name in a queue (or any folder of records) is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// `<name>.json`: a record.
    Task,
    /// A dot-file, or `*.tmp` / `*.part`: a producer's file in the making; never touched.
    Temp,
    /// Anything else: not a record; left alone and reported.
    Other,
}

/// What `name` is in a folder of the spool.
pub fn classify(name: &OsStr) -> NameKind {
    let b = name.as_bytes();
    if b.starts_with(b".") || b.ends_with(b".tmp") || b.ends_with(b".part") {
        NameKind::Temp
    } else if b.ends_with(SUFFIX.as_bytes()) && b.len() > SUFFIX.len() {
        NameKind::Task
    } else {
        NameKind::Other
    }
}

/// The file name of the record `id`: `<id>.json`.
pub fn record_name(id: &str) -> String {
    format!("{id}{SUFFIX}")
}

/// The id of a record's file name (`<id>.json`, not a dot-file): `None` for anything else.
pub fn record_stem(name: &str) -> Option<&str> {
    name.strip_suffix(SUFFIX).filter(|s| !s.is_empty() && !name.starts_with('.'))
}

/// A name's stem when it ends in the records' suffix, else the name (the id a task file
/// stands for when it has no `task_id`).
pub fn stem_of(name: &str) -> &str {
    name.strip_suffix(SUFFIX).unwrap_or(name)
}

/// `<stem>.<ms>.json`: the name of a record set aside into a `.retried/` folder.
pub fn aside_name(stem: &str, ms: u128) -> String {
    format!("{stem}.{ms}{SUFFIX}")
}

/// The folder `.retried/` inside `dir` (a worker's results or dead letters).
pub fn aside_dir(dir: &Path) -> PathBuf {
    dir.join(RETRIED)
}

/// The folder `.imported/` inside `dir` (a worker's queue or dead letters).
pub fn imported_dir(dir: &Path) -> PathBuf {
    dir.join(IMPORTED)
}

/// The folders of one spool root, as WATCHER_ROOT and the folder variables resolve them.
/// The fields are the parent folders (each one a variable); everything below them comes from
/// the methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
    /// TASK_DIR
    pub tasks: PathBuf,
    /// TRIGGER_DIR
    pub triggers: PathBuf,
    /// RESULT_DIR
    pub results: PathBuf,
    /// HEARTBEAT_DIR
    pub heartbeats: PathBuf,
    /// DLQ_DIR
    pub dlq: PathBuf,
    /// PROMPT_DIR
    pub prompts: PathBuf,
    pub pipes: PathBuf,
    /// LOCK_DIR: where the worker's lock file is; `None`: the lock is on the queue folder.
    pub lock: Option<PathBuf>,
}

/// One worker's folders, as its backend writes them.
#[derive(Clone, Debug)]
pub struct WorkerFolders {
    pub worker: String,
    pub queue: PathBuf,
    pub inflight: PathBuf,
    pub rejected: PathBuf,
    /// Requests to cancel a task.
    pub cancels: PathBuf,
    pub results: PathBuf,
    /// Claim receipts.
    pub triggers: PathBuf,
    pub dlq: PathBuf,
    pub heartbeats: PathBuf,
}

/// The folder variables, in the order they are resolved (`--check-config` lists them so).
pub const FOLDER_VARS: &[&str] =
    &["TASK_DIR", "TRIGGER_DIR", "RESULT_DIR", "HEARTBEAT_DIR", "DLQ_DIR", "PROMPT_DIR"];

impl Layout {
    /// Every folder at its default place under `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            tasks: root.join(TASKS),
            triggers: root.join(TRIGGERS),
            results: root.join(RESULTS),
            heartbeats: root.join(HEARTBEATS),
            dlq: root.join(DLQ),
            prompts: root.join(PROMPTS),
            pipes: root.join(PIPES),
            lock: None,
            root: root.to_path_buf(),
        }
    }

    /// Moves the folder of the variable `var` (one of [`FOLDER_VARS`]) to `dir`.
    pub fn set_folder(&mut self, var: &str, dir: PathBuf) {
        let slot = match var {
            "TASK_DIR" => &mut self.tasks,
            "TRIGGER_DIR" => &mut self.triggers,
            "RESULT_DIR" => &mut self.results,
            "HEARTBEAT_DIR" => &mut self.heartbeats,
            "DLQ_DIR" => &mut self.dlq,
            "PROMPT_DIR" => &mut self.prompts,
            _ => return,
        };
        *slot = dir;
    }

    /// `ROOT/.env`: the env file read when none is named.
    pub fn env_file(root: &Path) -> PathBuf {
        root.join(ENV_FILE)
    }

    /// `tasks/W/`: the queue, the only place producers write.
    pub fn queue(&self, worker: &str) -> PathBuf {
        self.tasks.join(worker)
    }

    /// `tasks/W/.inflight/`: claimed tasks.
    pub fn inflight(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(INFLIGHT)
    }

    /// `tasks/W/.rejected/`: originals kept beside their dead letters.
    pub fn rejected(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(REJECTED)
    }

    /// `tasks/W/.cancel/`: requests to cancel a task, which the worker watches.
    pub fn cancels(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(CANCELS)
    }

    /// `tasks/W/.cancel/<id>.json`: the request to cancel task `id`.
    pub fn cancel_request(&self, worker: &str, id: &str) -> PathBuf {
        self.cancels(worker).join(record_name(id))
    }

    /// `tasks/W/<id>.json`.
    pub fn queued(&self, worker: &str, id: &str) -> PathBuf {
        self.queue(worker).join(record_name(id))
    }

    /// `tasks/W/.inflight/<id>.json`: where a task claimed under its own name is.
    pub fn claimed(&self, worker: &str, id: &str) -> PathBuf {
        self.inflight(worker).join(record_name(id))
    }

    /// `tasks/W/.spend.json`.
    pub fn ledger(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(LEDGER)
    }

    /// `LOCK_DIR/W.lock`, when LOCK_DIR is set.
    pub fn lock_file(&self, worker: &str) -> Option<PathBuf> {
        self.lock.as_ref().map(|d| d.join(format!("{worker}{LOCK_SUFFIX}")))
    }

    /// The lock of worker `W` whose queue is on an engine: `LOCK_DIR/W.lock`, else
    /// `ROOT/locks/W.lock` (one daemon per worker and host: it guards SPOOL_CONSUMER).
    pub fn engine_lock_file(&self, worker: &str) -> PathBuf {
        let dir = self.lock.clone().unwrap_or_else(|| self.root.join(LOCKS));
        dir.join(format!("{worker}{LOCK_SUFFIX}"))
    }

    /// `results/W/`.
    pub fn results(&self, worker: &str) -> PathBuf {
        self.results.join(worker)
    }

    /// `results/W/<id>.json`.
    pub fn result(&self, worker: &str, id: &str) -> PathBuf {
        self.results(worker).join(record_name(id))
    }

    /// `triggers/W/`: the worker's claim receipts.
    pub fn receipts(&self, worker: &str) -> PathBuf {
        self.triggers.join(worker)
    }

    /// `triggers/W/<id>.json`: the claim receipt of task `id`'s last start.
    pub fn receipt(&self, worker: &str, id: &str) -> PathBuf {
        self.receipts(worker).join(record_name(id))
    }

    /// `triggers/orchestrator/`: the listener's events.
    pub fn events(&self) -> PathBuf {
        self.triggers.join(EVENTS)
    }

    /// `triggers/orchestrator/<id>.json`.
    pub fn event(&self, id: &str) -> PathBuf {
        self.events().join(record_name(id))
    }

    /// `heartbeats/W.json`.
    pub fn heartbeat(&self, worker: &str) -> PathBuf {
        self.heartbeats.join(record_name(worker))
    }

    /// `dlq/W/`.
    pub fn dlq(&self, worker: &str) -> PathBuf {
        self.dlq.join(worker)
    }

    /// `pipes/W.pipe`.
    pub fn pipe(&self, worker: &str) -> PathBuf {
        self.pipes.join(format!("{worker}{PIPE_SUFFIX}"))
    }

    /// `pipes/W.pipe` as the spool names it (a dead letter's `source_file`).
    pub fn pipe_name(worker: &str) -> String {
        format!("{PIPES}/{worker}{PIPE_SUFFIX}")
    }

    /// `prompts/W.md`.
    pub fn prompt(&self, worker: &str) -> PathBuf {
        self.prompts.join(format!("{worker}{PROMPT_SUFFIX}"))
    }

    /// `ROOT/listener/`: the listener's state, and its lock.
    pub fn listener(&self) -> PathBuf {
        self.root.join(LISTENER)
    }

    /// `ROOT/listener/state.json`.
    pub fn listener_state(&self) -> PathBuf {
        self.listener().join(LISTENER_STATE)
    }

    /// `ROOT/listener/taken/`: the logs of the results taken, one per worker.
    pub fn taken(&self) -> PathBuf {
        self.listener().join(TAKEN)
    }

    /// `ROOT/listener/taken/W.N`.
    pub fn taken_log(&self, worker: &str, n: u32) -> PathBuf {
        self.taken().join(Layout::taken_name(worker, n))
    }

    /// `W.N`: the name of a log of the results taken, in [`Layout::taken`].
    pub fn taken_name(worker: &str, n: u32) -> String {
        format!("{worker}.{n}")
    }

    /// The folders one worker's backend writes.
    pub fn worker_folders(&self, worker: &str) -> WorkerFolders {
        WorkerFolders {
            worker: worker.to_string(),
            queue: self.queue(worker),
            inflight: self.inflight(worker),
            rejected: self.rejected(worker),
            cancels: self.cancels(worker),
            results: self.results(worker),
            triggers: self.receipts(worker),
            dlq: self.dlq(worker),
            heartbeats: self.heartbeats.clone(),
        }
    }
}

impl WorkerFolders {
    /// `.rejected/<name>.orig`: the original kept beside the dead letter `<name>.json`.
    pub fn original(&self, dlq_name: &str) -> PathBuf {
        self.rejected.join(format!("{}{ORIGINAL_SUFFIX}", stem_of(dlq_name)))
    }

    /// `results/W/<id>.json`.
    pub fn result(&self, id: &str) -> PathBuf {
        self.results.join(record_name(id))
    }

    /// `tasks/W/.spend.json`.
    pub fn ledger(&self) -> PathBuf {
        self.queue.join(LEDGER)
    }

    /// The name of the ledger in the queue folder (its temp files start with it).
    pub fn ledger_name() -> &'static str {
        LEDGER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_the_manual_page() {
        let mut l = Layout::new(Path::new("/s"));
        l.lock = Some("/run/ww".into());
        let p = |p: PathBuf| p.display().to_string();
        assert_eq!(p(Layout::env_file(&l.root)), "/s/.env");
        assert_eq!(p(l.queued("m", "t")), "/s/tasks/m/t.json");
        assert_eq!(p(l.claimed("m", "t")), "/s/tasks/m/.inflight/t.json");
        assert_eq!(p(l.rejected("m")), "/s/tasks/m/.rejected");
        assert_eq!(p(l.cancel_request("m", "t")), "/s/tasks/m/.cancel/t.json");
        assert_eq!(p(l.ledger("m")), "/s/tasks/m/.spend.json");
        assert_eq!(l.lock_file("m").map(p).as_deref(), Some("/run/ww/m.lock"));
        assert_eq!(p(l.result("m", "t")), "/s/results/m/t.json");
        assert_eq!(p(aside_dir(&l.results("m"))), "/s/results/m/.retried");
        assert_eq!(aside_name("t", 12), "t.12.json");
        assert_eq!(p(l.receipts("m")), "/s/triggers/m");
        assert_eq!(p(l.event("e1")), "/s/triggers/orchestrator/e1.json");
        assert_eq!(p(l.heartbeat("m")), "/s/heartbeats/m.json");
        assert_eq!(p(l.dlq("m")), "/s/dlq/m");
        assert_eq!(p(l.pipe("m")), "/s/pipes/m.pipe");
        assert_eq!(Layout::pipe_name("m"), "pipes/m.pipe");
        assert_eq!(p(l.prompt("m")), "/s/prompts/m.md");
        assert_eq!(p(l.listener_state()), "/s/listener/state.json");
        assert_eq!(p(l.taken_log("m", 3)), "/s/listener/taken/m.3");
        assert_eq!(p(l.worker_folders("m").original("t.17.json")), "/s/tasks/m/.rejected/t.17.orig");
    }

    #[test]
    fn the_folder_variables_move_their_folder_only() {
        let mut l = Layout::new(Path::new("/s"));
        for var in FOLDER_VARS {
            l.set_folder(var, PathBuf::from("/x").join(var));
        }
        assert_eq!(l.inflight("m"), Path::new("/x/TASK_DIR/m/.inflight"));
        assert_eq!(l.events(), Path::new("/x/TRIGGER_DIR/orchestrator"));
        assert_eq!(l.prompt("m"), Path::new("/x/PROMPT_DIR/m.md"));
        assert_eq!(l.listener(), Path::new("/s/listener"), "the listener's state stays in the root");
        assert_eq!(l.pipe("m"), Path::new("/s/pipes/m.pipe"));
    }

    #[test]
    fn names() {
        assert_eq!(classify(OsStr::new("a.json")), NameKind::Task);
        assert_eq!(classify(OsStr::new(".a.json")), NameKind::Temp);
        assert_eq!(classify(OsStr::new("a.json.tmp")), NameKind::Temp);
        assert_eq!(classify(OsStr::new("a.part")), NameKind::Temp);
        assert_eq!(classify(OsStr::new("README")), NameKind::Other);
        assert_eq!(classify(OsStr::new(".json")), NameKind::Temp);
        assert_eq!(record_stem("a.json"), Some("a"));
        assert_eq!(record_stem(".a.json"), None);
        assert_eq!(record_stem(".json"), None);
        assert_eq!(record_stem("a.txt"), None);
        assert_eq!(stem_of("a.json"), "a");
        assert_eq!(stem_of("a"), "a");
    }
}
