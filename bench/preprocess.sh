#!/usr/bin/env bash
# Accuracy on realistic uploads before and after a change to the server's preprocessing,
# measured through the HTTP API. Builds the "before" server from git rev BEFORE_REV in a
# worktree (bench/results/preprocess/before-src, target dir target/bench-before) and the "after"
# server from the current checkout, serves each on 127.0.0.1 with its own scratch assets, and
# scores both on the sets of bench/preprocess/make_eval_sets.py: phone photos, scans, canvas
# exports, low-resolution digits, digits in handwriting-like fonts (Debian's font packages,
# installed here when missing), marker and fine-pen strokes, digits in a form's box or on a
# line, slanted photos (1,000 each) and the 10,000 MNIST test images. Prints the table and writes it to
# bench/results/preprocess/table.md; per-set details (status codes, wrong examples) are in
# before.json / after.json beside it.
#
# Takes about 20 min the first time on 2 cores (1 min venv, 2.5 min sets, the rest a release
# build of every dependency into target/bench-before), then about 4 min: 2 min per server
# scored, plus whatever the checkout needs rebuilt. Sets are kept until the seed, the count or
# the generator changes.
#
# Usage: bench/preprocess.sh [BEFORE_REV=58bc64a]
#   SEED=1 COUNT=1000   the sets' seed and images per realistic set
#   BEFORE_ONLY=1       score only the before server (e.g. while the change is unfinished)
#   AFTER_ONLY=1        score only this checkout (accuracy, calibration and "not a digit" of
#                       the committed model; no before build)
#   DOMAIN_OF=MODEL     instead, how well MODEL's own `in_domain` tells the set IN_SET
#                       (default fashion-test) from the sets OUT_SETS (default "mnist-test
#                       letters"): the committed fashion-mnist model's "not clothing"
#                       (bench/preprocess/domain.py; with AFTER_ONLY=1, this checkout's)
# Each server's own table (accuracy, ECE before and after its temperature, share flagged
# "not a digit", AUROC of the out-of-domain sets) is in NAME.md beside its JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
root=$PWD
before_rev=${1:-58bc64a}
seed=${SEED:-1}
count=${COUNT:-1000}
out=bench/results/preprocess
mkdir -p "$out"

# libtorch for the builds, MNIST's raw files (fetched and verified, or just verified).
make --quiet libtorch data fashion-data >/dev/null

# The Python tools' venv, reinstalled whenever the pins change.
source bench/venv.sh
bench_venv bench/.venv-eval bench/preprocess/requirements.txt

# The handwriting-like fonts of the `fonts` set, from Debian's packages the generator names.
font_packages=$("$venv/bin/python" -c 'import sys; sys.path.insert(0, "bench/preprocess"); import make_eval_sets; print(*make_eval_sets.FONT_PACKAGES)')
# shellcheck disable=SC2086 # one word per package
dpkg -s $font_packages >/dev/null 2>&1 || apt-get install -y -qq $font_packages >/dev/null

# The sets, regenerated only when the seed, the count, the generator or its pins change.
stamp="seed=$seed count=$count $(cat bench/preprocess/make_eval_sets.py bench/preprocess/requirements.txt | sha256sum)"
if [ "$(cat "$out/sets/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "Generating the evaluation sets into $out/sets (about 2 min)" >&2
    rm -rf "$out/sets"
    "$venv/bin/python" bench/preprocess/make_eval_sets.py --seed "$seed" --count "$count" --out "$out/sets"
    echo "$stamp" >"$out/sets/stamp"
fi

scratch=$(mktemp -d)
server_pid=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null; rm -rf "$scratch"' EXIT

# serve_and_score NAME DIR BINARY LABEL: runs BINARY from DIR on a free port with scratch
# assets (fetched and verified from DIR's pretrained-model/), waits until it answers, scores
# every set as LABEL into $out/NAME.json and its table into $out/NAME.md, and stops it.
serve_and_score() {
    local name=$1 dir=$2 binary=$3 label=$4 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$dir" && HOST=127.0.0.1 PORT=$port ASSETS_DIR="$scratch/assets-$name" LOG_LEVEL=warn exec "$binary") \
        >"$out/server-$name.log" 2>&1 &
    server_pid=$!
    # /model/metadata: the before revision may be older than /health/ready.
    wait_until_ready "$port" "$server_pid" "$out/server-$name.log" /model/metadata
    echo "Scoring the $name server ($label) on port $port" >&2
    if [ -n "${DOMAIN_OF:-}" ]; then
        # shellcheck disable=SC2086 # one word per set
        "$venv/bin/python" bench/preprocess/domain.py --url "http://127.0.0.1:$port" --model "$DOMAIN_OF" \
            --sets "$out/sets" --in-domain "${IN_SET:-fashion-test}" --out-of-domain ${OUT_SETS:-mnist-test letters} \
            --out "$out/$name-domain-$DOMAIN_OF.json" | tee "$out/$name-domain-$DOMAIN_OF.md"
    else
        "$venv/bin/python" bench/preprocess/score.py --url "http://127.0.0.1:$port" --sets "$out/sets" \
            --label "$label" --out "$out/$name.json" | tee "$out/$name.md"
    fi
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

score_after() {
    echo "Building the after server (this checkout)" >&2
    cargo build --quiet --release --bin max-mnist
    after_label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- || echo ' + changes')"
    serve_and_score after "$root" "$root/target/release/max-mnist" "$after_label"
}

if [ -n "${AFTER_ONLY:-}" ]; then
    score_after
    exit 0
fi

# The before server: BEFORE_REV checked out in a worktree that borrows this checkout's libtorch
# and venv, built into its own target dir so that its dependencies compile only once.
src=$out/before-src
git worktree prune
if [ -e "$src/.git" ]; then
    git -C "$src" checkout --quiet --detach "$before_rev"
else
    git worktree add --quiet --detach "$src" "$before_rev"
fi
ln -sfn "$root/.libtorch" "$src/.libtorch"
ln -sfn "$root/.venv" "$src/.venv"
echo "Building the before server ($before_rev)" >&2
(cd "$src" && CARGO_TARGET_DIR="$root/target/bench-before" cargo build --quiet --release --bin max-mnist)

serve_and_score before "$src" "$root/target/bench-before/release/max-mnist" "$(git rev-parse --short "$before_rev")"
[ -z "${BEFORE_ONLY:-}" ] || exit 0

score_after

{
    echo "Top-1 accuracy through POST /model/predict, sets of seed $seed, $count per realistic set"
    echo
    "$venv/bin/python" bench/preprocess/table.py "$out/before.json" "$out/after.json"
} | tee "$out/table.md"
