#!/usr/bin/env bash
# How long the inference thread should wait for a batch to fill: requests/s and latency of
# max-mnist at concurrency 1, 8 and 64 with one 28×28 MNIST PNG per request, and at
# concurrency 1 with 32 of them per form (where a request's own images arrive from the
# preprocessing threads one by one), wrk with one thread, for each MAX_BATCH_DELAY_US in
# DELAYS, a fresh server per delay, delays interleaved run by run. Medians of RUNS runs; the
# table is printed and written to bench/results/batch-delay/<time>/table.md. About 7 min
# with the defaults.
#
# Usage: bench/batch_delay.sh
#   DELAYS="0 250 500 1000 2000" RUNS=3 DURATION=6
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
delays=${DELAYS:-0 250 500 1000 2000}
runs=${RUNS:-3}
duration=${DURATION:-6}
port=5103
out=bench/results/batch-delay/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

make --quiet libtorch >/dev/null
cargo build --quiet --release --bin max-mnist
command -v wrk >/dev/null || { echo "wrk is missing: run bench/throughput.sh once, or apt-get install wrk" >&2; exit 1; }

# The request bodies (single, photo, batch32) and their CONTENT_TYPE.
source bench/throughput/bodies.sh "$out"
load() { # SCENARIO CONCURRENCY DELAY RUN
    BODY_FILE="$out/$1.body" wrk -t1 -c"$2" -d"${duration}s" --latency --timeout 10s -s bench/throughput/post.lua \
        "http://127.0.0.1:$port/model/predict" >"$out/delay$3_$1_c$2_run$4.txt"
}

for run in $(seq "$runs"); do
    for delay in $delays; do
        MAX_BATCH_DELAY_US=$delay target/release/max-mnist --host 127.0.0.1 --port "$port" >"$out/server.log" 2>&1 &
        pid=$!
        wait_until_ready "$port" "$pid" "$out/server.log"
        BODY_FILE="$out/single.body" wrk -t1 -c8 -d2s -s bench/throughput/post.lua \
            "http://127.0.0.1:$port/model/predict" >/dev/null
        for concurrency in 1 8 64; do
            load single "$concurrency" "$delay" "$run"
        done
        load batch32 1 "$delay" "$run"
        kill "$pid"
        wait "$pid" || true
        echo "run $run, delay $delay us: done" >&2
    done
done
python3 bench/throughput/delays.py "$out"
