#!/usr/bin/env bash
# bench/listener/run.sh [bench.py options]: orchestrator-listener on 100 workers x 10,000
# results: start-up rebuild (first start, restart, restart after new results), scrape time,
# memory. Builds the release binary and the spool generator (unless WW_BIN names a binary),
# makes the spool once under --workdir (default /var/tmp/worker-watcher-bench/listener,
# about 5 GB on ext4; delete it to make it again), then runs bench.py, which prints JSON.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bin=${WW_BIN:-}
if [[ -z $bin ]]; then
    cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin orchestrator-listener
    bin=$target/release/orchestrator-listener
fi
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --example listener-spool
exec python3 "$repo/bench/listener/bench.py" --bin "$bin" --spool-bin "$target/release/examples/listener-spool" "$@"
