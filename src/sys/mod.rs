//! The operating system's plumbing that both daemons (and watcherctl) use: inotify, systemd's
//! notification socket, listening sockets, durable writes, locks and the clock. Nothing here knows
//! about tasks or workers.

pub(crate) mod clock;
pub(crate) mod durable;
pub(crate) mod flock;
pub(crate) mod inotify;
pub(crate) mod sd_notify;
pub(crate) mod socket;
pub(crate) mod syncs;
