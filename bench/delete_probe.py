"""Times deletions while something else loads the server.

    python3 bench/delete_probe.py PORT [SECONDS]

On one keep-alive connection, over and over: create an upload of 10 bytes
(tus POST), then DELETE it, timing both, until SECONDS pass or the file
bench/work/probe.stop exists (make it when the load ends). Prints one line:
count, median, 90th percentile and worst, in milliseconds.

The many-at-once figures in bench/README.md ran it beside
`bench/target/release/client many http://127.0.0.1:PORT 64 16777216 1048576`.
"""
import http.client
import os
import sys
import time

STOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work", "probe.stop")


def main():
    port = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1e9
    conn = http.client.HTTPConnection("127.0.0.1", port)
    deletes, creates = [], []
    end = time.time() + seconds
    tus = {"Tus-Resumable": "1.0.0"}
    while time.time() < end and not os.path.exists(STOP):
        started = time.time()
        conn.request("POST", "/files/", headers={**tus, "Upload-Length": "10", "Content-Length": "0"})
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 201, reply.status
        creates.append((time.time() - started) * 1000)
        location = reply.getheader("Location")
        started = time.time()
        conn.request("DELETE", location[location.find("/files/"):], headers=tus)
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 204, reply.status
        deletes.append((time.time() - started) * 1000)
    print(summary("delete", deletes), "|", summary("create", creates))


def summary(name, ms):
    ms = sorted(ms)
    n = len(ms)
    return f"{name} n={n} median={ms[n // 2]:.0f} p90={ms[int(n * 0.9)]:.0f} worst={ms[-1]:.0f} ms"


if __name__ == "__main__":
    main()
