# shellcheck shell=bash disable=SC2016
# Helpers of the system suite: step bookkeeping, polling with a deadline, and one booted
# Debian container driven through nsenter. Sourced by suite.sh; needs bash and root.
# (SC2016: single-quoted scripts run inside the container expand there, on purpose.)

PASSED=0
FAILED=0
SKIPPED=0
FAILED_STEPS=()

say() { printf '    %s\n' "$*"; }

# step NAME FUNCTION: runs FUNCTION in a subshell with `set -e` in force; its exit status
# is the verdict (0 pass, 77 skip, anything else fail). A failing step never stops the
# suite: every later step still runs and reports.
step() {
    local name=$1 fn=$2 rc
    printf '=== %s\n' "$name"
    # Not `( ... ) || rc=$?`: bash ignores set -e inside a subshell tested with ||.
    set +e
    ( set -euo pipefail; "$fn" )
    rc=$?
    set -e
    record "$name" "$rc"
}

# record NAME STATUS: counts and prints the verdict of a step.
record() {
    case $2 in
        0) printf 'PASS %s\n' "$1"; PASSED=$((PASSED + 1)) ;;
        77) printf 'SKIP %s\n' "$1"; SKIPPED=$((SKIPPED + 1)) ;;
        *) printf 'FAIL %s\n' "$1"; FAILED=$((FAILED + 1)); FAILED_STEPS+=("$1") ;;
    esac
}

# summary: the failed steps, then the closing line `NAME: N passed, N failed[, N skipped]`
# (NAME is $SUITE_NAME, default "system").
summary() {
    local name=${SUITE_NAME:-system}
    if ((FAILED)); then
        printf 'failed steps:\n'
        printf '  %s\n' "${FAILED_STEPS[@]}"
    fi
    if ((SKIPPED)); then
        printf '%s: %d passed, %d failed, %d skipped\n' "$name" "$PASSED" "$FAILED" "$SKIPPED"
    else
        printf '%s: %d passed, %d failed\n' "$name" "$PASSED" "$FAILED"
    fi
}

# fail MESSAGE: says why and returns non-zero (use as `cond || fail "..."` in steps).
fail() { say "FAILED: $*"; return 1; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds
# or the deadline passes. The only way the suite waits for anything.
wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "gave up after ${timeout}s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
    say "saw: $what"
}

# stays_true SECONDS DESCRIPTION COMMAND...: checks COMMAND keeps succeeding for a while
# (to show that something does NOT happen, e.g. no restart loop).
stays_true() {
    local window=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + window))
    while ((SECONDS < deadline)); do
        if ! "$@" >/dev/null 2>&1; then
            say "stopped holding within ${window}s: $what"
            return 1
        fi
        sleep 0.5
    done
    say "held for ${window}s: $what"
}

# --- the container ------------------------------------------------------------------

CT_DIR=""      # the container's root folder (a fresh copy of the cached rootfs)
CT_NSPAWN=""   # PID of systemd-nspawn
CT_LEADER=""   # PID of the container's systemd (its PID 1)
CT_LOG=""

# ct COMMAND...: runs COMMAND inside the container, in all its namespaces, with a clean
# environment (nothing of the host's leaks in).
ct() {
    nsenter -t "$CT_LEADER" -a -- /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

ct_boot() {
    local rootfs=$1 state
    CT_DIR=$(mktemp -d /var/tmp/worker-watcher-ct.XXXXXX)
    CT_LOG=$CT_DIR.log
    cp -a "$rootfs/." "$CT_DIR/"
    # The container's / : mktemp made it 0700, and non-root services (dbus) must get through.
    chmod 0755 "$CT_DIR"
    systemd-nspawn -q -D "$CT_DIR" -b --register=no --keep-unit \
        --machine="ww-$$" </dev/null >"$CT_LOG" 2>&1 &
    CT_NSPAWN=$!
    say "systemd-nspawn started: pid $CT_NSPAWN, root $CT_DIR, log $CT_LOG"
    wait_until 30 "the container's PID 1" find_leader || return 1
    say "container PID 1 is host pid $CT_LEADER"
    wait_until 90 "systemctl is-system-running says running or degraded" system_up || {
        say "boot log tail:"; tail -n 20 "$CT_LOG" | sed 's/^/      /'; return 1; }
    state=$(ct systemctl is-system-running || true)
    say "is-system-running: $state"
    if [[ $state == degraded ]]; then
        ct systemctl --failed --no-legend | sed 's/^/      failed unit: /'
    fi
}

# The container's init: nspawn's child whose command is systemd. Early on, nspawn's child
# may still be its short-lived setup process (the init is forked from it), so the name is
# checked, and system_up looks again until the init answers.
find_leader() {
    local pid
    kill -0 "$CT_NSPAWN" 2>/dev/null || return 1
    CT_LEADER=""
    for pid in $(pgrep -P "$CT_NSPAWN"); do
        if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]]; then CT_LEADER=$pid; fi
    done
    [[ -n $CT_LEADER ]]
}

system_up() {
    local state
    kill -0 "$CT_LEADER" 2>/dev/null || find_leader || return 1
    state=$(ct systemctl is-system-running 2>/dev/null) || true
    [[ $state == running || $state == degraded ]]
}

# Powers the container off (SIGTERM to nspawn is a clean shutdown), by PID only; then
# SIGKILL if it does not go within 30 s; then removes its root.
ct_cleanup() {
    local deadline
    if [[ -n $CT_NSPAWN ]] && kill -0 "$CT_NSPAWN" 2>/dev/null; then
        kill -TERM "$CT_NSPAWN" 2>/dev/null || true
        deadline=$((SECONDS + 30))
        while kill -0 "$CT_NSPAWN" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$CT_NSPAWN" 2>/dev/null; then
            echo "cleanup: container did not power off in 30 s; killing pid $CT_NSPAWN" >&2
            if [[ -n $CT_LEADER ]]; then kill -KILL "$CT_LEADER" 2>/dev/null || true; fi
            kill -KILL "$CT_NSPAWN" 2>/dev/null || true
        fi
        wait "$CT_NSPAWN" 2>/dev/null || true
    fi
    if [[ -n $CT_DIR && -d $CT_DIR ]]; then
        rm -rf --one-file-system "$CT_DIR"
    fi
    if [[ -n $CT_LOG && -f $CT_LOG && -z ${WW_KEEP_LOG:-} ]]; then
        rm -f "$CT_LOG"
    fi
}

# --- reading the container's state from the host --------------------------------------

# ct_write PATH: writes stdin to PATH inside the container (creating its folder). Needed
# for /run, which is a tmpfs of the container's own, not the folder under CT_DIR.
ct_write() { ct sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1"' sh "$1"; }

# ct_path PATH: the host path of a file inside the container (not for /run: see ct_write).
ct_path() { printf '%s%s' "$CT_DIR" "$1"; }

# json_field FILE FIELD: one top-level field of a JSON file, as text ("" if absent).
json_field() {
    jq -r --arg f "$2" '.[$f] // empty | tostring' "$1" 2>/dev/null
}

# unit_prop UNIT PROPERTY: one property of a unit, as `systemctl show` prints it.
unit_prop() { ct systemctl show -p "$2" --value "$1"; }
