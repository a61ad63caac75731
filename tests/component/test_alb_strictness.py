"""The ALB data plane refuses ambiguous or malformed requests before they reach a target.

Each case goes to a real in-process data plane in front of a recording backend, on its own
connection: the answer is the expected status with ``Connection: close``, the connection is
closed, and the backend received not one byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from miniecs.alb.dataplane.main import DataPlane
from tests.alb_support import Backend, config, data_plane, exchange, parse_response
from tests.conftest import free_port

Served = tuple[int, Backend, DataPlane]

H = b"Host: a\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

MALFORMED: list[tuple[str, bytes, int]] = [
    # request smuggling: ambiguous body framing
    ("CL and TE", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE and CL", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("duplicate CL", POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("conflicting CL", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("CL list", POST + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("CL negative", POST + b"Content-Length: -3\r\n\r\nabc", 400),
    ("CL plus sign", POST + b"Content-Length: +3\r\n\r\nabc", 400),
    ("CL hex", POST + b"Content-Length: 0x3\r\n\r\nabc", 400),
    ("CL inner space", POST + b"Content-Length: 1 2\r\n\r\nabc", 400),
    ("TE identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("TE gzip", POST + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("TE chunked, gzip", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("TE gzip, chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    ("TE twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("TE space before colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("chunk size not hex", CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size overflow", CHUNKED + b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size negative", CHUNKED + b"-3\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk size space", CHUNKED + b"3 \r\nabc\r\n0\r\n\r\n", 400),
    ("chunk data too long", CHUNKED + b"3\r\nabcX\r\n0\r\n\r\n", 400),
    ("chunk bare LF", CHUNKED + b"3\nabc\n0\n\n", 400),
    # malformed heads
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("bare LF request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ("bare LF header", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare CR header", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("invalid method chars", b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("unknown method", b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("lowercase method", b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
    ("HTTX/1.1", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("target not origin-form", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space in header name", b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("empty header name", b"GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("control char in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
    ("leading whitespace line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("missing Host on 1.1", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    # limits (max_head_bytes 4096, max_body_bytes 1000 below)
    ("huge header", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (
        "many headers",
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(600)),
        431,
    ),
    ("huge target", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 431),
    ("unterminated head", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 5000, 431),
    ("Content-Length over limit", POST + b"Content-Length: 1001\r\n\r\n", 413),
    ("chunked body over limit", CHUNKED + b"3e9\r\n" + b"a" * 1001 + b"\r\n0\r\n\r\n", 413),
]
LIMITS = {"max_head_bytes": 4096, "max_body_bytes": 1000, "head_timeout": 0.4}


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Served]:
    backend = Backend("b1")
    await backend.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [backend.port], limits=LIMITS)) as dp:
        yield port, backend, dp
    await backend.stop()


async def test_every_malformed_request_is_rejected_before_the_target(plane: Served) -> None:
    port, backend, dp = plane
    failures = []
    for name, raw, expected in MALFORMED:
        data = await exchange(port, raw, wait=3)
        status, headers, _ = parse_response(data)
        if status != expected or headers.get("connection") != "close":
            failures.append(f"{name}: got {data[:60]!r}")
    await asyncio.sleep(0.1)
    assert not failures, failures
    assert backend.bytes_received == 0
    assert backend.requests == []
    assert dp.plane.counters.rejected == len(MALFORMED)
    assert len(MALFORMED) >= 45


async def test_a_valid_request_still_passes(plane: Served) -> None:
    port, backend, _ = plane
    data = await exchange(port, b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert parse_response(data)[0] == 200
    assert [r.url for r in backend.requests] == ["/ok"]


async def test_head_not_received_in_time_gets_408(plane: Served) -> None:
    port, backend, _ = plane
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    async with asyncio.timeout(3):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert parse_response(data)[0] == 408
    assert backend.bytes_received == 0


async def test_a_body_stalled_after_the_head_is_not_a_408(plane: Served) -> None:
    port, _, _ = plane
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(POST + b"Content-Length: 4\r\n\r\nab")
    await asyncio.sleep(0.8)  # twice the head timeout: only the idle timeout governs a body
    writer.write(b"cd")
    async with asyncio.timeout(3):
        data = await reader.readuntil(b"b1 POST / 4")
    writer.close()
    await writer.wait_closed()
    assert parse_response(data)[0] == 200


async def test_idle_keep_alive_connections_are_closed(tmp_path: Path) -> None:
    backend = Backend("b1")
    await backend.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [backend.port], idle_timeout=0.5)):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(3):
            await reader.readuntil(b"b1 GET / 0")
            assert await reader.read() == b""  # closed by the load balancer, without a word
        writer.close()
        await writer.wait_closed()
    await backend.stop()
