"""ECS checks that botocore's model cannot express, worded as ECS words them (issue 14, item 4),
and what a refused request leaves behind (nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from miniecs.aws.ecs_services import network_subnets
from miniecs.errors import AwsError
from tests.component.conftest import Harness
from tests.component.test_tasks import FAMILY, NETWORK

AWSVPC_MESSAGE = "Network Configuration must be provided when networkMode 'awsvpc' is specified."


def setup(h: Harness) -> None:
    h.ecs.create_cluster({"clusterName": "c1"})
    h.ecs.register_task_definition(FAMILY)


def refused(call: Any, req: dict[str, Any]) -> AwsError:
    with pytest.raises(AwsError) as err:
        call(req)
    return err.value


async def test_awsvpc_needs_network_configuration(harness: Harness) -> None:
    setup(harness)
    run = {"cluster": "c1", "taskDefinition": "web"}
    err = refused(harness.ecs.run_task, run)
    assert (err.code, err.message) == ("InvalidParameterException", AWSVPC_MESSAGE)
    svc = {"cluster": "c1", "serviceName": "s", "taskDefinition": "web", "desiredCount": 1}
    err = refused(harness.ecs.create_service, svc)
    assert (err.code, err.message) == ("InvalidParameterException", AWSVPC_MESSAGE)
    empty = {"awsvpcConfiguration": {"subnets": []}}
    err = refused(harness.ecs.run_task, {**run, "networkConfiguration": empty})
    assert err.message == "subnets can not be empty."
    assert harness.store.list_tasks() == []
    assert harness.store.list_services() == []


async def test_bridge_definition_does_not_run_on_fargate(harness: Harness) -> None:
    """A bridge-mode definition registers (compatibilities EXTERNAL, EC2, as in the aws CLI's
    register-task-definition example) and RunTask on Fargate refuses it, naming networkMode."""
    harness.ecs.create_cluster({"clusterName": "c1"})
    out = harness.ecs.register_task_definition(
        {
            "family": "bridge",
            "memory": "512",
            "containerDefinitions": [{"name": "app", "image": "miniecs/workload:latest"}],
        }
    )
    assert out["taskDefinition"]["compatibilities"] == ["EXTERNAL", "EC2"]
    for network in (None, NETWORK):
        req = {"cluster": "c1", "taskDefinition": "bridge"}
        err = refused(harness.ecs.run_task, {**req, "networkConfiguration": network})
        assert err.message.startswith("Task definition does not support launch_type FARGATE.")
        assert "networkMode 'bridge'" in err.message
    assert harness.store.list_tasks() == []
    td = harness.ecs.task_definition("bridge")
    with pytest.raises(AwsError, match="not valid for the given networkMode"):
        network_subnets(NETWORK, td)


async def test_attachment_subnet_is_the_requested_one(harness: Harness) -> None:
    setup(harness)
    subnets = ["subnet-aaaa1111", "subnet-bbbb2222"]
    network = {"awsvpcConfiguration": {"subnets": subnets}}
    out = harness.ecs.run_task(
        {"cluster": "c1", "taskDefinition": "web", "count": 4, "networkConfiguration": network}
    )
    for task in out["tasks"]:
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        assert details["subnetId"] in subnets
    harness.ecs.create_service(
        {
            "cluster": "c1",
            "serviceName": "s",
            "taskDefinition": "web",
            "desiredCount": 1,
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-cccc3333"]}},
        }
    )
    await harness.settle()
    (service_task,) = [t for t in harness.store.list_tasks() if t.service == "s"]
    described = harness.ecs.describe_tasks({"cluster": "c1", "tasks": [service_task.task_id]})
    details = described["tasks"][0]["attachments"][0]["details"]
    assert {"name": "subnetId", "value": "subnet-cccc3333"} in details


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"launchType": "EC2"}, "No Container Instances were found in your cluster."),
        (
            {
                "launchType": "FARGATE",
                "capacityProviderStrategy": [{"capacityProvider": "FARGATE"}],
            },
            "Specifying both a launchType and capacityProviderStrategy is not supported.",
        ),
    ],
)
async def test_launch_type_outside_fargate_refused(
    harness: Harness, extra: dict[str, Any], message: str
) -> None:
    setup(harness)
    base = {"cluster": "c1", "taskDefinition": "web", "networkConfiguration": NETWORK}
    assert refused(harness.ecs.run_task, {**base, **extra}).message == message
    svc = {**base, "serviceName": "s", "desiredCount": 1, **extra}
    assert refused(harness.ecs.create_service, svc).message == message
    assert harness.store.list_tasks() == [] and harness.store.list_services() == []


async def test_describe_tasks_needs_tasks(harness: Harness) -> None:
    setup(harness)
    err = refused(harness.ecs.describe_tasks, {"cluster": "c1", "tasks": []})
    assert (err.code, err.message) == ("InvalidParameterException", "Tasks cannot be empty.")


async def test_tags_rules(harness: Harness) -> None:
    setup(harness)
    arn = harness.ecs.create_cluster({"clusterName": "c2"})["cluster"]["clusterArn"]
    for key in ("aws:owner", "AWS:owner"):
        err = refused(harness.ecs.tag_resource, {"resourceArn": arn, "tags": [{"key": key}]})
        assert "reserved" in err.message
        with pytest.raises(AwsError):
            harness.ecs.create_cluster({"clusterName": "c3", "tags": [{"key": key}]})
    assert harness.ecs.cluster("c2") and harness.store.get_cluster("c3") is None
    first = [{"key": f"k{i}", "value": "v"} for i in range(30)]
    harness.ecs.tag_resource({"resourceArn": arn, "tags": first})
    more = [{"key": f"m{i}", "value": "v"} for i in range(21)]
    err = refused(harness.ecs.tag_resource, {"resourceArn": arn, "tags": more})
    assert "50" in err.message
    assert len(harness.ecs.list_tags_for_resource({"resourceArn": arn})["tags"]) == 30


@pytest.mark.parametrize("name", ["clüster", "集群", "a b", "x" * 256])
async def test_cluster_and_service_names_are_ascii(harness: Harness, name: str) -> None:
    setup(harness)
    assert "Cluster name" in refused(harness.ecs.create_cluster, {"clusterName": name}).message
    svc = {"cluster": "c1", "serviceName": name, "taskDefinition": "web"}
    assert "Service name" in refused(harness.ecs.create_service, {**svc, "desiredCount": 0}).message
    assert [c.name for c in harness.store.list_clusters()] == ["c1"]


async def test_system_controls_are_applied_not_ignored(harness: Harness) -> None:
    """Fargate's namespaced systemControls reach the containers: network ones the task's
    network namespace (the pause container of a multi-container task), IPC ones their own."""
    harness.ecs.create_cluster({"clusterName": "c1"})
    keepalive = {"namespace": "net.ipv4.tcp_keepalive_time", "value": "60"}
    shm = {"namespace": "kernel.shmmax", "value": "1000000"}
    for family, containers in (
        ("one", [{"name": "app", "image": "img", "systemControls": [keepalive, shm]}]),
        (
            "two",
            [
                {"name": "app", "image": "img", "systemControls": [shm]},
                {"name": "side", "image": "img", "systemControls": [keepalive]},
            ],
        ),
    ):
        harness.ecs.register_task_definition(
            {**FAMILY, "family": family, "containerDefinitions": containers}
        )
        out = harness.ecs.run_task(
            {"cluster": "c1", "taskDefinition": family, "networkConfiguration": NETWORK}
        )
        task_id = out["tasks"][0]["taskArn"].rsplit("/", 1)[-1]
        await harness.settle()
        specs = {
            name.rsplit("-", 1)[-1]: spec
            for name, spec in harness.runtime.specs.items()
            if task_id in name
        }
        if family == "one":
            assert specs["app"].sysctls == {
                "kernel.shmmax": "1000000",
                keepalive["namespace"]: "60",
            }
        else:
            assert specs["app"].sysctls == {"kernel.shmmax": "1000000"}
            assert specs["side"].sysctls == {}
            (pause,) = [s for n, s in specs.items() if n not in ("app", "side")]
            assert pause.sysctls == {keepalive["namespace"]: "60"}
