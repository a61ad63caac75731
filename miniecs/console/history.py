"""The last minutes of what the console charts: each task's CPU (the sampler's latest, in % of
its reservation) and each service's desired and running count, one point per console tick.

Per-task CPU is kept here because AWS/ECS has no per-task series (the study's point) and
ECS/ContainerInsights only has one when it is switched on; the service average drawn over it
comes from CloudWatch (GetMetricData), not from here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from miniecs.metrics.view import UsageView


@dataclass(frozen=True, slots=True)
class Point:
    t: float
    """Control-plane clock time."""
    tasks: dict[str, float]
    """Task id → CPU % of its reservation (RUNNING tasks with a sample)."""
    services: dict[str, tuple[int, int]]
    """`cluster/service` → (desired, running)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "tasks": {k: round(v, 1) for k, v in self.tasks.items()},
            "services": {k: list(v) for k, v in self.services.items()},
        }


def point(view: UsageView) -> Point:
    tasks: dict[str, float] = {}
    services: dict[str, tuple[int, int]] = {}
    for cluster in view.clusters:
        for service in cluster.services:
            services[f"{cluster.name}/{service.name}"] = (service.desired, service.running)
            for task in service.tasks:
                if task.cpu_percent is not None:
                    tasks[task.task_id] = task.cpu_percent
        for task in cluster.standalone_tasks:
            if task.cpu_percent is not None:
                tasks[task.task_id] = task.cpu_percent
    return Point(view.now, tasks, services)


class History:
    """At most `size` points, oldest first."""

    def __init__(self, size: int) -> None:
        self.points: deque[Point] = deque(maxlen=size)

    def add(self, p: Point) -> None:
        self.points.append(p)

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.points]
