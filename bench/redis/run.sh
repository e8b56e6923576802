#!/bin/bash
# Round trips of the engine's scripts on a unix socket, with appendfsync always and everysec,
# beside PING and a bare XREADGROUP/XACK loop. WW_REDIS_SERVER=path runs another server
# (e.g. Valkey's). Figures: docs/redis.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --example redis-engine
for fsync in always everysec; do
    target/release/examples/redis-engine "$fsync" "${1:-2000}"
    echo
done
