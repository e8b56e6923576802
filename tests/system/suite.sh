#!/bin/bash
# The system suite: worker-watcher as an operator meets it, under a real systemd.
#
#   tests/system/suite.sh PATH/TO/worker-watcher.deb
#
# Boots a fresh copy of a cached Debian 12 root (rootfs.sh) with systemd-nspawn, installs
# the .deb with dpkg -i, puts a stand-in `claude` on the PATH, and checks units, package,
# readiness, a task round trip, the journal, watchdog, reload, stop and a bad config.
# Every step prints what it saw and PASS/FAIL/SKIP; the last line counts them. Exits 1 if
# any step failed. Needs root. tests/system/run.sh builds the .deb and calls this.

# shellcheck disable=SC2016 # single-quoted scripts and formats expand inside the container
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

DEB=${1:?usage: suite.sh PATH/TO/worker-watcher.deb}
WORKER=anga
UNIT=worker-watcher@$WORKER.service
SOCKET=worker-watcher@$WORKER.socket
ROOT=/var/lib/worker-watcher
HEARTBEAT=$ROOT/heartbeats/$WORKER.json
WORKER_ENV=/etc/worker-watcher/$WORKER.env
DROPIN_DIR=/run/systemd/system/$UNIT.d
TASK_ID=sys-$$-1
MAX_WORKER_EXPOSURE=2.0
MAX_LISTENER_EXPOSURE=1.5
# shellcheck source=SCRIPTDIR/isolation.sh
source "$HERE/isolation.sh"

# --- static checks of the unit sources, on the host -----------------------------------

# exposure_of TEXT: the number in systemd-analyze security's "Overall exposure level" line.
exposure_of() { grep -oE 'Overall exposure level for [^:]+: [0-9.]+' <<<"$1" | grep -oE '[0-9.]+$'; }

# at_most VALUE LIMIT
at_most() { awk -v v="$1" -v l="$2" 'BEGIN { exit !(v <= l) }'; }

check_exposure() { # LABEL OUTPUT LIMIT
    local score
    score=$(exposure_of "$2") || { fail "no exposure line in: $(tail -n 3 <<<"$2")"; return 1; }
    say "$1: exposure $score (limit $3)"
    at_most "$score" "$3" || fail "$1 exposure $score is above $3"
}

step_offline_security() {
    local out
    out=$(cd "$REPO/systemd" && systemd-analyze security --offline=yes --no-pager worker-watcher@.service 2>&1)
    check_exposure "worker-watcher@.service (offline, host)" "$out" "$MAX_WORKER_EXPOSURE"
    out=$(cd "$REPO/systemd" && systemd-analyze security --offline=yes --no-pager orchestrator-listener.service 2>&1)
    check_exposure "orchestrator-listener.service (offline, host)" "$out" "$MAX_LISTENER_EXPOSURE"
}

# --- package ----------------------------------------------------------------------------

step_dpkg_install() {
    local name out status
    name=$(basename "$DEB")
    cp "$DEB" "$(ct_path /root/)$name"
    out=$(ct dpkg -i "/root/$name" 2>&1) || { say "$out"; fail "dpkg -i exited non-zero"; return 1; }
    say "dpkg -i: $(tail -n 1 <<<"$out")"
    status=$(ct dpkg-query -W -f='${Status} ${Version}' worker-watcher)
    say "dpkg-query: $status"
    [[ $status == "install ok installed "* ]] || fail "package not installed"
}

step_package_layout() {
    local ok=0 line
    line=$(ct getent passwd worker-watcher) || { fail "no user worker-watcher"; return 1; }
    say "user: $line"
    [[ $(cut -d: -f6 <<<"$line") == "$ROOT/home" ]] || { fail "home is not $ROOT/home"; ok=1; }
    for line in "$ROOT 750 worker-watcher:worker-watcher" \
                "$ROOT/home 750 worker-watcher:worker-watcher" \
                "/run/worker-watcher 750 root:worker-watcher" \
                "/etc/worker-watcher/watcher.env 640 root:worker-watcher"; do
        local path mode owner seen
        read -r path mode owner <<<"$line"
        seen=$(ct stat -c '%a %U:%G' "$path" 2>&1) || seen="missing"
        say "$path: $seen"
        [[ $seen == "$mode $owner" ]] || { fail "$path should be $mode $owner"; ok=1; }
    done
    line=$(ct dpkg-query -W -f='${Conffiles}' worker-watcher)
    say "conffiles:$line"
    grep -q '/etc/worker-watcher/watcher.env' <<<"$line" || { fail "env file is not a conffile"; ok=1; }
    for line in "$UNIT" "$SOCKET" orchestrator-listener.service orchestrator-listener.socket; do
        local enabled
        enabled=$(ct systemctl is-enabled "$line" 2>&1) || true
        say "is-enabled $line: $enabled"
        [[ $enabled == disabled || $enabled == static ]] ||
            { fail "$line should not be enabled by the package"; ok=1; }
    done
    return "$ok"
}

step_verify_worker_units() {
    local out
    out=$(ct systemd-analyze verify --man=no "$UNIT" "$SOCKET" 2>&1) || {
        say "$out"; fail "systemd-analyze verify found problems"; return 1; }
    say "systemd-analyze verify $UNIT $SOCKET: clean${out:+ ($out)}"
    [[ -z $out ]] || fail "verify printed warnings"
}

listener_installed() { ct test -x /usr/bin/orchestrator-listener; }

step_verify_listener_units() {
    local out
    if ! listener_installed; then
        say "/usr/bin/orchestrator-listener is not in the package yet"
        return 77
    fi
    out=$(ct systemd-analyze verify --man=no orchestrator-listener.service orchestrator-listener.socket 2>&1) || {
        say "$out"; fail "systemd-analyze verify found problems"; return 1; }
    say "systemd-analyze verify orchestrator-listener.{service,socket}: clean${out:+ ($out)}"
    [[ -z $out ]] || fail "verify printed warnings"
}

step_security_scores() {
    local out
    out=$(ct systemd-analyze security --no-pager "$UNIT" 2>&1)
    check_exposure "$UNIT (in the container)" "$out" "$MAX_WORKER_EXPOSURE"
    out=$(ct systemd-analyze security --no-pager orchestrator-listener.service 2>&1)
    check_exposure "orchestrator-listener.service (in the container)" "$out" "$MAX_LISTENER_EXPOSURE"
}

# The pages the package installs, as `man` finds and renders them (man-db and groff, in the
# container; mandoc lints the sources on the host in .ci/run).
MAN_PAGES=("8 worker-watcher" "5 worker-watcher.env" "5 worker-watcher-tasks" "1 watcherctl"
    "8 orchestrator-listener")

step_man_pages() {
    local ok=0 entry section name path warnings
    for entry in "${MAN_PAGES[@]}"; do
        read -r section name <<<"$entry"
        path=$(ct man -w "$section" "$name" 2>&1) || { fail "man -w $section $name: $path"; ok=1; continue; }
        say "man -w $section $name: $path"
        [[ $path == /usr/share/man/man$section/$name.$section.gz ]] || { fail "not the packaged, gzipped page"; ok=1; }
        # groff's own warnings (mandoc -T lint is the first linter; this is the renderer).
        warnings=$(ct sh -c 'man --warnings -E UTF-8 "$1" "$2" 2>&1 >/dev/null' sh "$section" "$name")
        [[ -z $warnings ]] || { say "$warnings"; fail "groff warns about $name($section)"; ok=1; }
    done
    ct sh -c 'MANWIDTH=80 man 5 worker-watcher.env 2>/dev/null' | grep -c 'MAX_CONCURRENT_TASKS' >/dev/null ||
        { fail "man 5 worker-watcher.env does not render its variables"; ok=1; }
    say "man 5 worker-watcher.env: $(ct sh -c 'MANWIDTH=80 man 5 worker-watcher.env 2>/dev/null' | grep -c . || true) lines"
    return "$ok"
}

step_standin_agent() {
    local out
    install -m 755 "$HERE/claude-standin" "$(ct_path /usr/local/bin/claude)"
    out=$(echo "say hello" | ct runuser -u worker-watcher -- claude -p --output-format json)
    say "claude (stand-in) as worker-watcher: $out"
    jq -e '.type == "result" and .is_error == false' <<<"$out" >/dev/null || fail "not a Claude-style result"
}

# --- the worker under systemd -----------------------------------------------------------

is_active() { [[ $(ct systemctl is-active "$1") == active ]]; }

# start_unit UNIT: systemctl start with a deadline; prints the outcome.
start_unit() {
    local rc=0
    ct timeout 90 systemctl start "$1" || rc=$?
    say "systemctl start $1: exit $rc; $(unit_summary "$1")"
    return "$rc"
}

unit_summary() {
    ct systemctl show -p ActiveState -p SubState -p Result -p MainPID -p ExecMainStatus \
        -p NRestarts "$1" | tr '\n' ' '
}

show_journal_tail() {
    say "journal of $1 (last ${2:-10} lines):"
    ct journalctl -u "$1" --no-pager -o cat -n "${2:-10}" | sed 's/^/      /'
}

step_start() {
    local type
    start_unit "$UNIT" || { show_journal_tail "$UNIT"; fail "start failed"; return 1; }
    is_active "$UNIT" || { fail "$UNIT is not active"; return 1; }
    type=$(unit_prop "$UNIT" Type)
    say "Type=$type NotifyAccess=$(unit_prop "$UNIT" NotifyAccess) User=$(unit_prop "$UNIT" User)"
    [[ $type == notify ]] || fail "Type is $type, not notify"
    say "$SOCKET: $(ct systemctl is-active "$SOCKET")"
    is_active "$SOCKET" || fail "$SOCKET was not started with the service"
}

result_file() { ct_path "$ROOT/results/$WORKER/$1.json"; }

step_task_round_trip() {
    local status
    ct test -d "$ROOT/tasks/$WORKER" || { fail "queue folder $ROOT/tasks/$WORKER missing"; return 1; }
    queue_task "$TASK_ID" "Echo hello from the system suite"
    wait_until 30 "result $ROOT/results/$WORKER/$TASK_ID.json" test -s "$(result_file "$TASK_ID")" || return 1
    status=$(json_field "$(result_file "$TASK_ID")" status)
    say "result: status=$status attempts=$(json_field "$(result_file "$TASK_ID")" attempts)" \
        "output=$(jq -c '.output' "$(result_file "$TASK_ID")" 2>/dev/null | head -c 200)"
    [[ $status == completed ]] || fail "status is '$status', not completed"
}

step_journal() {
    local n own native
    n=$(ct journalctl -u "$UNIT" --no-pager -o cat | grep -c . || true)
    # Entries of the daemon itself, not systemd's "Starting…/Started…" about it.
    own=$(ct journalctl -u "$UNIT" --no-pager -o json |
        jq -r 'select(.SYSLOG_IDENTIFIER != "systemd" and ._PID != "1") | .MESSAGE' | grep -c . || true)
    # Sent with the native protocol (_TRANSPORT=journal), not lines of the stderr stream.
    native=$(ct journalctl -u "$UNIT" --no-pager -o json _TRANSPORT=journal SYSLOG_IDENTIFIER=worker-watcher |
        grep -c . || true)
    say "journalctl -u $UNIT: $n entries, $own from the daemon itself, $native of them native journal entries"
    show_journal_tail "$UNIT" 5
    ((own > 0)) || fail "the daemon logged nothing to the journal"
    ((native > 0)) || fail "no native journal entries: the daemon wrote to the stderr stream"
    ! ct journalctl -u "$UNIT" --no-pager -o cat _TRANSPORT=journal SYSLOG_IDENTIFIER=worker-watcher |
        grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' ||
        fail "a message starts with a timestamp"
}

# message_id NAME: the MESSAGE_ID of an event, from the one place that defines them.
message_id() {
    sed -n "s/^pub const $1: &str = \"\([0-9a-f]\{32\}\)\";$/\1/p" "$REPO/src/log/ids.rs"
}

# entries_of TASK_ID MESSAGE_ID: the task's journal entries with that MESSAGE_ID, as JSON.
entries_of() {
    ct journalctl -u "$UNIT" --no-pager -o json "TASK_ID=$1" "MESSAGE_ID=$2"
}

has_entry() { [[ -n $(entries_of "$1" "$2") ]]; }

# show_fields JSON: the fields an operator filters on, one entry a line.
show_fields() {
    jq -r '[.PRIORITY, .SYSLOG_IDENTIFIER, .WORKER, .TASK_ID, .ATTEMPT, .EXIT_CODE, .DURATION_MS,
            .REASON, .MESSAGE_ID] | @tsv' <<<"$1" |
        sed 's/^/      PRIORITY SYSLOG_IDENTIFIER WORKER TASK_ID ATTEMPT EXIT_CODE DURATION_MS REASON MESSAGE_ID: /'
}

step_journal_task_fields() {
    local id out all
    id=$(message_id TASK_COMPLETED)
    [[ -n $id ]] || { fail "no TASK_COMPLETED in src/log/ids.rs"; return 1; }
    # journald stores entries asynchronously: the result file can be there first.
    wait_until 15 "journalctl -u $UNIT TASK_ID=$TASK_ID MESSAGE_ID=$id (task completed)" \
        has_entry "$TASK_ID" "$id" || return 1
    all=$(ct journalctl -u "$UNIT" --no-pager -o cat "TASK_ID=$TASK_ID")
    say "journalctl -u $UNIT TASK_ID=$TASK_ID: $(grep -c . <<<"$all" || true) entries"
    head -n 5 <<<"$all" | sed 's/^/      MESSAGE: /'
    out=$(entries_of "$TASK_ID" "$id")
    show_fields "$out"
    jq -e --arg w "$WORKER" '.PRIORITY == "6" and .SYSLOG_IDENTIFIER == "worker-watcher" and .WORKER == $w
        and .ATTEMPT == "1" and .EXIT_CODE == "0" and (.DURATION_MS | test("^[0-9]+$"))' <<<"$out" >/dev/null ||
        fail "fields are not PRIORITY=6 SYSLOG_IDENTIFIER=worker-watcher WORKER=$WORKER ATTEMPT=1 EXIT_CODE=0 DURATION_MS=n"
}

step_journal_failed_task() {
    local id=sys-$$-fail mid out
    mid=$(message_id TASK_FAILED)
    # max_retries 0: the first failed attempt is the last; the stand-in exits 3.
    printf '{"task_id":"%s","description":"fail 3","max_retries":0}\n' "$id" |
        ct runuser -u worker-watcher -- sh -c "cat >'$ROOT/tasks/$WORKER/.$id.tmp' && mv '$ROOT/tasks/$WORKER/.$id.tmp' '$ROOT/tasks/$WORKER/$id.json'"
    say "queued $id: fail 3, max_retries 0"
    wait_until 30 "result $id" test -s "$(result_file "$id")" || return 1
    say "result: status=$(json_field "$(result_file "$id")" status) reason=$(json_field "$(result_file "$id")" reason)" \
        "dead letter: $(ct test -s "$ROOT/dlq/$WORKER/$id.json" && echo yes || echo no)"
    wait_until 15 "journalctl -u $UNIT TASK_ID=$id MESSAGE_ID=$mid (task failed)" has_entry "$id" "$mid" || return 1
    out=$(entries_of "$id" "$mid")
    say "MESSAGE: $(jq -r .MESSAGE <<<"$out")"
    show_fields "$out"
    jq -e '.PRIORITY == "3" and .REASON == "exit_code" and .EXIT_CODE == "3"' <<<"$out" >/dev/null ||
        fail "fields are not PRIORITY=3 REASON=exit_code EXIT_CODE=3"
    say "journalctl -u $UNIT -p err: $(ct journalctl -u "$UNIT" --no-pager -o cat -p err | grep -c "$id" || true) entries name $id"
}

# The journal catalog explains the daemon's MESSAGE_IDs: dpkg's trigger on
# /usr/lib/systemd/catalog (systemd's package) indexed it at install, and journalctl -x shows
# the explanation beside the entry, with the entry's fields filled in.
step_journal_catalog() {
    local id=sys-$$-fail mid listed out
    mid=$(message_id TASK_FAILED)
    listed=$(ct journalctl --list-catalog "$mid" 2>&1 || true)
    say "journalctl --list-catalog $mid (after dpkg -i): ${listed:-nothing}"
    [[ $listed == *"$mid"* ]] || fail "the catalog was not indexed by the package install"
    ct journalctl --update-catalog
    out=$(ct journalctl -x -u "$UNIT" --no-pager "TASK_ID=$id" "MESSAGE_ID=$mid" 2>&1)
    sed 's/^/      /' <<<"$out" | head -n 8
    grep -q "Subject: Task $id failed on worker $WORKER and was dead-lettered" <<<"$out" ||
        fail "journalctl -x does not show the catalog's subject with the task's fields"
    grep -q "Documentation: man:worker-watcher-tasks(5)" <<<"$out" ||
        fail "journalctl -x does not show the catalog's Documentation line"
    out=$(ct journalctl --list-catalog | grep -c 'worker-watcher' || true)
    say "journalctl --list-catalog: $out entries defined by worker-watcher"
}

step_status_text() {
    local text
    text=$(unit_prop "$UNIT" StatusText)
    say "StatusText: '$text'"
    [[ -n $text ]] || fail "the daemon sent no STATUS="
}

# Whether the installed daemon serves metrics at all: its binary names the metric
# watcher_tasks_processed_total (a literal however the exposition is built). Until the
# metrics endpoint lands, the step below is a SKIP, not a FAIL; from then on it must pass.
metrics_served() { ct grep -q -a tasks_processed /usr/bin/worker-watcher; }

step_worker_metrics() {
    local sock=/run/worker-watcher/$WORKER.metrics.sock out
    if ! metrics_served; then
        say "/usr/bin/worker-watcher has no metrics endpoint yet (no tasks_processed in the binary)"
        return 77
    fi
    ct test -S "$sock" || { fail "no socket at $sock"; return 1; }
    say "socket: $(ct stat -c '%A %U:%G %n' "$sock")"
    out=$(ct curl -sS --max-time 5 --unix-socket "$sock" http://localhost/metrics 2>&1) || {
        say "curl: $out"; fail "no answer on $sock"; return 1; }
    say "GET /metrics: $(wc -l <<<"$out" | tr -d ' ') lines; $(grep -m1 '^watcher_tasks_processed_total' <<<"$out" || true)"
    grep -q "^watcher_tasks_processed_total{.*worker=\"$WORKER\"" <<<"$out" ||
        fail "watcher_tasks_processed_total for $WORKER missing"
}

LISTENER=orchestrator-listener.service
LISTENER_SOCKET=orchestrator-listener.socket
# The container shares the host's network: the listener and Prometheus get ports of their own.
LISTENER_PORT=$((19000 + $$ % 1000))
PROMETHEUS_PORT=$((20000 + $$ % 1000))

scrape_listener() { ct curl -sS --max-time 10 "http://127.0.0.1:$LISTENER_PORT/metrics"; }

# Only the socket is started: the first connection starts the service (Type=notify, READY=1
# once its state is rebuilt), which then answers that very scrape.
step_listener_activation() {
    local dir=/run/systemd/system/$LISTENER_SOCKET.d out
    if ! listener_installed; then
        say "/usr/bin/orchestrator-listener is not in the package yet"
        return 77
    fi
    printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$LISTENER_PORT" | ct_write "$dir/50-system-test.conf"
    ct systemctl daemon-reload
    ct systemctl start "$LISTENER_SOCKET"
    say "$LISTENER_SOCKET: $(ct systemctl is-active "$LISTENER_SOCKET"), listening on $(unit_prop "$LISTENER_SOCKET" Listen)"
    say "before the first scrape: $LISTENER is $(ct systemctl is-active "$LISTENER" || true)"
    ! is_active "$LISTENER" || { fail "$LISTENER was running before any scrape"; return 1; }
    out=$(scrape_listener 2>&1) || {
        say "curl: $out"; show_journal_tail "$LISTENER"; fail "no answer on :$LISTENER_PORT"; return 1; }
    say "first GET :$LISTENER_PORT/metrics: $(wc -l <<<"$out" | tr -d ' ') lines"
    say "$LISTENER: $(unit_summary "$LISTENER") TriggeredBy=$(unit_prop "$LISTENER" TriggeredBy)"
    is_active "$LISTENER" || fail "the scrape did not start $LISTENER"
    [[ $(unit_prop "$LISTENER" Type) == notify ]] || fail "$LISTENER is not Type=notify"
    say "StatusText: '$(unit_prop "$LISTENER" StatusText)'"
}

step_listener_metrics() {
    local out checked
    listener_installed || { say "no listener in the package yet"; return 77; }
    out=$(scrape_listener 2>&1) || { say "curl: $out"; fail "no answer on :$LISTENER_PORT"; return 1; }
    say "GET :$LISTENER_PORT/metrics: $(wc -l <<<"$out" | tr -d ' ') lines;" \
        "$(grep -m1 "^watcher_tasks_processed_total{worker=\"$WORKER\",status=\"completed\"}" <<<"$out" || true)"
    grep -q "^watcher_tasks_processed_total{worker=\"$WORKER\",status=\"completed\"} [1-9]" <<<"$out" ||
        fail "no completed task counted for worker=\"$WORKER\""
    grep -q "^watcher_worker_up{worker=\"$WORKER\"} 1" <<<"$out" || fail "watcher_worker_up of $WORKER is not 1"
    if command -v promtool >/dev/null; then
        if ! checked=$(promtool check metrics <<<"$out" 2>&1) || [[ -n $checked ]]; then
            say "$checked"; fail "promtool check metrics complains"
        fi
        say "promtool check metrics (host): clean"
    fi
}

events_dir() { ct_path "$ROOT/triggers/orchestrator"; }

event_for() { grep -l "\"task_id\": \"$1\"" "$(events_dir)"/*.json 2>/dev/null | head -n 1; }

# The task of the round trip finished before the listener's first start: younger than
# LISTENER_BACKFILL, it is announced; the journal has the listener's own native entries.
step_listener_events() {
    local file native
    listener_installed || { say "no listener in the package yet"; return 77; }
    wait_until 30 "an event for $TASK_ID in $ROOT/triggers/orchestrator/" event_for "$TASK_ID" || return 1
    file=$(event_for "$TASK_ID")
    say "$(basename "$file"): $(jq -c '{event, worker, task_id, status, duration_seconds}' "$file")"
    [[ $(json_field "$file" event) == task_completed ]] || fail "the event is not task_completed"
    say "state: $(ct stat -c '%a %U:%G %s bytes' "$ROOT/listener/state.json")"
    native=$(ct journalctl -u "$LISTENER" --no-pager -o json _TRANSPORT=journal SYSLOG_IDENTIFIER=orchestrator-listener |
        grep -c . || true)
    say "journalctl -u $LISTENER: $native native entries; $(ct journalctl -u "$LISTENER" --no-pager -o cat \
        SYSLOG_IDENTIFIER=orchestrator-listener | grep -m1 '^ready' || true)"
    ((native > 0)) || fail "the listener sent no native journal entries"
}

# A real Prometheus (Debian's package, run on the host: the container shares its network)
# scrapes the listener, answers a query for watcher_tasks_processed_total, and evaluates the
# alert rules the package installed.
RULES_FILE=/usr/share/worker-watcher/prometheus/worker-watcher.rules.yml
step_prometheus() {
    local dir pid rc=0 q answer
    listener_installed || { say "no listener in the package yet"; return 77; }
    if ! command -v prometheus >/dev/null; then
        say "no prometheus on the host (apt-get install prometheus; .ci/run does)"
        return 77
    fi
    dir=$(mktemp -d /var/tmp/worker-watcher-prometheus.XXXXXX)
    ct cat "$RULES_FILE" >"$dir/rules.yml" || fail "the package did not install $RULES_FILE"
    printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\x27%s\x27]\nscrape_configs:\n  - job_name: worker-watcher\n    static_configs:\n      - targets: [\x27127.0.0.1:%s\x27]\n' \
        "$dir/rules.yml" "$LISTENER_PORT" >"$dir/prometheus.yml"
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn >"$dir/log" 2>&1 &
    pid=$!
    say "prometheus $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f3) on 127.0.0.1:$PROMETHEUS_PORT (pid $pid), scraping 127.0.0.1:$LISTENER_PORT every second"
    q="watcher_tasks_processed_total{worker=\"$WORKER\",status=\"completed\"}"
    prom_value() {
        curl -sf --max-time 5 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$q" |
            jq -e -r '.data.result[0].value[1] | select(tonumber >= 1)'
    }
    wait_until 60 "Prometheus answers $q >= 1" prom_value || rc=1
    answer=$(prom_value 2>/dev/null || true)
    say "query $q: ${answer:-no answer}"
    say "up{job=\"worker-watcher\"}: $(curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
        --data-urlencode 'query=up{job="worker-watcher"}' | jq -r '.data.result[0].value[1]' 2>/dev/null || echo '?')"
    rules_ok() {
        curl -sf --max-time 5 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/rules" |
            jq -e '[.data.groups[].rules[]] | length > 0 and all(.health == "ok")' >/dev/null
    }
    wait_until 60 "Prometheus evaluates the packaged alert rules" rules_ok || rc=1
    say "rules: $(curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/rules" |
        jq -r '[.data.groups[].rules[] | "\(.name)=\(.health)"] | join(" ")' 2>/dev/null || echo '?')"
    ((rc == 0)) || { tail -n 5 "$dir/log" | sed 's/^/      prometheus: /'; fail "no answer from Prometheus"; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return "$rc"
}

restarted_since() { # OLD_PID OLD_NRESTARTS
    local pid n
    pid=$(unit_prop "$UNIT" MainPID)
    n=$(unit_prop "$UNIT" NRestarts)
    [[ $pid != 0 && $pid != "$1" ]] && ((n > $2)) && is_active "$UNIT"
}

step_watchdog() {
    local pid restarts
    printf '[Service]\nWatchdogSec=3\nTimeoutAbortSec=2\nRestartSec=1\n' |
        ct_write "$DROPIN_DIR/50-system-test-watchdog.conf"
    ct systemctl daemon-reload
    ct systemctl reset-failed "$UNIT" || true
    ct timeout 90 systemctl restart "$UNIT" || { fail "restart with WatchdogSec=3 failed"; return 1; }
    pid=$(unit_prop "$UNIT" MainPID)
    restarts=$(unit_prop "$UNIT" NRestarts)
    say "WatchdogUSec=$(unit_prop "$UNIT" WatchdogUSec) MainPID=$pid NRestarts=$restarts"
    # A loop that turns keeps pinging: the unit must survive a few watchdog periods first.
    stays_true 7 "$UNIT stays active with MainPID $pid" \
        eval "[[ \$(unit_prop $UNIT MainPID) == $pid ]] && is_active $UNIT" || return 1
    ct sh -c 'kill -STOP "$1"' sh "$pid"
    say "sent SIGSTOP to MainPID $pid"
    wait_until 30 "systemd killed and restarted it (new MainPID, NRestarts > $restarts)" \
        restarted_since "$pid" "$restarts" || { show_journal_tail "$UNIT"; return 1; }
    say "now: $(unit_summary "$UNIT")"
    ct journalctl -u "$UNIT" --no-pager -o cat | grep -m1 -i 'watchdog timeout' | sed 's/^/      journal: /' ||
        fail "no 'Watchdog timeout' in the journal"
}

step_watchdog_cleanup() {
    ct rm -f "$DROPIN_DIR/50-system-test-watchdog.conf"
    ct systemctl daemon-reload
    ct systemctl reset-failed "$UNIT" || true
    ct timeout 90 systemctl restart "$UNIT" || { fail "restart without the drop-in failed"; return 1; }
    say "WatchdogUSec back to $(unit_prop "$UNIT" WatchdogUSec); $(unit_summary "$UNIT")"
}

heartbeat_says() { # FIELD VALUE
    [[ $(json_field "$(ct_path "$HEARTBEAT")" "$1") == "$2" ]]
}

step_reload() {
    local pid before
    is_active "$UNIT" || { fail "$UNIT is not running"; return 1; }
    wait_until 30 "heartbeat $HEARTBEAT" test -s "$(ct_path "$HEARTBEAT")" || return 1
    before=$(json_field "$(ct_path "$HEARTBEAT")" max_concurrent)
    pid=$(unit_prop "$UNIT" MainPID)
    say "before: max_concurrent=$before MainPID=$pid"
    printf '# written by the system suite\nMAX_CONCURRENT_TASKS=5\n' | ct_write "$WORKER_ENV"
    ct chgrp worker-watcher "$WORKER_ENV" && ct chmod 0640 "$WORKER_ENV"
    ct timeout 60 systemctl reload "$UNIT" || { fail "systemctl reload failed"; return 1; }
    say "systemctl reload: ok; $(unit_summary "$UNIT")"
    [[ $(unit_prop "$UNIT" MainPID) == "$pid" ]] || fail "reload changed the MainPID (a restart, not a reload)"
    wait_until 30 "heartbeat max_concurrent=5" heartbeat_says max_concurrent 5 || {
        say "heartbeat: $(head -c 400 "$(ct_path "$HEARTBEAT")")"; return 1; }
}

# queue_task ID DESCRIPTION: as a producer does it: a temp name, then a rename into the queue.
queue_task() {
    local tmp=$ROOT/tasks/$WORKER/.$1.json.tmp
    printf '{"task_id":"%s","description":"%s"}\n' "$1" "$2" |
        ct runuser -u worker-watcher -- sh -c "cat >'$tmp' && mv '$tmp' '$ROOT/tasks/$WORKER/$1.json'"
    say "queued $ROOT/tasks/$WORKER/$1.json: $2"
}

step_stop() {
    local rc=0 slow=sys-$$-slow started
    ct rm -f "$WORKER_ENV"
    is_active "$UNIT" || { fail "$UNIT is not running"; return 1; }
    # A task still running when the stop comes must be allowed to finish (SHUTDOWN_GRACE).
    queue_task "$slow" "sleep 4"
    wait_until 15 "the daemon claimed $slow" eval "! test -e '$(ct_path "$ROOT/tasks/$WORKER/$slow.json")'" || true
    started=$SECONDS
    ct timeout 120 systemctl stop "$UNIT" 2>&1 | sed 's/^/      systemctl: /' || rc=$?
    say "systemctl stop: exit $rc after $((SECONDS - started))s; $(unit_summary "$UNIT")"
    say "$SOCKET: $(ct systemctl is-active "$SOCKET" || true) (stopped with the service: PartOf=)"
    say "heartbeat status: $(json_field "$(ct_path "$HEARTBEAT")" status)"
    say "result of $slow: $(json_field "$(result_file "$slow")" status)"
    ((rc == 0)) || fail "stop failed"
    [[ $(unit_prop "$UNIT" Result) == success ]] || fail "Result is not success"
    [[ $(unit_prop "$UNIT" ExecMainStatus) == 0 ]] || fail "exit status is not 0"
    heartbeat_says status stopped || fail "heartbeat status is not 'stopped'"
    [[ $(json_field "$(result_file "$slow")" status) == completed ]] ||
        fail "the task running at the stop was not drained to a completed result"
    ! is_active "$SOCKET" || fail "$SOCKET still listening: a scrape would start the worker again"
}

step_escaped_name() {
    local unit rc=0
    unit=$(ct systemd-escape --template worker-watcher@.service my-worker)
    say "systemd-escape --template worker-watcher@.service my-worker: $unit"
    start_unit "$unit" || { show_journal_tail "$unit"; rc=1; }
    if ((rc == 0)); then
        wait_until 30 "heartbeat $ROOT/heartbeats/my-worker.json" \
            test -s "$(ct_path "$ROOT/heartbeats/my-worker.json")" || rc=1
        say "metrics socket: $(ct ls /run/worker-watcher/ | tr '\n' ' ')"
        ct test -S /run/worker-watcher/my-worker.metrics.sock || { fail "no my-worker.metrics.sock"; rc=1; }
    fi
    ct systemctl stop "$unit" "${unit%.service}.socket" || true
    ct systemctl reset-failed "$unit" 2>/dev/null || true
    return "$rc"
}

failed_without_restart() {
    [[ $(unit_prop "$UNIT" ActiveState) == failed && $(unit_prop "$UNIT" NRestarts) == 0 ]]
}

step_bad_config() {
    local rc=0 status out
    printf '# written by the system suite\nMAX_RETRIES=abc\n' | ct_write "$WORKER_ENV"
    ct systemctl reset-failed "$UNIT" 2>/dev/null || true
    start_unit "$UNIT" && rc=0 || rc=$?
    ((rc != 0)) || { fail "systemctl start succeeded with MAX_RETRIES=abc"; return 1; }
    status=$(unit_prop "$UNIT" ExecMainStatus)
    say "ExecMainStatus=$status ActiveState=$(unit_prop "$UNIT" ActiveState)"
    show_journal_tail "$UNIT" 3
    [[ $status == 78 ]] || { fail "exit status $status, not 78"; rc=0; status=bad; }
    # RestartSec=5: a restart loop would show within 8 s.
    stays_true 8 "$UNIT stays failed with NRestarts=0" failed_without_restart || return 1
    # The daemon's one line, at PRIORITY=3 (its <3> prefix on the journal stream).
    out=$(ct journalctl -u "$UNIT" --no-pager -o cat -p err _TRANSPORT=stdout | grep MAX_RETRIES || true)
    say "journalctl -u $UNIT -p err: ${out:-nothing names MAX_RETRIES}"
    [[ -n $out ]] || fail "no error-priority journal line names MAX_RETRIES"
    ct rm -f "$WORKER_ENV"
    ct systemctl reset-failed "$UNIT" || true
    [[ $status == 78 ]]
}

# dpkg -i of the package over itself while a worker runs a task, as an upgrade does: the
# operator's env file is kept (conffile), and postinst restarts the running worker on the
# new binary (Debian's restart-after-upgrade) after it drained the running task.
step_upgrade_while_running() {
    local name out pid slow=sys-$$-upgrade started
    name=$(basename "$DEB")
    ct systemctl reset-failed "$UNIT" 2>/dev/null || true
    start_unit "$UNIT" >/dev/null || { show_journal_tail "$UNIT"; fail "$UNIT does not start"; return 1; }
    pid=$(unit_prop "$UNIT" MainPID)
    printf '# changed by the operator\nLOG_LEVEL=DEBUG\n' | ct sh -c 'cat >>/etc/worker-watcher/watcher.env'
    queue_task "$slow" "sleep 3"
    wait_until 15 "the daemon claimed $slow" eval "! test -e '$(ct_path "$ROOT/tasks/$WORKER/$slow.json")'" || return 1
    started=$SECONDS
    out=$(ct timeout 120 dpkg -i "/root/$name" 2>&1) || { say "$out"; fail "dpkg -i over the installed package failed"; return 1; }
    say "dpkg -i over itself: $((SECONDS - started))s, $(tail -n 1 <<<"$out")"
    say "before: MainPID=$pid; after: $(unit_summary "$UNIT")"
    say "watcher.env: $(ct stat -c '%a %U:%G' /etc/worker-watcher/watcher.env), last line: $(ct tail -n 1 /etc/worker-watcher/watcher.env)"
    say "result of $slow (running during the upgrade): $(json_field "$(result_file "$slow")" status)"
    [[ $(ct tail -n 1 /etc/worker-watcher/watcher.env) == LOG_LEVEL=DEBUG ]] || fail "the operator's change was lost"
    [[ $(ct stat -c '%a %U:%G' /etc/worker-watcher/watcher.env) == "640 root:worker-watcher" ]] ||
        fail "the env file lost its mode or group"
    is_active "$UNIT" || fail "$UNIT is not running after the upgrade"
    [[ $(unit_prop "$UNIT" MainPID) != "$pid" ]] || fail "$UNIT was not restarted (same MainPID $pid)"
    [[ $(json_field "$(result_file "$slow")" status) == completed ]] ||
        fail "the task running during the upgrade was not drained to a completed result"
    wait_until 15 "the heartbeat names the new process" \
        eval "[[ \$(json_field '$(ct_path "$HEARTBEAT")' pid) == \$(unit_prop $UNIT MainPID) ]]"
}

any_worker_active() { ct systemctl list-units --state=active --no-legend 'worker-watcher@*' | grep -c . >/dev/null; }

step_remove_purge() {
    local out
    start_unit "$UNIT" >/dev/null 2>&1 || true
    say "before dpkg -r: $UNIT is $(ct systemctl is-active "$UNIT" || true)"
    out=$(ct dpkg -r worker-watcher 2>&1) || { say "$out"; fail "dpkg -r failed"; return 1; }
    say "dpkg -r: $(tail -n 1 <<<"$out")"
    if any_worker_active; then fail "a worker is still running after dpkg -r"; fi
    say "after dpkg -r: $UNIT is $(ct systemctl is-active "$UNIT" || true)," \
        "heartbeat status: $(json_field "$(ct_path "$HEARTBEAT")" status)"
    heartbeat_says status stopped || fail "the worker was not stopped cleanly (heartbeat not 'stopped')"
    out=$(ct dpkg --purge worker-watcher 2>&1) || { say "$out"; fail "dpkg --purge failed"; return 1; }
    say "dpkg --purge: $(tail -n 1 <<<"$out")"
    say "after purge: /etc/worker-watcher $(ct test -e /etc/worker-watcher/watcher.env && echo still has watcher.env || echo has no watcher.env);" \
        "statoverride: $(ct dpkg-statoverride --list /etc/worker-watcher/watcher.env || echo none);" \
        "spool kept: $(ct test -d "$ROOT" && echo yes || echo no)"
    ! ct test -e /etc/worker-watcher/watcher.env || fail "purge left the conffile"
    ! ct dpkg-statoverride --list /etc/worker-watcher/watcher.env >/dev/null || fail "purge left the statoverride"
    ct test -d "$ROOT" || fail "purge removed the operator's spool"
    ct test -s "$ROOT/results/$WORKER/$TASK_ID.json" || fail "purge removed the results"
    ! ct man -w worker-watcher >/dev/null 2>&1 || fail "man -w still finds worker-watcher(8)"
    ! ct man -w 1 watcherctl >/dev/null 2>&1 || fail "man -w still finds watcherctl(1)"
}

# --- main -----------------------------------------------------------------------------

main() {
    local rootfs
    [[ $EUID == 0 ]] || { echo "suite.sh: needs root (systemd-nspawn)" >&2; exit 2; }
    [[ -f $DEB ]] || { echo "suite.sh: no such .deb: $DEB" >&2; exit 2; }
    trap ct_cleanup EXIT
    trap 'exit 130' INT TERM

    step "unit sources: offline security exposure (host)" step_offline_security

    printf '=== %s\n' "boot a fresh Debian 12 container"
    rootfs=$("$HERE/rootfs.sh")
    if ct_boot "$rootfs"; then
        record "boot a fresh Debian 12 container" 0
    else
        record "boot a fresh Debian 12 container" 1
        summary
        exit 1
    fi

    step "package: dpkg -i on plain Debian 12" step_dpkg_install
    step "package: user, folders, conffile, nothing enabled" step_package_layout
    step "units: systemd-analyze verify (worker)" step_verify_worker_units
    step "units: systemd-analyze verify (listener)" step_verify_listener_units
    step "units: systemd-analyze security exposure" step_security_scores
    step "man pages: man -w finds them, groff renders them cleanly" step_man_pages
    step "stand-in claude on the PATH" step_standin_agent
    step "systemctl start $UNIT: active, Type=notify" step_start
    step "a queued task gets a completed result" step_task_round_trip
    step "journalctl -u $UNIT shows entries" step_journal
    step "journalctl -u $UNIT TASK_ID=... finds the task, with its MESSAGE_ID" step_journal_task_fields
    step "a failing task: its journal entry says why, at PRIORITY=3" step_journal_failed_task
    step "journalctl -x explains the entry from the package's catalog" step_journal_catalog
    step "systemctl show -p StatusText tells the state" step_status_text
    step "metrics on the socket-activated unix socket" step_worker_metrics
    step "listener socket-activated by the first scrape" step_listener_activation
    step "listener socket answers /metrics" step_listener_metrics
    step "listener: the round trip's task announced in triggers/orchestrator/, journal entries" step_listener_events
    step "a real Prometheus scrapes the listener and answers watcher_tasks_processed_total" step_prometheus
    step "watchdog: SIGSTOP'd daemon is killed and restarted" step_watchdog
    step "watchdog drop-in removed, worker restarted" step_watchdog_cleanup
    step "systemctl reload applies a changed env file" step_reload
    step "systemctl stop drains; heartbeat 'stopped'" step_stop
    step "escaped worker name (my\\x2dworker)" step_escaped_name
    step "env files: systemd's EnvironmentFile= reads the table of tests/fixtures/env-file as our parser does" step_env_table
    step "env files: a secret with \$, backticks, backslashes reaches the agent byte for byte" step_secret_to_agent
    step "Delegate=yes: each run in a cgroup of its own, escaped processes killed with it (end, time-out, stop)" step_cgroup_escape
    step "bad env value: failed, exit 78, no restart loop" step_bad_config
    step "package: upgrade over itself while a worker runs: env file kept, worker restarted" step_upgrade_while_running
    step "package: dpkg -r stops the workers, --purge keeps the spool" step_remove_purge

    summary
    ((FAILED == 0))
}

main "$@"
