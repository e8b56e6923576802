#!/bin/bash
# The .rpm as a packager and an operator meet it, checked on this Debian host with Debian's
# `rpm` (installed if missing). Needs root.
#
#   tests/packaging/rpm.sh PATH.rpm [PATH.deb]     # the .deb, if given, for the file list
#
# 1. The package: its metadata, the same files as the .deb, modes and owners, the env file
#    %config(noreplace), the man pages gzipped, the scriptlets (systemd conventions: sysusers
#    applied, daemon-reload, stop on erase, restart on upgrade; no enable, no useradd).
# 2. A scratch root (a copy of the system suite's cached Debian root, not booted): rpm --root
#    -i, -U over itself, -e. The scriptlets run chrooted there: sysusers and tmpfiles act,
#    their systemctl parts are skipped as on any system not booted with systemd.
# 3. The same under a real systemd: the root booted with systemd-nspawn, rpm run inside it;
#    a worker runs a task, is restarted by an upgrade, and is stopped by the erase.
# Every step prints what it saw and PASS/FAIL; the last line counts them.

# shellcheck disable=SC2016 # single-quoted scripts expand inside the container
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SYSTEM=$REPO/tests/system
# shellcheck source=../system/lib.sh
source "$SYSTEM/lib.sh"

RPM_FILE=$(realpath "${1:?usage: rpm.sh PATH.rpm [PATH.deb]}")
DEB_FILE=${2:+$(realpath "$2")}
# Debian's rpm keeps its database under $HOME and warns that it is not Debian's package
# manager (--force-debian silences that); the database goes where an rpm system keeps it.
DB=(--dbpath /var/lib/rpm)
FORCE=(--force-debian --nosignature)
ENV_FILE=/etc/worker-watcher/watcher.env
ROOT=/var/lib/worker-watcher
WORKER=anga
UNIT=worker-watcher@$WORKER.service
SCRATCH=""
SUITE_NAME=rpm
# The pages both packages install (the system suite checks the .deb's with man -w).
MAN_PAGES=(/usr/share/man/man8/worker-watcher.8.gz /usr/share/man/man5/worker-watcher.env.5.gz
    /usr/share/man/man5/worker-watcher-tasks.5.gz /usr/share/man/man1/watcherctl.1.gz
    /usr/share/man/man8/orchestrator-listener.8.gz)

host_tools() {
    local missing=()
    command -v rpm >/dev/null || missing+=(rpm)
    command -v rpm2cpio >/dev/null || missing+=(rpm2cpio)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v jq >/dev/null || missing+=(jq)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v nsenter >/dev/null || missing+=(util-linux)
    command -v pgrep >/dev/null || missing+=(procps)
    if ((${#missing[@]})); then
        echo "rpm.sh: installing ${missing[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

q() { rpm -qp --nosignature "$@" "$RPM_FILE" 2>/dev/null; }

# --- 1. the package ---------------------------------------------------------------------

step_metadata() {
    say "$(q --qf '%{NAME} %{VERSION}-%{RELEASE} %{ARCH}, license %{LICENSE}\n')"
    say "requires: $(q --requires | tr '\n' ' ')"
    say "recommends: $(q --recommends | tr '\n' ' ')"
    [[ $(q --qf '%{NAME}') == worker-watcher ]] || fail "name is not worker-watcher"
    q --requires | grep -c '^/bin/sh' >/dev/null || fail "the scriptlets need /bin/sh, which is not required"
}

# The files of the .deb (no folders), as absolute paths, less the copyright file that Debian
# policy asks of every .deb (cargo-deb writes it; rpm has the License tag instead).
deb_files() {
    dpkg-deb -c "$DEB_FILE" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' |
        grep -vx /usr/share/doc/worker-watcher/copyright | sort
}

step_file_list() {
    local listed
    listed=$(q -l | sort)
    sed 's/^/      /' <<<"$listed"
    if [[ -n $DEB_FILE ]]; then
        diff <(deb_files) <(cat <<<"$listed") >/dev/null ||
            { diff <(deb_files) <(cat <<<"$listed") | sed 's/^/      deb<>rpm: /'; fail "not the files of the .deb"; return 1; }
        say "the same $(wc -l <<<"$listed" | tr -d ' ') files as $(basename "$DEB_FILE")"
    fi
    grep -qx /usr/bin/worker-watcher <<<"$listed" || fail "no /usr/bin/worker-watcher"
    grep -qx /usr/bin/watcherctl <<<"$listed" || fail "no /usr/bin/watcherctl"
    grep -qx /usr/bin/orchestrator-listener <<<"$listed" || fail "no /usr/bin/orchestrator-listener"
    grep -qx /usr/lib/systemd/catalog/worker-watcher.catalog <<<"$listed" || fail "no journal catalog"
    grep -qx /usr/share/worker-watcher/prometheus/worker-watcher.rules.yml <<<"$listed" || fail "no alert rules"
    grep -qx /usr/share/worker-watcher/grafana/worker-watcher.json <<<"$listed" || fail "no Grafana dashboard"
    grep -qx /usr/share/doc/worker-watcher/examples/systemd/orchestrator-listener-engine.conf.example <<<"$listed" ||
        fail "no systemd drop-in for an engine"
}

step_modes_and_config() {
    local line ok=0
    # %{FILEFLAGS:fflags}: c config, n noreplace, d doc.
    q --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' |
        sed 's/^/      /'
    line=$(q --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' |
        grep " $ENV_FILE\$")
    [[ $line == "-rw-r----- root:worker-watcher cn $ENV_FILE" ]] ||
        { fail "$ENV_FILE is not -rw-r----- root:worker-watcher %config(noreplace)"; ok=1; }
    [[ $(q --configfiles) == "$ENV_FILE" ]] || { fail "the config files are not just $ENV_FILE"; ok=1; }
    q --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' | grep -c '^-rwxr-xr-x /usr/bin/worker-watcher$' >/dev/null ||
        { fail "/usr/bin/worker-watcher is not 0755"; ok=1; }
    return "$ok"
}

step_man_pages_gzipped() {
    local dir page ok=0
    dir=$(mktemp -d)
    # (Debian's rpm2cpio exits 1 after a complete zstd payload: the files are checked instead.)
    (cd "$dir" && { rpm2cpio "$RPM_FILE" || true; } | cpio -idm --quiet)
    for page in "$dir"/usr/share/man/man*/*; do
        # (grep -c reads it all: an early exit would SIGPIPE gzip under pipefail)
        if [[ $page == *.gz ]] && gzip -t "$page" && [[ $(gzip -dc "$page" | grep -c '^\.TH ') == 1 ]]; then
            say "${page#"$dir"}: gzip, $(gzip -dc "$page" | wc -l | tr -d ' ') lines of roff"
        else
            fail "${page#"$dir"} is not a gzipped man page"; ok=1
        fi
    done
    for page in "${MAN_PAGES[@]}"; do
        [[ -f $dir$page ]] || { fail "no $page"; ok=1; }
    done
    rm -rf "$dir"
    return "$ok"
}

step_scriptlets() {
    local s ok=0
    s=$(q --scripts)
    sed 's/^/      /' <<<"$s"
    expect() { grep -q -- "$1" <<<"$s" || { fail "no $2"; ok=1; }; }
    expect 'preinstall scriptlet' '%pre'
    expect 'systemd-sysusers --replace=/usr/lib/sysusers.d/worker-watcher.conf -' 'sysusers in %pre'
    expect 'systemd-tmpfiles --create worker-watcher.conf' 'tmpfiles in %post'
    expect 'daemon-reload' 'daemon-reload'
    expect "systemctl --system stop 'worker-watcher@\*.socket' 'worker-watcher@\*.service'" 'stop on erase in %preun'
    expect "try-restart 'worker-watcher@\*.service'" 'restart on upgrade in %postun'
    expect 'journalctl --update-catalog' 'catalog update'
    ! grep -v '^ *#' <<<"$s" | grep -Eq 'useradd|groupadd|systemctl[^|]* (enable|preset)' ||
        { fail "a scriptlet adds users or enables units"; ok=1; }
    return "$ok"
}

# --- 2. a scratch root --------------------------------------------------------------------

sr() { rpm --root "$SCRATCH" "${DB[@]}" "${FORCE[@]}" "$@"; }

# scratch_root: a copy of the cached Debian root with /proc mounted, as an installer's chroot
# has it (systemd-tmpfiles needs it). Not a step: steps run in subshells, and this sets SCRATCH.
scratch_root() {
    local rootfs
    rootfs=$("$SYSTEM/rootfs.sh") || return 1
    SCRATCH=$(mktemp -d /var/tmp/worker-watcher-rpmroot.XXXXXX)
    cp -a "$rootfs/." "$SCRATCH/"
    mount -t proc proc "$SCRATCH/proc"
    say "scratch root: $SCRATCH"
}

step_scratch_install() {
    local line
    rpm --root "$SCRATCH" "${DB[@]}" --initdb
    cp "$RPM_FILE" "$SCRATCH/root/worker-watcher.rpm"
    sr -i --nodeps "$SCRATCH/root/worker-watcher.rpm" 2>&1 | sed 's/^/      rpm -i: /'
    say "installed: $(sr -q worker-watcher)"
    line=$(grep '^worker-watcher:' "$SCRATCH/etc/passwd") || { fail "%pre did not create the user"; return 1; }
    say "user: $line"
    line=$(chroot "$SCRATCH" stat -c '%a %U:%G' "$ENV_FILE")
    say "$ENV_FILE: $line"
    [[ $line == "640 root:worker-watcher" ]] || fail "$ENV_FILE is $line"
    line=$(chroot "$SCRATCH" stat -c '%a %U:%G' "$ROOT" 2>&1) || line="missing"
    say "$ROOT: $line (tmpfiles.d in %post)"
    [[ $line == "750 worker-watcher:worker-watcher" ]] || fail "$ROOT is $line"
    say "worker-watcher --version: $(chroot "$SCRATCH" worker-watcher --version)"
    chroot "$SCRATCH" journalctl --list-catalog 2>/dev/null | grep -c 'Circuit breaker of worker' >/dev/null ||
        fail "%post did not index the journal catalog"
    # --nodeps: this root's libc and /bin/sh are Debian's, not in the rpm database.
    sr -V --nodeps worker-watcher | sed 's/^/      rpm -V: /'
    [[ -z $(sr -V --nodeps worker-watcher) ]] || fail "rpm -V finds changes right after install"
}

step_scratch_upgrade_keeps_config() {
    echo 'LOG_LEVEL=DEBUG' >>"$SCRATCH$ENV_FILE"
    sr -U --replacepkgs --nodeps "$SCRATCH/root/worker-watcher.rpm" 2>&1 | sed 's/^/      rpm -U: /'
    say "after rpm -U over itself: last line $(tail -n 1 "$SCRATCH$ENV_FILE"), $(ls "$SCRATCH/etc/worker-watcher" | tr '\n' ' ')"
    [[ $(tail -n 1 "$SCRATCH$ENV_FILE") == LOG_LEVEL=DEBUG ]] || fail "the operator's change was replaced"
    [[ $(chroot "$SCRATCH" stat -c '%a %U:%G' "$ENV_FILE") == "640 root:worker-watcher" ]] ||
        fail "the env file lost its mode or group"
}

step_scratch_erase() {
    mkdir -p "$SCRATCH$ROOT/results/$WORKER" && echo '{}' >"$SCRATCH$ROOT/results/$WORKER/kept.json"
    sr -e worker-watcher 2>&1 | sed 's/^/      rpm -e: /'
    say "after rpm -e: /etc/worker-watcher: $(ls "$SCRATCH/etc/worker-watcher" 2>/dev/null | tr '\n' ' ')"
    ! sr -q worker-watcher >/dev/null 2>&1 || fail "still installed"
    [[ ! -e $SCRATCH/usr/bin/worker-watcher ]] || fail "/usr/bin/worker-watcher left behind"
    [[ -f $SCRATCH$ENV_FILE.rpmsave ]] || fail "the changed env file was not saved as .rpmsave"
    [[ -f $SCRATCH$ROOT/results/$WORKER/kept.json ]] || fail "the spool was removed"
    grep -q '^worker-watcher:' "$SCRATCH/etc/passwd" || fail "the user was removed"
}

# --- 3. under a real systemd -------------------------------------------------------------

in_ct_rpm() { ct rpm "${DB[@]}" "${FORCE[@]}" "$@"; }

step_systemd_install_and_run() {
    local id=rpm-$$-1 out
    cp "$RPM_FILE" "$(ct_path /root/worker-watcher.rpm)"
    install -m 755 "$SYSTEM/claude-standin" "$(ct_path /usr/local/bin/claude)"
    ct rpm "${DB[@]}" --initdb
    out=$(in_ct_rpm -i --nodeps /root/worker-watcher.rpm 2>&1) || { say "$out"; fail "rpm -i failed"; return 1; }
    say "rpm -i: ${out:-ok}; $(in_ct_rpm -q worker-watcher)"
    say "is-enabled $UNIT: $(ct systemctl is-enabled "$UNIT" 2>&1 || true)"
    [[ $(ct systemctl is-enabled "$UNIT" 2>&1 || true) == disabled ]] || fail "the package enabled $UNIT"
    ct timeout 90 systemctl start "$UNIT" || { fail "systemctl start $UNIT failed"; return 1; }
    printf '{"task_id":"%s","description":"Echo hello"}\n' "$id" |
        ct runuser -u worker-watcher -- sh -c "cat >'$ROOT/tasks/$WORKER/.$id.tmp' && mv '$ROOT/tasks/$WORKER/.$id.tmp' '$ROOT/tasks/$WORKER/$id.json'"
    wait_until 30 "result $id" test -s "$(ct_path "$ROOT/results/$WORKER/$id.json")" || return 1
    say "result: $(json_field "$(ct_path "$ROOT/results/$WORKER/$id.json")" status)"
    say "man -w worker-watcher: $(ct man -w worker-watcher 2>&1); man -w 1 watcherctl: $(ct man -w 1 watcherctl 2>&1)"
    ct man -w worker-watcher >/dev/null 2>&1 || fail "man -w does not find worker-watcher(8)"
    ct man -w 1 watcherctl >/dev/null 2>&1 || fail "man -w does not find watcherctl(1)"
}

step_systemd_upgrade_restarts() {
    local pid out
    pid=$(unit_prop "$UNIT" MainPID)
    echo 'LOG_LEVEL=DEBUG' | ct sh -c "cat >>$ENV_FILE"
    out=$(in_ct_rpm -U --replacepkgs --nodeps /root/worker-watcher.rpm 2>&1) || { say "$out"; fail "rpm -U failed"; return 1; }
    say "rpm -U over itself: ${out:-ok}; MainPID $pid -> $(unit_prop "$UNIT" MainPID), $(ct systemctl is-active "$UNIT")"
    [[ $(unit_prop "$UNIT" MainPID) != "$pid" && $(ct systemctl is-active "$UNIT") == active ]] ||
        fail "the running worker was not restarted on the new package"
    [[ $(ct tail -n 1 "$ENV_FILE") == LOG_LEVEL=DEBUG ]] || fail "the operator's change was replaced"
}

step_systemd_erase_stops() {
    local out
    out=$(in_ct_rpm -e worker-watcher 2>&1) || { say "$out"; fail "rpm -e failed"; return 1; }
    say "rpm -e: ${out:-ok}; $UNIT: $(ct systemctl is-active "$UNIT" || true)"
    ! ct systemctl list-units --state=active --no-legend 'worker-watcher@*' | grep -c . >/dev/null ||
        fail "a worker is still running after rpm -e"
    [[ $(json_field "$(ct_path "$ROOT/heartbeats/$WORKER.json")" status) == stopped ]] ||
        fail "the worker was not stopped cleanly (heartbeat not 'stopped')"
    ct test -d "$ROOT/results/$WORKER" || fail "the spool was removed"
}

cleanup() {
    ct_cleanup
    if [[ -n $SCRATCH && -d $SCRATCH ]]; then
        umount "$SCRATCH/proc" 2>/dev/null || true
        rm -rf --one-file-system "$SCRATCH"
    fi
}

main() {
    [[ $EUID == 0 ]] || { echo "rpm.sh: needs root (chroot, systemd-nspawn)" >&2; exit 2; }
    [[ -f $RPM_FILE ]] || { echo "rpm.sh: no such .rpm: $RPM_FILE" >&2; exit 2; }
    host_tools
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    step "rpm: metadata and requirements" step_metadata
    step "rpm -qpl: the files of the .deb" step_file_list
    step "rpm: modes, owners, %config(noreplace)" step_modes_and_config
    step "rpm: man pages gzipped" step_man_pages_gzipped
    step "rpm -qp --scripts: systemd conventions" step_scriptlets
    printf '=== %s\n' "scratch root: a copy of the cached Debian root"
    if scratch_root; then
        record "scratch root: a copy of the cached Debian root" 0
        step "scratch root: rpm --root -i (user, env file, folders, catalog)" step_scratch_install
        step "scratch root: rpm -U over itself keeps the changed env file" step_scratch_upgrade_keeps_config
        step "scratch root: rpm -e keeps the spool, saves the env file" step_scratch_erase
    else
        record "scratch root: a copy of the cached Debian root" 1
    fi

    printf '=== %s\n' "boot a fresh Debian 12 container"
    if ct_boot "$("$SYSTEM/rootfs.sh")"; then
        record "boot a fresh Debian 12 container" 0
        step "systemd: rpm -i, a worker runs a task" step_systemd_install_and_run
        step "systemd: rpm -U restarts the running worker, keeps the env file" step_systemd_upgrade_restarts
        step "systemd: rpm -e stops the worker, keeps the spool" step_systemd_erase_stops
    else
        record "boot a fresh Debian 12 container" 1
    fi
    summary
    ((FAILED == 0))
}

main "$@"
