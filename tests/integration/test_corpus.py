"""The conformance corpus (tests/corpus): real task definitions register and run as Fargate
runs them, through boto3 against a real server with real containers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Miniecs, docker_client, wait_for
from tests.corpus import CASES, Case

pytestmark = pytest.mark.integration


def _settled(ecs: Any, arn: str) -> dict[str, Any] | None:
    task = ecs.describe_tasks(cluster="corpus", tasks=[arn])["tasks"][0]
    return task if task["lastStatus"] in ("RUNNING", "STOPPED") else None


def _container_env(task_id: str, container: str) -> dict[str, str]:
    out = docker_client().containers.get(f"miniecs-{task_id}-{container}").exec_run("env")
    return dict(line.split("=", 1) for line in out.output.decode().splitlines() if "=" in line)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_task_definition(miniecs: Miniecs, case: Case) -> None:
    ecs, logs = miniecs.client(), miniecs.client("logs")
    sm, ssm = miniecs.client("secretsmanager"), miniecs.client("ssm")
    for name, value in case.secrets.items():
        sm.create_secret(Name=name, SecretString=value)
    for name, value in case.parameters.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    for group in case.groups:
        logs.create_log_group(logGroupName=group)
    ecs.create_cluster(clusterName="corpus")
    registered = ecs.register_task_definition(**json.loads(json.dumps(case.document)))
    td = registered["taskDefinition"]
    assert td["revision"] == 1
    if case.expect.startswith("REFUSED: "):
        # An EC2 definition (bridge mode) is not Fargate-compatible: RunTask refuses it, as ECS.
        with pytest.raises(ecs.exceptions.InvalidParameterException) as refused:
            ecs.run_task(cluster="corpus", taskDefinition=td["taskDefinitionArn"])
        assert case.expect.removeprefix("REFUSED: ") in str(refused.value)
        return
    arn = ecs.run_task(
        cluster="corpus",
        taskDefinition=td["taskDefinitionArn"],
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}}
        if td["networkMode"] == "awsvpc"
        else {},
    )["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    task = wait_for(lambda: _settled(ecs, arn), timeout=60)
    if case.expect != "RUNNING":
        task = wait_for(
            lambda: (t := _settled(ecs, arn)) and t["lastStatus"] == "STOPPED" and t, timeout=30
        )
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"].startswith(case.expect), task["stoppedReason"]
        return
    assert task["lastStatus"] == "RUNNING", task.get("stoppedReason")
    for group, stream in case.log_streams:
        name = stream.format(task=task_id)
        events = wait_for(
            lambda g=group, n=name: _events(logs, g, n),
            timeout=15,
        )
        assert events
    first = td["containerDefinitions"][0]["name"]
    env = _container_env(task_id, first) if case.environment else {}
    for key, value in case.environment.items():
        assert env.get(key) == value, key
    described = json.dumps(ecs.describe_tasks(cluster="corpus", tasks=[arn]), default=str)
    for value in [*case.secrets.values(), *case.parameters.values()]:
        assert value not in described
    _specific(case, task, logs, task_id)
    ecs.stop_task(cluster="corpus", task=arn)
    wait_for(lambda: (t := _settled(ecs, arn)) and t["lastStatus"] == "STOPPED", timeout=60)


def _events(logs: Any, group: str, stream: str) -> list[str]:
    try:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in page["events"]]


def _specific(case: Case, task: dict[str, Any], logs: Any, task_id: str) -> None:
    """What only some cases show."""
    if case.name == "aws-docs-fargate-webserver":
        import httpx

        ip = task["attachments"][0]["details"]
        address = next(d["value"] for d in ip if d["name"] == "privateIPv4Address")
        body = wait_for(lambda: _get(f"http://{address}/"), timeout=15)
        assert "Amazon ECS Sample App" in body
        assert httpx  # the module the helper uses
    if case.name == "terraform-template-ulimit-nofile":
        from miniecs.runtime.docker import parse_proc_limits

        limits = (
            docker_client().containers.get(f"miniecs-{task_id}-app").exec_run("cat /proc/1/limits")
        )
        got = parse_proc_limits(limits.output.decode())["nofile"]
        probe = docker_client().containers.run(
            "miniecs/base:bookworm", ["cat", "/proc/self/limits"], remove=True, network_mode="none"
        )
        host = parse_proc_limits(probe.decode())["nofile"]
        assert got == min(65536, host)
    if case.name == "fargate-task-storage-shared":
        assert _events(logs, "/ecs/bind-mounts", f"ecs/reader/{task_id}") == ["hello"]
    if case.name == "exercism-firelens-three-containers":
        lines = _events(logs, "/exercism/orchestrator", f"nginx/nginx-firelens-{task_id}")
        assert lines == ["nginx as 0"]


def _get(url: str) -> str | None:
    import httpx

    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None
