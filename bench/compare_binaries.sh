#!/usr/bin/env bash
# Before and after: two max-mnist server binaries under the same load in the same run, to see
# what a change costs. Both serve the verified weights in assets/ with their defaults on
# 127.0.0.1 (ports 5104 and 5105); wrk drives them alternately, RUNS runs of DURATION s each,
# with one 28×28 MNIST PNG per multipart request at concurrency 8 and 64, and the medians of
# req/s and p99 are printed with the ratio after/before.
#
# Usage: bench/compare_binaries.sh BEFORE_BINARY AFTER_BINARY
#   e.g. git worktree add /tmp/before REV && (cd /tmp/before && cargo build --release \
#        --target-dir /tmp/before-target) && bench/compare_binaries.sh /tmp/before-target/release/max-mnist target/release/max-mnist
#   RUNS=3 DURATION=10
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1 after=$2
runs=${RUNS:-3} duration=${DURATION:-10}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
out="bench/results/compare/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
source bench/throughput/bodies.sh "$out"
source bench/throughput/alternate.sh

"$before" --host 127.0.0.1 --port 5104 >"$out/before.log" 2>&1 &
before_pid=$!
"$after" --host 127.0.0.1 --port 5105 >"$out/after.log" 2>&1 &
after_pid=$!
trap 'kill "$before_pid" "$after_pid" 2>/dev/null; wait' EXIT
alternate_servers "$out" before 5104 after 5105 8 64
echo "Results in $out" >&2
