"""The scaling decision, table-driven: target tracking's formula and rules, cooldowns,
several policies, suspension, deployments, step scaling with AWS's rounding."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from miniecs.autoscaler.alarms import AlarmEvaluation, Point, target_tracking_alarms
from miniecs.autoscaler.decide import (
    Direction,
    PolicyInput,
    Situation,
    decide,
    percent_change,
    step_for,
)
from miniecs.autoscaler.model import (
    Alarm,
    AlarmState,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
)
from miniecs.metrics.store import Stats

NOW = 1_700_000_000.0
A = AlarmState.ALARM
OK = AlarmState.OK
NO = AlarmState.INSUFFICIENT_DATA


def target(lo: int = 1, hi: int = 10, **extra: Any) -> ScalableTarget:
    return ScalableTarget("service/c1/web", lo, hi, 0.0, "t1", "us-east-1", **extra)


def policy(value: float = 50.0, name: str = "cpu", **config: Any) -> ScalingPolicy:
    cfg = {
        "TargetValue": value,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
        },
        **config,
    }
    return ScalingPolicy(
        name, "service/c1/web", name, PolicyType.TARGET_TRACKING, cfg, 0.0, "us-east-1"
    )


def evaluation(
    alarm: Alarm, state: AlarmState, values: list[float], busiest: float | None = None
) -> AlarmEvaluation:
    from miniecs.autoscaler.alarms import _COMPARE

    points = tuple(
        Point(
            NOW - 60 * (len(values) - i),
            v,
            Stats(2, 2 * v, v, busiest if busiest is not None else v),
            _COMPARE[alarm.comparison](v, alarm.threshold),
        )
        for i, v in enumerate(values)
    )
    return AlarmEvaluation(dataclasses.replace(alarm, state=state), points, False)


def tracking(
    p: ScalingPolicy,
    high: AlarmState,
    values: list[float],
    low: AlarmState = NO,
    low_values: list[float] | None = None,
    busiest: float | None = None,
    t: ScalableTarget | None = None,
) -> PolicyInput:
    hi_alarm, lo_alarm = target_tracking_alarms(t or target(), p, NOW)
    return PolicyInput(
        p,
        (
            evaluation(hi_alarm, high, values, busiest),
            evaluation(lo_alarm, low, low_values if low_values is not None else values),
        ),
    )


def situation(
    *inputs: PolicyInput,
    desired: int = 1,
    t: ScalableTarget | None = None,
    deploying: bool = False,
    now: float = NOW,
) -> Situation:
    return Situation(t or target(), inputs, desired, desired, deploying, now)


# (name, desired, target value, high state, values, low state, bounds, expected capacity)
TARGET_TRACKING_CASES = [
    (
        "the study's trap: 1 task at 100 % against 40 -> 3",
        1,
        40,
        A,
        [100, 100, 100],
        NO,
        (1, 10),
        3,
    ),
    ("then 33 % holds it at 3 (not below 36)", 3, 40, OK, [33, 33, 33], OK, (1, 10), None),
    ("AWS doc example: 10 tasks at 75 % against 50 -> 15", 10, 50, A, [75] * 3, NO, (1, 20), 15),
    ("scale-out clamped to MaxCapacity", 2, 50, A, [100] * 3, NO, (1, 3), 3),
    ("already at MaxCapacity: no change", 3, 50, A, [100] * 3, NO, (1, 3), None),
    ("just above target rounds up to one more", 4, 50, A, [51] * 3, NO, (1, 10), 5),
    ("high alarm OK: nothing", 2, 50, OK, [49] * 3, OK, (1, 10), None),
    ("no data: nothing", 2, 50, NO, [], NO, (1, 10), None),
    ("scale-in: 4 tasks at 20 % against 50 -> 2", 4, 50, OK, [20] * 15, A, (1, 10), 2),
    ("scale-in clamped to MinCapacity", 4, 50, OK, [5] * 15, A, (3, 10), 3),
    ("scale-in to zero with MinCapacity 0", 2, 50, OK, [0] * 15, A, (0, 10), 0),
    (
        "scale-in never pushes above target: 3 x 44 / 50 = 2.64 -> 3",
        3,
        50,
        OK,
        [44] * 15,
        A,
        (1, 10),
        None,
    ),
]


@pytest.mark.parametrize(
    ("desired", "value", "high", "values", "low", "bounds", "expected"),
    [c[1:] for c in TARGET_TRACKING_CASES],
    ids=[c[0] for c in TARGET_TRACKING_CASES],
)
def test_target_tracking(
    desired: int,
    value: float,
    high: AlarmState,
    values: list[float],
    low: AlarmState,
    bounds: tuple[int, int],
    expected: int | None,
) -> None:
    t = target(*bounds)
    d = decide(situation(tracking(policy(value), high, values, low, t=t), desired=desired, t=t))
    assert d.capacity == expected, d.reason
    if expected is not None:
        assert d.cause.startswith("monitor alarm TargetTracking-service/c1/web-Alarm")
        assert d.cause.endswith(" in state ALARM triggered policy cpu")


def test_reason_names_the_busiest_task_when_the_average_is_below_target() -> None:
    d = decide(situation(tracking(policy(50), OK, [41, 41, 41], OK, busiest=98), desired=3))
    assert d.capacity is None
    assert (
        "no scale-out: average 41 % <= target 50 %, although the busiest task is at 98 %"
        in d.reason
    )


def test_scale_out_formula_is_in_the_reason() -> None:
    d = decide(situation(tracking(policy(40), A, [100] * 3)))
    assert d.direction is Direction.OUT
    assert "ceil(1 x 100 / 40) = 3" in d.reason


def test_scale_out_cooldown_lets_only_a_larger_scale_out_pass() -> None:
    # A scale-out from 1 to 3 started a cooldown; the metric still shows the old tasks' load.
    t = target(scale_out_until=NOW + 200, scale_out_base=1)
    same = decide(situation(tracking(policy(40), A, [100] * 3, t=t), desired=3, t=t))
    assert same.capacity is None and "scale-out cooldown" in same.reason
    # Load that needs more than the cooldown's scale-out gave passes: ceil(1 x 200 / 40) = 5.
    larger = decide(situation(tracking(policy(40), A, [200] * 3, t=t), desired=3, t=t))
    assert larger.capacity == 5


def test_scale_in_cooldown_blocks_scale_in_but_not_scale_out() -> None:
    t = target(scale_in_until=NOW + 100)
    blocked = decide(situation(tracking(policy(50), OK, [10] * 15, A, t=t), desired=4, t=t))
    assert blocked.capacity is None and "scale-in cooldown (100 s left)" in blocked.reason
    out = decide(situation(tracking(policy(50), A, [90] * 3, t=t), desired=4, t=t))
    assert out.capacity == 8


def test_disable_scale_in() -> None:
    p = policy(50, DisableScaleIn=True)
    d = decide(situation(tracking(p, OK, [10] * 15, A), desired=4))
    assert d.capacity is None


def test_scale_in_waits_for_a_deployment_but_scale_out_does_not() -> None:
    d = decide(situation(tracking(policy(50), OK, [10] * 15, A), desired=4, deploying=True))
    assert d.capacity is None and "deployment in progress" in d.reason
    d = decide(situation(tracking(policy(50), A, [100] * 3), desired=2, deploying=True))
    assert d.capacity == 4


def test_suspension_stops_each_direction() -> None:
    t = target(dynamic_out_suspended=True)
    assert (
        decide(situation(tracking(policy(50), A, [100] * 3, t=t), desired=2, t=t)).capacity is None
    )
    t = target(dynamic_in_suspended=True)
    assert (
        decide(situation(tracking(policy(50), OK, [10] * 15, A, t=t), desired=4, t=t)).capacity
        is None
    )
    assert decide(situation(tracking(policy(50), A, [100] * 3, t=t), desired=2, t=t)).capacity == 4


def test_several_policies_out_if_any_largest_wins() -> None:
    cpu = tracking(policy(50, "cpu"), A, [100] * 3)
    mem = tracking(policy(50, "mem"), A, [150] * 3)
    d = decide(situation(cpu, mem, desired=2))
    assert d.capacity == 6 and "policy mem" in d.reason


def test_several_policies_in_only_if_all() -> None:
    cpu_in = tracking(policy(50, "cpu"), OK, [10] * 15, A)
    mem_quiet = tracking(policy(50, "mem"), OK, [48] * 15, OK)
    d = decide(situation(cpu_in, mem_quiet, desired=4))
    assert d.capacity is None and "policy mem does not want to scale in" in d.reason
    mem_in = tracking(policy(50, "mem"), OK, [30] * 15, A)
    d = decide(situation(cpu_in, mem_in, desired=4))
    assert d.capacity == 3  # the larger of ceil(4 x 10 / 50) = 1 and ceil(4 x 30 / 50) = 3
    # A policy with scale-in disabled does not hold the others back.
    mem_off = tracking(policy(50, "mem", DisableScaleIn=True), OK, [48] * 15, OK)
    assert decide(situation(cpu_in, mem_off, desired=4)).capacity == 1


PERCENT_CASES = [
    (10, 15, None, 1),  # 1.5 -> round down to 1
    (10, 25, None, 2),  # 2.5 -> 2
    (4, 10, None, 1),  # 0.4 -> 1
    (4, -10, None, -1),  # -0.4 -> -1
    (10, -25, None, -2),  # -2.5 -> round up to -2
    (10, 10, 2, 2),  # 1 raised to MinAdjustmentMagnitude 2
]


@pytest.mark.parametrize(("capacity", "percent", "magnitude", "expected"), PERCENT_CASES)
def test_percent_change_rounding(
    capacity: int, percent: float, magnitude: int | None, expected: int
) -> None:
    assert percent_change(capacity, percent, magnitude) == expected


def test_step_intervals_follow_aws_inclusivity() -> None:
    steps = [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 3},
        {"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1},
    ]
    assert step_for(steps, 0)["ScalingAdjustment"] == 1  # type: ignore[index]
    assert step_for(steps, 10)["ScalingAdjustment"] == 3  # type: ignore[index]
    assert step_for(steps, -0.5)["ScalingAdjustment"] == -1  # type: ignore[index]


def step_input(
    adjustments: list[dict[str, Any]], value: float, threshold: float = 50, **cfg: Any
) -> PolicyInput:
    p = ScalingPolicy(
        "steps",
        "service/c1/web",
        "p2",
        PolicyType.STEP,
        {"AdjustmentType": "ChangeInCapacity", "StepAdjustments": adjustments, **cfg},
        0.0,
        "us-east-1",
    )
    alarm = Alarm(
        "user-high", "us-east-1", "AWS/ECS", "CPUUtilization", (), "Average", 60, 1, 1,
        threshold, "GreaterThanThreshold", 0.0, actions=(p.arn,),
    )  # fmt: skip
    return PolicyInput(p, (evaluation(alarm, A, [value]),))


def test_step_scaling_and_its_cooldown() -> None:
    steps = [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 2},
        {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 3},
    ]
    d = decide(situation(step_input(steps, 60), desired=2))
    assert (
        d.capacity == 4
        and d.cause == "monitor alarm user-high in state ALARM triggered policy steps"
    )
    # AWS's example: +2 ran, the cooldown is on, a +3 step now adds only 1 more.
    t = target(scale_out_until=NOW + 100, scale_out_base=2)
    assert decide(situation(step_input(steps, 80), desired=4, t=t)).capacity == 5
    assert decide(situation(step_input(steps, 60), desired=4, t=t)).capacity is None


def test_at_min_capacity_the_reason_is_the_minimum_bound() -> None:
    # 3 x 5 / 50 = 0.3 -> 1 would scale in, but MinCapacity 3 holds the service at 3.
    t = target(3, 10)
    d = decide(situation(tracking(policy(50), OK, [5] * 15, A, t=t), desired=3, t=t))
    assert d.capacity is None
    assert "ceil(3 x 5 / 50) = 1, within [3, 10] = 3; already at the minimum capacity 3" in (
        d.reason
    )
    assert "push the average above target" not in d.reason
    # Above the minimum, a scale-in that would overshoot the target keeps the other reason.
    d = decide(situation(tracking(policy(50), OK, [44] * 15, A), desired=3))
    assert d.capacity is None
    assert "removing a task would push the average above target" in d.reason
    assert "minimum capacity" not in d.reason


def test_step_scaling_at_a_bound_says_so() -> None:
    down = [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -2}]
    d = decide(situation(step_input(down, 40), desired=2, t=target(2, 10)))
    assert d.capacity is None and d.reason.endswith("; already at the minimum capacity 2")
    up = [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}]
    d = decide(situation(step_input(up, 60), desired=10, t=target(1, 10)))
    assert d.capacity is None and d.reason.endswith("; already at the maximum capacity 10")
