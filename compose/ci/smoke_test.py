"""Smoke test for a running miniecs: register a task definition, create a service, wait until
its task is RUNNING, then delete everything it made. boto3 only; exits non-zero on failure.

    python compose/ci/smoke_test.py [--endpoint-url http://127.0.0.1:4566] [--timeout 180]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import boto3

CLUSTER = "smoke"
SERVICE = "web"
TASK_DEFINITION: dict[str, Any] = {
    "family": "smoke-web",
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "containerDefinitions": [
        {
            "name": "app",
            "image": "miniecs/workload:latest",
            "essential": True,
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
        }
    ],
}


def step(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)


def run(endpoint: str, timeout: float) -> None:
    ecs = boto3.client(
        "ecs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    started = time.monotonic()
    attempts = max(1, int(timeout))
    ecs.create_cluster(clusterName=CLUSTER)
    arn = ecs.register_task_definition(**TASK_DEFINITION)["taskDefinition"]["taskDefinitionArn"]
    step(f"registered {arn}", started)
    try:
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition=arn,
            desiredCount=1,
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}},
        )
        ecs.get_waiter("services_stable").wait(
            cluster=CLUSTER,
            services=[SERVICE],
            WaiterConfig={"Delay": 1, "MaxAttempts": attempts},
        )
        tasks = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
        described = ecs.describe_tasks(cluster=CLUSTER, tasks=tasks)["tasks"]
        statuses = [t["lastStatus"] for t in described]
        if statuses != ["RUNNING"]:
            raise SystemExit(f"expected one RUNNING task, got {statuses}")
        details = {d["name"]: d["value"] for d in described[0]["attachments"][0]["details"]}
        step(f"task RUNNING at {details.get('privateIPv4Address')}", started)
    finally:
        ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
        ecs.get_waiter("services_inactive").wait(
            cluster=CLUSTER,
            services=[SERVICE],
            WaiterConfig={"Delay": 1, "MaxAttempts": attempts},
        )
        ecs.deregister_task_definition(taskDefinition=arn)
        ecs.delete_cluster(cluster=CLUSTER)
        step("service, task definition and cluster deleted", started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint-url", default=os.environ.get("MINIECS_ENDPOINT", "http://127.0.0.1:4566")
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per wait")
    args = parser.parse_args()
    run(args.endpoint_url, args.timeout)
    print("smoke test passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
