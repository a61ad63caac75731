"""Supervised loops: every control-plane loop guards its passes the same way, and the engine
runs each loop under `supervise`, so no failure ends a loop silently.

A loop is `while True: await guard.run(pass); await wait(guard.pause(interval))`:

- a pass that raises is logged at once, with its traceback; an `expected` error (the container
  engine is away) is one warning line per streak of failures instead;
- the loop carries on; its pause grows with consecutive failures (doubling, at most
  `MAX_BACKOFF` real seconds, never below the loop's own interval), so a lasting failure
  neither spins nor floods the log; one good pass resets it.

`supervise(name, loop)` runs a loop meant to run until cancelled: an exception that escapes
the loop itself is logged and the loop restarted after a growing pause; a loop that returns by
itself is reported as an error and restarted too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
"""Real seconds: the longest pause a failing loop takes between passes."""


class Guard:
    """The passes of one loop: logs failures, counts them, and says how long to pause."""

    def __init__(self, name: str, expected: tuple[type[Exception], ...] = ()) -> None:
        self.name = name
        self.expected = expected
        self.failures = 0
        """Consecutive failed passes (0 after a good one)."""

    async def run(self, once: Callable[[], Awaitable[object] | object]) -> bool:
        """Run one pass; True if it succeeded. A failure is logged, never raised."""
        try:
            result = once()
            if inspect.isawaitable(result):
                await result
        except self.expected as exc:
            if not self.failures:
                log.warning("%s: %s", self.name, exc)
            self.failures += 1
            return False
        except Exception:
            log.exception("%s: pass failed", self.name)
            self.failures += 1
            return False
        if self.failures:
            log.info("%s: passing again after %d failed passes", self.name, self.failures)
        self.failures = 0
        return True

    def pause(self, interval: float) -> float:
        """Real seconds to wait before the next pass: `interval`, longer after failures."""
        if not self.failures:
            return interval
        return max(interval, min(MAX_BACKOFF, interval * 2.0 ** (self.failures - 1)))


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run `loop()` until cancelled, restarting it if it crashes or returns."""
    restarts = 0
    while True:
        try:
            await loop()
        except Exception:
            log.exception("%s: loop crashed; restarting it", name)
        else:
            log.error("%s: loop returned by itself; restarting it", name)
        restarts += 1
        await asyncio.sleep(min(MAX_BACKOFF, 0.1 * 2 ** min(restarts, 6)))
