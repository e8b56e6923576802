#!/bin/bash
# The container deployment (Containerfile, compose.yaml) under podman and podman-compose, as
# Debian 12 ships them:
#
#   tests/containers/run.sh     # as root; `flock /tmp/ww-system.lock tests/containers/run.sh`
#                               # beside other suites
#
# 1. The image: the Containerfile's `prebuilt` stage, FROM a local image imported once from
#    the system suite's debootstrapped Debian 12 root (tests/system/rootfs.sh) and cached in
#    podman's storage under a tag named after that root, with the binaries of
#    `cargo build --release`. No registry is needed: the default stage (a Rust image, then
#    debian:bookworm-slim) is for those who can pull them.
# 2. compose.yaml under podman-compose: marie, anga, fabien, the listener, and a Prometheus
#    (a local image of Debian's prometheus binary, PROMETHEUS_IMAGE). Grafana is left out: no
#    Grafana image or package can be had here (docs/monitoring.md).
# 3. A task submitted from the host (`podman exec … watcherctl submit --wait`) completes in
#    the worker's container, its result read on the host from the spool volume's mountpoint; the listener announces it; the image's HEALTHCHECK
#    says healthy; `podman logs` shows JSON lines; Prometheus scrapes the listener and
#    evaluates the shipped rules; a stop drains the worker.
#
# Podman on these machines runs containers only with the runc runtime and explicit ulimits
# at or below the host's hard limits (nofile and nproc here: 20000 and about 96000; podman's
# default nofile of 1048576 fails with "error setting rlimit type 7: operation not
# permitted"). This script gives podman its own containers.conf (CONTAINERS_CONF) with
# runtime = "runc" and default_ulimits of 16384, for `podman build` as for the containers;
# compose.yaml itself carries no host-specific limits.
#
# SKIP (exit 0) only when podman itself cannot run a container here.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROJECT=ww-ci-$$
IMAGE=localhost/worker-watcher:ci
PROM_IMAGE=localhost/worker-watcher-ci/prometheus:latest
WORK=$(mktemp -d /var/tmp/worker-watcher-containers.XXXXXX)
FAILED=0
STARTED=

say() { echo "    $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
step() {
    local t0=$SECONDS
    echo "--- $1"
    shift
    "$@" || FAILED=1
    say "($((SECONDS - t0)) s)"
}

# compose ARGS: podman-compose on this project, with the images and ports of this run.
compose() {
    (cd "$REPO" && podman-compose -p "$PROJECT" -f compose.yaml "$@")
}

cleanup() {
    if [[ -n $STARTED ]]; then
        compose logs >"$WORK/compose.log" 2>&1 || true
        compose down -v >/dev/null 2>&1 || true
        podman volume rm -f "${PROJECT}_spool" "${PROJECT}_prometheus-data" >/dev/null 2>&1 || true
        podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

need_tools() {
    local missing=() p policy=/usr/sbin/policy-rc.d own_policy=
    # catatonit: podman's init for `init: true`; the dnsname CNI plugin: containers find each
    # other by service name (podman recommends it; without it Prometheus cannot resolve
    # `listener`); curl, jq: the Prometheus API.
    for p in podman runc podman-compose catatonit golang-github-containernetworking-plugin-dnsname curl jq; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "containers: installing ${missing[*]}"
    # No service starts at install (podman's socket and service, say).
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { [[ -z $own_policy ]] || rm -f "$policy"; return 1; }
    [[ -z $own_policy ]] || rm -f "$policy"
}

podman_conf() {
    cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
CONF
    export CONTAINERS_CONF=$WORK/containers.conf
}

# The Debian 12 base image, imported once per root (the tag names the root and its build).
base_image() {
    local root stamp tag
    root=$("$REPO/tests/system/rootfs.sh")
    stamp=$(sha256sum <"$root/.worker-watcher-ci-complete" | cut -c1-8)
    tag=localhost/worker-watcher-ci/debian:$(basename "$root")-$stamp
    if ! podman image exists "$tag"; then
        echo "containers: podman import $root as $tag (once; cached in podman's storage)" >&2
        tar -C "$root" --exclude=./proc --exclude=./sys --exclude=./dev -c . |
            podman import --quiet - "$tag" >/dev/null
    fi
    echo "$tag"
}

step_podman_runs() {
    local out
    if ! out=$(podman run --rm "$BASE" true 2>&1); then
        echo "SKIP containers: podman cannot run a container here: $out"
        exit 0
    fi
    say "podman $(podman version --format '{{.Client.Version}}'), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'), podman-compose $(podman-compose version 2>/dev/null | sed -n 's/^podman-composer* version *//p' | head -n 1)"
}

# The image from the Containerfile's `prebuilt` stage, in a context of what it copies.
step_build_image() {
    local ctx=$WORK/context
    (cd "$REPO" && cargo build --release --locked --quiet)
    mkdir -p "$ctx/target/release" "$ctx/tests/stand-in"
    cp "$REPO/Containerfile" "$ctx/"
    cp -r "$REPO/man" "$ctx/"
    cp "$REPO/tests/stand-in/claude" "$ctx/tests/stand-in/"
    cp "$REPO"/target/release/{worker-watcher,watcherctl,orchestrator-listener} "$ctx/target/release/"
    podman build --quiet --format docker --target prebuilt --build-arg "RUNTIME_IMAGE=$BASE" \
        -t "$IMAGE" "$ctx" >/dev/null || { fail "podman build"; return 1; }
    say "built $IMAGE: $(podman image inspect "$IMAGE" --format '{{.Size}}') bytes, user $(podman image inspect "$IMAGE" --format '{{.Config.User}}')"
    podman image inspect "$IMAGE" --format '{{json .Config.Healthcheck}}' | grep -q 'watcherctl status --check' ||
        fail "the image has no HEALTHCHECK via watcherctl"
}

# Prometheus for compose.yaml, from Debian's binary on the host.
step_prometheus_image() {
    local ctx=$WORK/prometheus
    mkdir -p "$ctx"
    cp /usr/bin/prometheus "$ctx/"
    printf 'FROM %s\nCOPY prometheus /bin/prometheus\nRUN install -d -o nobody -g nogroup /prometheus /etc/prometheus\nUSER nobody\nENTRYPOINT ["/bin/prometheus"]\n' \
        "$BASE" >"$ctx/Containerfile"
    podman build --quiet -t "$PROM_IMAGE" "$ctx" >/dev/null || { fail "podman build prometheus"; return 1; }
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_until() { # SECONDS WHAT COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { fail "timed out waiting for $what"; return 1; }
        sleep 0.5
    done
}

container() { podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n1; }

step_compose_up() {
    export WORKER_WATCHER_IMAGE=$IMAGE PROMETHEUS_IMAGE=$PROM_IMAGE
    PROMETHEUS_PORT=$(free_port)
    export PROMETHEUS_PORT
    STARTED=1
    compose up -d marie anga fabien listener prometheus >"$WORK/up.log" 2>&1 ||
        { sed 's/^/      /' "$WORK/up.log" | tail -n 20; fail "podman-compose up"; return 1; }
    SPOOL=$(podman volume inspect "${PROJECT}_spool" --format '{{.Mountpoint}}')
    say "spool volume ${PROJECT}_spool at $SPOOL"
    for w in marie anga fabien; do
        wait_until 60 "the heartbeat of $w" test -s "$SPOOL/heartbeats/$w.json" || return 1
    done
    say "containers: $(podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}' | tr '\n' ' ')"
}

step_healthcheck() {
    local c
    # Polled, as the start period allows: the listener may still be opening its endpoint.
    for w in marie listener; do
        c=$(container "$w")
        wait_until 30 "$c to pass its health check" podman healthcheck run "$c" || return 1
        say "$c: healthy"
    done
}

step_task_from_the_host() {
    local out c host
    c=$(container marie)
    # podman exec runs as the image's user, the spool's owner (a file root wrote in the volume
    # from the host would be unreadable to the worker). The result is read on the host.
    podman exec "$c" watcherctl submit marie --id from-host-1 --wait --wait-timeout 60 \
        "Echo 'Hello from the host'" >/dev/null || { fail "watcherctl submit --wait: status $?"; return 1; }
    out=$(cat "$SPOOL/results/marie/from-host-1.json")
    host=$(podman inspect "$c" --format '{{.Config.Hostname}}')
    say "result: $(jq -c '{task_id, status, worker, hostname, attempts}' <<<"$out")"
    jq -e '.status == "completed" and .worker == "marie"' <<<"$out" >/dev/null || fail "the task did not complete"
    [[ $(jq -r .hostname <<<"$out") == "$host" ]] || fail "the result's hostname is not the container's ($host)"
}

announced() {
    grep -l '"from-host-1"' "$SPOOL"/triggers/orchestrator/*.json 2>/dev/null |
        xargs -r jq -e 'select(.event == "task_completed" and .task_id == "from-host-1")' >/dev/null
}

step_listener_announces() {
    wait_until 60 "the listener's task_completed event" announced || return 1
    say "event: $(grep -l '"from-host-1"' "$SPOOL"/triggers/orchestrator/*.json | head -n1 | xargs jq -c '{event, worker, task_id}')"
}

step_structured_logs() {
    local line
    line=$(podman logs "$(container marie)" 2>&1 | grep '"task_id":"from-host-1"' | tail -n1)
    say "podman logs marie: $line"
    jq -e '.level and .message' <<<"$line" >/dev/null || fail "no JSON log line for the task in podman logs"
    # Read whole first: `podman logs | grep -m1` would end podman logs with SIGPIPE.
    line=$(podman logs "$(container listener)" 2>&1)
    grep '"message":"ready"' <<<"$line" | jq -e . >/dev/null || fail "no JSON ready line in the listener's podman logs"
}

prom() { curl -sf --max-time 5 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/$1" "${@:2}"; }

scraped() {
    prom query --data-urlencode 'query=watcher_tasks_processed_total{worker="marie",status="completed"}' |
        jq -e '.data.result[0].value[1] | tonumber >= 1'
}

rules_ok() { prom rules | jq -e '[.data.groups[].rules[]] | length > 0 and all(.health == "ok")'; }

step_prometheus_scrapes() {
    wait_until 90 "Prometheus to scrape the listener's count of the task" scraped || return 1
    wait_until 60 "Prometheus to evaluate the shipped rules" rules_ok || return 1
    say "Prometheus: $(prom query --data-urlencode 'query=up' | jq -r '[.data.result[] | "\(.labels.job // .metric.job)=\(.value[1])"] | join(" ")'); rules: $(prom rules | jq '[.data.groups[].rules[]] | length') ok"
}

stopped() { jq -e '.status == "stopped"' "$SPOOL/heartbeats/fabien.json"; }

step_stop_drains() {
    compose stop fabien >/dev/null 2>&1 || { fail "podman-compose stop fabien"; return 1; }
    wait_until 30 "fabien's heartbeat to say stopped" stopped || return 1
    say "fabien: exit status $(podman inspect "$(container fabien)" --format '{{.State.ExitCode}}'), heartbeat stopped"
    [[ $(podman inspect "$(container fabien)" --format '{{.State.ExitCode}}') == 0 ]] || fail "fabien did not exit 0 on SIGTERM"
}

main() {
    [[ $(id -u) == 0 ]] || { echo "SKIP containers: needs root (podman's storage, the spool volume)"; exit 0; }
    need_tools
    podman_conf
    BASE=$(base_image)
    step "podman runs a container (runc, explicit ulimits)" step_podman_runs
    step "the image: Containerfile, stage prebuilt, FROM $BASE" step_build_image
    ((FAILED == 0)) || exit 1
    step "a Prometheus image from Debian's binary" step_prometheus_image
    step "podman-compose up marie anga fabien listener prometheus" step_compose_up
    ((FAILED == 0)) || exit 1
    step "HEALTHCHECK via watcherctl says healthy" step_healthcheck
    step "a task submitted from the host completes in marie's container" step_task_from_the_host
    step "the listener announces it" step_listener_announces
    step "podman logs shows JSON lines" step_structured_logs
    step "Prometheus scrapes the listener and evaluates the rules" step_prometheus_scrapes
    step "podman-compose stop drains a worker" step_stop_drains
    if ((FAILED)); then
        echo "containers: FAILED"
        exit 1
    fi
    echo "containers: all steps passed"
}

main "$@"
