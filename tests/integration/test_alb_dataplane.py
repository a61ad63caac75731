"""The ALB data-plane image as the control plane runs it: a container on the host's network,
configured only through ``put_archive`` and read back through ``get_archive``, in front of real
workload containers on a labelled bridge network.

Covers the contract in ``docs/alb-dataplane.md``: round robin over healthy targets, a target
whose /health fails taken out with AWS's reason, draining, 503 without targets, and the states
and counters in ``state.json``.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import docker_client, free_port, remove_by_label, wait_for

pytestmark = pytest.mark.integration

ALB_IMAGE = "miniecs/alb:latest"
WORKLOAD_IMAGE = "miniecs/workload:latest"
FAIL_FILE = "/tmp/fail-health"


class Setup:
    def __init__(self, label: str, port: int) -> None:
        self.label = label
        self.port = port
        self.alb: Any = None
        self.workloads: list[Any] = []
        self.ips: list[str] = []

    def targets(self, draining: tuple[int, ...] = ()) -> list[dict[str, Any]]:
        return [
            {"ip": ip, "port": 8080, "draining": i in draining} for i, ip in enumerate(self.ips)
        ]

    def push(self, version: int, targets: list[dict[str, Any]]) -> None:
        doc = {
            "version": version,
            "speed": 10.0,
            "bind": "127.0.0.1",
            "idle_timeout": 60,
            "listeners": [
                {
                    "arn": "arn:aws:elasticloadbalancing:us-east-1:0:listener/app/t/1/2",
                    "port": self.port,
                    "default_actions": [{"Type": "forward", "TargetGroupArn": "tg"}],
                    "rules": [],
                }
            ],
            "target_groups": [
                {
                    "arn": "tg",
                    "name": "web",
                    "port": 8080,
                    "health_check": {
                        "path": "/health",
                        "interval": 5,
                        "timeout": 2,
                        "healthy_threshold": 2,
                        "unhealthy_threshold": 2,
                        "matcher": "200",
                    },
                    "algorithm": "round_robin",
                    "targets": targets,
                }
            ],
        }
        data = json.dumps(doc).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("config.json")
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        assert self.alb.put_archive("/run/alb", buf.getvalue())

    def state(self) -> dict[str, Any] | None:
        try:
            stream, _ = self.alb.get_archive("/run/alb/state.json")
        except Exception:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("state.json")
            assert member is not None
            try:
                return dict(json.loads(member.read()))
            except ValueError:
                return None  # copied while the data plane replaced it: read again next poll

    def rows(self) -> dict[str, dict[str, Any]]:
        state = self.state() or {"targets": {}}
        return {r["ip"]: r for r in state["targets"].get("tg", [])}

    def get(self, path: str = "/") -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, {}


@pytest.fixture
def setup(images: None) -> Iterator[Setup]:
    client = docker_client()
    label = f"miniecs.test=alb-{uuid.uuid4().hex[:8]}"
    key, value = label.split("=")
    s = Setup(label, free_port())
    try:
        network = client.networks.create(f"alb-test-{value}", labels={key: value})
        for i in range(3):
            container = client.containers.run(
                WORKLOAD_IMAGE,
                detach=True,
                name=f"{value}-w{i}",
                labels={key: value},
                network=network.name,
                environment={"MINIECS_TASK_ID": f"w{i}", "WORKLOAD_FAIL_HEALTH_FILE": FAIL_FILE},
            )
            container.reload()
            s.workloads.append(container)
            s.ips.append(container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"])
        s.alb = client.containers.run(
            ALB_IMAGE, detach=True, name=f"{value}-alb", labels={key: value}, network_mode="host"
        )
        yield s
    finally:
        remove_by_label(label)


def test_alb_image_serves_the_contract(setup: Setup) -> None:
    s = setup
    s.push(1, s.targets())
    wait_for(lambda: [r["state"] for r in s.rows().values()] == ["healthy"] * 3, timeout=30)

    # Round robin over three healthy targets, exactly.
    served = Counter(s.get("/")[1]["taskId"] for _ in range(30))
    assert served == {"w0": 10, "w1": 10, "w2": 10}

    # A failing /health takes w0 out with AWS's reason; the others share the load.
    s.workloads[0].exec_run(["touch", FAIL_FILE])
    wait_for(lambda: s.rows()[s.ips[0]]["state"] == "unhealthy", timeout=20)
    row = s.rows()[s.ips[0]]
    assert row["reason"] == "Target.ResponseCodeMismatch"
    assert row["description"] == "Health checks failed with these codes: [503]"
    assert Counter(s.get("/")[1]["taskId"] for _ in range(20)) == {"w1": 10, "w2": 10}

    # Draining w1: no new requests; reported as draining.
    s.push(2, s.targets(draining=(1,)))
    wait_for(lambda: s.rows()[s.ips[1]]["state"] == "draining", timeout=10)
    assert s.rows()[s.ips[1]]["reason"] == "Target.DeregistrationInProgress"
    assert Counter(s.get("/")[1]["taskId"] for _ in range(10)) == {"w2": 10}

    # No registered targets: 503 from the load balancer.
    s.push(3, [])
    wait_for(lambda: (s.state() or {}).get("config_version") == 3, timeout=10)
    assert s.get("/")[0] == 503

    def counted() -> dict[str, Any] | None:
        state = s.state()
        return state if state and state["counters"]["load_balancer"]["elb_503"] == 1 else None

    state = wait_for(counted, timeout=5)
    tg = state["counters"]["tg"]
    assert (tg["requests"], tg["2xx"], tg["5xx"]) == (60, 60, 0)
    assert tg["response_time_count"] == 60 and tg["response_time_sum"] > 0
    assert state["counters"]["load_balancer"]["requests"] == 61
    assert state["targets"]["tg"] == []
