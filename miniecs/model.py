"""ECS resources as miniecs keeps them: frozen records named and shaped as ECS names them.

Records are immutable; a change is `dataclasses.replace`. Task definitions keep the whole JSON
document a user registered (normalised), because ECS echoes it back field for field.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from miniecs.config import ACCOUNT_ID


class TaskStatus(enum.StrEnum):
    """ECS task lifecycle states, in the only order a task may move through them."""

    PROVISIONING = "PROVISIONING"
    PENDING = "PENDING"
    ACTIVATING = "ACTIVATING"
    RUNNING = "RUNNING"
    DEACTIVATING = "DEACTIVATING"
    STOPPING = "STOPPING"
    DEPROVISIONING = "DEPROVISIONING"
    STOPPED = "STOPPED"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def terminal(self) -> bool:
        return self is TaskStatus.STOPPED


_ORDER = list(TaskStatus)


class HealthStatus(enum.StrEnum):
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"


class StopCode(enum.StrEnum):
    TASK_FAILED_TO_START = "TaskFailedToStart"
    ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"
    USER_INITIATED = "UserInitiated"
    SERVICE_SCHEDULER_INITIATED = "ServiceSchedulerInitiated"


def arn(region: str, resource: str) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT_ID}:{resource}"


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    region: str
    status: str = "ACTIVE"
    settings: tuple[tuple[str, str], ...] = (("containerInsights", "disabled"),)
    configuration: dict[str, Any] | None = None
    capacity_providers: tuple[str, ...] = ()
    default_strategy: tuple[dict[str, Any], ...] = ()

    @property
    def arn(self) -> str:
        return arn(self.region, f"cluster/{self.name}")

    def setting(self, name: str) -> str | None:
        return dict(self.settings).get(name)


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """One registered revision; `document` is the normalised DescribeTaskDefinition shape."""

    family: str
    revision: int
    document: dict[str, Any]
    status: str = "ACTIVE"

    @property
    def arn(self) -> str:
        return str(self.document["taskDefinitionArn"])

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.document["containerDefinitions"])

    def container(self, name: str) -> dict[str, Any]:
        for c in self.document["containerDefinitions"]:
            if c["name"] == name:
                return dict(c)
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """A container of a task, as DescribeTasks reports it."""

    name: str
    container_id: str
    image: str
    essential: bool = True
    last_status: str = "PENDING"
    runtime_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    health_status: HealthStatus = HealthStatus.UNKNOWN
    has_health_check: bool = False
    cpu: int = 0
    memory: int | None = None
    memory_reservation: int | None = None


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    cluster: str
    region: str
    task_definition_arn: str
    family: str
    cpu: str | None
    memory: str | None
    created_at: float
    containers: tuple[ContainerRecord, ...]
    group: str
    started_by: str | None = None
    service: str | None = None
    last_status: TaskStatus = TaskStatus.PROVISIONING
    desired_status: TaskStatus = TaskStatus.RUNNING
    health_status: HealthStatus = HealthStatus.UNKNOWN
    private_ip: str | None = None
    mac_address: str | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    connectivity_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    stop_code: StopCode | None = None
    stopped_reason: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    subnet_id: str | None = None
    """The subnet of the task's ENI: one of the requested awsvpc subnets."""

    @property
    def arn(self) -> str:
        return arn(self.region, f"task/{self.cluster}/{self.task_id}")

    @property
    def cluster_arn(self) -> str:
        return arn(self.region, f"cluster/{self.cluster}")

    @property
    def attachment_id(self) -> str:
        t = self.task_id
        return f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:32]}"

    def container_record(self, name: str) -> ContainerRecord:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)


class DeploymentStatus(enum.StrEnum):
    PRIMARY = "PRIMARY"
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class RolloutState(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One rollout of a task definition; tasks it starts carry its id as `startedBy`."""

    id: str
    task_definition: str
    created_at: float
    updated_at: float
    status: DeploymentStatus = DeploymentStatus.PRIMARY
    rollout_state: RolloutState = RolloutState.IN_PROGRESS
    rollout_state_reason: str = ""
    failed_tasks: int = 0
    circuit_breaker: bool = False
    rollback: bool = False
    load_balancers: tuple[dict[str, Any], ...] = ()
    """The service's `loadBalancers` when this deployment began: its tasks register there."""


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    id: str
    created_at: float
    message: str


@dataclass(frozen=True)
class ServiceSpec:
    """What was asked of a service: written by the ECS API (Create/Update/DeleteService) and
    by Application Auto Scaling (the desired count), never by the scheduler."""

    name: str
    cluster: str
    region: str
    task_definition: str
    desired_count: int
    created_at: float
    deployment_id: str
    """The deployment this spec asks for; a new id asks for a new deployment."""
    deployment_at: float
    """When that deployment was asked for (its createdAt)."""
    status: str = "ACTIVE"
    """ACTIVE or DRAINING (DeleteService); INACTIVE is the scheduler's (`ServiceState`)."""
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    circuit_breaker: bool = False
    rollback: bool = False
    health_check_grace_period: int = 0
    network_configuration: dict[str, Any] | None = None
    load_balancers: tuple[dict[str, Any], ...] = ()
    launch_type: str = "FARGATE"
    platform_version: str = "LATEST"
    capacity_provider_strategy: tuple[dict[str, Any], ...] = ()
    """Set instead of launch_type when the service runs on capacity providers."""


@dataclass(frozen=True)
class ServiceState:
    """What the service scheduler made of a spec: written by the scheduler only."""

    deployments: tuple[Deployment, ...] = ()
    launch_failures: int = 0
    """Consecutive tasks that stopped before reaching RUNNING (the start throttle)."""
    next_launch_at: float = 0.0
    """Control-plane time before which the throttle allows no new task."""
    counted_stops: tuple[str, ...] = ()
    """Stopped tasks already counted as failures (or not); bounded by task retention."""
    running_seen: tuple[str, ...] = ()
    """Live tasks already seen RUNNING; a new one resets the start throttle."""
    steady_since: float | None = None
    steady_event_at: float | None = None
    blocked_event_at: float | None = None
    inactive: bool = False
    """A DRAINING service whose last task stopped: INACTIVE."""


@dataclass(frozen=True)
class Service(ServiceState, ServiceSpec):
    """A service as read (`service_view`): its spec and its state in one record, with its
    events. `task_definition` and `load_balancers` are the PRIMARY deployment's (a rollback
    changes them, as on ECS); `status` is INACTIVE once the state says so. Pure decisions take
    and return this view; the store persists only the writer's half of it (`spec_of` for the
    API and the autoscaler, `state_of` for the scheduler) and appends new events, so no writer
    can overwrite another's fields."""

    events: tuple[ServiceEvent, ...] = ()
    """Newest first, at most 100, as DescribeServices returns them."""

    @property
    def arn(self) -> str:
        return arn(self.region, f"service/{self.cluster}/{self.name}")

    @property
    def primary(self) -> Deployment:
        return next(d for d in self.deployments if d.status is DeploymentStatus.PRIMARY)


MAX_EVENTS = 100


def add_event(service: Service, message: str, now: float) -> Service:
    """The one way to add a service event; the store appends the events a write adds."""
    event = ServiceEvent(id=str(uuid.uuid4()), created_at=now, message=message)
    return dataclasses.replace(service, events=(event, *service.events)[:MAX_EVENTS])


def new_deployment_id() -> str:
    return f"ecs-svc/{random.randrange(10**18, 10**19)}"


def new_deployment(
    task_definition: str,
    now: float,
    circuit_breaker: bool,
    rollback: bool,
    load_balancers: tuple[dict[str, Any], ...] = (),
    deployment_id: str | None = None,
) -> Deployment:
    return Deployment(
        id=deployment_id or new_deployment_id(),
        task_definition=task_definition,
        created_at=now,
        updated_at=now,
        circuit_breaker=circuit_breaker,
        rollback=rollback,
        load_balancers=load_balancers,
    )


def adopt_deployment(spec: ServiceSpec, state: ServiceState) -> ServiceState:
    """The state with the deployment the spec asks for as PRIMARY (the previous PRIMARY
    demoted to ACTIVE, the start throttle reset), as ECS does on CreateService and on an
    UpdateService that needs a new deployment. Readers see it at once; the scheduler's next
    write records it."""
    if any(d.id == spec.deployment_id for d in state.deployments):
        return state
    at = spec.deployment_at
    deployment = new_deployment(
        spec.task_definition,
        at,
        spec.circuit_breaker,
        spec.rollback,
        spec.load_balancers,
        deployment_id=spec.deployment_id,
    )
    demoted = tuple(
        dataclasses.replace(d, status=DeploymentStatus.ACTIVE, updated_at=at)
        if d.status is DeploymentStatus.PRIMARY
        else d
        for d in state.deployments
    )
    return dataclasses.replace(
        state,
        deployments=(deployment, *demoted),
        launch_failures=0,
        next_launch_at=0.0,
        blocked_event_at=None,
    )


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ServiceSpec))
_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(ServiceState))


def service_view(
    spec: ServiceSpec, state: ServiceState, events: tuple[ServiceEvent, ...] = ()
) -> Service:
    state = adopt_deployment(spec, state)
    values = {name: getattr(spec, name) for name in _SPEC_FIELDS}
    values.update({name: getattr(state, name) for name in _STATE_FIELDS})
    primary = next(d for d in state.deployments if d.status is DeploymentStatus.PRIMARY)
    values.update(
        task_definition=primary.task_definition,
        load_balancers=primary.load_balancers,
        status="INACTIVE" if state.inactive else spec.status,
    )
    return Service(**values, events=events)


def spec_of(service: Service) -> ServiceSpec:
    spec = ServiceSpec(**{name: getattr(service, name) for name in _SPEC_FIELDS})
    if spec.status == "INACTIVE":
        spec = dataclasses.replace(spec, status="DRAINING")
    return spec


def state_of(service: Service) -> ServiceState:
    state = ServiceState(**{name: getattr(service, name) for name in _STATE_FIELDS})
    return dataclasses.replace(state, inactive=service.status == "INACTIVE")
