#!/usr/bin/env bash
# bench/metrics/run.sh [bench.py options]: what metrics cost a worker.
#
# Builds the release binary (unless WW_BIN names one), then runs bench.py: the time of a
# scrape after 10,000 processed tasks, and the no-op throughput with ENABLE_METRICS on and
# off, interleaved, medians of 5 runs each. The spool is on /dev/shm, so that fsync does not
# hide the daemon's own CPU; pass --workdir to measure on a disk. About two minutes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${WW_BIN:-}
if [[ -z $bin ]]; then
    cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
    bin=${CARGO_TARGET_DIR:-$repo/target}/release/worker-watcher
fi
exec python3 "$repo/bench/metrics/bench.py" --bin "$bin" "$@"
