#!/usr/bin/env bash
# PATCH latency while the sweep prunes a large event log (SQLite): a server
# sweeping every 10 s, EVENTS old events put in its database, and
# bench/patch_probe.py sending 256 KiB PATCHes for 25 s across at least
# two sweeps. Prints the probe's line and how many old events are left.
#
#   bench/prune.sh target/release/ferry [EVENTS]    (default 500000)
set -euo pipefail
bin=$1 events=${2:-500000}
here="$(cd "$(dirname "$0")" && pwd)"
port=$((20000 + RANDOM % 10000))
mkdir -p "$here/work"
dir=$(mktemp -d "$here/work/prune.XXXX")
"$bin" --addr 127.0.0.1:$port --data-dir "$dir" --log warn --sweep-every 10s &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
sqlite3 -cmd ".timeout 10000" "$dir/ferry.db" "
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT $events)
  INSERT INTO events (owner, kind, upload_id, data, created_at)
  SELECT 'owner' || (x % 100), 'completed', 'u' || x,
         '{\"id\":\"u' || x || '\",\"name\":\"a file.bin\",\"length\":123456,\"offset\":123456}', x
  FROM c;"
python3 "$here/patch_probe.py" $port 25
echo "old events left: $(sqlite3 "$dir/ferry.db" 'SELECT COUNT(*) FROM events WHERE created_at < 1000000000')"
