#!/usr/bin/env bash
# bench/scale/run.sh [--skip-build]: how worker-watcher's costs grow with the work (issue 18).
# Benchmarks, not tests; each part bounded by `timeout`, JSON lines on stdout:
#   1. daemon CPU per no-op task at concurrency 1, 4, 16, 64     (scale.py cpu, ~1 min)
#   2. spawn -> READY and RSS with 100,000 and 1,000,000 queued  (scale.py queued; the
#      queues are made once under $SCALE_DIR, ~4 GB and ~2 min for the million)
#   3. 100 idle workers on one spool: total CPU, wake-ups, RSS   (scale.py fleet, ~2 min)
#   4. orchestrator-listener over 1,000 workers x 100 results    (bench/listener/bench.py)
# Environment: WW_BIN / LISTENER_BIN (binaries; else built here, release), SCALE_DIR (scratch,
# default /var/tmp/ww-scale; parts 1 and 3 want the filesystem under test, e.g. a journalled
# ext4), QUEUED_DIR (part 2's queues, default $SCALE_DIR), PARTS (default "cpu queued fleet
# listener"). Run under `flock /tmp/ww-bench.lock` on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
dir=${SCALE_DIR:-/var/tmp/ww-scale}
parts=${PARTS:-cpu queued fleet listener}
mkdir -p "$dir"
if [[ ${1:-} != --skip-build ]]; then
    cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin worker-watcher \
        --bin orchestrator-listener --example listener-spool
fi
ww=${WW_BIN:-$target/release/worker-watcher}
lb=${LISTENER_BIN:-$target/release/orchestrator-listener}
say() { printf '==> %s (load %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
for part in $parts; do
    case $part in
    cpu)
        say "daemon CPU per task at c=1,4,16,64"
        timeout 600 python3 "$here/scale.py" cpu "$ww" --dir "$dir" ;;
    queued)
        say "READY and RSS with 100,000 and 1,000,000 queued"
        timeout 1800 python3 "$here/scale.py" queued "$ww" --dir "${QUEUED_DIR:-$dir}" ;;
    fleet)
        say "100 idle workers on one spool"
        timeout 600 python3 "$here/scale.py" fleet "$ww" --dir "$dir" ;;
    listener)
        say "orchestrator-listener over 1,000 workers x 100 results"
        timeout 1800 python3 "$repo/bench/listener/bench.py" --bin "$lb" \
            --spool-bin "$target/release/examples/listener-spool" --workdir "$dir/listener-1000" \
            --workers 1000 --results 100 --restarts 3 --scrapes 50 ;;
    *) echo "unknown part $part" >&2; exit 64 ;;
    esac
done
