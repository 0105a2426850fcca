#!/usr/bin/env bash
# Several models in one server: what the second model costs, and how well one model's flood
# is kept from the other. One command; the figures go into BENCHMARKS.md ("Several models").
#
# Overhead: a server with only `mnist` and one with both committed models (ports 5106 and
# 5107) are driven alternately by wrk on `/model/predict` (one 28×28 PNG per request) at
# concurrency 64, RUNS runs of DURATION s; medians of req/s, and the ratio two/one. RSS of each
# after its warm-up and after the load.
#
# Isolation: on the two-model server, `fashion-mnist` at concurrency 8 alone, then the same
# while `mnist` is flooded at concurrency 64 by a second wrk; medians of fashion's p50 and p99,
# and the ratio flooded/alone.
#
# Usage: bench/models.sh   (RUNS=3 DURATION=10; builds the release server first)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
runs=${RUNS:-3} duration=${DURATION:-10}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --bin max-mnist >/dev/null
out="bench/results/models/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
source bench/throughput/bodies.sh "$out"
server=target/release/max-mnist

"$server" --host 127.0.0.1 --port 5106 --model mnist=pretrained-model/mnist --assets-dir "$out/assets-one" \
    >"$out/one.log" 2>&1 &
one_pid=$!
"$server" --host 127.0.0.1 --port 5107 --assets-dir "$out/assets-two" >"$out/two.log" 2>&1 &
two_pid=$!
trap 'kill "$one_pid" "$two_pid" 2>/dev/null; wait' EXIT
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
wait_until_ready 5106 "$one_pid" "$out/one.log"
wait_until_ready 5107 "$two_pid" "$out/two.log"
for port in 5106 5107; do
    BODY_FILE="$out/single.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >/dev/null
done
BODY_FILE="$out/fashion.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua \
    "http://127.0.0.1:5107/models/fashion-mnist/predict" >/dev/null
echo "one $(rss_mib "$one_pid") two $(rss_mib "$two_pid")" >"$out/rss_warm.txt"

for run in $(seq "$runs"); do
    for side in one two; do
        port=$([ "$side" = one ] && echo 5106 || echo 5107)
        BODY_FILE="$out/single.body" wrk -t1 -c64 -d"${duration}s" --latency --timeout 10s \
            -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >"$out/overhead_${side}_run$run.txt"
    done
done
echo "one $(rss_mib "$one_pid") two $(rss_mib "$two_pid")" >"$out/rss_loaded.txt"

fashion() { # FILE: fashion-mnist at concurrency 8 on the two-model server
    BODY_FILE="$out/fashion.body" wrk -t1 -c8 -d"${duration}s" --latency --timeout 10s \
        -s bench/throughput/post.lua "http://127.0.0.1:5107/models/fashion-mnist/predict" >"$1"
}
for run in $(seq "$runs"); do
    fashion "$out/isolation_alone_run$run.txt"
    BODY_FILE="$out/single.body" wrk -t1 -c64 -d"$((duration + 2))s" --latency --timeout 10s \
        -s bench/throughput/post.lua "http://127.0.0.1:5107/models/mnist/predict" >"$out/flood_run$run.txt" &
    flood=$!
    sleep 1
    fashion "$out/isolation_flooded_run$run.txt"
    wait "$flood"
done

python3 - "$out" <<'PY'
import statistics, sys
from pathlib import Path
sys.path.insert(0, "bench/throughput")
from summarise import parse_wrk
out = Path(sys.argv[1])
def median(pattern, key):
    return statistics.median(parse_wrk(path.read_text())[key] for path in sorted(out.glob(pattern)))
def errors(pattern):
    return sum(parse_wrk(path.read_text())["errors"] for path in out.glob(pattern))
one, two = median("overhead_one_run*.txt", "rps"), median("overhead_two_run*.txt", "rps")
warm = dict(zip(*[iter((out / "rss_warm.txt").read_text().split())] * 2))
loaded = dict(zip(*[iter((out / "rss_loaded.txt").read_text().split())] * 2))
print("Overhead, /model/predict at c=64 (medians):\n")
print("| server | req/s | RSS after warm-up (MiB) | RSS after load (MiB) | errors |")
print("|---|---:|---:|---:|---:|")
print(f"| mnist alone | {one:,.0f} | {warm['one']} | {loaded['one']} | {errors('overhead_one_run*.txt')} |")
print(f"| mnist + fashion-mnist | {two:,.0f} | {warm['two']} | {loaded['two']} | {errors('overhead_two_run*.txt')} |")
print(f"\nreq/s two models / one model: **{two / one:.3f}**; extra RSS for the second model: "
      f"{float(warm['two']) - float(warm['one']):.1f} MiB after warm-up, {float(loaded['two']) - float(loaded['one']):.1f} MiB after load\n")
print("Isolation, fashion-mnist at c=8 (medians):\n")
print("| | req/s | p50 (ms) | p99 (ms) | errors |")
print("|---|---:|---:|---:|---:|")
for name in ("alone", "flooded"):
    pattern = f"isolation_{name}_run*.txt"
    print(f"| {name} | {median(pattern, 'rps'):,.0f} | {median(pattern, 'p50_ms'):.2f} | {median(pattern, 'p99_ms'):.2f} | {errors(pattern)} |")
print(f"\np99 flooded / alone: **{median('isolation_flooded_run*.txt', 'p99_ms') / median('isolation_alone_run*.txt', 'p99_ms'):.2f}**; "
      f"the flood on mnist: {median('flood_run*.txt', 'rps'):,.0f} req/s, {errors('flood_run*.txt')} errors")
PY
echo "Results in $out" >&2
