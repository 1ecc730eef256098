"""Times small PATCHes while something else happens on the server.

    python3 bench/patch_probe.py PORT SECONDS [CHUNK_BYTES]

On one keep-alive connection: create an upload of unknown length (tus,
Upload-Defer-Length), then send PATCHes of CHUNK_BYTES (default 256 KiB)
one after another for SECONDS. Prints one line: count, median, 99th
percentile and worst in milliseconds, when the worst one started (seconds
after the first), and how many took over 10 ms in each second that had any.

`bench/prune.sh` runs it while the server prunes a large event log.
"""
import http.client
import sys
import time


def main():
    port = int(sys.argv[1])
    seconds = float(sys.argv[2])
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 256 * 1024
    body = bytes(range(256)) * (chunk // 256)
    tus = {"Tus-Resumable": "1.0.0"}
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/files/", headers={**tus, "Upload-Defer-Length": "1", "Content-Length": "0"})
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 201, reply.status
    location = reply.getheader("Location")
    path = location[location.find("/files/"):]
    offset = 0
    times = []
    first = time.time()
    while time.time() < first + seconds:
        started = time.time()
        conn.request("PATCH", path, body=body, headers={
            **tus, "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"})
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 204, (reply.status, reply.read())
        offset += len(body)
        times.append((started - first, (time.time() - started) * 1000))
    ms = sorted(t for _, t in times)
    worst_at = max(times, key=lambda t: t[1])[0]
    n = len(ms)
    print(f"patch n={n} median={ms[n // 2]:.1f} p99={ms[int(n * 0.99)]:.1f} "
          f"worst={ms[-1]:.0f} ms (at {worst_at:.1f} s)")
    slow = {}
    for at, t in times:
        if t > 10:
            slow[int(at)] = slow.get(int(at), 0) + 1
    print("over 10 ms, by second:", " ".join(f"{s}s:{n}" for s, n in sorted(slow.items())))


if __name__ == "__main__":
    main()
