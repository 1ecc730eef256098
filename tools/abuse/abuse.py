#!/usr/bin/env python3
"""Adversarial tests for a running Ferry server, by class of abuse.

Starts the release binary on a free loopback port (or attacks a server someone
else started), runs every attack one after another against every route where
it makes sense, and prints one line per attack:

    name  PASS/FAIL  peak RSS  descriptors (before/peak/after)  probe latency  note

Meanwhile a probe uploads 256 KiB again and again (create, PATCH, HEAD,
download and compare, DELETE) and /healthz is polled, so every attack is also
judged by how a normal client fares during it. Standard library only.

    python3 tools/abuse/abuse.py --binary target/release/ferry [--quick] [--only NAME] [--seed N]
    python3 tools/abuse/abuse.py --url http://127.0.0.1:3000 --pid 1234
    python3 tools/abuse/abuse.py --list

See tools/abuse/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fnmatch
import hashlib
import http.client
import json
import logging
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

# --------------------------------------------------------------------------
# Pass criteria (every attack). An attack passes when all hold.
# --------------------------------------------------------------------------
HEALTH_LIMIT_S = 5.0        # /healthz answers within this, all through the attack
PROBE_LIMIT_S = 5.0         # one probe upload (create+PATCH+HEAD+GET+DELETE) within this
RSS_LIMIT_MIB = 200.0       # peak resident memory of the server during the attack
FD_SLACK = 20               # descriptors back within baseline + this ...
FD_SETTLE_S = 5.0           # ... this long after the attack's sockets are closed
CUT_GRACE_S = 3.0           # idle / dawdling / stalled requests are ended within the
                            # server's header/body timeout + this
IDLE_CPU_MAX_PCT = 25.0     # server CPU (% of one core) with idle subscribers only
LISTING_FIELD_MAX = 255     # characters of a name or type in the listing
LISTING_BYTES_PER_UPLOAD = 2048  # bytes of listing JSON per upload, at most
SMALL_BODY_LIMIT = 2 << 20  # a form / server-function body a sane client sends, at most
BUFFER_SLACK = 8 << 20      # bytes the kernel buffers hold between us and the server
GUESS_FREE = 20             # wrong sign-in guesses answered before the first 429, at most
GUESS_REFUSED_SHARE = 0.8   # share of wrong guesses answered 429, at least
DELIVERY_SHARE = 0.95       # share of subscribers an event reaches, at least

# --------------------------------------------------------------------------
# Sizes: (quick, full).
# --------------------------------------------------------------------------
SCALE = {
    "idle_connections": (100, 600),
    "idle_keepalive": (50, 300),
    "per_route": (3, 20),             # connections per route for floods
    "slow_per_route": (2, 10),
    "header_cap_mib": (8, 32),        # endless headers: give up after this much
    "endless_cap_mib": (24, 256),     # endless bodies: give up after this much
    "endless_max_s": (6, 20),         # ... or this long
    "truncations": (3, 20),           # per (kind, close mode)
    "race_rounds": (6, 60),           # per pair of operations
    "ws_huge": (6, 24),
    "ws_many": (100, 500),
    "ws_stalled": (10, 60),
    "sse_own": (150, 1500),           # subscribers with a token each
    "sse_shared": (150, 1500),        # subscribers sharing one token
    "pollers": (50, 300),
    "idle_window_s": (3, 6),
    "list_uploads": (150, 1000),
    "list_readers": (40, 200),
    "guesses": (100, 600),
}

MIB = 1 << 20
PROBE_SIZE = 256 * 1024
PROBE_PAUSE_S = 0.1
HEALTH_EVERY_S = 0.25
SAMPLE_EVERY_S = 0.05
SLOW_BYTE_EVERY_S = 0.5
REQUEST_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
RX_KEEP = 8 * MIB          # bytes of an answer kept (downloads here are smaller)
SNDBUF = 256 * 1024
ACCESS_TOKEN = "abuse-access-token-7f3a"
WS_MAX_FRAME = 16 * MIB      # Ferry's documented WebSocket frame limit
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TUS = [("Tus-Resumable", "1.0.0")]
OCTET = "application/offset+octet-stream"
FORM = "application/x-www-form-urlencoded"
BOUNDARY = "ferryabuse0boundary"
BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def re_ansi(text: str) -> str:
    """Text without ANSI colour codes (the server colours its log)."""
    out, i = [], 0
    while True:
        j = text.find("\x1b[", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = j + 2
        while k < len(text) and (text[k].isdigit() or text[k] == ";"):
            k += 1
        i = k + 1


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


# ==========================================================================
# Raw HTTP/1.1 over asyncio sockets: every byte under our control.
# ==========================================================================

@dataclass
class Resp:
    status: int
    headers: dict
    body: bytes
    listing_bytes: int = 0

    def h(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def brief(self) -> str:
        text = self.body[:120].decode("utf-8", "replace").replace("\n", " ")
        return f"{self.status} {text}".strip()


def parse_response(buf: bytes, head_only: bool = False, eof: bool = False):
    """The first complete response in buf (1xx other than 101 skipped), or
    None while it is incomplete. At EOF an incomplete body is returned as is."""
    start = 0
    while True:
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return None
        lines = buf[start:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return Resp(0, {}, bytes(buf[start:start + 200]))
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body_at = end + 4
        if 100 <= status < 200 and status != 101:
            start = body_at
            continue
        if head_only or status in (101, 204, 304):
            return Resp(status, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, i = bytearray(), body_at
            while True:
                line_end = buf.find(b"\r\n", i)
                if line_end < 0:
                    return Resp(status, headers, bytes(body)) if eof else None
                try:
                    size = int(buf[i:line_end].split(b";")[0], 16)
                except ValueError:
                    return Resp(status, headers, bytes(body))
                if size == 0:
                    return Resp(status, headers, bytes(body))
                if len(buf) < line_end + 2 + size + 2:
                    return Resp(status, headers, bytes(body)) if eof else None
                body += buf[line_end + 2:line_end + 2 + size]
                i = line_end + 2 + size + 2
        if "content-length" in headers:
            n = int(headers["content-length"] or 0)
            if len(buf) - body_at >= n or eof:
                return Resp(status, headers, bytes(buf[body_at:body_at + n]))
            return None
        return Resp(status, headers, bytes(buf[body_at:])) if eof else None


def build_request(method: str, target: str, headers, body: bytes | None = None,
                  host: str = "127.0.0.1", end: bool = True) -> bytes:
    """Request line and headers (and body). Content-Length is added for a body
    unless the headers already frame it. end=False leaves the head open."""
    names = {k.lower() for k, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n"
    if end:
        head += "\r\n"
    return head.encode("utf-8", "surrogateescape") + (body or b"")


class Conn:
    """One raw TCP connection. A background task collects what the server
    sends and notes when it closes or resets; sends wait for the kernel to
    take the bytes, so a stalled server shows as a send that never drains."""

    def __init__(self, ctx: "Ctx", read: bool = True, rcvbuf: int | None = None, track: bool = True):
        self.ctx, self.read, self.rcvbuf = ctx, read, rcvbuf
        self.reader = self.writer = None
        self.rx = bytearray()
        self.rx_total = 0
        self.sent = 0
        self.opened_at = self.closed_at = self.last_sent_at = None
        self.closed = False      # the server closed or reset it (or we did)
        self.stalled = False     # a send did not drain in time
        self.error = None
        self._mine = False
        self._event = asyncio.Event()
        self._task = None
        if track:
            ctx.conns.append(self)

    async def open(self, timeout: float = CONNECT_TIMEOUT_S) -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (self.ctx.host, self.ctx.port)), timeout)
            self.reader, self.writer = await asyncio.open_connection(
                sock=sock, limit=(1 << 16) if self.read else 4096)
        except (OSError, asyncio.TimeoutError) as e:
            sock.close()
            self.error = f"connect: {type(e).__name__} {e}".strip()
            self.closed = True
            return False
        self.opened_at = self.last_sent_at = time.monotonic()
        if self.read:
            self._task = asyncio.ensure_future(self._pump())
        return True

    async def _pump(self):
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.rx_total += len(data)
                if len(self.rx) < RX_KEEP:
                    self.rx += data
                self._event.set()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not self.closed:
                self.closed, self.closed_at = True, time.monotonic()
            self._event.set()

    async def send(self, data: bytes, stall: float | None = 30.0) -> bool:
        """False when the server has closed, or did not take the bytes within stall s."""
        if self.closed or self.writer is None or self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), stall)
        except asyncio.TimeoutError:
            self.stalled = True
            return False
        except (OSError, RuntimeError):
            return False
        self.sent += len(data)
        self.last_sent_at = time.monotonic()
        return True

    @property
    def answered(self) -> bool:
        return self.rx.startswith(b"HTTP/")

    def status(self) -> int | None:
        if not self.answered:
            return None
        parts = bytes(self.rx[:16]).split(b" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    async def wait(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._event.clear()
            if pred():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed and not self.read):
                return pred()
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except asyncio.TimeoutError:
                return pred()

    async def response(self, timeout: float, head_only: bool = False) -> Resp | None:
        got = []

        def done():
            r = parse_response(self.rx, head_only, self.closed)
            if r is not None:
                got.append(r)
            return r is not None or self.closed

        await self.wait(done, timeout)
        return got[-1] if got else None

    def close(self, how: str = "fin"):
        """fin: an orderly close; rst: a reset (SO_LINGER 0); shutdown is async, see below."""
        if self.writer is None or self._mine:
            return
        self._mine = True
        try:
            if how == "rst":
                self.writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.writer.transport.abort()
            else:
                self.writer.close()
        except (OSError, RuntimeError):
            pass
        if self._task:
            self._task.cancel()
        if not self.closed:
            self.closed, self.closed_at = True, time.monotonic()

    async def shutdown_then_close(self, wait: float = 1.0):
        """shutdown(SHUT_WR), read what the server answers for a while, close."""
        try:
            if self.writer and not self.writer.is_closing():
                self.writer.write_eof()
        except (OSError, RuntimeError):
            pass
        await self.wait(lambda: self.closed, wait)
        self.close("fin")

    async def close_how(self, how: str):
        if how == "shutdown":
            await self.shutdown_then_close()
        else:
            self.close(how)


async def request(ctx: "Ctx", method: str, path: str, headers=(), body: bytes | None = None,
               token: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> Resp:
    """One request on its own connection (Connection: close); the whole answer."""
    hdrs = list(headers)
    if token:
        hdrs.append(("Authorization", f"Bearer {token}"))
    hdrs.append(("Connection", "close"))
    conn = Conn(ctx, track=False)
    if not await conn.open():
        raise ConnectionError(f"{method} {path}: {conn.error}")
    try:
        await conn.send(build_request(method, path, hdrs, body, ctx.hostport), stall=timeout)
        r = await conn.response(timeout, head_only=method == "HEAD")
    finally:
        conn.close("fin")
    if r is None:
        raise TimeoutError(f"{method} {path}: no complete answer within {timeout:.0f} s")
    return r


async def gather_limited(coros, limit: int):
    """Runs coroutines, at most limit at once; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros), return_exceptions=True)


def raise_first(results):
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


# ----- tus and server-function helpers --------------------------------------

def polite_refusal(r: Resp | None) -> bool:
    """A clear "not now": 429 or 503 with the catalogue's JSON error."""
    body = r.json() if r is not None else None
    return r is not None and r.status in (429, 503) and isinstance(body, dict) and "error" in body


def upload_id(r: Resp) -> str | None:
    loc = r.h("location")
    return loc.rstrip("/").rsplit("/", 1)[-1] if r.status == 201 and loc else None


async def tus_create(ctx, token, length=None, deferred=False, metadata=None, concat=None,
                     body: bytes | None = None, extra=()):
    h = list(TUS) + list(extra)
    if length is not None:
        h.append(("Upload-Length", str(length)))
    if deferred:
        h.append(("Upload-Defer-Length", "1"))
    if metadata is not None:
        h.append(("Upload-Metadata", metadata))
    if concat:
        h.append(("Upload-Concat", concat))
    if body is not None:
        h.append(("Content-Type", OCTET))
    r = await request(ctx, "POST", "/files/", h, body if body is not None else b"", token)
    return r, upload_id(r)


async def tus_patch(ctx, token, uid, offset, data: bytes, length=None, locked_wait: float = 0.0):
    """PATCH; with locked_wait, a 423 (a lock a moment from release) is retried that long."""
    h = list(TUS) + [("Upload-Offset", str(offset)), ("Content-Type", OCTET)]
    if length is not None:
        h.append(("Upload-Length", str(length)))
    deadline = time.monotonic() + locked_wait
    while True:
        r = await request(ctx, "PATCH", f"/files/{uid}", h, data, token)
        if r.status != 423 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


async def tus_head(ctx, token, uid):
    return await request(ctx, "HEAD", f"/files/{uid}", TUS, None, token)


async def must_create(ctx, token, **kw) -> str:
    r, uid = await tus_create(ctx, token, **kw)
    if not uid:
        raise RuntimeError(f"setup: creating an upload answered {r.brief()}")
    return uid


async def complete_upload(ctx, token, data: bytes, **kw) -> str:
    uid = await must_create(ctx, token, length=len(data), **kw)
    if data:
        r = await tus_patch(ctx, token, uid, 0, data, locked_wait=3)
        if r.status != 204:
            raise RuntimeError(f"setup: PATCH answered {r.brief()}")
    return uid


async def list_uploads(ctx, token, timeout=REQUEST_TIMEOUT_S, all_pages=True, max_pages=200):
    """The caller's uploads through POST /api/list_uploads: (last answer, list or None).
    Follows pages ({"uploads": [...], "next": cursor}, sent back as after=); a bare
    list is one page. The answer's listing_bytes counts the bytes of all pages."""
    items, after, total = [], None, 0
    for _ in range(max_pages):
        body = b"" if after is None else urllib.parse.urlencode({"after": after}).encode()
        r = await request(ctx, "POST", "/api/list_uploads", [("Content-Type", FORM)], body, token, timeout)
        total += len(r.body)
        r.listing_bytes = total
        data = r.json() if r.status == 200 else None
        if isinstance(data, list):
            return r, items + data
        if not isinstance(data, dict) or not isinstance(data.get("uploads"), list):
            return r, None
        items += data["uploads"]
        after = data.get("next")
        if not after or not all_pages:
            break
    return r, items


async def verify_download(ctx, token, uid, expected: bytes, label: str) -> str | None:
    """None when GET /files/{uid} gives exactly expected with ETag = its sha256."""
    r = await request(ctx, "GET", f"/files/{uid}", [], None, token)
    if r.status != 200:
        return f"{label}: download answered {r.brief()}"
    if r.body != expected:
        at = next((i for i, (a, b) in enumerate(zip(r.body, expected)) if a != b),
                  min(len(r.body), len(expected)))
        return (f"{label}: downloaded {len(r.body)} bytes, expected {len(expected)}; "
                f"first difference at byte {at}")
    want = f'"{sha256_hex(expected)}"'
    if r.h("etag") != want:
        return f"{label}: ETag {r.h('etag')} is not {want}"
    return None


async def settle(ctx, token, uid, limit: float):
    """Waits until nothing holds the upload any more. Answers (offset, None),
    (None, 'gone') when it is not found, or (offset, 'locked') when a
    zero-length PATCH still meets 423 after limit seconds."""
    deadline = time.monotonic() + limit
    offset = None
    while True:
        r = await tus_head(ctx, token, uid)
        if r.status in (404, 410):
            return None, "gone"
        if r.status != 200:
            return None, f"HEAD answered {r.status}"
        offset = int(r.h("upload-offset", "0") or 0)
        p = await tus_patch(ctx, token, uid, offset, b"")
        moved = p.status == 409 and b"offset_mismatch" in p.body
        if p.status != 423 and not moved:
            return offset, None  # 204, or 409 upload_complete and the like: nobody holds it
        if time.monotonic() > deadline:
            return offset, "locked" if p.status == 423 else None
        await asyncio.sleep(0.2)


# ==========================================================================
# The route table: every route, what a request to it looks like, and what
# body a legitimate client could send it.
# ==========================================================================

def _part(name: str, filename: str | None, extra: str = "") -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n{extra}".encode()


@dataclass
class Route:
    name: str
    method: str
    path: str                    # {upload}, {deferred}, {done}: a fresh upload of that kind
    headers: list = field(default_factory=list)
    prefix: bytes = b""          # a body starts with this ...
    filler: bytes = b""          # ... and goes on with this repeated (empty: random bytes)
    limit: int | None = 0        # body bytes a legitimate request may send; None: unbounded
                                 # (the bytes are stored), 0: the route takes no body
    streams: bool = False        # the answer is an endless stream
    ws: bool = False             # a WebSocket upgrade

    def head(self, ctx, target, token, extra=(), end=True) -> bytes:
        hdrs = list(self.headers) + [("Authorization", f"Bearer {token}")] + list(extra)
        if self.ws:
            hdrs += ws_headers(ctx)
        return build_request(self.method, target, hdrs, None, ctx.hostport, end)

    def body(self, n: int, ctx) -> bytes:
        """The first n bytes of a body for this route."""
        if len(self.prefix) >= n:
            return self.prefix[:n]
        rest = n - len(self.prefix)
        fill = self.filler * (rest // max(1, len(self.filler)) + 1) if self.filler else ctx.noise(rest)
        return self.prefix + fill[:rest]

    def chunks(self, ctx, size=64 * 1024):
        """An endless body: the prefix, then filler chunks."""
        if self.prefix:
            yield self.prefix
        block = (self.filler * (size // len(self.filler) + 1))[:size] if self.filler else ctx.noise(size)
        while True:
            yield block


TINY_FILE = _part("file", "tiny.txt", "Content-Type: text/plain\r\n\r\n") + b"x\r\n"
UPLOAD_HEADERS = TUS + [("Upload-Offset", "0"), ("Content-Type", OCTET)]
MULTIPART = [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")]

ROUTES = [
    Route("healthz", "GET", "/healthz"),
    Route("page", "GET", "/", [("Accept", "text/html")]),
    Route("asset", "GET", "/favicon.svg"),
    Route("signin_page", "GET", "/signin", [("Accept", "text/html")]),
    Route("files_options", "OPTIONS", "/files/", TUS),
    Route("files_create", "POST", "/files/", TUS + [("Upload-Length", str(MIB))]),
    Route("files_create_with_upload", "POST", "/files/",
          TUS + [("Upload-Length", str(MIB)), ("Content-Type", OCTET)], limit=MIB),
    Route("files_create_deferred", "POST", "/files/",
          TUS + [("Upload-Defer-Length", "1"), ("Content-Type", OCTET)], limit=None),
    Route("files_head", "HEAD", "/files/{upload}", TUS),
    Route("files_download", "GET", "/files/{done}"),
    Route("files_delete", "DELETE", "/files/{upload}", TUS),
    Route("files_patch", "PATCH", "/files/{upload}", UPLOAD_HEADERS, limit=MIB),
    Route("files_patch_deferred", "PATCH", "/files/{deferred}", UPLOAD_HEADERS, limit=None),
    Route("files_patch_override", "POST", "/files/{upload}",
          UPLOAD_HEADERS + [("X-HTTP-Method-Override", "PATCH")], limit=MIB),
    Route("files_ws", "GET", "/files/{upload}/ws?offset=0", ws=True),
    Route("events", "GET", "/events", [("Accept", "text/event-stream")], streams=True),
    Route("events_poll", "GET", "/events/poll?after=0&timeout=1"),
    Route("form", "POST", "/upload/form", MULTIPART,
          prefix=_part("file", "big.bin", "Content-Type: application/octet-stream\r\n\r\n"), limit=None),
    Route("form_no_boundary", "POST", "/upload/form", [("Content-Type", "multipart/form-data")],
          prefix=_part("file", "a.bin", "\r\n")),
    Route("form_lost_boundary", "POST", "/upload/form", MULTIPART, filler=b"x",
          limit=SMALL_BODY_LIMIT),
    Route("form_endless_part_header", "POST", "/upload/form", MULTIPART,
          prefix=_part("file", "h.bin", "X-Pad: "), filler=b"a", limit=SMALL_BODY_LIMIT),
    Route("form_endless_field", "POST", "/upload/form", MULTIPART,
          prefix=_part("note", None, "\r\n"), filler=b"a", limit=None),
    Route("form_many_files", "POST", "/upload/form", MULTIPART, filler=TINY_FILE, limit=None),
    Route("signin", "POST", "/signin", [("Content-Type", FORM)], prefix=b"token=", filler=b"a",
          limit=SMALL_BODY_LIMIT),
    Route("api_list_uploads", "POST", "/api/list_uploads", [("Content-Type", FORM)],
          prefix=b"x=", filler=b"a", limit=SMALL_BODY_LIMIT),
    Route("api_check_files", "POST", "/api/check_files", [("Content-Type", FORM)],
          prefix=b"files[0][name]=", filler=b"a", limit=SMALL_BODY_LIMIT),
    Route("api_likely_stored", "POST", "/api/likely_stored", [("Content-Type", FORM)],
          prefix=b"files[0][sample]=", filler=b"a", limit=SMALL_BODY_LIMIT),
    Route("api_describe_server", "POST", "/api/describe_server", [("Content-Type", FORM)],
          prefix=b"x=", filler=b"a", limit=SMALL_BODY_LIMIT),
    Route("api_delete_upload", "POST", "/api/delete_upload", [("Content-Type", FORM)],
          prefix=b"id=", filler=b"a", limit=SMALL_BODY_LIMIT),
]


def body_routes():
    """Routes a body can be sent to (all but the WebSocket upgrade)."""
    return [r for r in ROUTES if not r.ws]


async def materialize(ctx, route: Route, token: str) -> tuple[str, str | None]:
    """The route's request target with its placeholder filled by a fresh upload."""
    path, uid = route.path, None
    if "{upload}" in path:
        uid = await must_create(ctx, token, length=MIB)
        path = path.replace("{upload}", uid)
    elif "{deferred}" in path:
        uid = await must_create(ctx, token, deferred=True)
        path = path.replace("{deferred}", uid)
    elif "{done}" in path:
        uid = await complete_upload(ctx, token, ctx.noise(4096))
        path = path.replace("{done}", uid)
    return path, uid


async def check_uploads_consistent(ctx, token, placed, what):
    """After bodies of unknown fate: each upload settles (no lock left) at an
    offset no larger than the body bytes that could have reached it."""
    async def one(uid, sent):
        off, why = await settle(ctx, token, uid, ctx.timeout + CUT_GRACE_S)
        if why == "locked":
            return f"{what}: upload {uid} still locked {ctx.timeout + CUT_GRACE_S:.0f} s after its client left"
        if off is not None and off > sent:
            return f"{what}: upload {uid} at offset {off} but at most {sent} body bytes were sent"
        return None

    for res in await gather_limited([one(u, s) for u, s in placed], 16):
        if isinstance(res, BaseException):
            ctx.problem(f"{what}: checking an upload failed: {res!r}")
        elif res:
            ctx.problem(res)


# ==========================================================================
# WebSocket client, by hand: handshake, masked frames, frame parsing.
# ==========================================================================

def ws_headers(ctx):
    ctx.last_ws_key = b64(ctx.rng.randbytes(16))
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", ctx.last_ws_key), ("Sec-WebSocket-Version", "13")]


def ws_frame_header(opcode: int, length: int, fin: bool = True, mask: bytes = b"\0\0\0\0") -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        h = bytes([b0, 0x80 | length])
    elif length < 1 << 16:
        h = bytes([b0, 0x80 | 126]) + struct.pack("!H", length)
    else:
        h = bytes([b0, 0x80 | 127]) + struct.pack("!Q", length)
    return h + mask


def ws_frame(opcode: int, payload: bytes, rng: random.Random, fin: bool = True) -> bytes:
    mask = rng.randbytes(4)
    n = len(payload)
    if n:
        m = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
    return ws_frame_header(opcode, n, fin, mask) + payload


class WS:
    """A client WebSocket over a Conn, after the 101."""

    def __init__(self, conn: Conn, start: int):
        self.conn, self.start = conn, start

    def frames(self):
        buf, i, out = self.conn.rx, self.start, []
        while len(buf) - i >= 2:
            op, n, j = buf[i] & 0x0F, buf[i + 1] & 0x7F, i + 2
            if n == 126:
                if len(buf) < j + 2:
                    break
                n, j = struct.unpack("!H", buf[j:j + 2])[0], j + 2
            elif n == 127:
                if len(buf) < j + 8:
                    break
                n, j = struct.unpack("!Q", buf[j:j + 8])[0], j + 8
            if buf[i + 1] & 0x80:
                j += 4
            if len(buf) < j + n:
                break
            out.append((op, bytes(buf[j:j + n])))
            i = j + n
        return out

    def texts(self):
        return [p.decode("utf-8", "replace") for op, p in self.frames() if op == 1]

    def close_frame(self):
        for op, p in self.frames():
            if op == 8:
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
                return code, p[2:].decode("utf-8", "replace")
        return None

    def offsets(self):
        out = []
        for t in self.texts():
            try:
                out.append(json.loads(t))
            except ValueError:
                pass
        return out

    @property
    def ended(self):
        return self.conn.closed or self.close_frame() is not None


async def ws_connect(ctx, path: str, token: str, timeout: float = 10.0):
    """(WS, None) after a valid 101, else (None, the HTTP answer or None)."""
    conn = Conn(ctx)
    if not await conn.open():
        return None, None
    hdrs = [("Authorization", f"Bearer {token}")] + ws_headers(ctx)
    key = ctx.last_ws_key
    await conn.send(build_request("GET", path, hdrs, None, ctx.hostport))
    await conn.wait(lambda: b"\r\n\r\n" in conn.rx or conn.closed, timeout)
    end = conn.rx.find(b"\r\n\r\n")
    resp = parse_response(bytes(conn.rx[:end + 4]), head_only=True, eof=True) if end >= 0 else None
    if resp is None or resp.status != 101:
        if resp is not None:
            resp = await conn.response(2.0) or resp  # with its body
        conn.close("rst")
        return None, resp
    want = b64(hashlib.sha1((key + WS_GUID).encode()).digest())
    if resp.h("sec-websocket-accept") != want:
        ctx.problem(f"{path}: Sec-WebSocket-Accept {resp.h('sec-websocket-accept')} is not {want}")
    return WS(conn, end + 4), None


# ==========================================================================
# Measuring the server: resources, a normal client's experience, liveness.
# ==========================================================================

class Sampler(threading.Thread):
    """Samples /proc/PID every SAMPLE_EVERY_S: VmRSS, open descriptors, CPU."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.rss = self.fds = 0.0
        self.peak_rss = self.peak_fds = 0.0
        self.ticks = os.sysconf("SC_CLK_TCK")

    def read(self):
        with open(f"/proc/{self.pid}/status") as f:
            rss = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")), 0.0)
        return rss, len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.ticks
        except (OSError, IndexError, ValueError):
            return None

    def run(self):
        while not self.stop_ev.wait(SAMPLE_EVERY_S):
            try:
                rss, fds = self.read()
            except (OSError, StopIteration):
                continue
            with self.lock:
                self.rss, self.fds = rss, fds
                self.peak_rss, self.peak_fds = max(self.peak_rss, rss), max(self.peak_fds, fds)

    def reset(self):
        try:
            rss, fds = self.read()
        except OSError:
            rss, fds = 0.0, 0
        with self.lock:
            self.rss = self.peak_rss = rss
            self.fds = self.peak_fds = fds
        return fds

    def now(self):
        try:
            return self.read()
        except OSError:
            return None, None


class Probe(threading.Thread):
    """A normal client: uploads PROBE_SIZE bytes again and again (POST,
    PATCH, HEAD, GET and compare bytes and ETag, DELETE) and records how long
    each round took and what went wrong."""

    def __init__(self, host, port, token, seed):
        super().__init__(daemon=True)
        self.host, self.port, self.token = host, port, token
        self.rng = random.Random(seed)
        self.stop_ev, self.paused = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.rounds: list[float] = []
        self.errors: list[str] = []

    def run(self):
        while not self.stop_ev.is_set():
            if self.paused.is_set():
                self.stop_ev.wait(0.05)
                continue
            t0 = time.monotonic()
            try:
                err = self.round()
            except (OSError, http.client.HTTPException) as e:
                err = f"{type(e).__name__}: {e}"
            dt = time.monotonic() - t0
            with self.lock:
                self.rounds.append(dt)
                if err:
                    self.errors.append(err)
            self.stop_ev.wait(PROBE_PAUSE_S)

    def round(self) -> str | None:
        data = self.rng.randbytes(PROBE_SIZE)
        auth = {"Authorization": f"Bearer {self.token}", "Tus-Resumable": "1.0.0"}
        c = http.client.HTTPConnection(self.host, self.port, timeout=PROBE_LIMIT_S)
        try:
            c.request("POST", "/files/", headers={**auth, "Upload-Length": str(PROBE_SIZE),
                                                 "Upload-Metadata": f"filename {b64('probe.bin')}"})
            r = c.getresponse()
            r.read()
            if r.status != 201:
                return f"create answered {r.status}"
            path = urllib.parse.urlsplit(r.getheader("Location", "")).path
            c.request("PATCH", path, body=data, headers={**auth, "Upload-Offset": "0", "Content-Type": OCTET})
            r = c.getresponse()
            r.read()
            if r.status != 204 or r.getheader("Upload-Offset") != str(PROBE_SIZE):
                return f"PATCH answered {r.status} offset {r.getheader('Upload-Offset')}"
            c.request("HEAD", path, headers=auth)
            r = c.getresponse()
            r.read()
            if r.status != 200 or r.getheader("Upload-Offset") != str(PROBE_SIZE):
                return f"HEAD answered {r.status} offset {r.getheader('Upload-Offset')}"
            c.request("GET", path, headers=auth)
            r = c.getresponse()
            got = r.read()
            if r.status != 200 or got != data:
                return f"download answered {r.status}, {len(got)} bytes, {'same' if got == data else 'different'}"
            if r.getheader("ETag") != f'"{sha256_hex(data)}"':
                return f"download ETag {r.getheader('ETag')} is not the sha256"
            c.request("DELETE", path, headers=auth)
            r = c.getresponse()
            r.read()
            if r.status != 204:
                return f"DELETE answered {r.status}"
            return None
        finally:
            c.close()

    def summary(self):
        with self.lock:
            return list(self.rounds), list(self.errors)


class Health(threading.Thread):
    """GET /healthz every HEALTH_EVERY_S; the slowest answer and failures."""

    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.stop_ev = threading.Event()
        self.worst = 0.0
        self.errors: list[str] = []

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            err = healthz(self.host, self.port, HEALTH_LIMIT_S)
            self.worst = max(self.worst, time.monotonic() - t0)
            if err:
                self.errors.append(err)
            self.stop_ev.wait(HEALTH_EVERY_S)


def healthz(host, port, timeout) -> str | None:
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read()
        return None if r.status == 200 and b'"ok"' in body else f"/healthz answered {r.status}"
    except (OSError, http.client.HTTPException) as e:
        return f"/healthz: {type(e).__name__}: {e}"
    finally:
        c.close()


# ==========================================================================
# The server under attack.
# ==========================================================================

class Server:
    """A ferry process we started (restartable), or one someone else runs."""

    def __init__(self, host, port, pid=None, proc=None, data_dir=None, log_path=None,
                 token=None, launch=None):
        self.host, self.port, self.pid, self.proc = host, port, pid, proc
        self.data_dir, self.log_path, self.token, self.launch = data_dir, log_path, token, launch

    @classmethod
    def start(cls, binary, site_root, timeout_s, extra, workdir, data_dir=None, token=None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data_dir = data_dir or tempfile.mkdtemp(prefix="data-", dir=workdir)
        log_path = os.path.join(workdir, f"server-{port}.log")
        args = [binary, "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir,
                "--site-root", site_root, "--header-timeout", f"{timeout_s:g}s",
                "--body-timeout", f"{timeout_s:g}s", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        log = open(log_path, "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
        log.close()
        srv = cls("127.0.0.1", port, proc.pid, proc, data_dir, log_path, token,
                  launch=(binary, site_root, timeout_s, extra, workdir))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ferry exited with {proc.returncode} at start:\n{srv.log_tail()}")
            if healthz(srv.host, port, 1.0) is None:
                return srv
            time.sleep(0.1)
        srv.stop()
        raise RuntimeError(f"ferry did not answer /healthz within 30 s:\n{srv.log_tail()}")

    def restart(self) -> "Server":
        """The same data folder, a new process (and port)."""
        binary, site_root, timeout_s, extra, workdir = self.launch
        self.stop()
        return Server.start(binary, site_root, timeout_s, extra, workdir, self.data_dir, self.token)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is not None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
        return healthz(self.host, self.port, HEALTH_LIMIT_S) is None

    def death(self) -> str:
        if self.proc is not None and self.proc.returncode is not None:
            rc = self.proc.returncode
            return f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        return "not answering any more"

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path) if self.log_path else 0
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log written since offset, without colour codes."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read(64 * MIB).decode("utf-8", "replace")
        except OSError:
            return ""
        return re_ansi(text)

    def log_tail(self, n=12) -> str:
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 64 * 1024))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


# ==========================================================================
# Attacks. Each is an async function of a Ctx; it reports what it finds with
# ctx.problem() (any problem fails the attack) and ctx.note() (the summary).
# ==========================================================================

class Ctx:
    def __init__(self, server: Server, quick: bool, rng: random.Random, sampler, probe, timeout):
        self.server, self.quick, self.rng = server, quick, rng
        self.host, self.port = server.host, server.port
        self.hostport = f"{server.host}:{server.port}"
        self.sampler, self.probe, self.timeout = sampler, probe, timeout
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.verbose = False
        self.conns: list[Conn] = []
        self.last_ws_key = ""
        self._noise = rng.randbytes(1 << 20)

    def n(self, key):
        return SCALE[key][0 if self.quick else 1]

    def problem(self, msg):
        self.problems.append(msg)

    def note(self, msg):
        self.notes.append(msg)

    def token(self, prefix="abuse"):
        return f"{prefix}-{self.rng.getrandbits(64):016x}"

    def noise(self, n: int) -> bytes:
        """n bytes that look random (fresh for small n, a slice of a pool for large)."""
        if n <= 4096:
            return self.rng.randbytes(n)
        start = self.rng.randrange(0, len(self._noise))
        pool = self._noise[start:] + self._noise[:start]
        return (pool * (n // len(pool) + 1))[:n]

    def cleanup(self):
        for c in self.conns:
            c.close("rst")
        self.conns.clear()


@dataclass
class Attack:
    name: str
    fn: object
    doc: str
    server_args: tuple = ()
    token: str | None = None


ATTACKS: list[Attack] = []


def attack(name, server_args=(), token=None):
    def register(fn):
        doc = (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        ATTACKS.append(Attack(name, fn, " ".join(doc.split()), tuple(server_args), token))
        return fn
    return register


def tally(counter: dict, total_per: int | None = None, top: int = 6) -> str:
    items = sorted(counter.items(), key=lambda kv: -kv[1])
    shown = [f"{k} {v}/{total_per}" if total_per else f"{k} {v}" for k, v in items[:top]]
    more = f" (+{len(items) - top} more)" if len(items) > top else ""
    return ", ".join(shown) + more


async def wait_all(conns, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(pred(c) for c in conns):
            return True
        await asyncio.sleep(0.1)
    return all(pred(c) for c in conns)


def opened(ctx, pairs, what):
    """Drops (and reports) connections that could not even be opened."""
    failed = [c for _, c in pairs if c.error]
    if failed:
        ctx.problem(f"{what}: {len(failed)}/{len(pairs)} connections could not be opened "
                    f"({failed[0].error})")
    return [(r, c) for r, c in pairs if not c.error]


def judge_no_5xx(ctx, pairs, what):
    """No connection of an attack may be answered with a server error."""
    bad = Counter(r.name for r, c in pairs if (c.status() or 0) >= 500)
    if bad:
        sample = next(c for r, c in pairs if (c.status() or 0) >= 500)
        resp = parse_response(bytes(sample.rx), eof=True)
        ctx.problem(f"{what} answered 5xx: {tally(bad)} ({resp.brief() if resp else ''})")


def judge_ended(ctx, pairs, per, limit, what):
    """Each connection must have been ended by the server (closed; for a
    streaming route: answered) within limit s after its last byte."""
    held, how = Counter(), {}
    for route, c in pairs:
        cut = c.closed and not c._mine and c.closed_at - c.last_sent_at <= limit + 0.25
        ok = cut or (route.streams and c.answered)
        if not ok:
            held[route.name] += 1
            how.setdefault(route.name, f"answered {c.status()}, kept open" if c.answered else "no answer")
    if held:
        detail = ", ".join(f"{k} {v}/{per} ({how[k]})" for k, v in sorted(held.items())[:6])
        more = f" (+{len(held) - 6} routes)" if len(held) > 6 else ""
        ctx.problem(f"{what} still held {limit:.0f} s after their last byte: {detail}{more}")
    return held


# ----- class 1: idle and slow ------------------------------------------------

@attack("idle_connections")
async def idle_connections(ctx: Ctx):
    """Connections that send nothing at all; the header timeout must close them."""
    n = ctx.n("idle_connections")
    conns = [Conn(ctx) for _ in range(n)]
    await gather_limited([c.open() for c in conns], 200)
    pairs = opened(ctx, [(Route("tcp", "", ""), c) for c in conns], "idle connections")
    limit = ctx.timeout + CUT_GRACE_S
    await wait_all([c for _, c in pairs], lambda c: c.closed, limit + 0.5)
    judge_ended(ctx, pairs, len(pairs), limit, "idle connections")
    cut = [c.closed_at - c.opened_at for _, c in pairs if c.closed and not c._mine]
    ctx.note(f"{len(cut)}/{n} idle connections cut"
             + (f", median after {statistics.median(cut):.1f} s" if cut else ""))


@attack("idle_keepalive")
async def idle_keepalive(ctx: Ctx):
    """Keep-alive connections that made one request, then say nothing more."""
    n = ctx.n("idle_keepalive")

    async def one():
        c = Conn(ctx)
        if await c.open():
            await c.send(build_request("GET", "/healthz", [], None, ctx.hostport))
            await c.wait(lambda: c.answered and parse_response(c.rx) is not None, 5)
            c.last_sent_at = time.monotonic()
        return Route("keepalive", "", ""), c

    pairs = opened(ctx, raise_first(await gather_limited([one() for _ in range(n)], 100)), "keep-alive")
    limit = ctx.timeout + CUT_GRACE_S
    await wait_all([c for _, c in pairs], lambda c: c.closed, limit + 0.5)
    judge_ended(ctx, pairs, len(pairs), limit, "idle keep-alive connections")
    ctx.note(f"{sum(c.closed for _, c in pairs)}/{n} idle keep-alive connections cut")


@attack("idle_requests")
async def idle_requests(ctx: Ctx):
    """Every route: headers sent, a 1 MB body promised by Content-Length, never sent."""
    per = ctx.n("per_route")
    token = ctx.token("idle")

    async def one(route):
        target, _ = await materialize(ctx, route, token)
        c = Conn(ctx)
        if await c.open():
            await c.send(route.head(ctx, target, token, [("Content-Length", "1000000")]))
        return route, c

    pairs = raise_first(await gather_limited([one(r) for r in body_routes() for _ in range(per)], 64))
    pairs = opened(ctx, pairs, "idle requests")
    limit = ctx.timeout + CUT_GRACE_S
    await wait_all(pairs, lambda rc: rc[1].closed or (rc[0].streams and rc[1].answered), limit + 0.5)
    held = judge_ended(ctx, pairs, per, limit, "requests with a promised body")
    judge_no_5xx(ctx, pairs, "requests with a promised body")
    answers = Counter(c.status() for _, c in pairs if c.answered)
    ctx.note(f"{len(pairs)} requests on {len(body_routes())} routes; answers {dict(answers)}; "
             f"{sum(held.values())} held")


@attack("slowloris_headers")
async def slowloris_headers(ctx: Ctx):
    """Every route: request line and headers sent one byte every 500 ms."""
    per = ctx.n("slow_per_route")
    token = ctx.token("loris")
    limit = ctx.timeout + CUT_GRACE_S

    async def one(route):
        target, _ = await materialize(ctx, route, token)
        head = route.head(ctx, target, token, [("Content-Length", "0")] if not route.ws else [])
        c = Conn(ctx)
        if not await c.open():
            return route, c
        for i in range(len(head)):
            if c.closed or time.monotonic() - c.opened_at > limit + 1:
                break
            await c.send(head[i:i + 1], stall=5)
            await asyncio.sleep(SLOW_BYTE_EVERY_S)
        c.last_sent_at = c.opened_at  # the header timeout counts from the connection
        return route, c

    pairs = raise_first(await gather_limited([one(r) for r in ROUTES for _ in range(per)], 200))
    pairs = opened(ctx, pairs, "slow headers")
    judge_ended(ctx, pairs, per, limit, "connections sending headers slowly")
    judge_no_5xx(ctx, pairs, "slow headers")
    cut = [c.closed_at - c.opened_at for _, c in pairs if c.closed and not c._mine]
    ctx.note(f"{len(cut)}/{len(pairs)} cut" + (f", after {max(cut):.1f} s at most" if cut else ""))


@attack("slow_bodies")
async def slow_bodies(ctx: Ctx):
    """Every route: a body sent one byte every 500 ms for a while, then dropped."""
    per = ctx.n("slow_per_route")
    token = ctx.token("slowbody")
    duration = 3 * ctx.timeout + 1
    placed = []

    async def one(route):
        target, uid = await materialize(ctx, route, token)
        body = route.body(100_000, ctx)
        c = Conn(ctx)
        if not await c.open():
            return route, c
        await c.send(route.head(ctx, target, token, [("Content-Length", str(len(body)))]))
        sent = 0
        while not c.closed and time.monotonic() - c.opened_at < duration:
            if not await c.send(body[sent:sent + 1], stall=5):
                break
            sent += 1
            await asyncio.sleep(SLOW_BYTE_EVERY_S)
        if uid and route.limit != 0:
            placed.append((uid, max(0, sent - len(route.prefix))))
        c.close("fin")
        return route, c

    pairs = opened(ctx, raise_first(await gather_limited(
        [one(r) for r in body_routes() for _ in range(per)], 200)), "slow bodies")
    early = Counter(r.name for r, c in pairs if c.answered)
    judge_no_5xx(ctx, pairs, "slow bodies")
    await check_uploads_consistent(ctx, token, placed, "after a slow body")
    ctx.note(f"{len(pairs)} slow bodies; answered while trickling: {tally(early, per) or 'none'}")


# ----- class 2: oversized and endless -----------------------------------------

async def push_endless(ctx, c: Conn, chunks, cap: int, max_s: float, stall: float):
    """Sends chunks until the server answers or closes, cap bytes were taken,
    max_s passed, or a send did not drain within stall s. Answers how it ended."""
    t0 = time.monotonic()
    for chunk in chunks:
        if c.answered or c.closed:
            break
        if c.sent >= cap:
            return "cap"
        if time.monotonic() - t0 > max_s:
            return "time"
        if not await c.send(chunk, stall=stall):
            break
    await c.wait(lambda: c.answered or c.closed, 1.0 if not c.stalled else ctx.timeout + CUT_GRACE_S)
    if c.answered:
        return f"answered {c.status()}"
    if c.closed:
        return "closed"
    return "stalled"


def judge_endless(ctx, results, what):
    """results: (route, outcome, bytes taken, limit). The server must answer or
    close before taking much more than the route's limit, and never stop
    reading without answering; it never answers 5xx."""
    outcomes = Counter()
    for route, outcome, taken, limit in results:
        if ctx.verbose:
            print(f"      {what} to {route.name:<40} {outcome:<16} after {mib(taken)}", file=sys.stderr)
        outcomes[outcome.split(" ")[0] if not outcome.startswith("answered") else outcome] += 1
        label = f"{what} to {route.name}"
        if outcome == "no connection":
            ctx.problem(f"{label}: could not connect")
        elif outcome == "stalled":
            ctx.problem(f"{label}: the server stopped reading after {mib(taken)} and never answered")
        elif outcome in ("cap", "time") and limit is not None:
            ctx.problem(f"{label}: still reading after {mib(taken)} (a legitimate one is at most {mib(limit)})")
        elif limit is not None and taken > limit + BUFFER_SLACK:
            ctx.problem(f"{label}: took {mib(taken)} before it {outcome} (limit {mib(limit)})")
        if outcome.startswith("answered 5"):
            ctx.problem(f"{label}: {outcome}")
    return outcomes


@attack("oversized_headers")
async def oversized_headers(ctx: Ctx):
    """Every route: one endless header, endless thousands of headers, an endless request line."""
    token = ctx.token("bighead")
    cap = ctx.n("header_cap_mib") * MIB
    stall = ctx.timeout + CUT_GRACE_S

    def huge_header(head):
        yield head + b"X-Huge: "
        while True:
            yield b"a" * 65536

    def many_headers(head):
        yield head
        i = 0
        while True:
            yield b"".join(b"X-H%d: v\r\n" % (i + k) for k in range(4096))
            i += 4096

    def long_target(route, target):
        def gen(_head):
            yield f"{route.method} {target}{'&' if '?' in target else '?'}q=".encode()
            while True:
                yield b"a" * 65536
        return gen

    async def one(route, variant):
        target, _ = await materialize(ctx, route, token)
        head = route.head(ctx, target, token, end=False)
        gen = {"huge_header": huge_header, "many_headers": many_headers,
               "long_target": long_target(route, target)}[variant](head)
        c = Conn(ctx)
        if not await c.open():
            return route, "no connection", 0, 0
        outcome = await push_endless(ctx, c, gen, cap, 30, stall)
        c.close("rst")
        return Route(f"{route.name}/{variant}", "", ""), outcome, c.sent, 64 * 1024

    results = raise_first(await gather_limited(
        [one(r, v) for r in ROUTES for v in ("huge_header", "many_headers", "long_target")], 16))
    outcomes = judge_endless(ctx, results, "endless header")
    ctx.note(f"{len(results)} endless heads: {dict(outcomes)}")


@attack("endless_bodies")
async def endless_bodies(ctx: Ctx):
    """Every route: a chunked body that never ends, at full speed (multipart
    without boundary, with a lost boundary, an endless part header, endless
    form-urlencoded fields ...)."""
    token = ctx.token("endless")
    cap = ctx.n("endless_cap_mib") * MIB
    max_s = ctx.n("endless_max_s")
    placed = []

    def chunked(route):
        for chunk in route.chunks(ctx):
            yield b"%x\r\n" % len(chunk) + chunk + b"\r\n"

    async def one(route):
        target, uid = await materialize(ctx, route, token)
        c = Conn(ctx)
        if not await c.open():
            return route, "no connection", 0, route.limit
        await c.send(route.head(ctx, target, token, [("Transfer-Encoding", "chunked")]))
        c.sent = 0
        outcome = await push_endless(ctx, c, chunked(route), cap, max_s, ctx.timeout + CUT_GRACE_S)
        c.close("rst")
        if uid and route.limit != 0:
            placed.append((uid, c.sent))
        return route, outcome, c.sent, route.limit

    results = raise_first(await gather_limited([one(r) for r in body_routes()], 4))
    outcomes = judge_endless(ctx, results, "endless body")
    await check_uploads_consistent(ctx, token, placed, "after an endless body")
    ctx.note(f"{len(results)} endless bodies: {dict(outcomes)}")


@attack("malformed_framing")
async def malformed_framing(ctx: Ctx):
    """Every route: chunk sizes that overflow, endless chunk extensions, endless
    trailers, Content-Length with Transfer-Encoding hiding a second request,
    two different Content-Lengths."""
    token = ctx.token("framing")
    cap = ctx.n("header_cap_mib") * MIB
    te = [("Transfer-Encoding", "chunked")]
    smuggled = b"0\r\n\r\nGET /healthz?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n"

    def forever(first, then):
        yield first
        while True:
            yield then

    variants = {
        "chunk_overflow": (te, lambda: iter([b"fffffffffffffffffffffff\r\n" + b"a" * 1024]), False),
        "endless_extension": (te, lambda: forever(b"10;ext=", b"a" * 65536), True),
        "endless_trailer": (te, lambda: forever(b"1\r\na\r\n0\r\n", b"X-T: v\r\n" * 8192), True),
        "length_and_chunked": ([("Content-Length", str(len(smuggled)))] + te, lambda: iter([smuggled]), False),
        "two_lengths": ([("Content-Length", "5"), ("Content-Length", "6")], lambda: iter([b"abcdef"]), False),
    }
    problems_seen = Counter()

    async def one(route, name):
        extra, gen, endless = variants[name]
        target, _ = await materialize(ctx, route, token)
        c = Conn(ctx)
        if not await c.open():
            return Route(f"{route.name}/{name}", "", ""), "no connection", 0, 0
        await c.send(route.head(ctx, target, token, extra))
        c.sent = 0
        outcome = await push_endless(ctx, c, gen(), cap, 30, ctx.timeout + CUT_GRACE_S)
        if outcome == "stalled" or not endless:
            # A finite malformed body: the server answers or closes within its timeouts.
            await c.wait(lambda: c.answered or c.closed, ctx.timeout + CUT_GRACE_S)
            outcome = f"answered {c.status()}" if c.answered else "closed" if c.closed else "stalled"
        if name == "length_and_chunked":
            await asyncio.sleep(0.5)
            answers = bytes(c.rx).count(b"HTTP/1.1 ")
            if answers > 1 or b"smuggled" in c.rx:
                problems_seen[name] += 1
                ctx.problem(f"{route.name}: a request hidden after a chunked body sent with Content-Length "
                            f"was answered too ({answers} answers on one request)")
        # Two Content-Lengths are refused at the head; a broken chunk only by routes that read
        # bodies (creation-with-upload answers 201 whatever happens to its body, by design).
        reads_body = route.limit != 0 and not route.name.startswith("files_create")
        if (name == "two_lengths" or name == "chunk_overflow" and reads_body) \
                and outcome.startswith(("answered 2", "answered 3")):
            ctx.problem(f"{route.name}/{name}: a malformed request was {outcome}")
        c.close("rst")
        return Route(f"{route.name}/{name}", "", ""), outcome, c.sent, 64 * 1024

    results = raise_first(await gather_limited([one(r, v) for r in body_routes() for v in variants], 16))
    outcomes = judge_endless(ctx, results, "malformed framing")
    ctx.note(f"{len(results)} malformed requests: {dict(outcomes)}")


# ----- class 3: truncated bodies ----------------------------------------------

def multipart_file(name: str, data: bytes) -> bytes:
    return (_part("file", name, "Content-Type: application/octet-stream\r\n\r\n") + data
            + f"\r\n--{BOUNDARY}--\r\n".encode())


@attack("truncated_bodies")
async def truncated_bodies(ctx: Ctx):
    """PATCH, creation-with-upload and form bodies cut at random bytes by FIN,
    shutdown(SHUT_WR) or RST; the upload must hold a prefix of what was sent."""
    rounds = ctx.n("truncations")
    settle_s = ctx.timeout + CUT_GRACE_S
    kinds = ("patch", "create", "form")
    modes = ("fin", "shutdown", "rst")
    seen = Counter()

    async def one(kind, mode):
        token = ctx.token(f"cut-{kind}")
        data = ctx.noise(ctx.rng.randint(1, 2 * MIB))
        uid = None
        if kind == "patch":
            uid = await must_create(ctx, token, length=len(data))
            head = build_request("PATCH", f"/files/{uid}", UPLOAD_HEADERS + [
                ("Authorization", f"Bearer {token}"), ("Content-Length", str(len(data)))], None, ctx.hostport)
            body = data
        elif kind == "create":
            head = build_request("POST", "/files/", TUS + [
                ("Upload-Length", str(len(data))), ("Content-Type", OCTET),
                ("Authorization", f"Bearer {token}"), ("Content-Length", str(len(data)))], None, ctx.hostport)
            body = data
        else:
            body = multipart_file("cut.bin", data)
            head = build_request("POST", "/upload/form", MULTIPART + [
                ("Authorization", f"Bearer {token}"), ("Content-Length", str(len(body)))], None, ctx.hostport)
        edge = ctx.rng.choice([0, 1, len(body) - 1])
        cut = ctx.rng.randrange(len(body)) if ctx.rng.random() < 0.6 else edge
        c = Conn(ctx)
        if not await c.open():
            return f"{kind}/{mode}: could not connect: {c.error}"
        await c.send(head)
        for i in range(0, cut, 256 * 1024):
            await c.send(body[i:min(cut, i + 256 * 1024)])
        await asyncio.sleep(ctx.rng.choice([0, 0.05, 0.3]))
        await c.close_how(mode)
        label = f"{kind} cut at {cut}/{len(body)} by {mode}"
        seen[kind] += 1

        if kind == "form":
            return await check_form_after(ctx, token, data, label, settle_s)
        if uid is None:  # creation-with-upload: find the upload through the listing
            deadline = time.monotonic() + settle_s
            while True:
                _, items = await list_uploads(ctx, token)
                if items or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if not items:
                return None  # nothing created is acceptable
            if len(items) > 1:
                return f"{label}: {len(items)} uploads exist for one creation"
            uid = items[0]["id"]
        offset, why = await settle(ctx, token, uid, settle_s)
        if why == "locked":
            return f"{label}: the upload is still locked {settle_s:.0f} s after the client left"
        if why:
            return f"{label}: {why}"
        if offset > cut:
            return f"{label}: the upload is at offset {offset}, beyond the {cut} bytes sent"
        r = await tus_patch(ctx, token, uid, offset, data[offset:], locked_wait=1)
        if r.status != 204 or r.h("upload-offset") != str(len(data)):
            return f"{label}: resuming at {offset} answered {r.brief()}"
        return await verify_download(ctx, token, uid, data, label)

    jobs = [one(k, m) for k in kinds for m in modes for _ in range(rounds)]
    for res in await gather_limited(jobs, 6):
        if isinstance(res, BaseException):
            ctx.problem(f"truncation round failed: {res!r}")
        elif res:
            ctx.problem(res)
    ctx.note(f"{sum(seen.values())} truncated bodies ({dict(seen)}), each resumed and compared")


async def check_form_after(ctx, token, data, label, settle_s):
    """After a cut form: no upload may be complete with other bytes than the
    file; an incomplete leftover is tolerated."""
    deadline = time.monotonic() + settle_s
    last = None
    while True:
        r, items = await list_uploads(ctx, token)
        if items is None:
            return f"{label}: the listing answered {r.brief()}"
        key = [(i.get("id"), i.get("offset"), i.get("complete")) for i in items]
        if key == last or time.monotonic() > deadline:
            break
        last = key
        await asyncio.sleep(0.4)
    for item in items:
        if item.get("complete"):
            if item.get("size") != len(data) or item.get("sha256") != sha256_hex(data):
                return (f"{label}: a form upload is listed complete with size {item.get('size')} "
                        f"(the file has {len(data)})")
            err = await verify_download(ctx, token, item["id"], data, label)
            if err:
                return err
    return None


# ----- class 4: races -----------------------------------------------------------

RACE_OPS = ("delete", "patch", "instant", "concat", "head")


def race_request(op, ctx, token, uid, part2, data, half):
    auth = [("Authorization", f"Bearer {token}")]
    if op == "delete":
        return "DELETE", f"/files/{uid}", TUS + auth, None
    if op == "patch":
        return "PATCH", f"/files/{uid}", TUS + auth + [
            ("Upload-Offset", str(half)), ("Content-Type", OCTET)], data[half:]
    if op == "instant":
        return "POST", "/files/", TUS + auth + [
            ("Upload-Length", str(len(data))),
            ("Upload-Metadata", f"sha256 {b64(sha256_hex(data))},filename {b64('twin.bin')}")], b""
    if op == "concat":
        return "POST", "/files/", TUS + auth + [("Upload-Concat", f"final;/files/{uid} /files/{part2}")], b""
    return "HEAD", f"/files/{uid}", TUS + auth, None


async def race_round(ctx, a, b):
    """Two operations on one upload, fired together; then the no-loss check."""
    token = ctx.token("race")
    data = ctx.noise(ctx.rng.randint(1, 512 * 1024))
    tail = ctx.noise(ctx.rng.randint(1, 64 * 1024))
    half = len(data) // 2
    pair = (a, b)
    concat = "partial" if "concat" in pair else None
    uid = await must_create(ctx, token, length=len(data), concat=concat)
    r = await tus_patch(ctx, token, uid, 0, data[:half], locked_wait=3)
    if r.status != 204:
        raise RuntimeError(f"setup PATCH answered {r.brief()}")
    if "patch" not in pair:
        r = await tus_patch(ctx, token, uid, half, data[half:], locked_wait=3)
        if r.status != 204:
            raise RuntimeError(f"setup PATCH answered {r.brief()}")
    part2 = await complete_upload(ctx, token, tail, concat="partial") if concat else None

    # Open both connections first, then send both requests back to back.
    conns = [Conn(ctx, track=False), Conn(ctx, track=False)]
    for c in conns:
        if not await c.open():
            raise ConnectionError(c.error)
    # Two PATCHes carry different bytes, so a mix of both cannot pass for either.
    alt = data[:half] + ctx.noise(len(data) - half)
    reqs = [race_request(op, ctx, token, uid, part2, alt if i == 1 and pair == ("patch", "patch") else data, half)
            for i, op in enumerate(pair)]
    delay = ctx.rng.choice([0, 0, 0.0005, 0.002])

    async def fire(i):
        if i == 1 and delay:
            await asyncio.sleep(delay)
        m, p, h, body = reqs[i]
        await conns[i].send(build_request(m, p, h, body, ctx.hostport))
        return await conns[i].response(REQUEST_TIMEOUT_S, head_only=m == "HEAD")

    answers = await asyncio.gather(fire(0), fire(1))
    for c in conns:
        c.close("fin")

    problems = []
    label = f"{a}+{b}"
    for op, resp in zip(pair, answers):
        if resp is None:
            problems.append(f"{label}: {op} got no answer in {REQUEST_TIMEOUT_S:.0f} s")
        elif resp.status >= 500:
            problems.append(f"{label}: {op} answered {resp.brief()}")
    if problems:
        return problems
    deleted = any(op == "delete" and r.status == 204 for op, r in zip(pair, answers))
    won = [i for i, (op, r) in enumerate(zip(pair, answers))
           if op == "patch" and r.status == 204 and r.h("upload-offset") == str(len(data))]
    complete = "patch" not in pair or bool(won)
    if pair == ("patch", "patch"):
        if len(won) == 2:
            problems.append(f"{label}: two PATCHes at offset {half} were both acknowledged complete")
        elif won == [1]:
            data = alt  # the second one's bytes are the upload's now
    for op, r in zip(pair, answers):
        if op == "head" and r.status == 200 and r.h("upload-offset") not in (str(half), str(len(data))):
            problems.append(f"{label}: HEAD showed offset {r.h('upload-offset')} (only {half} or {len(data)} exist)")
        if op in ("head", "patch") and r.status == 404 and "delete" not in pair:
            problems.append(f"{label}: {op} answered 404 for an upload nobody deleted")

    checks = []  # (label, id, bytes, may be gone)
    if complete:
        checks.append(("the raced upload", uid, data, deleted))
    for op, r in zip(pair, answers):
        if op == "instant" and r.status == 201 and r.h("upload-offset") == str(len(data)):
            checks.append(("an instant upload answered complete", upload_id(r), data, False))
        if op == "concat" and r.status == 201 and r.h("upload-offset") == str(len(data) + len(tail)):
            checks.append(("a final concatenation answered complete", upload_id(r), data + tail, False))
    for what, cid, expected, may_be_gone in checks:
        g = await request(ctx, "GET", f"/files/{cid}", [], None, token)
        if may_be_gone:
            if g.status == 200:
                problems.append(f"{label}: {what}: DELETE answered 204 but it still downloads")
            elif g.status not in (404, 410):
                problems.append(f"{label}: {what} after DELETE: {g.brief()}")
            continue
        err = await verify_download(ctx, token, cid, expected, f"{label}: {what}")
        if err:
            problems.append(err)
    if not complete and not deleted:
        h = await tus_head(ctx, token, uid)
        off = h.h("upload-offset")
        if h.status != 200 or off not in (str(half), str(len(data))):
            problems.append(f"{label}: after the race the upload answers {h.status} at offset {off}")
        elif off == str(len(data)):
            err = await verify_download(ctx, token, uid, data, f"{label}: the raced upload")
            if err:
                problems.append(err)
    return problems


@attack("races")
async def races(ctx: Ctx):
    """Every pair of DELETE, PATCH, instant upload, concatenation and HEAD on one
    upload, fired together, many rounds; nothing acknowledged may be lost or changed."""
    rounds = ctx.n("race_rounds")
    pairs = [(a, b) for i, a in enumerate(RACE_OPS) for b in RACE_OPS[i:]]
    jobs = [race_round(ctx, a, b) for _ in range(rounds) for a, b in pairs]
    ctx.rng.shuffle(jobs)
    bad = Counter()
    for res in await gather_limited(jobs, 4):
        if isinstance(res, BaseException):
            ctx.problem(f"race round failed: {res!r}")
            continue
        if res:
            pair = res[0].split(":")[0]
            bad[pair] += 1
            if bad[pair] == 1:
                for p in res:
                    ctx.problem(p)
    if bad:
        ctx.problems.insert(0, f"bad rounds by pair: {tally(bad, rounds)} (first of each below)")
    ctx.note(f"{len(jobs)} rounds over {len(pairs)} pairs; bad rounds by pair: {tally(bad) or 'none'}")


# ----- class 5: hostile metadata --------------------------------------------------

def hostile_metadata():
    """(label, Upload-Metadata value) pairs, each hostile in its own way."""
    ok16 = "A" * 12000  # base64 of this is 16000 characters: just under 16 KiB
    name = lambda s: "filename " + b64(s)  # noqa: E731
    return [
        ("bidi override name", name("invoice\u202egnp.exe")),
        ("bidi isolates", name("a\u2067b\u2069c\u200f\u202ad.txt")),
        ("16 KiB name", name(ok16)),
        ("16 KiB type", "filetype " + b64(ok16)),
        ("16 KiB other key", "note " + b64(ok16)),
        ("over 16 KiB", name("A" * 13000)),
        ("invalid base64", "filename !!!not-base64!!!"),
        ("truncated base64", "filename YWJ"),
        ("control characters", name("a\r\nb\x00c\x1b[31m\x7f.txt") + ",filetype " + b64("text/html\r\nX-Evil: 1")),
        ("control character in key", "file\x01name YQ=="),
        ("duplicate keys", name("a") + "," + name("b")),
        ("thousands of keys", ",".join(f"k{i}" for i in range(3000))),
        ("64 keys", ",".join(f"k{i} " + b64("v") for i in range(64))),
        ("65 keys", ",".join(f"k{i} " + b64("v") for i in range(65))),
        ("not UTF-8", "filename " + b64(bytes([0xFF, 0xFE, 0x80, 0x41]))),
        ("path traversal", name("../../../../etc/passwd")),
        ("markup", name("<img src=x onerror=alert(1)>.html") + ",filetype " + b64("text/html")),
        ("empty key", " " + b64("x")),
        ("only commas", ",,,,"),
        ("zero width and BOM", name("\u200b\ufeff\u2060.txt")),
        ("long unicode name", name("\u00e9" * 5000)),
        ("bogus sha256", "sha256 " + b64("zz" * 32)),
        ("sha256 of other bytes", "sha256 " + b64(sha256_hex(b"something else"))),
    ]


@attack("hostile_metadata")
async def hostile_metadata_attack(ctx: Ctx):
    """Uploads with hostile Upload-Metadata (bidi overrides, 16 KiB values,
    invalid base64, control characters, duplicate and thousands of keys); errors
    are JSON, downloads stay attachments, the listing stays small and clean."""
    token = ctx.token("meta")
    content = b"sixteen bytes!!!"
    created, refused = 0, Counter()
    for label, meta in hostile_metadata():
        h = TUS + [("Upload-Length", str(len(content))), ("Content-Type", OCTET),
                   ("Upload-Metadata", meta)]
        try:
            r = await request(ctx, "POST", "/files/", h, content, token)
        except (OSError, TimeoutError) as e:
            ctx.problem(f"{label}: creating failed: {e!r}")
            continue
        if r.status >= 500:
            ctx.problem(f"{label}: creation answered {r.brief()}")
        elif r.status == 201:
            created += 1
            uid = upload_id(r)
            if r.h("upload-offset") != str(len(content)):
                ctx.problem(f"{label}: creation-with-upload reached offset {r.h('upload-offset')}")
                continue
            g = await request(ctx, "GET", f"/files/{uid}", [], None, token)
            disp = g.h("content-disposition", "")
            if g.status != 200 or g.body != content:
                ctx.problem(f"{label}: download answered {g.brief()}")
            if g.h("content-type") != "application/octet-stream" or g.h("x-content-type-options") != "nosniff" \
                    or not disp.startswith("attachment"):
                ctx.problem(f"{label}: download headers type={g.h('content-type')} disposition={disp[:60]!r}")
            if any(ord(ch) < 32 or ord(ch) > 126 for ch in disp):
                ctx.problem(f"{label}: Content-Disposition carries raw control or non-ASCII characters")
        else:
            refused[r.status] += 1
            body = r.json()
            is_catalogue = isinstance(body, dict) and "error" in body and "message" in body
            # hyper's own refusals of malformed heads carry no body; handlers answer JSON.
            if r.status not in (400, 413, 431) or (r.body and not is_catalogue):
                ctx.problem(f"{label}: refused with {r.brief()} (not a JSON error of the catalogue)")
    r, items = await list_uploads(ctx, token)
    if items is None:
        ctx.problem(f"listing answered {r.brief()}")
        return
    if len(items) != created:
        ctx.problem(f"the listing shows {len(items)} uploads, {created} were created")
    size = r.listing_bytes
    if size > LISTING_BYTES_PER_UPLOAD * max(1, len(items)) + 1024:
        ctx.problem(f"the listing of {len(items)} uploads is {size} bytes "
                    f"(at most {LISTING_BYTES_PER_UPLOAD} per upload)")
    for item in items:
        for key in ("name", "mime"):
            value = str(item.get(key) or "")
            if set(value) & BIDI:
                ctx.problem(f"listing {key} {value[:40]!r} carries bidi controls "
                            f"{sorted(f'U+{ord(c):04X}' for c in set(value) & BIDI)}")
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                ctx.problem(f"listing {key} {value[:40]!r} carries control characters")
            if len(value) > LISTING_FIELD_MAX:
                ctx.problem(f"listing {key} is {len(value)} characters long (at most {LISTING_FIELD_MAX})")
    ctx.note(f"{created} created, refused {dict(refused)}; listing {size} bytes for {len(items)} uploads")


# ----- class 6: WebSocket -----------------------------------------------------------

async def ws_stream(ctx, ws: WS, chunks, cap):
    """Sends until the server closes the socket or sends a close frame, or cap."""
    for chunk in chunks:
        if ws.ended or ws.conn.sent >= cap:
            break
        if not await ws.conn.send(chunk, stall=ctx.timeout + CUT_GRACE_S):
            break
    await ws.conn.wait(lambda: ws.ended, 2.0)


@attack("ws_huge_frames")
async def ws_huge_frames(ctx: Ctx):
    """Many WebSockets at once sending frames beyond the limit: announced 1 GiB,
    16 MiB + 1, 32 MiB - 1, and a 40 MiB message in 1 MiB fragments."""
    n = ctx.n("ws_huge")
    token = ctx.token("wshuge")
    block = ctx.noise(256 * 1024)
    cap = 2 * WS_MAX_FRAME + 8 * MIB + BUFFER_SLACK

    def frame_of(length, total=None):
        yield ws_frame_header(2, length)
        left = total if total is not None else length
        while left > 0:
            yield block[:min(left, len(block))]
            left -= min(left, len(block))

    def fragments(total):
        first = True
        while total > 0:
            yield ws_frame_header(2 if first else 0, MIB, fin=False)
            first = False
            for _ in range(4):
                yield block
            total -= MIB

    variants = [("1GiB", lambda: frame_of(1 << 30, cap + MIB)), ("16MiB+1", lambda: frame_of(WS_MAX_FRAME + 1)),
                ("32MiB-1", lambda: frame_of(2 * WS_MAX_FRAME - 1)), ("40MiB-fragments", lambda: fragments(40 * MIB))]
    placed, outcome = [], Counter()

    async def one(i):
        name, make = variants[i % len(variants)]
        uid = await must_create(ctx, token, deferred=True)
        ws, resp = await ws_connect(ctx, f"/files/{uid}/ws", token)
        if ws is None:
            outcome[f"{name} refused"] += 1
            return None if polite_refusal(resp) else \
                f"{name}: WebSocket handshake answered {resp.brief() if resp else 'nothing'}"
        await ws_stream(ctx, ws, make(), cap)
        await ws.conn.wait(lambda: ws.ended, ctx.timeout + CUT_GRACE_S)
        close = ws.close_frame()
        outcome[f"{name} {close[0] if close else ('closed' if ws.conn.closed else 'open')}"] += 1
        taken = ws.conn.sent
        ws.conn.close("rst")
        placed.append((uid, 0))
        if not ws.ended:
            return (f"{name}: the server took {mib(taken)} of an oversized frame or message and "
                    f"did not close the socket")
        if close and close[0] not in (1009, 1008, 1002, 1011):
            return f"{name}: closed with code {close[0]} {close[1]!r}"
        return None

    for res in await gather_limited([one(i) for i in range(n)], n):
        if isinstance(res, BaseException):
            ctx.problem(f"WebSocket round failed: {res!r}")
        elif res:
            ctx.problem(res)
    await check_uploads_consistent(ctx, token, placed, "after an oversized frame")
    ctx.note(f"{n} sockets at once; outcomes {dict(outcome)}")


@attack("ws_many_sockets")
async def ws_many_sockets(ctx: Ctx):
    """Many WebSockets at once, each sending 4 KiB then idling past the
    timeouts, then 'end'; acknowledged offsets must hold and the bytes match."""
    n = ctx.n("ws_many")
    token = ctx.token("wsmany")
    uids = raise_first(await gather_limited([must_create(ctx, token, deferred=True) for _ in range(n)], 16))
    datas = [ctx.noise(4096) for _ in range(n)]

    async def connect(i):
        ws, resp = await ws_connect(ctx, f"/files/{uids[i]}/ws", token)
        if ws is not None:
            await ws.conn.send(ws_frame(2, datas[i], ctx.rng))
        return ws, resp

    socks = await gather_limited([connect(i) for i in range(n)], 100)
    failed = [r for r in socks if isinstance(r, BaseException) or r[0] is None]
    polite = [r for r in failed if not isinstance(r, BaseException) and polite_refusal(r[1])]
    rude = [r for r in failed if not (not isinstance(r, BaseException) and polite_refusal(r[1]))]
    if rude:
        first = rude[0]
        why = repr(first) if isinstance(first, BaseException) else (first[1].brief() if first[1] else "no answer")
        ctx.problem(f"{len(rude)}/{n} WebSocket handshakes got neither a socket nor a clear refusal ({why})")
    await asyncio.sleep(ctx.timeout + CUT_GRACE_S)
    live = [(i, s[0]) for i, s in enumerate(socks) if not isinstance(s, BaseException) and s[0] is not None]
    cut = sum(ws.ended for _, ws in live)
    for _, ws in live:
        if not ws.ended:
            await ws.conn.send(ws_frame(1, b"end", ctx.rng))
    await wait_all([ws for _, ws in live], lambda ws: ws.ended, 10)
    lost = []
    for i, ws in live[:20]:
        acked = max((o.get("offset", 0) for o in ws.offsets() if isinstance(o, dict)), default=0)
        h = await tus_head(ctx, token, uids[i])
        off = int(h.h("upload-offset", "0") or 0)
        if off < acked or off > 4096:
            lost.append(f"upload {uids[i]} at offset {off}, acknowledged {acked}, sent 4096")
    for msg in lost[:3]:
        ctx.problem(f"WebSocket: {msg}")
    for i, _ in live[:5]:
        off, why = await settle(ctx, token, uids[i], CUT_GRACE_S)
        if why:
            ctx.problem(f"WebSocket upload {uids[i]}: {why} after its socket ended")
            continue
        r = await tus_patch(ctx, token, uids[i], off, datas[i][off:], length=4096, locked_wait=1)
        if r.status != 204:
            ctx.problem(f"finishing a WebSocket upload at {off} answered {r.brief()}")
            continue
        err = await verify_download(ctx, token, uids[i], datas[i], "WebSocket upload")
        if err:
            ctx.problem(err)
    ctx.note(f"{len(live)}/{n} sockets open, {len(polite)} refused politely; {cut} ended by the server while idle")


@attack("ws_stalled_frames")
async def ws_stalled_frames(ctx: Ctx):
    """WebSockets that announce a 1 MiB frame, send 1000 bytes of it and
    stall; the upload must not stay locked past the body timeout."""
    n = ctx.n("ws_stalled")
    token = ctx.token("wsstall")
    uids = raise_first(await gather_limited([must_create(ctx, token, deferred=True) for _ in range(n)], 16))

    async def one(uid):
        ws, resp = await ws_connect(ctx, f"/files/{uid}/ws", token)
        if ws is not None:
            await ws.conn.send(ws_frame_header(2, MIB) + ctx.noise(1000))
        elif not polite_refusal(resp):
            ctx.problem(f"a WebSocket handshake got neither a socket nor a clear refusal "
                        f"({resp.brief() if resp else 'no answer'})")
        return ws

    socks = raise_first(await gather_limited([one(u) for u in uids], 50))
    if sum(ws is None for ws in socks):
        ctx.note(f"{sum(ws is None for ws in socks)}/{n} WebSocket handshakes refused")
    await asyncio.sleep(ctx.timeout + CUT_GRACE_S)
    ended = sum(1 for ws in socks if ws is not None and ws.ended)

    async def locked(uid):
        h = await tus_head(ctx, token, uid)
        p = await tus_patch(ctx, token, uid, int(h.h("upload-offset", "0") or 0), b"")
        return p.status == 423

    still = sum(raise_first(await gather_limited([locked(u) for u in uids], 16)))
    if still:
        ctx.problem(f"{still}/{n} uploads still locked {ctx.timeout + CUT_GRACE_S:.0f} s after "
                    f"their WebSocket stalled mid-frame")
    for ws in socks:
        if ws is not None:
            ws.conn.close("rst")
    await check_uploads_consistent(ctx, token, [(u, 1000) for u in uids], "after a stalled frame")
    ctx.note(f"{ended}/{n} stalled sockets ended by the server; {still} uploads locked while stalled")


# ----- class 7: SSE and long-poll fan-out -----------------------------------------------

def sse_count(rx: bytes, kind: str) -> int:
    """How many events of this kind a Server-Sent Events stream carried."""
    want = kind.encode()
    return sum(1 for line in bytes(rx).split(b"\n")
               if line.startswith(b"event:") and line[6:].strip() == want)


@attack("sse_fanout")
async def sse_fanout(ctx: Ctx):
    """Many idle /events subscribers (a token each, and many on one token) and
    long pollers; the server's CPU while idle, event delivery to all."""
    own, shared_n, pollers = ctx.n("sse_own"), ctx.n("sse_shared"), ctx.n("pollers")
    shared = ctx.token("sse-shared")

    async def subscribe(token, path="/events"):
        c = Conn(ctx, rcvbuf=16384)
        if await c.open():
            hdrs = [("Authorization", f"Bearer {token}"), ("Accept", "text/event-stream")]
            await c.send(build_request("GET", path, hdrs, None, ctx.hostport))
        return c

    # The shared token first: a per-owner cap lets some of them in, a per-address cap
    # would otherwise go to the others before them.
    shared_subs = raise_first(await gather_limited([subscribe(shared) for _ in range(shared_n)], 200))
    own_subs = await gather_limited([subscribe(ctx.token("sse")) for _ in range(own)], 200)
    polls = await gather_limited([subscribe(ctx.token("poll"), "/events/poll?after=0&timeout=60")
                                  for _ in range(pollers)], 200)
    subs = shared_subs + raise_first(own_subs)
    polls = raise_first(polls)
    await wait_all(subs, lambda c: c.answered or c.closed, 10)
    ok = sum(c.status() == 200 for c in subs)
    refused = [c for c in subs if c.status() != 200
               and polite_refusal(parse_response(bytes(c.rx), eof=True))]
    rude = [c for c in subs if c.status() != 200 and c not in refused]
    if rude:
        r = parse_response(bytes(rude[0].rx), eof=True)
        ctx.problem(f"{len(rude)}/{len(subs)} subscribers got neither a stream nor a clear refusal "
                    f"({r.brief() if r else 'no answer'})")
    bad_polls = [c for c in polls if not isinstance(c, BaseException) and (c.status() or 0) >= 500]
    if bad_polls:
        ctx.problem(f"{len(bad_polls)} long polls answered {bad_polls[0].status()}")
    # Idle: nobody uploads (the probe pauses); how busy is the server?
    if ctx.probe:
        ctx.probe.paused.set()
    await asyncio.sleep(1.0)
    window = ctx.n("idle_window_s")
    cpu0 = ctx.sampler.cpu_seconds() if ctx.sampler else None
    await asyncio.sleep(window)
    cpu1 = ctx.sampler.cpu_seconds() if ctx.sampler else None
    if ctx.probe:
        ctx.probe.paused.clear()
    pct = None if cpu0 is None or cpu1 is None else 100 * (cpu1 - cpu0) / window
    if pct is not None and pct > IDLE_CPU_MAX_PCT:
        ctx.problem(f"idle with {ok} streams and {pollers} long polls the server uses "
                    f"{pct:.0f}% CPU (at most {IDLE_CPU_MAX_PCT:.0f}%)")
    # Fan-out: uploads of the shared token must reach all its subscribers.
    for _ in range(3):
        await complete_upload(ctx, shared, ctx.noise(1000))
    shared_subs = [c for c in shared_subs if c.status() == 200]
    await wait_all(shared_subs, lambda c: sse_count(c.rx, "upload.completed") >= 3, 5)
    got = sum(sse_count(c.rx, "upload.completed") >= 3 for c in shared_subs)
    if shared_subs and got < DELIVERY_SHARE * len(shared_subs):
        ctx.problem(f"only {got}/{len(shared_subs)} subscribers of one token got its 3 completions within 5 s")
    leaked = sum(sse_count(c.rx, "upload.completed") > 0 for c in subs[shared_n:])
    if leaked:
        ctx.problem(f"{leaked} subscribers saw events of another owner")
    await asyncio.sleep(1.0)  # the probe runs with everyone subscribed
    waiting = sum(not c.answered and not c.closed for c in polls)
    ctx.note(f"{ok} streams ({len(refused)} refused), {waiting}/{pollers} long polls waiting; idle CPU "
             + (f"{pct:.0f}%" if pct is not None else "unknown") + f"; {got}/{len(shared_subs)} got the fan-out")


# ----- class 8: listing amplification --------------------------------------------------

@attack("listing_amplification")
async def listing_amplification(ctx: Ctx):
    """Many uploads with long metadata, then many concurrent /api/list_uploads
    (and replays of the event log from its start) that never read their answer."""
    m, k = ctx.n("list_uploads"), ctx.n("list_readers")
    token = ctx.token("list")
    # The longest metadata this server takes: long names and types are what a
    # listing repeats; other keys fill up to the 16 KiB a header may carry.
    shapes = [(11000, 200, 0), (200, 11000, 0), (1000, 250, 10000), (250, 100, 12000), (100, 50, 0)]
    for name_len, type_len, note_len in shapes:
        def meta(i, name_len=name_len, type_len=type_len, note_len=note_len):
            md = f"filename {b64(f'{i:06d}-' + 'n' * (name_len - 7))},filetype {b64('t' * type_len)}"
            return md + (f",note {b64('x' * note_len)}" if note_len else "")
        r, uid = await tus_create(ctx, token, length=1, metadata=meta(0))
        if uid:
            break
    else:
        ctx.problem(f"no long metadata was accepted ({r.brief()})")
        return
    made = await gather_limited([tus_create(ctx, token, length=1, metadata=meta(i)) for i in range(1, m)], 16)
    made.append((r, uid))
    ok = sum(1 for r in made if not isinstance(r, BaseException) and r[1])
    if ok < m:
        bad = next(r for r in made if isinstance(r, BaseException) or not r[1])
        ctx.note(f"only {ok}/{m} uploads created ({bad!r:.60})")
    t0 = time.monotonic()
    r, items = await list_uploads(ctx, token, timeout=30, all_pages=False)
    one_list = time.monotonic() - t0
    size = len(r.body)

    async def hold(method, path, extra=(), body=None):
        c = Conn(ctx, read=False, rcvbuf=4096)
        if await c.open():
            await c.send(build_request(method, path, [("Authorization", f"Bearer {token}")] + list(extra),
                                       body, ctx.hostport))
        return c

    # Listings, and replays of the owner's whole event log (an event per upload),
    # none of them read.
    holds = [hold("POST", "/api/list_uploads", [("Content-Type", FORM)], b"") for _ in range(k)]
    holds += [hold("GET", "/events", [("Last-Event-ID", "0")]) for _ in range(k // 4)]
    holds += [hold("GET", "/events/poll?after=0&timeout=1") for _ in range(k // 4)]
    conns = raise_first(await gather_limited(holds, 100))
    await asyncio.sleep(ctx.timeout + 2)
    for c in conns:
        c.close("rst")
    if items is None:
        ctx.problem(f"the listing answered {r.brief()}")
    ctx.note(f"{ok} uploads (name {name_len} B, type {type_len} B, other {note_len} B); first listing page {size / 1024:.0f} KiB with {len(items or [])} uploads "
             f"in {one_list * 1000:.0f} ms; "
             f"{k} unread listings and {2 * (k // 4)} unread event replays held")


# ----- class 9: guessing the access token ------------------------------------------------

def judge_guesses(ctx, statuses, what):
    n = len(statuses)
    limited = statuses.count(429)
    first = next((i + 1 for i, s in enumerate(statuses) if s == 429), None)
    accepted = sum(1 for s in statuses if s in (200, 204, 303) or 200 <= s < 300)
    if accepted:
        ctx.problem(f"{what}: {accepted} wrong tokens were accepted")
    if first is None or first > GUESS_FREE:
        ctx.problem(f"{what}: {'no 429 at all' if first is None else f'first 429 only at guess {first}'} "
                    f"(by guess {GUESS_FREE} at the latest)")
    elif limited < GUESS_REFUSED_SHARE * n:
        ctx.problem(f"{what}: only {limited}/{n} guesses refused with 429")
    if any(s >= 500 for s in statuses):
        ctx.problem(f"{what}: answers {dict(Counter(s for s in statuses if s >= 500))}")
    ctx.note(f"{what}: {dict(Counter(statuses))}, first 429 at {first}")


@attack("guess_signin", server_args=("--access-token", ACCESS_TOKEN), token=ACCESS_TOKEN)
async def guess_signin(ctx: Ctx):
    """Many wrong POST /signin tokens (server started with --access-token);
    after a few, most must be refused with 429."""
    statuses = []
    for i in range(ctx.n("guesses")):
        body = urllib.parse.urlencode({"token": f"guess-{i:06d}"}).encode()
        r = await request(ctx, "POST", "/signin", [("Content-Type", FORM)], body)
        statuses.append(r.status)
    judge_guesses(ctx, statuses, "sign-in")
    r = await request(ctx, "GET", "/api/list_uploads", [], None)
    if r.status not in (401, 405, 429):
        ctx.problem(f"without a token the API answered {r.brief()}")


@attack("guess_bearer", server_args=("--access-token", ACCESS_TOKEN), token=ACCESS_TOKEN)
async def guess_bearer(ctx: Ctx):
    """Many wrong Authorization: Bearer tokens on the API and tus routes
    (server started with --access-token); after a few, most must get 429."""
    statuses = []
    for i in range(ctx.n("guesses")):
        if i % 2:
            r = await request(ctx, "POST", "/api/list_uploads", [("Content-Type", FORM)], b"", f"guess-{i:06d}")
        else:
            r = await request(ctx, "HEAD", "/files/AAAAAAAAAAAAAAAAAAAAAA", TUS, None, f"guess-{i:06d}")
        statuses.append(r.status)
    judge_guesses(ctx, statuses, "bearer")


# ==========================================================================
# The runner.
# ==========================================================================

@dataclass
class Result:
    name: str
    passed: bool
    line: str
    problems: list


def run_attack(att: Attack, server: Server, args, rng: random.Random) -> Result:
    sampler = Sampler(server.pid) if server.pid else None
    if sampler:
        sampler.start()
        base_fds = sampler.reset()
    else:
        base_fds = None
    probe = Probe(server.host, server.port, att.token or f"probe-{rng.getrandbits(48):x}", rng.getrandbits(32))
    health = Health(server.host, server.port)
    ctx = Ctx(server, args.quick, random.Random(rng.getrandbits(64)), sampler, probe, args.server_timeout)
    ctx.verbose = args.verbose
    log_at = server.log_size()
    probe.start()
    health.start()
    limit = 600 if not args.quick else 180

    async def main():
        try:
            await asyncio.wait_for(att.fn(ctx), limit)
        finally:
            ctx.cleanup()
            await asyncio.sleep(0)

    t0 = time.monotonic()
    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        ctx.problem(f"the attack did not finish within {limit} s")
    except Exception as e:  # an attack that breaks is reported, never fatal
        ctx.problem(f"the attack stopped: {type(e).__name__}: {e}")
        if args.verbose:
            traceback.print_exc()
    elapsed = time.monotonic() - t0
    probe.stop_ev.set()
    health.stop_ev.set()
    probe.join(PROBE_LIMIT_S * 5 + 5)
    health.join(HEALTH_LIMIT_S + 2)

    problems = []
    alive = server.alive()
    if not alive:
        problems.append(f"the server died: {server.death()}")
    after_fds = None
    if sampler and alive:
        deadline = time.monotonic() + FD_SETTLE_S
        while True:
            _, after_fds = sampler.now()
            if after_fds is None or after_fds <= base_fds + FD_SLACK or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if after_fds is not None and after_fds > base_fds + FD_SLACK:
            problems.append(f"{after_fds} descriptors open {FD_SETTLE_S:.0f} s after the attack "
                            f"(baseline {base_fds})")
    if sampler:
        sampler.stop_ev.set()
        if sampler.peak_rss > RSS_LIMIT_MIB:
            problems.append(f"peak RSS {sampler.peak_rss:.0f} MiB (limit {RSS_LIMIT_MIB:.0f})")
    rounds, perrs = probe.summary()
    if alive:
        if health.errors:
            problems.append(f"{len(health.errors)} /healthz failures: {health.errors[0]}")
        if health.worst > HEALTH_LIMIT_S:
            problems.append(f"/healthz took {health.worst:.1f} s")
        if not rounds:
            problems.append("the probe upload never finished")
        if perrs:
            problems.append(f"{len(perrs)}/{len(rounds)} probe uploads failed: {perrs[0]}")
        slow = [r for r in rounds if r > PROBE_LIMIT_S]
        if slow:
            problems.append(f"{len(slow)}/{len(rounds)} probe uploads took over {PROBE_LIMIT_S:.0f} s "
                            f"(max {max(slow):.1f} s)")
    log = server.log_since(log_at)
    panics = [line.strip() for line in log.splitlines() if "panicked" in line]
    if panics:
        problems.append(f"the server panicked {len(panics)} times: {panics[0][:200]}")
    errors = sum(" ERROR " in line for line in log.splitlines())
    if errors and args.verbose:
        print(f"      {errors} ERROR lines in the server log during {att.name}", file=sys.stderr)
    problems += ctx.problems

    passed = not problems
    rss = f"{sampler.peak_rss:6.1f} MiB" if sampler else "     - MiB"
    fds = (f"{base_fds:4d}/{int(sampler.peak_fds):4d}/{after_fds if after_fds is not None else '-':>4}"
           if sampler else "   -/   -/   -")
    if rounds:
        probe_s = f"{max(rounds) * 1000:6.0f}/{statistics.median(rounds) * 1000:5.0f} ms n={len(rounds):<3d}"
    else:
        probe_s = "     -/    - ms n=0  "
    note = "; ".join(ctx.notes)
    if problems:
        note = problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    if len(note) > 160 and not args.verbose:
        note = note[:157] + "..."
    line = (f"{att.name:<22} {'PASS' if passed else 'FAIL'}  rss {rss}  fd {fds}  "
            f"probe max/med {probe_s}  {elapsed:5.1f}s  {note}")
    return Result(att.name, passed, line, problems)


def select(patterns: list[str] | None) -> list[Attack]:
    if not patterns:
        return list(ATTACKS)
    wanted = [p.strip() for arg in patterns for p in arg.split(",") if p.strip()]
    chosen = [a for a in ATTACKS if any(fnmatch.fnmatch(a.name, p) or a.name.startswith(p) for p in wanted)]
    if not chosen:
        sys.exit(f"no attack matches {', '.join(wanted)}; --list shows them")
    return chosen


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Attack a Ferry server by class of abuse and judge how it holds up.",
        epilog="Attacks: " + ", ".join(a.name for a in ATTACKS))
    where = p.add_argument_group("which server")
    where.add_argument("--binary", help="the ferry binary to start (e.g. target/release/ferry)")
    where.add_argument("--url", help="attack a running server at this base URL instead")
    where.add_argument("--pid", type=int, help="with --url: its process ID, to sample memory, descriptors, CPU")
    where.add_argument("--site-root", default="target/site", help="--site-root for the started server")
    where.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                       help="one more argument for the started server (repeat)")
    where.add_argument("--server-timeout", type=float, default=2.0, metavar="S",
                       help="the header/body timeout the server uses, in seconds (default 2; "
                            "the started server gets it)")
    p.add_argument("--quick", action="store_true", help="smaller numbers, about a minute or two in all")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only these attacks (comma-separated names, prefixes or globs)")
    p.add_argument("--seed", type=int, help="random seed (printed at start; reuse it to repeat a run)")
    p.add_argument("--list", action="store_true", help="list the attacks and exit")
    p.add_argument("--keep", action="store_true", help="keep the data folders and server logs")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks and every problem in full")
    args = p.parse_args(argv)
    if not args.list and not args.binary and not args.url:
        p.error("give --binary to start a server, or --url (and --pid) of a running one")
    return args


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for a in ATTACKS:
            extra = f"  [server {' '.join(a.server_args)}]" if a.server_args else ""
            print(f"{a.name:<22} {a.doc}{extra}")
        return 0
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    attacks = select(args.only)
    nofile = raise_fd_limit()
    workdir = tempfile.mkdtemp(prefix="ferry-abuse-")
    mode = "quick" if args.quick else "full"
    print(f"# ferry abuse: {len(attacks)} attacks, {mode} mode, seed {seed}, descriptor limit {nofile}, "
          f"work folder {workdir}", flush=True)

    server = None
    try:
        if args.url:
            u = urllib.parse.urlsplit(args.url)
            server = Server(u.hostname, u.port or 80, args.pid)
            if not server.alive():
                sys.exit(f"{args.url} does not answer /healthz")
        else:
            server = Server.start(os.path.abspath(args.binary), args.site_root, args.server_timeout,
                                  args.server_arg, workdir)
        print(f"# server {server.host}:{server.port} pid {server.pid or '?'}; criteria: alive, /healthz and "
              f"probe < {PROBE_LIMIT_S:.0f} s, RSS < {RSS_LIMIT_MIB:.0f} MiB, descriptors back within "
              f"+{FD_SLACK} after {FD_SETTLE_S:.0f} s, no acknowledged byte lost", flush=True)
        print(f"# {'attack':<20} verdict  peak RSS      fd base/peak/after  probe max/med ms     time  note",
              flush=True)
        results = []
        for att in attacks:
            target, own = server, False
            if att.server_args:
                if not args.binary:
                    print(f"{att.name:<22} SKIP  needs a server started with {' '.join(att.server_args)} "
                          f"(give --binary)", flush=True)
                    continue
                try:
                    target = Server.start(os.path.abspath(args.binary), args.site_root, args.server_timeout,
                                          list(args.server_arg) + list(att.server_args), workdir,
                                          token=att.token)
                    own = True
                except RuntimeError as e:
                    results.append(Result(att.name, False, f"{att.name:<22} FAIL  {e}", [str(e)]))
                    print(results[-1].line, flush=True)
                    continue
            res = run_attack(att, target, args, rng)
            results.append(res)
            print(res.line, flush=True)
            if not res.passed and (len(res.problems) > 1 or args.verbose):
                for p in res.problems[:None if args.verbose else 8]:
                    print(f"    - {p}", file=sys.stderr, flush=True)
            dead = not target.alive()
            if dead and target.proc is not None:
                print(f"    server log, last lines:\n"
                      + "\n".join("      " + line for line in target.log_tail().splitlines()),
                      file=sys.stderr, flush=True)
            if own:
                target.stop()
            elif dead:
                if server.launch is None:
                    print("# the server is gone; stopping", flush=True)
                    break
                server = server.restart()
                print(f"# restarted the server on the same data, now {server.host}:{server.port}", flush=True)
        passed = sum(r.passed for r in results)
        failed = len(results) - passed
        print(f"{passed} passed, {failed} failed", flush=True)
        return 1 if failed else 0
    finally:
        if server is not None and server.proc is not None:
            server.stop()
        if args.keep:
            print(f"# kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
