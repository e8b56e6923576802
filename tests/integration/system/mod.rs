//! The programs together, and what they share (not the booted systemd suite, tests/system/).

mod exits; // exit statuses mean the same in both daemons: 78 only for what an operator must change
mod first_run; // the README's first command, scripts/try, in a fresh copy, as a new user
mod golden; // golden spool trees: tasks in, the tree the worker and the listener leave (tests/golden/)
mod oddfiles; // nothing a producer leaves in the spool (a FIFO) hangs a daemon or watcherctl
