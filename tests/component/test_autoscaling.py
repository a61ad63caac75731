"""Application Auto Scaling over whole cycles: the real store, scheduler and task controller
on the fake runtime, a fake clock, and synthetic AWS/ECS datapoints in a MetricStore, written
every 20 s as the publisher writes them. An hour of control-plane time runs in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from miniecs.autoscaler.loop import AutoScaler
from miniecs.autoscaler.store import ScalingStore
from miniecs.aws.autoscaling import AutoScalingApi, ScalingAlarms
from miniecs.aws.cloudwatch import CloudWatchApi
from miniecs.aws.ecs import EcsApi
from miniecs.clock import FakeClock
from miniecs.config import Settings, TaskSettings
from miniecs.errors import AwsError
from miniecs.metrics.store import MetricId, MetricStore, Stats
from miniecs.model import TaskStatus
from miniecs.runtime.fake import FakeRuntime
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.store import Store
from miniecs.tasks.controller import TaskController
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


def user_alarm(arn: str, threshold: float, **extra: Any) -> dict[str, Any]:
    return {
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
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "AlarmActions": [arn],
        **extra,
    }


async def test_updating_an_alarm_keeps_its_state_and_its_owner(scaling: Scaling) -> None:
    s = scaling
    arn = await setup(s, desired=1, lo=1, hi=1, value=50)
    s.alarms.put_metric_alarm(user_alarm(arn, 70))
    await s.run(5 * 60, spread(90))
    before = {a["AlarmName"]: a for a in s.alarms.describe_alarms({})["MetricAlarms"]}
    high = next(n for n in before if "-AlarmHigh-" in n)
    assert before[high]["StateValue"] == before["cpu-high"]["StateValue"] == "ALARM"
    s.h.clock.advance(5)
    # PutMetricAlarm on an existing alarm replaces its configuration, not its state.
    s.alarms.put_metric_alarm(user_alarm(arn, 80, AlarmDescription="raised"))
    s.alarms.put_metric_alarm({**user_alarm(arn, 60), "AlarmName": high, "AlarmActions": []})
    after = {a["AlarmName"]: a for a in s.alarms.describe_alarms({})["MetricAlarms"]}
    for name in (high, "cpu-high"):
        for key in ("StateValue", "StateReason", "StateUpdatedTimestamp"):
            assert after[name][key] == before[name][key], (name, key)
        assert after[name]["AlarmConfigurationUpdatedTimestamp"] == s.h.clock.now()
    assert (after["cpu-high"]["Threshold"], after["cpu-high"]["AlarmDescription"]) == (80, "raised")
    assert after[high]["Threshold"] == 60
    # The target-tracking alarm stays its policy's: deleting the policy deletes it.
    alarm = s.store.get_alarm(high)
    assert alarm is not None and alarm.owner_policy == arn
    s.api.delete_scaling_policy({**IDS, "PolicyName": "cpu"})
    assert [a["AlarmName"] for a in s.alarms.describe_alarms({})["MetricAlarms"]] == ["cpu-high"]


class Killed(BaseException):
    """SIGKILL of the control plane in the middle of applying a scaling decision."""


@dataclass
class Files:
    """A control plane whose state lives in files: a restart reopens them."""

    root: Path
    clock: FakeClock
    metrics: MetricStore
    opened: list[Scaling]

    def open(self) -> Scaling:
        store = Store(self.root / "miniecs.db")
        settings = Settings(tasks=TaskSettings())
        runtime = FakeRuntime()
        controller = TaskController(store, runtime, self.clock, settings.tasks, "i1", host_cpus=2)
        h = Harness(
            store,
            runtime,
            self.clock,
            controller,
            EcsApi(store, self.clock, settings),
            ServiceScheduler(store, self.clock),
        )
        scaling = ScalingStore(self.root / "autoscaling.db")
        autoscaler = AutoScaler(store, scaling, self.metrics, self.clock)
        api = AutoScalingApi(store, scaling, autoscaler, self.clock, "us-east-1")
        alarms = ScalingAlarms(scaling, self.clock, "us-east-1")
        self.opened.append(Scaling(h, scaling, self.metrics, autoscaler, api, alarms, []))
        return self.opened[-1]


@pytest.fixture
async def files(tmp_path: Path) -> AsyncIterator[Files]:
    f = Files(tmp_path, FakeClock(), MetricStore(tmp_path / "metrics.db"), [])
    yield f
    for s in f.opened:
        await s.h.controller.drain(1)
        s.store.close()
        s.h.store.close()
    f.metrics.close()


@pytest.mark.parametrize("crash", ["after the cooldown", "after the desired count"])
async def test_a_crash_while_scaling_never_scales_twice(
    files: Files, crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = files.open()
    await setup(first, desired=1, lo=1, hi=10, value=50, ScaleOutCooldown=600)
    store = first.store

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    # The three writes of a scaling decision: (1) the InProgress activity with the cooldown,
    # (2) the desired count, (3) the activity's outcome. The crash follows (1) or (2).
    if crash == "after the cooldown":
        start = store.start_activity

        def start_then_die(*args: Any, **kwargs: Any) -> None:
            start(*args, **kwargs)
            raise Killed

        monkeypatch.setattr(store, "start_activity", start_then_die)
    else:
        monkeypatch.setattr(store, "put_activity", killed)
    with pytest.raises(Killed):
        await first.run(10 * 60, spread(100))  # 1 task at 100 % against 50: ceil(1 x 2) = 2
    (activity,) = store.list_activities()
    assert activity.status_code == "InProgress"
    assert first.desired() == (1 if crash == "after the cooldown" else 2)

    # The restart: fresh stores and autoscaler on the same files. The alarm is still ALARM and
    # the load has not moved (the service's average stays at 100 %): without the cooldown,
    # ceil(2 x 100 / 50) = 4 would double the scale-out.
    second = files.open()
    for _ in range(int(4 * 60 / STEP)):
        second.metrics.put(CPU, files.clock.now(), Stats(2, 200, 100, 100), "Percent", 1)
        files.clock.advance(STEP)
        second.autoscaler.once()
        assert second.desired() == 2
    alarms = second.alarms.describe_alarms({})["MetricAlarms"]
    assert "ALARM" in {a["StateValue"] for a in alarms}
    (shown,) = second.api.describe_scaling_activities({"ServiceNamespace": "ecs"})[
        "ScalingActivities"
    ]
    assert (shown["Description"], shown["StatusCode"], shown["StatusMessage"]) == (
        "Setting desired count to 2.",
        "Successful",
        "Successfully set desired count to 2. Change successfully fulfilled by ecs.",
    )
    events = [e["message"] for e in describe(second.h)["events"]]
    assert sum("has its desired count set to 2 by Application" in m for m in events) == 1
    history = second.autoscaler.why("service/c1/web")
    assert "scale-out cooldown" in history[-1]["decision"]["reason"]


async def test_an_interrupted_activity_fails_if_the_count_changed_meanwhile(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = files.open()
    await setup(first, desired=1, lo=1, hi=10, value=50)
    start = first.store.start_activity

    def start_then_die(*args: Any, **kwargs: Any) -> None:
        start(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(first.store, "start_activity", start_then_die)
    with pytest.raises(Killed):
        await first.run(10 * 60, spread(100))
    first.h.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 5})
    second = files.open()
    second.autoscaler.finish_interrupted()
    (shown,) = second.api.describe_scaling_activities({"ServiceNamespace": "ecs"})[
        "ScalingActivities"
    ]
    assert (shown["StatusCode"], shown["StatusMessage"]) == (
        "Failed",
        "Failed to set desired count to 2. Reason: the desired count changed to 5 meanwhile.",
    )
    assert shown["EndTime"] == files.clock.now() and second.desired() == 5


async def test_disabled_alarm_actions_stop_target_tracking(scaling: Scaling) -> None:
    """DisableAlarmActions on a policy's alarm stops its scaling; EnableAlarmActions resumes it
    (CloudWatch API reference: actions run only while ActionsEnabled)."""
    s = scaling
    await setup(s, desired=1, lo=1, hi=10, value=40)
    names = [a.name for a in s.store.list_alarms()]
    cloudwatch = CloudWatchApi(s.metrics, s.h.clock, s.alarms)
    cloudwatch.disable_alarm_actions({"AlarmNames": names})
    await s.run(10 * 60, pinned(100))
    assert s.changes == [] and s.running() == 1
    described = cloudwatch.describe_alarms({})["MetricAlarms"]
    assert {a["ActionsEnabled"] for a in described} == {False}
    assert any(a["StateValue"] == "ALARM" for a in described)
    cloudwatch.enable_alarm_actions({"AlarmNames": names})
    await s.run(5 * 60, pinned(100))
    assert [c for _, c in s.changes] == [3]
