"""RegisterTaskDefinition validation and normalisation, as ECS does it."""

from __future__ import annotations

from typing import Any

import pytest

from miniecs.config import TaskSettings
from miniecs.errors import ClientException
from miniecs.taskdef import normalise, parse_cpu, parse_memory, start_order


def fargate(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "family": "web",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "app", "image": "img"}],
    }
    doc.update(changes)
    return doc


def reg(doc: dict[str, Any], settings: TaskSettings | None = None) -> dict[str, Any]:
    return normalise(doc, 1, "us-east-1", 1.0, settings or TaskSettings())


def test_defaults_are_filled_as_ecs_echoes_them() -> None:
    out = reg(
        fargate(
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "img",
                    "portMappings": [{"containerPort": 8080}],
                    "healthCheck": {"command": ["CMD-SHELL", "true"]},
                }
            ]
        )
    )
    c = out["containerDefinitions"][0]
    assert c["essential"] is True
    assert c["cpu"] == 0
    assert c["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert c["healthCheck"] == {
        "command": ["CMD-SHELL", "true"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
    }
    assert out["taskDefinitionArn"] == "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1"
    assert out["compatibilities"] == ["EC2", "FARGATE"]
    assert out["cpu"] == "256" and out["memory"] == "512"


@pytest.mark.parametrize(
    ("cpu", "memory", "ok"),
    [
        ("256", "512", True),
        ("256", "1536", False),
        ("256", "2048", True),
        ("512", "4096", True),
        ("512", "512", False),
        ("1024", "2048", True),
        ("1 vCPU", "2 GB", True),
        ("4096", "30720", True),
        ("4096", "31744", False),
        ("8192", "20480", True),
        ("8192", "17408", False),
        ("300", "1024", False),
    ],
)
def test_fargate_size_table(cpu: str, memory: str, ok: bool) -> None:
    if ok:
        reg(fargate(cpu=cpu, memory=memory))
    else:
        with pytest.raises(ClientException, match="No Fargate configuration exists"):
            reg(fargate(cpu=cpu, memory=memory))


def test_units_are_parsed() -> None:
    assert parse_cpu("0.25 vCPU") == 256
    assert parse_cpu(2048) == 2048
    assert parse_memory("0.5GB") == 512
    with pytest.raises(ClientException, match="Invalid 'cpu' setting"):
        parse_cpu("lots")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cpu": None}, "Fargate requires that 'cpu' be defined"),
        ({"memory": None}, "Fargate requires that 'memory' be defined"),
        ({"networkMode": "bridge"}, "Fargate only supports network mode 'awsvpc'"),
        ({"family": "bad name!"}, "Family contains invalid characters"),
        ({"containerDefinitions": []}, "Container list cannot be empty"),
        (
            {"containerDefinitions": [{"name": "a", "image": "i", "essential": False}]},
            "at least one essential container",
        ),
        (
            {
                "containerDefinitions": [
                    {
                        "name": "a",
                        "image": "i",
                        "portMappings": [{"containerPort": 80, "hostPort": 81}],
                    }
                ]
            },
            "host ports and container ports in port mappings must match",
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i", "memory": 600}]},
            "sum of container 'memory'",
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i", "cpu": 512}]},
            "sum of container 'cpu'",
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i", "memory": 4}]},
            "at least 6 MiB",
        ),
        (
            {
                "containerDefinitions": [
                    {"name": "a", "image": "i", "memory": 100, "memoryReservation": 200}
                ]
            },
            "'memoryReservation' must be less than or equal to 'memory'",
        ),
        (
            {
                "containerDefinitions": [
                    {
                        "name": "a",
                        "image": "i",
                        "healthCheck": {"command": ["CMD", "x"], "interval": 2},
                    }
                ]
            },
            "'healthCheck.interval' must be between 5 and 300",
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i"}, {"name": "a", "image": "j"}]},
            "must be unique",
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i", "stopTimeout": 121}]},
            "'stopTimeout' must be between 2 and 120",
        ),
    ],
)
def test_invalid_definitions_are_refused(changes: dict[str, Any], message: str) -> None:
    doc = fargate()
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    with pytest.raises(ClientException, match=message):
        reg(doc)


@pytest.mark.parametrize(
    ("container", "field", "flag"),
    [
        ({"privileged": True}, "privileged", "allow_privileged"),
        (
            {"linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}},
            "capabilities.add",
            "allow_privileged",
        ),
        (
            {"linuxParameters": {"devices": [{"hostPath": "/dev/kvm"}]}},
            "devices",
            "allow_privileged",
        ),
    ],
)
def test_fargate_refused_fields_name_the_field(
    container: dict[str, Any], field: str, flag: str
) -> None:
    doc = fargate(containerDefinitions=[{"name": "a", "image": "i", **container}])
    with pytest.raises(ClientException, match=field):
        reg(doc)
    reg(doc, TaskSettings(**{flag: True}))


def test_host_network_and_host_mounts_are_refused_by_default() -> None:
    doc = {
        "family": "h",
        "networkMode": "host",
        "containerDefinitions": [{"name": "a", "image": "i", "memory": 64}],
    }
    with pytest.raises(ClientException, match="networkMode 'host'"):
        reg(doc)
    reg(doc, TaskSettings(allow_host_network=True))
    doc = fargate(volumes=[{"name": "v", "host": {"sourcePath": "/etc"}}])
    with pytest.raises(ClientException, match=r"host\.sourcePath"):
        reg(doc)
    reg(doc, TaskSettings(allow_host_mounts=True))


def test_depends_on_rules() -> None:
    containers = [
        {"name": "init", "image": "i", "essential": False},
        {
            "name": "app",
            "image": "i",
            "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
        },
    ]
    reg(fargate(containerDefinitions=containers))
    containers[0]["essential"] = True
    with pytest.raises(ClientException, match="cannot be used on essential container"):
        reg(fargate(containerDefinitions=containers))
    with pytest.raises(ClientException, match="needs a health check"):
        reg(
            fargate(
                containerDefinitions=[
                    {"name": "db", "image": "i"},
                    {
                        "name": "app",
                        "image": "i",
                        "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}],
                    },
                ]
            )
        )
    with pytest.raises(ClientException, match="Cyclic"):
        start_order(
            [
                {"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
                {"name": "b", "dependsOn": [{"containerName": "a", "condition": "START"}]},
            ]
        )


def test_ec2_style_definition_needs_container_memory() -> None:
    doc = {"family": "e", "containerDefinitions": [{"name": "a", "image": "i"}]}
    with pytest.raises(ClientException, match="At least one of 'memory' or 'memoryReservation'"):
        reg(doc)
    out = reg({**doc, "containerDefinitions": [{"name": "a", "image": "i", "memory": 128}]})
    assert out["networkMode"] == "bridge"


def container(**extra: Any) -> dict[str, Any]:
    return fargate(containerDefinitions=[{"name": "a", "image": "i", **extra}])


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (fargate(volumes=[{"name": "v", "dockerVolumeConfiguration": {"scope": "task"}}]),
         "dockerVolumeConfiguration"),
        (container(dockerSecurityOptions=["seccomp=unconfined"]), "dockerSecurityOptions"),
        (container(linuxParameters={"tmpfs": [{"containerPath": "/t", "size": 64}]}),
         "linuxParameters.tmpfs"),
        (container(linuxParameters={"sharedMemorySize": 64}), "linuxParameters.sharedMemorySize"),
        (container(linuxParameters={"maxSwap": 64}), "linuxParameters.maxSwap"),
        (container(systemControls=[{"namespace": "kernel.domainname", "value": "x"}]),
         "systemControls"),
        (container(systemControls=[{"namespace": "vm.swappiness", "value": "1"}]),
         "systemControls"),
        (container(links=["db"]), "links"),
        (container(hostname="web"), "hostname"),
        (container(extraHosts=[{"hostname": "h", "ipAddress": "10.0.0.1"}]), "extraHosts"),
        (container(dnsServers=["10.0.0.2"]), "dnsServers"),
        (container(linuxParameters={"capabilities": {"add": ["NET_ADMIN"]}}),
         "capabilities.add"),
        (fargate(ipcMode="task"), "ipcMode"),
        (fargate(networkMode="bridge"), "networkMode 'bridge'"),
    ],
)  # fmt: skip
def test_fields_fargate_refuses_are_refused_naming_them(doc: dict[str, Any], field: str) -> None:
    """ECS developer guide, "Amazon ECS task definition differences for Fargate": these are
    refused on Fargate; miniecs refuses them rather than storing and ignoring them."""
    with pytest.raises(ClientException, match=field.replace(".", r"\.")):
        reg(doc)


def test_fields_fargate_takes_are_taken() -> None:
    reg(
        container(
            systemControls=[
                {"namespace": "net.ipv4.tcp_keepalive_time", "value": "60"},
                {"namespace": "kernel.shmmax", "value": "1000000"},
            ],
            linuxParameters={"capabilities": {"add": ["SYS_PTRACE"]}, "initProcessEnabled": True},
        )
    )


def test_compatibilities_as_ecs_lists_them() -> None:
    assert reg(fargate())["compatibilities"] == ["EC2", "FARGATE"]
    ec2 = {"family": "e", "containerDefinitions": [{"name": "a", "image": "i", "memory": 64}]}
    # aws CLI examples register-task-definition / describe-task-definition (bridge mode).
    assert reg(ec2)["compatibilities"] == ["EXTERNAL", "EC2"]
    secured = {**ec2, "networkMode": "awsvpc", "cpu": "256", "memory": "512"}
    assert reg(secured)["compatibilities"] == ["EC2", "FARGATE"]
    secured["containerDefinitions"] = [{"name": "a", "image": "i", "links": ["b"]}]
    assert reg(secured)["compatibilities"] == ["EC2"]
