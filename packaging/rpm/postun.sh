# %postun: $1 is 0 on erase, 1 on upgrade (then it runs after the new version's files are in
# place and the old ones are gone).
# On upgrade, the workers and the listener that are running are restarted, so that the new
# binary serves (as Fedora's %systemd_postun_with_restart): each drains first, and a task
# still running after SHUTDOWN_GRACE is re-queued, not failed. The spool under
# /var/lib/worker-watcher and the user are kept even on erase: they are the operator's data.
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl --system try-restart 'worker-watcher@*.service' orchestrator-listener.service \
            >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ] && command -v journalctl >/dev/null 2>&1; then
    journalctl --update-catalog >/dev/null 2>&1 || :
fi
