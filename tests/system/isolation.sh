# shellcheck shell=bash disable=SC2016
# Steps of the system suite on what a worker takes in and leaves behind: env files read as
# systemd reads them, and agents' escaped processes killed with their run's cgroup
# (Delegate=yes). Sourced by suite.sh, after lib.sh; uses its ROOT, REPO and helpers.

ENV_TABLE=$REPO/tests/fixtures/env-file

# queue_json WORKER ID JSON: as a producer does it, a temp name renamed into the queue.
queue_json() {
    local tmp=$ROOT/tasks/$1/.$2.json.tmp
    printf '%s\n' "$3" |
        ct runuser -u worker-watcher -- sh -c "cat >'$tmp' && mv '$tmp' '$ROOT/tasks/$1/$2.json'"
    say "queued $ROOT/tasks/$1/$2.json: $3"
}

# t_vars FILE: the T_* entries of an `env -0` dump, sorted as the table's .expected files are.
t_vars() { LC_ALL=C grep -z '^T_' "$1" | LC_ALL=C sort -z || true; }

# shown FILE: an `env -0` dump on one line, NULs as |, control characters visible.
shown() { tr '\0' '|' <"$1" | cat -v; }

# Every case of tests/fixtures/env-file through systemd's own EnvironmentFile= (optional, as
# the units name them): what a service sees must be the case's .expected, byte for byte, the
# same file `cargo test` holds our parser to.
step_env_table() {
    local dir=/root/env-table case name got n=0 ok=0
    ct mkdir -p "$dir"
    cp "$ENV_TABLE"/*.env "$(ct_path "$dir")/"
    got=$(mktemp)
    for case in "$ENV_TABLE"/*.env; do
        name=$(basename "$case")
        ct systemd-run --wait --pipe --quiet -p "EnvironmentFile=-$dir/$name" /usr/bin/env -0 >"$got.raw" 2>/dev/null || true
        t_vars "$got.raw" >"$got"
        n=$((n + 1))
        if cmp -s "$got" "$case.expected"; then
            say "$name: systemd sets $(tr -cd '\0' <"$got" | wc -c) variables, as the table says"
        else
            say "$name: systemd set:    $(shown "$got")"
            say "$name: the table says: $(shown "$case.expected")"
            fail "$name: systemd $(ct systemctl --version | head -n 1) reads it differently"
            ok=1
        fi
    done
    rm -f "$got" "$got.raw"
    say "$n cases compared"
    return "$ok"
}

# The table's secrets file as a worker's env file: the agent gets every T_ variable byte for
# byte, first as the package's unit runs it (EnvironmentFile= and --env-file), then with
# EnvironmentFile= emptied by a drop-in, so that only the daemon's own reader feeds it.
step_secret_to_agent() {
    local w=secrets unit=worker-watcher@secrets.service file=/etc/worker-watcher/secrets.env
    local dropin=/run/systemd/system/worker-watcher@secrets.service.d/50-only-env-file.conf
    local mode id got n=0 ok=0
    cp "$ENV_TABLE/secrets.env" "$(ct_path "$file")"
    ct chgrp worker-watcher "$file" && ct chmod 0640 "$file"
    got=$(mktemp)
    for mode in "EnvironmentFile= and --env-file" "--env-file only"; do
        if [[ $mode == "--env-file only" ]]; then
            printf '[Service]\nEnvironmentFile=\n' | ct_write "$dropin"
            ct systemctl daemon-reload
        fi
        start_unit "$unit" || { show_journal_tail "$unit"; fail "$unit does not start"; return 1; }
        say "$mode: EnvironmentFiles=$(unit_prop "$unit" EnvironmentFiles | tr '\n' ' ')"
        n=$((n + 1))
        id=sys-$$-env-$n
        queue_json "$w" "$id" "{\"task_id\":\"$id\",\"description\":\"env\"}"
        wait_until 30 "the agent's environment in $ROOT/home/env-$id" test -s "$(ct_path "$ROOT/home/env-$id")" || {
            show_journal_tail "$unit"; return 1; }
        t_vars "$(ct_path "$ROOT/home/env-$id")" >"$got"
        if cmp -s "$got" "$ENV_TABLE/secrets.env.expected"; then
            say "$mode: the agent got $(tr -cd '\0' <"$got" | wc -c) T_ variables, byte for byte"
        else
            say "agent got:      $(shown "$got")"
            say "systemd reads:  $(shown "$ENV_TABLE/secrets.env.expected")"
            fail "$mode: the agent's values differ from systemd's reading"
            ok=1
        fi
        ct systemctl stop "$unit" "worker-watcher@$w.socket"
    done
    ct rm -f "$dropin" "$file"
    ct systemctl daemon-reload
    rm -f "$got"
    return "$ok"
}

ESCAPES=escapes
ESCAPES_UNIT=worker-watcher@escapes.service

# cgroup_dir: the unit's cgroup as a path in the container (cgroup2 is /sys/fs/cgroup, or
# /sys/fs/cgroup/unified in systemd's hybrid layout, as nspawn gives this container).
cgroup_dir() {
    local mount
    mount=$(ct sh -c 'grep " - cgroup2 " /proc/self/mountinfo | head -n 1 | cut -d" " -f5')
    printf '%s%s' "$mount" "$(unit_prop "$ESCAPES_UNIT" ControlGroup)"
}

# contained_by_cgroups: the daemon's ready entry says it runs each agent in a cgroup.
containment() {
    ct journalctl -u "$ESCAPES_UNIT" --no-pager -o json | jq -r 'select(.CONTAINMENT != null) | .CONTAINMENT' | tail -n 1
}
contained_by_cgroups() { containment | grep -q '^a cgroup per run'; }

# escapee ID: the pid the stand-in's escaped sleep wrote for task ID.
escapee() { cat "$(ct_path "$ROOT/home/escaped-$1")" 2>/dev/null; }

gone() { ! ct test -e "/proc/$1"; }

# cgroup_killed ID: the daemon's journal entry saying it killed the cgroup of task ID's run.
cgroup_killed() {
    ct journalctl -u "$ESCAPES_UNIT" --no-pager -o json "TASK_ID=$1" |
        jq -r 'select(.CGROUP != null) | .CGROUP' | grep -q "/task-$1-1\$"
}

# escape_run ID JSON CGROUP: queues a task whose agent leaves a daemon behind; checks where
# that daemon lives while the run goes on (the run's cgroup, reparented to PID 1, so no
# subreaper of ours and no process group could reach it).
escape_run() {
    local id=$1 json=$2 cg=$3 pid rc=0
    queue_json "$ESCAPES" "$id" "$json"
    wait_until 30 "the escaped process of $id" test -s "$(ct_path "$ROOT/home/escaped-$id")" || return 1
    pid=$(escapee "$id")
    say "escaped process: pid $pid; $(ct sh -c "grep -E '^(PPid|NSsid)' /proc/$pid/status" | tr -s '\t\n' '  ');" \
        "$(ct grep '^0::' "/proc/$pid/cgroup")"
    ct grep -Fqx "0::$(unit_prop "$ESCAPES_UNIT" ControlGroup)/task-$id-1" "/proc/$pid/cgroup" ||
        { fail "the escaped process is not in the run's cgroup task-$id-1"; rc=1; }
    [[ $(ct sh -c "sed -n 's/^PPid:\t//p' /proc/$pid/status") == 1 ]] || { fail "its parent is not PID 1"; rc=1; }
    ct test -d "$cg/task-$id-1" || { fail "no cgroup $cg/task-$id-1"; rc=1; }
    return "$rc"
}

# after_run ID CGROUP: the escaped process is gone, the run's cgroup removed, and the daemon
# says it killed that cgroup.
after_run() {
    local id=$1 cg=$2 pid
    pid=$(escapee "$id")
    wait_until 15 "the escaped process $pid is gone" gone "$pid" || return 1
    wait_until 15 "the cgroup task-$id-1 is removed" eval "! ct test -d '$cg/task-$id-1'" || return 1
    wait_until 15 "journal: the daemon killed the cgroup of $id (CGROUP=…/task-$id-1)" cgroup_killed "$id"
}

step_cgroup_escape() {
    local cg main id ok=0
    printf 'LOG_LEVEL=DEBUG\nSHUTDOWN_GRACE=1\nKILL_GRACE=1\n' | ct_write "/etc/worker-watcher/$ESCAPES.env"
    start_unit "$ESCAPES_UNIT" || { show_journal_tail "$ESCAPES_UNIT"; fail "$ESCAPES_UNIT does not start"; return 1; }
    cg=$(cgroup_dir)
    main=$(unit_prop "$ESCAPES_UNIT" MainPID)
    say "Delegate=$(unit_prop "$ESCAPES_UNIT" Delegate); cgroup $cg; daemon (pid $main): $(ct grep '^0::' "/proc/$main/cgroup")"
    [[ $(unit_prop "$ESCAPES_UNIT" Delegate) == yes ]] || fail "the unit does not delegate its cgroup"
    ct sh -c "grep -q '^0::.*/supervisor\$' /proc/$main/cgroup" || { fail "the daemon is not in its supervisor leaf"; ok=1; }
    wait_until 15 "the ready entry says: a cgroup per run" contained_by_cgroups || ok=1
    say "ready entry: CONTAINMENT=$(containment)"

    say "-- a run that ends"
    id=sys-$$-escape-end
    escape_run "$id" "{\"task_id\":\"$id\",\"description\":\"escape sleep 3\"}" "$cg" || ok=1
    wait_until 30 "result of $id" test -s "$(result_file_of "$id")" || ok=1
    say "result: $(json_field "$(result_file_of "$id")" status)"
    after_run "$id" "$cg" || ok=1

    say "-- a run that times out"
    id=sys-$$-escape-timeout
    escape_run "$id" "{\"task_id\":\"$id\",\"description\":\"escape hang\",\"timeout\":2,\"max_retries\":0}" "$cg" || ok=1
    wait_until 30 "result of $id" test -s "$(result_file_of "$id")" || ok=1
    say "result: $(json_field "$(result_file_of "$id")" status) $(json_field "$(result_file_of "$id")" reason)"
    after_run "$id" "$cg" || ok=1

    say "-- the worker stops while a run goes on"
    id=sys-$$-escape-stop
    escape_run "$id" "{\"task_id\":\"$id\",\"description\":\"escape sleep 600\"}" "$cg" || ok=1
    ct timeout 60 systemctl stop "$ESCAPES_UNIT" "worker-watcher@$ESCAPES.socket"
    say "after stop: $(unit_summary "$ESCAPES_UNIT")"
    wait_until 15 "the escaped process is gone" gone "$(escapee "$id")" || ok=1
    # The daemon killed it itself, before it exited (not systemd's stop of the unit).
    cgroup_killed "$id" && say "journal: the daemon killed the cgroup of $id before it stopped" ||
        { fail "no journal entry of the daemon killing the cgroup of $id"; ok=1; }
    ct rm -f "/etc/worker-watcher/$ESCAPES.env"
    return "$ok"
}

result_file_of() { ct_path "$ROOT/results/$ESCAPES/$1.json"; }
