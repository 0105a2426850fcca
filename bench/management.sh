#!/usr/bin/env bash
# Model management on the release server: what a load costs, whether memory comes back after
# many loads and unloads, and what swapping a version under load costs the clients. One
# command; the figures go into BENCHMARKS.md ("Model management").
#
# Memory: RUNS fresh servers (port 5108, management on 5109); on each, RSS at start, after one
# register + predict + unregister of the mnist bucket as `extra`, and after CYCLES more; medians.
# Load time: the median of those registers (fetch, verify, load, warm up; from a local bucket).
#
# Swaps under load: `digits` at concurrency 64 (wrk, one 28×28 PNG per request, DURATION s),
# alone, then while its version is swapped between the mnist and fashion buckets every
# SWAP_EVERY s through `/v2/repository/models/digits/load`; alternately, RUNS runs each; median
# req/s and p99, the ratio swapping/steady, and every non-200 counted.
#
# Usage: bench/management.sh   (RUNS=3 CYCLES=100 DURATION=10 SWAP_EVERY=0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
runs=${RUNS:-3} cycles=${CYCLES:-100} duration=${DURATION:-10} swap_every=${SWAP_EVERY:-0.5}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --bin max-mnist >/dev/null
out="bench/results/management/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
source bench/throughput/bodies.sh "$out"
key=bench-admin-key
buckets="file://$PWD/pretrained-model"
admin=(-sf -H "Authorization: Bearer $key")

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
start_server() { # LOG: a fresh server with both committed models and management on
    rm -rf "$out/assets"
    target/release/max-mnist --host 127.0.0.1 --port 5108 --management-address 127.0.0.1:5109 \
        --admin-api-key "$key" --allowed-bucket "$buckets/" --assets-dir "$out/assets" >"$1" 2>&1 &
    pid=$!
    wait_until_ready 5108 "$pid" "$1"
}
trap 'kill "${pid:-}" 2>/dev/null; wait' EXIT
cycle() { # one register (timed, in ms, to $out/load_ms.txt), one prediction, one unregister
    local started=$(date +%s%N)
    curl "${admin[@]}" -X POST "http://127.0.0.1:5109/models?url=$buckets/mnist&model_name=extra" >/dev/null
    echo $(( ($(date +%s%N) - started) / 1000000 )) >>"$out/load_ms.txt"
    curl -sf -T samples/digit-7.png http://127.0.0.1:5108/predictions/extra >/dev/null
    curl "${admin[@]}" -X DELETE http://127.0.0.1:5109/models/extra >/dev/null
}

for run in $(seq "$runs"); do
    start_server "$out/memory_run$run.log"
    at_start=$(rss_mib "$pid")
    cycle
    sleep 0.5
    after_first=$(rss_mib "$pid")
    for _ in $(seq "$cycles"); do cycle; done
    sleep 0.5
    echo "$at_start $after_first $(rss_mib "$pid")" >"$out/memory_run$run.txt"
    kill "$pid"; wait "$pid" || true
done

start_server "$out/swaps.log"
load() { # BUCKET: swap `digits` to that bucket's version
    curl "${admin[@]}" -X POST -H 'Content-Type: application/json' \
        -d "{\"parameters\": {\"url\": \"$buckets/$1\"}}" http://127.0.0.1:5109/v2/repository/models/digits/load >/dev/null
}
load mnist
BODY_FILE="$out/single.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua http://127.0.0.1:5108/models/digits/predict >/dev/null
drive() { # FILE: digits at c=64
    BODY_FILE="$out/single.body" wrk -t1 -c64 -d"${duration}s" --latency --timeout 10s \
        -s bench/throughput/post.lua http://127.0.0.1:5108/models/digits/predict >"$1"
}
swaps=0
for run in $(seq "$runs"); do
    drive "$out/steady_run$run.txt"
    drive "$out/swapping_run$run.txt" &
    driving=$!
    bucket=fashion
    while kill -0 "$driving" 2>/dev/null; do
        sleep "$swap_every"
        kill -0 "$driving" 2>/dev/null || break
        load "$bucket" && swaps=$((swaps + 1))
        bucket=$([ "$bucket" = fashion ] && echo mnist || echo fashion)
    done
    wait "$driving"
    load mnist
done
echo "$swaps" >"$out/swaps.txt"

python3 - "$out" "$cycles" "$swap_every" <<'PY'
import statistics, sys
from pathlib import Path
sys.path.insert(0, "bench/throughput")
from summarise import parse_wrk
out, cycles = Path(sys.argv[1]), int(sys.argv[2])
memory = [list(map(float, path.read_text().split())) for path in sorted(out.glob("memory_run*.txt"))]
start, first, end = (statistics.median(column) for column in zip(*memory))
loads = [int(line) for line in (out / "load_ms.txt").read_text().split()]
print(f"Memory over {cycles} loads and unloads ({len(memory)} fresh servers, medians):\n")
print("| RSS at start | after the first load and unload | after the others | after - start | after - first |")
print("|---:|---:|---:|---:|---:|")
print(f"| {start:.1f} MiB | {first:.1f} MiB | {end:.1f} MiB | {end - start:+.1f} MiB | {end - first:+.1f} MiB |")
print(f"\nA register (verify, load, warm up, from a local bucket): median {statistics.median(loads)} ms of {len(loads)}\n")
def median(pattern, key):
    return statistics.median(parse_wrk(path.read_text())[key] for path in sorted(out.glob(pattern)))
def errors(pattern):
    return sum(parse_wrk(path.read_text())["errors"] for path in out.glob(pattern))
swaps = (out / "swaps.txt").read_text().strip()
print(f"`digits` at c=64, steady and while swapped every {sys.argv[3]} s ({swaps} swaps in all, medians):\n")
print("| | req/s | p99 (ms) | non-200 or errors |")
print("|---|---:|---:|---:|")
for name in ("steady", "swapping"):
    pattern = f"{name}_run*.txt"
    print(f"| {name} | {median(pattern, 'rps'):,.0f} | {median(pattern, 'p99_ms'):.2f} | {errors(pattern)} |")
print(f"\nreq/s swapping / steady: **{median('swapping_run*.txt', 'rps') / median('steady_run*.txt', 'rps'):.2f}**")
PY
echo "Results in $out" >&2
