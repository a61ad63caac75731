"""The sampling loop: every interval, the counters of every RUNNING task's containers in one
runtime call, turned into per-task usage (`latest()`, read by `top`, Prometheus and the
CloudWatch API) and handed to the publisher (`metrics.publish`).

Raw readings are kept per container for a bounded window; usage is computed between the two
newest distinct readings, so a source that refreshes once a second (the stats streams) and a
faster loop never produce a zero-length interval. Reservations follow ECS: a container's CPU is
its own `cpu`, else an equal share of what the task's CPU leaves; memory likewise, from
`memoryReservation` or `memory`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from miniecs.clock import Clock
from miniecs.config import MetricsSettings
from miniecs.errors import RuntimeUnavailable
from miniecs.metrics import readings as usage_math
from miniecs.metrics.publish import Publisher
from miniecs.metrics.usage import ContainerUsage, TaskUsage
from miniecs.model import ContainerRecord, Task, TaskStatus
from miniecs.runtime.base import RawUsage, Runtime
from miniecs.store import Store
from miniecs.supervise import Guard
from miniecs.taskdef import parse_cpu, parse_memory

log = logging.getLogger(__name__)


def _shares(own: Sequence[float | None], task_total: float | None, default: float) -> list[float]:
    """Each container's reservation: its own value, else an equal share of what the others
    leave of the task's total (the task's whole total for a lone container)."""
    if task_total is None:
        return [float(v) if v else default for v in own]
    unset = [v for v in own if not v]
    remaining = max(0.0, task_total - sum(float(v) for v in own if v))
    share = remaining / len(unset) if unset else 0.0
    return [float(v) if v else share for v in own]


def reservations(task: Task) -> tuple[float, float, list[tuple[float, float]]]:
    """Task CPU units and memory MiB, and (CPU units, MiB) per container in record order."""
    cpu = float(parse_cpu(task.cpu)) if task.cpu else None
    memory = float(parse_memory(task.memory)) if task.memory else None
    containers = task.containers
    cpus = _shares([c.cpu or None for c in containers], cpu, 0.0)
    memories = _shares([_memory_of(c) for c in containers], memory, 0.0)
    task_cpu = cpu if cpu is not None else sum(cpus)
    task_memory = memory if memory is not None else sum(memories)
    return task_cpu, task_memory, list(zip(cpus, memories, strict=True))


def _memory_of(c: ContainerRecord) -> float | None:
    value = c.memory_reservation or c.memory
    return float(value) if value else None


class Sampler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        clock: Clock,
        settings: MetricsSettings,
        publisher: Publisher | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.clock = clock
        self.settings = settings
        self.publisher = publisher
        self._history: dict[str, deque[RawUsage]] = {}
        self._latest: list[TaskUsage] = []

    def latest(self) -> list[TaskUsage]:
        """The latest usage of every RUNNING task that has two readings, oldest task first."""
        return list(self._latest)

    def raw(self, runtime_id: str) -> list[RawUsage]:
        """The readings kept for one container, oldest first."""
        return list(self._history.get(runtime_id, ()))

    @property
    def interval(self) -> float:
        """Real seconds between rounds: the setting, but at least two rounds a publish period
        even when the control-plane clock runs fast."""
        period_real = self.clock.real_seconds(self.settings.publish_period)
        return min(self.settings.sample_interval, period_real / 2)

    async def run(self) -> None:
        guard = Guard("metrics sampler", expected=(RuntimeUnavailable,))
        while True:
            await guard.run(self.once)
            await self.clock.sleep(guard.pause(self.interval) * self.clock.speed)

    async def once(self) -> list[TaskUsage]:
        tasks = [
            t for t in self.store.list_tasks(live_only=True) if t.last_status is TaskStatus.RUNNING
        ]
        ids = [
            c.runtime_id
            for t in tasks
            for c in t.containers
            if c.runtime_id and c.last_status == "RUNNING"
        ]
        readings = await self.runtime.container_usage(ids) if ids else {}
        now = self.clock.now()
        keep = max(2, int(self.settings.window / max(self.interval, 1e-3)) + 1)
        for runtime_id, reading in readings.items():
            history = self._history.get(runtime_id)
            if history is None or history.maxlen != keep:
                history = self._history[runtime_id] = deque(history or (), maxlen=keep)
            if not history or history[-1].read_ns != reading.read_ns:
                history.append(reading)
        for gone in set(self._history) - set(ids):
            del self._history[gone]
        self._latest = [u for t in tasks if (u := self._task_usage(t, now)) is not None]
        if self.publisher is not None:
            self.publisher.add(self._latest, now)
        return self._latest

    def _task_usage(self, task: Task, now: float) -> TaskUsage | None:
        task_cpu, task_memory, per_container = reservations(task)
        containers = []
        for record, (cpu, memory) in zip(task.containers, per_container, strict=True):
            if not record.runtime_id or record.last_status != "RUNNING":
                continue
            history = self._history.get(record.runtime_id)
            if not history or len(history) < 2:
                continue
            usage = self._container_usage(record.name, history, cpu, memory)
            if usage is not None:
                containers.append(usage)
        if not containers:
            return None
        return TaskUsage(
            task_id=task.task_id,
            cluster=task.cluster,
            group=task.group,
            task_definition_family=task.family,
            cpu_reserved=task_cpu,
            memory_reserved_mib=task_memory,
            containers=tuple(containers),
            timestamp=now,
        )

    @staticmethod
    def _container_usage(
        name: str, history: deque[RawUsage], cpu: float, memory: float
    ) -> ContainerUsage | None:
        return usage_math.container_usage(name, history[-2], history[-1], cpu, memory)
