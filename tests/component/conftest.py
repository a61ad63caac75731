"""Component harness: real store and ECS handlers, fake runtime and fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from miniecs.aws.ecs import EcsApi
from miniecs.clock import FakeClock
from miniecs.config import Settings, TaskSettings
from miniecs.runtime.fake import FakeRuntime
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.store import Store
from miniecs.tasks.controller import TaskController


@dataclass
class Harness:
    store: Store
    runtime: FakeRuntime
    clock: FakeClock
    controller: TaskController
    ecs: EcsApi
    scheduler: ServiceScheduler

    async def settle(self, passes: int = 30) -> None:
        """Run scheduler and controller passes, letting each pass's actions finish, until a
        whole round changes nothing."""
        changes = [0]
        self.store.on_change(lambda _: changes.__setitem__(0, changes[0] + 1))
        for _ in range(passes):
            before = changes[0]
            self.scheduler.once()
            await self.controller.once()
            inflight = list(self.controller._inflight.values())
            await asyncio.gather(*inflight)
            if not inflight and changes[0] == before:
                return


@pytest.fixture
async def harness(tmp_path: object) -> AsyncIterator[Harness]:
    store = Store(":memory:")
    runtime = FakeRuntime()
    clock = FakeClock()
    settings = Settings(tasks=TaskSettings())
    controller = TaskController(store, runtime, clock, settings.tasks, "inst01", host_cpus=2)
    ecs = EcsApi(store, clock, settings)
    scheduler = ServiceScheduler(store, clock)
    yield Harness(store, runtime, clock, controller, ecs, scheduler)
    await controller.drain(1)
    store.close()
