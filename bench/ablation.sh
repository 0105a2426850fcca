#!/usr/bin/env bash
# The accuracy ablation of the MNIST recipe (issue 18): full training runs of the train bin,
# each the default recipe with the flags of its row, one after another on this machine.
# Prints a Markdown table (test accuracy of the exported epoch, best epoch, validation loss,
# wall time) and writes it to bench/results/ablation/table.md; each run's output and run
# directory are beside it. Nothing is published outside bench/results/ablation/.
#
# Each run takes 9-19 min on 2 cores (the wide network twice as long as the others). Runs whose log already holds a result are not
# repeated: delete bench/results/ablation/NAME.log to run one again.
#
# Usage: bench/ablation.sh [NAME=FLAGS ...]   (default: the rows below)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/ablation
mkdir -p "$out"

if [ $# -eq 0 ]; then
    set -- \
        "default=" \
        "ema=--weight-average 0.999" \
        "smoothing=--label-smoothing 0.1" \
        "wide=--architecture cnn-bn-16-32-64" \
        "no-outliers=--outliers none" \
        "clothes-outliers=--outliers fashion-mnist" \
        "no-outliers-12-24-48=--outliers none --architecture cnn-bn-12-24-48" \
        "quarter-redrawn=--augment-thick-strokes 0.25 --augment-low-resolution 0.25" \
        "weaker-affine=--augment-rotation 8 --augment-scale 0.05 --augment-shift 0.05" \
        "stronger-affine=--augment-rotation 16 --augment-scale 0.15 --augment-shift 0.1" \
        "epochs-60=--epochs 60" \
        "default-seed-2=--seed 2" \
        "default-seed-3=--seed 3"
fi

make --quiet libtorch data fashion-data letter-fonts >/dev/null
cargo build --quiet --release --bin train

for row in "$@"; do
    name=${row%%=*}
    flags=${row#*=}
    log=$out/$name.log
    grep -q '^test accuracy' "$log" 2>/dev/null && continue
    echo "$name: train $flags" >&2
    # shellcheck disable=SC2086 # the flags are words
    ./target/release/train --exp-name "$name" --runs-dir "$out/runs" --output "$out/bucket-$name" $flags \
        >"$log" 2>"$out/$name.stderr"
done

python3 - "$out" "$@" <<'PY' | tee "$out/table.md"
import re, sys
out, rows = sys.argv[1], sys.argv[2:]
print("| run | flags | test accuracy | best epoch | validation loss | wall time |")
print("|---|---|---:|---:|---:|---:|")
for row in rows:
    name, flags = row.split("=", 1)
    log = open(f"{out}/{name}.log").read()
    accuracy = re.search(r"^test accuracy: ([0-9.]+)%", log, re.M).group(1)
    best = re.search(r"best epoch (\d+) of (\d+): validation loss ([0-9.]+)", log)
    seconds = int(re.search(r"^training time: (\d+) s", log, re.M).group(1))
    print(f"| {name} | `{flags or '(none)'}` | {accuracy}% | {best.group(1)} of {best.group(2)} "
          f"| {best.group(3)} | {seconds // 60} min {seconds % 60} s |")
PY
