#!/bin/bash
# Round trips of the engine's scripts on a unix socket, with appendfsync always and everysec,
# beside PING and a bare XREADGROUP/XACK loop (engine.rs; figures: docs/redis.md); then the
# daemons end to end (fleet.rs; figures: bench/BENCHMARKS.md, issue 16): N tasks over 2 and 4
# competing worker processes with a no-op agent, with appendfsync always and everysec, beside
# the file spool; the pickup latency; the reclaim time after a host is killed; memory per
# task and result. WW_REDIS_SERVER=path runs another server (e.g. Valkey's).
#
#   bench/redis/run.sh [N_SCRIPTS [N_TASKS]]     (defaults 2000, 100000)
# Run it alone: flock /tmp/ww-bench.lock bench/redis/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
n_tasks=${2:-100000}
cargo build --release --bins --example redis-engine --example redis-fleet
cc -O2 -o target/release/ww-stamp bench/redis/stamp.c
echo "load: $(cat /proc/loadavg), $(nproc) cores"
for fsync in always everysec; do
    target/release/examples/redis-engine "$fsync" "${1:-2000}"
    echo
done
fleet=target/release/examples/redis-fleet
for hosts in 2 4; do
    for fsync in always everysec; do
        "$fleet" throughput "$fsync" "$hosts" "$n_tasks"
    done
    "$fleet" files "$hosts" "$n_tasks"
done
"$fleet" pickup 300
"$fleet" pickup 300 idle
"$fleet" reclaim
"$fleet" memory 10000
echo "load: $(cat /proc/loadavg)"
