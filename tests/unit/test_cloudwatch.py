"""CloudWatch's metric operations over a MetricStore: aggregation, pagination and the
validation errors CloudWatch returns (code and wording)."""

from __future__ import annotations

from typing import Any

import pytest

from miniecs.aws.cloudwatch import CloudWatchApi, input_error
from miniecs.clock import FakeClock
from miniecs.errors import AwsError
from miniecs.metrics.store import MetricId, MetricStore, Stats

T0 = 1_700_000_040.0  # a whole minute
WEB = [{"Name": "ServiceName", "Value": "web"}, {"Name": "ClusterName", "Value": "c1"}]


@pytest.fixture
def api() -> CloudWatchApi:
    return CloudWatchApi(MetricStore(None), FakeClock(T0 + 600))


def put(api: CloudWatchApi, *data: dict[str, Any], namespace: str = "App") -> None:
    api.put_metric_data({"Namespace": namespace, "MetricData": list(data)})


def stats(api: CloudWatchApi, **extra: Any) -> dict[str, Any]:
    req = {
        "Namespace": "App",
        "MetricName": "Latency",
        "StartTime": T0,
        "EndTime": T0 + 600,
        "Period": 60,
        "Statistics": ["SampleCount", "Average", "Sum", "Minimum", "Maximum"],
        **extra,
    }
    return api.get_metric_statistics(req)


def query(qid: str, name: str = "Latency", stat: str = "Sum", **extra: Any) -> dict[str, Any]:
    metric = {"Namespace": "App", "MetricName": name}
    return {"Id": qid, "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}, **extra}


def data(api: CloudWatchApi, queries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return api.get_metric_data(
        {"MetricDataQueries": queries, "StartTime": T0, "EndTime": T0 + 600, **extra}
    )


def test_values_counts_and_statistic_sets_merge_into_one_period(api: CloudWatchApi) -> None:
    put(
        api,
        {"MetricName": "Latency", "Value": 10, "Timestamp": T0 + 1, "Unit": "Milliseconds"},
        {
            "MetricName": "Latency",
            "Values": [1, 4],
            "Counts": [2, 1],
            "Timestamp": T0 + 2,
            "Unit": "Milliseconds",
        },
        {
            "MetricName": "Latency",
            "StatisticValues": {"SampleCount": 2, "Sum": 30, "Minimum": 12, "Maximum": 18},
            "Timestamp": T0 + 59,
            "Unit": "Milliseconds",
        },
        {"MetricName": "Latency", "Value": 100, "Timestamp": T0 + 60, "Unit": "Milliseconds"},
    )
    points = stats(api)["Datapoints"]
    assert [p["Timestamp"] for p in points] == [T0, T0 + 60]
    first = points[0]
    assert (first["SampleCount"], first["Sum"], first["Minimum"], first["Maximum"]) == (
        6,
        46,
        1,
        18,
    )
    assert first["Average"] == pytest.approx(46 / 6)
    assert first["Unit"] == "Milliseconds"
    assert stats(api)["Label"] == "Latency"
    assert stats(api, Period=120)["Datapoints"][0]["SampleCount"] == 7


def test_only_the_asked_statistics_and_unit_are_returned(api: CloudWatchApi) -> None:
    put(api, {"MetricName": "Latency", "Value": 3, "Timestamp": T0, "Unit": "Seconds"})
    (point,) = stats(api, Statistics=["Maximum"])["Datapoints"]
    assert set(point) == {"Timestamp", "Unit", "Maximum"}
    assert stats(api, Unit="Seconds")["Datapoints"]
    assert stats(api, Unit="Percent")["Datapoints"] == []


def test_unknown_metrics_and_dimensions_are_empty_not_errors(api: CloudWatchApi) -> None:
    put(api, {"MetricName": "Latency", "Value": 3, "Timestamp": T0, "Dimensions": WEB})
    assert stats(api, MetricName="Nothing")["Datapoints"] == []
    assert stats(api)["Datapoints"] == []  # no dimensions is another series
    assert stats(api, Dimensions=list(reversed(WEB)))["Datapoints"]  # order does not matter
    assert api.list_metrics({"Namespace": "Nope"}) == {"Metrics": []}


def test_high_resolution_metrics_answer_short_periods(api: CloudWatchApi) -> None:
    for second in range(0, 30, 5):
        put(
            api,
            {
                "MetricName": "Latency",
                "Value": second,
                "Timestamp": T0 + second,
                "StorageResolution": 1,
            },
        )
    points = stats(api, Period=10, EndTime=T0 + 60)["Datapoints"]
    assert [p["SampleCount"] for p in points] == [2, 2, 2]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ({"Period": 61}, "InvalidParameterValue", "The parameter Period must be a multiple of 60."),
        ({"Period": 7}, "InvalidParameterValue", "The parameter Period must be a multiple of 60."),
        (
            {"EndTime": T0},
            "InvalidParameterValue",
            "The parameter StartTime must be less than the parameter EndTime.",
        ),
        (
            {"StartTime": T0 - 86400},
            "InvalidParameterCombination",
            "You have requested up to 1,450 datapoints, which exceeds the limit of 1,440. You "
            "may reduce the datapoints requested by increasing Period, or decreasing the time "
            "range.",
        ),
        (
            {"Statistics": []},
            "InvalidParameterCombination",
            "Must specify either Statistics or ExtendedStatistics",
        ),
        (
            {"Statistics": ["Median"]},
            "InvalidParameterValue",
            "The value Median for parameter Statistics.member.1 is invalid.",
        ),
        ({"ExtendedStatistics": ["p99"]}, "InvalidParameterValue", "ExtendedStatistics"),
        ({"Unit": "Parsecs"}, "InvalidParameterValue", "Parsecs"),
    ],
)
def test_get_metric_statistics_errors(
    api: CloudWatchApi, extra: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(AwsError) as err:
        stats(api, **extra)
    assert err.value.code == code
    assert message in err.value.message


def test_exactly_1440_datapoints_are_allowed(api: CloudWatchApi) -> None:
    assert stats(api, StartTime=T0 - 1440 * 60 + 600)["Datapoints"] == []


@pytest.mark.parametrize(
    ("datum", "code", "message"),
    [
        (
            {"Value": 1, "Values": [1]},
            "InvalidParameterCombination",
            "The parameters MetricData.member.1.Value and MetricData.member.1.Values are "
            "mutually exclusive and you have specified both.",
        ),
        (
            {
                "Value": 1,
                "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1},
            },
            "InvalidParameterCombination",
            "The parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues "
            "are mutually exclusive and you have specified both.",
        ),
        (
            {"Values": [1, 2], "Counts": [1, 2, 3]},
            "InvalidParameterValue",
            "The parameters MetricData.member.1.Values and MetricData.member.1.Counts must be "
            "of the same size.",
        ),
        ({}, "MissingParameter", "At least one of the parameters MetricData.member.1.Value"),
        ({"Value": float("nan")}, "InvalidParameterValue", "MetricData.member.1.Value"),
        (
            {"StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 2, "Maximum": 1}},
            "InvalidParameterValue",
            "StatisticValues.Maximum must be greater than",
        ),
        ({"Value": 1, "StorageResolution": 5}, "InvalidParameterValue", "StorageResolution"),
        ({"Value": 1, "Unit": "Parsecs"}, "InvalidParameterValue", "Unit"),
        ({"Value": 1, "Timestamp": T0 + 600 + 3 * 3600}, "InvalidParameterValue", "future"),
        ({"Value": 1, "Timestamp": T0 - 15 * 86400}, "InvalidParameterValue", "past"),
    ],
)
def test_put_metric_data_errors_store_nothing(
    api: CloudWatchApi, datum: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(AwsError) as err:
        put(api, {"MetricName": "Good", "Value": 1}, {"MetricName": "Latency", **datum})
    assert err.value.code == code
    assert message in err.value.message.replace("member.2", "member.1")
    assert api.list_metrics({}) == {"Metrics": []}


def test_aws_namespaces_are_reserved(api: CloudWatchApi) -> None:
    with pytest.raises(AwsError) as err:
        put(api, {"MetricName": "CPUUtilization", "Value": 1}, namespace="AWS/ECS")
    assert err.value.code == "InvalidParameterValue"


def test_timestamp_defaults_to_the_control_plane_clock(api: CloudWatchApi) -> None:
    put(api, {"MetricName": "Latency", "Value": 1})
    now = api.clock.now()
    (point,) = stats(api, StartTime=now - 60, EndTime=now + 60)["Datapoints"]
    assert point["Timestamp"] == now // 60 * 60


def test_list_metrics_filters_recent_activity_and_pages(api: CloudWatchApi) -> None:
    store = api.metrics
    store.put(MetricId("AWS/ECS", "CPUUtilization", (("ClusterName", "c1"),)), T0, 1.0)
    for i in range(501):
        store.put(MetricId("App", f"m{i:03}", (("ServiceName", "web"),)), T0 + 599, 1.0)
    store.put(MetricId("App", "old", (("ServiceName", "api"),)), T0 - 4 * 3600, 1.0)
    page = api.list_metrics({"Namespace": "App"})
    assert len(page["Metrics"]) == 500
    rest = api.list_metrics({"Namespace": "App", "NextToken": page["NextToken"]})
    assert len(rest["Metrics"]) == 2 and "NextToken" not in rest
    recent = api.list_metrics({"Namespace": "App", "RecentlyActive": "PT3H"})
    assert "old" not in [m["MetricName"] for m in recent["Metrics"]] and "NextToken" in recent
    by_value = api.list_metrics({"Dimensions": [{"Name": "ServiceName", "Value": "api"}]})
    assert by_value["Metrics"] == [
        {
            "Namespace": "App",
            "MetricName": "old",
            "Dimensions": [{"Name": "ServiceName", "Value": "api"}],
        }
    ]
    by_name = api.list_metrics({"Dimensions": [{"Name": "ClusterName"}]})
    assert [m["Namespace"] for m in by_name["Metrics"]] == ["AWS/ECS"]
    with pytest.raises(AwsError) as err:
        api.list_metrics({"NextToken": "garbage"})
    assert err.value.code == "InvalidParameterValue"


def test_get_metric_data_several_queries_scan_order_label_and_return_data(
    api: CloudWatchApi,
) -> None:
    for minute in range(3):
        put(
            api,
            {"MetricName": "Latency", "Value": minute, "Timestamp": T0 + 60 * minute},
            {"MetricName": "Errors", "Value": 10 + minute, "Timestamp": T0 + 60 * minute},
        )
    out = data(
        api,
        [
            query("lat", Label="p"),
            query("err", "Errors", "Maximum"),
            query("hidden", ReturnData=False),
            query("none", "Unknown"),
        ],
    )
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert list(results) == ["lat", "err", "none"]
    assert results["lat"]["Label"] == "p" and results["err"]["Label"] == "Errors"
    assert results["lat"]["Timestamps"] == [T0 + 120, T0 + 60, T0]  # newest first by default
    assert results["err"]["Values"] == [12, 11, 10]
    assert results["none"] == {
        "Id": "none",
        "Label": "Unknown",
        "Timestamps": [],
        "Values": [],
        "StatusCode": "Complete",
    }
    ascending = data(api, [query("lat")], ScanBy="TimestampAscending")["MetricDataResults"][0]
    assert ascending["Values"] == [0, 1, 2]


def test_get_metric_data_pages_by_max_datapoints(api: CloudWatchApi) -> None:
    for minute in range(3):
        put(
            api,
            {"MetricName": "Latency", "Value": minute, "Timestamp": T0 + 60 * minute},
            {"MetricName": "Errors", "Value": minute, "Timestamp": T0 + 60 * minute},
        )
    queries = [query("a"), query("b", "Errors")]
    first = data(api, queries, MaxDatapoints=4, ScanBy="TimestampAscending")
    a, b = first["MetricDataResults"]
    assert (a["Values"], a["StatusCode"]) == ([0, 1, 2], "Complete")
    assert (b["Values"], b["StatusCode"]) == ([0], "PartialData")
    second = data(
        api, queries, MaxDatapoints=4, ScanBy="TimestampAscending", NextToken=first["NextToken"]
    )
    a, b = second["MetricDataResults"]
    assert a["Values"] == [] and (b["Values"], b["StatusCode"]) == ([1, 2], "Complete")
    assert "NextToken" not in second
    with pytest.raises(AwsError) as err:
        data(api, queries, NextToken=first["NextToken"])  # the other scan order
    assert err.value.code == "InvalidNextToken"


@pytest.mark.parametrize(
    ("queries", "code", "message"),
    [
        ([query("a")] * 2, "ValidationError", "are not unique"),
        ([query("A")], "ValidationError", "MetricDataQueries.member.1.Id is not matching"),
        ([{"Id": "a"}], "ValidationError", "MetricDataQueries.member.1.MetricStat is required"),
        ([{"Id": "a", "Expression": "SUM(METRICS())"}], "ValidationError", "metric math"),
        (
            [{**query("a"), "Expression": "m1"}],
            "ValidationError",
            "The parameters MetricDataQueries.member.1.Expression and "
            "MetricDataQueries.member.1.MetricStat are mutually exclusive",
        ),
        (
            [{**query("a"), "Period": 60}],
            "ValidationError",
            "The parameters MetricDataQueries.member.1.Period and "
            "MetricDataQueries.member.1.MetricStat are mutually exclusive",
        ),
        (
            [{"Id": "a", "MetricStat": {**query("a")["MetricStat"], "Period": 90}}],
            "InvalidParameterValue",
            "The parameter MetricDataQueries.member.1.MetricStat.Period must be a multiple of 60.",
        ),
        ([query("a", stat="p99")], "ValidationError", "p99"),
        ([query(f"q{i}") for i in range(501)], "ValidationError", "greater than 500"),
    ],
)
def test_get_metric_data_errors(
    api: CloudWatchApi, queries: list[dict[str, Any]], code: str, message: str
) -> None:
    with pytest.raises(AwsError) as err:
        data(api, queries)
    assert err.value.code == code
    assert message in err.value.message


def test_500_queries_are_allowed(api: CloudWatchApi) -> None:
    assert len(data(api, [query(f"q{i}") for i in range(500)])["MetricDataResults"]) == 500


class Alarms:
    def __init__(self) -> None:
        self.alarms: dict[str, dict[str, Any]] = {}

    def put_metric_alarm(self, request: dict[str, Any]) -> None:
        self.alarms[request["AlarmName"]] = request

    def describe_alarms(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"MetricAlarms": [{"AlarmName": n} for n in self.alarms]}

    def delete_alarms(self, request: dict[str, Any]) -> None:
        for name in request["AlarmNames"]:
            self.alarms.pop(name, None)


def test_alarms_go_to_the_alarm_source_or_fail_clearly() -> None:
    store = MetricStore(None)
    without = CloudWatchApi(store, FakeClock())
    with pytest.raises(AwsError) as err:
        without.describe_alarms({})
    assert err.value.code == "InvalidAction" and "alarms" in err.value.message
    source = Alarms()
    api = CloudWatchApi(store, FakeClock(), source)
    api.put_metric_alarm({"AlarmName": "high"})
    assert api.describe_alarms({}) == {"MetricAlarms": [{"AlarmName": "high"}]}
    api.delete_alarms({"AlarmNames": ["high"]})
    assert source.alarms == {}


def test_input_errors_use_cloudwatch_codes() -> None:
    report = 'Missing required parameter in input: "Namespace" Missing required parameter in'
    missing = input_error(report)
    assert (missing.code, missing.message) == (
        "MissingParameter",
        "The parameter Namespace is required.",
    )
    assert input_error("Invalid type for parameter Period").code == "InvalidParameterValue"


def test_store_statistic_sets_answer_like_cloudwatch(api: CloudWatchApi) -> None:
    api.metrics.put(MetricId("App", "Latency"), T0, Stats(4, 8, 1, 3))
    (point,) = stats(api)["Datapoints"]
    assert (point["Average"], point["Unit"]) == (2, "None")


def test_entity_metric_data_is_stored_like_metric_data(api: CloudWatchApi) -> None:
    api.put_metric_data(
        {
            "Namespace": "App",
            "EntityMetricData": [
                {
                    "Entity": {"KeyAttributes": {"Type": "Service", "Name": "web"}},
                    "MetricData": [{"MetricName": "Latency", "Value": 2, "Timestamp": T0}],
                }
            ],
        }
    )
    assert [p["Sum"] for p in stats(api)["Datapoints"]] == [2]
    with pytest.raises(AwsError) as err:
        api.put_metric_data(
            {"Namespace": "App", "EntityMetricData": [{"MetricData": [{"MetricName": "L"}]}]}
        )
    assert "EntityMetricData.member.1.MetricData.member.1.Value" in err.value.message
    with pytest.raises(AwsError) as missing:
        api.put_metric_data({"Namespace": "App"})
    assert missing.value.code == "MissingParameter"


def test_units_stay_apart_one_datapoint_per_unit(api: CloudWatchApi) -> None:
    """CloudWatch keeps data of different units apart: GetMetricStatistics answers one
    datapoint per unit in a period, and a Unit filter selects that unit's data only."""
    put(
        api,
        {"MetricName": "Latency", "Value": 1, "Timestamp": T0 + 1, "Unit": "Seconds"},
        {"MetricName": "Latency", "Value": 1, "Timestamp": T0 + 2, "Unit": "Count"},
    )
    points = stats(api)["Datapoints"]
    assert sorted((p["Unit"], p["Sum"]) for p in points) == [("Count", 1), ("Seconds", 1)]
    assert [(p["Unit"], p["Sum"]) for p in stats(api, Unit="Seconds")["Datapoints"]] == [
        ("Seconds", 1)
    ]
    q = query("m1")
    q["MetricStat"]["Unit"] = "Seconds"
    assert data(api, [q])["MetricDataResults"][0]["Values"] == [1.0]


def test_periods_count_from_the_start_minute(api: CloudWatchApi) -> None:
    """The aws CLI's get-metric-statistics example: StartTime 23:18 and Period 3600 give
    datapoints at hh:18; a day at Period 60 from a start inside a minute is 1440 datapoints,
    within the limit."""
    put(api, {"MetricName": "Latency", "Value": 5, "Timestamp": T0 + 20 * 60})
    start = T0 + 18 * 60 + 30  # 30 s into a minute
    out = stats(api, StartTime=start, EndTime=start + 86400, Period=3600)
    assert [p["Timestamp"] for p in out["Datapoints"]] == [T0 + 18 * 60]
    day = stats(api, StartTime=start, EndTime=start + 86400, Period=60)
    assert [p["Sum"] for p in day["Datapoints"]] == [5]


def test_a_state_dir_from_before_units_is_rekeyed(tmp_path: Any) -> None:
    """Buckets stored keyed without the unit (older miniecs) are rebuilt with it at start,
    rows kept, so a new unit in the same period no longer merges into them."""
    import sqlite3

    path = tmp_path / "metrics.db"
    db = sqlite3.connect(path)
    db.execute(
        """CREATE TABLE buckets (namespace TEXT NOT NULL, name TEXT NOT NULL,
           dims TEXT NOT NULL, ts REAL NOT NULL, resolution INTEGER NOT NULL, unit TEXT NOT NULL,
           n REAL NOT NULL, total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
           PRIMARY KEY (namespace, name, dims, ts))"""
    )
    db.execute("INSERT INTO buckets VALUES ('App','Latency','[]',?,60,'Seconds',1,2,2,2)", (T0,))
    db.commit()
    db.close()
    store = MetricStore(path)
    store.put(MetricId("App", "Latency"), T0 + 1, 5.0, "Count")
    points = store.datapoints(MetricId("App", "Latency"), T0, T0 + 60, 60, by_unit=True)
    assert sorted((p.unit, p.stats.sum) for p in points) == [("Count", 5.0), ("Seconds", 2.0)]
    store.close()
