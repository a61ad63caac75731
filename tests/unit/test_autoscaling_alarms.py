"""Target-tracking alarms (names, shapes) and their evaluation against MetricStore datapoints;
scheduled-action expressions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from miniecs.autoscaler.alarms import due, evaluate, target_tracking_alarms
from miniecs.autoscaler.model import (
    AlarmState,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
)
from miniecs.autoscaler.schedule import ScheduleError, next_run, validate
from miniecs.metrics.store import MetricId, MetricStore, Stats

T0 = 1_700_000_040.0  # a minute boundary
CPU = MetricId("AWS/ECS", "CPUUtilization", (("ClusterName", "c1"), ("ServiceName", "web")))
TARGET = ScalableTarget("service/c1/web", 1, 10, 0.0, "t1", "us-east-1")


def policy(
    kind: str = "ECSServiceAverageCPUUtilization", label: str | None = None
) -> ScalingPolicy:
    spec: dict[str, str] = {"PredefinedMetricType": kind}
    if label:
        spec["ResourceLabel"] = label
    return ScalingPolicy(
        "cpu50", "service/c1/web", "p1", PolicyType.TARGET_TRACKING,
        {"TargetValue": 50.0, "PredefinedMetricSpecification": spec}, 0.0, "us-east-1",
    )  # fmt: skip


def test_alarms_have_aws_names_and_shapes() -> None:
    p = policy()
    high, low = target_tracking_alarms(TARGET, p, T0)
    assert high.name.startswith("TargetTracking-service/c1/web-AlarmHigh-")
    assert low.name.startswith("TargetTracking-service/c1/web-AlarmLow-")
    assert high.description == f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {p.arn}."
    assert (high.period, high.evaluation_periods, high.datapoints_to_alarm) == (60, 3, 3)
    assert (high.comparison, high.threshold) == ("GreaterThanThreshold", 50.0)
    assert (low.period, low.evaluation_periods, low.datapoints_to_alarm) == (60, 15, 15)
    assert (low.comparison, low.threshold) == ("LessThanThreshold", 45.0)
    assert high.dimensions == CPU.dimensions and high.statistic == "Average"
    assert high.actions == (p.arn,)
    assert p.arn.startswith("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:p1:")
    assert p.arn.endswith(":resource/ecs/service/c1/web:policyName/cpu50")


def test_high_resolution_and_alb_metrics() -> None:
    high, _ = target_tracking_alarms(
        TARGET, policy("ECSServiceAverageCPUUtilizationHighResolution"), T0
    )
    assert high.period == 20 and high.metric_name == "CPUUtilization"
    label = "app/lb/50dc6c495c0c9188/targetgroup/web/943f017f100becff"
    high, _ = target_tracking_alarms(TARGET, policy("ALBRequestCountPerTarget", label), T0)
    assert (high.namespace, high.metric_name, high.statistic) == (
        "AWS/ApplicationELB", "RequestCountPerTarget", "Sum",
    )  # fmt: skip
    assert high.dimensions == (("TargetGroup", "targetgroup/web/943f017f100becff"),)
    label = "app/targetgroup/50dc6c495c0c9188/targetgroup/web/943f017f100becff"
    high, _ = target_tracking_alarms(TARGET, policy("ALBRequestCountPerTarget", label), T0)
    assert high.dimensions == (("TargetGroup", "targetgroup/web/943f017f100becff"),)


def put_minutes(store: MetricStore, values: list[float], start: float = T0) -> None:
    """One 60 s period per value, written as three 20 s statistic sets of two tasks."""
    for minute, value in enumerate(values):
        for third in range(3):
            ts = start + 60 * minute + 20 * third
            store.put(CPU, ts, Stats(2, 2 * value, value - 5, value + 5), "Percent", 1)


@pytest.mark.parametrize(
    ("values", "before", "expected"),
    [
        ([80, 80, 80], AlarmState.INSUFFICIENT_DATA, AlarmState.ALARM),
        ([80, 40, 80], AlarmState.ALARM, AlarmState.OK),
        ([], AlarmState.OK, AlarmState.INSUFFICIENT_DATA),
        ([80, 80], AlarmState.OK, AlarmState.OK),  # 2 of 3 present: too sparse to change
        ([80, 80], AlarmState.INSUFFICIENT_DATA, AlarmState.INSUFFICIENT_DATA),
    ],
)
def test_high_alarm_three_of_three(
    values: list[float], before: AlarmState, expected: AlarmState
) -> None:
    store = MetricStore()
    high, _ = target_tracking_alarms(TARGET, policy(), T0)
    high = dataclasses.replace(high, state=before)
    start = T0 + 60 * (3 - len(values))
    put_minutes(store, values, start)
    ev = evaluate(high, store, T0 + 180)
    assert ev.state is expected
    assert [round(p.value) for p in ev.points] == values
    assert ev.alarm.evaluated_until == T0 + 180


def test_low_alarm_needs_fifteen_periods_and_reason_is_cloudwatchs() -> None:
    store = MetricStore()
    _, low = target_tracking_alarms(TARGET, policy(), T0)
    put_minutes(store, [10] * 14)
    assert evaluate(low, store, T0 + 14 * 60).state is AlarmState.INSUFFICIENT_DATA
    put_minutes(store, [10], T0 + 14 * 60)
    ev = evaluate(low, store, T0 + 15 * 60)
    assert ev.state is AlarmState.ALARM and ev.changed
    assert ev.alarm.state_reason.startswith("Threshold Crossed: 15 datapoints [10.0 (")
    assert ev.alarm.state_reason.endswith("were less than the threshold (45.0).")
    # An incomplete period (now inside it) is not evaluated.
    assert not due(ev.alarm, T0 + 15 * 60 + 30)
    assert due(ev.alarm, T0 + 16 * 60)


def test_datapoint_keeps_the_busiest_task() -> None:
    store = MetricStore()
    high, _ = target_tracking_alarms(TARGET, policy(), T0)
    put_minutes(store, [41, 41, 41])
    ev = evaluate(high, store, T0 + 180)
    assert (
        ev.latest is not None
        and ev.latest.stats.maximum == 46
        and ev.latest.stats.sample_count == 6
    )


def action(schedule: str, **extra: object) -> ScheduledAction:
    return ScheduledAction("a", "service/c1/web", "id", schedule, T0, "us-east-1", **extra)  # type: ignore[arg-type]


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_schedules() -> None:
    at = action("at(2030-01-02T03:04:05)")
    assert next_run(at, T0) == utc("2030-01-02T03:04:05")
    assert next_run(at, utc("2030-01-02T03:04:05")) is None
    rate = action("rate(5 minutes)")
    assert next_run(rate, T0) == T0 + 300
    assert next_run(rate, T0 + 300) == T0 + 600
    cron = action("cron(30 6 * * ? *)")
    after = utc("2026-11-28T05:00:00")
    assert next_run(cron, after) == utc("2026-11-28T06:30:00")
    weekday = action("cron(0 9 ? * MON-FRI *)")
    assert next_run(weekday, utc("2026-11-28T10:00:00")) == utc("2026-11-30T09:00:00")  # a Monday
    ended = action("rate(1 hour)", end_time=T0 + 100)
    assert next_run(ended, T0) is None


@pytest.mark.parametrize(
    "schedule",
    ["at(2030-13-01T00:00:00)", "rate(0 minutes)", "rate(5 weeks)", "cron(* * *)", "every(5)"],
)
def test_bad_schedules(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        validate(schedule)
