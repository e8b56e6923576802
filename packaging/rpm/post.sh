# %post: $1 is 1 on install, 2 on upgrade.
# Applies sysusers.d and tmpfiles.d, tells systemd about the units and journalctl about the
# message catalog. Enables and starts nothing: the operator chooses the workers
# (systemctl enable --now worker-watcher@NAME). Instances running during an upgrade are
# restarted by %postun, once the old files are gone.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers worker-watcher.conf || :
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create worker-watcher.conf || :
fi
if command -v journalctl >/dev/null 2>&1; then
    journalctl --update-catalog >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
fi
