# %pre: $1 is 1 on install, 2 on upgrade.
# The system user must exist before the files are laid down: rpm gives a file its group by
# name, and /etc/worker-watcher/watcher.env is 0640 root:worker-watcher. sysusers.d is not
# installed yet, so its line is given here (the same as packaging/sysusers.d/worker-watcher.conf;
# tests/integration/docs/man.rs checks that they agree), as Fedora's %sysusers_create_compat does.
# No useradd: without systemd-sysusers the user is made by the first boot's systemd-sysusers.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers --replace=/usr/lib/sysusers.d/worker-watcher.conf - <<'SYSUSERS' || :
u worker-watcher - "worker-watcher daemons and their agents" /var/lib/worker-watcher/home -
SYSUSERS
fi
