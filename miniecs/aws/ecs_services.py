"""ECS service operations: CreateService, UpdateService, DescribeServices, ListServices,
DeleteService. They write the service's desired state; the scheduler does the rest."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from miniecs.clock import Clock
from miniecs.config import ACCOUNT_ID, Settings, TaskSettings
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
from miniecs.taskdef import fargate_refusals

from .protocols import paginate

MAX_DESCRIBE = 10
MAX_TARGET_GROUPS = 5
NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
"""Cluster and service names: ASCII letters, digits, hyphens and underscores (ECS refuses
other letters; botocore's model has no pattern for them)."""


def network_subnets(network: dict[str, Any] | None, td: TaskDefinition) -> tuple[str, ...]:
    """The subnets of a RunTask/CreateService `networkConfiguration`, checked as ECS checks it
    against the task definition's network mode."""
    awsvpc = (network or {}).get("awsvpcConfiguration")
    if td.document.get("networkMode") != "awsvpc":
        if awsvpc:
            raise InvalidParameterException(
                "Network Configuration is not valid for the given networkMode of this task "
                "definition."
            )
        return ()
    if not awsvpc:
        raise InvalidParameterException(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified."
        )
    subnets = tuple(awsvpc.get("subnets") or ())
    if not subnets:
        raise InvalidParameterException("subnets can not be empty.")
    if len(subnets) > 16:
        raise InvalidParameterException("subnets can have at most 16 items.")
    if len(awsvpc.get("securityGroups") or ()) > 5:
        raise InvalidParameterException("securityGroups can have at most 5 items.")
    return subnets


MAX_TAGS = 50


def tags_in(
    tags: list[dict[str, str]] | None, existing: dict[str, str] | None = None
) -> dict[str, str]:
    """ECS tags as a dict, refused as ECS refuses them beyond what botocore's model checks:
    the reserved `aws:` prefix (any case) and 50 tags per resource in all."""
    out = {t["key"]: t.get("value", "") for t in tags or []}
    if any(k.lower().startswith("aws:") for k in out):
        raise InvalidParameterException(
            "Tag keys starting with 'aws:' are reserved for internal use."
        )
    if len({**(existing or {}), **out}) > MAX_TAGS:
        raise InvalidParameterException(
            f"The number of tags on a resource cannot exceed {MAX_TAGS}."
        )
    return out


FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
NOT_ASSOCIATED = (
    "The specified capacity provider strategy cannot contain a capacity provider that is not "
    "associated with the cluster. Associate the capacity provider with the cluster or specify a "
    "valid capacity provider and try again."
)


def capacity_strategy(
    raw: list[dict[str, Any]] | None, providers: tuple[str, ...]
) -> tuple[dict[str, Any], ...]:
    """A capacity provider strategy checked as ECS checks it against the cluster's providers,
    with AWS's defaults (weight 0, base 0) filled in."""
    strategy = tuple(
        {
            "capacityProvider": i["capacityProvider"],
            "weight": i.get("weight", 0),
            "base": i.get("base", 0),
        }
        for i in raw or ()
    )
    names = [i["capacityProvider"] for i in strategy]
    if len(set(names)) != len(names):
        raise InvalidParameterException(
            "The capacity provider strategy cannot contain duplicate capacity providers."
        )
    if any(name not in providers for name in names):
        raise InvalidParameterException(NOT_ASSOCIATED)
    if sum(i["base"] > 0 for i in strategy) > 1:
        raise InvalidParameterException(
            "Only one capacity provider in a capacity provider strategy can have a base defined."
        )
    if strategy and not any(i["weight"] > 0 for i in strategy):
        raise InvalidParameterException(
            "At least one capacity provider in a capacity provider strategy must have a weight "
            "greater than zero."
        )
    return strategy


def check_fargate(td: TaskDefinition, settings: TaskSettings) -> None:
    """A task definition that cannot run on Fargate is refused by RunTask and CreateService
    with ECS's message, followed by the reason naming the field."""
    reasons = fargate_refusals(td.document, settings)
    if reasons:
        raise InvalidParameterException(
            f"Task definition does not support launch_type FARGATE. {reasons[0]}"
        )


def check_launch(req: dict[str, Any], cluster: Cluster) -> None:
    """launchType and capacityProviderStrategy as ECS takes them on Fargate: one or the other,
    only Fargate capacity (miniecs has no container instances), and only providers associated
    with the cluster."""
    launch = req.get("launchType")
    strategy = req.get("capacityProviderStrategy") or []
    if launch and strategy:
        raise InvalidParameterException(
            "Specifying both a launchType and capacityProviderStrategy is not supported."
        )
    if launch not in (None, "FARGATE"):
        raise InvalidParameterException("No Container Instances were found in your cluster.")
    capacity_strategy(strategy, cluster.capacity_providers)


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
    settings: Settings
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
        if not NAME.fullmatch(name or ""):
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
        tags = tags_in(req.get("tags"))
        check_launch(req, cluster)
        check_fargate(td, self.settings.tasks)
        strategy = capacity_strategy(
            req.get("capacityProviderStrategy"), cluster.capacity_providers
        ) or (() if req.get("launchType") else cluster.default_strategy)
        network_subnets(req.get("networkConfiguration"), td)
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
            capacity_provider_strategy=strategy,
            platform_version=req.get("platformVersion") or "LATEST",
            **cfg,
        )
        service = self.store.create_service(spec)
        if tags:
            self.store.tag(service.arn, tags)
        # CreateService echoes the tags it was given (aws CLI create-service example 1).
        return {"service": self.service_shape(service, include_tags=True)}

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
        td_arn = service.task_definition
        if req.get("taskDefinition"):
            td = self.task_definition(req["taskDefinition"])
            if td.status != "ACTIVE":
                raise ClientException("TaskDefinition is inactive")
            check_fargate(td, self.settings.tasks)
            td_arn = td.arn
        if req.get("networkConfiguration") or td_arn != service.task_definition:
            network = req.get("networkConfiguration") or service.network_configuration
            network_subnets(network, self.task_definition(td_arn))
            changes["network_configuration"] = network
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
            "createdBy": f"arn:aws:iam::{ACCOUNT_ID}:root",
            # ECS's service-linked role, which AWS shows on every service it manages.
            "roleArn": (
                f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/ecs.amazonaws.com/"
                "AWSServiceRoleForECS"
            ),
            "enableECSManagedTags": False,
            "propagateTags": "NONE",
            "enableExecuteCommand": False,
        }
        if service.capacity_provider_strategy:
            out["capacityProviderStrategy"] = list(service.capacity_provider_strategy)
        else:
            out["launchType"] = service.launch_type
        if include_tags:
            out["tags"] = [{"key": k, "value": v} for k, v in self.store.tags(service.arn).items()]
        return out
