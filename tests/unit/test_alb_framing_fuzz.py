"""Property tests (hypothesis) of the data plane's framing against llhttp, the full parser.

- The request fast path takes only what llhttp parses as exactly one bodiless GET or HEAD with
  the same request line and headers; the response fast path only what llhttp parses as exactly
  one response ending at the end of the read.
- The proxy's framing does not depend on how reads are cut: a stream of pipelined requests
  (Content-Length, chunked with extensions and trailers, bodiless) split at arbitrary points
  reaches the target as the same bytes, and responses split at arbitrary points reach the
  client as the same bytes, as when each arrives in one read.

Connections run with fake transports (no sockets, no event loop): the same code as in
production, fed by hand.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniecs.alb.dataplane.config import from_dict
from miniecs.alb.dataplane.plane import Plane
from miniecs.alb.dataplane.proxy import ClientConnection, Listener, whole_request
from miniecs.alb.dataplane.routing import compile_listener
from miniecs.alb.dataplane.targets import TargetGroup
from miniecs.alb.dataplane.upstream import UpstreamConnection, whole_response
from tests.alb_support import config

FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- fragments: valid ones and the classic near-misses ----------------------------------------
METHODS = st.sampled_from([b"GET", b"HEAD", b"POST", b"get", b"GET ", b"G\x00T", b"OPTIONS"])
PATHS = st.one_of(
    st.sampled_from([b"/", b"/a/b?c=d", b"/%20", b"*", b"http://h/x", b"/a b", b"/\x7f", b"//"]),
    st.binary(max_size=8).map(lambda b: b"/" + b),
)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1.1 "])
NAMES = st.sampled_from(
    [
        b"Host",
        b"host",
        b"X-A",
        b"Accept-Encoding",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Transfer_Encoding",
        b"Connection",
        b"X-Forwarded-For",
        b"X-Amzn-Trace-Id",
        b"Upgrade",
        b"TE",
        b"Hostname",
        b"X A",
        b"",
        b" Host",
    ]
)
VALUES = st.one_of(
    st.sampled_from([b"a", b"chunked", b"0", b"5", b"close", b" v ", b"\tv", b"", b"a\x00b"]),
    st.binary(max_size=6),
)
EOLS = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\n "])


@st.composite
def raw_requests(draw: Any) -> bytes:
    line = draw(METHODS) + b" " + draw(PATHS) + b" " + draw(VERSIONS) + draw(EOLS)
    headers = b"".join(
        draw(NAMES) + draw(st.sampled_from([b": ", b":", b" : "])) + draw(VALUES) + draw(EOLS)
        for _ in range(draw(st.integers(0, 4)))
    )
    return line + headers + draw(st.sampled_from([b"\r\n", b"", b"\n", b"\r\nx"]))


class Parsed:
    """What llhttp makes of a read."""

    def __init__(self, data: bytes, response: bool = False) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = 0
        self.body = b""
        self.error = False
        parser: Any = (httptools.HttpResponseParser if response else httptools.HttpRequestParser)(
            self
        )
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self.error = True
        self.parser = parser

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1


@FUZZ
@given(raw_requests())
def test_the_request_fast_path_is_a_subset_of_llhttp(data: bytes) -> None:
    method = whole_request(data, 65536)
    if method is None:
        return
    parsed = Parsed(data)
    assert not parsed.error and parsed.complete == 1
    assert parsed.parser.get_method() == method and parsed.body == b""
    assert parsed.parser.get_http_version() == "1.1"
    line, *lines = data[:-4].split(b"\r\n")
    assert line.split(b" ")[1] == parsed.url
    theirs = [(n.lower(), v.strip(b" \t")) for n, v in parsed.headers]
    mine = [(n.lower(), v.strip(b" \t")) for n, _, v in (h.partition(b":") for h in lines)]
    assert theirs == mine
    assert [n for n, _ in mine].count(b"host") == 1


@st.composite
def raw_responses(draw: Any) -> bytes:
    status = draw(st.sampled_from([b"200 OK", b"204 No Content", b"304 X", b"404 ", b"2OO OK"]))
    line = draw(st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/2 "])) + status
    body = draw(st.binary(max_size=8))
    length = draw(st.sampled_from([len(body), len(body) + 1, max(len(body) - 1, 0)]))
    cl = draw(st.sampled_from([b"Content-Length", b"content-length", b"Content-Length "]))
    headers = [cl + b": " + str(length).encode()]
    headers += draw(
        st.lists(
            st.sampled_from(
                [
                    b"X-A: b",
                    b"Connection: close",
                    b"Transfer-Encoding: chunked",
                    b"Content-Length: 1",
                    b"X-A:\x01",
                    b" X: y",
                ]
            ),
            max_size=2,
        )
    )
    eol = draw(EOLS)
    return (
        line
        + eol
        + b"".join(h + eol for h in headers)
        + b"\r\n"
        + body
        + draw(st.sampled_from([b"", b"", b"x", b"HTTP/1.1 200 OK\r\n"]))
    )


@FUZZ
@given(raw_responses())
def test_the_response_fast_path_is_a_subset_of_llhttp(data: bytes) -> None:
    status = whole_response(data)
    if status == 0:
        return
    parsed = Parsed(data, response=True)
    assert not parsed.error and parsed.complete == 1
    assert parsed.parser.get_status_code() == status
    head_end = data.find(b"\r\n\r\n") + 4
    assert parsed.body == data[head_end:]  # the message ends exactly at the end of the read


# --- split invariance through real connections with fake transports -----------------------------
class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Rig:
    """A client connection whose target is one pooled upstream connection."""

    def __init__(self) -> None:
        cfg = from_dict(config(8080, [9000]))
        self.plane = Plane()
        group = self.plane.groups["tg"] = TargetGroup(cfg.target_groups[0])
        self.target = group.targets[("127.0.0.1", 9000)]
        listener = Listener(self.plane, 8080, compile_listener(cfg.listeners[0], {"tg"}))
        self.client = ClientConnection(listener)
        self.down = FakeTransport()
        self.client.connection_made(self.down)
        self.up = UpstreamConnection(self.target, self.plane)
        self.up_transport = FakeTransport()
        self.up.connection_made(self.up_transport)
        self.target.idle.append(self.up)

    def upstream_bytes(self) -> bytes:
        raw = b"".join(self.up_transport.out)
        return re.sub(rb"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", b"TRACE", raw)


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


BODIES = st.binary(max_size=40)


@st.composite
def request_streams(draw: Any) -> tuple[bytes, int]:
    """Pipelined valid requests: bodiless, Content-Length, chunked with extensions/trailers."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["get", "length", "chunked"]))
        if kind == "get":
            parts.append(b"GET /g HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n")
        elif kind == "length":
            body = draw(BODIES)
            parts.append(
                b"PUT /l HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        else:
            pieces = draw(st.lists(BODIES.filter(bool), max_size=3))
            chunks = b"".join(
                b"%x%s\r\n%s\r\n" % (len(p), draw(st.sampled_from([b"", b";e=1"])), p)
                for p in pieces
            )
            trailer = draw(st.sampled_from([b"", b"X-T: 1\r\n"]))
            parts.append(
                b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunks
                + b"0\r\n"
                + trailer
                + b"\r\n"
            )
    return b"".join(parts), len(parts)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Messages:
    """A stream of messages as llhttp reads it: method or status, URL, sorted headers (framing
    aside for responses, which the proxy may re-frame), body each."""

    def __init__(self, data: bytes, response: bool = False) -> None:
        self.done: list[tuple[Any, bytes, list[tuple[bytes, bytes]], bytes]] = []
        self.response = response
        self._start()
        self.parser: Any = (
            httptools.HttpResponseParser(self) if response else httptools.HttpRequestParser(self)
        )
        self.parser.feed_data(data)

    def _start(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.response:
            kind = self.parser.get_status_code()
            framing = (b"content-length", b"transfer-encoding")
            headers = sorted(h for h in self.headers if h[0] not in framing)
        else:
            kind, headers = self.parser.get_method(), sorted(self.headers)
        self.done.append((kind, self.url, headers, self.body))
        self._start()


def run_requests(reads: list[bytes], count: int) -> tuple[bytes, bytes]:
    """Feed the client ``reads``; the target answers each request once it has it whole."""
    rig = Rig()
    answered = 0
    for read in reads:
        rig.client.data_received(read)
        while answered < count and rig.up.exchange is not None and rig.up.exchange.request_complete:
            rig.up.data_received(OK)
            answered += 1
    return rig.upstream_bytes(), b"".join(rig.down.out)


@FUZZ
@given(request_streams(), st.lists(st.integers(0, 10_000), max_size=12))
def test_requests_reach_the_target_the_same_however_reads_are_cut(
    stream: tuple[bytes, int], points: list[int]
) -> None:
    data, count = stream
    whole_up, whole_down = run_requests([data], count)
    assert whole_down.count(b"HTTP/1.1 200 OK") == count
    assert whole_up.count(b" HTTP/1.1\r\n") == count
    assert b"X-T" not in whole_up  # trailers never travel
    # The fast path keeps the head's order, the parser's puts Host last: same messages.
    assert Messages(run_requests(cuts(data, points), count)[0]).done == Messages(whole_up).done


@st.composite
def response_streams(draw: Any) -> bytes:
    body = draw(BODIES)
    kind = draw(st.sampled_from(["length", "chunked", "interim"]))
    if kind == "length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-B: 1\r\n\r\n%s" % (len(body), body)
    if kind == "interim":
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        + b"0\r\n\r\n"
    )


def run_response(reads: list[bytes]) -> tuple[bytes, bool]:
    rig = Rig()
    rig.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    for read in reads:
        rig.up.data_received(read)
    pooled = rig.target.idle == [rig.up]
    return b"".join(rig.down.out), pooled


@FUZZ
@given(response_streams(), st.lists(st.integers(0, 10_000), max_size=12), st.binary(max_size=3))
def test_responses_reach_the_client_the_same_however_reads_are_cut(
    data: bytes, points: list[int], extra: bytes
) -> None:
    whole, pooled = run_response([data])
    expected = Messages(whole, response=True).done
    assert pooled and expected == Messages(data, response=True).done  # as the target meant it
    split, pooled = run_response(cuts(data, points))
    assert pooled and Messages(split, response=True).done == expected
    # Anything after the response in the same read: the connection is never pooled again
    # (llhttp skips bare CR/LF between messages: those leave it clean).
    if extra.strip(b"\r\n"):
        assert run_response([data + extra]) == (whole, False)
