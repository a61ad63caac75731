"""What the sampler knows right now: the latest CPU and memory use of each running task and of
its containers, in ECS's units (CPU units, 1024 per vCPU; MiB). `top`, Prometheus and the
publishers read these; CloudWatch series are built from them."""

from __future__ import annotations

from dataclasses import dataclass


def percent(used: float, reserved: float) -> float:
    """`used` as a percentage of `reserved` (0 without a reservation)."""
    return 100.0 * used / reserved if reserved else 0.0


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    container_name: str
    cpu_units: float
    """CPU units used over the last sampling interval (1024 = one vCPU busy)."""
    cpu_reserved: float
    """The container's CPU units (its own `cpu`, or its share of the task's)."""
    memory_mib: float
    """Memory used, page cache excluded."""
    memory_reserved_mib: float
    rx_bytes: float = 0.0
    """Bytes per second received over the last sampling interval (the task's network)."""
    tx_bytes: float = 0.0
    """Bytes per second sent over the last sampling interval."""
    read_bytes: float = 0.0
    """Bytes read from storage during the last sampling interval."""
    write_bytes: float = 0.0
    """Bytes written to storage during the last sampling interval."""

    @property
    def cpu_percent(self) -> float:
        return percent(self.cpu_units, self.cpu_reserved)

    @property
    def memory_percent(self) -> float:
        return percent(self.memory_mib, self.memory_reserved_mib)


@dataclass(frozen=True, slots=True)
class TaskUsage:
    task_id: str
    cluster: str
    group: str
    """`service:<name>` for a service's task, else `family:<family>` (ECS's task group)."""
    task_definition_family: str
    cpu_reserved: float
    """The task's CPU units (task-level `cpu`)."""
    memory_reserved_mib: float
    containers: tuple[ContainerUsage, ...]
    timestamp: float
    """Control-plane clock time of the sample."""

    @property
    def service(self) -> str | None:
        return self.group.partition(":")[2] if self.group.startswith("service:") else None

    @property
    def cpu_units(self) -> float:
        return sum(c.cpu_units for c in self.containers)

    @property
    def memory_mib(self) -> float:
        return sum(c.memory_mib for c in self.containers)

    @property
    def cpu_percent(self) -> float:
        return percent(self.cpu_units, self.cpu_reserved)

    @property
    def memory_percent(self) -> float:
        return percent(self.memory_mib, self.memory_reserved_mib)
