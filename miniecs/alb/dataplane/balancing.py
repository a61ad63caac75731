"""Choosing a target for a request: which targets may get it, and which one does.

Pure: no I/O and no clock (``now`` is a parameter). ALB's rules (aws-semantics §1.6): draining
targets get no new requests; healthy targets share the load; when no target is healthy the group
fails open and routes to every target that is not draining; a group with nothing left answers
503 (the caller's job). Algorithms: ``round_robin``, ``least_outstanding_requests``,
``weighted_random``. Slow start ramps a newly healthy target's share linearly over its duration.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

SLOW_START_FLOOR = 0.05
"""Share a target gets at the very start of its slow start, relative to a warmed-up one."""


class Candidate(Protocol):
    @property
    def draining(self) -> bool: ...
    @property
    def routable(self) -> bool:
        """Healthy (or health checks disabled)."""
        ...

    @property
    def in_flight(self) -> int: ...


C = TypeVar("C", bound=Candidate)


def candidates(targets: Sequence[C]) -> tuple[list[C], bool]:
    """The targets a new request may go to, and whether the group is failing open."""
    live = [t for t in targets if not t.draining]
    healthy = [t for t in live if t.routable]
    if healthy:
        return healthy, False
    return live, bool(live)


def slow_start_weight(now: float, started: float | None, duration: float) -> float:
    """Relative share of a target ``now``, in slow start since ``started`` for ``duration``."""
    if started is None or duration <= 0:
        return 1.0
    elapsed = now - started
    if elapsed >= duration:
        return 1.0
    return max(SLOW_START_FLOOR, elapsed / duration)


class Balancer:
    """One target group's algorithm and its rotation state."""

    __slots__ = ("algorithm", "counter")

    def __init__(self, algorithm: str = "round_robin") -> None:
        self.algorithm = algorithm
        self.counter = 0

    def pick(
        self,
        cands: Sequence[C],
        weights: Sequence[float] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> C:
        """Choose among non-empty ``cands``; ``weights`` (slow start) make the choice weighted."""
        n = len(cands)
        if n == 1:
            return cands[0]
        if self.algorithm == "least_outstanding_requests":
            return self._least_outstanding(cands)
        if weights is not None or self.algorithm == "weighted_random":
            return cands[pick_weighted(weights or [1.0] * n, rand())]
        chosen = cands[self.counter % n]
        self.counter += 1
        return chosen

    def _least_outstanding(self, cands: Sequence[C]) -> C:
        # Ties rotate, so an idle group still spreads requests like round robin.
        n = len(cands)
        start = self.counter % n
        self.counter += 1
        best = cands[start]
        for i in range(1, n):
            cand = cands[(start + i) % n]
            if cand.in_flight < best.in_flight:
                best = cand
        return best


def pick_weighted(weights: Sequence[float], point: float) -> int:
    """Index chosen by ``point`` in [0, 1) over cumulative ``weights``."""
    total = sum(weights)
    point *= total
    for i, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return i
    return len(weights) - 1
