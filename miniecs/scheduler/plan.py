"""What one service needs next, decided from its record and its tasks. Pure.

`plan_service(service, tasks, now)` returns the updated service record (deployments, events,
start throttle, circuit breaker) and the tasks to start and stop, each with the reason ECS
would give. The rules are ECS's:

- a deployment may run at most floor(desired x maximumPercent / 100) tasks and must keep at
  least ceil(desired x minimumHealthyPercent / 100) healthy ones;
- "healthy" means the essential containers' health checks say HEALTHY or, with none,
  40 s after RUNNING; behind a load balancer, also healthy in every target group;
- tasks that never reach RUNNING throttle new starts, with growing delays up to 15 minutes;
- the circuit breaker fails a deployment after clamp(ceil(desired / 2), 3, 200) failed tasks,
  and with rollback returns to the last completed deployment;
- UNHEALTHY tasks, and tasks failing their target group's health checks, are stopped and
  replaced once the grace period has passed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from miniecs.model import (
    Deployment,
    DeploymentStatus,
    HealthStatus,
    RolloutState,
    Service,
    StopCode,
    Task,
    TaskStatus,
    add_event,
    new_deployment,
)

HEALTHY_AFTER_RUNNING = 40.0
"""Seconds after RUNNING a task without health checks counts as healthy (ECS's rule)."""
THROTTLE_AFTER = 3
"""Consecutive launch failures before the start throttle engages."""
THROTTLE_BASE = 10.0
THROTTLE_MAX = 900.0
STEADY_STATE_REPEAT = 6 * 3600.0
"""ECS repeats 'has reached a steady state.' every 6 hours while nothing changes."""
UNHEALTHY_REASON = "Task failed container health checks"
CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."


@dataclass(frozen=True, slots=True)
class StopOrder:
    task_id: str
    reason: str
    code: StopCode = StopCode.SERVICE_SCHEDULER_INITIATED


@dataclass(frozen=True, slots=True)
class ServicePlan:
    service: Service
    start: int = 0
    """How many tasks of the PRIMARY deployment to start now."""
    stop: tuple[StopOrder, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Why the plan is what it is, in plain words."""


def circuit_breaker_threshold(desired: int) -> int:
    return min(200, max(3, math.ceil(0.5 * desired)))


def bounds(desired: int, minimum_pct: int, maximum_pct: int) -> tuple[int, int]:
    """(fewest healthy tasks to keep, most tasks that may exist) during a deployment."""
    return math.ceil(desired * minimum_pct / 100), math.floor(desired * maximum_pct / 100)


def is_healthy(task: Task, now: float, target_states: tuple[str, ...] | None = None) -> bool:
    """ECS's meaning of healthy for minimumHealthyPercent. `target_states`: the task's state
    in each of its service's target groups, for a service behind a load balancer."""
    if task.last_status is not TaskStatus.RUNNING or task.desired_status is not TaskStatus.RUNNING:
        return False
    checked = any(c.essential and c.has_health_check for c in task.containers)
    if checked and task.health_status is not HealthStatus.HEALTHY:
        return False
    if target_states is not None:
        return bool(target_states) and all(s == "healthy" for s in target_states)
    if checked:
        return True
    return task.started_at is not None and now - task.started_at >= HEALTHY_AFTER_RUNNING


Healthy = Callable[[Task], bool]


def _short(task_id: str) -> str:
    return f"(task {task_id})"


def _replace_deployment(service: Service, deployment: Deployment) -> Service:
    return dataclasses.replace(
        service,
        deployments=tuple(deployment if d.id == deployment.id else d for d in service.deployments),
    )


def _count_failures(service: Service, tasks: list[Task], now: float) -> Service:
    """Fold tasks stopped since the last pass into failure counts and the start throttle."""
    stopped = [t for t in tasks if t.last_status is TaskStatus.STOPPED]
    newly_stopped = [t for t in stopped if t.task_id not in service.counted_stops]
    running = [t for t in tasks if t.last_status is TaskStatus.RUNNING]
    started_since = any(t.task_id not in service.running_seen for t in running)
    launch_failures = 0 if started_since else service.launch_failures
    next_launch_at = service.next_launch_at
    for task in newly_stopped:
        if task.stop_code in (StopCode.SERVICE_SCHEDULER_INITIATED, StopCode.USER_INITIATED):
            continue
        deployment = next((d for d in service.deployments if d.id == task.started_by), None)
        if deployment is not None:
            service = _replace_deployment(
                service,
                dataclasses.replace(
                    deployment, failed_tasks=deployment.failed_tasks + 1, updated_at=now
                ),
            )
        if task.started_at is None:
            launch_failures += 1
            if launch_failures >= THROTTLE_AFTER:
                delay = min(THROTTLE_MAX, THROTTLE_BASE * 2 ** (launch_failures - THROTTLE_AFTER))
                next_launch_at = now + delay
                service = add_event(
                    service,
                    f"service ({service.name}) is unable to consistently start tasks successfully.",
                    now,
                )
    return dataclasses.replace(
        service,
        counted_stops=tuple(t.task_id for t in stopped),
        running_seen=tuple(t.task_id for t in running),
        launch_failures=launch_failures,
        next_launch_at=next_launch_at if launch_failures >= THROTTLE_AFTER else 0.0,
    )


def _circuit_breaker(service: Service, now: float) -> Service:
    primary = service.primary
    if not primary.circuit_breaker or primary.rollout_state is not RolloutState.IN_PROGRESS:
        return service
    if primary.failed_tasks < circuit_breaker_threshold(service.desired_count):
        return service
    failed = dataclasses.replace(
        primary,
        rollout_state=RolloutState.FAILED,
        rollout_state_reason=CIRCUIT_BREAKER_REASON,
        updated_at=now,
    )
    service = _replace_deployment(service, failed)
    service = add_event(
        service,
        f"(service {service.name}) (deployment {primary.id}) deployment failed: "
        "tasks failed to start.",
        now,
    )
    if not primary.rollback:
        return service
    completed = next(
        (
            d
            for d in service.deployments
            if d.id != primary.id and d.rollout_state is RolloutState.COMPLETED
        ),
        None,
    )
    if completed is None:
        return service
    back = new_deployment(
        completed.task_definition, now, primary.circuit_breaker, True, completed.load_balancers
    )
    demoted = dataclasses.replace(failed, status=DeploymentStatus.ACTIVE)
    service = dataclasses.replace(
        service,
        task_definition=completed.task_definition,
        load_balancers=completed.load_balancers,
        deployments=(back, *(demoted if d.id == primary.id else d for d in service.deployments)),
        launch_failures=0,
        next_launch_at=0.0,
    )
    return add_event(
        service,
        f"(service {service.name}) (deployment {back.id}) rolling back to deployment "
        f"{completed.id}.",
        now,
    )


def _stop_preference(task: Task, healthy: Healthy) -> tuple[int, float]:
    """Stop tasks that are not running first, then not yet healthy ones, then the newest."""
    rank = 0 if task.last_status is not TaskStatus.RUNNING else 1 + healthy(task)
    return (rank, -(task.started_at or task.created_at))


def plan_service(
    service: Service,
    tasks: list[Task],
    now: float,
    target_states: Mapping[str, tuple[str, ...]] | None = None,
    failing_elb: Mapping[str, str] | None = None,
) -> ServicePlan:
    """The next step for one service; `tasks` are all its tasks the store still has.
    For tasks registered in target groups, `target_states` maps their ids to their state in
    each group and `failing_elb` names the target group a task fails checks in."""
    notes: list[str] = []

    def ok(task: Task) -> bool:
        # A task of a deployment without target groups goes by ECS's rule alone.
        states = (target_states or {}).get(task.task_id)
        return is_healthy(task, now, states)

    service = _count_failures(service, tasks, now)
    service = _circuit_breaker(service, now)
    primary = service.primary
    desired = 0 if service.status != "ACTIVE" else service.desired_count
    live = [t for t in tasks if t.last_status is not TaskStatus.STOPPED]
    wanted = [t for t in live if t.desired_status is TaskStatus.RUNNING]
    stops: list[StopOrder] = []

    for task in wanted:
        grace_over = (
            task.started_at is not None
            and now >= task.started_at + service.health_check_grace_period
        )
        elb_failed = (failing_elb or {}).get(task.task_id)
        if grace_over and (task.health_status is HealthStatus.UNHEALTHY or elb_failed):
            reason = (
                UNHEALTHY_REASON
                if task.health_status is HealthStatus.UNHEALTHY
                else f"Task failed ELB health checks in (target-group {elb_failed})"
            )
            stops.append(StopOrder(task.task_id, reason))
            deployment = next((d for d in service.deployments if d.id == task.started_by), None)
            if deployment is not None:
                service = _replace_deployment(
                    service,
                    dataclasses.replace(deployment, failed_tasks=deployment.failed_tasks + 1),
                )
    stopping_ids = {s.task_id for s in stops}
    wanted = [t for t in wanted if t.task_id not in stopping_ids]
    primary = service.primary
    current = [t for t in wanted if t.started_by == primary.id]
    old = [t for t in wanted if t.started_by != primary.id]
    min_healthy, max_tasks = bounds(
        desired, service.minimum_healthy_percent, service.maximum_percent
    )
    healthy = sum(ok(t) for t in wanted)

    start = 0
    can_launch = primary.rollout_state is not RolloutState.FAILED
    if desired > len(current) and can_launch:
        room = max_tasks - len(live)
        start = max(0, min(desired - len(current), room))
        if start and now < service.next_launch_at:
            notes.append(f"start throttled until {service.next_launch_at:.0f}")
            start = 0
        elif start and service.launch_failures >= THROTTLE_AFTER:
            start = 1
        if desired > len(current) and room <= 0:
            notes.append(f"no room to start: {len(live)} tasks, maximumPercent allows {max_tasks}")

    if len(current) > desired:
        excess = sorted(current, key=lambda t: _stop_preference(t, ok))[: len(current) - desired]
        for task in excess:
            stops.append(
                StopOrder(task.task_id, f"Scaling activity initiated by (deployment {primary.id})")
            )
            healthy -= ok(task)

    # Old tasks that have not started yet go freely; a RUNNING one goes only while the healthy
    # count stays at or above the floor, so capacity is never given up for a task not yet proven.
    budget = healthy - min_healthy
    for task in sorted(old, key=lambda t: _stop_preference(t, ok)):
        if task.last_status is TaskStatus.RUNNING:
            if budget <= 0:
                notes.append(
                    f"keeping old task {task.task_id[:8]}: {healthy} healthy, "
                    f"minimumHealthyPercent needs {min_healthy}"
                )
                continue
            budget -= 1
        stops.append(
            StopOrder(task.task_id, f"Scaling activity initiated by (deployment {primary.id})")
        )

    service = _settle_deployments(service, live, stops, start, desired, now, ok)
    service = _blocked(service, wanted, start, stops, now, ok)
    service = _steady(service, live, stops, start, desired, now)
    return ServicePlan(service=service, start=start, stop=tuple(stops), notes=tuple(notes))


def _settle_deployments(
    service: Service,
    live: list[Task],
    stops: list[StopOrder],
    start: int,
    desired: int,
    now: float,
    healthy: Healthy,
) -> Service:
    primary = service.primary
    live_by_deployment = {t.started_by for t in live}
    deployments = []
    for d in service.deployments:
        if d.status is DeploymentStatus.ACTIVE and d.id not in live_by_deployment:
            d = dataclasses.replace(d, status=DeploymentStatus.INACTIVE, updated_at=now)
        deployments.append(d)
    service = dataclasses.replace(service, deployments=tuple(deployments))
    old_live = any(t.started_by != primary.id for t in live)
    stopping = {s.task_id for s in stops}
    running = [
        t
        for t in live
        if t.started_by == primary.id
        and t.last_status is TaskStatus.RUNNING
        and t.desired_status is TaskStatus.RUNNING
        and t.task_id not in stopping
        and healthy(t)
    ]
    done = (
        primary.rollout_state is RolloutState.IN_PROGRESS
        and not old_live
        and start == 0
        and len(running) == desired
        and sum(t.started_by == primary.id for t in live) == desired
    )
    if done:
        completed = dataclasses.replace(
            primary,
            rollout_state=RolloutState.COMPLETED,
            rollout_state_reason=f"ECS deployment {primary.id} completed.",
            updated_at=now,
        )
        service = _replace_deployment(service, completed)
        service = add_event(
            service,
            f"(service {service.name}) (deployment {primary.id}) deployment completed.",
            now,
        )
    # Keep a short history of finished deployments (rollback needs the last COMPLETED one).
    inactive = [d for d in service.deployments if d.status is DeploymentStatus.INACTIVE]
    if len(inactive) > 5:
        # ... but never the deployment the spec asks for, which would be started again.
        drop = {d.id for d in inactive[5:]} - {service.deployment_id}
        service = dataclasses.replace(
            service, deployments=tuple(d for d in service.deployments if d.id not in drop)
        )
    return service


def _blocked(
    service: Service,
    wanted: list[Task],
    start: int,
    stops: list[StopOrder],
    now: float,
    healthy: Healthy,
) -> Service:
    """ECS's message when the deployment bounds allow neither a start nor a stop."""
    primary = service.primary
    in_progress = any(t.started_by != primary.id for t in wanted)
    waiting = any(not healthy(t) for t in wanted)
    if in_progress and not start and not stops and not waiting:
        if service.blocked_event_at is None:
            service = add_event(
                service,
                f"service ({service.name}) was unable to stop or start tasks during a deployment "
                "because of the service deployment configuration. Update the "
                "minimumHealthyPercent or maximumPercent value and try again.",
                now,
            )
            service = dataclasses.replace(service, blocked_event_at=now)
    elif service.blocked_event_at is not None:
        service = dataclasses.replace(service, blocked_event_at=None)
    return service


def _steady(
    service: Service,
    live: list[Task],
    stops: list[StopOrder],
    start: int,
    desired: int,
    now: float,
) -> Service:
    primary = service.primary
    running = [
        t
        for t in live
        if t.last_status is TaskStatus.RUNNING and t.desired_status is TaskStatus.RUNNING
    ]
    steady = (
        service.status == "ACTIVE"
        and primary.rollout_state is RolloutState.COMPLETED
        and not stops
        and start == 0
        and len(live) == len(running) == desired
    )
    if not steady:
        if service.steady_since is not None:
            service = dataclasses.replace(service, steady_since=None)
        return service
    due = service.steady_since is None or (
        service.steady_event_at is not None and now - service.steady_event_at >= STEADY_STATE_REPEAT
    )
    if due:
        service = add_event(service, f"(service {service.name}) has reached a steady state.", now)
        service = dataclasses.replace(
            service, steady_since=service.steady_since or now, steady_event_at=now
        )
    return service
