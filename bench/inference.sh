#!/usr/bin/env bash
# Per-image inference cost of each architecture (one libtorch thread, as the server runs it):
# medians over ROUNDS timed rounds, printed as a Markdown table.
#
# Usage: bench/inference.sh [ROUNDS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
make --quiet libtorch >/dev/null
cargo run --quiet --release -p max-mnist-core --example inference_cost -- "${1:-7}"
