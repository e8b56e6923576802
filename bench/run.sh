#!/usr/bin/env bash
# bench/run.sh [--quick] [--only KEYS] [--phases LIST]
#
# The one entry point of the benchmarks (see BENCHMARKS.md). It installs what it
# needs (Debian packages, pueue through cargo, a venv for the Python reference),
# compiles the agents and ceilings, builds worker-watcher unless WW_BIN names a
# binary, then runs the harness, which writes bench/results/results-*.{md,json}.
#
# Environment: WW_BIN (binary to measure), WW_SRC (checkout to build when WW_BIN
# is unset; default /work/main if present, else this repository), BENCH_WORKDIR
# (scratch folder, default /var/tmp/ww-bench), BENCH_LOG_LEVEL (default WARNING).
# --quick takes about five minutes; the full run about an hour.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BUILD=$BENCH_DIR/.build
VENV=$BENCH_DIR/.venv
PY=/usr/bin/python3

say() { printf '==> %s\n' "$*" >&2; }

install_packages() {
    local missing=()
    command -v inotifywait >/dev/null || missing+=(inotify-tools)
    command -v tsp >/dev/null || command -v ts >/dev/null || missing+=(task-spooler)
    dpkg -s python3-venv >/dev/null 2>&1 || missing+=(python3-venv)
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v perf >/dev/null; then # counts idle wake-ups; optional
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null ||
            say "linux-perf could not be installed; idle wake-ups from context switches only"
    fi
    if ! command -v pueue >/dev/null || ! command -v pueued >/dev/null; then
        say "installing pueue (cargo install pueue --locked; a few minutes)"
        timeout 1800 cargo install pueue --locked --quiet ||
            say "pueue could not be installed; its rows will say so"
    fi
}

make_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating the venv for the Python reference"
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$BENCH_DIR/python_ref/requirements.txt"
}

compile_c() {
    say "compiling agents and ceilings into $BUILD"
    mkdir -p "$BUILD"
    local src
    for src in agents/stamp_agent agents/noop_agent agents/hang_agent; do
        gcc -O2 -Wall -Wextra -static -o "$BUILD/$(basename "$src")" "$BENCH_DIR/$src.c"
    done
    for src in ceilings/inotify_floor ceilings/spawn_ceiling ceilings/durable_write; do
        gcc -O2 -Wall -Wextra -o "$BUILD/$(basename "$src")" "$BENCH_DIR/$src.c"
    done
}

find_worker_watcher() {
    if [[ -n ${WW_BIN:-} ]]; then
        export WW_BIN WW_NOTE="given as WW_BIN"
        return
    fi
    local src=${WW_SRC:-}
    if [[ -z $src ]]; then
        if [[ -f /work/main/Cargo.toml ]]; then src=/work/main; else src=$REPO_DIR; fi
    fi
    local target=${CARGO_TARGET_DIR:-$src/target}
    say "building worker-watcher in $src (cargo build --release)"
    local log=$BUILD/ww-build.log
    if timeout 1200 cargo build --release --manifest-path "$src/Cargo.toml" >"$log" 2>&1 &&
        [[ -x $target/release/worker-watcher ]]; then
        # A copy, so that a rebuild in $src during the run changes nothing measured.
        cp "$target/release/worker-watcher" "$BUILD/worker-watcher"
        local rev
        rev=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
        export WW_BIN=$BUILD/worker-watcher WW_NOTE="built from $src at $rev"
    else
        export WW_BIN="" WW_NOTE="cargo build --release in $src failed: $(grep -m1 '^error' "$log" || tail -n1 "$log")"
        say "$WW_NOTE"
    fi
}

main() {
    install_packages
    make_venv
    compile_c
    find_worker_watcher
    export BENCH_BUILD=$BUILD BENCH_VENV_PY=$VENV/bin/python
    cd "$BENCH_DIR"
    exec "$PY" -m harness --command "bench/run.sh $*" "$@"
}

main "$@"
