"""The control-plane clock.

Every timing in the control plane (task timestamps, periods, cooldowns, timeouts) reads this
clock instead of the wall clock, so one speed factor compresses AWS's timings consistently and
tests advance a `FakeClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` (real) pass; True if it was set. The loops
    use this, not `asyncio.wait_for`, which on Python 3.11 can swallow a cancellation that
    arrives as the event fires, leaving a loop that never stops."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
            return True
    return False


class Clock(Protocol):
    """Control-plane time in epoch seconds, and sleeping in control-plane seconds."""

    @property
    def speed(self) -> float: ...

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def real_seconds(self, seconds: float) -> float:
        """How many wall-clock seconds `seconds` of control-plane time take."""
        ...


class SystemClock:
    """Wall-clock time running `speed` times faster from an anchor.

    `anchor` is the control-plane time at start; passing the last time persisted by a previous
    run keeps control-plane time monotonic across restarts even when it ran ahead of the wall.
    """

    def __init__(self, speed: float = 1.0, anchor: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._speed = speed
        self._anchor = max(time.time(), anchor or 0.0)
        self._start = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._anchor + (time.monotonic() - self._start) * self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self._speed


class FakeClock:
    """A clock that only moves when told to; `sleep` waits until `advance` passes its deadline."""

    def __init__(self, start: float = 1_700_000_000.0, speed: float = 1.0) -> None:
        self._now = start
        self._speed = speed
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self._now += seconds
        due = [(t, f) for t, f in self._waiters if t <= self._now]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self._speed
