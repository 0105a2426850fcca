# Sourced by the bench/ scripts that compare two servers under the same load in the same run
# (compare_binaries.sh, own_model.sh). Needs wrk, and the bodies of bodies.sh in OUT.
#
#   alternate_servers OUT FIRST FIRST_PORT SECOND SECOND_PORT CONCURRENCY...
#
# waits until each server on 127.0.0.1 reads samples/digit-7.png as 7 at /model/predict, warms
# each up for 3 s, then for each concurrency runs wrk (one thread, one 28×28 PNG per multipart
# request) RUNS times for DURATION s on each server in turn, writing
# OUT/NAME_cCONCURRENCY_runN.txt, and prints the medians with the ratio SECOND/FIRST
# (bench/throughput/compare.py).
alternate_servers() {
    local out=$1 first=$2 first_port=$3 second=$4 second_port=$5
    shift 5
    local port concurrency run side
    for port in "$first_port" "$second_port"; do
        for _ in $(seq 300); do
            curl -sf -F image=@samples/digit-7.png "http://127.0.0.1:$port/model/predict" |
                grep -q '"prediction": *7' && break
            sleep 0.1
        done
        BODY_FILE="$out/single.body" wrk -t1 -c8 -d3s -s bench/throughput/post.lua \
            "http://127.0.0.1:$port/model/predict" >/dev/null
    done
    for concurrency in "$@"; do
        for run in $(seq "${RUNS:-3}"); do
            for side in "$first:$first_port" "$second:$second_port"; do
                BODY_FILE="$out/single.body" wrk -t1 -c"$concurrency" -d"${DURATION:-10}s" --latency --timeout 10s \
                    -s bench/throughput/post.lua "http://127.0.0.1:${side#*:}/model/predict" \
                    >"$out/${side%%:*}_c${concurrency}_run$run.txt"
            done
        done
    done
    python3 bench/throughput/compare.py "$out" "$first" "$second" "$@"
}
