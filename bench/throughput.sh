#!/usr/bin/env bash
# Throughput, latency and memory of max-mnist against a reference Python server written the
# tutorials' way (Flask + PyTorch under gunicorn, 2 workers, 1 torch thread each, the same
# network and weights read from our safetensors), both under the same load in the same run.
#
# One command: builds the release server, installs wrk (Debian) and the reference's venv
# (bench/.venv-reference, pinned in bench/throughput/requirements.txt) when missing, measures
# start to first correct prediction (5 cold starts each, weights verified as in production),
# starts both servers on 127.0.0.1, checks a prediction from each, and drives them with wrk
# (one thread, keep-alive where the server allows it) at concurrency 1, 8, 64 and 256 with
# one 28×28 MNIST PNG per multipart request, alternating servers run by run. Then: a
# 534×454 phone photo at c=64 (the whole preprocessing), and max-mnist with 32-image forms
# at c=8. Memory: max-mnist's RSS, the reference's summed PSS (gunicorn master + workers),
# after warm-up and after the load. Medians of RUNS runs; table and JSON in
# bench/results/throughput/<time>/, the table also printed.
#
# Takes about 8 min with the defaults (plus the venv the first time: torch is 4.7 GB).
#
# Usage: bench/throughput.sh
#   RUNS=3 DURATION=10   runs per point and seconds per run
#   MAX_BATCH_DELAY_US=… and the server's other variables pass through to max-mnist
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
duration=${DURATION:-10}
ours_port=5101
reference_port=5102
out=bench/results/throughput/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

make --quiet libtorch >/dev/null
cargo build --quiet --release --bin max-mnist
server=target/release/max-mnist

if ! command -v wrk >/dev/null; then
    echo "Installing wrk with apt" >&2
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
fi
source bench/venv.sh
bench_venv bench/.venv-reference bench/throughput/requirements.txt

# The request bodies (single, photo, batch32) and their CONTENT_TYPE.
source bench/throughput/bodies.sh "$out"

# Verified weights in assets/mnist/, as `make run` leaves them (the first start fetches them).
ours=("$server" --host 127.0.0.1 --port "$ours_port")
reference=(env MODEL_WEIGHTS="$PWD/assets/mnist/mnist-classifier.safetensors"
    "$venv/bin/gunicorn" --workers 2 --bind "127.0.0.1:$reference_port" --chdir bench/throughput reference_server:app)
python3 bench/throughput/first_prediction.py "$ours_port" samples/digit-7.png 7 -- "${ours[@]}" >/dev/null

echo "Start to first correct prediction, 5 cold starts each" >&2
for _ in 1 2 3 4 5; do
    echo "max-mnist start_ms $(python3 bench/throughput/first_prediction.py "$ours_port" samples/digit-7.png 7 -- "${ours[@]}")"
    echo "reference start_ms $(python3 bench/throughput/first_prediction.py "$reference_port" samples/digit-7.png 7 -- "${reference[@]}")"
done >>"$out/facts.txt"

"${ours[@]}" >"$out/max-mnist.log" 2>&1 &
ours_pid=$!
"${reference[@]}" >"$out/reference.log" 2>&1 &
reference_pid=$!
trap 'kill "$ours_pid" "$reference_pid" 2>/dev/null; wait' EXIT

wait_for() { # PORT: until a digit-7 prediction comes back
    for _ in $(seq 300); do
        if curl -sf -F image=@samples/digit-7.png "http://127.0.0.1:$1/model/predict" | grep -q '"prediction": *7'; then
            return
        fi
        sleep 0.1
    done
    echo "no correct prediction from port $1" >&2
    exit 1
}
wait_for "$ours_port"
wait_for "$reference_port"

load() { # SERVER PORT SCENARIO CONCURRENCY RUN
    BODY_FILE="$out/$3.body" wrk -t1 -c"$4" -d"${duration}s" --latency --timeout 10s -s bench/throughput/post.lua \
        "http://127.0.0.1:$2/model/predict" >"$out/$1_$3_c$4_run$5.txt"
    grep -E "Requests/sec" "$out/$1_$3_c$4_run$5.txt" | sed "s/^/$1 $3 c=$4 run $5: /" >&2
}
memory() { # KEY: max-mnist's RSS and the reference's summed PSS, in kB
    echo "max-mnist rss_$1_kb $(awk '/^VmRSS/ {print $2}' "/proc/$ours_pid/status")"
    local pss=0
    for pid in $(pgrep -f "gunicorn --workers 2 --bind 127.0.0.1:$reference_port"); do
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")))
    done
    echo "reference pss_$1_kb $pss"
}

for port in "$ours_port" "$reference_port"; do
    BODY_FILE="$out/single.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua "http://127.0.0.1:$port/model/predict" >/dev/null
done
memory warm >>"$out/facts.txt"

for concurrency in 1 8 64 256; do
    for run in $(seq "$runs"); do
        load max-mnist "$ours_port" single "$concurrency" "$run"
        load reference "$reference_port" single "$concurrency" "$run"
    done
done
for run in $(seq "$runs"); do
    load max-mnist "$ours_port" photo 64 "$run"
    load reference "$reference_port" photo 64 "$run"
    load max-mnist "$ours_port" batch32 8 "$run"
done
memory loaded >>"$out/facts.txt"

python3 bench/throughput/summarise.py "$out"
echo "Results in $out" >&2
