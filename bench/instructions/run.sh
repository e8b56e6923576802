#!/bin/bash
# bench/instructions/run.sh BINARY N OUT [WORKDIR]
#
# Instructions the daemon (all its threads, not its agents) executes for N no-op tasks at
# concurrency 4: valgrind --tool=callgrind counts them, about the same for the same binary
# and inputs whatever else the machine is doing (wall-clock figures are not). Run it for two
# values of N: the difference divided by the difference of N is the cost of one task, start-up
# and shutdown left out. Needs bench/.build/noop_agent (bench/run.sh compiles it).
set -eu
bin=$1; n=${2:-300}; out=$3
here=$(cd "$(dirname "$0")/.." && pwd)
d=$(mktemp -d "${4:-/var/tmp}/cg.XXXX")
mkdir -p $d/spool/tasks/marie
for i in $(seq 1 $n); do printf '{"task_id":"t%d","description":"x"}' $i > $d/spool/tasks/marie/t$i.json; done
CLAUDE_COMMAND=$here/.build/noop_agent CLAUDE_ARGS= ENABLE_METRICS=false LOG_LEVEL=WARNING MAX_CONCURRENT_TASKS=4 HEARTBEAT_INTERVAL=10 \
  valgrind --tool=callgrind --callgrind-out-file=$out --trace-children=no $bin marie --root $d/spool > $d/log 2>&1 &
pid=$!
while [ "$(ls $d/spool/results/marie 2>/dev/null | grep -c json)" -lt $n ]; do sleep 0.5; done
kill -TERM $pid; wait $pid || true
grep -E "summary|totals" $out | head -2
rm -rf $d
