"""An ECS service behind a real load balancer, through boto3 only (issue #6's "done means")."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs, docker_client, wait_for
from tests.integration.test_tasks import WORKLOAD

pytestmark = pytest.mark.integration
FAIL_FILE = "/tmp/fail-health"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(m: Miniecs, desired: int) -> tuple[Any, Any, str, str, int]:
    ecs, elb = m.client("ecs"), m.client("elbv2")
    ecs.create_cluster(clusterName="lb")
    container = dict(WORKLOAD["containerDefinitions"][0])
    container["environment"] = [{"name": "WORKLOAD_FAIL_HEALTH_FILE", "value": FAIL_FILE}]
    ecs.register_task_definition(**{**WORKLOAD, "containerDefinitions": [container]})
    lb = elb.create_load_balancer(Name="web", Type="application")["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name="web",
        Protocol="HTTP",
        Port=8080,
        TargetType="ip",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    elb.modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
    )
    port = free_port()
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="lb",
        serviceName="web",
        taskDefinition="web",
        desiredCount=desired,
        healthCheckGracePeriodSeconds=10,
        loadBalancers=[
            {"targetGroupArn": tg["TargetGroupArn"], "containerName": "app", "containerPort": 8080}
        ],
    )
    return ecs, elb, tg["TargetGroupArn"], lb["DNSName"], port


def healthy_targets(elb: Any, tg: str) -> list[str]:
    health = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return [h["Target"]["Id"] for h in health if h["TargetHealth"]["State"] == "healthy"]


def get(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, dict[str, Any]]:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, (json.loads(body) if resp.status == 200 and path == "/" else {})


def test_requests_spread_scale_in_loses_nothing_and_failing_task_is_replaced(
    fast_miniecs: Miniecs,
) -> None:
    ecs, elb, tg, dns, port = setup(fast_miniecs, 3)
    wait_for(lambda: len(healthy_targets(elb, tg)) == 3, timeout=90)

    # 1,000 requests through the listener reach all three tasks, each about a third.
    conn = http.client.HTTPConnection(dns, port, timeout=10)
    by_task: Counter[str] = Counter()
    for _ in range(1000):
        status, body = get(conn)
        assert status == 200
        by_task[body["taskId"]] += 1
    conn.close()
    print("requests per task:", dict(by_task))
    assert len(by_task) == 3
    assert all(abs(n - 1000 / 3) <= 0.15 * 1000 / 3 for n in by_task.values()), by_task

    # Scale in from 3 to 1 under continuous load: no request lost.
    failures: list[str] = []
    sent = Counter[str]()
    stop = threading.Event()

    def client() -> None:
        c = http.client.HTTPConnection(dns, port, timeout=30)
        while not stop.is_set():
            try:
                status, _ = get(c)
                sent[str(status)] += 1
                if status != 200:
                    failures.append(f"status {status}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                c.close()
                c = http.client.HTTPConnection(dns, port, timeout=30)
        c.close()

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        ecs.update_service(cluster="lb", service="web", desiredCount=1)
        wait_for(
            lambda: (
                len(elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]) == 1
            ),
            timeout=90,
        )
        time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    print("during scale-in:", dict(sent))
    assert sent["200"] > 100
    assert failures == []
    events = [
        e["message"]
        for e in ecs.describe_services(cluster="lb", services=["web"])["services"][0]["events"]
    ]
    assert "(service web) has begun draining connections on 2 tasks." in events
    assert any(m.startswith("(service web) deregistered") for m in events)

    # A task whose /health fails is taken out of the group and replaced.
    arns = ecs.list_tasks(cluster="lb", serviceName="web", desiredStatus="RUNNING")["taskArns"]
    assert len(arns) == 1
    victim = ecs.describe_tasks(cluster="lb", tasks=arns)["tasks"][0]
    docker_client().containers.get(victim["containers"][0]["runtimeId"]).exec_run(
        ["touch", FAIL_FILE]
    )

    def replaced() -> bool:
        task = ecs.describe_tasks(cluster="lb", tasks=arns)["tasks"][0]
        ips = healthy_targets(elb, tg)
        return task["lastStatus"] == "STOPPED" and len(ips) == 1

    wait_for(replaced, timeout=120)
    stopped = ecs.describe_tasks(cluster="lb", tasks=arns)["tasks"][0]
    assert stopped["stoppedReason"] == f"Task failed ELB health checks in (target-group {tg})"
