"""Sample workload for miniecs task containers: a small, fast HTTP/1.1 server.

Standard library only; it must never import miniecs (it runs inside task containers, built from
``workload/Dockerfile`` by ``miniecs.images``). One asyncio ``Protocol`` per connection parses
requests straight from the receive buffer, so keep-alive, pipelining and request bodies cost
little; the ALB emulator benchmarks backends through a proxy, so the hot path stays lean.

Endpoints (GET only, otherwise 405): ``/health`` (503 while ``WORKLOAD_FAIL_HEALTH_FILE``
exists), ``/`` and ``/work?ms=N`` (burn N ms of CPU, answer the task's identity), ``/stats``.
Environment: ``PORT`` (default 8080, 0 picks a free port), ``WORKLOAD_HOST`` (default 0.0.0.0),
identity from ``MINIECS_TASK_ARN``, ``MINIECS_TASK_ID``, ``MINIECS_CONTAINER_NAME`` or, for the
task ARN, the ECS metadata endpoint v4. As PID 1 it handles SIGTERM/SIGINT: stop accepting,
finish what is in flight (at most ``DRAIN_SECONDS``), exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import parse_qs

MAX_HEAD = 64 * 1024
"""Largest request line + headers accepted, in bytes."""
MAX_WORK_MS = 10_000.0
"""Cap on the CPU one /work request may burn, in milliseconds."""
DRAIN_SECONDS = 5.0
"""How long shutdown waits for in-flight requests before dropping connections."""
METADATA_TIMEOUT = 1.0
"""Timeout of the one metadata v4 fetch at start, in seconds."""

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}
KNOWN_PATHS = ("/", "/work", "/health", "/stats")
TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

# Parser states.
HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER = range(5)


class Identity:
    """Who this process serves as, resolved once at start."""

    def __init__(self) -> None:
        hostname = socket.gethostname()
        arn = os.environ.get("MINIECS_TASK_ARN") or _metadata_task_arn() or ""
        self.task_arn = arn or hostname
        self.task_id = os.environ.get("MINIECS_TASK_ID") or (
            arn.rsplit("/", 1)[-1] if arn else hostname
        )
        self.container = os.environ.get("MINIECS_CONTAINER_NAME") or hostname


def _metadata_task_arn() -> str | None:
    """Read ``TaskARN`` from the ECS metadata endpoint v4, best effort."""
    uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/task", timeout=METADATA_TIMEOUT) as resp:
            arn = json.loads(resp.read()).get("TaskARN")
    except (OSError, ValueError):
        return None
    return arn if isinstance(arn, str) and arn else None


def burn_cpu(ms: float) -> None:
    """Spin until this thread has used ``ms`` milliseconds of CPU (not wall) time."""
    end = time.thread_time() + ms / 1000.0
    while time.thread_time() < end:
        pass


# What a response says about the connection: close it, keep it (HTTP/1.1 default), or keep it
# and say so (an HTTP/1.0 client that asked for keep-alive, such as ApacheBench -k).
CLOSE, KEEP, KEEP_EXPLICIT = 0, 1, 2
CONNECTION_HEADER = (b"Connection: close\r\n", b"", b"Connection: keep-alive\r\n")
MODES = (CLOSE, KEEP, KEEP_EXPLICIT)


def response(status: int, body: bytes, mode: int, extra: bytes = b"") -> bytes:
    """Serialise one JSON response; ``mode`` is CLOSE, KEEP or KEEP_EXPLICIT."""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status].encode()),
            b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body),
            extra,
            CONNECTION_HEADER[mode],
            b"\r\n",
            body,
        )
    )


def json_body(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


HEALTH_OK = [response(200, b'{"status":"ok"}', m) for m in MODES]
HEALTH_FAIL = [response(503, b'{"status":"unhealthy"}', m) for m in MODES]
NOT_ALLOWED = [
    response(405, b'{"error":"method not allowed"}', m, b"Allow: GET\r\n") for m in MODES
]


class App:
    """Request handling and counters shared by all connections of the process."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.fail_file = os.environ.get("WORKLOAD_FAIL_HEALTH_FILE") or None
        self.started = time.monotonic()
        self.total = 0
        self.work_requests = 0
        self.by_path: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.connections: set[HttpConnection] = set()
        self.draining = False

    def handle(self, method: bytes, target: bytes, mode: int, local_ip: str) -> bytes:
        """Answer one complete request."""
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("latin-1")
        self.total += 1
        counted = path if path in KNOWN_PATHS else "other"
        self.by_path[counted] = self.by_path.get(counted, 0) + 1
        if counted == "other":
            status, out = 404, response(404, b'{"error":"not found"}', mode)
        elif method != b"GET":
            status, out = 405, NOT_ALLOWED[mode]
        elif path == "/health":
            failing = self.fail_file is not None and os.path.exists(self.fail_file)
            status, out = (503, HEALTH_FAIL[mode]) if failing else (200, HEALTH_OK[mode])
        elif path == "/stats":
            status, out = 200, response(200, json_body(self.stats()), mode)
        else:
            status, out = self.work(query, mode, local_ip)
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        return out

    def work(self, query: bytes, mode: int, local_ip: str) -> tuple[int, bytes]:
        ms: float = 0
        if query:
            values = parse_qs(query.decode("latin-1")).get("ms")
            if values:
                try:
                    ms = float(values[-1])
                except ValueError:
                    ms = -1
                if not 0 <= ms < float("inf"):
                    body = json_body({"error": "ms must be a number >= 0"})
                    return 400, response(400, body, mode)
                ms = min(ms, MAX_WORK_MS)
                if ms == int(ms):
                    ms = int(ms)
        if ms:
            burn_cpu(ms)
        self.work_requests += 1
        ident = self.identity
        body = json_body(
            {
                "task": ident.task_arn,
                "taskId": ident.task_id,
                "container": ident.container,
                "ip": local_ip,
                "requests": self.work_requests,
                "ms": ms,
            }
        )
        return 200, response(200, body, mode)

    def stats(self) -> dict[str, Any]:
        return {
            "task": self.identity.task_arn,
            "container": self.identity.container,
            "total": self.total,
            "work": self.work_requests,
            "paths": dict(self.by_path),
            "statuses": dict(self.by_status),
            "connections": len(self.connections),
            "uptimeSeconds": round(time.monotonic() - self.started, 3),
            "cpuSeconds": round(time.process_time(), 3),
        }


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests from the buffer, answer them in order."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.local_ip = ""
        self.buf = b""
        self.state = HEAD
        self.left = 0  # body bytes still to discard (BODY, CHUNK_DATA)
        self.pending: tuple[bytes, bytes, int] | None = None  # request awaiting its body
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockname = transport.get_extra_info("sockname")
        self.local_ip = sockname[0] if sockname else ""
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.connections.discard(self)

    def pause_writing(self) -> None:
        # A client that pipelines without reading must not grow our buffers without bound.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    @property
    def idle(self) -> bool:
        """True between requests: nothing of a request has arrived yet."""
        return self.state == HEAD and not self.buf

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end and not self.closed:
            if self.state == HEAD:
                # Tolerate stray CRLFs between requests (RFC 9112, section 2.2).
                while buf.startswith(b"\r\n", pos):
                    pos += 2
                stop = buf.find(b"\r\n\r\n", pos)
                if stop < 0:
                    if end - pos > MAX_HEAD:
                        self.fail(out, 431, "request head too large")
                    elif not _plausible_start(buf, pos):
                        self.fail(out, 400, "malformed request")
                    break
                pos = self.start_request(buf, pos, stop, out)
            elif self.state in (BODY, CHUNK_DATA):
                take = min(self.left, end - pos)
                pos += take
                self.left -= take
                if self.left:
                    break
                if self.state == BODY:
                    self.finish_request(out)
                else:
                    self.state = CHUNK_SIZE
            else:  # CHUNK_SIZE or TRAILER: line oriented
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > 4096:
                        self.fail(out, 400, "chunk line too long")
                    break
                line = buf[pos:eol]
                pos = eol + 2
                if self.state == TRAILER:
                    if not line:
                        self.finish_request(out)
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.fail(out, 400, "bad chunk size")
                    break
                if size < 0:
                    self.fail(out, 400, "bad chunk size")
                    break
                if size == 0:
                    self.state = TRAILER
                else:
                    self.state, self.left = CHUNK_DATA, size + 2  # data and its CRLF
        self.buf = b"" if self.closed else buf[pos:]
        if out:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        if self.closed:
            self.transport.close()

    def start_request(self, buf: bytes, pos: int, stop: int, out: list[bytes]) -> int:
        """Parse the head in ``buf[pos:stop]``; return the position after it."""
        lines = buf[pos:stop].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0] or not TOKEN_CHARS.issuperset(parts[0]):
            self.fail(out, 400, "malformed request line")
            return stop + 4
        method, target, version = parts
        if version == b"HTTP/1.1":
            mode = KEEP
        elif version == b"HTTP/1.0":
            mode = CLOSE
        else:
            self.fail(out, 400, "unsupported HTTP version")
            return stop + 4
        if not target.startswith(b"/"):
            self.fail(out, 400, "bad request target")
            return stop + 4
        length = -1
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or not TOKEN_CHARS.issuperset(name):
                self.fail(out, 400, "malformed header")
                return stop + 4
            lname = name.lower()
            if lname == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    mode = CLOSE
                elif b"keep-alive" in tokens and version == b"HTTP/1.0":
                    mode = KEEP_EXPLICIT
            elif lname == b"content-length":
                value = value.strip()
                if not value.isdigit() or (length >= 0 and int(value) != length):
                    self.fail(out, 400, "bad content-length")
                    return stop + 4
                length = int(value)
            elif lname == b"transfer-encoding":
                codings = value.lower().strip()
                if not codings.endswith(b"chunked"):
                    self.fail(out, 501, "unsupported transfer-encoding")
                    return stop + 4
                chunked = True
        if chunked and length >= 0:
            # Both framings at once is how request smuggling starts: refuse.
            self.fail(out, 400, "both content-length and transfer-encoding")
            return stop + 4
        self.pending = (method, target, mode)
        if chunked:
            self.state = CHUNK_SIZE
        elif length > 0:
            self.state, self.left = BODY, length
        else:
            self.finish_request(out)
        return stop + 4

    def finish_request(self, out: list[bytes]) -> None:
        assert self.pending is not None
        method, target, mode = self.pending
        self.pending = None
        if self.app.draining:
            mode = CLOSE
        self.state = HEAD
        out.append(self.app.handle(method, target, mode, self.local_ip))
        if mode == CLOSE:
            self.closed = True  # data_received closes after writing

    def fail(self, out: list[bytes], status: int, message: str) -> None:
        """Answer a request we cannot parse, then close: the stream is out of sync."""
        self.app.total += 1
        self.app.by_status[str(status)] = self.app.by_status.get(str(status), 0) + 1
        out.append(response(status, json_body({"error": message}), CLOSE))
        self.pending = None
        self.closed = True


def _plausible_start(buf: bytes, pos: int) -> bool:
    """Cheap early check that an incomplete head could still become a request line."""
    first = buf[pos : pos + 16]
    method = first.split(b" ", 1)[0]
    if not TOKEN_CHARS.issuperset(method):
        return False
    eol = buf.find(b"\r\n", pos)
    return eol < 0 or buf[pos:eol].count(b" ") == 2


async def serve() -> None:
    host = os.environ.get("WORKLOAD_HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    identity = Identity()
    app = App(identity)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: HttpConnection(app), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(
        f"workload listening on {bound[0]}:{bound[1]} pid={os.getpid()} "
        f"task={identity.task_arn} container={identity.container}",
        flush=True,
    )
    await stop.wait()

    # Shutdown: stop accepting, close idle connections, let busy ones finish, then drop the rest.
    app.draining = True
    server.close()
    for conn in list(app.connections):
        if conn.idle:
            conn.close()
    deadline = loop.time() + DRAIN_SECONDS
    while app.connections and loop.time() < deadline:
        await asyncio.sleep(0.01)
        for conn in list(app.connections):
            if conn.idle:
                conn.close()
    for conn in list(app.connections):
        if conn.transport is not None:
            conn.transport.abort()
    print(f"workload stopped after {app.total} requests", flush=True)


def main() -> int:
    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"workload: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
