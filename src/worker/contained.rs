//! The loop's side of containment ([`crate::runner::Containment`], kept by the agents): when
//! orphans are swept and reaped, and what containment reports to the log. Which agents run
//! and the marks their orphans carry are the agents' own ([`crate::runner::agents`]).

use super::Daemon;

impl Daemon {
    /// Kills the orphans of ended runs, when a sweep is due; logs what containment reports.
    pub(super) fn sweep_orphans(&mut self) {
        self.agents.sweep();
        self.contain_warnings();
    }

    /// Removes the killed cgroups that are due (a row of the timer table).
    pub(super) fn tick_containment(&mut self, now: std::time::Instant) {
        self.agents.tick(now);
        self.contain_warnings();
    }

    pub(super) fn contain_warnings(&mut self) {
        for w in self.agents.take_warnings() {
            self.log.warn(&w, &[]);
        }
    }
}
