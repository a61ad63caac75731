"""The ECS API (AWS JSON 1.1, `AmazonEC2ContainerServiceV20141113`): thin handlers that parse,
call the store, and return AWS-shaped responses. Tasks are only written here as desired state;
the task controller does the rest."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from miniecs.clock import Clock
from miniecs.config import Settings
from miniecs.errors import (
    ClientException,
    ClusterContainsServicesException,
    ClusterContainsTasksException,
    ClusterNotFoundException,
    InvalidParameterException,
    ResourceNotFoundException,
)
from miniecs.model import (
    Cluster,
    ContainerRecord,
    StopCode,
    Task,
    TaskDefinition,
    TaskStatus,
)
from miniecs.store import Store
from miniecs.taskdef import normalise, parse_cpu, parse_memory
from miniecs.tasks.plan import request_stop
from miniecs.tasks.records import new_task

from .ecs_services import ServiceOperations, missing
from .protocols import paginate

INSIGHTS_VALUES = ("enabled", "disabled", "enhanced")


def _tags_in(tags: Iterable[dict[str, str]] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags or []}


def _tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _name_of(ref: str) -> str:
    """A cluster name from a name or an ARN."""
    return ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref


class EcsApi(ServiceOperations):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        on_cluster_deleted: Callable[[str], Any] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.region = settings.server.region
        self.on_cluster_deleted = on_cluster_deleted

    # helpers ------------------------------------------------------------------------------
    def cluster(self, ref: str | None) -> Cluster:
        cluster = self.store.get_cluster(_name_of(ref or "default"))
        if cluster is None or cluster.status != "ACTIVE":
            raise ClusterNotFoundException()
        return cluster

    def task_definition(self, ref: str) -> TaskDefinition:
        """Resolve 'family', 'family:revision' or an ARN; ClientException if unknown."""
        name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
        family, _, revision = name.partition(":")
        td = None
        if not revision:
            td = self.store.get_task_definition(family)
        elif revision.isdigit():
            td = self.store.get_task_definition(family, int(revision))
        if td is None:
            raise ClientException("Unable to describe task definition.")
        return td

    def _task(self, cluster: Cluster, ref: str) -> Task | None:
        task_id = ref.rsplit("/", 1)[-1]
        task = self.store.get_task(task_id)
        if task is None or task.cluster != cluster.name:
            return None
        return task

    def cluster_shape(self, cluster: Cluster, include: Iterable[str] = ()) -> dict[str, Any]:
        tasks = self.store.list_tasks(cluster=cluster.name, live_only=True)
        shape: dict[str, Any] = {
            "clusterArn": cluster.arn,
            "clusterName": cluster.name,
            "status": cluster.status,
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": sum(t.last_status is TaskStatus.RUNNING for t in tasks),
            "pendingTasksCount": sum(t.last_status.rank < TaskStatus.RUNNING.rank for t in tasks),
            "activeServicesCount": sum(
                s.status == "ACTIVE" for s in self.store.list_services(cluster.name)
            ),
            "statistics": [],
            "settings": [{"name": n, "value": v} for n, v in cluster.settings],
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": [],
        }
        if cluster.configuration:
            shape["configuration"] = cluster.configuration
        if "TAGS" in include:
            shape["tags"] = _tags_out(self.store.tags(cluster.arn))
        return shape

    def task_shape(self, task: Task, include_tags: bool = False) -> dict[str, Any]:
        eni = f"eni-{task.task_id[:17]}"
        details = [
            {"name": "subnetId", "value": "subnet-miniecs"},
            {"name": "networkInterfaceId", "value": eni},
        ]
        if task.mac_address:
            details.append({"name": "macAddress", "value": task.mac_address})
        if task.private_ip:
            details += [
                {
                    "name": "privateDnsName",
                    "value": f"ip-{task.private_ip.replace('.', '-')}.ec2.internal",
                },
                {"name": "privateIPv4Address", "value": task.private_ip},
            ]
        status = task.last_status
        attachment_status = (
            "PRECREATED"
            if status is TaskStatus.PROVISIONING
            else "DELETED"
            if status is TaskStatus.STOPPED
            else "ATTACHED"
        )
        shape: dict[str, Any] = {
            "taskArn": task.arn,
            "clusterArn": task.cluster_arn,
            "taskDefinitionArn": task.task_definition_arn,
            "overrides": {
                "containerOverrides": task.overrides.get("containerOverrides") or [],
                "inferenceAcceleratorOverrides": [],
                **{
                    k: v
                    for k, v in task.overrides.items()
                    if k in ("cpu", "memory", "taskRoleArn", "executionRoleArn", "ephemeralStorage")
                },
            },
            "lastStatus": status.value,
            "desiredStatus": task.desired_status.value,
            "cpu": task.cpu,
            "memory": task.memory,
            "containers": [self._container_shape(task, c) for c in task.containers],
            "version": task.version,
            "createdAt": task.created_at,
            "pullStartedAt": task.pull_started_at,
            "pullStoppedAt": task.pull_stopped_at,
            "startedAt": task.started_at,
            "stoppingAt": task.stopping_at,
            "executionStoppedAt": task.execution_stopped_at,
            "stoppedAt": task.stopped_at,
            "stopCode": task.stop_code.value if task.stop_code else None,
            "stoppedReason": task.stopped_reason,
            "group": task.group,
            "startedBy": task.started_by,
            "launchType": "FARGATE",
            "platformVersion": "1.4.0",
            "platformFamily": "Linux",
            "availabilityZone": f"{self.region}a",
            "healthStatus": task.health_status.value,
            "enableExecuteCommand": False,
            "ephemeralStorage": {"sizeInGiB": 20},
            "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
            "attachments": [
                {
                    "id": task.attachment_id,
                    "type": "ElasticNetworkInterface",
                    "status": attachment_status,
                    "details": details,
                }
            ],
        }
        if task.connectivity_at:
            shape["connectivity"] = "CONNECTED"
            shape["connectivityAt"] = task.connectivity_at
        if include_tags:
            shape["tags"] = _tags_out(self.store.tags(task.arn))
        return shape

    def _container_shape(self, task: Task, c: ContainerRecord) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "containerArn": (
                f"arn:aws:ecs:{self.region}:000000000000:container/{task.cluster}/"
                f"{task.task_id}/{c.container_id}"
            ),
            "taskArn": task.arn,
            "name": c.name,
            "image": c.image,
            "runtimeId": c.runtime_id,
            "lastStatus": c.last_status,
            "exitCode": c.exit_code,
            "reason": c.reason,
            "networkBindings": [],
            "networkInterfaces": (
                [{"attachmentId": task.attachment_id, "privateIpv4Address": task.private_ip}]
                if task.private_ip
                else []
            ),
            "healthStatus": c.health_status.value,
            "cpu": str(c.cpu),
        }
        if c.memory is not None:
            shape["memory"] = str(c.memory)
        if c.memory_reservation is not None:
            shape["memoryReservation"] = str(c.memory_reservation)
        return shape

    # clusters -----------------------------------------------------------------------------
    def _settings(
        self, raw: list[dict[str, str]] | None, base: Cluster | None
    ) -> tuple[tuple[str, str], ...]:
        settings = dict(base.settings) if base else {"containerInsights": "disabled"}
        for s in raw or []:
            if s.get("name") != "containerInsights":
                raise InvalidParameterException(f"Unsupported cluster setting: {s.get('name')}.")
            if s.get("value") not in INSIGHTS_VALUES:
                raise InvalidParameterException(
                    "The value for containerInsights must be one of: enabled, disabled, enhanced."
                )
            settings["containerInsights"] = s["value"]
        return tuple(settings.items())

    def create_cluster(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("clusterName") or "default"
        if not all(ch.isalnum() or ch in "-_" for ch in name) or len(name) > 255:
            raise InvalidParameterException(
                "Cluster name should be between 1 and 255 characters and contain only letters, "
                "numbers, hyphens and underscores."
            )
        existing = self.store.get_cluster(name)
        if existing is not None and existing.status == "ACTIVE":
            return {"cluster": self.cluster_shape(existing, ["TAGS"])}
        cluster = Cluster(
            name=name,
            region=self.region,
            settings=self._settings(req.get("settings"), None),
            configuration=req.get("configuration"),
        )
        self.store.put_cluster(cluster)
        if req.get("tags"):
            self.store.tag(cluster.arn, _tags_in(req["tags"]))
        return {"cluster": self.cluster_shape(cluster, ["TAGS"])}

    def describe_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        refs = req.get("clusters") or ["default"]
        clusters, failures = [], []
        for ref in refs:
            cluster = self.store.get_cluster(_name_of(ref))
            if cluster is None:
                arn = ref if ref.startswith("arn:") else Cluster(ref, self.region).arn
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                clusters.append(self.cluster_shape(cluster, req.get("include") or []))
        return {"clusters": clusters, "failures": failures}

    def list_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        arns = [c.arn for c in self.store.list_clusters() if c.status == "ACTIVE"]
        page, token = paginate(arns, req.get("nextToken"), req.get("maxResults"))
        return {"clusterArns": page, "nextToken": token}

    async def delete_cluster(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req["cluster"])
        if any(s.status != "INACTIVE" for s in self.store.list_services(cluster.name)):
            raise ClusterContainsServicesException(
                "The Cluster cannot be deleted while Services are active."
            )
        if self.store.list_tasks(cluster=cluster.name, live_only=True):
            raise ClusterContainsTasksException(
                "The Cluster cannot be deleted while Tasks are active."
            )
        cluster = dataclasses.replace(cluster, status="INACTIVE")
        self.store.put_cluster(cluster)
        if self.on_cluster_deleted is not None:
            await self.on_cluster_deleted(cluster.name)
        return {"cluster": self.cluster_shape(cluster)}

    def update_cluster_settings(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req["cluster"])
        cluster = dataclasses.replace(cluster, settings=self._settings(req["settings"], cluster))
        self.store.put_cluster(cluster)
        return {"cluster": self.cluster_shape(cluster)}

    # task definitions -----------------------------------------------------------------------
    def register_task_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        # Validate once before taking the family's revision, so a refusal stores nothing.
        normalise(req, 1, self.region, now, self.settings.tasks)
        td = self.store.register_task_definition(
            req["family"],
            lambda rev: normalise(req, rev, self.region, now, self.settings.tasks),
        )
        tags = _tags_in(req.get("tags"))
        if tags:
            self.store.tag(td.arn, tags)
        return {"taskDefinition": td.document, "tags": _tags_out(tags)}

    def describe_task_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        td = self.task_definition(req["taskDefinition"])
        out: dict[str, Any] = {"taskDefinition": td.document}
        if "TAGS" in (req.get("include") or []):
            out["tags"] = _tags_out(self.store.tags(td.arn))
        return out

    def list_task_definitions(self, req: dict[str, Any]) -> dict[str, Any]:
        tds = self.store.list_task_definitions(
            family=req.get("familyPrefix"),
            status=req.get("status") or "ACTIVE",
            descending=req.get("sort") == "DESC",
        )
        page, token = paginate([t.arn for t in tds], req.get("nextToken"), req.get("maxResults"))
        return {"taskDefinitionArns": page, "nextToken": token}

    def list_task_definition_families(self, req: dict[str, Any]) -> dict[str, Any]:
        status = req.get("status")
        families = self.store.list_families(
            req.get("familyPrefix"), None if status in (None, "ALL") else status
        )
        page, token = paginate(families, req.get("nextToken"), req.get("maxResults"))
        return {"families": page, "nextToken": token}

    def deregister_task_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        ref = req["taskDefinition"]
        name = ref.rsplit("/", 1)[-1]
        if ":" not in name:
            raise ClientException(
                "The specified task definition identifier is invalid. Specify a valid revision."
            )
        td = self.task_definition(ref)
        self.store.set_task_definition_status(td.family, td.revision, "INACTIVE")
        document = {**td.document, "status": "INACTIVE", "deregisteredAt": self.clock.now()}
        return {"taskDefinition": document}

    # tasks ----------------------------------------------------------------------------------
    def run_task(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        td = self.task_definition(req["taskDefinition"])
        if td.status != "ACTIVE":
            raise ClientException("TaskDefinition is inactive")
        count = req.get("count", 1)
        if not 1 <= count <= 10:
            raise InvalidParameterException("count must be between 1 and 10.")
        if len(req.get("startedBy") or "") > 36:
            raise InvalidParameterException("startedBy must be at most 36 characters.")
        container_names = {c["name"] for c in td.containers}
        overrides = dict(req.get("overrides") or {})
        if overrides.get("cpu"):
            overrides["cpu"] = str(parse_cpu(overrides["cpu"]))
        if overrides.get("memory"):
            overrides["memory"] = str(parse_memory(overrides["memory"]))
        for o in overrides.get("containerOverrides") or []:
            if o.get("name") not in container_names:
                raise InvalidParameterException(
                    f"Override for container named {o.get('name')} is not a container in the "
                    "TaskDefinition."
                )
        tasks = []
        for _ in range(count):
            task = new_task(
                cluster.name,
                self.region,
                td,
                self.clock.now(),
                group=req.get("group"),
                started_by=req.get("startedBy"),
                overrides=overrides,
            )
            self.store.put_task(task)
            if req.get("tags"):
                self.store.tag(task.arn, _tags_in(req["tags"]))
            tasks.append(self.task_shape(task, include_tags=True))
        return {"tasks": tasks, "failures": []}

    def stop_task(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        task = self._task(cluster, req["task"])
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        reason = req.get("reason") or "Task stopped by user"
        updated = self.store.update_task(
            task.task_id, lambda t: request_stop(t, StopCode.USER_INITIATED, reason)
        )
        return {"task": self.task_shape(updated or task)}

    def describe_tasks(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        if len(req["tasks"]) > 100:
            raise InvalidParameterException("At most 100 tasks can be described at once.")
        include_tags = "TAGS" in (req.get("include") or [])
        tasks, failures = [], []
        for ref in req["tasks"]:
            task = self._task(cluster, ref)
            if task is None:
                failures.append(missing(self.region, "task", cluster.name, ref))
            else:
                tasks.append(self.task_shape(task, include_tags))
        return {"tasks": tasks, "failures": failures}

    def list_tasks(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        desired = req.get("desiredStatus") or "RUNNING"
        tasks = self.store.list_tasks(
            cluster=cluster.name,
            desired_status=desired,
            family=req.get("family"),
            started_by=req.get("startedBy"),
            service=req.get("serviceName"),
        )
        page, token = paginate([t.arn for t in tasks], req.get("nextToken"), req.get("maxResults"))
        return {"taskArns": page, "nextToken": token}

    # tags -----------------------------------------------------------------------------------
    def _check_resource(self, arn: str) -> None:
        resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else ""
        kind, _, rest = resource.partition("/")
        exists = False
        if kind == "cluster":
            cluster = self.store.get_cluster(rest)
            exists = cluster is not None and cluster.status == "ACTIVE"
            if not exists:
                raise ClusterNotFoundException()
        elif kind == "task-definition":
            family, _, rev = rest.partition(":")
            exists = rev.isdigit() and self.store.get_task_definition(family, int(rev)) is not None
        elif kind == "task":
            exists = self.store.get_task(rest.rsplit("/", 1)[-1]) is not None
        elif kind == "service":
            exists = self._service_exists(rest)
        if not exists:
            raise ResourceNotFoundException("The specified resource could not be found.")

    def _service_exists(self, rest: str) -> bool:
        cluster, _, name = rest.partition("/")
        service = self.store.get_service(cluster, name)
        return service is not None and service.status != "INACTIVE"

    def tag_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_resource(req["resourceArn"])
        self.store.tag(req["resourceArn"], _tags_in(req["tags"]))
        return {}

    def untag_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_resource(req["resourceArn"])
        self.store.untag(req["resourceArn"], list(req["tagKeys"]))
        return {}

    def list_tags_for_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_resource(req["resourceArn"])
        return {"tags": _tags_out(self.store.tags(req["resourceArn"]))}
