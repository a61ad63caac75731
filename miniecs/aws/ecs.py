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
    ResourceInUseException,
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

from .ecs_account import AccountSettings
from .ecs_services import (
    FARGATE_PROVIDERS,
    NAME,
    ServiceOperations,
    capacity_strategy,
    check_fargate,
    check_launch,
    missing,
    network_subnets,
    tags_in,
)
from .protocols import paginate

INSIGHTS_VALUES = ("enabled", "disabled", "enhanced")


def _tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _name_of(ref: str) -> str:
    """A cluster name from a name or an ARN."""
    return ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref


class EcsApi(ServiceOperations, AccountSettings):
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
            "capacityProviders": list(cluster.capacity_providers),
            "defaultCapacityProviderStrategy": list(cluster.default_strategy),
        }
        if cluster.configuration:
            shape["configuration"] = cluster.configuration
        # `tags` is always there, filled only when asked for (aws CLI cluster examples).
        shape["tags"] = _tags_out(self.store.tags(cluster.arn)) if "TAGS" in include else []
        return shape

    def task_shape(self, task: Task, include_tags: bool = False) -> dict[str, Any]:
        given = {o.get("name"): o for o in task.overrides.get("containerOverrides") or ()}
        eni = f"eni-{task.task_id[:17]}"
        details = [
            {"name": "networkInterfaceId", "value": eni},
        ]
        if task.subnet_id:
            details.insert(0, {"name": "subnetId", "value": task.subnet_id})
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
                # ECS lists every container, with what was overridden (aws CLI describe-tasks).
                "containerOverrides": [
                    {**given.get(c.name, {}), "name": c.name} for c in task.containers
                ],
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
        # `tags` is always there, filled only when asked for (aws CLI describe-tasks example).
        shape["tags"] = _tags_out(self.store.tags(task.arn)) if include_tags else []
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
        settings = (
            dict(base.settings)
            if base
            else {"containerInsights": self.effective("containerInsights")}
        )
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
        if not NAME.fullmatch(name):
            raise InvalidParameterException(
                "Cluster name should be between 1 and 255 characters and contain only letters, "
                "numbers, hyphens and underscores."
            )
        tags = tags_in(req.get("tags"))
        existing = self.store.get_cluster(name)
        if existing is not None and existing.status == "ACTIVE":
            return {"cluster": self.cluster_shape(existing, ["TAGS"])}
        self._no_service_connect(req)
        providers = self._providers(req.get("capacityProviders"))
        cluster = Cluster(
            name=name,
            region=self.region,
            settings=self._settings(req.get("settings"), None),
            configuration=req.get("configuration"),
            capacity_providers=providers,
            default_strategy=capacity_strategy(
                req.get("defaultCapacityProviderStrategy"), providers
            ),
        )
        self.store.put_cluster(cluster)
        if tags:
            self.store.tag(cluster.arn, tags)
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

    def _providers(self, raw: list[str] | None) -> tuple[str, ...]:
        providers = tuple(dict.fromkeys(raw or ()))
        for name in providers:
            if name not in FARGATE_PROVIDERS:
                raise InvalidParameterException(
                    f"The specified capacity provider '{name}' does not exist. Specify a valid "
                    "capacity provider and try again."
                )
        return providers

    def _no_service_connect(self, req: dict[str, Any]) -> None:
        if req.get("serviceConnectDefaults"):
            raise InvalidParameterException(
                "miniecs does not emulate Service Connect (Cloud Map namespaces)."
            )

    def put_cluster_capacity_providers(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req["cluster"])
        providers = self._providers(req["capacityProviders"])
        strategy = capacity_strategy(req["defaultCapacityProviderStrategy"], providers)
        for service in self.store.list_services(cluster.name):
            used = {i["capacityProvider"] for i in service.capacity_provider_strategy}
            if service.status == "ACTIVE" and not used <= set(providers):
                raise ResourceInUseException(
                    "The specified capacity provider is in use and cannot be removed."
                )
        cluster = dataclasses.replace(
            cluster, capacity_providers=providers, default_strategy=strategy
        )
        self.store.put_cluster(cluster)
        return {"cluster": self.cluster_shape(cluster, ["TAGS"])}

    def update_cluster(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req["cluster"])
        self._no_service_connect(req)
        changes: dict[str, Any] = {}
        if req.get("settings") is not None:
            changes["settings"] = self._settings(req["settings"], cluster)
        if req.get("configuration") is not None:
            changes["configuration"] = req["configuration"]
        cluster = dataclasses.replace(cluster, **changes)
        self.store.put_cluster(cluster)
        return {"cluster": self.cluster_shape(cluster, ["TAGS"])}

    # task definitions -----------------------------------------------------------------------
    def register_task_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        tags = tags_in(req.get("tags"))
        # Validate once before taking the family's revision, so a refusal stores nothing.
        normalise(req, 1, self.region, now, self.settings.tasks)
        td = self.store.register_task_definition(
            req["family"],
            lambda rev: normalise(req, rev, self.region, now, self.settings.tasks),
        )
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
        if td.status != "ACTIVE":
            # ECS answers an already deregistered revision as it stands.
            return {"taskDefinition": td.document}
        now = self.clock.now()
        self.store.set_task_definition_status(
            td.family, td.revision, "INACTIVE", deregisteredAt=now
        )
        return {"taskDefinition": {**td.document, "status": "INACTIVE", "deregisteredAt": now}}

    def delete_task_definitions(self, req: dict[str, Any]) -> dict[str, Any]:
        """Only INACTIVE revisions can be deleted; they stay visible as DELETE_IN_PROGRESS."""
        refs = req["taskDefinitions"]
        if not 1 <= len(refs) <= 10:
            raise InvalidParameterException("taskDefinitions must contain 1 to 10 items.")
        deleted, failures = [], []
        for ref in refs:
            name = ref.rsplit("/", 1)[-1]
            try:
                if ":" not in name:
                    raise ClientException("The specified task definition identifier is invalid.")
                td = self.task_definition(ref)
            except ClientException:
                failures.append(
                    {"arn": ref, "reason": "The specified task definition does not exist."}
                )
                continue
            if td.status == "ACTIVE":
                failures.append(
                    {
                        "arn": td.arn,
                        "reason": "The specified task definition is still in ACTIVE status. "
                        "Please deregister the target and try again.",
                    }
                )
                continue
            self.store.set_task_definition_status(td.family, td.revision, "DELETE_IN_PROGRESS")
            deleted.append({**td.document, "status": "DELETE_IN_PROGRESS"})
        return {"taskDefinitions": deleted, "failures": failures}

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
        check_launch(req, cluster)
        check_fargate(td, self.settings.tasks)
        tags = tags_in(req.get("tags"))
        subnets = network_subnets(req.get("networkConfiguration"), td)
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
                subnets=subnets,
            )
            self.store.put_task(task)
            if tags:
                self.store.tag(task.arn, tags)
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
        if not req["tasks"]:
            raise InvalidParameterException("Tasks cannot be empty.")
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
        tags = tags_in(req["tags"], self.store.tags(req["resourceArn"]))
        self.store.tag(req["resourceArn"], tags)
        return {}

    def untag_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_resource(req["resourceArn"])
        tags_in([{"key": k} for k in req["tagKeys"]])
        self.store.untag(req["resourceArn"], list(req["tagKeys"]))
        return {}

    def list_tags_for_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_resource(req["resourceArn"])
        return {"tags": _tags_out(self.store.tags(req["resourceArn"]))}
