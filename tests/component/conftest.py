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
from miniecs.store import Store
from miniecs.tasks.controller import TaskController


@dataclass
class Harness:
    store: Store
    runtime: FakeRuntime
    clock: FakeClock
    controller: TaskController
    ecs: EcsApi

    async def settle(self, passes: int = 10) -> None:
        """Run controller passes, letting each pass's actions finish, until nothing moves."""
        for _ in range(passes):
            await self.controller.once()
            inflight = list(self.controller._inflight.values())
            if not inflight:
                await self.controller.once()
                if not self.controller._inflight:
                    return
                inflight = list(self.controller._inflight.values())
            await asyncio.gather(*inflight)


@pytest.fixture
async def harness(tmp_path: object) -> AsyncIterator[Harness]:
    store = Store(":memory:")
    runtime = FakeRuntime()
    clock = FakeClock()
    settings = Settings(tasks=TaskSettings())
    controller = TaskController(store, runtime, clock, settings.tasks, "inst01", host_cpus=2)
    ecs = EcsApi(store, clock, settings)
    yield Harness(store, runtime, clock, controller, ecs)
    await controller.drain(1)
    store.close()
