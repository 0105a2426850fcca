#!/usr/bin/env bash
# Where the server's time goes on a phone photo: `perf record` on a release server serving
# mnist while bench/photos.sh's 12 MP photos (run that first: it makes them) are sent to
# /model/predict one at a time, RUNS times; the report's top symbols, by their own time.
#
# Usage: bench/photos_profile.sh   (RUNS=3 SIZE=12mp; perf from Debian's linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/server.sh
runs=${RUNS:-3} size=${SIZE:-12mp}
sets=bench/results/photos/sets
out="bench/results/photos_profile/$(date -u +%Y%m%dT%H%M%SZ)"
[ -d "$sets/$size" ] || { echo "no $sets/$size: run bench/photos.sh first" >&2; exit 1; }
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
mkdir -p "$out"
make --quiet libtorch build-tools >/dev/null
cargo build --release --bin max-mnist >/dev/null 2>&1
target/release/max-mnist --host 127.0.0.1 --port 5131 --model mnist=pretrained-model/mnist \
    --assets-dir "$out/assets" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait' EXIT
wait_until_ready 5131 "$server" "$out/server.log"
perf record -F 999 -g -p "$server" -o "$out/perf.data" >/dev/null 2>&1 &
recorder=$!
sleep 1
for _ in $(seq "$runs"); do
    for photo in "$sets/$size"/*.jpg; do
        curl -sf -o /dev/null -F "image=@$photo" http://127.0.0.1:5131/model/predict
    done
done
kill -INT "$recorder"
wait "$recorder" || true
perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -15 | sed -E 's/ +-? +-? *$//' | tee "$out/top.txt"
echo "bench/photos_profile.sh: $out"
