"""The `Runtime` seam: what the control plane needs from a container engine.

`runtime/docker.py` implements it on a real Docker engine and `runtime/fake.py` in memory. Every
object a runtime creates carries the labels below, so the control plane can always re-list what
it owns; `instance` scopes them to one state dir, so two miniecs instances never touch each
other's containers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

LABEL_MANAGED = "miniecs.managed"
LABEL_INSTANCE = "miniecs.instance"
LABEL_CLUSTER = "miniecs.cluster"
LABEL_TASK = "miniecs.task"
LABEL_CONTAINER = "miniecs.container"
PAUSE_CONTAINER = "~pause"
"""ECS name of the container that holds a multi-container task's network namespace."""


class ImageUnavailable(Exception):
    """The image is neither present nor pullable (ECS: CannotPullContainerError)."""


class ContainerCreateError(Exception):
    """The engine refused to create the container (ECS: CannotCreateContainerError)."""


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    test: list[str]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything needed to create one task container; built by `tasks.container_specs`."""

    docker_name: str
    task_id: str
    cluster: str
    container_name: str
    image: str
    labels: dict[str, str]
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str | None = None
    """Docker network to attach to; None when joining `netns_of`."""
    netns_of: str | None = None
    """Docker name of the container whose network namespace this one shares."""
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    memory_bytes: int | None = None
    memory_reservation_bytes: int | None = None
    pids_limit: int | None = None
    health_check: HealthCheckSpec | None = None
    init: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    docker_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerObservation:
    """One managed container as the engine reports it in a cheap listing."""

    docker_name: str
    runtime_id: str
    task_id: str
    cluster: str
    container_name: str
    state: str
    """Docker state: created, running, restarting, paused, exited, dead, removing."""
    exit_code: int | None = None
    health: str | None = None
    """Docker health: starting, healthy, unhealthy, or None without a health check."""
    ip: str | None = None
    mac: str | None = None

    @property
    def started(self) -> bool:
        return self.state != "created"

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")


@dataclass(frozen=True, slots=True)
class ExitDetails:
    exit_code: int | None
    oom_killed: bool = False
    error: str | None = None


class Runtime(Protocol):
    """A container engine, reduced to what tasks need. Methods raise RuntimeUnavailable."""

    async def ensure_network(self, cluster: str) -> str:
        """Create (idempotently) the cluster's private task network; returns its id."""
        ...

    async def remove_network(self, cluster: str) -> None: ...

    async def list_containers(self) -> list[ContainerObservation]:
        """Every container of this instance, in any state, in one cheap call."""
        ...

    async def ensure_image(self, image: str, timeout_s: float) -> None:
        """Return when `image` is present, pulling it if needed; raise ImageUnavailable."""
        ...

    async def create_container(self, spec: ContainerSpec) -> str:
        """Create the container (idempotent by name); returns its runtime id."""
        ...

    async def start_container(self, docker_name: str) -> None: ...

    async def stop_container(self, docker_name: str, timeout_s: int) -> None:
        """SIGTERM, then SIGKILL after `timeout_s` seconds; no error if already stopped."""
        ...

    async def exit_details(self, docker_name: str) -> ExitDetails: ...

    async def remove_container(self, docker_name: str) -> None:
        """Remove (forcefully); no error if it is already gone."""
        ...
