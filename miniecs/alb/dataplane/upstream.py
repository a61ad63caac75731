"""The target side of the proxy: one pooled keep-alive connection to one target.

httptools' response parser frames the target's response; the head is rebuilt for the client
(hop-by-hop headers dropped, ``Server`` and the rest kept) and the body streamed with the
framing the client can take: Content-Length as is, otherwise chunked for HTTP/1.1 clients and
close-delimited for HTTP/1.0 ones. A malformed response, or a reset before the response is
complete, is the target's failure: 502 if nothing was sent to the client yet, else the client
connection is cut. A connection goes back to its target's pool only after a complete exchange
whose response allowed keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import httptools

from .plane import PAUSE_UPSTREAM

if TYPE_CHECKING:
    from .plane import Plane
    from .proxy import Exchange
    from .targets import Target

RESPONSE_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"transfer-encoding",
        b"content-length",
    }
)
MAX_POOL = 256
"""Idle connections kept per target."""
CRLF = b"\r\n"
COLON = b": "
LAST_CHUNK = b"0\r\n\r\n"

# How the response body is framed towards the client (LENGTH: as received).
NO_BODY, LENGTH, CHUNKED = range(3)

_monotonic = time.monotonic


class UpstreamConnection(asyncio.Protocol):
    """A connection to a target, carrying one exchange at a time."""

    def __init__(self, target: Target, plane: Plane) -> None:
        self.target = target
        self.plane = plane
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.deadline = 0.0
        self.got_bytes = False
        self.keep_alive = True
        self.mode = NO_BODY
        self.interim = False
        self.client_out: list[bytes] = []
        self.lines: list[bytes] = [b""]
        self.reason = b""
        self.content_length: bytes | None = None
        self.upstream_chunked = False
        self.until_close = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def attach(self, ex: Exchange) -> None:
        self.exchange = ex
        ex.upstream = self
        self.got_bytes = False
        self.deadline = self.plane.now + self.plane.idle_timeout
        ex.started = _monotonic()

    def detach(self) -> None:
        self.exchange = None

    def release(self, target: Target) -> None:
        """Back into the target's pool, if the target still takes requests."""
        self.exchange = None
        if (
            not self.keep_alive
            or self.closed
            or target.removed
            or target.draining
            or len(target.idle) >= MAX_POOL
        ):
            self.close()
            return
        self.idle_since = self.plane.now
        target.idle.append(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self.got_bytes = True
        self.deadline = self.plane.now + self.plane.idle_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            ex.client.fail(ex, 502)
            return
        except httptools.HttpParserUpgrade:
            ex.client.fail(ex, 502)
            return
        self._flush(ex)

    def _flush(self, ex: Exchange) -> None:
        out = self.client_out
        if out:
            if not ex.client.closed:
                ex.client.transport.write(b"".join(out))
            out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        self.exchange = None
        if ex is None:
            with contextlib.suppress(ValueError):
                self.target.idle.remove(self)
            return
        if ex.upstream is not self:
            return
        if ex.responded and self.until_close:
            if self.mode == CHUNKED:
                self.client_out.append(LAST_CHUNK)
            self._flush(ex)
            ex.upstream = None
            ex.client.finish(ex)
            return
        ex.upstream = None
        if not ex.responded and ex.reused and not self.got_bytes and ex.client.retry(ex):
            return
        ex.client.fail(ex, 502)

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.pause(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.resume(PAUSE_UPSTREAM)

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.lines = [b""]
        self.reason = b""
        self.content_length = None
        self.upstream_chunked = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname not in RESPONSE_DROPPED:
            self.lines += (name, COLON, value, CRLF)
        elif lname == b"content-length":
            self.content_length = value
        elif lname == b"transfer-encoding":
            self.upstream_chunked = True

    def on_headers_complete(self) -> None:
        ex = self.exchange
        if ex is None:
            return
        parser = self.parser
        status = parser.get_status_code()
        lines = self.lines
        if status < 200:
            self.interim = True
            if status == 101 or ex.http10:
                return  # we never ask to switch; an HTTP/1.0 client gets no interim response
            lines[0] = b"HTTP/1.1 %d %s\r\n" % (status, self.reason)
            lines.append(CRLF)
            self.client_out.append(b"".join(lines))
            return
        self.interim = False
        self.keep_alive = parser.should_keep_alive()
        group = ex.group
        if group is not None:
            group.response_time_sum += _monotonic() - ex.started
            group.response_time_count += 1
            group.codes[status // 100 if status < 600 else 5] += 1
        ex.responded = True
        self.until_close = False
        if ex.head_only or status == 204 or status == 304:
            self.mode = NO_BODY
            if self.content_length is not None:
                lines += (b"Content-Length: ", self.content_length, CRLF)
        elif self.content_length is not None:
            self.mode = LENGTH
            lines += (b"Content-Length: ", self.content_length, CRLF)
        else:
            # Chunked from the target, or delimited by its closing the connection.
            self.until_close = not self.upstream_chunked
            if self.until_close:
                self.keep_alive = False
            if ex.http10:
                self.mode = LENGTH
                ex.close_after = True
            else:
                self.mode = CHUNKED
                lines.append(b"Transfer-Encoding: chunked\r\n")
        if not ex.keep_alive or ex.close_after or not (ex.request_complete or not ex.has_body):
            lines.append(b"Connection: close\r\n")
            ex.close_after = True
        elif ex.http10:
            lines.append(b"Connection: keep-alive\r\n")
        lines[0] = b"HTTP/1.1 %d %s\r\n" % (status, self.reason)
        lines.append(CRLF)
        self.client_out.append(b"".join(lines))
        if ex.head_only:
            # llhttp cannot be told the response was to HEAD: finish here, never reuse.
            self.keep_alive = False
            self._complete(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None or self.interim:
            return
        if self.mode == CHUNKED:
            self.client_out += (b"%x\r\n" % len(body), body, CRLF)
        elif body:
            self.client_out.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        ex = self.exchange
        if ex is None:
            return
        if self.mode == CHUNKED:
            self.client_out.append(LAST_CHUNK)
        self._complete(ex)

    def _complete(self, ex: Exchange) -> None:
        self._flush(ex)
        self.exchange = None
        if not ex.request_complete:
            self.keep_alive = False
        ex.client.finish(ex, reuse=True)
