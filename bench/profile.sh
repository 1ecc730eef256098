#!/usr/bin/env bash
# Where one upload's time goes: Ferry's release binary on a fresh data
# folder, a 64 MiB warm-up, then `perf record` while the benchmark client
# sends 512 MiB in PATCHes of <chunk> MiB; prints the client's result and
# Ferry's own timings (/metrics), and leaves bench/work/perf-<chunk>.data
# for `perf report -i`. Needs `make bench` built first, and perf.
#
#   bench/profile.sh <chunk-MiB>
set -euo pipefail
cd "$(dirname "$0")/.."
chunk=${1:?chunk size in MiB}
work=bench/work/profile
rm -rf "$work" && mkdir -p "$work"
port=3931
target/release/ferry --addr 127.0.0.1:$port --data-dir "$work" --log warn --site-root target/site &
ferry=$!
trap 'kill $ferry 2>/dev/null || true' EXIT
sleep 1
client=bench/target/release/client
$client tus http://127.0.0.1:$port $((64 << 20)) $((chunk << 20)) >/dev/null
perf record -F 1999 -g -p $ferry -o "bench/work/perf-$chunk.data" 2>/dev/null &
perf=$!
sleep 0.5
$client tus http://127.0.0.1:$port $((512 << 20)) $((chunk << 20))
kill -INT $perf
wait $perf 2>/dev/null || true
curl -s http://127.0.0.1:$port/metrics | grep -E "duration_seconds_(sum|count)" | grep -v POST
