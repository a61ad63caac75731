"""Target choice: candidates (draining, fail-open), algorithms, slow start."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from miniecs.alb.dataplane.balancing import (
    SLOW_START_FLOOR,
    Balancer,
    candidates,
    pick_weighted,
    slow_start_weight,
)
from miniecs.alb.dataplane.config import TargetGroupSpec, TargetSpec
from miniecs.alb.dataplane.health import Health, TargetState
from miniecs.alb.dataplane.targets import TargetGroup


@dataclass
class T:
    name: str
    routable: bool = True
    draining: bool = False
    in_flight: int = 0


def names(ts: list[T]) -> list[str]:
    return [t.name for t in ts]


def test_candidates_are_healthy_targets_not_draining() -> None:
    ts = [T("a"), T("b", routable=False), T("c", draining=True)]
    cands, fail_open = candidates(ts)
    assert (names(cands), fail_open) == (["a"], False)


def test_fail_open_when_no_target_is_healthy() -> None:
    ts = [T("a", routable=False), T("b", routable=False), T("c", routable=False, draining=True)]
    cands, fail_open = candidates(ts)
    assert (names(cands), fail_open) == (["a", "b"], True)


def test_nothing_left_when_every_target_drains() -> None:
    assert candidates([T("a", draining=True)]) == ([], False)
    assert candidates([]) == ([], False)


def test_round_robin_is_exact() -> None:
    balancer = Balancer("round_robin")
    ts = [T("a"), T("b"), T("c")]
    assert Counter(balancer.pick(ts).name for _ in range(300)) == {"a": 100, "b": 100, "c": 100}


def test_least_outstanding_requests_prefers_the_least_busy() -> None:
    balancer = Balancer("least_outstanding_requests")
    ts = [T("a", in_flight=5), T("b", in_flight=1), T("c", in_flight=3)]
    assert {balancer.pick(ts).name for _ in range(10)} == {"b"}


def test_least_outstanding_requests_rotates_ties() -> None:
    balancer = Balancer("least_outstanding_requests")
    ts = [T("a"), T("b"), T("c")]
    assert Counter(balancer.pick(ts).name for _ in range(30)) == {"a": 10, "b": 10, "c": 10}


def test_weighted_random_follows_weights() -> None:
    assert [pick_weighted([1, 3], p / 8) for p in range(8)] == [0, 0, 1, 1, 1, 1, 1, 1]
    balancer = Balancer("weighted_random")
    ts = [T("a"), T("b")]
    picks = [balancer.pick(ts, rand=lambda p=p: p).name for p in (0.1, 0.4, 0.6, 0.9)]  # type: ignore[misc]
    assert picks == ["a", "a", "b", "b"]


@pytest.mark.parametrize(
    ("now", "started", "duration", "weight"),
    [
        (100.0, None, 30.0, 1.0),
        (100.0, 100.0, 0.0, 1.0),
        (100.0, 100.0, 30.0, SLOW_START_FLOOR),
        (115.0, 100.0, 30.0, 0.5),
        (130.0, 100.0, 30.0, 1.0),
    ],
)
def test_slow_start_ramps_linearly(
    now: float, started: float | None, duration: float, weight: float
) -> None:
    assert slow_start_weight(now, started, duration) == pytest.approx(weight)


def group(slow_start: float = 0.0, n: int = 2) -> TargetGroup:
    spec = TargetGroupSpec(
        arn="tg",
        name="tg",
        port=80,
        slow_start=slow_start,
        targets=tuple(TargetSpec(f"10.0.0.{i}", 80) for i in range(1, n + 1)),
    )
    return TargetGroup(spec)


HEALTHY = Health(TargetState.HEALTHY, None, None, 1, 0)


def test_group_skips_slow_start_for_the_first_healthy_target_only() -> None:
    g = group(slow_start=60.0)
    first, second = g.targets.values()
    first.set_health(HEALTHY, now=0.0)
    assert first.slow_start_from is None
    second.set_health(HEALTHY, now=10.0)
    assert second.slow_start_from == 10.0
    picks = Counter(g.pick(now=16.0).ip for _ in range(2000))  # second at 10 % weight
    assert 100 < picks[second.ip] < 320
    assert Counter(g.pick(now=80.0).ip for _ in range(10)) == {first.ip: 5, second.ip: 5}


def test_group_answers_none_without_candidates_and_sees_health_changes() -> None:
    g = group(n=1)
    (target,) = g.targets.values()
    assert g.pick(0.0) is target  # initial: fail-open
    target.draining = True
    g.invalidate()
    assert g.pick(0.0) is None
