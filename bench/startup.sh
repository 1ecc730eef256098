#!/usr/bin/env bash
# Start-up with many unfinished uploads: how long until the server answers
# /healthz, how long until its start-up check is done, and its peak memory
# (VmHWM) by then. The first run makes N uploads of
# 10 of 100 bytes in bench/work/active.N (one real upload, its record and
# file copied N times), which later runs reuse.
#
#   bench/startup.sh target/release/ferry [N]     (default 200000)
#   DONE_LINE=listening bench/startup.sh <older ferry>   (a build that checks
#   before it listens, and so has no "start-up check done" line)
set -euo pipefail
bin=$1 n=${2:-200000}
here="$(cd "$(dirname "$0")" && pwd)"
dir="$here/work/active.$n"
port=$((20000 + RANDOM % 10000))
if [ ! -d "$dir" ]; then
  mkdir -p "$dir"
  "$bin" --addr 127.0.0.1:$port --data-dir "$dir" --log warn & pid=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
  loc=$(curl -si -X POST http://127.0.0.1:$port/files/ -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 100' \
    -H 'Upload-Metadata: filename aGVsbG8udHh0' | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  curl -s -X PATCH "$loc" -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' --data-binary 0123456789 -o /dev/null
  kill $pid; wait $pid || true
  python3 - "$dir" "$n" <<'PY'
import base64, os, sqlite3, sys
d, n = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(os.path.join(d, "ferry.db"))
cols = [r[1] for r in db.execute("PRAGMA table_info(uploads)")]
row = dict(zip(cols, db.execute("SELECT * FROM uploads").fetchone()))
data = open(os.path.join(d, "blobs", row["blob_key"][:2], row["blob_key"]), "rb").read()
rows, blobs = [], []
for _ in range(n):
    key = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    rows.append(tuple(key if c in ("id", "blob_key") else row[c] for c in cols))
    blobs.append((key, 1))
    os.makedirs(os.path.join(d, "blobs", key[:2]), exist_ok=True)
    with open(os.path.join(d, "blobs", key[:2], key), "wb") as f:
        f.write(data)
names = ",".join(f'"{c}"' for c in cols)
db.executemany(f"INSERT INTO uploads ({names}) VALUES ({','.join('?' * len(cols))})", rows)
db.executemany("INSERT INTO blobs (key, refs) VALUES (?, ?)", blobs)
db.commit()
PY
fi
start=$(date +%s.%N)
log="$dir.log"
"$bin" --addr 127.0.0.1:$port --data-dir "$dir" --log info >"$log" 2>&1 & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 6000); do
  curl -fs http://127.0.0.1:$port/healthz >/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "the server stopped"; exit 1; }
  sleep 0.1
done
serving=$(date +%s.%N)
# The start-up check runs beside the requests, and says when it is done.
for _ in $(seq 60000); do
  grep -q "${DONE_LINE:-start-up check done}" "$log" && break
  kill -0 $pid 2>/dev/null || { echo "the server stopped"; exit 1; }
  sleep 0.1
done
checked=$(date +%s.%N)
secs() { python3 -c "print(round($1 - $start, 1))"; }
echo "$n unfinished uploads: serving after $(secs "$serving") s," \
  "checked after $(secs "$checked") s," \
  "peak $(awk '/VmHWM/ {print int($2 / 1024)}' /proc/$pid/status) MiB"
