"""Tasks on the real Docker engine, driven through boto3 exactly as a user would."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from miniecs.demo import TASK_DEFINITION
from tests.conftest import Miniecs, ServerProcess, boto_client, docker_client, wait_for

pytestmark = pytest.mark.integration

WORKLOAD = TASK_DEFINITION


def task_of(ecs: Any, cluster: str, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0])


def ip_of(task: dict[str, Any]) -> str:
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    return str(details["privateIPv4Address"])


def http_get(url: str, timeout: float = 5) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return dict(json.loads(response.read()))


def test_run_task_is_a_real_limited_container_reachable_at_its_ip(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**WORKLOAD)
    started = time.monotonic()
    arn = ecs.run_task(
        networkConfiguration=NETWORK, cluster="demo", taskDefinition="web", launchType="FARGATE"
    )["tasks"][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(
        cluster="demo", tasks=[arn], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    print(f"RunTask -> RUNNING in {time.monotonic() - started:.2f} s")
    task = task_of(ecs, "demo", arn)
    assert task["lastStatus"] == "RUNNING"
    assert task["containers"][0]["lastStatus"] == "RUNNING"
    for stamp in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "connectivityAt"):
        assert stamp in task
    ip = ip_of(task)
    body = wait_for(lambda: _try_get(f"http://{ip}:8080/work?ms=5"))
    assert body["task"] == arn
    assert body["requests"] >= 1

    container = docker_client().containers.get(task["containers"][0]["runtimeId"])
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 250_000_000
    assert host["Memory"] == 512 * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert not host["Privileged"]
    assert not host.get("PortBindings")
    assert all(v is None for v in (container.attrs["NetworkSettings"]["Ports"] or {}).values())
    assert container.labels["miniecs.cluster"] == "demo"
    assert container.labels["miniecs.task"] == arn.rsplit("/", 1)[-1]

    ecs.stop_task(cluster="demo", task=arn)
    ecs.get_waiter("tasks_stopped").wait(
        cluster="demo", tasks=[arn], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    task = task_of(ecs, "demo", arn)
    assert task["stopCode"] == "UserInitiated"
    assert task["stoppedReason"] == "Task stopped by user"
    assert task["containers"][0]["exitCode"] == 0
    wait_for(
        lambda: (
            not docker_client().containers.list(sparse=True, all=True, filters={"id": container.id})
        )
    )
    assert ecs.list_tasks(cluster="demo")["taskArns"] == []
    assert ecs.list_tasks(cluster="demo", desiredStatus="STOPPED")["taskArns"] == [arn]


def _try_get(url: str) -> dict[str, Any] | None:
    try:
        return http_get(url, timeout=2)
    except OSError:
        return None


def test_killed_essential_container_stops_the_task(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="k")
    ecs.register_task_definition(**WORKLOAD)
    arn = ecs.run_task(networkConfiguration=NETWORK, cluster="k", taskDefinition="web")["tasks"][0][
        "taskArn"
    ]
    ecs.get_waiter("tasks_running").wait(cluster="k", tasks=[arn], WaiterConfig={"Delay": 1})
    runtime_id = task_of(ecs, "k", arn)["containers"][0]["runtimeId"]
    docker_client().containers.get(runtime_id).kill()
    ecs.get_waiter("tasks_stopped").wait(cluster="k", tasks=[arn], WaiterConfig={"Delay": 1})
    task = task_of(ecs, "k", arn)
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["containers"][0]["exitCode"] == 137


def test_out_of_memory_is_reported_as_ecs_reports_it(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="oom")
    ecs.register_task_definition(
        family="hog",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "hog",
                "image": "miniecs/base:bookworm",
                "memory": 64,
                "command": ["python3", "-c", "x = bytearray(200 * 1024 * 1024)"],
            }
        ],
    )
    arn = ecs.run_task(networkConfiguration=NETWORK, cluster="oom", taskDefinition="hog")["tasks"][
        0
    ]["taskArn"]
    ecs.get_waiter("tasks_stopped").wait(cluster="oom", tasks=[arn], WaiterConfig={"Delay": 1})
    task = task_of(ecs, "oom", arn)
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["containers"][0]["exitCode"] == 137
    assert task["containers"][0]["reason"].startswith("OutOfMemoryError")


def test_missing_image_fails_fast_with_cannot_pull(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="img")
    ecs.register_task_definition(
        **{
            **WORKLOAD,
            "family": "nope",
            "containerDefinitions": [{"name": "app", "image": "miniecs/does-not-exist:1"}],
        }
    )
    arn = ecs.run_task(networkConfiguration=NETWORK, cluster="img", taskDefinition="nope")["tasks"][
        0
    ]["taskArn"]
    ecs.get_waiter("tasks_stopped").wait(
        cluster="img", tasks=[arn], WaiterConfig={"Delay": 1, "MaxAttempts": 90}
    )
    task = task_of(ecs, "img", arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("CannotPullContainerError")


def test_containers_of_a_task_share_one_ip_and_localhost(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="side")
    probe = (
        "import time, urllib.request\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=1); break\n"
        "    except OSError: time.sleep(0.1)\n"
        "else: raise SystemExit(1)\n"
    )
    ecs.register_task_definition(
        family="pair",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {"name": "app", "image": "miniecs/workload:latest", "memory": 256},
            {
                "name": "probe",
                "image": "miniecs/base:bookworm",
                "essential": False,
                "command": ["python3", "-c", probe],
                "dependsOn": [{"containerName": "app", "condition": "START"}],
            },
        ],
    )
    arn = ecs.run_task(networkConfiguration=NETWORK, cluster="side", taskDefinition="pair")[
        "tasks"
    ][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(cluster="side", tasks=[arn], WaiterConfig={"Delay": 1})

    def probe_done() -> dict[str, Any] | None:
        task = task_of(ecs, "side", arn)
        probe_c = next(c for c in task["containers"] if c["name"] == "probe")
        return task if probe_c.get("exitCode") is not None else None

    task = wait_for(probe_done, timeout=30)
    probe_c = next(c for c in task["containers"] if c["name"] == "probe")
    assert probe_c["exitCode"] == 0
    assert task["lastStatus"] == "RUNNING"
    body = wait_for(lambda: _try_get(f"http://{ip_of(task)}:8080/"))
    assert body["container"] == "app"
    app = docker_client().containers.get(
        next(c for c in task["containers"] if c["name"] == "app")["runtimeId"]
    )
    assert app.attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert app.attrs["HostConfig"]["NetworkMode"].startswith("container:")
    ecs.stop_task(cluster="side", task=arn)
    ecs.get_waiter("tasks_stopped").wait(cluster="side", tasks=[arn], WaiterConfig={"Delay": 1})


def test_bad_input_gets_aws_errors_and_changes_nothing(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    with pytest.raises(ClientError) as err:
        ecs.run_task(networkConfiguration=NETWORK, cluster="nowhere", taskDefinition="web")
    assert err.value.response["Error"]["Code"] == "ClusterNotFoundException"
    ecs.create_cluster(clusterName="bad")
    with pytest.raises(ClientError) as err:
        ecs.register_task_definition(**{**WORKLOAD, "memory": "8192"})
    assert err.value.response["Error"]["Code"] == "ClientException"
    assert "No Fargate configuration exists" in err.value.response["Error"]["Message"]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []
    with pytest.raises(ClientError) as err:
        ecs.run_task(networkConfiguration=NETWORK, cluster="bad", taskDefinition="web")
    assert err.value.response["Error"]["Code"] == "ClientException"
    with pytest.raises(ClientError) as err:
        ecs.describe_task_definition(taskDefinition="web:7")
    assert err.value.response["Error"]["Code"] == "ClientException"
    with pytest.raises(ClientError) as err:
        ecs.stop_task(cluster="bad", task="0123456789abcdef0123456789abcdef")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        ecs.update_cluster_settings(
            cluster="bad", settings=[{"name": "containerInsights", "value": "loud"}]
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert ecs.list_tasks(cluster="bad")["taskArns"] == []

    from tests import sigv4

    raw = sigv4.post(
        miniecs.endpoint,
        content=b"{oops",
        headers={
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert raw.status_code == 400 and raw.json()["__type"] == "SerializationException"


def test_control_plane_api_round_trip(miniecs: Miniecs) -> None:
    """Every foundation operation, with responses checked by botocore's validator."""
    ecs = miniecs.client()
    cluster = ecs.create_cluster(
        clusterName="api",
        tags=[{"key": "team", "value": "a"}],
        settings=[{"name": "containerInsights", "value": "enabled"}],
    )["cluster"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    ecs.update_cluster_settings(
        cluster="api", settings=[{"name": "containerInsights", "value": "enhanced"}]
    )
    described = ecs.describe_clusters(clusters=["api", "missing"], include=["TAGS"])
    assert described["clusters"][0]["tags"] == [{"key": "team", "value": "a"}]
    assert described["clusters"][0]["settings"][0]["value"] == "enhanced"
    assert described["failures"][0]["reason"] == "MISSING"
    for i in range(3):
        ecs.create_cluster(clusterName=f"extra{i}")
    pages = list(ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2
    assert sum(len(p["clusterArns"]) for p in pages) == 4

    for _ in range(3):
        ecs.register_task_definition(**WORKLOAD, tags=[{"key": "app", "value": "web"}])
    ecs.register_task_definition(**{**WORKLOAD, "family": "other"})
    td = ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])
    assert td["taskDefinition"]["revision"] == 3
    assert td["tags"] == [{"key": "app", "value": "web"}]
    assert ecs.list_task_definitions(familyPrefix="web", sort="DESC")["taskDefinitionArns"][
        0
    ].endswith("web:3")
    ecs.deregister_task_definition(taskDefinition="web:1")
    assert len(ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]) == 2
    assert len(ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"]) == 1
    assert ecs.list_task_definition_families()["families"] == ["other", "web"]

    arn = ecs.run_task(
        networkConfiguration=NETWORK, cluster="api", taskDefinition="web:2", count=2, startedBy="me"
    )["tasks"][0]["taskArn"]
    assert len(ecs.list_tasks(cluster="api", startedBy="me")["taskArns"]) == 2
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k", "value": "v"}]
    ecs.untag_resource(resourceArn=arn, tagKeys=["k"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    with pytest.raises(ClientError) as err:
        ecs.delete_cluster(cluster="api")
    assert err.value.response["Error"]["Code"] == "ClusterContainsTasksException"
    for t in ecs.list_tasks(cluster="api")["taskArns"]:
        ecs.stop_task(cluster="api", task=t, reason="done here")
    all_tasks = ecs.list_tasks(cluster="api", desiredStatus="STOPPED")["taskArns"]
    ecs.get_waiter("tasks_stopped").wait(cluster="api", tasks=all_tasks, WaiterConfig={"Delay": 1})
    assert task_of(ecs, "api", arn)["stoppedReason"] == "done here"
    assert ecs.delete_cluster(cluster="api")["cluster"]["status"] == "INACTIVE"
    with pytest.raises(ClientError):
        ecs.list_tasks(cluster="api")
    from tests.conftest import VALIDATED

    ops = {v for v in VALIDATED if v.startswith("ecs.")}
    print(f"{len(ops)} ECS operations validated against botocore's model: {sorted(ops)}")
    assert len(ops) >= 16


def test_sigkill_and_restart_adopts_tasks_without_creating_or_deleting(
    server_process: ServerProcess,
) -> None:
    server_process.start()
    ecs = boto_client("ecs", server_process.endpoint)
    ecs.create_cluster(clusterName="r")
    ecs.register_task_definition(**WORKLOAD)
    arns = [
        t["taskArn"]
        for t in ecs.run_task(
            networkConfiguration=NETWORK, cluster="r", taskDefinition="web", count=3
        )["tasks"]
    ]
    ecs.get_waiter("tasks_running").wait(cluster="r", tasks=arns, WaiterConfig={"Delay": 1})
    client = docker_client()
    mine = {"label": f"miniecs.instance={server_process.instance}"}
    before = {c.id for c in client.containers.list(sparse=True, all=True, filters=mine)}
    assert len(before) == 3
    time.sleep(1.1)  # engine events have one-second resolution
    since = int(time.time())
    server_process.kill()
    server_process.start()
    time.sleep(2)
    tasks = ecs.describe_tasks(cluster="r", tasks=arns)["tasks"]
    assert all(t["lastStatus"] == "RUNNING" for t in tasks)
    after = {c.id for c in client.containers.list(sparse=True, all=True, filters=mine)}
    assert after == before
    events = client.api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"label": mine["label"], "type": "container"},
        decode=True,
    )
    actions = [e["Action"] for e in events]
    events.close()
    assert "create" not in actions and "destroy" not in actions
    assert server_process.terminate() == 0


def test_aws_cli_speaks_to_miniecs(miniecs: Miniecs) -> None:
    import subprocess
    import sys

    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
    }
    base = [sys.executable, "-m", "awscli", "ecs", "--endpoint-url", miniecs.endpoint]
    out = subprocess.run(
        [*base, "create-cluster", "--cluster-name", "cli"], capture_output=True, env=env, check=True
    )
    assert json.loads(out.stdout)["cluster"]["clusterName"] == "cli"
    out = subprocess.run([*base, "list-clusters"], capture_output=True, env=env, check=True)
    assert json.loads(out.stdout)["clusterArns"][0].endswith(":cluster/cli")
    bad = subprocess.run(
        [*base, "describe-task-definition", "--task-definition", "nope"],
        capture_output=True,
        env=env,
    )
    assert bad.returncode != 0 and b"ClientException" in bad.stderr


def test_system_controls_reach_the_kernel(miniecs: Miniecs) -> None:
    """Fargate takes namespaced systemControls; miniecs applies them (never stores and ignores
    them): the task's network namespace and the container's IPC namespace show the values."""
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="sys")
    ecs.register_task_definition(
        **{
            **WORKLOAD,
            "family": "tuned",
            "containerDefinitions": [
                {
                    **WORKLOAD["containerDefinitions"][0],
                    "systemControls": [
                        {"namespace": "net.ipv4.tcp_keepalive_time", "value": "61"},
                        {"namespace": "kernel.shmmni", "value": "2048"},
                    ],
                }
            ],
        }
    )
    arn = ecs.run_task(networkConfiguration=NETWORK, cluster="sys", taskDefinition="tuned")[
        "tasks"
    ][0]["taskArn"]
    ecs.get_waiter("tasks_running").wait(cluster="sys", tasks=[arn], WaiterConfig={"Delay": 1})
    task = task_of(ecs, "sys", arn)
    container = docker_client().containers.get(task["containers"][0]["runtimeId"])
    read = container.exec_run(
        ["cat", "/proc/sys/net/ipv4/tcp_keepalive_time", "/proc/sys/kernel/shmmni"]
    )
    assert read.output.decode().split() == ["61", "2048"]
    ecs.stop_task(cluster="sys", task=arn)
    ecs.get_waiter("tasks_stopped").wait(cluster="sys", tasks=[arn], WaiterConfig={"Delay": 1})
