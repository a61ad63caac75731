"""The client side of the proxy: one asyncio ``Protocol`` per downstream connection.

httptools' (llhttp's) strict request parser frames each request; anything ambiguous or
malformed is answered 400 and the connection closed before a byte reaches a target (llhttp
refuses Content-Length with Transfer-Encoding, duplicate or invalid Content-Length, bad chunk
sizes, obs-fold, bare LF or CR, invalid methods, versions and header names; this module adds
duplicate Host, a missing Host on HTTP/1.1, Transfer-Encoding other than ``chunked`` or on
HTTP/1.0, versions other than 1.0/1.1, CONNECT and non-origin request targets). Limits: 431 for
a head over ``max_head_bytes``, 413 for a body over ``max_body_bytes``, 408 for a head not
received within ``head_timeout``; an idle keep-alive connection is closed after ``idle_timeout``.

Each request becomes an :class:`Exchange`. Everything meant for the target is collected in
``Exchange.out`` and written once per ``data_received``, after the whole chunk parsed cleanly.
The common case skips the parser: a read that is exactly one bodiless GET or HEAD, in a strict
subset of what llhttp accepts, with one Host and no header the load balancer rewrites, on a
listener that forwards without rules, goes on as it came plus the load balancer's headers
(:meth:`ClientConnection._whole`); anything else takes the parser and every check below.
Pipelined requests queue behind the active one; responses go out in order. The request head is
rebuilt: hop-by-hop headers (Connection and the headers it names, Keep-Alive, TE, Trailer,
Upgrade, Proxy-Connection, Transfer-Encoding) are dropped, the body is re-framed (chunked
stays chunked), X-Forwarded-For gets the peer appended (ALB's ``append`` mode), and
X-Forwarded-Proto / X-Forwarded-Port / X-Amzn-Trace-Id are the load balancer's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import time
from collections import deque
from typing import Any

import httptools

from . import responses
from .plane import ACCEPTABLE, AMBIGUOUS, PAUSE_BUFFER, PAUSE_PIPELINE, Plane
from .routing import FixedResponse, Forward, ListenerTable, Redirect, RequestInfo
from .targets import Target, TargetGroup
from .upstream import UpstreamConnection

log = logging.getLogger(__name__)

# Receiving side of a client connection.
IDLE, HEAD, BODY, WAIT = range(4)

DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"transfer-encoding",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"content-length",
        b"host",
        b"x-forwarded-for",
        b"x-amzn-trace-id",
    }
)
"""Request headers not copied as they are (hop-by-hop, or rewritten by the load balancer)."""
WHOLE_REQUEST = re.compile(
    rb"(GET|HEAD) /[A-Za-z0-9._~!$&'()*+,;=:@/%?-]* HTTP/1\.1\r\n"
    rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\r\n)+"
    rb"\r\n"
)
"""A bodiless GET or HEAD in origin form, in a strict subset of the syntax llhttp accepts
(token names, visible ASCII, no obs-fold, no control characters): the fast path's test."""
SEPARATORS = bytes(c for c in range(256) if not chr(c).isalpha() or c > 127)
"""What http-desync-guardian's normalisation strips from a header name before comparing it
with Transfer-Encoding and Content-Length (case aside)."""
SUSPICIOUS = frozenset({b"transferencoding", b"contentlength"})
SPECIAL = re.compile(
    rb"\r\n(host|connection|keep-alive|te|trailer|upgrade|proxy-connection|transfer-encoding"
    rb"|content-length|x-forwarded-for|x-forwarded-proto|x-forwarded-port|x-amzn-trace-id"
    + b"".join(
        b"|[^a-z:\r\n]*" + b"[^a-z:\r\n]*".join(bytes([c]) for c in word) + b"[^a-z:\r\n]*"
        for word in sorted(SUSPICIOUS)
    )
    + rb"):",
    re.IGNORECASE,
)
"""The DROPPED request headers, and names that normalise to Transfer-Encoding or
Content-Length: the fast path takes a request with just one of them, Host."""
TRACE_ID = re.compile(rb"Root=1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}(?:;[!-:<-~]+)*")
"""An X-Amzn-Trace-Id a client may pass on (otherwise the load balancer sets its own)."""
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
MAX_PIPELINE = 16
"""Queued pipelined requests per connection before reading pauses."""
MAX_BUFFERED = 1 << 20
"""Request bytes buffered for a target not yet connected before reading pauses."""
CRLF = b"\r\n"
COLON = b": "
LAST_CHUNK = b"0\r\n\r\n"
LINGER_ZERO = struct.pack("ii", 1, 0)

_monotonic = time.monotonic
_new_exchange = object.__new__


class Reject(Exception):
    """A request the load balancer refuses with ``status`` and a closed connection."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Listener:
    """One listener's run-time state: its port, routing table and header suffix."""

    def __init__(self, plane: Plane, port: int, table: ListenerTable) -> None:
        self.plane = plane
        self.port = port
        self.table = table
        self.forwarded = b"X-Forwarded-Proto: http\r\nX-Forwarded-Port: %d\r\n" % port
        self.server: asyncio.base_events.Server | None = None

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)


class Exchange:
    """One request and its response.

    Fields default at class level, and an exchange is made with ``object.__new__`` (no
    ``__init__`` frame): a new exchange sets ``client``, ``action``, ``out`` and what differs.
    """

    method = b""
    out_bytes = 0
    info: RequestInfo | None = None
    chunked = False
    has_body = False
    body_bytes = 0
    keep_alive = True
    http10 = False
    head_only = False
    request_complete = False
    responded = False
    close_after = False
    retried = False
    reused = False
    desync_close = False
    """An Ambiguous request in defensive mode: neither connection is used again."""
    started = 0.0
    group: TargetGroup | None = None
    target: Target | None = None
    upstream: UpstreamConnection | None = None

    client: ClientConnection
    action: Forward | FixedResponse | Redirect
    out: list[bytes]
    """What is meant for the target and not written yet."""


class ClientConnection(asyncio.Protocol):
    """A downstream connection: parses requests, routes them, writes responses in order."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.plane = listener.plane
        self.limits = listener.plane.limits
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.suffix = b""
        self.phase = IDLE
        self.deadline = 0.0
        self.head_bytes = 0
        self.paused = 0
        self.closed = False
        self.active: Exchange | None = None
        self.receiving: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self._reset_request()

    def _reset_request(self) -> None:
        self.url = b""
        self.lines: list[bytes] = [b""]
        self.host: bytes | None = None
        self.xff: bytes | None = None
        self.trace: bytes | None = None
        self.te: bytes | None = None
        self.content_length: bytes | None = None
        self.named: list[bytes] | None = None
        self.rare = False
        """A header came that needs more than the common path (see ``on_headers_complete``)."""
        self.head_size = 0
        self.tier = 0
        """The request's http-desync-guardian class so far (plane.COMPLIANT ...)."""

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.suffix = b"X-Forwarded-For: %s\r\n%s" % (
            self.peer.encode("latin-1"),
            self.listener.forwarded,
        )
        self.deadline = self.plane.now + self.plane.idle_timeout
        self.plane.clients.add(self)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == IDLE:
            if self.active is None and self._whole(data):
                return
            self.phase = HEAD
            self.head_bytes = len(data)
            self.deadline = self.plane.now + self.limits.head_timeout
            end = data.find(b"\n")
            if b"  " in (data[:end] if end >= 0 else data):
                # llhttp accepts runs of spaces in the request line (and forwards it
                # normalised); RFC 9112 3 has one SP each. Checked where a read begins a request.
                self.reject(400)
                return
        elif phase == HEAD:
            self.head_bytes += len(data)
        elif phase == BODY:
            self.deadline = self.plane.now + self.plane.idle_timeout
        try:
            self.parser.feed_data(data)
        except Reject as exc:
            self.reject(exc.status)
            return
        except httptools.HttpParserUpgrade as exc:
            if not self._upgraded(data, int(exc.args[0])):
                return
        except httptools.HttpParserError as exc:
            # httptools re-raises a callback's exception as the context of its own error.
            cause = exc.__context__
            self.reject(cause.status if isinstance(cause, Reject) else 400)
            return
        if self.phase == HEAD and self.head_bytes > self.limits.max_head_bytes:
            self.reject(431)
            return
        ex = self.active
        if ex is not None and ex.out:
            self._flush(ex)

    def _whole(self, data: bytes) -> bool:
        """The fast path: ``data`` is one whole bodiless GET or HEAD with one Host and nothing
        to rewrite, for a listener that forwards without rules. Its head goes on as it came
        (plus the load balancer's headers), without the parser (which stays at a message
        start); anything else returns False and goes through the parser and its checks."""
        table = self.listener.table
        action = table.default
        if table.rules or type(action) is not Forward:
            return False
        method = whole_request(data, self.limits.max_head_bytes)
        if method is None:
            return False
        ex = _new_exchange(Exchange)
        ex.client = self
        ex.action = action
        ex.method = method
        ex.request_complete = True
        if method == b"HEAD":
            ex.head_only = True
        plane = self.plane
        plane.trace_seq += 1
        ex.out = [
            b"".join(
                (data[:-2], self.suffix, plane.trace_prefix, b"%024x\r\n\r\n" % plane.trace_seq)
            )
        ]
        plane.counters.requests += 1
        self.phase = WAIT  # finish() makes it IDLE if the answer comes at once (503)
        self.start(ex)
        up = ex.upstream
        if up is not None:
            up.transport.write(ex.out[0])
            ex.out.clear()
        return True

    def _flush(self, ex: Exchange) -> None:
        """Write what ``ex`` has for its target, or pause reading while too much waits."""
        up = ex.upstream
        if up is not None and ex is self.active:
            if ex.out:
                up.transport.write(b"".join(ex.out))
                ex.out.clear()
                ex.out_bytes = 0
        elif ex.out_bytes > MAX_BUFFERED:
            self.pause(PAUSE_BUFFER)

    def _upgraded(self, data: bytes, offset: int) -> bool:
        """After a request that asked to upgrade (we do not): parse what follows afresh."""
        if self.closed:
            return False
        self.parser = httptools.HttpRequestParser(self)
        rest = data[offset:]
        if rest:
            self.data_received(rest)
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.plane.clients.discard(self)
        ex = self.active
        self.active = None
        self.queue.clear()
        if ex is not None:
            self._release(ex, reuse=False)

    def pause_writing(self) -> None:
        ex = self.active
        if ex is not None and ex.upstream is not None and not ex.upstream.closed:
            ex.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        ex = self.active
        if ex is not None and ex.upstream is not None and not ex.upstream.closed:
            ex.upstream.transport.resume_reading()

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.phase != HEAD:
            self.phase = HEAD
            self.head_bytes = 0
            self.deadline = self.plane.now + self.limits.head_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.limits.max_head_bytes:
            raise Reject(431)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limits.max_head_bytes:
            raise Reject(431)
        if self.phase == BODY:
            return  # a chunked body's trailer: dropped (counted against max_head_bytes)
        lname = name.lower()
        if lname not in DROPPED:
            self.lines += (name, COLON, value, CRLF)
            if len(lname) > 12 and lname.translate(None, SEPARATORS) in SUSPICIOUS:
                self.tier = AMBIGUOUS  # SuspiciousHeader (Transfer_Encoding, Content.Length)
            elif not value.isascii() and not self.tier:
                self.tier = ACCEPTABLE  # NonCompliantHeader (obs-text)
        elif lname == b"host":
            if self.host is not None:
                raise Reject(400)
            self.host = value
        elif lname == b"content-length":
            self.content_length = value
            self.rare = True
        elif lname == b"transfer-encoding":
            self.te = value
            self.rare = True
        elif lname == b"x-forwarded-for":
            self.xff = value if self.xff is None else self.xff + b", " + value
            self.rare = True
        elif lname == b"x-amzn-trace-id":
            self.trace = value
            self.rare = True
        elif lname == b"connection":
            self.rare = True
            for token in value.lower().split(b","):
                token = token.strip()
                if token not in (b"close", b"keep-alive", b""):
                    if self.named is None:
                        self.named = []
                    self.named.append(token)

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        http10 = False
        if version != "1.1":
            if version != "1.0":
                raise Reject(505 if version in ("2.0", "3.0") else 400)
            http10 = True
        method = parser.get_method()
        url = self.url
        if (
            url[:1] != b"/"
            and not (url == b"*" and method == b"OPTIONS")
            and (method == b"CONNECT" or not url.lower().startswith((b"http://", b"https://")))
        ):
            raise Reject(400)
        host = self.host
        if host is None and not http10:
            raise Reject(400)
        table = self.listener.table
        info = None
        if table.rules:
            info = self._info(method)
            action = table.route(info)
        else:
            action = table.default
            if type(action) is Redirect:
                info = self._info(method)
        ex = _new_exchange(Exchange)
        ex.client = self
        ex.action = action
        ex.method = method
        if info is not None:
            ex.info = info
        if http10:
            ex.http10 = True
        if not parser.should_keep_alive():
            ex.keep_alive = False
        if method == b"HEAD":
            ex.head_only = True
        lines = self.lines
        plane = self.plane
        trace = None
        if not self.rare:
            lines += (b"Host: ", host, CRLF, self.suffix) if host is not None else (self.suffix,)
        else:
            # Framing, Connection-named, X-Forwarded-For or X-Amzn-Trace-Id headers came.
            if self.named is not None:
                lines = _without(lines, self.named)
            te = self.te
            bodiless = method == b"GET" or method == b"HEAD"
            if te is not None:
                if http10 or te.lower() != b"chunked":
                    raise Reject(400)
                ex.chunked = ex.has_body = True
                lines += (b"Transfer-Encoding: chunked\r\n",)
                if bodiless:
                    self.tier = AMBIGUOUS  # UndefinedTransferEncodingSemantics
            elif self.content_length is not None:
                text = self.content_length
                length = int(text)
                if length > self.limits.max_body_bytes:
                    raise Reject(413)
                ex.has_body = length > 0
                lines += (b"Content-Length: %d\r\n" % length,)
                if bodiless:
                    # GetHeadZeroContentLength / UndefinedContentLengthSemantics
                    self.tier = max(self.tier, AMBIGUOUS if length else ACCEPTABLE)
                if len(text) > 1 and text[:1] == b"0":
                    self.tier = AMBIGUOUS  # leading zeros: not every parser reads decimal
            if host is not None:
                lines += (b"Host: ", host, CRLF)
            if self.xff is not None:
                lines += (b"X-Forwarded-For: ", self.xff, b", ", self.peer.encode("latin-1"), CRLF)
                lines += (self.listener.forwarded,)
            else:
                lines += (self.suffix,)
            trace = self.trace
            self.xff = self.trace = self.te = self.content_length = None
            self.named = None
            self.rare = False
        tier = self.tier
        if tier:
            self.tier = 0
            plane.counters.count_desync(tier)
            if tier >= plane.desync_refuse:
                self.tier = -1  # counted in its class already
                raise Reject(400)
            if tier >= plane.desync_close:
                ex.keep_alive = False
                ex.desync_close = True
        if trace is not None and TRACE_ID.fullmatch(trace) is not None:
            lines += (b"X-Amzn-Trace-Id: ", trace, CRLF, CRLF)
        else:
            plane.trace_seq += 1
            lines += (plane.trace_prefix, b"%024x\r\n\r\n" % plane.trace_seq)
        lines[0] = b"%s %s HTTP/1.1\r\n" % (method, url)
        ex.out = [b"".join(lines)]
        plane.counters.requests += 1
        self.url = b""
        self.lines = [b""]
        self.host = None
        self.head_size = 0
        self.receiving = ex
        self.phase = BODY
        if self.active is None:
            self.start(ex)
        else:
            self.queue.append(ex)
            if len(self.queue) >= MAX_PIPELINE:
                self.pause(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self.receiving
        if ex is None:
            return
        ex.body_bytes += len(body)
        if ex.body_bytes > self.limits.max_body_bytes:
            raise Reject(413)
        if ex.close_after:
            return  # answered already; the rest of the body is read and dropped
        if ex.chunked:
            ex.out += (b"%x\r\n" % len(body), body, CRLF)
        else:
            ex.out.append(body)
        ex.out_bytes += len(body)

    def on_message_complete(self) -> None:
        ex = self.receiving
        self.receiving = None
        self.phase = WAIT if self.active is not None else IDLE
        if self.phase == IDLE:
            self.deadline = self.plane.now + self.plane.idle_timeout
        if ex is None:
            return
        ex.request_complete = True
        self.head_size = 0
        if ex.chunked and not ex.close_after:
            ex.out.append(LAST_CHUNK)

    # --- exchanges ----------------------------------------------------------------------------

    def _info(self, method: bytes) -> RequestInfo:
        """What rules look at, taken from the request head being parsed."""
        url = self.url
        if url[:1] != b"/":
            url = b"/" + url.split(b"/", 3)[-1] if url.count(b"/") >= 3 else b"/"
        path, _, query = url.partition(b"?")
        headers = [(self.lines[i], self.lines[i + 2]) for i in range(1, len(self.lines) - 3, 4)]
        if self.host is not None:
            headers.append((b"host", self.host))
        return RequestInfo(
            method=method.decode("latin-1"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1"),
            host=(self.host or b"").decode("latin-1"),
            headers=headers,
            source_ip=self.peer,
            port=self.listener.port,
        )

    def start(self, ex: Exchange) -> None:
        """Make ``ex`` the active exchange and act on its routing decision."""
        self.active = ex
        action = ex.action
        if type(action) is Forward:
            plane = self.plane
            groups = action.groups
            arn = (groups[0][0] if action.total else None) if len(groups) == 1 else action.pick()
            group = plane.groups.get(arn) if arn is not None else None
            target = group.pick(plane.now) if group is not None else None
            if target is None or group is None:
                self.respond_elb(ex, 503)
                return
            ex.group = group
            ex.target = target
            target.in_flight += 1
            target.requests += 1
            group.requests += 1
            # A pooled connection of the target, else a new one.
            idle = target.idle
            while idle:
                conn = idle.pop()
                transport = conn.transport
                if not transport.is_closing():
                    # The caller writes ex.out once the read it came in is parsed whole.
                    ex.reused = True
                    conn.exchange = ex
                    ex.upstream = conn
                    conn.got_bytes = conn.wrote = False
                    ex.started = started = _monotonic()
                    conn.deadline = started + plane.idle_timeout
                    return
            self._spawn_connect(ex, target)
        elif type(action) is FixedResponse:
            ex.close_after = not _received(ex)
            self.respond_local(
                ex,
                action.status,
                responses.build(
                    action.status,
                    action.content_type.encode("latin-1"),
                    action.body,
                    self._keep(ex),
                ),
            )
        elif type(action) is Redirect:
            info = ex.info
            assert info is not None
            ex.close_after = not _received(ex)
            self.respond_local(
                ex,
                action.status,
                responses.redirect(action.status, action.location(info), self._keep(ex)),
            )

    def _spawn_connect(self, ex: Exchange, target: Target) -> None:
        tasks = self.plane.tasks
        task = asyncio.get_running_loop().create_task(self.connect(ex, target))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def connect(self, ex: Exchange, target: Target) -> None:
        loop = asyncio.get_running_loop()
        plane = self.plane
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(target, plane), target.ip, target.port
                )
        except TimeoutError:
            target.group.target_errors += 1
            self.fail(ex, 504)
            return
        except OSError:
            # Refused, or the host unreachable (a killed task): 502 now, and no new request
            # goes to the target for a while; never retried (ALB retries no request).
            target.group.target_errors += 1
            target.suspect(self.plane.now)
            self.fail(ex, 502)
            return
        if self.active is not ex or target.removed:
            conn.close()
            return
        conn.attach(ex)
        self._flush(ex)
        self.resume(PAUSE_BUFFER)

    def retry(self, ex: Exchange) -> bool:
        """Retry an idempotent, bodiless request whose reused connection died unanswered."""
        if ex.retried or ex.method not in IDEMPOTENT or ex.has_body or ex.target is None:
            return False
        if ex.target.removed or self.closed:
            return False
        ex.retried = True
        ex.upstream = None
        self._spawn_connect(ex, ex.target)
        return True

    def _keep(self, ex: Exchange) -> bool:
        return ex.keep_alive and _received(ex) and not ex.close_after

    def respond_elb(self, ex: Exchange, status: int) -> None:
        """The load balancer's own error for the active exchange."""
        self.plane.counters.count_elb(status)
        if not _received(ex):
            ex.close_after = True
        self.transport.write(responses.elb_error(status, self._keep(ex)))
        self.finish(ex)

    def respond_local(self, ex: Exchange, status: int, data: bytes) -> None:
        if status >= 400:
            self.plane.counters.count_elb(status)
        self.transport.write(data)
        self.finish(ex)

    def fail(self, ex: Exchange, status: int) -> None:
        """The target failed ``ex``: answer ``status`` if nothing was sent yet, else cut."""
        if ex is not self.active:
            return
        up = ex.upstream
        if up is not None:
            up.detach()
            up.abort()
        if ex.responded:
            self._release(ex, reuse=False)
            self.active = None
            self.abort()
        else:
            self.respond_elb(ex, status)

    def finish(self, ex: Exchange, reuse: bool = False) -> None:
        """``ex``'s response is fully written: release its target, go on with the next."""
        self._release(ex, reuse)
        self.active = None
        if self.closed:
            return
        if not ex.keep_alive or ex.close_after:
            self.transport.close()
            self.closed = True
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.resume(PAUSE_PIPELINE)
            self.start(nxt)
            self._flush(nxt)
        elif self.phase == WAIT:
            self.phase = IDLE
            self.deadline = self.plane.now + self.plane.idle_timeout

    def _release(self, ex: Exchange, reuse: bool) -> None:
        target = ex.target
        if target is not None:
            ex.target = None
            target.in_flight -= 1
        up = ex.upstream
        if up is not None:
            ex.upstream = None
            if reuse and ex.request_complete and target is not None and not ex.desync_close:
                up.release(target)
            else:
                up.detach()
                up.close()

    def reject(self, status: int) -> None:
        """Refuse the request being received: ``status``, then close (nothing reaches a target)."""
        counters = self.plane.counters
        counters.rejected += 1
        counters.requests += 1
        counters.count_elb(status)
        if status == 400 and self.tier >= 0:
            counters.desync_severe += 1  # malformed: no class of its own
        ex = self.active
        self.active = None
        self.queue.clear()
        if ex is not None:
            up = ex.upstream
            if up is not None:
                up.detach()
                up.abort()  # the target holds part of a request that will never end
            self._release(ex, reuse=False)
            if ex.responded:
                self.abort()  # mid-response: an error page would corrupt it
                return
        if not self.closed:
            self.transport.write(responses.elb_error(status, False))
            self.transport.close()
            self.closed = True

    def abort(self) -> None:
        """Cut the connection with a TCP reset: a response cut short must not look whole."""
        if not self.closed:
            self.closed = True
            reset(self.transport)

    def expire(self, now: float) -> None:
        """The sweeper's check of this connection's deadlines."""
        phase = self.phase
        if phase == HEAD:
            if now >= self.deadline:
                self.reject(408)
        elif phase in (IDLE, BODY) and now >= self.deadline and self.active is None:
            self.closed = True
            self.transport.close()
        ex = self.active
        if ex is not None and ex.upstream is not None and now >= ex.upstream.deadline:
            self.fail(ex, 504)


def whole_request(data: bytes, max_head_bytes: int) -> bytes | None:
    """The method, when ``data`` is exactly one bodiless GET or HEAD the fast path may pass on
    as it came: WHOLE_REQUEST, one Host and no other SPECIAL header (pure)."""
    match = WHOLE_REQUEST.match(data)
    if match is None or match.end() != len(data) or len(data) > max_head_bytes:
        return None
    special = SPECIAL.findall(data)
    if len(special) != 1 or special[0].lower() != b"host":
        return None
    return match.group(1)


def reset(transport: Any) -> None:
    """Abort ``transport`` with a RST (SO_LINGER 0), not a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    transport.abort()


def _received(ex: Exchange) -> bool:
    """Whole request read (or about to be: a request without a body ends with its head)."""
    return ex.request_complete or not ex.has_body


def _without(lines: list[bytes], names: list[bytes]) -> list[bytes]:
    """``lines`` (request line slot, then name/colon/value/CRLF quads) without ``names``."""
    kept = [lines[0]]
    for i in range(1, len(lines), 4):
        if lines[i].lower() not in names:
            kept += lines[i : i + 4]
    return kept
