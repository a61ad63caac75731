"""The ALB data plane under hostile clients and broken targets (issue 15's defects).

Each test drives a real in-process data plane through real sockets: trailers never reach the
next request, a pooled connection is reused only at an exact framing boundary, a target's reset
never looks like a complete response, a target that refuses connections stops being chosen,
heads of refused requests never go upstream, and the health-check timeout is real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from miniecs.alb.dataplane import health
from miniecs.alb.dataplane.config import HealthCheck
from tests.alb_raw import CLOSE, RESET, Answer, RawTarget
from tests.alb_support import Backend, Client, config, data_plane, parse_response
from tests.conftest import free_port


async def talk(
    port: int, *parts: bytes, gap: float = 0.05, wait: float = 3.0
) -> tuple[bytes, bool]:
    """Send ``parts`` on one connection (``gap`` apart); everything received until the
    load balancer closes it, and whether it closed with a reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i, part in enumerate(parts):
        if i:
            await asyncio.sleep(gap)
        writer.write(part)
    chunks: list[bytes] = []
    was_reset = False
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except ConnectionResetError:
        was_reset = True
    except TimeoutError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return b"".join(chunks), was_reset


TRAILERS = (
    b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-Trailer-Leak: 1\r\nAuthorization: Bearer evil\r\n"
    b"Host: evil.example.com\r\n\r\n"
)


async def test_trailers_never_reach_the_next_request(tmp_path: Path) -> None:
    b = Backend("b1")
    await b.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port])):
        # Trailers then a request in a later read, then in the same read (pipelined).
        for follow in (
            b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            b"GET /old HTTP/1.0\r\n\r\n",
        ):
            for parts in ((TRAILERS, follow), (TRAILERS + follow,)):
                b.requests.clear()
                data, _ = await talk(port, *parts, gap=0.1)
                assert data.count(b"HTTP/1.1 200 OK") == 2, data
                first, second = b.requests
                assert first.body == b"abc"
                for seen in (first, second):
                    assert seen.header("x-trailer-leak") == []
                    assert seen.header("authorization") == []
                    assert seen.header("host") in ([], ["a"])
    await b.stop()


async def test_bytes_after_a_response_never_go_back_into_the_pool(tmp_path: Path) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\nContent-Length: 5\r\n\r\nevil!"
    good = Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-T: 2\r\n\r\ngood")
    for extra in (smuggled, b"HTTP/1.1 200 \r\n", b"garbage", b" ", b"\x00"):
        t = RawTarget([Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + extra), good])
        await t.start()
        port = free_port()
        async with data_plane(tmp_path, config(port, [t.port])):
            first = await Client.open(port)
            assert await first.get("/1") == (200, {"content-length": "2"}, b"ok")
            await asyncio.sleep(0.05)
            second = await Client.open(port)
            status, headers, body = await second.get("/2")
            assert (status, headers.get("x-t"), body) == (200, "2", b"good"), extra
            await first.close()
            await second.close()
        await t.stop()
        assert t.connections == 2, extra
    # llhttp skips empty lines between messages (RFC 9112 2.2): nothing stays buffered, and the
    # connection is reused at a clean message start.
    t = RawTarget([Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n"), good])
    await t.start()
    async with data_plane(tmp_path, config(port, [t.port], version=2)):
        client = await Client.open(port)
        assert (await client.get("/1"))[2] == b"ok"
        assert (await client.get("/2"))[2] == b"good"
        await client.close()
    await t.stop()


async def test_a_target_reset_mid_body_aborts_the_client_response(tmp_path: Path) -> None:
    for head in (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
    ):
        for version in (b"1.1", b"1.0"):
            t = RawTarget([Answer(head, then=RESET, pause=0.2)])
            await t.start()
            port = free_port()
            async with data_plane(tmp_path, config(port, [t.port])) as dp:
                data, was_reset = await talk(port, b"GET / HTTP/%s\r\nHost: a\r\n\r\n" % version)
                assert data.startswith(b"HTTP/1.1 200 OK"), data
                assert b"partial" in data
                assert not data.endswith(b"0\r\n\r\n"), data
                assert was_reset, (head, version, data)
                assert dp.plane.groups["tg"].target_errors == 1
            await t.stop()


async def test_a_close_delimited_body_ended_by_fin_is_complete(tmp_path: Path) -> None:
    t = RawTarget([Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nwhole", then=CLOSE)])
    await t.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [t.port])) as dp:
        data, was_reset = await talk(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert not was_reset
        assert data.endswith(b"5\r\nwhole\r\n0\r\n\r\n"), data
        assert dp.plane.groups["tg"].target_errors == 0
    await t.stop()


async def test_an_invalid_chunk_size_in_the_first_read_is_502(tmp_path: Path) -> None:
    t = RawTarget([Answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n")])
    await t.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [t.port])) as dp:
        data, _ = await talk(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert parse_response(data)[0] == 502, data
        assert dp.plane.counters.elb_502 == 1
    await t.stop()


async def test_a_control_character_in_the_reason_phrase_is_502(tmp_path: Path) -> None:
    t = RawTarget([Answer(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\nX: y\r\n\r\nok")])
    await t.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [t.port])):
        data, _ = await talk(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert parse_response(data)[0] == 502, data
    await t.stop()


REFUSED_BODIES = [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"3 \r\nabc\r\n0\r\n\r\n",
    b"-3\r\nabc\r\n0\r\n\r\n",
    b"3\r\nabcX\r\n0\r\n\r\n",
    b"3\nabc\n0\n\n",
    b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
]


async def test_heads_of_refused_requests_never_reach_a_pooled_target(tmp_path: Path) -> None:
    b = Backend("b1")
    await b.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port])):
        warm = await Client.open(port)
        assert (await warm.get("/warm"))[0] == 200  # leaves an idle pooled connection
        await warm.close()
        seen = b.bytes_received
        for body in REFUSED_BODIES:
            raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
            data, _ = await talk(port, raw)
            assert parse_response(data)[0] == 400, data
        await asyncio.sleep(0.1)
        assert b.bytes_received == seen
    await b.stop()


async def test_a_refusing_target_fails_one_request_and_is_not_chosen_again(
    tmp_path: Path,
) -> None:
    b = Backend("b1")
    await b.start()
    port, dead = free_port(), free_port()
    async with data_plane(tmp_path, config(port, [dead, b.port])) as dp:
        statuses = []
        for _ in range(10):
            data, _ = await talk(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            statuses.append(parse_response(data)[0])
        assert statuses == [502] + [200] * 9
        assert dp.plane.groups["tg"].target_errors == 1
    await b.stop()


async def test_the_504_comes_no_sooner_than_the_idle_timeout(tmp_path: Path) -> None:
    t = RawTarget([Answer(b"")])
    await t.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [t.port], idle_timeout=1.0)) as dp:
        await asyncio.sleep(0.05)
        dp.plane.now -= 0.45  # the coarse clock as stale as it gets between two sweeps
        client = await Client.open(port)
        started = time.monotonic()
        answer = asyncio.create_task(client.get("/"))
        await asyncio.sleep(0.7)
        dp.sweep()  # 0.3 s before the idle timeout: no 504 yet
        status, _, _ = await answer
        took = time.monotonic() - started
        await client.close()
        assert status == 504
        assert took >= 1.0, took
        assert dp.plane.counters.elb_504 == 1
    await t.stop()


async def test_health_check_timeout_is_real_seconds_at_any_clock_speed() -> None:
    """AWS: HealthCheckTimeoutSeconds is the time during which no response means a failed
    check; the README keeps probe timeouts uncompressed. A 0.3 s /health with a 2 s timeout is
    healthy at speed 100 (the interval, 10 s, shrinks to 0.1 s)."""

    async def slow_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow_health, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    check = HealthCheck(enabled=True, interval=10, timeout=2)
    results: list[health.Health] = []
    state = health.registered(check)
    two = asyncio.Event()

    def put(value: health.Health) -> None:
        nonlocal state
        state = value
        results.append(value)
        if len(results) >= 2:
            two.set()

    task = asyncio.create_task(
        health.check_loop("127.0.0.1", port, check, 100.0, lambda: state, put)
    )
    try:
        async with asyncio.timeout(3):
            await two.wait()
    finally:
        task.cancel()
        server.close()
    assert results[1].state is health.TargetState.HEALTHY, results
