#!/usr/bin/env python3
"""Ferry's benchmark: Ferry against the machine's limit and against real tus
servers, side by side in one run, reported as ratios.

Run by `make bench` (which builds everything first). Writes
bench/results/results.md, results.json and chart.svg, and prints the table.

Environment: FERRY_BENCH_RUNS (default 5), FERRY_BENCH_BYTES (default 1 GiB),
FERRY_BENCH_ONLY (comma-separated scenario names, to run a subset; "bundle"
alone reports the embeddable uploader's download size),
FERRY_BENCH_BASELINE (another ferry binary, say an earlier commit's, measured
side by side as "ferry-baseline").
"""

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
CLIENT = BENCH / "target/release/client"
RECEIVER = BENCH / "target/release/receiver"
S3RAW = BENCH / "target/release/s3raw"
SINK = BENCH / "target/release/sink"
FERRY = ROOT / "target/release/ferry"
BASELINE = os.environ.get("FERRY_BENCH_BASELINE")
RUSTUS = BENCH / ".tools/bin/rustus"
S3S_FS = ROOT / "bench/.tools/bin/s3s-fs"  # optimised: scripts/setup.sh bench
NODE_SERVER = BENCH / "peers/tus-node-server.mjs"
BROWSER = BENCH / "browser.mjs"
SITE = ROOT / "target/site"

MIB = 1024 * 1024
RUNS = int(os.environ.get("FERRY_BENCH_RUNS", "5"))
SIZE = int(os.environ.get("FERRY_BENCH_BYTES", str(1024 * MIB)))
ONLY = {s for s in os.environ.get("FERRY_BENCH_ONLY", "").split(",") if s}
CHUNKS = [int(c) for c in os.environ.get("FERRY_BENCH_CHUNKS", "1,8,64").split(",")]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def pg_bin():
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("no PostgreSQL server: run scripts/setup.sh test")
    return versions[-1].parent


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_postgres(folder):
    """A PostgreSQL server of its own over `folder`; answers (process, URL)."""
    folder.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(as_postgres([str(pg_bin() / "initdb"), "-D", str(data), "-U", "ferry", "-A", "trust",
                                "-E", "UTF8", "--no-sync"]), check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    # Durable like a production database: fsync stays on.
    proc = subprocess.Popen(as_postgres([str(pg_bin() / "postgres"), "-D", str(data), "-p", str(port),
                                         "-k", str(folder), "-c", "listen_addresses=127.0.0.1"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    for _ in range(100):
        if subprocess.run([str(pg_bin() / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ferry", "ferry"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return proc, f"postgres://ferry@127.0.0.1:{port}/ferry"
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not start")


def start_s3(folder):
    """s3s-fs over `folder` with a bucket `bench`; answers (process, endpoint)."""
    if not S3S_FS.exists():
        raise RuntimeError("no s3s-fs: run scripts/setup.sh bench")
    (folder / "bench").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen([str(S3S_FS), "--host", "127.0.0.1", "--port", str(port), "--access-key", "bench",
                             "--secret-key", "bench-secret", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


S3_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def s3raw(server, size, part):
    """One multipart upload straight into the server's S3 store."""
    out = subprocess.run([str(S3RAW), server.endpoint, "bench", str(size), str(part)],
                         capture_output=True, text=True, env={**os.environ, **S3_KEYS})
    if out.returncode != 0:
        raise RuntimeError(f"s3raw: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mib(pid):
    """The process's peak resident memory (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Server:
    """A server under test, on a fresh data folder."""

    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.dir = WORK / f"{name}-{self.port}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.services = []
        self.s3 = None
        env = None
        if name == "ferry":
            cmd = [str(FERRY), "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir), "--log", "warn",
                   "--site-root", str(SITE)]
        elif name == "ferry-no-fsync":
            cmd = [str(FERRY), "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir), "--log", "warn",
                   "--fsync", "never"]
        elif name == "ferry-baseline":
            cmd = [BASELINE, "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir), "--log", "warn"]
        elif name == "ferry-no-interval":
            # Checkpoints by size only (every 64 MiB), as before the one-second
            # checkpoints: what those cost.
            cmd = [str(FERRY), "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir), "--log", "warn",
                   "--checkpoint-interval", "1h"]
        elif name in ("ferry-s3", "ferry-s3-baseline"):
            # Several-instance mode: records in PostgreSQL, bytes in S3
            # (s3s-fs, itself writing files on this machine's disk).
            pg, database = start_postgres(self.dir / "pg")
            s3, endpoint = start_s3(self.dir / "s3")
            self.services = [pg, s3]
            self.s3 = s3
            env = {**os.environ, **S3_KEYS}
            binary = BASELINE if name == "ferry-s3-baseline" else str(FERRY)
            cmd = [binary, "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.dir / "data"),
                   "--log", "warn", "--database", database, "--storage", f"s3://bench?endpoint={endpoint}"]
        elif name == "s3-raw":
            # The S3 limit's store: s3s-fs alone; s3raw uploads into it.
            s3, self.endpoint = start_s3(self.dir / "s3")
            self.services = [s3]
            self.s3 = s3
            cmd = ["sleep", "infinity"]
        elif name == "tus-node":
            cmd = ["node", str(NODE_SERVER), str(self.port), str(self.dir)]
        elif name == "rustus":
            cmd = [str(RUSTUS), "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.dir),
                   "--url", "/files", "--max-body-size", str(128 * MIB), "--log-level", "ERROR"]
        elif name == "sink":
            cmd = [str(SINK), f"127.0.0.1:{self.port}"]
        elif name == "limit":
            cmd = [str(RECEIVER), f"127.0.0.1:{self.port}", str(self.dir)]
        else:
            raise ValueError(name)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if name != "s3-raw":
            wait_port(self.port, self.proc)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def s3_read(self):
        """Bytes the S3 server has read so far (sockets and its files)."""
        for line in Path(f"/proc/{self.s3.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        return 0

    def clean(self):
        if self.s3 is not None:
            bucket = self.dir / "s3" / "bench"
            shutil.rmtree(bucket)
            bucket.mkdir()
            return
        for p in self.dir.iterdir():
            if p.is_dir() and self.name.startswith("ferry") and p.name == "blobs":
                shutil.rmtree(p)
                p.mkdir()
            elif p.is_file() and not p.name.startswith("ferry.db"):
                p.unlink()

    def stop(self):
        rss = peak_rss_mib(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        for service in self.services:
            service.terminate()
            service.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rss


def client(*args):
    out = subprocess.run([str(CLIENT), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"client {args}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def mbps(res):
    return res["bytes"] / res["seconds"] / 1e6


def measure(name, runs, one):
    """Runs `one(server)` `runs` times on a fresh server; MB/s and peak memory."""
    server = Server(name)
    speeds = []
    try:
        for _ in range(runs):
            speeds.append(one(server))
            server.clean()
    finally:
        rss = server.stop()
    return {**summary(speeds), "rss_mib": rss}


def measure_rounds(specs, runs):
    """Measures several servers side by side: each `(key, name, one)` gets a
    fresh server, and every round runs each of them once, in turn, so that
    the machine's slow and fast spells fall on all of them alike. The order
    is shuffled every round (the same shuffles every run): a row that always
    ran first after the receivers measured up to 0.07 below the same program
    two places later. Answers, per key, MB/s, peak memory and the MB/s of
    every round in order."""
    servers = {}
    speeds = {key: [] for key, _, _ in specs}
    try:
        for key, name, _ in specs:
            servers[key] = Server(name)
        for round_ in range(runs):
            order = list(specs)
            random.Random(round_).shuffle(order)
            for key, _, one in order:
                speeds[key].append(one(servers[key]))
                servers[key].clean()
    finally:
        rss = {key: server.stop() for key, server in servers.items()}
    return {key: {**summary(speeds[key]), "rss_mib": rss.get(key), "rounds": speeds[key]} for key in speeds}


def dd_reference():
    src = WORK / "dd-source"
    dst = WORK / "dd-target"
    client("dump", src, SIZE)
    speeds = []
    for _ in range(RUNS):
        started = time.time()
        subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fdatasync"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        speeds.append(SIZE / (time.time() - started) / 1e6)
        dst.unlink()
    src.unlink()
    return summary(speeds)


def wanted(scenario):
    return not ONLY or scenario in ONLY


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    peers = ["tus-node"] + (["rustus"] if RUSTUS.exists() else [])
    if not RUSTUS.exists():
        log("rustus is not installed (bench/.tools/bin/rustus): measured without it")
    results = {"size": SIZE, "runs": RUNS, "rows": []}

    def row(scenario, server, chunk, r, **extra):
        results["rows"].append({"scenario": scenario, "server": server, "chunk_mib": chunk, **r, **extra})
        log(f"  {scenario:<10} {server:<15} {str(chunk or ''):>4} {r['median']:8.1f} MB/s"
            f"  ({r['min']:.1f}-{r['max']:.1f}, {r['runs']} runs)  peak {r.get('rss_mib') or float('nan'):.1f} MiB")

    log(f"benchmark: {SIZE // MIB} MiB per upload, {RUNS} runs per figure")
    raw = ("limit", "limit", lambda s: mbps(client("raw", f"127.0.0.1:{s.port}", SIZE)))
    if wanted("single"):
        # The limit and every single-upload row side by side, round after
        # round; each row's ratio is the median over rounds of its speed
        # over the limit's speed in the same round.
        # ferry-no-fsync: the same program without durability, like the
        # peers (neither syncs): what durability itself costs.
        # ferry-no-interval: checkpoints by size only, not every second:
        # what the one-second checkpoints cost.
        specs = [raw]
        # The headline limit, per chunk size: the careful receiver, which
        # writes each piece as it arrives and starts its write-back at once,
        # then at the end of each chunk syncs and answers before the next
        # chunk is sent (the client waits): the least any server that
        # acknowledges each request durably must do. And the same without
        # the early write-back, for reference.
        for chunk in CHUNKS:
            specs.append((("careful", chunk), "limit",
                          lambda s, chunk=chunk: mbps(client("raw", f"127.0.0.1:{s.port}", SIZE, chunk * MIB,
                                                             "careful"))))
            specs.append((("acked", chunk), "limit",
                          lambda s, chunk=chunk: mbps(client("raw", f"127.0.0.1:{s.port}", SIZE, chunk * MIB))))
        for chunk in CHUNKS:
            baseline = ["ferry-baseline"] if BASELINE else []
            for name in ["ferry"] + baseline + ["ferry-no-interval", "ferry-no-fsync"] + peers:
                specs.append(((name, chunk), name,
                              lambda s, chunk=chunk: mbps(client("tus", s.base, SIZE, chunk * MIB))))
        measured = measure_rounds(specs, RUNS)
        careful = {chunk: measured.pop(("careful", chunk)) for chunk in CHUNKS}
        # The reference for rows of no chunk size: 8 MiB, when measured.
        ref = 8 if 8 in careful else CHUNKS[0]
        limit = careful[ref]
        end_sync = measured.pop("limit")
        for chunk in CHUNKS:
            careful[chunk]["round_ratio"] = 1.0
            row("limit", "careful receiver", chunk, careful[chunk], of=f"careful {chunk}")
        end_sync["round_ratio"] = statistics.median([a / b for a, b in zip(end_sync["rounds"], limit["rounds"])])
        row("limit", "receiver, one sync at the end", None, end_sync, of=f"careful {ref}")
        for (name, chunk), r in measured.items():
            # Each row against the careful receiver with the same chunks,
            # in the same rounds.
            r["round_ratio"] = statistics.median([a / b for a, b in zip(r["rounds"], careful[chunk]["rounds"])])
            if name == "acked":
                row("limit", "receiver, ack per chunk, no early write-back", chunk, r, of=f"careful {chunk}")
            else:
                row("single", name, chunk, r, of=f"careful {chunk}")
    else:
        limit = measure_rounds([("careful", "limit", lambda s: mbps(
            client("raw", f"127.0.0.1:{s.port}", SIZE, 8 * MIB, "careful")))], RUNS)["careful"]
        row("limit", "careful receiver", 8, limit, of="careful 8")
    if wanted("dd"):
        row("dd", "dd conv=fdatasync", None, dd_reference())
    if wanted("many"):
        # Little's law: with every upload's next PATCH sent as soon as the
        # last is answered, a PATCH's mean latency is 64 x its size over the
        # total speed, so 4 MiB PATCHes at 700 MB/s wait about 380 ms on
        # average whatever the server does; 1 MiB PATCHes show the spread.
        # With FERRY_BENCH_BASELINE, the baseline runs in the same rounds.
        rows = [("ferry", 1), ("ferry", 4)]
        if BASELINE:
            rows += [("ferry-baseline", 1), ("ferry-baseline", 4)]
        rows += [(peer, 4) for peer in peers]
        latencies = {key: {} for key in rows}

        def one(s, key):
            res = client("many", s.base, 64, 16 * MIB, key[1] * MIB)
            for k in ("p50", "p99", "errors"):
                latencies[key].setdefault(k, []).append(res[k])
            return mbps(res)

        measured = measure_rounds([(key, key[0], lambda s, key=key: one(s, key)) for key in rows], RUNS)
        for key in rows:
            many = latencies[key]
            row("many", key[0], key[1], measured[key], p50_ms=1000 * statistics.median(many["p50"]),
                p99_ms=1000 * statistics.median(many["p99"]), errors=sum(many["errors"]))
    if wanted("s3"):
        # The scale-out path: the same single upload into S3 + PostgreSQL,
        # side by side with its limit, a multipart upload of the same bytes
        # straight into the same kind of store, in parts of Ferry's default
        # size sent one after another. Also what the S3 server read per
        # upload (its sockets, and its own files when it assembles the
        # object), as a share of what it read for the raw upload: bytes
        # stored more than once show there.
        reads = {}

        def counted(key, one):
            def run(s):
                before = s.s3_read()
                speed = one(s)
                reads.setdefault(key, []).append(s.s3_read() - before)
                return speed
            return run

        specs = [("s3-raw", "s3-raw", counted("s3-raw", lambda s: mbps(s3raw(s, SIZE, 8 * MIB))))]
        for chunk in CHUNKS:
            for name in ["ferry-s3"] + (["ferry-s3-baseline"] if BASELINE else []):
                specs.append(((name, chunk), name, counted((name, chunk), lambda s, chunk=chunk: mbps(
                    client("tus", s.base, SIZE, chunk * MIB)))))
        measured = measure_rounds(specs, RUNS)
        raw_s3 = measured.pop("s3-raw")
        raw_read = statistics.median(reads["s3-raw"])
        raw_s3["ratio_s3"] = 1.0
        raw_s3["rss_mib"] = None  # (no server of ours: s3raw is the client)
        row("s3", "raw multipart upload", 8, raw_s3, of="raw multipart",
            notes=f"parts of 8 MiB; the S3 server read {raw_read / SIZE:.2f} x the upload")
        for (name, chunk), r in measured.items():
            r["ratio_s3"] = statistics.median([a / b for a, b in zip(r["rounds"], raw_s3["rounds"])])
            row("s3", name, chunk, r, of="raw multipart",
                notes=f"the S3 server read {statistics.median(reads[(name, chunk)]) / raw_read:.2f} x "
                      "what it read for the raw upload")
    if wanted("browser"):
        # The real page in headless Chromium against the benchmark client,
        # the same 256 MiB in 8 MiB PATCHes to the same server.
        size = min(SIZE, 256 * MIB)
        source = WORK / "browser-source.bin"
        client("dump", source, size)

        def page(mode):
            def one(s):
                out = subprocess.run(["node", str(BROWSER), s.base, str(source), "8", mode],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise RuntimeError(f"browser: {out.stderr.strip()[-500:]}")
                return mbps(json.loads(out.stdout.strip().splitlines()[-1]))
            return one

        by_client = measure("ferry", RUNS, lambda s: mbps(client("tus", s.base, size, 8 * MIB)))
        row("browser", "ferry client", 8, by_client, notes=f"{size // MIB} MiB")
        # What the browser can send at all, whatever the server: the same
        # PATCHes from Chromium to a server that drops the bytes
        # (bench/src/bin/sink.rs), and from the client for reference.
        client_sink = measure("sink", RUNS, lambda s: mbps(client("http", s.base, size, 8 * MIB)))
        row("browser", "client -> sink", 8, client_sink, notes=f"{size // MIB} MiB")
        browser_sink = measure("sink", RUNS, page("sink"))
        row("browser", "chromium -> sink", 8, browser_sink,
            notes=f"{size // MIB} MiB; {browser_sink['median'] / by_client['median']:.2f} of the client to Ferry: "
                  "the most any page could reach")
        # Both verified: the page's SHA-256 of the file is compared with the
        # server's before the file shows done; hashed while sent (in a
        # worker), or before sending (the instant-upload check).
        for mode, label in [("verify", "ferry page, verified while sent"),
                            ("parts", "ferry page, 4 parts, verified while sent"),
                            ("hash", "ferry page, hashed first")]:
            r = measure("ferry", RUNS, page(mode))
            row("browser", label, 8, r,
                notes=f"{size // MIB} MiB; {r['median'] / by_client['median']:.2f} of the client, "
                      f"{r['median'] / browser_sink['median']:.2f} of Chromium to the sink")
        source.unlink()
    if wanted("integrity"):
        for flag in ["", "sha256"]:
            r = measure("ferry", RUNS, lambda s: mbps(client("tus", s.base, SIZE, 8 * MIB, flag)))
            row("integrity", "ferry" + (" +sha256" if flag else ""), 8, r)

    if wanted("bundle"):
        results["bundle"] = bundle_sizes()
        for b in results["bundle"]:
            log(f"  bundle     {b['file']:<12} {b['bytes'] / 1024:8.1f} KiB, gzip {b['gzip'] / 1024:8.1f} KiB")
    if not results["rows"]:
        print(render_bundle(results.get("bundle", [])))
        return

    limit_speed = limit["median"]
    for r in results["rows"]:
        if r["scenario"] == "s3":
            r["ratio"] = r["ratio_s3"]
            continue
        r.setdefault("of", "careful 8")
        r["ratio"] = r.get("round_ratio", r["median"] / limit_speed)
    results["limit_mbps"] = limit_speed
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))
    table = render_table(results)
    (RESULTS / "results.md").write_text(table)
    (RESULTS / "chart.svg").write_text(render_chart(results))
    print(table)
    log(f"written: {RESULTS}/results.md, results.json, chart.svg")


def bundle_sizes():
    """What a page embedding the uploader downloads (public/embed.js and the
    page's bundle, as scripts/site.sh built them), raw and gzipped as the
    server sends them (the .gz beside each)."""
    import gzip
    files = [SITE / "embed.js", SITE / "pkg/ferry.js", SITE / "pkg/ferry.wasm", SITE / "pkg/ferry.css"]
    out = []
    for f in files:
        data = f.read_bytes()
        gz = Path(str(f) + ".gz")
        out.append({"file": f.name, "bytes": len(data),
                    "gzip": gz.stat().st_size if gz.exists() else len(gzip.compress(data, 9))})
    return out


def render_bundle(bundle):
    if not bundle:
        return ""
    total = sum(b["bytes"] for b in bundle)
    total_gz = sum(b["gzip"] for b in bundle)
    lines = ["", "The embeddable uploader (`<script type=module src=…/embed.js>`): what a host page downloads "
             "once (then revalidated, 304), as served gzipped.", "",
             "| file | bytes | gzip |", "|---|---:|---:|"]
    for b in bundle:
        lines.append(f"| {b['file']} | {b['bytes'] / 1024:.1f} KiB | {b['gzip'] / 1024:.1f} KiB |")
    lines.append(f"| all | {total / 1024:.1f} KiB | {total_gz / 1024:.1f} KiB |")
    return "\n".join(lines) + "\n"


def render_table(results):
    lines = [
        f"Uploads of {results['size'] // MIB} MiB over loopback; each figure is the median of "
        f"{results['runs']} runs (min-max). The limits and the single uploads run side by side, "
        "one upload of each per round; a single upload's ratio is the median over rounds of its "
        "speed over the careful receiver's with the same chunk size in that round (\"of\"), and "
        "the S3 rows' likewise over the raw multipart upload's. Other rows: median / the careful "
        "receiver's median at 8 MiB. peak = the server's peak resident memory (VmHWM) over all "
        "runs of the row.",
        "",
        "| scenario | server | chunk MiB | MB/s (min-max) | ratio | of | peak MiB | notes |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in results["rows"]:
        notes = r.get("notes", "")
        if r["scenario"] == "many":
            notes = f"64 x 16 MiB; PATCH p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; errors {r['errors']}"
        rss = r.get("rss_mib")
        lines.append(
            f"| {r['scenario']} | {r['server']} | {r['chunk_mib'] or ''} | "
            f"{r['median']:.0f} ({r['min']:.0f}-{r['max']:.0f}) | {r['ratio']:.2f} | {r['of']} | "
            f"{'' if rss is None else f'{rss:.0f}'} | {notes} |"
        )
    s3 = [r for r in results["rows"] if r["scenario"] == "s3"]
    if s3:
        lines.append("")
        lines.append("s3: Ferry in several-instance mode (records in PostgreSQL with fsync on, bytes in "
                     "s3s-fs, an S3 server writing files on the same disk), one instance, the same client.")
    single = [r for r in results["rows"] if r["scenario"] == "integrity"]
    if len(single) == 2:
        lines.append("")
        lines.append(f"Integrity cost: SHA-256 per-chunk checksums run at "
                     f"{single[1]['median'] / single[0]['median']:.2f} of the speed without.")
    return "\n".join(lines) + "\n" + render_bundle(results.get("bundle", []))


def render_chart(results):
    rows = [r for r in results["rows"] if r["scenario"] == "single"]
    servers = sorted({r["server"] for r in rows}, key=lambda s: (s != "ferry", s))
    colors = {"ferry": "#2457d6", "ferry-no-fsync": "#8fa8e8", "ferry-no-interval": "#6f8fd8", "ferry-s3": "#50a070", "tus-node": "#e0a030", "rustus": "#b04040"}
    top_ratio = max([1.0] + [r["ratio"] for r in rows]) * 1.1
    width, height, left, top, bottom = 760, 340, 50, 40, 45
    plot_h = height - top - bottom
    group_w = (width - left - 20) / max(1, len(CHUNKS))
    bar_w = group_w / (len(servers) + 1)
    y_of = lambda ratio: top + plot_h * (1 - ratio / top_ratio)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18">Single {results["size"] // MIB} MiB upload: speed / the careful receiver\'s with the same chunks '
           f'in the same round (median of {results["runs"]} rounds; red line: 0.9 target)</text>']
    tick = 0.0
    while tick <= top_ratio:
        y = y_of(tick)
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.0f}" y2="{y:.0f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.0f}" text-anchor="end">{tick:.1f}</text>')
        tick = round(tick + 0.2, 1)
    out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y_of(0.9):.0f}" y2="{y_of(0.9):.0f}" stroke="#b42318"/>')
    for gi, chunk in enumerate(CHUNKS):
        gx = left + gi * group_w
        out.append(f'<text x="{gx + group_w / 2:.0f}" y="{height - 24}" text-anchor="middle">{chunk} MiB PATCH</text>')
        for si, server in enumerate(servers):
            r = next((r for r in rows if r["server"] == server and r["chunk_mib"] == chunk), None)
            if not r:
                continue
            y = y_of(r["ratio"])
            x = gx + (si + 0.5) * bar_w
            out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{bar_w * 0.9:.0f}" height="{top + plot_h - y:.0f}" fill="{colors.get(server, "#888")}"/>')
            out.append(f'<text x="{x + bar_w * 0.45:.0f}" y="{y - 4:.0f}" text-anchor="middle" font-size="10">{r["ratio"]:.2f}</text>')
    for si, server in enumerate(servers):
        out.append(f'<rect x="{left + si * 110}" y="{height - 14}" width="10" height="10" fill="{colors.get(server, "#888")}"/>')
        out.append(f'<text x="{left + si * 110 + 14}" y="{height - 5}">{server}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
