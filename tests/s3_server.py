"""A real S3 endpoint for the tests: moto's server in a subprocess, behind a counting proxy.

``start_moto()`` runs moto (from PyPI, the ``moto[server]`` dev dependency) as an HTTP S3
server on 127.0.0.1 in a child process. ``Proxy`` is a small threaded HTTP proxy on
127.0.0.1 in front of it: it records every request (method, path, query, ``Range``,
headers, and small bodies) so tests can count what a command asked for and check what it
sent, and can be told to fail the next N requests that match (an error status with an S3
error body, a dropped connection, a body cut short, or a request body damaged on its way)
to show that retries recover and that a failure leaves nothing behind.

To model S3 over a real network (for ``scripts/bench_s3.py``), the proxy can also cap each
connection's bandwidth (``bandwidth``: bytes a second, request and response bodies alike,
as one TCP connection to S3 carries tens of MB/s) and add a latency to every request
(``latency``: seconds before it goes upstream). Both are off by default. Every request's
time in the proxy is kept (``Proxy.spans``), so tests can see requests overlap
(``Proxy.peak``: the most that were in the proxy at once).

moto (5.2) stores an upload whatever its ``x-amz-checksum-*`` header says; S3 compares it
with the bytes received and answers ``400 BadDigest``. The proxy does that check for moto
(``Proxy.check_checksums``), so a body damaged on its way is refused as S3 would refuse it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_MOTO = (
    "import logging, sys\n"
    "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "server.start()\n"
    "print(server.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()\n"  # runs until the test session closes our end of the pipe
)

#: Headers that belong to one hop of a connection, not to the request.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}

#: S3 error codes for the statuses a rule can return.
_ERROR_CODES = {403: "AccessDenied", 500: "InternalError", 503: "ServiceUnavailable"}

#: Bodies are read and written in slices of this size when the bandwidth is capped.
PACE_CHUNK = 64 << 10

#: Request bodies up to this size are kept in :class:`Seen` (the XML of a
#: CompleteMultipartUpload); larger ones (object data) are not.
SMALL_BODY = 64 << 10


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


#: The ``x-amz-checksum-*`` headers the proxy checks, and how to compute each (CRC32C and
#: CRC64NVME need packages the tests do not have: not checked).
_CHECKSUMS = {
    "x-amz-checksum-crc32": _crc32,
    "x-amz-checksum-sha1": lambda data: hashlib.sha1(data).digest(),
    "x-amz-checksum-sha256": lambda data: hashlib.sha256(data).digest(),
}


def checksum_mismatch(headers: dict[str, str], body: bytes) -> str | None:
    """The algorithm of an ``x-amz-checksum-*`` header that ``body`` does not match, as S3
    names it in its ``BadDigest`` message ("CRC32"), or None."""
    for name, digest in _CHECKSUMS.items():
        sent = next((v for k, v in headers.items() if k.lower() == name), None)
        if sent is not None and sent != base64.b64encode(digest(body)).decode():
            return name.rsplit("-", 1)[1].upper()
    return None


def start_moto() -> tuple[subprocess.Popen[str], int]:
    """Start moto's S3 server on a free port of 127.0.0.1; returns the process and port."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"moto server did not start: {line!r}")
    return proc, int(line)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (an endpoint that does not answer)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flip_a_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it: ``headers`` as ``(lower-case name, value)``
    pairs, ``body`` when at most :data:`SMALL_BODY` bytes (else None)."""

    method: str
    path: str
    query: str
    range: str | None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def has(self, text: str) -> bool:
        return text in self.path or text in self.query

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True)
class Span:
    """One request's time in the proxy (``time.monotonic()``): from its request line to the
    last byte of the answer."""

    seen: Seen
    start: float
    end: float


@dataclass
class Rule:
    """Fail the next ``times`` requests matching ``method`` and ``match`` (path or query)."""

    times: int
    method: str | None = None
    match: str = ""
    status: int = 503
    #: "status"; "drop" (close, no answer); "cut" (half the response body); "corrupt" (one
    #: byte flipped in the request body on its way to the server, or in the response body
    #: of a request without one)
    mode: str = "status"
    hits: int = 0

    def applies(self, seen: Seen) -> bool:
        if self.hits >= self.times:
            return False
        if self.method and seen.method != self.method:
            return False
        return seen.has(self.match)


class Proxy:
    """A counting, fault-injecting HTTP proxy on 127.0.0.1 in front of ``upstream_port``."""

    def __init__(
        self, upstream_port: int, *, bandwidth: float | None = None, latency: float = 0.0
    ) -> None:
        self.upstream_port = upstream_port
        #: Bytes a second each connection carries, each way (None: as fast as it goes).
        self.bandwidth = bandwidth
        #: Seconds every request waits before it goes upstream.
        self.latency = latency
        self._defaults = (bandwidth, latency)
        self.spans: list[Span] = []
        #: Answer ``400 BadDigest``, as S3 does, to a body that does not match its
        #: ``x-amz-checksum-*`` header (moto stores it regardless).
        self.check_checksums = True
        self.requests: list[Seen] = []
        self.rules: list[Rule] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.rules.clear()
            self.spans.clear()
            self.check_checksums = True
            self.bandwidth, self.latency = self._defaults

    def fail(self, times: int, **rule: object) -> Rule:
        """Fail the next ``times`` matching requests (see :class:`Rule`)."""
        made = Rule(times, **rule)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(made)
        return made

    def seen(self, method: str | None = None, match: str = "") -> list[Seen]:
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and r.has(match)
            ]

    def count(self, method: str | None = None, match: str = "") -> int:
        return len(self.seen(method, match))

    def peak(self, method: str | None = None, match: str = "") -> int:
        """The most matching requests that were in the proxy at the same time."""
        with self._lock:
            spans = [
                s
                for s in self.spans
                if (method is None or s.seen.method == method) and s.seen.has(match)
            ]
        # An end before a start at the same instant: touching spans do not overlap.
        events = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])
        most = running = 0
        for _when, step in events:
            running += step
            most = max(most, running)
        return most

    def _span(self, seen: Seen, start: float) -> None:
        with self._lock:
            self.spans.append(Span(seen, start, time.monotonic()))

    def _record(self, seen: Seen) -> Rule | None:
        with self._lock:
            self.requests.append(seen)
            for rule in self.rules:
                if rule.applies(seen):
                    rule.hits += 1
                    return rule
        return None

    def upstream(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
            self._local.conn = conn
        return conn

    def forget_upstream(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: Proxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: the test output is about imgfmt

    def _pace(self, nbytes: int) -> None:
        """Sleep as long as ``nbytes`` more take on this connection at the bandwidth cap."""
        bandwidth = self.owner.bandwidth
        if not bandwidth:
            return
        self._paced_bytes += nbytes
        due = self._paced_since + self._paced_bytes / bandwidth
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _start_pacing(self) -> None:
        self._paced_since = time.monotonic()
        self._paced_bytes = 0

    def _read(self, size: int) -> bytes:
        if not self.owner.bandwidth:
            return self.rfile.read(size)
        parts = []
        while size > 0:
            got = self.rfile.read(min(size, PACE_CHUNK))
            if not got:
                break
            parts.append(got)
            size -= len(got)
            self._pace(len(got))
        return b"".join(parts)

    def _write(self, data: bytes) -> None:
        if not self.owner.bandwidth:
            self.wfile.write(data)
            return
        self._start_pacing()
        view = memoryview(data)
        for at in range(0, len(view), PACE_CHUNK):
            self.wfile.write(view[at : at + PACE_CHUNK])
            self._pace(len(view[at : at + PACE_CHUNK]))

    def _body(self) -> bytes:
        self._start_pacing()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self._read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self._read(length) if length else b""

    def _send_error(self, status: int, code: str, message: str) -> None:
        error = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(error) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(error)

    def _handle(self) -> None:
        start = time.monotonic()
        seen: Seen | None = None
        try:
            seen = self._forward()
        finally:
            if seen is not None:
                self.owner._span(seen, start)

    def _forward(self) -> Seen:
        body = self._body()
        parts = urlsplit(self.path)
        seen = Seen(
            self.command,
            parts.path,
            parts.query,
            self.headers.get("Range"),
            tuple((k.lower(), v) for k, v in self.headers.items()),
            body if len(body) <= SMALL_BODY else None,
        )
        if self.owner.latency:
            time.sleep(self.owner.latency)
        rule = self.owner._record(seen)
        if rule is not None and rule.mode == "drop":
            self.close_connection = True
            return seen
        if rule is not None and rule.mode == "status":
            code = _ERROR_CODES.get(rule.status, "InternalError")
            self._send_error(rule.status, code, "injected by the test proxy")
            return seen
        if rule is not None and rule.mode == "corrupt" and body:
            body = _flip_a_byte(body)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        algorithm = checksum_mismatch(headers, body) if self.owner.check_checksums else None
        if algorithm is not None:  # S3's own words
            message = f"The {algorithm} you specified did not match the calculated checksum."
            self._send_error(400, "BadDigest", message)
            return seen
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):  # a kept-alive upstream connection may have gone stale
            conn = self.owner.upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.owner.forget_upstream()
                if attempt:
                    raise
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
            self.end_headers()
            return seen
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if rule is not None and rule.mode == "corrupt" and data and not body:
            data = _flip_a_byte(data)
        if rule is not None and rule.mode == "cut":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return seen
        self._write(data)
        return seen

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
