#!/usr/bin/env bash
# Phone photos at phone sizes, one request at a time: the server time of 12 MP (4032×3024,
# about 3.5 MB) and 48 MP (8000×6000, about 12 MB) JPEG photos of MNIST test digits on paper
# (bench/photos/make_photos.py), whether each digit is read right, and the server's peak RSS.
# With BEFORE=<server binary> (e.g. a release build of an earlier commit), that server is
# measured in the same run, alternating pass by pass, as the baseline.
#
# Both servers get MAX_BODY_BYTES=32 MiB and MAX_IMAGE_PIXELS=64,000,000, so that the 48 MP
# photos reach the decoder; they serve only mnist, each from its own scratch assets.
# Time: from the first byte of the request to the last of the answer, on 127.0.0.1, with the
# body built beforehand (bench/photos/measure.py); medians over COUNT photos × RUNS passes.
#
# Then memory under a flood: a fresh server with the default limits (MAX_BODY_BYTES 24 MiB,
# BODY_MEMORY_BYTES 256 MiB) gets 64 concurrent uploads, RUNS times, of 12 MP photos and then
# of 48 MP ones; its peak RSS after each, and the answers' statuses.
#
# Usage: bench/photos.sh   (COUNT=20 RUNS=3 SEED=1; BEFORE=path/to/max-mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
count=${COUNT:-20} runs=${RUNS:-3} seed=${SEED:-1}
out="bench/results/photos/$(date -u +%Y%m%dT%H%M%SZ)"
sets=bench/results/photos/sets
mkdir -p "$out"
make --quiet libtorch data >/dev/null
source bench/venv.sh
bench_venv bench/.venv-eval bench/preprocess/requirements.txt
stamp="seed=$seed count=$count $(cat bench/photos/make_photos.py bench/preprocess/make_eval_sets.py bench/preprocess/requirements.txt | sha256sum)"
if [ "$(cat "$sets/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "Generating the photos into $sets (about a minute)" >&2
    rm -rf "$sets"
    "$venv/bin/python" bench/photos/make_photos.py --seed "$seed" --count "$count" --out "$sets"
    echo "$stamp" >"$sets/stamp"
fi
cargo build --release --bin max-mnist >/dev/null 2>&1

declare -A servers=([after]=target/release/max-mnist)
[ -n "${BEFORE:-}" ] && servers[before]=$BEFORE
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT
port=5120
declare -A ports
for name in "${!servers[@]}"; do
    port=$((port + 1))
    ports[$name]=$port
    MAX_BODY_BYTES=33554432 MAX_IMAGE_PIXELS=64000000 "${servers[$name]}" --host 127.0.0.1 --port "$port" \
        --model mnist=pretrained-model/mnist --assets-dir "$out/assets-$name" >"$out/$name.log" 2>&1 &
    pids+=($!)
    echo "$name $!" >>"$out/pids"
    wait_until_ready "$port" "$!" "$out/$name.log"
done
for run in $(seq 1 "$runs"); do
    for name in "${!servers[@]}"; do
        for size in 12mp 48mp; do
            "$venv/bin/python" bench/photos/measure.py "http://127.0.0.1:${ports[$name]}/model/predict" \
                "$sets/$size" "$out/$name-$size-$run.json" --runs 1
        done
    done
done
while read -r name pid; do
    awk -v name="$name" '/^VmHWM/ {printf "%s %.0f\n", name, $2 / 1024}' "/proc/$pid/status"
done <"$out/pids" >"$out/peak-rss.txt"

"${servers[after]}" --host 127.0.0.1 --port 5129 --model mnist=pretrained-model/mnist --assets-dir "$out/assets-flood" \
    >"$out/flood.log" 2>&1 &
flood=$!
pids+=($flood)
wait_until_ready 5129 "$flood" "$out/flood.log"
for size in 12mp 48mp; do
    "$venv/bin/python" bench/photos/measure.py "http://127.0.0.1:5129/model/predict" "$sets/$size" \
        "$out/flood-$size.json" --runs "$runs" --concurrency 64
    awk -v size="$size" '/^VmHWM/ {printf "%s %.0f\n", size, $2 / 1024}' "/proc/$flood/status" >>"$out/flood-rss.txt"
done

python3 - "$out" <<'PY' | tee "$out/table.md"
import glob, json, statistics, sys
out = sys.argv[1]
peak = dict(line.split() for line in open(f"{out}/peak-rss.txt"))
print("| server | photos | median size | median time | p90 time | right | answered 200 | peak RSS |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name in ("before", "after"):
    for size in ("12mp", "48mp"):
        rows = [row for path in sorted(glob.glob(f"{out}/{name}-{size}-*.json")) for row in json.load(open(path))]
        if not rows:
            continue
        times = sorted(row["seconds"] * 1000 for row in rows)
        ok = sum(row["status"] == 200 for row in rows)
        right = sum(row["right"] for row in rows)
        print(f"| {name} | {size[:-2]} MP | {statistics.median(row['bytes'] for row in rows) / 2**20:.1f} MiB "
              f"| {statistics.median(times):.1f} ms | {times[int(0.9 * (len(times) - 1))]:.1f} ms "
              f"| {right}/{len(rows)} | {ok}/{len(rows)} | {peak[name]} MiB |")
print("\n| flood, 64 at once | requests | 200 (right) | 503 | connection closed | peak RSS after |")
print("|---|---:|---:|---:|---:|---:|")
flood_peak = dict(line.split() for line in open(f"{out}/flood-rss.txt"))
for size in ("12mp", "48mp"):
    rows = json.load(open(f"{out}/flood-{size}.json"))
    count = lambda status: sum(row["status"] == status for row in rows)
    right = sum(row["right"] for row in rows)
    print(f"| {size[:-2]} MP | {len(rows)} | {count(200)} ({right}) | {count(503)} | {count(None)} | {flood_peak[size]} MiB |")
PY
echo "bench/photos.sh: $out"
