"""Fail fast and clear without a Docker engine: `miniecs server` says so at start, a task ends
STOPPED with a ResourceInitializationError within seconds (not PROVISIONING for ever), and the
background loops say it once instead of every second. No Docker needed: DOCKER_HOST points at a
socket that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.conftest import wait_for


def test_without_an_engine_tasks_stop_at_once_with_the_reason(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    server = subprocess.Popen(
        [sys.executable, "-m", "miniecs", "server", "--port", "0", "--state-dir", str(state)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        port = wait_for(lambda: (state / "port").is_file() and (state / "port").read_text().strip())
        ecs = boto3.client(
            "ecs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="t", aws_secret_access_key="t",
        )  # fmt: skip
        elb = boto3.client(
            "elbv2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="t", aws_secret_access_key="t",
        )  # fmt: skip
        elb.create_load_balancer(Name="idle")
        ecs.create_cluster(clusterName="c")
        app = {"name": "app", "image": "miniecs/workload:latest"}
        ecs.register_task_definition(
            family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
            memory="512", containerDefinitions=[app],
        )  # fmt: skip
        asked = time.monotonic()
        arn = ecs.run_task(
            cluster="c",
            taskDefinition="web",
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}},
        )["tasks"][0]["taskArn"]

        def stopped() -> dict[str, str] | None:
            task = ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
            return task if task["lastStatus"] == "STOPPED" else None

        task = wait_for(stopped, timeout=10, interval=0.2)
        took = time.monotonic() - asked
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"].startswith("ResourceInitializationError: Docker engine")
        assert task["containers"][0]["lastStatus"] == "STOPPED"
        time.sleep(4)  # several controller passes with no engine
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
    print(f"RunTask -> STOPPED in {took:.1f} s\n{out[-3000:]}")
    assert server.returncode == 0
    assert "Docker engine not reachable" in out.split("listening")[0]  # said at start
    assert out.count("ALB controller: Docker engine not reachable") <= 1  # said once
    assert out.count("container engine unavailable") <= 1
