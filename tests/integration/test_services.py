"""ECS services on the real Docker engine, through boto3 and its waiters."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from tests.conftest import Miniecs, ServerProcess, boto_client, docker_client, wait_for
from tests.integration.test_tasks import WORKLOAD

pytestmark = pytest.mark.integration
FAST = {"Delay": 1, "MaxAttempts": 90}


def create(ecs: Any, desired: int, **extra: Any) -> None:
    ecs.create_cluster(clusterName="svc")
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="svc",
        serviceName="web",
        taskDefinition="web",
        desiredCount=desired,
        **extra,
    )


def describe(ecs: Any) -> dict[str, Any]:
    return dict(ecs.describe_services(cluster="svc", services=["web"])["services"][0])


def running_tasks(ecs: Any) -> list[dict[str, Any]]:
    arns = ecs.list_tasks(cluster="svc", serviceName="web")["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster="svc", tasks=arns)["tasks"]
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def test_killed_task_is_replaced(fast_miniecs: Miniecs) -> None:
    ecs = fast_miniecs.client()
    create(ecs, 3)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    tasks = running_tasks(ecs)
    assert len(tasks) == 3
    assert {t["group"] for t in tasks} == {"service:web"}
    assert {t["startedBy"] for t in tasks} == {describe(ecs)["deployments"][0]["id"]}
    victim = tasks[0]
    killed_at = time.monotonic()
    docker_client().containers.get(victim["containers"][0]["runtimeId"]).kill()

    def replaced() -> bool:
        current = running_tasks(ecs)
        ids = {t["taskArn"] for t in current}
        return len(current) == 3 and victim["taskArn"] not in ids

    wait_for(replaced, timeout=60, interval=0.05)
    print(f"docker kill -> replacement RUNNING in {time.monotonic() - killed_at:.2f} s")
    dead = ecs.describe_tasks(cluster="svc", tasks=[victim["taskArn"]])["tasks"][0]
    assert dead["lastStatus"] == "STOPPED"
    assert dead["stoppedReason"] == "Essential container in task exited"
    assert dead["containers"][0]["exitCode"] == 137
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    wait_for(
        lambda: (
            describe(ecs)["events"][0]["message"] == "(service web) has reached a steady state."
        ),
        timeout=30,  # the deployment completes 40 s (x10: 4 s) after its last task runs
    )
    messages = [e["message"] for e in describe(ecs)["events"]]
    assert any(m.startswith("(service web) has started 1 tasks: (task ") for m in messages)


def test_rolling_update_keeps_minimum_healthy(fast_miniecs: Miniecs) -> None:
    ecs = fast_miniecs.client()
    create(ecs, 3, deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200})
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    ecs.register_task_definition(**{**WORKLOAD, "cpu": "512", "memory": "1024"})
    lowest = [3]
    highest = [3]
    done = threading.Event()

    def watch() -> None:
        client = boto_client("ecs", fast_miniecs.endpoint)
        while not done.is_set():
            s = client.describe_services(cluster="svc", services=["web"])["services"][0]
            lowest[0] = min(lowest[0], s["runningCount"])
            highest[0] = max(highest[0], s["runningCount"] + s["pendingCount"])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ecs.update_service(cluster="svc", service="web", taskDefinition="web:2")
        assert len(describe(ecs)["deployments"]) == 2
        ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    finally:
        done.set()
        watcher.join()
    s = describe(ecs)
    assert s["deployments"][0]["rolloutState"] == "COMPLETED"
    assert s["deployments"][0]["taskDefinition"].endswith("web:2")
    assert lowest[0] >= 3, "dropped below minimumHealthyPercent"
    assert highest[0] <= 6, "exceeded maximumPercent"
    tasks = running_tasks(ecs)
    assert len(tasks) == 3 and all(t["taskDefinitionArn"].endswith("web:2") for t in tasks)
    for t in tasks:
        limits = docker_client().containers.get(t["containers"][0]["runtimeId"]).attrs
        assert limits["HostConfig"]["NanoCpus"] == 500_000_000
    assert any(m.endswith("deployment completed.") for m in (e["message"] for e in s["events"]))


def test_scale_to_zero_and_back_and_delete(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    create(ecs, 2)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    ecs.update_service(cluster="svc", service="web", desiredCount=0)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    s = describe(ecs)
    assert (s["status"], s["runningCount"], s["desiredCount"]) == ("ACTIVE", 0, 0)
    assert s["taskDefinition"].endswith("web:1")
    mine = {"label": f"miniecs.instance={miniecs.instance}"}
    wait_for(lambda: not docker_client().containers.list(sparse=True, all=True, filters=mine))
    ecs.update_service(cluster="svc", service="web", desiredCount=2)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    assert len(running_tasks(ecs)) == 2

    with pytest.raises(ClientError) as err:
        ecs.delete_service(cluster="svc", service="web")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        ecs.delete_cluster(cluster="svc")
    assert err.value.response["Error"]["Code"] == "ClusterContainsServicesException"
    ecs.delete_service(cluster="svc", service="web", force=True)
    ecs.get_waiter("services_inactive").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    assert ecs.list_services(cluster="svc")["serviceArns"] == []
    wait_for(lambda: not docker_client().containers.list(sparse=True, all=True, filters=mine))


def test_bad_service_input_changes_nothing(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    create(ecs, 1)
    cases = [
        (
            dict(
                networkConfiguration=NETWORK, cluster="nope", serviceName="x", taskDefinition="web"
            ),
            "ClusterNotFoundException",
        ),
        (
            dict(
                networkConfiguration=NETWORK, cluster="svc", serviceName="x", taskDefinition="ghost"
            ),
            "ClientException",
        ),
        (
            dict(
                networkConfiguration=NETWORK,
                cluster="svc",
                serviceName="x",
                taskDefinition="web",
                desiredCount=-1,
            ),
            "InvalidParameterException",
        ),
        (
            dict(
                networkConfiguration=NETWORK,
                cluster="svc",
                serviceName="x",
                taskDefinition="web",
                deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 50},
            ),
            "InvalidParameterException",
        ),
        (
            dict(
                networkConfiguration=NETWORK, cluster="svc", serviceName="web", taskDefinition="web"
            ),
            "InvalidParameterException",
        ),
    ]
    for request, code in cases:
        with pytest.raises(ClientError) as err:
            ecs.create_service(**request)
        assert err.value.response["Error"]["Code"] == code, request
    assert len(ecs.list_services(cluster="svc")["serviceArns"]) == 1
    with pytest.raises(ClientError) as err:
        ecs.update_service(cluster="svc", service="ghost", desiredCount=2)
    assert err.value.response["Error"]["Code"] == "ServiceNotFoundException"
    assert describe(ecs)["desiredCount"] == 1


def _instance_containers(instance: str) -> dict[str, str]:
    mine = {"label": f"miniecs.instance={instance}"}
    return {
        c.id: c.status for c in docker_client().containers.list(sparse=True, all=True, filters=mine)
    }


@pytest.mark.parametrize("moment", ["steady", "mid-scale-out", "mid-deployment"])
def test_sigkill_restart_ends_with_exact_desired_count(
    server_process: ServerProcess, moment: str
) -> None:
    server_process.extra = ("--clock-speed", "10")
    server_process.start()
    ecs = boto_client("ecs", server_process.endpoint)
    create(ecs, 3)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    if moment == "mid-scale-out":
        ecs.update_service(cluster="svc", service="web", desiredCount=6)
        time.sleep(0.3)
    elif moment == "mid-deployment":
        ecs.register_task_definition(**{**WORKLOAD, "cpu": "512", "memory": "1024"})
        ecs.update_service(cluster="svc", service="web", taskDefinition="web:2")
        time.sleep(1.0)
    before = _instance_containers(server_process.instance)
    time.sleep(1.1)
    since = int(time.time())
    server_process.kill()
    server_process.start()
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    s = describe(ecs)
    expected = 6 if moment == "mid-scale-out" else 3
    assert s["runningCount"] == expected
    after = _instance_containers(server_process.instance)
    assert len(after) == expected, "orphans or duplicates left on the engine"
    assert all(status == "running" for status in after.values())
    if moment == "steady":
        events = docker_client().api.events(
            since=since,
            until=int(time.time()) + 1,
            filters={"label": f"miniecs.instance={server_process.instance}", "type": "container"},
            decode=True,
        )
        actions = [e["Action"] for e in events]
        events.close()
        creates, deletes = actions.count("create"), actions.count("destroy")
        print(f"across the restart: {creates} creates, {deletes} deletes")
        assert (creates, deletes) == (0, 0)
        assert after == before


def test_unhealthy_task_is_stopped_and_replaced(fast_miniecs: Miniecs) -> None:
    ecs = fast_miniecs.client()
    ecs.create_cluster(clusterName="svc")
    probe = (
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
    )
    ecs.register_task_definition(
        **{
            **WORKLOAD,
            "containerDefinitions": [
                {
                    **WORKLOAD["containerDefinitions"][0],  # type: ignore[index]
                    "environment": [{"name": "WORKLOAD_FAIL_HEALTH_FILE", "value": "/tmp/sick"}],
                    "healthCheck": {
                        "command": ["CMD", "python3", "-c", probe],
                        "interval": 5,
                        "retries": 2,
                    },
                }
            ],
        }
    )
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="svc",
        serviceName="web",
        taskDefinition="web",
        desiredCount=1,
    )
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)
    (task,) = running_tasks(ecs)
    wait_for(lambda: running_tasks(ecs)[0]["healthStatus"] == "HEALTHY", timeout=30)
    container = docker_client().containers.get(task["containers"][0]["runtimeId"])
    container.exec_run(["touch", "/tmp/sick"])

    def replaced() -> bool:
        current = running_tasks(ecs)
        return len(current) == 1 and current[0]["taskArn"] != task["taskArn"]

    wait_for(replaced, timeout=60, interval=0.2)
    old = ecs.describe_tasks(cluster="svc", tasks=[task["taskArn"]])["tasks"][0]
    assert old["stoppedReason"] == "Task failed container health checks"


def test_a_second_server_on_the_same_state_dir_refuses_to_start(
    server_process: ServerProcess,
) -> None:
    import subprocess
    import sys

    server_process.start()
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "miniecs",
            "server",
            "--port",
            "0",
            "--state-dir",
            str(server_process.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "another miniecs is running on the state dir" in second.stderr
