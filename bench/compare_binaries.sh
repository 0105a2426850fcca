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

"$before" --host 127.0.0.1 --port 5104 >"$out/before.log" 2>&1 &
before_pid=$!
"$after" --host 127.0.0.1 --port 5105 >"$out/after.log" 2>&1 &
after_pid=$!
trap 'kill "$before_pid" "$after_pid" 2>/dev/null; wait' EXIT
for port in 5104 5105; do
    for _ in $(seq 300); do
        curl -sf -F image=@samples/digit-7.png "http://127.0.0.1:$port/model/predict" | grep -q '"prediction": *7' && break
        sleep 0.1
    done
    BODY_FILE="$out/single.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >/dev/null
done

for concurrency in 8 64; do
    for run in $(seq "$runs"); do
        for side in before after; do
            port=$([ "$side" = before ] && echo 5104 || echo 5105)
            BODY_FILE="$out/single.body" wrk -t1 -c"$concurrency" -d"${duration}s" --latency --timeout 10s \
                -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >"$out/${side}_c${concurrency}_run$run.txt"
        done
    done
done

python3 - "$out" <<'PY'
import statistics, sys
from pathlib import Path
sys.path.insert(0, "bench/throughput")
from summarise import parse_wrk
out = Path(sys.argv[1])
print("| concurrency | req/s before | req/s after | after/before | p99 before (ms) | p99 after (ms) | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for concurrency in (8, 64):
    runs = {side: [parse_wrk(path.read_text()) for path in sorted(out.glob(f"{side}_c{concurrency}_run*.txt"))]
            for side in ("before", "after")}
    median = {side: {key: statistics.median(run[key] for run in runs[side]) for key in ("rps", "p99_ms")} for side in runs}
    errors = sum(run["errors"] for side in runs for run in runs[side])
    print(f"| {concurrency} | {median['before']['rps']:,.0f} | {median['after']['rps']:,.0f} | "
          f"{median['after']['rps'] / median['before']['rps']:.2f} | {median['before']['p99_ms']:.2f} | "
          f"{median['after']['p99_ms']:.2f} | {errors} |")
PY
echo "Results in $out" >&2
