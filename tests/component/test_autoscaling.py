"""Application Auto Scaling over whole cycles: the real store, scheduler and task controller
on the fake runtime, a fake clock, and synthetic AWS/ECS datapoints in a MetricStore, written
every 20 s as the publisher writes them. An hour of control-plane time runs in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from miniecs.autoscaler.loop import AutoScaler
from miniecs.autoscaler.store import ScalingStore
from miniecs.aws.autoscaling import AutoScalingApi, ScalingAlarms
from miniecs.errors import AwsError
from miniecs.metrics.store import MetricId, MetricStore, Stats
from miniecs.model import TaskStatus
from miniecs.why import render
from tests.component.conftest import Harness
from tests.component.test_services import describe, service

IDS = {
    "ServiceNamespace": "ecs",
    "ResourceId": "service/c1/web",
    "ScalableDimension": "ecs:service:DesiredCount",
}
CPU = MetricId("AWS/ECS", "CPUUtilization", (("ClusterName", "c1"), ("ServiceName", "web")))
STEP = 20.0

Load = Callable[[int], Stats | None]
"""The CPU datapoint of a 20 s window, given the number of RUNNING tasks."""


def pinned(total: float) -> Load:
    """All load on one task (the study's trap): that task at `total` %, the others idle."""
    return lambda n: Stats(n, total, 0.0 if n > 1 else total, total) if n else None


def spread(total: float) -> Load:
    """Load shared evenly by the tasks."""
    return lambda n: Stats(n, total, total / n, total / n) if n else None


@dataclass
class Scaling:
    h: Harness
    store: ScalingStore
    metrics: MetricStore
    autoscaler: AutoScaler
    api: AutoScalingApi
    alarms: ScalingAlarms
    changes: list[tuple[float, int]]

    def running(self) -> int:
        return sum(
            t.last_status is TaskStatus.RUNNING and t.desired_status is TaskStatus.RUNNING
            for t in self.h.store.list_tasks(cluster="c1", service="web")
        )

    def desired(self) -> int:
        return int(describe(self.h)["desiredCount"])

    async def run(self, seconds: float, load: Load) -> None:
        """Advance the clock in 20 s steps: publish a datapoint for the window that just ended,
        let the autoscaler pass, then the scheduler and the fake runtime."""
        for _ in range(int(seconds / STEP)):
            stats = load(self.running())
            if stats is not None:
                self.metrics.put(CPU, self.h.clock.now(), stats, "Percent", 1)
            self.h.clock.advance(STEP)
            before = self.desired()
            self.autoscaler.once()
            after = self.desired()
            if after != before:
                self.changes.append((self.h.clock.now(), after))
            await self.h.settle()


@pytest.fixture
async def scaling(harness: Harness) -> Scaling:
    store = ScalingStore(":memory:")
    metrics = MetricStore()
    autoscaler = AutoScaler(harness.store, store, metrics, harness.clock)
    api = AutoScalingApi(harness.store, store, autoscaler, harness.clock, "us-east-1")
    return Scaling(
        harness,
        store,
        metrics,
        autoscaler,
        api,
        ScalingAlarms(store, harness.clock, "us-east-1"),
        [],
    )


async def setup(s: Scaling, desired: int, lo: int, hi: int, value: float, **cfg: Any) -> str:
    service(s.h, desired)
    await s.h.settle()
    s.h.clock.advance(40)  # tasks count as healthy 40 s after RUNNING: the deployment completes
    await s.h.settle()
    s.api.register_scalable_target({**IDS, "MinCapacity": lo, "MaxCapacity": hi})
    out = s.api.put_scaling_policy(
        {
            **IDS,
            "PolicyName": "cpu",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": value,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
                **cfg,
            },
        }
    )
    return str(out["PolicyARN"])


async def test_the_trap_scales_out_within_three_periods_then_holds(scaling: Scaling) -> None:
    s = scaling
    await setup(s, desired=1, lo=1, hi=10, value=40)
    start = s.h.clock.now()
    await s.run(30 * 60, pinned(100))
    # One task at 100 % against 40 %: ceil(1 x 100 / 40) = 3, within 3 periods (+ alignment).
    (at, capacity), *later = s.changes
    assert capacity == 3 and at - start <= 4 * 60
    # The average is then 33 %, below AlarmLow's 36 %, yet ceil(3 x 33.3 / 40) = 3: it holds.
    assert later == [] and s.running() == 3
    history = s.autoscaler.why("service/c1/web")
    assert "although the busiest task is at 100 %" in history[-1]["decision"]["reason"]
    text = render(history, limit=100)
    assert any(line.endswith("-> 3 (applied)") for line in text)
    assert any("ceil(1 x 100 / 40) = 3" in line for line in text)
    assert any(line.strip().startswith("cpu: AlarmHigh ALARM (> 40)") for line in text)
    activity = s.api.describe_scaling_activities({"ServiceNamespace": "ecs"})["ScalingActivities"]
    assert [a["Description"] for a in activity] == ["Setting desired count to 3."]
    assert activity[0]["StatusMessage"] == (
        "Successfully set desired count to 3. Change successfully fulfilled by ecs."
    )
    assert activity[0]["Cause"].startswith("monitor alarm TargetTracking-service/c1/web-AlarmHigh-")
    assert activity[0]["Cause"].endswith(" in state ALARM triggered policy cpu")
    events = [e["message"] for e in describe(s.h)["events"]]
    assert any(
        m.startswith("(service web) has its desired count set to 3 by Application") for m in events
    )


async def test_scale_in_after_fifteen_periods_and_cooldown(scaling: Scaling) -> None:
    s = scaling
    await setup(s, desired=4, lo=1, hi=10, value=50, ScaleInCooldown=300)
    start = s.h.clock.now()
    await s.run(40 * 60, spread(40))  # 4 tasks at 10 %: below 45 % for 15 periods
    first_at, first = s.changes[0]
    assert first == 1  # ceil(4 x 10 / 50) = 1
    assert 15 * 60 <= first_at - start <= 17 * 60
    assert s.changes == [(first_at, 1)] and s.running() == 1


async def test_scale_out_cooldown_and_a_larger_scale_out(scaling: Scaling) -> None:
    s = scaling
    await setup(s, desired=1, lo=1, hi=10, value=50, ScaleOutCooldown=600)
    await s.run(5 * 60, pinned(100))  # 1 -> 2
    assert [c for _, c in s.changes] == [2]
    # During the cooldown the capacity the scale-out added counts as already there: the
    # formula starts from the capacity before it (1). 2 tasks at 100 % give ceil(1 x 100 / 50)
    # = 2, not larger: nothing. 2 tasks at 200 % give ceil(1 x 200 / 50) = 4: it passes.
    await s.run(3 * 60, spread(200))
    assert [c for _, c in s.changes] == [2]
    await s.run(4 * 60, spread(400))
    assert [c for _, c in s.changes][:2] == [2, 4]


async def test_min_zero_rests_at_zero_and_wakes_on_a_custom_metric(scaling: Scaling) -> None:
    s = scaling
    service(s.h, 1)
    await s.h.settle()
    s.h.clock.advance(40)
    await s.h.settle()
    queue = MetricId("App", "QueueDepthPerTask", (("Queue", "jobs"),))
    s.api.register_scalable_target({**IDS, "MinCapacity": 0, "MaxCapacity": 5})
    s.api.put_scaling_policy(
        {
            **IDS,
            "PolicyName": "queue",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 10,
                "CustomizedMetricSpecification": {
                    "MetricName": "QueueDepthPerTask",
                    "Namespace": "App",
                    "Dimensions": [{"Name": "Queue", "Value": "jobs"}],
                    "Statistic": "Average",
                },
                "ScaleInCooldown": 0,
            },
        }
    )

    async def run(seconds: float, depth: float) -> None:
        for _ in range(int(seconds / STEP)):
            s.metrics.put(queue, s.h.clock.now(), depth, "Count", 1)
            s.h.clock.advance(STEP)
            s.autoscaler.once()
            await s.h.settle()

    await run(20 * 60, 0)
    assert (s.desired(), s.running()) == (0, 0)
    await run(5 * 60, 25)
    assert s.desired() == 3  # from zero the formula starts at one: ceil(1 x 25 / 10)


async def test_register_clamps_and_bad_input_changes_nothing(scaling: Scaling) -> None:
    s = scaling
    service(s.h, 7)
    await s.h.settle()
    with pytest.raises(AwsError) as err:
        s.api.register_scalable_target({**IDS, "MinCapacity": 5, "MaxCapacity": 2})
    assert (err.value.code, err.value.message) == (
        "ValidationException",
        "Minimum capacity cannot be greater than maximum capacity",
    )
    with pytest.raises(AwsError) as err:
        s.api.put_scaling_policy({**IDS, "PolicyName": "p", "PolicyType": "TargetTrackingScaling"})
    assert err.value.code == "ObjectNotFoundException"
    assert err.value.message == (
        "No scalable target registered for service namespace: ecs, resource ID: service/c1/web, "
        "scalable dimension: ecs:service:DesiredCount"
    )
    assert s.store.list_targets() == [] and s.desired() == 7
    s.api.register_scalable_target({**IDS, "MinCapacity": 1, "MaxCapacity": 4})
    assert s.desired() == 4
    s.api.register_scalable_target({**IDS, "MinCapacity": 5, "MaxCapacity": 6})  # re-register
    assert s.desired() == 5
    with pytest.raises(AwsError) as err:
        s.api.put_scaling_policy(
            {
                **IDS,
                "PolicyName": "p",
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 50,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "NoSuchMetric"},
                },
            }
        )
    assert err.value.code == "ValidationException" and "NoSuchMetric" in err.value.message
    assert s.store.list_policies() == [] and s.store.list_alarms() == []


async def test_alarms_visible_and_removed_with_the_target(scaling: Scaling) -> None:
    s = scaling
    arn = await setup(s, desired=1, lo=1, hi=3, value=50)
    alarms = s.alarms.describe_alarms({})["MetricAlarms"]
    assert sorted(a["AlarmName"].rsplit("-", 5)[0] for a in alarms) == [
        "TargetTracking-service/c1/web-AlarmHigh",
        "TargetTracking-service/c1/web-AlarmLow",
    ]
    assert {a["AlarmActions"][0] for a in alarms} == {arn}
    policies = s.api.describe_scaling_policies({"ServiceNamespace": "ecs"})["ScalingPolicies"]
    assert sorted(a["AlarmName"] for a in policies[0]["Alarms"]) == sorted(
        a["AlarmName"] for a in alarms
    )
    s.api.deregister_scalable_target(IDS)
    assert s.alarms.describe_alarms({})["MetricAlarms"] == []
    assert s.api.describe_scaling_policies({"ServiceNamespace": "ecs"})["ScalingPolicies"] == []


async def test_step_scaling_from_a_user_alarm(scaling: Scaling) -> None:
    s = scaling
    service(s.h, 1)
    await s.h.settle()
    s.h.clock.advance(40)
    await s.h.settle()
    s.api.register_scalable_target({**IDS, "MinCapacity": 1, "MaxCapacity": 10})
    arn = s.api.put_scaling_policy(
        {
            **IDS,
            "PolicyName": "steps",
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}],
                "Cooldown": 600,
            },
        }
    )["PolicyARN"]
    s.alarms.put_metric_alarm(
        {
            "AlarmName": "cpu-high",
            "Namespace": "AWS/ECS",
            "MetricName": "CPUUtilization",
            "Dimensions": [
                {"Name": "ClusterName", "Value": "c1"},
                {"Name": "ServiceName", "Value": "web"},
            ],
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 2,
            "Threshold": 70,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [arn],
        }
    )
    await s.run(5 * 60, pinned(90))
    assert [c for _, c in s.changes] == [3]
    shown = s.api.describe_scaling_policies({"ServiceNamespace": "ecs"})["ScalingPolicies"]
    assert [a["AlarmName"] for a in shown[0]["Alarms"]] == ["cpu-high"]


async def test_deleting_the_service_deregisters_its_target(scaling: Scaling) -> None:
    s = scaling
    await setup(s, desired=1, lo=1, hi=3, value=50)
    s.h.ecs.delete_service({"cluster": "c1", "service": "web", "force": True})
    await s.run(120, spread(10))
    assert s.store.list_targets() == [] and s.store.list_alarms() == []


async def test_scheduled_action_sets_bounds_and_clamps_unless_suspended(scaling: Scaling) -> None:
    s = scaling
    await setup(s, desired=1, lo=1, hi=3, value=50)
    s.api.put_scheduled_action(
        {
            **IDS,
            "ScheduledActionName": "rush",
            "Schedule": "rate(2 minutes)",
            "ScalableTargetAction": {"MinCapacity": 2, "MaxCapacity": 5},
        }
    )
    s.api.register_scalable_target({**IDS, "SuspendedState": {"ScheduledScalingSuspended": True}})
    await s.run(180, spread(45))
    assert s.desired() == 1
    s.api.register_scalable_target({**IDS, "SuspendedState": {"ScheduledScalingSuspended": False}})
    await s.run(60, spread(45))
    (target,) = s.api.describe_scalable_targets({"ServiceNamespace": "ecs"})["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"], s.desired()) == (2, 5, 2)
    (activity,) = s.api.describe_scaling_activities({"ServiceNamespace": "ecs"})[
        "ScalingActivities"
    ]
    assert activity["Cause"] == "scheduled action name rush was triggered"
