"""Load generator for the sample workload: HTTP/1.1 keep-alive traffic, one report at the end.

Standard library only; it must never import miniecs (it runs in a container of the workload
image, on the cluster network, as well as on the host). Usage::

    python3 load.py URL [URL ...] [--duration S] [--requests N] [--connections C] [--rate R]
                    [--ms MS] [--timeout T] [--json] [--progress]

Each of the C connections is pinned to one URL (connection i to URL i mod len(URLs)) for its
whole life and kept alive; it reconnects after a close or an error (with a short backoff after
a failed connect). Closed loop by default: every connection sends its next request as soon as
the previous answer arrived. With ``--rate R`` (open loop) requests are scheduled at R per
second in total and handed to an idle connection; when none is idle the request is counted as
dropped, never queued. ``--ms MS`` adds ``ms=MS`` to each request's query so the task burns that
much CPU. The run stops after ``--duration`` seconds (default 10, at most 3600), after
``--requests`` requests (open loop: scheduled ones, dropped included), or on SIGTERM/SIGINT;
requests still in flight at the deadline or signal are abandoned and not counted. It always
prints the report and exits 0, even when every request failed; 2 means bad arguments.

``--json`` prints one JSON object on stdout::

    {
      "targets": [str],            # the URLs, as given
      "mode": "closed" | "open",
      "connections": int, "rate": float | null, "ms": float | null,
      "duration": float,           # the --duration limit, in seconds
      "limit": int | null,         # --requests
      "elapsed": float,            # seconds from the start of the load to its end
      "stoppedBy": "duration" | "requests" | "signal" | "error",  # error: a bug, see stderr
      "requests": int,             # requests finished: responses + errors other than "status"
      "responses": int,            # HTTP responses received, whatever their status
      "ok": int,                   # responses with a status below 400
      "errors": int,               # sum of errorKinds
      "errorKinds": {"connect": int, "timeout": int, "reset": int, "protocol": int,
                     "status": int},  # status: a response with status >= 400
      "dropped": int,              # open loop: scheduled while every connection was busy
      "rps": float,                # responses / elapsed
      "statuses": {"200": int, ...},
      "tasks": {task: int},        # responses by the taskId (else task) field of a JSON body
      "urls": {url: {"requests": int, "responses": int, "errors": int}},
      "latencyMs": {"p50": float, "p90": float, "p99": float, "max": float, "mean": float}
                   | null          # request sent to response read; null without responses
    }

Without ``--json`` the same figures are printed as text tables. ``--progress`` writes a start
line, then one line per second (requests so far, req/s over that second) to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_DURATION = 3600.0
"""Longest run accepted, in seconds."""
MAX_CONNECTIONS = 4096
MAX_HEAD = 64 * 1024
"""Largest response status line + headers accepted, in bytes."""
MAX_KEEP = 256 * 1024
"""Body bytes kept for inspection; the rest of a larger body is read and discarded."""
BACKOFF_MIN, BACKOFF_MAX = 0.01, 0.5
"""Pause after a failed connect, doubled per failure in a row, in seconds."""
ERROR_KINDS = ("connect", "timeout", "reset", "protocol", "status")


class ProtocolError(Exception):
    """The response could not be parsed."""


class ClosedBeforeResponse(Exception):
    """The connection ended before the first byte of the response."""


class BadArguments(ValueError):
    """An argument that argparse's types cannot check alone."""


@dataclass(frozen=True, slots=True)
class Target:
    """One URL: where to connect and the request bytes to send there."""

    url: str
    host: str
    port: int
    request: bytes


def parse_target(url: str, ms: float | None) -> Target:
    """Check ``url`` (``http://host[:port][/path][?query]``) and pre-encode its GET request."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BadArguments(f"{url!r}: only http://host[:port]/path URLs are supported")
    if parts.username or parts.password or parts.fragment:
        raise BadArguments(f"{url!r}: user info and fragments are not supported")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise BadArguments(f"{url!r}: {exc}") from exc
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if ms is not None:
        target += ("&" if parts.query else "?") + "ms=" + _number(ms)
    if any(c.isspace() for c in target) or not target.isascii():
        raise BadArguments(f"{url!r}: the path must be ASCII without spaces (percent-encode)")
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: miniecs-load\r\n"
        "Accept: */*\r\n\r\n"
    ).encode("ascii")
    return Target(url, host, port, request)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


class Histogram:
    """Latencies in microseconds, exact below 2048 us, within 0.05 % above; bounded memory."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        us = int(seconds * 1e6)
        if us >= 2048:
            shift = us.bit_length() - 11
            us = (us >> shift) << shift
        self.counts[us] = self.counts.get(us, 0) + 1
        self.total += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile ``p`` (0-100) in milliseconds; 0 when empty."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.total))
        seen = 0
        for us in sorted(self.counts):
            seen += self.counts[us]
            if seen >= rank:
                return min(us / 1000, self.max * 1000)
        return self.max * 1000

    def summary(self) -> dict[str, float] | None:
        if not self.total:
            return None
        out = {f"p{p}": round(self.percentile(p), 3) for p in (50, 90, 99)}
        out["max"] = round(self.max * 1000, 3)
        out["mean"] = round(self.sum / self.total * 1000, 3)
        return out


@dataclass
class UrlStats:
    requests: int = 0
    responses: int = 0
    errors: int = 0


@dataclass
class Stats:
    """Counters of one run, updated by every connection."""

    requests: int = 0
    responses: int = 0
    ok: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    statuses: dict[int, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    urls: dict[str, UrlStats] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)

    def error(self, url: UrlStats, kind: str) -> None:
        self.errors[kind] += 1
        url.errors += 1
        if kind != "status":
            self.requests += 1
            url.requests += 1

    def response(self, url: UrlStats, status: int, body: bytes, seconds: float) -> None:
        self.requests += 1
        self.responses += 1
        url.requests += 1
        url.responses += 1
        self.latency.add(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400:
            self.error(url, "status")
            return
        self.ok += 1
        task = _task_of(body)
        if task is not None:
            self.tasks[task] = self.tasks.get(task, 0) + 1


def _task_of(body: bytes) -> str | None:
    """The ``taskId`` (else ``task``) field of a JSON object body, if any."""
    if not body.startswith(b"{"):
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("taskId", "task"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response; return its status, its body (at most MAX_KEEP bytes), keep-alive."""
    first = True
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("response head too large") from exc
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise ClosedBeforeResponse from exc
            raise
        except ConnectionResetError as exc:
            if first:
                raise ClosedBeforeResponse from exc
            raise
        first = False
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise ProtocolError(f"bad status line {lines[0][:80]!r}") from None
        if not 100 <= status <= 999:
            raise ProtocolError(f"bad status {status}")
        keep = parts[0] == b"HTTP/1.1"
        length = -1
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("malformed header")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise ProtocolError("bad content-length") from None
                if length < 0:
                    raise ProtocolError("bad content-length")
            elif name == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep = False
                elif b"keep-alive" in tokens:
                    keep = True
        if status < 200:
            if status == 101:
                raise ProtocolError("unexpected protocol switch")
            continue  # interim response (100 Continue, 103 Early Hints): the real one follows
        if status in (204, 304):
            return status, b"", keep
        if chunked:
            return status, await _read_chunked(reader), keep
        if length >= 0:
            return status, await _read_body(reader, length), keep
        return status, await _read_to_eof(reader), False


async def _read_body(reader: asyncio.StreamReader, length: int) -> bytes:
    if length <= MAX_KEEP:
        return await reader.readexactly(length)
    body = await reader.readexactly(MAX_KEEP)
    left = length - MAX_KEEP
    while left:
        chunk = await reader.read(min(left, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", left)
        left -= len(chunk)
    return body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    kept = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size < 0:
            raise ProtocolError("bad chunk size")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields
            return b"".join(parts)
        data = await _read_body(reader, size)
        if kept < MAX_KEEP:
            parts.append(data[: MAX_KEEP - kept])
            kept += len(parts[-1])
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while chunk := await reader.read(65536):
        if len(body) < MAX_KEEP:
            body += chunk[: MAX_KEEP - len(body)]
    return body


class Connection:
    """One keep-alive connection to a target."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.served = 0

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=MAX_HEAD)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``, read its response: status, body, whether to keep the connection."""
        self.writer.write(request)
        result = await read_response(self.reader)
        self.served += 1
        return result

    def close(self) -> None:
        self.writer.close()


@dataclass
class Config:
    targets: list[Target]
    duration: float
    requests: int | None
    connections: int
    rate: float | None
    ms: float | None
    timeout: float
    json: bool
    progress: bool


class Runner:
    """One run: C connection tasks, in open loop a dispatcher, a deadline, signal handling."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stats = Stats()
        for target in cfg.targets:
            self.stats.urls.setdefault(target.url, UrlStats())
        self.issued = 0  # closed loop: requests started; open loop: requests scheduled
        self.closing = False  # no new requests: workers finish what they do and return
        self.idle: deque[asyncio.Future[bool]] = deque()  # open loop: workers waiting for work
        self.stop = asyncio.Event()
        self.stopped_by = "duration"
        self.started = 0.0
        self.elapsed = 0.0

    async def run(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal)
        try:
            self.started = time.monotonic()
            if cfg.progress:
                mode = f"open loop at {cfg.rate:g} req/s" if cfg.rate else "closed loop"
                limit = f", at most {cfg.requests} requests" if cfg.requests else ""
                _err(
                    f"load: {len(cfg.targets)} target(s), {cfg.connections} connection(s), "
                    f"{mode}, {cfg.duration:g} s{limit}"
                )
            workers = [asyncio.create_task(self._worker(i)) for i in range(cfg.connections)]
            helpers = [asyncio.create_task(self._progress())] if cfg.progress else []
            if cfg.rate:
                helpers.append(asyncio.create_task(self._dispatch(cfg.rate)))
            finished = asyncio.create_task(self._all(workers))
            stopped = asyncio.create_task(self.stop.wait())
            await asyncio.wait(
                (finished, stopped), timeout=cfg.duration, return_when=asyncio.FIRST_COMPLETED
            )
            if finished.done():
                self.stopped_by = "requests"
                if (exc := finished.exception()) is not None:
                    self.stopped_by = "error"
                    _err(f"load: a connection failed: {exc!r}")
            self.elapsed = time.monotonic() - self.started
            for task in (*workers, *helpers, finished, stopped):
                task.cancel()
            await asyncio.gather(*workers, *helpers, finished, stopped, return_exceptions=True)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if not self.stop.is_set():
            self.stopped_by = "signal"
            self.stop.set()

    @staticmethod
    async def _all(tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks)

    def _budget_left(self) -> bool:
        limit = self.cfg.requests
        return limit is None or self.issued < limit

    async def _next(self) -> bool:
        """Wait until this connection should send a request; False when the run is over."""
        if self.closing:
            return False
        if self.cfg.rate is None:
            if not self._budget_left():
                return False
            self.issued += 1
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.idle.append(waiter)
        try:
            return await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _dispatch(self, rate: float) -> None:
        """Open loop: schedule requests at ``rate`` per second, hand each to an idle connection."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while self._budget_left():
            due = int((loop.time() - start) * rate) + 1 - self.issued
            limit = self.cfg.requests
            if limit is not None:
                due = min(due, limit - self.issued)
            for _ in range(max(due, 0)):
                self.issued += 1
                while self.idle and self.idle[0].done():
                    self.idle.popleft()  # its worker was cancelled
                if self.idle:
                    self.idle.popleft().set_result(True)
                else:
                    self.stats.dropped += 1
            await asyncio.sleep(max(0.0, start + self.issued / rate - loop.time()))
        self.closing = True
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                waiter.set_result(False)

    async def _worker(self, index: int) -> None:
        """One connection, pinned to its URL; reconnects after a close or an error."""
        cfg = self.cfg
        target = cfg.targets[index % len(cfg.targets)]
        url = self.stats.urls[target.url]
        stats = self.stats
        conn: Connection | None = None
        backoff = BACKOFF_MIN
        try:
            while await self._next():
                # A server may close an idle keep-alive connection just as the request goes
                # out; like browsers, retry once on a new connection when that is all it was.
                retry = conn is not None and conn.served > 0
                while True:
                    if conn is None:
                        try:
                            async with asyncio.timeout(cfg.timeout):
                                conn = await Connection.open(target)
                        except (OSError, TimeoutError):
                            stats.error(url, "connect")
                            await asyncio.sleep(backoff)
                            backoff = min(backoff * 2, BACKOFF_MAX)
                            break
                        backoff = BACKOFF_MIN
                    sent = time.perf_counter()
                    keep = False
                    try:
                        async with asyncio.timeout(cfg.timeout):
                            status, body, keep = await conn.exchange(target.request)
                    except ClosedBeforeResponse:
                        if retry:
                            retry = False
                            conn.close()
                            conn = None
                            continue
                        stats.error(url, "reset")
                    except TimeoutError:
                        stats.error(url, "timeout")
                    except (OSError, asyncio.IncompleteReadError):
                        stats.error(url, "reset")
                    except (ProtocolError, ValueError):
                        stats.error(url, "protocol")
                    else:
                        stats.response(url, status, body, time.perf_counter() - sent)
                    if not keep:
                        conn.close()
                        conn = None
                    break
        finally:
            if conn is not None:
                conn.close()

    async def _progress(self) -> None:
        last = 0
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, self.started + tick - time.monotonic()))
            now = self.stats.requests
            errors = sum(self.stats.errors.values())
            _err(
                f"load: {time.monotonic() - self.started:6.1f} s  {now} requests  "
                f"{now - last} req/s  {errors} errors"
            )
            last = now

    def report(self) -> dict[str, Any]:
        cfg, stats = self.cfg, self.stats
        elapsed = self.elapsed
        return {
            "targets": [t.url for t in cfg.targets],
            "mode": "open" if cfg.rate else "closed",
            "connections": cfg.connections,
            "rate": cfg.rate,
            "ms": cfg.ms,
            "duration": cfg.duration,
            "limit": cfg.requests,
            "elapsed": round(elapsed, 3),
            "stoppedBy": self.stopped_by,
            "requests": stats.requests,
            "responses": stats.responses,
            "ok": stats.ok,
            "errors": sum(stats.errors.values()),
            "errorKinds": dict(stats.errors),
            "dropped": stats.dropped,
            "rps": round(stats.responses / elapsed, 1) if elapsed > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "tasks": dict(sorted(stats.tasks.items(), key=lambda kv: (-kv[1], kv[0]))),
            "urls": {
                u: {"requests": s.requests, "responses": s.responses, "errors": s.errors}
                for u, s in stats.urls.items()
            },
            "latencyMs": stats.latency.summary(),
        }


def format_text(report: dict[str, Any]) -> str:
    """The report as readable text."""
    mode = f"open loop at {report['rate']:g} req/s" if report["rate"] else "closed loop"
    ms = f", ms={_number(report['ms'])}" if report["ms"] is not None else ""
    lines = [
        f"{len(report['targets'])} target(s), {report['connections']} connection(s), {mode}{ms}",
        f"elapsed {report['elapsed']:.2f} s, stopped by {report['stoppedBy']}",
        f"requests {report['requests']}  responses {report['responses']}  ok {report['ok']}  "
        f"errors {report['errors']}  dropped {report['dropped']}  {report['rps']:.1f} req/s",
        "errors   " + "  ".join(f"{k} {v}" for k, v in report["errorKinds"].items()),
        "statuses " + ("  ".join(f"{k}: {v}" for k, v in report["statuses"].items()) or "-"),
    ]
    lat = report["latencyMs"]
    if lat:
        lines.append(
            "latency  "
            + "  ".join(f"{k} {lat[k]:.2f} ms" for k in ("p50", "p90", "p99", "max", "mean"))
        )
    else:
        lines.append("latency  -")
    width = max(len(u) for u in report["urls"])
    lines += ["", f"{'url':<{width}}  {'requests':>9}  {'responses':>9}  {'errors':>7}"]
    for u, s in report["urls"].items():
        lines.append(f"{u:<{width}}  {s['requests']:>9}  {s['responses']:>9}  {s['errors']:>7}")
    tasks: dict[str, int] = report["tasks"]
    if tasks:
        width = max(4, *(len(t) for t in tasks))
        total = sum(tasks.values())
        lines += ["", f"{'task':<{width}}  {'requests':>9}  {'share':>6}"]
        for t, n in tasks.items():
            lines.append(f"{t:<{width}}  {n:>9}  {n / total:>6.1%}")
    return "\n".join(lines)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _positive(kind: type[float] | type[int], upper: float) -> Any:
    def check(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value <= upper:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be > 0 and <= {upper:g}: {text!r}")
        return value

    return check


def _ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10000: {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> Config:
    """Parse the command line; exits 2 (argparse's convention) on bad arguments."""
    parser = argparse.ArgumentParser(
        prog="load.py", description="HTTP/1.1 keep-alive load generator for the workload."
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="http://host:port/path")
    parser.add_argument(
        "--duration",
        type=_positive(float, MAX_DURATION),
        default=10.0,
        help=f"stop after S seconds (default 10, at most {MAX_DURATION:g})",
    )
    parser.add_argument("--requests", type=_positive(int, 10**12), help="stop after N requests")
    parser.add_argument(
        "--connections",
        type=_positive(int, MAX_CONNECTIONS),
        default=1,
        help="concurrent keep-alive connections (default 1)",
    )
    parser.add_argument(
        "--rate", type=_positive(float, 1e6), help="open loop: R requests/s in total"
    )
    parser.add_argument("--ms", type=_ms, help="CPU ms each request burns (query ms=MS)")
    parser.add_argument(
        "--timeout",
        type=_positive(float, MAX_DURATION),
        default=5.0,
        help="per connect and per request, in seconds (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--progress", action="store_true", help="one line per second on stderr")
    ns = parser.parse_args(argv)
    try:
        targets = [parse_target(u, ns.ms) for u in ns.urls]
    except BadArguments as exc:
        parser.error(str(exc))
    return Config(
        targets=targets,
        duration=ns.duration,
        requests=ns.requests,
        connections=ns.connections,
        rate=ns.rate,
        ms=ns.ms,
        timeout=ns.timeout,
        json=ns.json,
        progress=ns.progress,
    )


async def _run(cfg: Config) -> dict[str, Any]:
    runner = Runner(cfg)
    await runner.run()
    return runner.report()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    report = asyncio.run(_run(cfg))
    if cfg.json:
        print(json.dumps(report), flush=True)
    else:
        print(format_text(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
