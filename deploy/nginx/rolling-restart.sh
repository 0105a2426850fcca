#!/bin/sh
# Restarts max-mnist containers one at a time, each only once the one before is serving again,
# so that the nginx in front (deploy/nginx/max-mnist.conf) always has one to send requests to.
# For each: `docker stop` sends SIGTERM (the server reports not ready, serves on for
# SHUTDOWN_DELAY_SECS, stops accepting, drains and exits 0), `docker start`, then wait until
# its health check passes (every model verified, loaded and warmed up).
# Usage: deploy/nginx/rolling-restart.sh NAME...   (DOCKER=podman to use podman)
set -eu
docker=${DOCKER:-docker}
for name in "$@"; do
    echo "rolling-restart: $name: stopping (drains in-flight requests)"
    "$docker" stop --time 60 "$name" >/dev/null
    "$docker" start "$name" >/dev/null
    tries=0
    until "$docker" exec "$name" max-mnist-healthcheck >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 120 ]; then
            echo "rolling-restart: $name is not ready after 60 s; stopping here" >&2
            "$docker" logs --tail 20 "$name" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "rolling-restart: $name: ready"
done
