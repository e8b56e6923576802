//! The operating system's plumbing that both daemons (and watcherctl) use: inotify, systemd's
//! notification socket, listening sockets, durable writes and the clock. Nothing here knows
//! about tasks or workers.

pub mod clock;
pub mod durable;
pub mod inotify;
pub mod sd_notify;
pub mod socket;
