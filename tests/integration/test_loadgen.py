"""`miniecs load`: load.py in a container, pinned to a task's IP on the cluster network, or
through a listener URL on the engine host's network; and its messages for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from miniecs import loadgen
from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs, docker_client
from tests.integration.test_tasks import WORKLOAD
from tests.unit.test_load import start_workload, stop_process

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 90}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "miniecs", "load", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def load_containers() -> list[Any]:
    return list(
        docker_client().containers.list(
            sparse=True, all=True, filters={"label": "miniecs.role=load"}
        )
    )


def service_tasks(ecs: Any, count: int) -> list[dict[str, Any]]:
    ecs.create_cluster(clusterName="lg")
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="lg",
        serviceName="web",
        taskDefinition="web",
        desiredCount=count,
    )
    ecs.get_waiter("services_stable").wait(cluster="lg", services=["web"], WaiterConfig=FAST)
    arns = ecs.list_tasks(cluster="lg", serviceName="web")["taskArns"]
    return list(ecs.describe_tasks(cluster="lg", tasks=arns)["tasks"])


def test_direct_load_is_pinned_to_one_task(fast_miniecs: Miniecs) -> None:
    ecs = fast_miniecs.client()
    first, second = service_tasks(ecs, 2)
    before = {c.id for c in load_containers()}
    done = cli(
        "--to-task", first["taskArn"], "--endpoint-url", fast_miniecs.endpoint,
        "--requests", "200", "--connections", "3", "--work-ms", "1", "--output", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    first_id = first["taskArn"].rsplit("/", 1)[-1]
    assert report["routing"] == "direct"
    assert report["stoppedBy"] == "requests"
    assert report["tasks"] == {first_id: 200}
    assert report["statuses"] == {"200": 200}
    assert report["targets"] == [f"http://{loadgen.task_ip(first)}:8080/work"]
    assert report["ms"] == 1
    assert {c.id for c in load_containers()} <= before  # its container is gone

    second_id = second["taskArn"].rsplit("/", 1)[-1]
    table = cli(
        "--to-task", second_id, "--cluster", "lg", "--endpoint-url", fast_miniecs.endpoint,
        "--duration", "1", "--rate", "50",
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "requests per task" in table.stdout
    assert second_id in table.stdout and first_id not in table.stdout
    assert "open loop at 50 req/s" in table.stdout


def test_url_load_runs_on_the_engine_hosts_network(images: None) -> None:
    """A listener bound to the engine host's loopback (as the ALB's are) is reachable, by
    address and by a name the host resolves."""
    server = start_workload("cccccccccccccccc")
    try:
        for host in ("127.0.0.1", "localhost"):
            report = loadgen.load_command(
                loadgen.LoadSpec(duration=5, requests=50, connections=2),
                to_task=None,
                url=f"http://{host}:{server.port}/work",
                cluster="default",
                path="/work",
                endpoint_url="http://127.0.0.1:9",
                network=None,
            )
            assert report["routing"] == "alb"
            assert report["tasks"] == {"cccccccccccccccc": 50}
    finally:
        stop_process(server.proc)


def test_bad_input_gets_a_clear_message(fast_miniecs: Miniecs) -> None:
    fast_miniecs.client().create_cluster(clusterName="lg")
    endpoint = ("--endpoint-url", fast_miniecs.endpoint)
    cases = [
        ((*endpoint,), "give exactly one of --to-task"),
        ((*endpoint, "--to-task", "x", "--url", "http://a/"), "give exactly one of --to-task"),
        ((*endpoint, "--to-task", "0123456789abcdef"), "ClusterNotFoundException"),
        (
            (*endpoint, "--to-task", "0123456789abcdef", "--cluster", "lg"),
            "not found in cluster lg",
        ),
        (("--to-task", "x", "--endpoint-url", "http://127.0.0.1:9"), "no miniecs answers"),
        (("--url", "ftp://a/"), "only http://host"),
    ]
    for args, message in cases:
        done = cli(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert message in " ".join(done.stderr.split()), (args, done.stderr)
    dead = cli("--url", "http://127.0.0.1:1/", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert dead.returncode == 1
    assert "no Docker engine answers" in dead.stderr
    usage = cli("--to-task", "x", "--duration", "0")
    assert usage.returncode == 2
