# Sourced by the bench scripts that start this project's server:
# `wait_until_ready PORT PID LOG [PATH]` waits (at most 30 s) until the server PID answers GET
# PATH (default /health/ready; older revisions, which have none, /model/metadata) on
# 127.0.0.1:PORT. If it exits first or does not answer in time, it shows the end of its LOG
# and fails, so that no figure is measured against a server that is not there.
wait_until_ready() {
    local port=$1 pid=$2 log=$3 path=${4:-/health/ready}
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port$path" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "The server on port $port is not ready; the end of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
}
