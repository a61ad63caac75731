"""The `Runtime` seam: what the control plane needs from a container engine.

`runtime/docker.py` implements it on a real Docker engine and `runtime/fake.py` in memory. Every
object a runtime creates carries the labels below, so the control plane can always re-list what
it owns; `instance` scopes them to one state dir, so two miniecs instances never touch each
other's containers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

LABEL_MANAGED = "miniecs.managed"
LABEL_INSTANCE = "miniecs.instance"
LABEL_CLUSTER = "miniecs.cluster"
LABEL_TASK = "miniecs.task"
LABEL_CONTAINER = "miniecs.container"
LABEL_LOAD_BALANCER = "miniecs.load-balancer"
"""On an ALB data-plane container: the load balancer's ARN."""
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
    sysctls: dict[str, str] = field(default_factory=dict)
    """Namespaced kernel parameters (task definition `systemControls`)."""
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    """(Docker volume name or absolute host path, container path, read-only)."""
    volumes_from: list[str] = field(default_factory=list)
    """Docker names of containers whose mounts this one gets (`name:ro` for read-only)."""
    tty: bool = False
    stdin_open: bool = False


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
class ProxySpec:
    """The container of one load balancer's data plane (built by `alb/controller.py`)."""

    docker_name: str
    image: str
    labels: dict[str, str]
    command: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    """Files written into the container before it starts (path: content)."""
    host_network: bool = True
    """Share the engine host's network; otherwise attach to the instance's task networks and
    publish `ports` on `publish_address` of the engine host."""
    ports: tuple[int, ...] = ()
    publish_address: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ProxyObservation:
    docker_name: str
    state: str
    labels: dict[str, str]

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True, slots=True)
class ExitDetails:
    exit_code: int | None
    oom_killed: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RawUsage:
    """One reading of a container's cumulative counters, as the engine (or its cgroup) gives
    them; `miniecs.metrics.readings` turns two readings into CPU units and rates."""

    read_ns: int
    """When the counters were read: a monotonic nanosecond clock of the source."""
    cpu_ns: int
    """CPU time the container used since it started."""
    memory_bytes: int
    """Memory usage, page cache included (cgroup `memory.usage_in_bytes` / `memory.current`)."""
    inactive_file_bytes: int = 0
    """Inactive page cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2)."""
    system_ns: int | None = None
    """The host's cumulative CPU time (stats API `system_cpu_usage`); None from the cgroup."""
    online_cpus: int = 1
    rx_bytes: int = 0
    tx_bytes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    source: str = "stats"
    """Where the reading came from: `cgroup` or `stats`."""


def inactive_file(stat: Mapping[str, int]) -> int:
    """The page cache docker's CLI subtracts from memory usage: `total_inactive_file` on
    cgroup v1 when present, else `inactive_file` (v2)."""
    if "total_inactive_file" in stat:
        return int(stat["total_inactive_file"])
    return int(stat.get("inactive_file", 0))


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

    async def container_usage(self, runtime_ids: Sequence[str]) -> dict[str, RawUsage]:
        """The latest counters of many running containers at once, by runtime id; a container
        the engine cannot report (gone, not started yet) is left out."""
        ...

    async def host_network_usable(self) -> bool:
        """True when the engine runs on this Linux host, so a container on the host network
        binds ports this machine reaches and routes to task IPs (not Docker Desktop/remote)."""
        ...

    async def run_proxy(self, spec: ProxySpec) -> str:
        """Create the container, write `spec.files` into it, start it; returns its id."""
        ...

    async def list_proxies(self) -> list[ProxyObservation]:
        """Every load-balancer container of this instance, in any state."""
        ...

    async def put_file(self, docker_name: str, path: str, data: bytes) -> None:
        """Write `data` to `path` inside the container (its directory is created); raises
        ContainerCreateError when the container is gone."""
        ...

    async def read_file(self, docker_name: str, path: str) -> bytes | None:
        """The content of `path` inside the container; None when the file or container is
        missing."""
        ...

    def container_deaths(self) -> AsyncIterator[tuple[str, str]]:
        """(task id, ECS container name) of this instance's task containers as the engine
        reports them dying, for as long as the caller iterates (raises RuntimeUnavailable)."""
        ...

    def log_lines(self, docker_name: str, since_s: int) -> Iterator[tuple[int, bytes]]:
        """Blocking (run it in a thread): the container's stdout and stderr lines from epoch
        second `since_s` on, as (timestamp ns, line without its newline), following until the
        container stops."""
        ...

    def is_running(self, docker_name: str) -> bool:
        """Blocking: whether the container exists and runs."""
        ...

    async def host_ulimits(self) -> dict[str, int]:
        """Hard limits (by Docker ulimit name) above which the engine cannot set a
        container's; {} when unknown."""
        ...

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create the named volume unless it exists."""
        ...

    async def remove_volume(self, name: str) -> None:
        """Remove the named volume; no error if it is gone or still in use."""
        ...

    async def cpu_architecture(self) -> str:
        """The engine's CPU architecture in ECS's words: X86_64 or ARM64."""
        ...
