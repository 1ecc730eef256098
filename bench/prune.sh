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
# Python's own sqlite3 module: nothing to install beyond what the bench uses.
python3 - "$dir/ferry.db" "$events" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("""
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?)
  INSERT INTO events (owner, kind, upload_id, data, created_at)
  SELECT 'owner' || (x % 100), 'completed', 'u' || x,
         '{"id":"u' || x || '","name":"a file.bin","length":123456,"offset":123456}', x
  FROM c""", (int(sys.argv[2]),))
db.commit()
PY
python3 "$here/patch_probe.py" $port 25
python3 -c 'import sqlite3, sys; print("old events left:", sqlite3.connect(sys.argv[1]).execute(
  "SELECT COUNT(*) FROM events WHERE created_at < 1000000000").fetchone()[0])' "$dir/ferry.db"
