"""The live usage view: clusters → services (desired/running/pending, the service's CPU and
memory by AWS/ECS's formula) → each task's own CPU and memory with its containers.

It joins the desired and actual state in the store with the sampler's latest usage
(`TaskUsage`), so a reader sees the service average next to every task's own figure. The
endpoint serves it as JSON (`GET /_miniecs/usage`, read by `miniecs top`) and the Prometheus
collector turns it into gauges. Percentages use CloudWatch's names and scale (0..100); a service
or task without a sample has no figure (None), as CloudWatch has no datapoint for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from miniecs.metrics.loadbalancing import LoadBalancerCounters
from miniecs.metrics.usage import ContainerUsage, TaskUsage
from miniecs.model import Task, TaskStatus
from miniecs.store import Store


def _percent(used: float, reserved: float) -> float | None:
    return 100.0 * used / reserved if reserved else None


@dataclass(frozen=True, slots=True)
class ContainerView:
    name: str
    usage: ContainerUsage | None

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "containerName": self.name,
            "cpuUtilization": u.cpu_percent if u else None,
            "memoryUtilization": u.memory_percent if u else None,
            "cpuUtilized": u.cpu_units if u else None,
            "cpuReserved": u.cpu_reserved if u else None,
            "memoryUtilized": u.memory_mib if u else None,
            "memoryReserved": u.memory_reserved_mib if u else None,
        }


@dataclass(frozen=True, slots=True)
class TaskView:
    task_id: str
    last_status: str
    usage: TaskUsage | None
    containers: tuple[ContainerView, ...]

    @property
    def cpu_percent(self) -> float | None:
        return self.usage.cpu_percent if self.usage else None

    @property
    def memory_percent(self) -> float | None:
        return self.usage.memory_percent if self.usage else None

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "taskId": self.task_id,
            "lastStatus": self.last_status,
            "cpuUtilization": self.cpu_percent,
            "memoryUtilization": self.memory_percent,
            "cpuUtilized": u.cpu_units if u else None,
            "cpuReserved": u.cpu_reserved if u else None,
            "memoryUtilized": u.memory_mib if u else None,
            "memoryReserved": u.memory_reserved_mib if u else None,
            "sampledAt": u.timestamp if u else None,
            "containers": [c.to_json() for c in self.containers],
        }


@dataclass(frozen=True, slots=True)
class ServiceView:
    name: str
    desired: int
    running: int
    pending: int
    tasks: tuple[TaskView, ...]

    def _utilization(self, used: str, reserved: str) -> float | None:
        """AWS/ECS's formula: Σ used by the service's tasks ÷ Σ reserved by them, in percent."""
        sampled = [t.usage for t in self.tasks if t.usage is not None]
        return _percent(
            sum(getattr(u, used) for u in sampled), sum(getattr(u, reserved) for u in sampled)
        )

    @property
    def cpu_percent(self) -> float | None:
        return self._utilization("cpu_units", "cpu_reserved")

    @property
    def memory_percent(self) -> float | None:
        return self._utilization("memory_mib", "memory_reserved_mib")

    def to_json(self) -> dict[str, Any]:
        return {
            "serviceName": self.name,
            "desiredCount": self.desired,
            "runningCount": self.running,
            "pendingCount": self.pending,
            "cpuUtilization": self.cpu_percent,
            "memoryUtilization": self.memory_percent,
            "tasks": [t.to_json() for t in self.tasks],
        }


@dataclass(frozen=True, slots=True)
class ClusterView:
    name: str
    container_insights: str
    services: tuple[ServiceView, ...]
    standalone_tasks: tuple[TaskView, ...]
    """Tasks not started by a service (RunTask)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "clusterName": self.name,
            "containerInsights": self.container_insights,
            "services": [s.to_json() for s in self.services],
            "tasks": [t.to_json() for t in self.standalone_tasks],
        }


@dataclass(frozen=True, slots=True)
class UsageView:
    now: float
    """Control-plane clock time of the view."""
    clusters: tuple[ClusterView, ...]
    load_balancers: tuple[LoadBalancerCounters, ...] = ()
    """The load balancers' counters and target health (Prometheus only)."""

    def to_json(self) -> dict[str, Any]:
        return {"now": self.now, "clusters": [c.to_json() for c in self.clusters]}


def _task_view(task: Task, usage: TaskUsage | None) -> TaskView:
    by_name = {c.container_name: c for c in usage.containers} if usage else {}
    return TaskView(
        task.task_id,
        task.last_status.value,
        usage,
        tuple(ContainerView(c.name, by_name.get(c.name)) for c in task.containers),
    )


def usage_view(
    store: Store,
    usages: Iterable[TaskUsage],
    now: float,
    load_balancers: Iterable[LoadBalancerCounters] = (),
) -> UsageView:
    """The view of every ACTIVE cluster's services and live tasks, with the latest usage of
    each task that has one (only RUNNING tasks are sampled), and `load_balancers`."""
    latest = {u.task_id: u for u in usages}
    clusters = []
    for cluster in store.list_clusters():
        if cluster.status != "ACTIVE":
            continue
        tasks = store.list_tasks(cluster=cluster.name, live_only=True)
        services = []
        for service in store.list_services(cluster.name):
            if service.status == "INACTIVE":
                continue
            mine = [t for t in tasks if t.service == service.name]
            services.append(
                ServiceView(
                    service.name,
                    service.desired_count,
                    sum(t.last_status is TaskStatus.RUNNING for t in mine),
                    sum(t.last_status.rank < TaskStatus.RUNNING.rank for t in mine),
                    tuple(_task_view(t, latest.get(t.task_id)) for t in mine),
                )
            )
        standalone = tuple(_task_view(t, latest.get(t.task_id)) for t in tasks if t.service is None)
        clusters.append(
            ClusterView(
                cluster.name,
                cluster.setting("containerInsights") or "disabled",
                tuple(services),
                standalone,
            )
        )
    return UsageView(now, tuple(clusters), tuple(load_balancers))
