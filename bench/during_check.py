#!/usr/bin/env python3
"""Requests while the start-up check runs: 30 HEADs of unfinished uploads an
earlier run left (each checked on the spot), each followed by a new upload of
1 MiB sent in one PATCH, 0.2 s apart. Prints the median and worst times.

    bench/startup.sh <ferry> 200000        # makes bench/work/active.200000
    <ferry> --addr 127.0.0.1:24567 --data-dir bench/work/active.200000 &
    bench/during_check.py 24567 bench/work/active.200000

Start it right after the server (the check of 200,000 uploads takes about
16 s here); run it again once the log says "start-up check done" to compare.
"""
import http.client
import os
import sqlite3
import statistics
import sys
import time

port, data = int(sys.argv[1]), sys.argv[2]
db = sqlite3.connect(os.path.join(data, "ferry.db"))
ids = [r[0] for r in db.execute(
    "SELECT id FROM uploads WHERE state = 'active' ORDER BY random() LIMIT 30")]
db.close()


def req(method, path, headers, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t = time.perf_counter()
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    return r, (time.perf_counter() - t) * 1000


tus = {"Tus-Resumable": "1.0.0"}
for _ in range(200):
    try:
        req("GET", "/healthz", {})
        break
    except OSError:
        time.sleep(0.05)
heads, patches = [], []
for upload in ids:
    r, ms = req("HEAD", f"/files/{upload}", tus)
    assert r.status == 200, r.status
    heads.append(ms)
    # Another owner: the copied uploads fill the anonymous one's quota.
    r, _ = req("POST", "/files/", {**tus, "Upload-Length": str(1 << 20),
                                   "Authorization": "Bearer during-the-check"})
    assert r.status == 201, r.status
    loc = r.getheader("Location")
    r, ms = req("PATCH", loc[loc.index("/files/"):],
                {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                b"x" * (1 << 20))
    assert r.status == 204, r.status
    patches.append(ms)
    time.sleep(0.2)


def q(v):
    return f"median {statistics.median(v):.1f} ms, worst {max(v):.1f} ms"


print(f"HEAD of an old unfinished upload: {q(heads)}; 1 MiB PATCH of a new one: {q(patches)}")
