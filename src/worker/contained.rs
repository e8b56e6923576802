//! The daemon's side of [`crate::runner::Containment`]: which agents run (their marks), when
//! orphans are swept, and what containment reports to the log.

use std::collections::HashSet;

use super::{Daemon, Running};
use crate::runner::Mark;

impl Daemon {
    /// The marks of the running agents, which their orphans carry in their environment.
    fn marks(&self) -> Vec<Mark> {
        let run_mark = |r: &Running| Mark {
            pid: r.child.pid(),
            env: vec![
                ("WATCHER_TASK_ID".into(), r.task.id.clone()),
                ("WATCHER_ATTEMPT".into(), r.attempt.to_string()),
            ],
        };
        self.slots.iter().flatten().map(run_mark).collect()
    }

    /// Kills the orphans of ended runs, when a sweep is due; logs what containment reports.
    pub(super) fn sweep_orphans(&mut self) {
        let marks = self.marks();
        let agents: HashSet<i32> = marks.iter().map(|m| m.pid).collect();
        self.contain.sweep(|p| agents.contains(&p), &marks);
        self.contain_warnings();
    }

    pub(super) fn contain_warnings(&mut self) {
        for w in self.contain.take_warnings() {
            self.log.warn(&w, &[]);
        }
    }
}
