"""Smoke test for a running miniecs: register a task definition, create a service of two tasks
behind a load balancer, wait until both targets are healthy, send requests through the listener
and check that both tasks answer, then delete everything it made. boto3 and the standard library
only; exits non-zero on failure. ``--no-load-balancer``: one task, no load balancer (for an
engine whose loopback this job cannot reach, e.g. a remote one).

    python compose/ci/smoke_test.py [--endpoint-url http://127.0.0.1:4566] [--timeout 180]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def load_balancer(elb: Any, port: int, made: list[str]) -> tuple[str, str]:
    """A load balancer with an HTTP listener on ``port``; returns (tg arn, DNS name). The ARNs
    of what it made are appended to ``made`` at once, for the cleanup."""
    lb = elb.create_load_balancer(Name="smoke", Type="application")["LoadBalancers"][0]
    made.append(lb["LoadBalancerArn"])
    tg = elb.create_target_group(
        Name="smoke", Protocol="HTTP", Port=8080, TargetType="ip", HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
    )["TargetGroups"][0]  # fmt: skip
    made.append(tg["TargetGroupArn"])
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )  # fmt: skip
    return tg["TargetGroupArn"], lb["DNSName"]


def spread(url: str, count: int, through: str, endpoint: str) -> Counter[str]:
    """Send ``count`` requests to ``url``; how many each task answered. ``through``: direct
    (from this process) or miniecs-load (`miniecs load`, whose client runs on the engine's own
    host network: the way to a listener on a Docker-in-Docker engine's loopback)."""
    answered: Counter[str] = Counter()
    if through == "miniecs-load":
        cmd = ["miniecs", "load", "--url", url, "--requests", str(count), "--connections", "1",
               "--duration", "60", "--output", "json", "--endpoint-url", endpoint]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise SystemExit(f"miniecs load failed ({done.returncode}): {done.stderr[-1000:]}")
        answered.update(json.loads(done.stdout)["tasks"])
        return answered
    for _ in range(count):
        with urllib.request.urlopen(url, timeout=10) as response:
            answered[json.load(response)["taskId"]] += 1
    return answered


def run(
    endpoint: str, timeout: float, with_load_balancer: bool = True, through: str = "direct"
) -> None:
    ecs, elb = client("ecs", endpoint), client("elbv2", endpoint)
    started = time.monotonic()
    attempts = max(1, int(timeout))
    ecs.create_cluster(clusterName=CLUSTER)
    arn = ecs.register_task_definition(**TASK_DEFINITION)["taskDefinition"]["taskDefinitionArn"]
    step(f"registered {arn}", started)
    made: list[str] = []
    try:
        extra: dict[str, Any] = {}
        if with_load_balancer:
            port = free_port()
            tg_arn, dns = load_balancer(elb, port, made)
            extra["loadBalancers"] = [
                {"targetGroupArn": tg_arn, "containerName": "app", "containerPort": 8080}
            ]
        desired = 2 if with_load_balancer else 1
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition=arn,
            desiredCount=desired,
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}},
            **extra,
        )
        ecs.get_waiter("services_stable").wait(
            cluster=CLUSTER,
            services=[SERVICE],
            WaiterConfig={"Delay": 1, "MaxAttempts": attempts},
        )
        tasks = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
        described = ecs.describe_tasks(cluster=CLUSTER, tasks=tasks)["tasks"]
        statuses = [t["lastStatus"] for t in described]
        if statuses != ["RUNNING"] * desired:
            raise SystemExit(f"expected {desired} RUNNING task(s), got {statuses}")
        details = {d["name"]: d["value"] for d in described[0]["attachments"][0]["details"]}
        step(f"{desired} task(s) RUNNING, one at {details.get('privateIPv4Address')}", started)
        if with_load_balancer:
            deadline = time.monotonic() + timeout
            while True:
                health = elb.describe_target_health(TargetGroupArn=tg_arn)
                states = [h["TargetHealth"]["State"] for h in health["TargetHealthDescriptions"]]
                if states == ["healthy"] * desired:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"targets not healthy in {timeout:g} s: {states}")
                time.sleep(1)
            step(f"{desired} targets healthy", started)
            answered = spread(f"http://{dns}:{port}/", 100, through, endpoint)
            step(f"100 requests through the listener: {dict(answered)}", started)
            if len(answered) != desired or min(answered.values()) < 25:
                raise SystemExit(f"requests not spread over {desired} tasks: {dict(answered)}")
    finally:
        with contextlib.suppress(ecs.exceptions.ServiceNotFoundException):
            ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
            ecs.get_waiter("services_inactive").wait(
                cluster=CLUSTER,
                services=[SERVICE],
                WaiterConfig={"Delay": 1, "MaxAttempts": attempts},
            )
        for made_arn in made:
            if ":loadbalancer/" in made_arn:
                elb.delete_load_balancer(LoadBalancerArn=made_arn)
            else:
                elb.delete_target_group(TargetGroupArn=made_arn)
        ecs.deregister_task_definition(taskDefinition=arn)
        ecs.delete_cluster(cluster=CLUSTER)
        step("service, load balancer, task definition and cluster deleted", started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint-url", default=os.environ.get("MINIECS_ENDPOINT", "http://127.0.0.1:4566")
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per wait")
    parser.add_argument("--no-load-balancer", action="store_true", help="one task, no LB")
    parser.add_argument(
        "--through",
        choices=["direct", "miniecs-load"],
        default="direct",
        help="how requests reach the listener: from here, or with `miniecs load` (DinD)",
    )
    args = parser.parse_args()
    run(args.endpoint_url, args.timeout, not args.no_load_balancer, args.through)
    print("smoke test passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
