"""A killed task costs only its in-flight requests: the control plane learns of the death from
the engine's events and pushes its targets ``down`` at once; the data plane then chooses them
no more and answers their in-flight requests (a connect to a vanished IP included) 502."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

from tests.alb_support import Backend, Client, config, data_plane
from tests.component.test_elbv2 import Elb, elb, setup
from tests.conftest import free_port

__all__ = ["elb"]  # the fixture


def targets(e: Elb) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = e.config()["target_groups"][0]["targets"]
    return rows


async def test_a_dead_essential_container_pushes_its_targets_down_at_once(elb: Elb) -> None:
    _, tg_arn, _ = await setup(elb)
    await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.5"}])
    await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.6"}])
    await elb.controller.once()
    await elb.controller.once()
    ips = {"t5": "172.20.0.5", "t6": "172.20.0.6"}

    def lost_ip(task_id: str, container: str) -> str | None:
        return ips.get(task_id) if container == "app" else None

    watch = asyncio.create_task(elb.controller.watch_deaths(lost_ip))
    try:
        version = elb.config()["version"]
        elb.runtime.deaths.put_nowait(("t5", "sidecar"))  # not essential: nothing changes
        await asyncio.sleep(0.05)
        assert elb.config()["version"] == version
        started = time.monotonic()
        elb.runtime.deaths.put_nowait(("t5", "app"))
        while not any(t.get("down") for t in targets(elb)):
            assert time.monotonic() - started < 0.2
            await asyncio.sleep(0.005)
        assert targets(elb) == [
            {"ip": "172.20.0.5", "port": 8080, "draining": False, "down": True},
            {"ip": "172.20.0.6", "port": 8080, "draining": False},
        ]
        # DescribeTargetHealth is not changed by it; ECS's deregistration ends it.
        assert elb.controller.target_health(tg_arn, "172.20.0.5", 8080) is not None
        elb.controller.deregister_targets(tg_arn, [("172.20.0.5", 8080)])
        elb.controller.store.remove_targets([(tg_arn, "172.20.0.5", 8080)])
        await elb.controller.once()
        assert elb.controller._down == {}
        # A new registration of the same IP (a new task) is not down.
        elb.clock.advance(1)
        await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.5"}])
        await elb.controller.once()
        assert not any(t.get("down") for t in targets(elb))
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


def write_config(tmp: Path, doc: dict[str, Any]) -> None:
    tmp.joinpath("config.json.new").write_text(json.dumps(doc))
    tmp.joinpath("config.json.new").replace(tmp / "config.json")


async def test_a_down_target_fails_its_in_flight_requests_at_once_and_gets_no_more(
    tmp_path: Path,
) -> None:
    # A listener with a full accept queue drops SYNs: connecting hangs, as to a vanished IP.
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
    b = Backend("b1")
    await b.start()
    port = free_port()
    hole = full.getsockname()[1]
    try:
        async with data_plane(tmp_path, config(port, [hole, b.port])) as dp:
            first = await Client.open(port)
            stuck = asyncio.create_task(first.get("/"))
            await asyncio.sleep(0.2)
            assert not stuck.done()
            doc = config(port, [hole, b.port], version=2)
            doc["target_groups"][0]["targets"][0]["down"] = True
            started = time.monotonic()
            write_config(tmp_path, doc)
            assert (await stuck)[0] == 502
            assert time.monotonic() - started < 0.2
            await first.close()
            client = await Client.open(port)
            for _ in range(6):
                status, headers, _ = await client.get("/")
                assert (status, headers["x-backend"]) == (200, "b1")
            await client.close()
            assert dp.document()["targets"]["tg"][0]["state"] == "unavailable"
    finally:
        await b.stop()
        for conn in [*queued, full]:
            conn.close()
