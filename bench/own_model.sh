#!/usr/bin/env bash
# A user's TorchScript model through max-mnist against the same file served the tutorials'
# way: the README's LeNet (examples/lenet/export.py, one epoch) packaged with the `package`
# bin and served by max-mnist (port 5108), and the same lenet.pt under Flask + PyTorch with
# gunicorn (2 workers, 1 torch thread each; bench/throughput/reference_server.py with
# MODEL_TORCHSCRIPT, port 5109), in the same run. wrk (one thread) posts one 28×28 MNIST PNG
# per multipart request at concurrency 1, 8 and 64, alternating servers run by run
# (bench/throughput/alternate.sh); medians of RUNS runs of DURATION s, and the ratio
# max-mnist / reference. The figures go into BENCHMARKS.md ("Your own model").
#
# Usage: bench/own_model.sh   (RUNS=3 DURATION=10; builds the release binaries, installs wrk and
# the reference's venv bench/.venv-reference when missing, needs data/mnist: `make data`)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3} duration=${DURATION:-10}
out="bench/results/own_model/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
source bench/venv.sh
bench_venv bench/.venv-reference bench/throughput/requirements.txt
make --quiet libtorch data >/dev/null
cargo build --release --bin max-mnist --bin package >/dev/null
source bench/throughput/bodies.sh "$out"
source bench/throughput/alternate.sh

# The README's three commands, into $out.
.venv/bin/python examples/lenet/export.py --data data/mnist --output "$out/lenet.pt" | tee "$out/export.txt"
target/release/package --torchscript "$out/lenet.pt" --labels examples/lenet/labels.txt --input-shape 1,28,28 \
    --mean 0.1307 --std 0.3081 --preprocess digit --name lenet --output "$out/lenet-bucket" >/dev/null
target/release/max-mnist --host 127.0.0.1 --port 5108 --model "lenet=$out/lenet-bucket" \
    --assets-dir "$out/assets" >"$out/max-mnist.log" 2>&1 &
ours=$!
MODEL_TORCHSCRIPT="$PWD/$out/lenet.pt" "$venv/bin/gunicorn" --workers 2 --bind 127.0.0.1:5109 \
    --chdir bench/throughput reference_server:app >"$out/reference.log" 2>&1 &
reference=$!
trap 'kill "$ours" "$reference" 2>/dev/null; wait' EXIT
echo
echo "LeNet (TorchScript), one 28×28 PNG per request, medians of $runs runs of ${duration} s:"
echo
RUNS=$runs DURATION=$duration alternate_servers "$out" reference 5109 max-mnist 5108 1 8 64
echo "Results in $out" >&2
