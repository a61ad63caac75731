"""The target side of the proxy: one pooled keep-alive connection to one target.

httptools' response parser frames the target's response; the head is rebuilt for the client
(hop-by-hop headers dropped, ``Server`` and the rest kept) and the body streamed with the
framing the client can take: Content-Length as is, otherwise chunked for HTTP/1.1 clients and
close-delimited for HTTP/1.0 ones. A malformed response, or a reset before the response is
complete, is the target's failure: 502 if nothing was sent to the client yet, else the client
connection is cut. A connection goes back to its target's pool only after a complete exchange
whose response allowed keep-alive. The common case skips the parser: a read that is exactly one
response, its head in a strict subset of what llhttp accepts with one decimal Content-Length
and nothing hop-by-hop, is written to the client as it came (:meth:`UpstreamConnection._whole`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any

import httptools

from .plane import PAUSE_UPSTREAM

if TYPE_CHECKING:
    from .plane import Plane
    from .proxy import Exchange
    from .targets import Target

HOP_BY_HOP = re.compile(
    rb"\r\n(?:connection|keep-alive|transfer-encoding|te|trailer|upgrade|proxy-connection)"
    rb"[ \t]*:",
    re.IGNORECASE,
)
"""A response header the proxy may not pass on as it came."""
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)
WHOLE_HEAD = re.compile(
    rb"HTTP/1\.1 [2-5][0-9][0-9] [\x20-\x7e]*\r\n"
    rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\r\n)*"
    rb"\r\n"
)
"""A final HTTP/1.1 response head in a strict subset of the syntax llhttp accepts (token
names, visible ASCII, no obs-fold, no control characters): the fast path's test, with
HOP_BY_HOP's."""
FRAMING = re.compile(
    rb"\r\n(connection|keep-alive|transfer-encoding|te|trailer|upgrade|proxy-connection"
    rb"|content-length):([^\r]*)",
    re.IGNORECASE,
)
"""Hop-by-hop and Content-Length headers of a WHOLE_HEAD: the fast path takes Content-Length
alone."""
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
BAD_STATUS_LINE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""A control character (other than HTAB) in a status line: llhttp lets it through the reason
phrase; the response is malformed (502)."""
MAX_POOL = 256
"""Idle connections kept per target."""
CRLF = b"\r\n"
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
        self.in_head = True
        self.head_buf = b""
        """The response head received so far (from the start of the message)."""
        self.chunk = b""
        """The data of the read being parsed."""
        self.raw = False
        self.until_close = False
        self.closed = False
        self.idle_since = 0.0
        self.wrote = False
        """Something of the current exchange's response went to the client."""
        self.feeding = False
        """Inside ``parser.feed_data``: a completed exchange's release waits for its end."""
        self.parked: Target | None = None
        """The target whose pool this connection goes back to once the read is parsed."""
        self.extra = False
        """Bytes came after the end of the last response: never reuse the connection."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def attach(self, ex: Exchange) -> None:
        self.exchange = ex
        ex.upstream = self
        self.got_bytes = False
        self.wrote = False
        ex.started = _monotonic()
        self.deadline = ex.started + self.plane.idle_timeout

    def detach(self) -> None:
        self.exchange = None

    def release(self, target: Target) -> None:
        """Back into the target's pool, if the target still takes requests and the response
        ended exactly at its framing boundary (decided once the whole read is parsed)."""
        self.exchange = None
        if self.feeding:
            self.parked = target
            return
        if (
            not self.keep_alive
            or self.extra
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
        self.deadline = _monotonic() + self.plane.idle_timeout
        if self.in_head:
            if not self.head_buf and self._whole(ex, data):
                return
            self.head_buf = self.head_buf + data if self.head_buf else data
        self.chunk = data
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.feeding = False
            self.parked = None
            if self.exchange is ex:
                self.broken(ex)
            else:
                self.abort()  # bytes after a complete response
            return
        self.feeding = False
        target = self.parked
        if target is not None:
            self.parked = None
            self.release(target)
        if self.client_out:
            self._flush(ex)

    def broken(self, ex: Exchange) -> None:
        """The target broke ``ex``'s response (malformed, reset, closed early): a target error;
        502 if nothing of the response went to the client yet, else the client is cut."""
        group = ex.group
        if group is not None:
            group.target_errors += 1
        if not self.wrote:
            ex.responded = False
            self.client_out.clear()
        ex.client.fail(ex, 502)

    def _whole(self, ex: Exchange, data: bytes) -> bool:
        """The fast path: ``data`` is one whole response (a strict head with one decimal
        Content-Length and exactly that much body) to a keep-alive exchange whose request is
        complete. Passed on as it came, without the parser (which stays at a message start);
        anything else returns False and goes through the parser."""
        if ex.close_after or ex.head_only or ex.http10 or not ex.keep_alive:
            return False
        if not ex.request_complete or self.interim:
            return False
        status = whole_response(data)
        if status == 0:
            return False
        self.wrote = True
        group = ex.group
        if group is not None:
            group.response_time_sum += _monotonic() - ex.started
            group.response_time_count += 1
            group.codes[status // 100] += 1
        ex.responded = True
        self.keep_alive = True
        self.until_close = False
        self.mode = LENGTH
        client = ex.client
        if not client.closed:
            client.transport.write(data)
        self.exchange = None
        client.finish(ex, reuse=True)
        return True

    def _flush(self, ex: Exchange) -> None:
        out = self.client_out
        if out:
            if not ex.client.closed:
                ex.client.transport.write(b"".join(out))
                self.wrote = True
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
        if ex.responded and self.until_close and exc is None and not self.extra:
            # A close-delimited body ends with the target's FIN (a reset is no end).
            if self.mode == CHUNKED:
                self.client_out.append(LAST_CHUNK)
            self._flush(ex)
            ex.upstream = None
            ex.client.finish(ex)
            return
        ex.upstream = None
        if not ex.responded and ex.reused and not self.got_bytes and ex.client.retry(ex):
            return
        self.broken(ex)

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
        if self.exchange is None:
            self.extra = True  # a response nobody asked for, in the read that ended the last

    def on_headers_complete(self) -> None:
        # ``raw`` is False here: _complete clears it, and a failed message ends the connection.
        buf = self.head_buf
        end = buf.find(b"\r\n\r\n") + 4
        parser = self.parser
        status = parser.get_status_code()
        self.in_head = False
        ex = self.exchange
        if ex is None:
            return
        if BAD_STATUS_LINE.search(buf, 0, buf.find(b"\r\n")) is not None:
            raise ValueError("control character in the status line")
        if status < 200:
            head = buf[:end]
            self.interim = True
            self.in_head = True
            self.head_buf = buf[end:]  # the final response may follow in the same read
            if status != 101 and not ex.http10:
                self.client_out.append(_rebuilt(head, status)[0] + CRLF)
            return
        self.head_buf = b""
        self.interim = False
        self.keep_alive = parser.should_keep_alive()
        group = ex.group
        if group is not None:
            group.response_time_sum += _monotonic() - ex.started
            group.response_time_count += 1
            group.codes[status // 100 if status < 600 else 5] += 1
        ex.responded = True
        # Fast path: a head with nothing hop-by-hop in it is passed on as it came.
        if buf.startswith(b"HTTP/1.1 ") and HOP_BY_HOP.search(buf, 0, end) is None:
            prefix = b""  # the head as it came, sliced below only when not written raw
            match = CONTENT_LENGTH.search(buf, 0, end)
            length = match.group(1) if match is not None else None
            chunked = False
            extra = b""
        else:
            prefix, length, chunked = _rebuilt(buf[:end], status)
            extra = b"Content-Length: %s\r\n" % length if length is not None else b""
        self.until_close = False
        if ex.head_only or status == 204 or status == 304:
            self.mode = NO_BODY
        elif length is not None:
            self.mode = LENGTH
        else:
            # Chunked from the target, or delimited by its closing the connection.
            self.until_close = not chunked
            if self.until_close:
                self.keep_alive = False
            if ex.http10:
                self.mode = LENGTH
                ex.close_after = True
            else:
                self.mode = CHUNKED
                extra += b"Transfer-Encoding: chunked\r\n"
        if not ex.keep_alive or ex.close_after or not (ex.request_complete or not ex.has_body):
            extra += b"Connection: close\r\n"
            ex.close_after = True
        elif ex.http10:
            extra += b"Connection: keep-alive\r\n"
        if ex.head_only:
            # llhttp cannot be told the response was to HEAD: finish here, never reuse.
            self.client_out.append((prefix or buf[: end - 2]) + extra + CRLF)
            self.keep_alive = False
            self._complete(ex)
        elif (
            not extra
            and self.mode == LENGTH
            and buf is self.chunk
            and length is not None
            and len(buf) == end + int(length)
        ):
            self.raw = True  # the whole response is this one read: write it as it came
        else:
            self.client_out.append((prefix or buf[: end - 2]) + extra + CRLF)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None or self.interim or self.raw:
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
        self.in_head = True  # whatever comes next starts a new response
        if self.raw:
            self.raw = False
            if not ex.client.closed:
                ex.client.transport.write(self.chunk)
                self.wrote = True
        else:
            self._flush(ex)
        self.exchange = None
        if not ex.request_complete:
            self.keep_alive = False
        ex.client.finish(ex, reuse=True)


def whole_response(data: bytes) -> int:
    """The status, when ``data`` is exactly one final response the fast path may pass on as it
    came: a WHOLE_HEAD whose only FRAMING header is one decimal Content-Length, and exactly
    that much body (not 204 or 304); else 0 (pure)."""
    head = WHOLE_HEAD.match(data)
    if head is None:
        return 0
    end = head.end()
    framing = FRAMING.findall(data, 0, end)
    if len(framing) != 1 or framing[0][0].lower() != b"content-length":
        return 0
    length = framing[0][1].strip(b" \t")
    if not length.isdigit() or len(data) - end != int(length):
        return 0
    status = int(data[9:12])
    if status == 204 or status == 304:
        return 0
    return status


def _rebuilt(head: bytes, status: int) -> tuple[bytes, bytes | None, bool]:
    """A head without hop-by-hop headers and without its final CRLF, its Content-Length value
    and whether the target sent it chunked (the slow path: llhttp has validated the head)."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    reason = parts[2] if len(parts) > 2 else b""
    kept = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    length: bytes | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname not in RESPONSE_DROPPED:
            kept.append(line + CRLF)
        elif lname == b"content-length":
            length = value.strip()
        elif lname == b"transfer-encoding":
            chunked = True
    return b"".join(kept), length, chunked
