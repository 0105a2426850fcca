#!/usr/bin/env bash
# The container image: the size of the default (CPU) image and of the CUDA variant, what takes
# the room, and the start-up time of `docker run` (podman here) to ready and to the first right
# prediction, beside the same server started outside a container. Figures in BENCHMARKS.md
# ("The container image").
#
# Builds both images first (`make image`, then the Dockerfile with --build-arg
# accelerator=cuda; the build stage is shared, so the second build only copies libraries).
# Start-up: RUNS cold starts each (a new container, so each model is verified and unpacked
# into a fresh assets volume; outside, a fresh --assets-dir), medians.
#
# Usage: bench/image.sh   (RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
out="bench/results/image/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make image >"$out/build-cpu.log" 2>&1
podman build --format docker --build-arg accelerator=cuda -t max-mnist:cuda . >"$out/build-cuda.log" 2>&1
make libtorch >/dev/null
cargo build --release --bin max-mnist >/dev/null 2>&1

size_mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f", $1 / 1e6}'; }
# What takes the room inside an image: libraries, binaries, committed models.
parts() {
    podman run --rm --entrypoint /bin/sh "$1" -c \
        'du -sm /opt/max-mnist/.venv /usr/local/bin /opt/max-mnist/pretrained-model | awk "{print \$1}" | paste -sd" "' \
        2>/dev/null
}

# Seconds from start to ready and to the first right prediction of samples/digit-7.png, on PORT.
time_start() {
    local port=$1 started=$2 ready=""
    for _ in $(seq 1 3000); do
        if curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then ready=$(date +%s.%N); break; fi
        sleep 0.01
    done
    [ -n "$ready" ] || { echo "not ready after 30 s" >&2; exit 1; }
    curl -fsS -F image=@samples/digit-7.png "http://127.0.0.1:$port/model/predict" | grep -q '"label":"7"' \
        || { echo "wrong first prediction" >&2; exit 1; }
    echo "$(python3 -c "print(round($ready - $started, 3), round($(date +%s.%N) - $started, 3))")"
}

: >"$out/starts.txt"
for run in $(seq 1 "$runs"); do
    started=$(date +%s.%N)
    podman run -d --name max-mnist-bench-start -p 127.0.0.1:15030:5000 max-mnist >/dev/null 2>&1
    echo "container $(time_start 15030 "$started")" >>"$out/starts.txt"
    podman rm -f -v max-mnist-bench-start >/dev/null 2>&1
    rm -rf "$out/assets"
    started=$(date +%s.%N)
    target/release/max-mnist --host 127.0.0.1 --port 15031 --assets-dir "$out/assets" >"$out/host.log" 2>&1 &
    pid=$!
    echo "host $(time_start 15031 "$started")" >>"$out/starts.txt"
    kill "$pid"; wait "$pid" || true
done

python3 - "$out" "$(size_mb max-mnist)" "$(size_mb max-mnist:cuda)" "$(parts max-mnist)" "$(parts max-mnist:cuda)" "$runs" <<'PY' | tee "$out/table.md"
import statistics, sys
out, cpu, cuda, cpu_parts, cuda_parts, runs = sys.argv[1:]
starts = {"container": ([], []), "host": ([], [])}
for line in open(f"{out}/starts.txt"):
    where, ready, first = line.split()
    starts[where][0].append(float(ready)); starts[where][1].append(float(first))
print("| image | size | libtorch and CUDA libraries | binaries | models |")
print("|---|---:|---:|---:|---:|")
for name, size, parts in (("max-mnist (CPU, default)", cpu, cpu_parts), ("max-mnist:cuda", cuda, cuda_parts)):
    libraries, binaries, models = parts.split()
    print(f"| {name} | {int(size):,} MB | {int(libraries):,} MiB | {binaries} MiB | {models} MiB |")
print(f"\nCPU / CUDA size: {int(cpu) / int(cuda):.2f}×\n")
print(f"| start-up, median of {runs} | to ready | to the first right prediction |")
print("|---|---:|---:|")
for where, label in (("container", "`docker run` (podman) → container"), ("host", "the same binary outside a container")):
    ready, first = starts[where]
    print(f"| {label} | {statistics.median(ready):.2f} s | {statistics.median(first):.2f} s |")
PY
echo "bench/image.sh: $out"
