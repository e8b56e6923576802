//! worker-watcher: systemd-native daemons that run AI-agent workers from a file spool.
