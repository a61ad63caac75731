"""A service's tasks in its load balancers' target groups, as ECS keeps them there.

For a service with `loadBalancers`, ECS registers each task's private IP and container port
in the target groups once the task is RUNNING, deregisters a task chosen to stop (the task
waits in DEACTIVATING while the target drains) and counts a task as healthy only when its
target groups say so. The target groups themselves belong to the load balancer; the scheduler
reaches them through the small `LoadBalancing` protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from miniecs.model import Service, Task, TaskStatus

UNREGISTERED = "unregistered"
"""The state a task has in a target group it is not (yet) registered in."""


class LoadBalancing(Protocol):
    def register_targets(self, tg_arn: str, targets: list[tuple[str, int]]) -> None: ...

    def deregister_targets(self, tg_arn: str, targets: list[tuple[str, int]]) -> None: ...

    def target_health(
        self, tg_arn: str, ip: str, port: int
    ) -> tuple[str, str | None, str | None] | None:
        """(state, reason, description), or None when the target is not registered."""
        ...


@dataclass(frozen=True, slots=True)
class TargetSync:
    """What one pass did to a service's targets, and what the target groups say."""

    registered: dict[str, int] = field(default_factory=dict)
    """Target group ARN → targets registered in this pass."""
    draining: list[str] = field(default_factory=list)
    """Tasks whose deregistration began in this pass."""
    deregistered: dict[str, int] = field(default_factory=dict)
    """Target group ARN → targets whose draining finished since the last pass."""
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Task id → its state in each target group (for health decisions)."""
    failing: dict[str, str] = field(default_factory=dict)
    """Task id → the target group ARN whose health checks it fails."""


def bindings(service: Service, task: Task) -> list[tuple[str, int]]:
    """(target group ARN, container port) pairs of `task`: those of the deployment that
    started it (a changed `loadBalancers` rolls out with a new deployment, as on ECS)."""
    deployment = next((d for d in service.deployments if d.id == task.started_by), None)
    source = deployment.load_balancers if deployment is not None else service.load_balancers
    out = []
    for lb in source:
        arn = lb.get("targetGroupArn")
        port = lb.get("containerPort")
        if arn and port is not None:
            out.append((str(arn), int(port)))
    return out


def _bound_to_stop(task: Task) -> bool:
    return task.desired_status is TaskStatus.STOPPED or task.last_status is TaskStatus.STOPPED


def sync_targets(
    service: Service,
    tasks: Iterable[Task],
    lb: LoadBalancing,
    was_draining: set[tuple[str, str, int]],
) -> TargetSync:
    """Register running tasks, deregister those that must stop, and read target health.
    `was_draining` (tg, ip, port) is carried between passes by the caller and updated here."""
    sync = TargetSync()
    tasks = list(tasks)
    # A replacement may get the IP of a task still draining: that target is the live task's.
    live_ips = {t.private_ip for t in tasks if not _bound_to_stop(t)}
    for task in tasks:
        ip = task.private_ip
        if ip is None or (_bound_to_stop(task) and ip in live_ips):
            continue
        states: list[str] = []
        for tg, port in bindings(service, task):
            health = lb.target_health(tg, ip, port)
            key = (tg, ip, port)
            if _bound_to_stop(task):
                if health is not None and health[0] != "draining":
                    lb.deregister_targets(tg, [(ip, port)])
                    was_draining.add(key)
                    if task.task_id not in sync.draining:
                        sync.draining.append(task.task_id)
                elif health is not None:
                    was_draining.add(key)
                elif key in was_draining:
                    was_draining.discard(key)
                    sync.deregistered[tg] = sync.deregistered.get(tg, 0) + 1
                continue
            if task.last_status is TaskStatus.RUNNING and health is None:
                lb.register_targets(tg, [(ip, port)])
                sync.registered[tg] = sync.registered.get(tg, 0) + 1
                health = ("initial", "Elb.RegistrationInProgress", None)
            states.append(health[0] if health else UNREGISTERED)
            if health is not None and health[0] == "unhealthy":
                sync.failing.setdefault(task.task_id, tg)
        if states:
            sync.states[task.task_id] = tuple(states)
    return sync


def holds(task: Task, service: Service, lb: LoadBalancing) -> bool:
    """True while `task` is still registered (or draining) in one of its target groups."""
    ip = task.private_ip
    return ip is not None and any(
        lb.target_health(tg, ip, port) is not None for tg, port in bindings(service, task)
    )
