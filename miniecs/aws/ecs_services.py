"""ECS service operations: CreateService, UpdateService, DescribeServices, ListServices,
DeleteService. They write the service's desired state; the scheduler does the rest."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from miniecs.clock import Clock
from miniecs.errors import (
    ClientException,
    InvalidParameterException,
    ServiceNotActiveException,
    ServiceNotFoundException,
)
from miniecs.model import (
    Cluster,
    DeploymentStatus,
    Service,
    ServiceSpec,
    Task,
    TaskDefinition,
    TaskStatus,
    new_deployment_id,
)
from miniecs.model import arn as model_arn
from miniecs.store import Store

from .protocols import paginate

MAX_DESCRIBE = 10
MAX_TARGET_GROUPS = 5


def missing(region: str, kind: str, cluster: str, ref: str) -> dict[str, str]:
    """A DescribeX failure entry for a name or ARN that matched nothing."""
    arn = ref if ref.startswith("arn:") else model_arn(region, f"{kind}/{cluster}/{ref}")
    return {"arn": arn, "reason": "MISSING"}


def _service_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


class ServiceOperations:
    """The service half of the ECS API; EcsApi inherits it and provides the lookups."""

    store: Store
    clock: Clock
    region: str
    target_group_attached: Callable[[str], bool] | None = None
    """Set by the engine once load balancing exists: whether a target group ARN is in use by a
    load balancer (ECS refuses a service whose target group has none)."""

    def cluster(self, ref: str | None) -> Cluster:
        raise NotImplementedError

    def task_definition(self, ref: str) -> TaskDefinition:
        raise NotImplementedError

    def _deployment_config(self, req: dict[str, Any], base: Service | None) -> dict[str, Any]:
        cfg = req.get("deploymentConfiguration") or {}
        minimum = cfg.get("minimumHealthyPercent", base.minimum_healthy_percent if base else 100)
        maximum = cfg.get("maximumPercent", base.maximum_percent if base else 200)
        breaker = cfg.get("deploymentCircuitBreaker")
        enable = breaker["enable"] if breaker else (base.circuit_breaker if base else False)
        rollback = breaker["rollback"] if breaker else (base.rollback if base else False)
        if not 0 <= minimum <= 100:
            raise InvalidParameterException("minimumHealthyPercent must be between 0 and 100.")
        if maximum < minimum:
            raise InvalidParameterException(
                "The maximumPercent must be greater than or equal to the minimumHealthyPercent."
            )
        if maximum < 100:
            raise InvalidParameterException("maximumPercent must be at least 100.")
        return {
            "minimum_healthy_percent": int(minimum),
            "maximum_percent": int(maximum),
            "circuit_breaker": bool(enable),
            "rollback": bool(rollback),
        }

    def _load_balancers(
        self, req: dict[str, Any], td: TaskDefinition
    ) -> tuple[dict[str, Any], ...]:
        bindings = list(req.get("loadBalancers") or ())
        if len(bindings) > MAX_TARGET_GROUPS:
            raise InvalidParameterException(
                f"A service can use at most {MAX_TARGET_GROUPS} target groups."
            )
        for binding in bindings:
            if binding.get("loadBalancerName") and not binding.get("targetGroupArn"):
                raise InvalidParameterException(
                    "miniecs emulates Application Load Balancers: give a targetGroupArn."
                )
            name, port, tg = (
                binding.get("containerName"),
                binding.get("containerPort"),
                binding.get("targetGroupArn"),
            )
            if not name:
                raise InvalidParameterException("Container Name can not be blank.")
            try:
                container = td.container(name)
            except KeyError:
                raise InvalidParameterException(
                    f"The container {name} does not exist in the task definition."
                ) from None
            ports = {pm.get("containerPort") for pm in container.get("portMappings") or ()}
            if port is None or port not in ports:
                raise InvalidParameterException(
                    f"The container {name} did not have a container port {port} defined."
                )
            if tg and self.target_group_attached is not None and not self.target_group_attached(tg):
                raise InvalidParameterException(
                    f"The target group with targetGroupArn {tg} does not have an associated "
                    "load balancer."
                )
        return tuple(bindings)

    def _desired(self, value: Any) -> int:
        if value < 0:
            raise InvalidParameterException("desiredCount must be greater than or equal to 0.")
        return int(value)

    def _get_service(self, cluster: Cluster, ref: str) -> Service:
        service = self.store.get_service(cluster.name, _service_name(ref))
        if service is None:
            raise ServiceNotFoundException()
        return service

    def create_service(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        name = req["serviceName"]
        if not name or not all(ch.isalnum() or ch in "-_" for ch in name) or len(name) > 255:
            raise InvalidParameterException(
                "Service name should be between 1 and 255 characters and contain only "
                "letters, numbers, hyphens and underscores."
            )
        if req.get("schedulingStrategy", "REPLICA") != "REPLICA":
            raise InvalidParameterException("miniecs supports the REPLICA scheduling strategy.")
        if "taskDefinition" not in req:
            raise InvalidParameterException("TaskDefinition can not be blank.")
        try:
            td = self.task_definition(req["taskDefinition"])
        except ClientException:
            raise ClientException("TaskDefinition not found.") from None
        if td.status != "ACTIVE":
            raise ClientException("TaskDefinition is inactive")
        desired = self._desired(req.get("desiredCount", 0))
        existing = self.store.get_service(cluster.name, name)
        if existing is not None and existing.status != "INACTIVE":
            raise InvalidParameterException("Creation of service was not idempotent.")
        cfg = self._deployment_config(req, None)
        load_balancers = self._load_balancers(req, td)
        grace = int(req.get("healthCheckGracePeriodSeconds") or 0)
        now = self.clock.now()
        spec = ServiceSpec(
            name=name,
            cluster=cluster.name,
            region=self.region,
            task_definition=td.arn,
            desired_count=desired,
            created_at=now,
            deployment_id=new_deployment_id(),
            deployment_at=now,
            health_check_grace_period=grace,
            network_configuration=req.get("networkConfiguration"),
            load_balancers=load_balancers,
            launch_type=req.get("launchType") or "FARGATE",
            platform_version=req.get("platformVersion") or "LATEST",
            **cfg,
        )
        service = self.store.create_service(spec)
        if req.get("tags"):
            self.store.tag(service.arn, {t["key"]: t.get("value", "") for t in req["tags"]})
        return {"service": self.service_shape(service)}

    def update_service(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        service = self._get_service(cluster, req["service"])
        if service.status != "ACTIVE":
            raise ServiceNotActiveException()
        changes: dict[str, Any] = {}
        if req.get("desiredCount") is not None:
            changes["desired_count"] = self._desired(req["desiredCount"])
        if "deploymentConfiguration" in req:
            changes.update(self._deployment_config(req, service))
        if req.get("healthCheckGracePeriodSeconds") is not None:
            changes["health_check_grace_period"] = int(req["healthCheckGracePeriodSeconds"])
        if req.get("networkConfiguration"):
            changes["network_configuration"] = req["networkConfiguration"]
        td_arn = service.task_definition
        if req.get("taskDefinition"):
            td = self.task_definition(req["taskDefinition"])
            if td.status != "ACTIVE":
                raise ClientException("TaskDefinition is inactive")
            td_arn = td.arn
        if req.get("loadBalancers") is not None:
            changes["load_balancers"] = self._load_balancers(req, self.task_definition(td_arn))
        # As on ECS, a new load balancer configuration rolls out as a new deployment: its
        # tasks register in the new target groups, the old tasks leave the old ones. The
        # scheduler starts the deployment the spec asks for.
        lb_changed = (
            "load_balancers" in changes and changes["load_balancers"] != service.load_balancers
        )
        if td_arn != service.task_definition or req.get("forceNewDeployment") or lb_changed:
            changes.update(
                task_definition=td_arn,
                deployment_id=new_deployment_id(),
                deployment_at=self.clock.now(),
            )
        written = self.store.update_service_spec(
            cluster.name, service.name, lambda current: dataclasses.replace(current, **changes)
        )
        return {"service": self.service_shape(written or service)}

    def describe_services(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        refs = req["services"]
        if len(refs) > MAX_DESCRIBE:
            raise InvalidParameterException("At most 10 services can be described at once.")
        include_tags = "TAGS" in (req.get("include") or [])
        services, failures = [], []
        for ref in refs:
            service = self.store.get_service(cluster.name, _service_name(ref))
            if service is None:
                failures.append(missing(self.region, "service", cluster.name, ref))
            else:
                services.append(self.service_shape(service, include_tags))
        return {"services": services, "failures": failures}

    def list_services(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        arns = [s.arn for s in self.store.list_services(cluster.name) if s.status != "INACTIVE"]
        page, token = paginate(arns, req.get("nextToken"), req.get("maxResults"), default=10)
        return {"serviceArns": page, "nextToken": token}

    def delete_service(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self.cluster(req.get("cluster"))
        service = self._get_service(cluster, req["service"])
        if service.status == "INACTIVE":
            raise ServiceNotActiveException()
        if service.desired_count > 0 and not req.get("force"):
            raise InvalidParameterException(
                "The service cannot be stopped while it is scaled above 0."
            )
        written = self.store.update_service_spec(
            cluster.name,
            service.name,
            lambda s: dataclasses.replace(s, status="DRAINING", desired_count=0),
        )
        return {"service": self.service_shape(written or service)}

    # shapes -------------------------------------------------------------------------------
    def service_shape(self, service: Service, include_tags: bool = False) -> dict[str, Any]:
        tasks: list[Task] = self.store.list_tasks(
            cluster=service.cluster, service=service.name, live_only=True
        )

        def counts(of: list[Task]) -> tuple[int, int]:
            running = sum(t.last_status is TaskStatus.RUNNING for t in of)
            pending = sum(t.last_status.rank < TaskStatus.RUNNING.rank for t in of)
            return running, pending

        running, pending = counts(tasks)
        deployments = []
        for d in service.deployments:
            if d.status is DeploymentStatus.INACTIVE:
                continue
            mine = [t for t in tasks if t.started_by == d.id]
            d_running, d_pending = counts(mine)
            shape: dict[str, Any] = {
                "id": d.id,
                "status": d.status.value,
                "taskDefinition": d.task_definition,
                "desiredCount": (
                    service.desired_count
                    if d.status is DeploymentStatus.PRIMARY and service.status == "ACTIVE"
                    else sum(t.desired_status is TaskStatus.RUNNING for t in mine)
                ),
                "pendingCount": d_pending,
                "runningCount": d_running,
                "failedTasks": d.failed_tasks,
                "createdAt": d.created_at,
                "updatedAt": d.updated_at,
                "launchType": service.launch_type,
                "platformVersion": "1.4.0",
                "platformFamily": "Linux",
                "networkConfiguration": service.network_configuration,
                "rolloutState": d.rollout_state.value,
                "rolloutStateReason": d.rollout_state_reason
                or f"ECS deployment {d.id} in progress.",
            }
            deployments.append(shape)
        out: dict[str, Any] = {
            "serviceArn": service.arn,
            "serviceName": service.name,
            "clusterArn": f"arn:aws:ecs:{service.region}:000000000000:cluster/{service.cluster}",
            "loadBalancers": list(service.load_balancers),
            "serviceRegistries": [],
            "status": service.status,
            "desiredCount": service.desired_count,
            "runningCount": running,
            "pendingCount": pending,
            "launchType": service.launch_type,
            "platformVersion": service.platform_version,
            "platformFamily": "Linux",
            "taskDefinition": service.task_definition,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {
                    "enable": service.circuit_breaker,
                    "rollback": service.rollback,
                },
                "maximumPercent": service.maximum_percent,
                "minimumHealthyPercent": service.minimum_healthy_percent,
            },
            "deployments": deployments,
            "events": [
                {"id": e.id, "createdAt": e.created_at, "message": e.message}
                for e in service.events
            ],
            "createdAt": service.created_at,
            "placementConstraints": [],
            "placementStrategy": [],
            "networkConfiguration": service.network_configuration,
            "healthCheckGracePeriodSeconds": service.health_check_grace_period,
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
            "createdBy": "arn:aws:iam::000000000000:root",
            "enableECSManagedTags": False,
            "propagateTags": "NONE",
            "enableExecuteCommand": False,
        }
        if include_tags:
            out["tags"] = [{"key": k, "value": v} for k, v in self.store.tags(service.arn).items()]
        return out
