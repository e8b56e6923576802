//! The listener's life around its work: readiness, systemd's STATUS= line and watchdog,
//! SIGHUP reload, the SIGTERM stop. (The state and the lock on it are the spool's.)

use std::time::{Duration, Instant};

use super::{Listener, Phase};

/// SYSLOG_IDENTIFIER of the listener's journal entries.
pub const IDENTIFIER: &str = "orchestrator-listener";

impl Listener {
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
                ("FOLDERS_TO_LIST", &self.spool.backlog().listings),
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
        let pending = self.spool.backlog().results;
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
        if !self.staged.is_empty() || self.state_dirty || self.spool.dirty() {
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
