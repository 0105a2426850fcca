#!/usr/bin/env bash
# Runs the image as the README does (`docker run -p 5000:5000 max-mnist`, here on a loopback
# port) and checks, with podman: every sample is predicted right; the image's health check
# reports healthy; the server runs as the non-root user; it also runs with --read-only and
# --cap-drop ALL; SIGTERM drains and exits 0; two containers behind nginx
# (deploy/nginx/max-mnist.conf) restarted one at a time under load fail no request; and a
# tampered archive given as --build-arg model_bucket fails the build.
# Usage: scripts/image-test.sh [IMAGE]   (ports 5000-5002 and 15000-15002 on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-max-mnist}
port=${PORT:-15000}
names=()
work=$(mktemp -d)
cleanup() {
    for name in "${names[@]}"; do podman rm -f -v "$name" >/dev/null 2>&1 || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    [ -f "$work/http.pid" ] && kill "$(cat "$work/http.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image-test: FAILED: $*" >&2; exit 1; }

# Starts a container NAME on PORT with the extra run options, and waits until it is ready.
start() {
    local name=$1 published=$2
    shift 2
    podman rm -f -v "$name" >/dev/null 2>&1 || true
    names+=("$name")
    local started
    started=$(date +%s.%N)
    # Without systemd, podman says on stderr that it cannot schedule the health check timer;
    # `podman healthcheck run` below runs it directly.
    podman run -d --name "$name" -p "127.0.0.1:$published:5000" "$@" "$image" >/dev/null 2>"$work/run.log" \
        || { cat "$work/run.log" >&2; fail "podman run $name failed"; }
    for _ in $(seq 1 600); do
        if curl -fsS "http://127.0.0.1:$published/health/ready" >/dev/null 2>&1; then
            echo "image-test: $name ready $(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')") s after docker run"
            return 0
        fi
        sleep 0.1
    done
    podman logs "$name" >&2
    fail "$name did not become ready"
}

# The label the server at URL gives the sample FILE, written as sample names write classes:
# lowercase, with `-` for anything else (`T-shirt/top` is `t-shirt-top`, `7` stays `7`).
label_of() {
    curl -fsS -F "image=@samples/$2" "$1" | python3 -c 'import json, re, sys
print(re.sub(r"[^a-z0-9]+", "-", json.load(sys.stdin)["predictions"][0]["label"].lower()))'
}

start max-mnist-image-test "$port"
checked=0
for file in samples/*; do
    name=$(basename "$file")
    # The class the file name gives: fashion-<class>[-rgb].<ext>, or the digit after a `-`.
    case "$name" in
        fashion-*)
            route=/models/fashion-mnist/predict
            expected=${name#fashion-}
            expected=${expected%.*}
            expected=${expected%-rgb}
            ;;
        *)
            route=/model/predict
            expected=$(grep -oE -- '-[0-9]' <<<"$name" | head -1 | tr -d -)
            ;;
    esac
    got=$(label_of "http://127.0.0.1:$port$route" "$name")
    [ "$got" = "$expected" ] || fail "$name: predicted $got, expected $expected"
    checked=$((checked + 1))
done
echo "image-test: $checked samples predicted right"

podman healthcheck run max-mnist-image-test >/dev/null || fail "the health check is not healthy"
status=$(podman inspect --format '{{.State.Health.Status}}' max-mnist-image-test)
[ "$status" = healthy ] || fail "health status $status"
echo "image-test: the health check reports healthy"

user=$(podman top max-mnist-image-test user | tail -n +2 | sort -u)
[ "$user" = max-mnist ] || fail "the server runs as $user"
echo "image-test: the server runs as $(podman exec max-mnist-image-test id -u) ($user)"

start max-mnist-image-locked $((port + 1)) --read-only --cap-drop ALL
got=$(label_of "http://127.0.0.1:$((port + 1))/model/predict" digit-7.png)
[ "$got" = 7 ] || fail "--read-only --cap-drop ALL: predicted $got"
echo "image-test: it serves with --read-only and --cap-drop ALL"

# SIGTERM while requests are in flight: they are answered, and the process exits 0.
pids=()
for _ in $(seq 1 20); do
    curl -fsS -o /dev/null -F image=@samples/digit-3.png "http://127.0.0.1:$port/model/predict" &
    pids+=($!)
done
sleep 0.2
podman stop -t 30 max-mnist-image-test >/dev/null 2> >(grep -v "systemd connection" >&2)
for pid in "${pids[@]}"; do wait "$pid" || fail "a request in flight during SIGTERM failed"; done
code=$(podman inspect --format '{{.State.ExitCode}}' max-mnist-image-test)
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
echo "image-test: SIGTERM drained and exited 0"
echo "image-test: image size $(podman image inspect --format '{{.Size}}' "$image") bytes"

# Two containers behind nginx, as deploy/nginx/max-mnist.conf has them (here listening on
# loopback only), restarted one at a time with deploy/nginx/rolling-restart.sh while 16 clients
# send digits through nginx: every request is answered 200 with the right digit.
start max-mnist-1 5001 -e SHUTDOWN_DELAY_SECS=2
start max-mnist-2 5002 -e SHUTDOWN_DELAY_SECS=2
sed 's/listen 5000;/listen 127.0.0.1:5000;/' deploy/nginx/max-mnist.conf >"$work/max-mnist.conf"
cat >"$work/nginx.conf" <<CONF
user root;
pid $work/nginx.pid;
error_log $work/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    include $work/max-mnist.conf;
}
CONF
nginx -c "$work/nginx.conf" -p "$work" || fail "nginx did not start"
python3 - "$work/load.json" "$work/stop" <<'PY' &
# 16 clients, each with its own keep-alive connection to nginx, post every digit sample in turn
# until the stop file appears, and count what was not a 200 with the right digit.
import http.client, json, os, pathlib, re, sys, threading, time, uuid
result, stop = sys.argv[1], sys.argv[2]
samples = []
for path in sorted(pathlib.Path("samples").glob("digit-*.png")):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    samples.append((re.search(r"-(\d)", path.name).group(1), boundary, body))
counts = {"ok": 0, "failed": 0}
failures = []
lock = threading.Lock()
def client():
    connection = http.client.HTTPConnection("127.0.0.1", 5000, timeout=30)
    while not os.path.exists(stop):
        for label, boundary, body in samples:
            try:
                connection.request("POST", "/model/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
                response = connection.getresponse()
                answer = response.read()
                good = response.status == 200 and json.loads(answer)["predictions"][0]["label"] == label
                why = f"{response.status} {answer[:200]!r}"
            except Exception as error:
                good, why = False, repr(error)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", 5000, timeout=30)
            with lock:
                counts["ok" if good else "failed"] += 1
                if not good:
                    failures.append(why)
threads = [threading.Thread(target=client) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
json.dump({**counts, "failures": failures[:10]}, open(result, "w"))
PY
load=$!
sleep 3
DOCKER=podman deploy/nginx/rolling-restart.sh max-mnist-1 max-mnist-2 2> >(grep -v "systemd connection" >&2)
sleep 3
touch "$work/stop"
wait "$load"
python3 - "$work/load.json" <<'PY' || fail "requests failed during the rolling restart"
import json, sys
load = json.load(open(sys.argv[1]))
print(f"image-test: rolling restart behind nginx: {load['ok']} requests answered right, {load['failed']} failed")
for failure in load["failures"]:
    print("  ", failure)
sys.exit(1 if load["failed"] or load["ok"] < 1000 else 0)
PY

# MAX's --build-arg model_bucket, given a bucket whose mnist archive has one byte changed:
# the build fails at the checksum, naming the archive, and the other files are fetched and OK.
mkdir "$work/bucket"
cp -r pretrained-model/. "$work/bucket/"
python3 - "$work/bucket/mnist/mnist-classifier.tar.gz" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2] ^= 0xFF
open(sys.argv[1], "wb").write(data)
PY
python3 -m http.server --bind 127.0.0.1 --directory "$work/bucket" 15080 >/dev/null 2>&1 &
echo $! >"$work/http.pid"
sleep 1
if podman build --format docker --network host --build-arg model_bucket=http://127.0.0.1:15080 \
    -t localhost/max-mnist-tampered . >"$work/tampered.log" 2>&1; then
    podman rmi -f localhost/max-mnist-tampered >/dev/null 2>&1 || true
    fail "a tampered model_bucket built an image"
fi
grep -q '^pretrained-model/mnist/mnist-classifier.tar.gz: FAILED' "$work/tampered.log" \
    || { tail -20 "$work/tampered.log" >&2; fail "the tampered build failed for another reason"; }
grep -q '^pretrained-model/fashion-mnist/fashion-mnist-classifier.tar.gz: OK' "$work/tampered.log" \
    || fail "the bucket's other files were not fetched"
echo "image-test: a tampered archive as --build-arg model_bucket fails the build"
echo "image-test: passed"
