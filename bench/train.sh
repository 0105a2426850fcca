#!/usr/bin/env bash
# Training speed: seconds per epoch of our `train` bin and of the same loop in plain PyTorch
# (bench/train_pytorch.py: same network, batch size, optimiser, augmentation, threads, data
# already in memory), alternated ROUNDS times in one session so both see the same machine.
# Prints a Markdown table of medians and the ratio; raw lines go to bench/results/.
#
# Usage: bench/train.sh [ROUNDS=3] [EPOCHS=3] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
epochs=${2:-3}
threads=${3:-2}

make --quiet libtorch data >/dev/null
cargo build --quiet --release --bin train
out="bench/results/train-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
for round in $(seq "$rounds"); do
    echo "round $round/$rounds: train bin" >&2
    # The PyTorch loop has the affine warp alone: the bin's redrawn digits and outliers are off.
    ./target/release/train --epochs "$epochs" --threads "$threads" --exp-name bench --runs-dir "$out/runs" \
        --augment-thick-strokes 0 --augment-low-resolution 0 --outliers none \
        --output "$out/bucket" 2>/dev/null | grep '^epoch' >"$out/rust-$round.txt"
    echo "round $round/$rounds: PyTorch" >&2
    .venv/bin/python bench/train_pytorch.py data/mnist "$epochs" "$threads" 2>/dev/null | grep '^epoch' \
        >"$out/pytorch-$round.txt"
done

python3 - "$out" "$threads" <<'PY'
import glob, re, statistics, sys
out, threads = sys.argv[1], sys.argv[2]
def rates(kind):
    values = []
    for path in sorted(glob.glob(f"{out}/{kind}-*.txt")):
        values += [float(m) for m in re.findall(r"([0-9.]+) img/s", open(path).read())]
    return values
rust, torch = rates("rust"), rates("pytorch")
images = 54000  # MNIST's training set less the 10% validation split
row = lambda name, r: f"| {name} | {len(r)} | {images / statistics.median(r):.2f} | {statistics.median(r):,.0f} | {images / max(r):.2f} – {images / min(r):.2f} |"
lines = [
    f"Training speed, cnn-bn-8-16-32, batch 128, AdamW, augmentation on, {threads} threads ({out})",
    "",
    "| trainer | epochs timed | median s/epoch | median img/s | range s/epoch |",
    "|---|---:|---:|---:|---:|",
    row("max-mnist `train`", rust),
    row("PyTorch 2.13 script", torch),
    "",
    f"**Ratio (PyTorch s/epoch ÷ ours): {statistics.median(rust) / statistics.median(torch):.2f}×**",
]
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
