"""The service scheduler loop: applies `plan_service` to every service, pass after pass.

It writes only desired state (new task records, stop requests, the service's deployments and
events); the task controller turns those into containers. While the container engine is
unreachable it decides nothing, since the store's view of the tasks is frozen too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from functools import partial

from miniecs.clock import Clock, wait_event
from miniecs.model import Service, Task, TaskDefinition, TaskStatus, add_event
from miniecs.quotas import TASK_LAUNCH_BURST
from miniecs.scheduler.plan import StopOrder, plan_service
from miniecs.scheduler.targets import LoadBalancing, TargetSync, sync_targets
from miniecs.store import Store
from miniecs.supervise import Guard
from miniecs.tasks.plan import request_stop
from miniecs.tasks.records import new_task, subnets_of

log = logging.getLogger(__name__)


def _stop(task: Task, order: StopOrder) -> Task:
    return request_stop(task, order.code, order.reason)


def _target_events(service: Service, sync: TargetSync, now: float) -> Service:
    """ECS's service events for target registration and draining."""
    for tg, count in sync.registered.items():
        service = add_event(
            service,
            f"(service {service.name}) registered {count} targets in (target-group {tg})",
            now,
        )
    if sync.draining:
        service = add_event(
            service,
            f"(service {service.name}) has begun draining connections on "
            f"{len(sync.draining)} tasks.",
            now,
        )
    for tg, count in sync.deregistered.items():
        service = add_event(
            service,
            f"(service {service.name}) deregistered {count} targets in (target-group {tg})",
            now,
        )
    return service


class ServiceScheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        engine_available: Callable[[], bool] = lambda: True,
        interval: float = 0.5,
        load_balancing: LoadBalancing | None = None,
    ) -> None:
        self.store = store
        self.load_balancing = load_balancing
        self._draining: set[tuple[str, str, int]] = set()
        self.clock = clock
        self.engine_available = engine_available
        self.interval = interval
        self._wake = asyncio.Event()
        self.guard = Guard("service scheduler")
        store.on_change(lambda kind: self._wake.set() if kind in ("service", "task") else None)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.guard.run(self.once)
            await wait_event(self._wake, self.guard.pause(self.interval))

    def once(self) -> None:
        if not self.engine_available():
            return
        for service in self.store.list_services():
            if service.status == "INACTIVE":
                continue
            self.reconcile(service)

    def reconcile(self, service: Service) -> Service:
        """Plan one service and apply the plan; returns the service as written."""
        now = self.clock.now()
        tasks = [
            t
            for t in self.store.list_tasks(cluster=service.cluster, service=service.name)
            if t.created_at >= service.created_at  # not a deleted namesake's
        ]
        sync = TargetSync()
        if self.load_balancing is not None and service.load_balancers:
            sync = sync_targets(service, tasks, self.load_balancing, self._draining)
        plan = plan_service(
            service,
            tasks,
            now,
            sync.states if self.load_balancing is not None else None,
            sync.failing,
        )
        updated = _target_events(plan.service, sync, now)
        stopped = []
        for order in plan.stop:
            task = self.store.update_task(order.task_id, partial(_stop, order=order))
            if task is not None:
                stopped.append(order.task_id)
        if stopped:
            ids = " ".join(f"(task {t})" for t in stopped)
            updated = add_event(
                updated,
                f"(service {service.name}) has stopped {len(stopped)} running tasks: {ids}.",
                now,
            )
        new_tasks = []
        td = self._task_definition(updated.primary.task_definition) if plan.start else None
        if td is not None:
            new_tasks = [
                new_task(
                    updated.cluster,
                    updated.region,
                    td,
                    now,
                    group=f"service:{updated.name}",
                    started_by=updated.primary.id,
                    service=updated.name,
                    subnets=subnets_of(updated.network_configuration),
                )
                for _ in range(min(plan.start, TASK_LAUNCH_BURST))
            ]
            ids = " ".join(f"(task {t.task_id})" for t in new_tasks)
            updated = add_event(
                updated,
                f"(service {service.name}) has started {len(new_tasks)} tasks: {ids}.",
                now,
            )
        if updated.status == "DRAINING" and not any(
            t.last_status is not TaskStatus.STOPPED for t in tasks
        ):
            updated = dataclasses.replace(updated, status="INACTIVE")
        # The service (with the deployment the new tasks name) is written before its tasks,
        # so a SIGKILL in between leaves no task pointing at an unknown deployment.
        if updated != service:  # only the scheduler's state and its new events are written
            self.store.update_service_state(service.cluster, service.name, lambda _: updated)
        for task in new_tasks:
            self.store.put_task(task)
        return updated

    def _task_definition(self, ref: str) -> TaskDefinition | None:
        family, _, revision = ref.rsplit("/", 1)[-1].partition(":")
        return self.store.get_task_definition(family, int(revision) if revision else None)
