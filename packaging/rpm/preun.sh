# %preun: $1 is 0 on erase, 1 on upgrade.
# On erase, stops every worker instance, its metrics socket and the listener; each worker
# drains first (SHUTDOWN_GRACE). On upgrade nothing is stopped here (%postun restarts).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --system stop 'worker-watcher@*.socket' 'worker-watcher@*.service' \
        orchestrator-listener.socket orchestrator-listener.service >/dev/null 2>&1 || :
fi
