#!/bin/bash
# Runs each fuzz target for a bounded time: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 60 s each, every target). New inputs found go to target/fuzz-work/, not to the
# seed corpus under fuzz/corpus/; a crash leaves its input in target/fuzz-work/artifacts/
# and ends the script with status 1.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (libFuzzer's
# sanitizer flags). Without them it says SKIP and exits 0, so CI on a stable-only machine
# passes without fuzzing.
#
# http_request fuzzes the metrics endpoint's parser (src/http/), run only where it exists.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
# FUZZ_SEED: libFuzzer's -seed (0, the default: a new random seed each run).
seed=${FUZZ_SEED:-0}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(task_parse agent_interpret env_file)
    [ -f ../src/http/mod.rs ] && targets+=(http_request)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIP fuzz: no nightly toolchain (rustup toolchain list)"; exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "SKIP fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)"; exit 0
fi

work=$(cd .. && pwd)/target/fuzz-work
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$(cd .. && pwd)/target/fuzz}
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    echo "=== fuzz $t for ${seconds}s ==="
    # -rss_limit_mb: a task is at most MAX_TASK_BYTES; nothing here should need more.
    status=0
    cargo +nightly fuzz run "$t" "$work/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -seed="$seed" -rss_limit_mb=1024 -max_len=65536 \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$work/$t.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$t.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work/$t.log"
        echo "FAIL fuzz $t (status $status): see $work/$t.log and $work/artifacts/$t/"; exit 1
    fi
    echo "ok fuzz $t"
done
