//! The listener's life around its work: the state folder and its lock at start-up,
//! readiness, systemd's STATUS= line and watchdog, SIGHUP reload, the SIGTERM stop.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use super::state::{self, Loaded, State};
use super::{Listener, Phase};
use crate::config::listener::ListenerConfig;
use crate::error::Fatal;
use crate::sys::durable;

/// SYSLOG_IDENTIFIER of the listener's journal entries.
pub const IDENTIFIER: &str = "orchestrator-listener";

/// Creates the state and events folders, takes the lock (one listener per spool) and reads
/// the state.
pub(super) fn open_state(cfg: &ListenerConfig) -> Result<(File, State), Fatal> {
    let dir = cfg.state_dir();
    for (d, what) in [(&dir, "WATCHER_ROOT (the listener's state)"), (&cfg.events_dir(), "TRIGGER_DIR")] {
        durable::create_dir(d)
            .map_err(|e| Fatal::io(format!("{what}: cannot create {}: {e}", d.display()), &e))?;
    }
    let lock = lock(&dir)?;
    // Temp files of a listener that died mid-write: only it writes these folders.
    let _ = durable::remove_stale_temps(&dir, None);
    let _ = durable::remove_stale_temps(&cfg.events_dir(), None);
    let state = match state::load(&dir)? {
        Loaded::State(s) => *s,
        Loaded::Fresh => State::default(),
    };
    Ok((lock, state))
}

/// Takes the lock on the state folder `dir`: one listener per spool.
fn lock(dir: &std::path::Path) -> Result<File, Fatal> {
    // O_DIRECTORY: something else at that name is refused, never waited on (a FIFO).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| Fatal::io(format!("cannot open {}: {e}", dir.display()), &e))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Fatal::Locked(format!(
            "another orchestrator-listener is already running on this spool (it holds the lock on {})",
            dir.display()
        )));
    }
    Ok(lock)
}

impl Listener {
    /// Before the state is written: a state folder removed under the listener is made again,
    /// the lock taken on the new one, and the logs of results taken, gone with it, written
    /// again whole.
    pub(super) fn state_folder_back(&mut self) {
        let dir = self.cfg.state_dir();
        if dir.symlink_metadata().is_ok() || durable::recreate_dir(&dir).is_err() {
            // There, or not to be made: the write that follows says why.
            return;
        }
        self.recreated(vec![dir]);
        self.relock();
        self.taken.values_mut().for_each(super::taken::Taken::lost);
    }

    /// The state folder was made again: the lock goes to the new one. Another listener that
    /// took it meanwhile serves the spool now; this one stops.
    fn relock(&mut self) {
        match lock(&self.cfg.state_dir()) {
            Ok(file) => self._lock = file,
            Err(e) => {
                self.log.error("cannot lock the re-created state folder; stopping", &[("ERROR", &e)]);
                self.shutdown();
            }
        }
    }

    /// The rebuild is done (state read, every folder scanned): READY=1.
    pub(super) fn ready(&mut self) {
        let status = self.status_line();
        if let Err(e) = self.notifier.ready(&status) {
            self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
        }
        self.next_watchdog = self.notifier.watchdog_interval().map(|d| Instant::now() + d);
        self.log.info(
            "ready",
            &[
                ("WORKERS", &self.workers.len()),
                ("FOLDERS_TO_LIST", &self.to_scan.len()),
                ("REBUILD_MS", &self.started.elapsed().as_millis()),
                ("ROOT", &self.cfg.paths.root.display()),
                ("METRICS", &self.metrics_addresses().join(" ")),
                ("CONTAINMENT", &self.commands.containment()),
            ],
        );
    }

    /// `following 3 workers (1 unhealthy), 0 results pending, 12 events written`.
    fn status_line(&self) -> String {
        let unhealthy = self.state.workers.values().filter(|w| w.health.unhealthy).count();
        let pending: usize = self.workers.values().map(|l| l.pending.len()).sum();
        let written: u64 = self.state.events_written.values().sum();
        let mut line = match self.phase {
            Phase::Running => format!("following {} workers", self.workers.len()),
            Phase::Stopping { .. } => {
                format!("stopping, {} notify commands running", self.commands.running())
            }
        };
        line.push_str(&format!(
            " ({unhealthy} unhealthy), {pending} results pending, {written} events written"
        ));
        if !self.staged.is_empty() {
            line.push_str(&format!(", {} events cannot be written", self.staged.len()));
        }
        line
    }

    /// End of a turn: STATUS= when it changed, WATCHDOG=1 when due.
    pub(super) fn report(&mut self, now: Instant) {
        let line = self.status_line();
        if let Err(e) = self.notifier.status(&line, now) {
            self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
        }
        let (Some(due), Some(every)) = (self.next_watchdog, self.notifier.watchdog_interval()) else {
            return;
        };
        if now >= due {
            if let Err(e) = self.notifier.watchdog() {
                self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
            }
            self.next_watchdog = Some(now + every);
        }
    }

    /// SIGHUP: the env files are read again and the live settings applied.
    pub(super) fn reload(&mut self) {
        if let Err(e) = self.notifier.reloading() {
            self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
        }
        match self.cfg.reload(&self.layers) {
            Ok((new, ignored)) => {
                for name in ignored {
                    self.log.warn("setting changed, but it applies only at restart", &[("VARIABLE", &name)]);
                }
                self.log.level = new.tuning.log_level;
                self.cfg.tuning = new.tuning;
                self.log.info("configuration reloaded", &[]);
            }
            Err(e) => self.log.error("reload failed; the running configuration is kept", &[("ERROR", &e)]),
        }
        let status = self.status_line();
        if let Err(e) = self.notifier.ready(&status) {
            self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
        }
    }

    /// SIGTERM or SIGINT: no more results taken or commands started; running commands get
    /// their time-out; a second signal kills them.
    pub(super) fn shutdown(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Running => {
                let dropped = self.commands.clear_queue();
                let grace = self.cfg.tuning.notify_timeout + self.cfg.tuning.kill_grace;
                self.phase = Phase::Stopping { deadline: now + grace, killed: false };
                self.log.info(
                    "stopping",
                    &[("COMMANDS_RUNNING", &self.commands.running()), ("COMMANDS_NOT_RUN", &dropped)],
                );
                let status = self.status_line();
                if let Err(e) = self.notifier.stopping(&status) {
                    self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
                }
            }
            Phase::Stopping { killed: false, .. } => self.kill_commands(now),
            Phase::Stopping { .. } => {}
        }
    }

    fn kill_commands(&mut self, now: Instant) {
        self.commands.kill_all();
        self.phase = Phase::Stopping { deadline: now, killed: true };
    }

    /// Stopping and nothing left to wait for.
    pub(super) fn finished(&mut self) -> bool {
        let Phase::Stopping { deadline, killed } = self.phase else {
            return false;
        };
        if !killed && Instant::now() >= deadline {
            self.kill_commands(Instant::now());
        }
        self.commands.running() == 0 && self.commands.settled()
    }

    /// Before the process exits: the last state, the unix socket file it bound.
    pub(super) fn stopped(&mut self) {
        self.commands.shutdown();
        self.retry_io_at = None;
        self.commit();
        if !self.staged.is_empty() || self.state_dirty {
            self.log.error(
                "stopped with events or state not written; the next start announces the same events again",
                &[],
            );
        }
        self.close_endpoint();
        let _ = self.notifier.status("stopped", Instant::now() + Duration::from_secs(1));
        let written: u64 = self.state.events_written.values().sum();
        self.log.info("stopped", &[("EVENTS_WRITTEN", &written)]);
    }
}
