#!/bin/bash
# Issue 16, test 12: two hosts sharing one engine, under real systemd.
#
#   tests/system/engine.sh PATH/TO/worker-watcher.deb
#
# Starts a redis-server on this host on a unix socket, boots two fresh copies of the cached
# Debian 12 root (rootfs.sh) with systemd-nspawn, each with the socket's folder bind-mounted
# at /srv/ww-engine, installs the .deb in both, and runs worker-watcher@marie.service on
# both with SPOOL=redis+unix:///srv/ww-engine/sock (the hosts "a" and "b", their own
# SPOOL_CONSUMER). Checks: every task submitted has exactly one result and both hosts ran
# some; a worker killed with `systemctl kill -s KILL` mid-task has its tasks reclaimed by
# the other host after one lease. Bounded: about a minute. Needs root, redis-server on the
# host, and the .deb (tests/system/run.sh passes the one it built).

# shellcheck disable=SC2016 # single-quoted scripts expand inside the container
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"
SUITE_NAME=engine

DEB=${1:?usage: engine.sh PATH/TO/worker-watcher.deb}
WORKER=marie
UNIT=worker-watcher@$WORKER.service
LEASE=3
ENGINE_DIR=""
ENGINE_PID=""
declare -A LEADER=() NSPAWN=() ROOTDIR=()

# on HOST COMMAND...: runs COMMAND inside host HOST's container.
on() { local h=$1; shift; CT_LEADER=${LEADER[$h]} ct "$@"; }

# cli ARGS...: redis-cli on the engine's socket.
cli() { redis-cli -s "$ENGINE_DIR/sock" --no-raw "$@"; }
cli_raw() { redis-cli -s "$ENGINE_DIR/sock" --raw "$@"; }

start_engine() {
    ENGINE_DIR=$(mktemp -d /var/tmp/ww-engine.XXXXXX)
    chmod 0755 "$ENGINE_DIR"
    redis-server --port 0 --unixsocket "$ENGINE_DIR/sock" --unixsocketperm 777 \
        --appendonly yes --appendfsync always --save '' --dir "$ENGINE_DIR" \
        >"$ENGINE_DIR/log" 2>&1 </dev/null &
    ENGINE_PID=$!
    wait_until 20 "redis-server answers on $ENGINE_DIR/sock" cli ping
}

# boot HOST ROOTFS: a container named ww-PID-HOST with the engine's folder bind-mounted.
boot() {
    local h=$1 rootfs=$2 dir
    dir=$(mktemp -d /var/tmp/worker-watcher-ct.XXXXXX)
    cp -a "$rootfs/." "$dir/"
    chmod 0755 "$dir"
    # Each host its own name: the results say which one ran a task.
    echo "ww-host-$h" >"$dir/etc/hostname"
    ROOTDIR[$h]=$dir
    systemd-nspawn -q -D "$dir" -b --register=no --keep-unit --machine="ww-$$-$h" \
        --bind="$ENGINE_DIR:/srv/ww-engine" </dev/null >"$dir.log" 2>&1 &
    NSPAWN[$h]=$!
    CT_NSPAWN=${NSPAWN[$h]}
    wait_until 30 "host $h: the container's PID 1" find_leader || return 1
    LEADER[$h]=$CT_LEADER
    wait_until 90 "host $h: systemctl is-system-running says running or degraded" system_up
}

cleanup() {
    local h
    for h in "${!NSPAWN[@]}"; do
        CT_NSPAWN=${NSPAWN[$h]} CT_LEADER=${LEADER[$h]:-} CT_DIR=${ROOTDIR[$h]} CT_LOG=${ROOTDIR[$h]}.log ct_cleanup
    done
    if [[ -n $ENGINE_PID ]]; then kill -KILL "$ENGINE_PID" 2>/dev/null || true; wait "$ENGINE_PID" 2>/dev/null || true; fi
    if [[ -n $ENGINE_DIR ]]; then rm -rf --one-file-system "$ENGINE_DIR"; fi
}

# install_host HOST: the package, the stand-in agent, the worker on the engine.
install_host() {
    local h=$1 name out
    name=$(basename "$DEB")
    cp "$DEB" "${ROOTDIR[$h]}/root/$name"
    out=$(on "$h" dpkg -i "/root/$name" 2>&1) || { say "$out"; fail "host $h: dpkg -i failed"; return 1; }
    install -m 755 "$HERE/claude-standin" "${ROOTDIR[$h]}/usr/local/bin/claude"
    printf 'SPOOL=redis+unix:///srv/ww-engine/sock\nSPOOL_CONSUMER=host-%s\nHEARTBEAT_INTERVAL=1\nLEASE=%s\nMAX_CONCURRENT=2\n' \
        "$h" "$LEASE" | on "$h" sh -c 'cat >/etc/worker-watcher/marie.env'
    # Killed means killed here: no restart to recover its own entries before the other host.
    printf '[Service]\nRestart=no\n' | on "$h" sh -c \
        'mkdir -p /run/systemd/system/worker-watcher@marie.service.d && cat >/run/systemd/system/worker-watcher@marie.service.d/test.conf'
    on "$h" systemctl daemon-reload
    on "$h" systemctl start "$UNIT" || { on "$h" journalctl -u "$UNIT" --no-pager | tail -n 20; fail "host $h: start failed"; return 1; }
    say "host $h: $UNIT $(on "$h" systemctl is-active "$UNIT"), status: $(on "$h" systemctl show -p StatusText --value "$UNIT")"
}

step_install_both() { install_host a && install_host b; }

# submit ID DESCRIPTION: queued through the engine's enqueue script, by watcherctl on host a.
submit() {
    printf '%s' "$2" | on a env SPOOL=redis+unix:///srv/ww-engine/sock watcherctl submit "$WORKER" - --id "$1" >/dev/null
}

result_field() { cli_raw GET "ww:{$WORKER}:result:$1" | jq -r ".$2 // empty"; }

all_results() { local id; for id in "$@"; do [[ -n $(result_field "$id" status) ]] || return 1; done; }

# results_once IDS...: each id has exactly one entry on the results stream.
results_once() {
    local counts id n
    counts=$(cli_raw XRANGE ww:results - + | awk 'prev == "id" { print } { prev = $0 }' | sort | uniq -c)
    for id in "$@"; do
        n=$(awk -v id="$id" '$2 == id { print $1 }' <<<"$counts")
        [[ $n == 1 ]] || { fail "task $id has ${n:-0} entries on the results stream"; return 1; }
    done
}

step_shared_queue() {
    local ids=() i host a=0 b=0
    for i in $(seq 1 16); do ids+=("share-$i"); submit "share-$i" "sleep 0.5"; done
    wait_until 60 "16 results on the engine" all_results "${ids[@]}"
    for i in "${ids[@]}"; do
        [[ $(result_field "$i" status) == completed ]] || fail "$i: $(result_field "$i" status)"
        host=$(result_field "$i" hostname)
        case $host in *-a) a=$((a + 1)) ;; *-b) b=$((b + 1)) ;; esac
    done
    say "ran on host a: $a, on host b: $b"
    results_once "${ids[@]}"
    ((a > 0 && b > 0)) || fail "one host ran everything"
}

host_a_down() { [[ $(on a systemctl is-active "$UNIT") != active ]]; }

a_holds() { (($(held_by a) >= 1)); }

held_by() { cli_raw XPENDING "ww:{$WORKER}:q" workers - + 100 "host-$1" | grep -c '^[0-9]*-[0-9]*$'; }

step_kill_reclaim() {
    local ids=() i t0 t1 n moved=0
    for i in $(seq 1 4); do ids+=("kill-$i"); submit "kill-$i" "sleep 6"; done
    wait_until 20 "host a runs some of them" a_holds
    n=$(held_by a)
    say "host a holds $n entries; killing its worker"
    t0=$(date +%s.%N)
    # With Delegate=yes systemd may fail to signal the agents' sub-cgroups (EIO) after the
    # daemon: they die with it anyway (parent-death signal), which is checked below.
    on a systemctl kill -s KILL "$UNIT" || say "systemctl kill: non-zero (auxiliary processes)"
    wait_until 10 "host a's worker is gone" host_a_down
    wait_until 60 "every task has a result" all_results "${ids[@]}"
    t1=$(date +%s.%N)
    for i in "${ids[@]}"; do
        [[ $(result_field "$i" status) == completed ]] || fail "$i: $(result_field "$i" status)"
        [[ $(result_field "$i" hostname) == *-b ]] && moved=$((moved + 1))
    done
    say "all 4 done $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the kill (lease ${LEASE} s, agent 6 s); host b ran $moved"
    results_once "${ids[@]}"
    ((moved >= n)) || fail "host b did not take over host a's $n tasks"
    [[ $(held_by a) == 0 ]] || fail "host a still holds entries"
    [[ $(on a systemctl is-active "$UNIT" || true) != active ]] || fail "host a's worker came back"
}

main() {
    local rootfs
    [[ $EUID == 0 ]] || { echo "engine.sh: needs root (systemd-nspawn)" >&2; exit 2; }
    [[ -f $DEB ]] || { echo "engine.sh: no such .deb: $DEB" >&2; exit 2; }
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
        { echo "engine.sh: redis-server and redis-cli are needed (.ci/run installs redis-server)" >&2; exit 2; }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    rootfs=$("$HERE/rootfs.sh")
    # Not a step (a subshell): the engine's folder and pid are needed afterwards.
    printf '=== %s\n' "engine: redis-server on a unix socket"
    if start_engine; then record "engine: redis-server on a unix socket" 0; else
        record "engine: redis-server on a unix socket" 1; summary; exit 1; fi
    printf '=== %s\n' "boot two containers, the engine's socket bind-mounted"
    if boot a "$rootfs" && boot b "$rootfs"; then
        record "boot two containers, the engine's socket bind-mounted" 0
    else
        record "boot two containers, the engine's socket bind-mounted" 1
        summary
        exit 1
    fi
    step "both hosts: dpkg -i, $UNIT on the engine, active" step_install_both
    step "one queue, two hosts: one result per task, both hosts ran some" step_shared_queue
    step "systemctl kill -s KILL on host a mid-task: host b reclaims after one lease" step_kill_reclaim
    summary
    ((FAILED == 0))
}

main "$@"
