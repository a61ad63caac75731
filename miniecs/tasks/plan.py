"""What a task needs next, decided from its record and what the engine shows. Pure.

`plan_task(task, td, observed, now)` folds the observation into the record (container states,
exit codes, health, IP, status moving only forward) and names at most one action for the
controller to run: provision (create the containers), start (the containers whose dependencies
are met), or teardown (stop, record exits, remove). Re-planning after a restart or a lost
action gives the same answer, which is what makes the controller safe to kill.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from miniecs.model import (
    ContainerRecord,
    HealthStatus,
    StopCode,
    Task,
    TaskDefinition,
    TaskStatus,
)
from miniecs.runtime.base import PAUSE_CONTAINER, ContainerObservation
from miniecs.tasks.specs import expected_containers

ESSENTIAL_EXITED = "Essential container in task exited"
DEFAULT_START_TIMEOUT = 180.0
"""Seconds a task may wait in PENDING for its containers' dependencies (Fargate's default)."""


def start_timeout(td: TaskDefinition) -> float:
    timeouts = [float(c["startTimeout"]) for c in td.containers if c.get("startTimeout")]
    return max(timeouts) if timeouts else DEFAULT_START_TIMEOUT


class ActionKind(enum.StrEnum):
    PROVISION = "provision"
    START = "start"
    TEARDOWN = "teardown"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    containers: tuple[str, ...] = ()
    """ECS container names the action applies to (start: those to start now)."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TaskStep:
    task: Task
    action: Action | None = None


def advance(task: Task, status: TaskStatus, now: float) -> Task:
    """Move `task` forward to `status`, stamping ECS's timestamps; never backward."""
    if status.rank <= task.last_status.rank:
        return task
    changes: dict[str, object] = {"last_status": status}
    if status.rank >= TaskStatus.PENDING.rank and task.pull_stopped_at is None:
        changes["pull_stopped_at"] = now
        if task.pull_started_at is None:
            changes["pull_started_at"] = now
    if status is TaskStatus.RUNNING:
        changes["started_at"] = now
        changes["connectivity_at"] = task.connectivity_at or now
    if status.rank >= TaskStatus.STOPPING.rank and task.stopping_at is None:
        changes["stopping_at"] = now
    if status is TaskStatus.STOPPED:
        changes["execution_stopped_at"] = task.execution_stopped_at or now
        changes["stopped_at"] = now
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def request_stop(task: Task, code: StopCode, reason: str) -> Task:
    """Set desiredStatus STOPPED with its cause; the first cause given is the one kept."""
    if task.desired_status is TaskStatus.STOPPED:
        return task
    return dataclasses.replace(
        task, desired_status=TaskStatus.STOPPED, stop_code=code, stopped_reason=reason
    )


def _container_status(obs: ContainerObservation | None, record: ContainerRecord) -> str:
    if obs is None:
        return "STOPPED" if record.runtime_id else record.last_status
    if obs.running:
        return "RUNNING"
    if obs.state in ("exited", "dead"):
        return "STOPPED"
    return "PENDING"


def _health(obs: ContainerObservation | None, record: ContainerRecord) -> HealthStatus:
    if not record.has_health_check or obs is None or not obs.running:
        return HealthStatus.UNKNOWN if obs is None or obs.running else record.health_status
    return {"healthy": HealthStatus.HEALTHY, "unhealthy": HealthStatus.UNHEALTHY}.get(
        obs.health or "", HealthStatus.UNKNOWN
    )


def task_health(containers: tuple[ContainerRecord, ...]) -> HealthStatus:
    """ECS's rule: UNHEALTHY if any essential container is; HEALTHY if all checked ones are."""
    checked = [c for c in containers if c.essential and c.has_health_check]
    if any(c.health_status is HealthStatus.UNHEALTHY for c in checked):
        return HealthStatus.UNHEALTHY
    if checked and all(c.health_status is HealthStatus.HEALTHY for c in checked):
        return HealthStatus.HEALTHY
    return HealthStatus.UNKNOWN


def observe(task: Task, observed: dict[str, ContainerObservation]) -> Task:
    """Fold the engine's view into the task's container records, IP and health."""
    records = []
    for record in task.containers:
        obs = observed.get(record.name)
        exit_code = record.exit_code
        if obs is not None and obs.exit_code is not None and not obs.running:
            exit_code = obs.exit_code
        records.append(
            dataclasses.replace(
                record,
                runtime_id=obs.runtime_id if obs else record.runtime_id,
                last_status=_container_status(obs, record),
                exit_code=exit_code,
                health_status=_health(obs, record),
            )
        )
    containers = tuple(records)
    owner = observed.get(PAUSE_CONTAINER) or next(
        (observed[c.name] for c in task.containers if c.name in observed and observed[c.name].ip),
        None,
    )
    return dataclasses.replace(
        task,
        containers=containers,
        health_status=task_health(containers),
        private_ip=(owner.ip if owner and owner.ip else task.private_ip),
        mac_address=(owner.mac if owner and owner.mac else task.mac_address),
    )


def _dependencies_met(
    container: str, td: TaskDefinition, observed: dict[str, ContainerObservation]
) -> bool | None:
    """True when `container` may start, False to keep waiting, None if it never can."""
    for dep in td.container(container).get("dependsOn") or []:
        obs = observed.get(dep["containerName"])
        if obs is None:
            return False
        condition = dep["condition"]
        exited = obs.state in ("exited", "dead")
        if condition == "START" and not obs.started:
            return False
        if condition == "COMPLETE" and not exited:
            return False
        if condition == "SUCCESS":
            if exited and obs.exit_code not in (0, None):
                return None
            if not exited:
                return False
        if condition == "HEALTHY":
            if obs.health == "unhealthy" or exited:
                return None
            if obs.health != "healthy":
                return False
    return True


def plan_task(
    task: Task,
    td: TaskDefinition,
    observed: dict[str, ContainerObservation],
    now: float,
    hold: bool = False,
) -> TaskStep:
    """The next step for one task. `observed` maps ECS container names to observations.
    `hold`: the task is still registered with a load balancer (draining); a running task
    that must stop waits in DEACTIVATING until it is deregistered, as ECS does."""
    if task.last_status is TaskStatus.STOPPED:
        if observed:
            return TaskStep(task, Action(ActionKind.TEARDOWN, reason="stray containers"))
        return TaskStep(task)
    task = observe(task, observed)
    expected = expected_containers(td)

    if (
        task.desired_status is TaskStatus.RUNNING
        and task.last_status.rank >= TaskStatus.PENDING.rank
    ):
        for record in task.containers:
            obs = observed.get(record.name)
            gone = obs is None and record.runtime_id is not None
            if record.essential and (gone or (obs is not None and obs.state in ("exited", "dead"))):
                task = request_stop(task, StopCode.ESSENTIAL_CONTAINER_EXITED, ESSENTIAL_EXITED)
                break

    if task.desired_status is TaskStatus.STOPPED:
        if (
            hold
            and any(o.running for o in observed.values())
            and task.last_status.rank >= TaskStatus.RUNNING.rank
        ):
            return TaskStep(advance(task, TaskStatus.DEACTIVATING, now))
        if observed:
            task = advance(task, TaskStatus.STOPPING, now)
            return TaskStep(task, Action(ActionKind.TEARDOWN, reason=task.stopped_reason or ""))
        task = advance(task, TaskStatus.STOPPED, now)
        containers = tuple(
            dataclasses.replace(c, last_status="STOPPED", health_status=HealthStatus.UNKNOWN)
            for c in task.containers
        )
        return TaskStep(dataclasses.replace(task, containers=containers))

    if task.last_status is TaskStatus.PROVISIONING:
        if all(name in observed for name in expected):
            return TaskStep(advance(task, TaskStatus.PENDING, now))
        if task.pull_started_at is None:
            task = dataclasses.replace(task, pull_started_at=now)
        return TaskStep(task, Action(ActionKind.PROVISION, reason="create containers"))

    if task.last_status is TaskStatus.PENDING:
        pending_since = task.pull_stopped_at or task.created_at
        if now - pending_since > start_timeout(td):
            task = request_stop(
                task,
                StopCode.TASK_FAILED_TO_START,
                "Task failed to start: container dependencies were not met within startTimeout",
            )
            return TaskStep(
                advance(task, TaskStatus.STOPPING, now),
                Action(ActionKind.TEARDOWN, reason="start timeout"),
            )
        if any(name not in observed for name in expected):
            return TaskStep(task, Action(ActionKind.PROVISION, reason="re-create missing"))
        to_start: list[str] = []
        for record in task.containers:
            obs = observed[record.name]
            if obs.started:
                continue
            met = _dependencies_met(record.name, td, observed)
            if met is None:
                task = request_stop(
                    task,
                    StopCode.TASK_FAILED_TO_START,
                    f"Task failed to start: dependency of container '{record.name}' failed",
                )
                return TaskStep(
                    advance(task, TaskStatus.STOPPING, now),
                    Action(ActionKind.TEARDOWN, reason="dependency failed"),
                )
            if met:
                to_start.append(record.name)
        if to_start:
            return TaskStep(task, Action(ActionKind.START, tuple(to_start), "dependencies met"))
        all_started = all(observed[r.name].started for r in task.containers)
        essentials_up = all(observed[r.name].running for r in task.containers if r.essential)
        if all_started and essentials_up:
            return TaskStep(advance(task, TaskStatus.RUNNING, now))
    return TaskStep(task)
