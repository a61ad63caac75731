"""The pytest plugin as a user meets it: a separate pytest run (outside this project's
conftest) of a 15-line test file using the `miniecs` fixture; afterwards no container or
network labelled with its instance is left, also when its test fails or the run is
interrupted with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import docker_client, wait_for

pytestmark = pytest.mark.integration

USER_TEST = """\
import collections, json, socket, time, urllib.request
NET = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}

def test_spread(miniecs):
    print("INSTANCE", miniecs.instance, flush=True)
    ecs, elb = miniecs.client("ecs"), miniecs.client("elbv2")
    miniecs.cluster("ci")
    ecs.register_task_definition(family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[{"name": "app", "image": "miniecs/workload:latest", "portMappings": [{"containerPort": 8080}]}])
    tg = elb.create_target_group(Name="web", Protocol="HTTP", Port=8080, TargetType="ip", HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
    lb = elb.create_load_balancer(Name="web")["LoadBalancers"][0]
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    ecs.create_service(cluster="ci", serviceName="web", taskDefinition="web", desiredCount=2, networkConfiguration=NET, loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}])
    for _ in range(240):
        if [h["TargetHealth"]["State"] for h in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]] == ["healthy"] * 2: break
        time.sleep(0.5)
    seen = collections.Counter(json.load(urllib.request.urlopen(f"http://{lb['DNSName']}:{port}/"))["taskId"] for _ in range(100))
    assert len(seen) == 2 and min(seen.values()) >= 40, seen
"""  # noqa: E501  (the user's file, as short as the issue asks)

FAILING = """\
import time
NET = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}

def test_fails(miniecs):
    print("INSTANCE", miniecs.instance, flush=True)
    ecs = miniecs.client("ecs")
    miniecs.cluster("ci")
    ecs.register_task_definition(family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[{"name": "app", "image": "miniecs/workload:latest"}])
    task = ecs.run_task(cluster="ci", taskDefinition="web", networkConfiguration=NET)["tasks"][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(cluster="ci", tasks=[task], WaiterConfig={"Delay": 1})
    print("RUNNING", flush=True)
    time.sleep(float(__import__("os").environ.get("HOLD", "0")))
    assert False, "this test fails on purpose"
"""  # noqa: E501


def pytest_run(tmp_path: Path, source: str, hold: float = 0) -> subprocess.Popen[str]:
    (tmp_path / "test_user.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "MINIECS_ENDPOINT"}
    env["HOLD"] = str(hold)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q",
         "--miniecs-clock-speed", "5", "-W", "ignore", "test_user.py"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def instance_of(output: str) -> str:
    found = re.search(r"INSTANCE ([0-9a-f]{12})", output)
    assert found, output[-3000:]
    return found.group(1)


def left_behind(instance: str) -> list[str]:
    client = docker_client()
    label = {"label": f"miniecs.instance={instance}"}
    containers = client.containers.list(all=True, filters=label)
    networks = client.networks.list(filters=label)
    return [c.name for c in containers] + [n.name for n in networks]


def test_user_test_runs_a_service_behind_a_load_balancer_and_leaves_nothing(
    tmp_path: Path, images: None
) -> None:
    run = pytest_run(tmp_path, USER_TEST)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-3000:]
    assert "1 passed" in out
    assert left_behind(instance_of(out)) == []


def test_failing_test_leaves_nothing(tmp_path: Path, images: None) -> None:
    run = pytest_run(tmp_path, FAILING)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 1 and "this test fails on purpose" in out, out[-3000:]
    assert left_behind(instance_of(out)) == []


def test_interrupted_run_leaves_nothing(tmp_path: Path, images: None) -> None:
    run = pytest_run(tmp_path, FAILING, hold=120)
    assert run.stdout is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "RUNNING" not in seen and time.monotonic() < deadline:
        seen += run.stdout.readline()
    instance = instance_of(seen)
    assert left_behind(instance) != []  # the task's containers exist while the test holds
    run.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = run.communicate(timeout=120)
    assert "KeyboardInterrupt" in seen + out
    wait_for(lambda: left_behind(instance) == [], timeout=10)
