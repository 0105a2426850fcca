#!/usr/bin/env bash
# How long the inference thread should wait for a batch to fill: requests/s and latency of
# max-mnist at concurrency 1, 8 and 64 (one 28×28 MNIST PNG per request, wrk with one
# thread) for each MAX_BATCH_DELAY_US in DELAYS, a fresh server per point, delays
# interleaved run by run. Medians of RUNS runs; the table is printed and written to
# bench/results/batch-delay/<time>/table.md. About 5 min with the defaults.
#
# Usage: bench/batch_delay.sh
#   DELAYS="0 250 500 1000 2000" RUNS=3 DURATION=6
set -euo pipefail
cd "$(dirname "$0")/.."
delays=${DELAYS:-0 250 500 1000 2000}
runs=${RUNS:-3}
duration=${DURATION:-6}
port=5103
out=bench/results/batch-delay/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

make --quiet libtorch >/dev/null
cargo build --quiet --release --bin max-mnist
command -v wrk >/dev/null || { echo "wrk is missing: run bench/throughput.sh once, or apt-get install wrk" >&2; exit 1; }

boundary=maxmnistbenchboundary
{
    printf -- '--%s\r\nContent-Disposition: form-data; name="image"; filename="digit-7.png"\r\n\r\n' "$boundary"
    cat samples/digit-7.png
    printf '\r\n--%s--\r\n' "$boundary"
} >"$out/single.body"
export BODY_FILE="$out/single.body" CONTENT_TYPE="multipart/form-data; boundary=$boundary"

for run in $(seq "$runs"); do
    for delay in $delays; do
        MAX_BATCH_DELAY_US=$delay target/release/max-mnist --host 127.0.0.1 --port "$port" >"$out/server.log" 2>&1 &
        pid=$!
        until curl -sf -o /dev/null "http://127.0.0.1:$port/model/labels"; do sleep 0.1; done
        wrk -t1 -c8 -d2s -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >/dev/null
        for concurrency in 1 8 64; do
            wrk -t1 -c"$concurrency" -d"${duration}s" --latency --timeout 10s -s bench/throughput/post.lua \
                "http://127.0.0.1:$port/model/predict" >"$out/delay${delay}_c${concurrency}_run$run.txt"
        done
        kill "$pid"
        wait "$pid" || true
        echo "run $run, delay $delay us: done" >&2
    done
done
python3 bench/throughput/delays.py "$out"
