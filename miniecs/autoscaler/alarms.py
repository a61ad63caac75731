"""CloudWatch alarms for scaling: the two alarms a target-tracking policy creates, and the
evaluation of any metric alarm against the MetricStore's datapoints.

Target-tracking alarms carry AWS's names, description and shape: AlarmHigh is "metric >
target for 3 of 3 datapoints", AlarmLow "metric < 0.9 x target for 15 of 15", period 60 s
(20 s for the HighResolution metric types). Evaluation follows CloudWatch's M-of-N rule with
missing data treated as missing: no datapoint in the window is INSUFFICIENT_DATA, and a window
too sparse to decide keeps the previous state, so missing data never scales anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miniecs.autoscaler.model import (
    LOW_ALARM_RATIO,
    Alarm,
    AlarmState,
    ScalableTarget,
    ScalingPolicy,
)
from miniecs.metrics.store import Datapoint, MetricId, MetricStore, Stats

HIGH_DATAPOINTS = 3
LOW_DATAPOINTS = 15
STANDARD_PERIOD = 60
HIGH_RESOLUTION_PERIOD = 20

ECS_METRICS = {
    "ECSServiceAverageCPUUtilization": ("CPUUtilization", STANDARD_PERIOD),
    "ECSServiceAverageMemoryUtilization": ("MemoryUtilization", STANDARD_PERIOD),
    "ECSServiceAverageCPUUtilizationHighResolution": ("CPUUtilization", HIGH_RESOLUTION_PERIOD),
    "ECSServiceAverageMemoryUtilizationHighResolution": (
        "MemoryUtilization",
        HIGH_RESOLUTION_PERIOD,
    ),
}
ALB_REQUEST_COUNT = "ALBRequestCountPerTarget"
PREDEFINED_TYPES = (*ECS_METRICS, ALB_REQUEST_COUNT)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
COMPARISONS = tuple(_COMPARE)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period: int
    unit: str | None = None


def policy_metric(target: ScalableTarget, configuration: dict[str, Any]) -> MetricSpec:
    """The metric a target-tracking configuration tracks (validated by the API beforehand)."""
    predefined = configuration.get("PredefinedMetricSpecification")
    if predefined is not None:
        kind = predefined["PredefinedMetricType"]
        if kind == ALB_REQUEST_COUNT:
            # app/<lb-name>/<lb-id>/targetgroup/<tg-name>/<tg-id>: the TargetGroup dimension
            # is the last three parts (a load balancer may be named "targetgroup").
            group = str(predefined["ResourceLabel"]).split("/", 3)[3]
            return MetricSpec(
                "AWS/ApplicationELB",
                "RequestCountPerTarget",
                (("TargetGroup", group),),
                "Sum",
                STANDARD_PERIOD,
            )
        name, period = ECS_METRICS[kind]
        dims = (("ClusterName", target.cluster), ("ServiceName", target.service))
        return MetricSpec("AWS/ECS", name, dims, "Average", period, "Percent")
    custom = configuration["CustomizedMetricSpecification"]
    pairs = tuple(sorted((str(d["Name"]), str(d["Value"])) for d in custom.get("Dimensions") or ()))
    return MetricSpec(
        custom["Namespace"],
        custom["MetricName"],
        pairs,
        custom["Statistic"],
        STANDARD_PERIOD,
        custom.get("Unit"),
    )


def target_tracking_alarms(
    target: ScalableTarget, policy: ScalingPolicy, now: float
) -> tuple[Alarm, Alarm]:
    """AlarmHigh and AlarmLow for `policy`, named and shaped as AWS names and shapes them."""
    spec = policy_metric(target, policy.configuration)
    value = policy.target_value
    prefix = f"TargetTracking-{target.resource_id}"
    high = Alarm(
        name=f"{prefix}-AlarmHigh-{uuid.uuid4()}",
        region=target.region,
        namespace=spec.namespace,
        metric_name=spec.metric_name,
        dimensions=spec.dimensions,
        statistic=spec.statistic,
        period=spec.period,
        evaluation_periods=HIGH_DATAPOINTS,
        datapoints_to_alarm=HIGH_DATAPOINTS,
        threshold=value,
        comparison="GreaterThanThreshold",
        configured_at=now,
        description=f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy.arn}.",
        unit=spec.unit,
        actions=(policy.arn,),
        owner_policy=policy.arn,
        state_updated_at=now,
    )
    low = dataclasses.replace(
        high,
        name=f"{prefix}-AlarmLow-{uuid.uuid4()}",
        evaluation_periods=LOW_DATAPOINTS,
        datapoints_to_alarm=LOW_DATAPOINTS,
        threshold=round(value * LOW_ALARM_RATIO, 10),
        comparison="LessThanThreshold",
    )
    return high, low


@dataclass(frozen=True, slots=True)
class Point:
    """One datapoint as an alarm saw it: the value of its statistic and the whole set."""

    timestamp: float
    value: float
    stats: Stats
    breaching: bool


@dataclass(frozen=True, slots=True)
class AlarmEvaluation:
    alarm: Alarm
    """The alarm with its new state."""
    points: tuple[Point, ...]
    """The datapoints of the evaluation window, oldest first."""
    changed: bool

    @property
    def state(self) -> AlarmState:
        return self.alarm.state

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float) -> str:
    return repr(round(value, 4))


def evaluate(alarm: Alarm, metrics: MetricStore, now: float) -> AlarmEvaluation:
    """Evaluate `alarm` over its last complete periods ending at or before `now`."""
    end = math.floor(now / alarm.period) * alarm.period
    start = end - alarm.evaluation_periods * alarm.period
    metric = MetricId(alarm.namespace, alarm.metric_name, alarm.dimensions)
    data: list[Datapoint] = metrics.datapoints(metric, start, end, alarm.period)
    compare = _COMPARE[alarm.comparison]
    points = tuple(
        Point(d.timestamp, v, d.stats, compare(v, alarm.threshold))
        for d in data
        for v in (d.stats.statistic(alarm.statistic),)
    )
    breaching = [p for p in points if p.breaching]
    clear = len(points) - len(breaching)
    needed = alarm.datapoints_to_alarm
    words = _WORDS[alarm.comparison]
    if not points:
        state = AlarmState.INSUFFICIENT_DATA
        reason = f"Insufficient Data: {alarm.evaluation_periods} datapoints were unknown."
    elif len(breaching) >= needed:
        state = AlarmState.ALARM
        listed = ", ".join(f"{_number(p.value)} ({_stamp(p.timestamp)})" for p in breaching)
        reason = (
            f"Threshold Crossed: {len(breaching)} datapoints [{listed}] were {words} "
            f"the threshold ({_number(alarm.threshold)})."
        )
    elif clear > alarm.evaluation_periods - needed:
        state = AlarmState.OK
        listed = ", ".join(f"{_number(p.value)} ({_stamp(p.timestamp)})" for p in points[-3:])
        reason = (
            f"Threshold Crossed: {clear} datapoints were not {words} the threshold "
            f"({_number(alarm.threshold)}). The most recent datapoints: [{listed}]."
        )
    else:
        state, reason = alarm.state, alarm.state_reason
    changed = state is not alarm.state
    updated = dataclasses.replace(
        alarm,
        state=state,
        state_reason=reason if changed else alarm.state_reason,
        state_updated_at=now if changed else alarm.state_updated_at,
        state_reason_data=None if changed else alarm.state_reason_data,
        evaluated_until=end,
    )
    return AlarmEvaluation(updated, points, changed)


def due(alarm: Alarm, now: float) -> bool:
    """True when a period has ended since the alarm was last evaluated."""
    return math.floor(now / alarm.period) * alarm.period > alarm.evaluated_until
