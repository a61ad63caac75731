"""The ALB data plane's proxying, end to end in one process: real sockets, recording backends.

Round robin, keep-alive and pooled upstream connections, header rewriting, body framing in
both directions, the load balancer's own 502/503/504, draining and removal of targets,
fail-open, rules, and the counters in ``state.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

from tests.alb_support import BIG, Backend, Client, config, data_plane, request
from tests.conftest import free_port


async def backends(*modes: str) -> list[Backend]:
    started = [Backend(f"b{i + 1}", mode) for i, mode in enumerate(modes)]
    for backend in started:
        await backend.start()
    return started


async def stop(started: list[Backend]) -> None:
    for backend in started:
        await backend.stop()


def write_config(tmp: Path, doc: dict[str, Any]) -> None:
    tmp.joinpath("config.json.new").write_text(json.dumps(doc))
    tmp.joinpath("config.json.new").replace(tmp / "config.json")


async def until(condition: Any, wait: float = 5.0) -> None:
    for _ in range(int(wait / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {wait} s")


async def test_round_robin_over_keep_alive_connections(tmp_path: Path) -> None:
    bs = await backends("ok", "ok", "ok")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port for b in bs])):
        client = await Client.open(port)
        seen = Counter()
        for _ in range(30):
            status, headers, _ = await client.get("/work")
            assert status == 200
            seen[headers["x-backend"]] += 1
        await client.close()
    await stop(bs)
    assert seen == {"b1": 10, "b2": 10, "b3": 10}
    assert all(b.connections == 1 for b in bs)  # the pooled connection was reused


async def test_forwarded_headers_and_hop_by_hop(tmp_path: Path) -> None:
    (b,) = await backends("ok")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port])):
        client = await Client.open(port)
        await client.get(
            "/h",
            "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
            "X-Forwarded-Port: 443\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
            "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n"
            "X-Kept: yes\r\n",
        )
        await client.close()
    await stop([b])
    seen = b.requests[0]
    assert seen.header("x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert seen.header("x-forwarded-proto") == ["http"]
    assert seen.header("x-forwarded-port") == [str(port)]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", seen.header("x-amzn-trace-id")[0])
    assert seen.header("host") == ["lb"]
    assert seen.header("x-kept") == ["yes"]
    for hop in ("connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert seen.header(hop) == [], hop


async def test_plain_gets_on_the_fast_path_get_the_same_headers_as_parsed_ones(
    tmp_path: Path,
) -> None:
    # A bare GET with only Host (and a harmless header) skips the parser; the next request,
    # carrying headers to rewrite, goes through it on the same connection. The target must see
    # the load balancer's headers either way, and every request its own trace id.
    (b,) = await backends("ok")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port])):
        client = await Client.open(port)
        for _ in range(2):
            assert (await client.get("/fast", "X-Kept: yes\r\n"))[0] == 200
        assert (await client.get("/slow", "X-Forwarded-For: 203.0.113.9\r\n"))[0] == 200
        assert (await client.get("/fast-again"))[0] == 200
        await client.close()
    await stop([b])
    first, second, slow, again = b.requests
    for seen in (first, second, again):
        assert seen.header("x-forwarded-for") == ["127.0.0.1"]
        assert seen.header("x-forwarded-proto") == ["http"]
        assert seen.header("x-forwarded-port") == [str(port)]
        assert seen.header("host") == ["lb"]
    assert first.header("x-kept") == ["yes"]
    assert slow.header("x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    traces = [r.header("x-amzn-trace-id")[0] for r in (first, second, slow, again)]
    assert all(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", t) for t in traces)
    assert len(set(traces)) == 4


async def test_bodies_are_streamed_and_reframed(tmp_path: Path) -> None:
    bs = await backends("chunked", "close-delimited")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port for b in bs])):
        client = await Client.open(port)
        client.send(
            b"POST /up HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        status, headers, body = await client.read()
        assert (status, body) == (200, b"b1 POST /up 11")
        assert headers["transfer-encoding"] == "chunked"
        client.send(b"PUT /cl HTTP/1.1\r\nHost: lb\r\nContent-Length: 3\r\n\r\nabc")
        status, headers, body = await client.read()  # close-delimited → chunked for HTTP/1.1
        assert (status, body, headers["transfer-encoding"]) == (200, b"b2 PUT /cl 3", "chunked")
        status, _, body = await client.get("/again")
        assert (status, body) == (200, b"b1 GET /again 0")
        await client.close()
        # An HTTP/1.0 client gets the chunked response de-chunked and closed.
        status, headers, body, _ = await request(port, b"GET /old HTTP/1.0\r\n\r\n")
        assert (status, body) == (200, b"b2 GET /old 0")
    await stop(bs)
    assert bs[0].requests[0].body == b"hello world"
    assert bs[0].requests[0].header("transfer-encoding") == ["chunked"]


async def test_response_heads_lose_hop_by_hop_headers_and_keep_interim_responses(
    tmp_path: Path,
) -> None:
    bs = await backends("hop", "continue")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port for b in bs])):
        client = await Client.open(port)
        status, headers, body = await client.get("/a")
        assert (status, body) == (200, b"b1 GET /a 0")
        assert "keep-alive" not in headers and "connection" not in headers
        client.send(b"GET /b HTTP/1.1\r\nHost: lb\r\n\r\n")
        data = b""
        while not data.endswith(b"b2 GET /b 0"):
            data += await client.reader.read(65536)
        assert data.startswith(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\n")
        assert (await client.get("/c"))[2] == b"b1 GET /c 0"
        await client.close()
    await stop(bs)


async def test_pipelined_requests_and_head(tmp_path: Path) -> None:
    (b,) = await backends("ok")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port])):
        client = await Client.open(port)
        client.send(b"GET /1 HTTP/1.1\r\nHost: lb\r\n\r\nGET /2 HTTP/1.1\r\nHost: lb\r\n\r\n")
        assert (await client.read())[2] == b"b1 GET /1 0"
        assert (await client.read())[2] == b"b1 GET /2 0"
        client.send(b"HEAD /3 HTTP/1.1\r\nHost: lb\r\n\r\n")
        status, headers, body = await client.read(head_only=True)
        assert (status, headers["content-length"], body) == (200, "12", b"")
        assert (await client.get("/4"))[2] == b"b1 GET /4 0"
        await client.close()
    await stop([b])


async def test_target_failures_are_502_and_never_retried_when_not_idempotent(
    tmp_path: Path,
) -> None:
    bs = await backends("reset", "garbage")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port for b in bs])) as dp:
        raw = b"POST / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        assert (await request(port, raw))[0] == 502  # b1 resets
        assert (await request(port, raw))[0] == 502  # b2 answers garbage
        counters = dp.plane.counters
        assert (counters.elb_502, counters.elb_5xx) == (2, 2)
    await stop(bs)
    assert [len(b.requests) for b in bs] == [1, 1]


async def test_no_response_within_the_idle_timeout_is_504(tmp_path: Path) -> None:
    (b,) = await backends("silent")
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port], idle_timeout=0.5)) as dp:
        status, _, _, _ = await request(
            port, b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
        )
        assert status == 504
        assert dp.plane.counters.elb_504 == 1
    await stop([b])


async def test_a_target_that_does_not_accept_in_time_is_504(tmp_path: Path) -> None:
    # A listener with a full accept queue drops SYNs: connecting hangs like a black hole.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    queued = []
    for _ in range(3):
        conn = socket.socket()
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            conn.connect(full.getsockname())
        queued.append(conn)
    port = free_port()
    doc = config(port, [full.getsockname()[1]], limits={"connect_timeout": 0.3})
    try:
        async with data_plane(tmp_path, doc) as dp:
            raw = b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
            assert (await request(port, raw))[0] == 504
            assert dp.plane.counters.elb_504 == 1
    finally:
        for conn in [*queued, full]:
            conn.close()


async def test_large_bodies_stream_both_ways(tmp_path: Path) -> None:
    (b,) = await backends("ok")
    port = free_port()
    body = BIG
    async with data_plane(tmp_path, config(port, [b.port])):
        client = await Client.open(port)
        client.send(b"PUT /big HTTP/1.1\r\nHost: lb\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 65536):
            client.send(body[i : i + 65536])
            await client.writer.drain()
        status, _, answer = await client.read()
        assert (status, answer) == (200, b"b1 PUT /big %d" % len(body))
        client.send(b"POST /chunks HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 100_000):
            piece = body[i : i + 100_000]
            client.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await client.writer.drain()
        client.send(b"0\r\n\r\n")
        status, _, answer = await client.read()
        assert (status, answer) == (200, b"b1 POST /chunks %d" % len(body))
        await client.close()
    await stop([b])
    assert [r.body == body for r in b.requests] == [True, True]
    (big,) = await backends("big")
    async with data_plane(tmp_path, config(port, [big.port], version=2)):
        client = await Client.open(port)
        for _ in range(2):
            status, headers, answer = await client.get("/download")
            assert (status, headers["content-length"], answer == BIG) == (200, str(len(BIG)), True)
        await client.close()
    await stop([big])


async def test_connection_refused_is_502_and_no_targets_is_503(tmp_path: Path) -> None:
    port, dead = free_port(), free_port()
    async with data_plane(tmp_path, config(port, [dead])) as dp:
        assert (await request(port, b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"))[
            0
        ] == 502
        write_config(tmp_path, config(port, [], version=2))
        await until(lambda: dp.config is not None and dp.config.version == 2)
        status, headers, body, _ = await request(
            port, b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
        )
        assert status == 503
        assert headers["server"] == "awselb/2.0"
        assert b"503 Service Temporarily Unavailable" in body


async def test_draining_targets_get_no_new_requests_but_finish_in_flight(tmp_path: Path) -> None:
    bs = await backends("slow", "ok")
    bs[0].delay = 0.6
    port = free_port()
    async with data_plane(tmp_path, config(port, [b.port for b in bs])) as dp:
        slow = asyncio.create_task(
            request(port, b"GET /slow HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        )
        await until(lambda: len(bs[0].requests) == 1)
        write_config(tmp_path, config(port, [(bs[0].port, True), (bs[1].port, False)], version=2))
        await until(lambda: dp.config is not None and dp.config.version == 2)
        client = await Client.open(port)
        answers = [(await client.get("/n"))[1]["x-backend"] for _ in range(6)]
        await client.close()
        status, headers, _, _ = await slow
        assert (status, headers["x-backend"]) == (200, "b1")
        assert answers == ["b2"] * 6
        # Deregistration delay over: the target leaves the config; its in-flight request gets 502.
        write_config(tmp_path, config(port, [bs[0].port], version=3))
        await until(lambda: dp.config is not None and dp.config.version == 3)
        slow = asyncio.create_task(
            request(port, b"GET /slow HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        )
        await until(lambda: len(bs[0].requests) == 2)
        write_config(tmp_path, config(port, [bs[1].port], version=4))
        assert (await slow)[0] == 502
    await stop(bs)


async def test_fail_open_when_every_target_is_unhealthy(tmp_path: Path) -> None:
    bs = await backends("ok", "ok")
    port = free_port()
    health = {"path": "/health", "interval": 5, "timeout": 2, "matcher": "204"}
    async with data_plane(tmp_path, config(port, [b.port for b in bs], health=health)) as dp:
        state_file = tmp_path / "state.json"

        def unhealthy() -> bool:
            if not state_file.exists():
                return False
            rows = json.loads(state_file.read_text())["targets"]["tg"]
            return all(r["state"] == "unhealthy" for r in rows)

        await until(unhealthy, 10)
        row = json.loads(state_file.read_text())["targets"]["tg"][0]
        assert row["reason"] == "Target.ResponseCodeMismatch"
        assert row["description"] == "Health checks failed with these codes: [200]"
        statuses = [
            (await request(port, b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"))[0]
        ]
        statuses.append(
            (await request(port, b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"))[0]
        )
        assert statuses == [200, 200]
        assert dp.plane.groups["tg"].failing_open()
    await stop(bs)


async def test_rules_fixed_response_and_redirect(tmp_path: Path) -> None:
    (b,) = await backends("ok")
    port = free_port()
    rules = [
        {
            "arn": "r1",
            "priority": 10,
            "conditions": [{"Field": "path-pattern", "Values": ["/old/*"]}],
            "actions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": {"Path": "/new/#{path}", "StatusCode": "HTTP_301"},
                }
            ],
        },
        {
            "arn": "r2",
            "priority": 5,
            "conditions": [
                {
                    "Field": "http-header",
                    "HttpHeaderConfig": {"HttpHeaderName": "X-Deny", "Values": ["y*"]},
                }
            ],
            "actions": [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {
                        "StatusCode": "403",
                        "ContentType": "text/plain",
                        "MessageBody": "denied",
                    },
                }
            ],
        },
    ]
    async with data_plane(tmp_path, config(port, [b.port], rules=rules)):
        client = await Client.open(port)
        status, headers, _ = await client.get("/old/x?q=1")
        assert (status, headers["location"]) == (301, f"http://lb:{port}/new/old/x?q=1")
        status, headers, body = await client.get("/old/x", "X-Deny: yes\r\n")
        assert (status, body, headers["content-type"]) == (403, b"denied", "text/plain")
        assert (await client.get("/fine"))[0] == 200  # same connection: still open
        await client.close()
    await stop([b])
    assert [r.url for r in b.requests] == ["/fine"]


async def test_state_file_reports_states_and_counters(tmp_path: Path) -> None:
    bs = await backends("ok", "ok")
    port = free_port()
    doc = config(port, [(bs[0].port, False), (bs[1].port, True)])
    async with data_plane(tmp_path, doc):
        client = await Client.open(port)
        for _ in range(4):
            await client.get("/")
        await client.close()
        await asyncio.sleep(0.7)
        state = json.loads((tmp_path / "state.json").read_text())
    await stop(bs)
    assert state["config_version"] == 1
    rows = {r["port"]: r for r in state["targets"]["tg"]}
    assert rows[bs[0].port]["state"] == "unavailable"  # health checks disabled
    assert rows[bs[1].port]["state"] == "draining"
    assert rows[bs[1].port]["reason"] == "Target.DeregistrationInProgress"
    tg = state["counters"]["tg"]
    assert (tg["requests"], tg["2xx"], tg["response_time_count"]) == (4, 4, 4)
    assert tg["per_target"] == {f"127.0.0.1:{bs[0].port}": 4, f"127.0.0.1:{bs[1].port}": 0}
    assert state["counters"]["load_balancer"]["requests"] == 4
