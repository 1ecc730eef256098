#!/usr/bin/env bash
# The browser tests: the server (target/release/ferry, or $FERRY_BIN) on
# 127.0.0.1:3000 over a fresh data folder ($FERRY_DATA_DIR, default
# target/e2e-data), then Playwright in Debian's Chromium. Exits with the
# tests' status; the server is stopped whatever happens. Arguments go to
# Playwright (a spec file, -g "a test's name").
set -euo pipefail
cd "$(dirname "$0")/.."
addr=127.0.0.1:3000
data=${FERRY_DATA_DIR:-target/e2e-data}
rm -rf "$data"
# The tests that start servers of their own run the same binary.
export FERRY_BIN
FERRY_BIN=$(realpath "${FERRY_BIN:-target/release/ferry}")
"$FERRY_BIN" --addr "$addr" --data-dir "$data" --site-root target/site --log warn &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "the server stopped (is $addr in use?)" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "http://$addr/healthz" >/dev/null || { echo "the server did not answer on $addr" >&2; exit 1; }
cd end2end
npx playwright test "$@"
