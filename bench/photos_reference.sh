#!/usr/bin/env bash
# 12 MP phone photos at concurrency 8: max-mnist against the tutorials' reference server
# (bench/throughput/reference_server.py: Flask + PyTorch under gunicorn, 2 workers, PIL decodes
# the photo and resizes it to 28×28, nothing more), under the same load in the same run. Issue
# 17's target: photos/s at c=8 at least the reference's.
#
# The photo is the first of bench/photos.sh's 12 MP set (run that first: it makes the set).
# Both servers serve the committed mnist weights on 127.0.0.1; wrk (one thread, keep-alive)
# posts the photo as a one-part multipart form, DURATION s a run, RUNS runs alternating
# servers. Medians of requests/s and p99; answers other than 2xx are counted.
#
# Usage: bench/photos_reference.sh   (RUNS=3 DURATION=10)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
runs=${RUNS:-3} duration=${DURATION:-10}
sets=bench/results/photos/sets
out="bench/results/photos_reference/$(date -u +%Y%m%dT%H%M%SZ)"
[ -f "$sets/12mp/labels.csv" ] || { echo "no photos: run bench/photos.sh first" >&2; exit 1; }
mkdir -p "$out"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
source bench/venv.sh
bench_venv bench/.venv-reference bench/throughput/requirements.txt
make --quiet libtorch >/dev/null
cargo build --quiet --release --bin max-mnist

photo="$sets/12mp/$(sed -n 2p "$sets/12mp/labels.csv" | cut -d, -f1)"
source bench/throughput/bodies.sh "$out"
{ part "$photo"; printf -- '--%s--\r\n' "$boundary"; } >"$out/photo-12mp.body"

target/release/max-mnist --host 127.0.0.1 --port 5131 --model mnist=pretrained-model/mnist \
    --assets-dir "$out/assets" >"$out/max-mnist.log" 2>&1 &
ours=$!
trap 'kill "$ours" "${reference:-}" 2>/dev/null; wait' EXIT
wait_until_ready 5131 "$ours" "$out/max-mnist.log"
MODEL_WEIGHTS="$PWD/$out/assets/mnist/mnist-classifier.safetensors" "$venv/bin/gunicorn" --workers 2 \
    --bind 127.0.0.1:5132 --chdir bench/throughput reference_server:app >"$out/reference.log" 2>&1 &
reference=$!
for _ in $(seq 300); do curl -sf -F "image=@$photo" http://127.0.0.1:5132/model/predict >/dev/null && break; sleep 0.2; done
for port in 5131 5132; do
    curl -sf -F "image=@$photo" "http://127.0.0.1:$port/model/predict" >"$out/answer-$port.json"
    BODY_FILE="$out/photo-12mp.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >/dev/null
done
for run in $(seq 1 "$runs"); do
    for side in max-mnist:5131 reference:5132; do
        BODY_FILE="$out/photo-12mp.body" wrk -t1 -c8 -d"${duration}s" --latency --timeout 10s -s bench/throughput/post.lua \
            "http://127.0.0.1:${side#*:}/model/predict" >"$out/${side%:*}_run$run.txt"
    done
done

python3 - "$out" "$runs" "$photo" <<'PY' | tee "$out/table.md"
import json, re, statistics, sys
out, runs, photo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def figures(name):
    rates, p99s, errors = [], [], 0
    for run in range(1, runs + 1):
        text = open(f"{out}/{name}_run{run}.txt").read()
        rates.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
        value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups()
        p99s.append(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit])
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        errors += int(non_2xx.group(1)) if non_2xx else 0
    return statistics.median(rates), statistics.median(p99s), errors
ours, reference = figures("max-mnist"), figures("reference")
answers = {name: json.load(open(f"{out}/answer-{port}.json")) for name, port in (("max-mnist", 5131), ("reference", 5132))}
print(f"photo: {photo}; answers: max-mnist {answers['max-mnist']['predictions'][0]['label']}, "
      f"reference {answers['reference']['predictions'][0]['label']}\n")
print("| c=8, 12 MP photo | reference photos/s | max-mnist photos/s | max-mnist / reference | reference p99 | max-mnist p99 | non-2xx |")
print("|---|---:|---:|---:|---:|---:|---:|")
print(f"| median of {runs} | {reference[0]:.1f} | {ours[0]:.1f} | **{ours[0] / reference[0]:.2f}×** | {reference[1]:.0f} ms "
      f"| {ours[1]:.0f} ms | {ours[2] + reference[2]} |")
PY
echo "bench/photos_reference.sh: $out"
