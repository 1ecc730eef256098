#!/usr/bin/env bash
# What one build of Ferry spends on the CPU per upload, with the disk out of
# the picture: a server over a data folder on tmpfs (/dev/shm), three tus
# uploads of 512 MiB in 1 MiB PATCHes and three in 64 MiB PATCHes, each
# line the upload's time and the server's own CPU time (user + system, from
# /proc) in hundredths of a second. Run two builds one after the other, a
# few times each, to compare them:
#
#   bench/cpu.sh /tmp/ferry-before before; bench/cpu.sh target/release/ferry after
#
# Extra arguments go to the server (say --read-buffer 1MiB). Needs the bench
# client (cargo build --release --manifest-path bench/Cargo.toml).
set -euo pipefail
bin=$1 label=$2
shift 2
client="$(dirname "$0")/target/release/client"
port=$((20000 + RANDOM % 10000))
dir=$(mktemp -d /dev/shm/ferry-cpu.XXXX)
"$bin" --addr 127.0.0.1:$port --data-dir "$dir" --log warn "$@" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
for chunk in 1 64; do
    for run in 1 2 3; do
        before=$(cpu)
        out=$("$client" tus http://127.0.0.1:$port $((512 << 20)) $((chunk << 20)))
        after=$(cpu)
        seconds=$(python3 -c 'import json, sys; print(round(json.loads(sys.argv[1])["seconds"], 3))' "$out")
        echo "$label chunk=${chunk}MiB run=$run wall=${seconds}s server_cpu=$((after - before))cs"
    done
done
