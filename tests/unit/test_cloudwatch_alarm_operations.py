"""CloudWatch alarm operations over the autoscaler's alarms (issue 14, item 6): SetAlarmState,
DescribeAlarmsForMetric, Enable/DisableAlarmActions, and DescribeAlarms' optional members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from miniecs.autoscaler.alarms import evaluate
from miniecs.autoscaler.store import ScalingStore
from miniecs.aws.autoscaling import ScalingAlarms
from miniecs.aws.cloudwatch import CloudWatchApi
from miniecs.clock import FakeClock
from miniecs.errors import AwsError
from miniecs.metrics.store import MetricStore

ALARM: dict[str, Any] = {
    "AlarmName": "cpu-high",
    "Namespace": "AWS/ECS",
    "MetricName": "CPUUtilization",
    "Dimensions": [{"Name": "ClusterName", "Value": "c1"}, {"Name": "ServiceName", "Value": "web"}],
    "Statistic": "Average",
    "Period": 60,
    "EvaluationPeriods": 3,
    "Threshold": 70.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


@pytest.fixture
def api() -> Iterator[CloudWatchApi]:
    store = ScalingStore(":memory:")
    clock = FakeClock()
    yield CloudWatchApi(MetricStore(None), clock, ScalingAlarms(store, clock, "us-east-1"))
    store.close()


def alarm(api: CloudWatchApi, name: str = "cpu-high") -> dict[str, Any]:
    (found,) = api.describe_alarms({"AlarmNames": [name]})["MetricAlarms"]
    return found


def test_datapoints_to_alarm_only_when_given(api: CloudWatchApi) -> None:
    api.put_metric_alarm(ALARM)
    assert "DatapointsToAlarm" not in {k for k, v in alarm(api).items() if v is not None}
    api.put_metric_alarm({**ALARM, "AlarmName": "two", "DatapointsToAlarm": 2})
    assert alarm(api, "two")["DatapointsToAlarm"] == 2


def test_set_alarm_state_until_the_next_evaluation(api: CloudWatchApi) -> None:
    api.put_metric_alarm(ALARM)
    data = '{"reason": "drill"}'
    api.set_alarm_state(
        {
            "AlarmName": "cpu-high",
            "StateValue": "ALARM",
            "StateReason": "testing",
            "StateReasonData": data,
        }
    )
    shown = alarm(api)
    assert (shown["StateValue"], shown["StateReason"], shown["StateReasonData"]) == (
        "ALARM",
        "testing",
        data,
    )
    # The next evaluation finds no data: INSUFFICIENT_DATA, and the manual reason is gone.
    source = api.alarms
    assert isinstance(source, ScalingAlarms)
    stored = source.scaling.get_alarm("cpu-high")
    assert stored is not None
    after = evaluate(stored, api.metrics, api.clock.now() + 600).alarm
    assert after.state.value == "INSUFFICIENT_DATA" and after.state_reason_data is None


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"AlarmName": "ghost", "StateValue": "OK", "StateReason": "x"}, "ResourceNotFound"),
        (
            {
                "AlarmName": "cpu-high",
                "StateValue": "OK",
                "StateReason": "x",
                "StateReasonData": "{not json",
            },
            "InvalidFormat",
        ),
        ({"AlarmName": "cpu-high", "StateValue": "MAYBE", "StateReason": "x"}, "ValidationError"),
    ],
)
def test_set_alarm_state_refusals_change_nothing(
    api: CloudWatchApi, request_: dict[str, Any], code: str
) -> None:
    api.put_metric_alarm(ALARM)
    before = alarm(api)
    with pytest.raises(AwsError) as err:
        api.set_alarm_state(request_)
    assert err.value.code == code
    assert alarm(api) == before


def test_describe_alarms_for_metric_matches_the_metric(api: CloudWatchApi) -> None:
    api.put_metric_alarm(ALARM)
    api.put_metric_alarm({**ALARM, "AlarmName": "cpu-max", "Statistic": "Maximum"})
    api.put_metric_alarm({**ALARM, "AlarmName": "mem", "MetricName": "MemoryUtilization"})
    api.put_metric_alarm({**ALARM, "AlarmName": "other", "Dimensions": ALARM["Dimensions"][:1]})
    metric = {"Namespace": "AWS/ECS", "MetricName": "CPUUtilization"}

    def names(**extra: Any) -> list[str]:
        found = api.describe_alarms_for_metric({**metric, **extra})["MetricAlarms"]
        return sorted(a["AlarmName"] for a in found)

    assert names() == ["cpu-high", "cpu-max", "other"]
    assert names(Dimensions=list(reversed(ALARM["Dimensions"]))) == ["cpu-high", "cpu-max"]
    assert names(Dimensions=ALARM["Dimensions"], Statistic="Maximum") == ["cpu-max"]
    assert names(Period=300) == []


def test_enable_disable_alarm_actions(api: CloudWatchApi) -> None:
    api.put_metric_alarm(ALARM)
    api.disable_alarm_actions({"AlarmNames": ["cpu-high", "ghost"]})
    assert alarm(api)["ActionsEnabled"] is False
    api.enable_alarm_actions({"AlarmNames": ["cpu-high"]})
    assert alarm(api)["ActionsEnabled"] is True
