"""CloudWatch's metric operations: ListMetrics, GetMetricStatistics, GetMetricData and
PutMetricData over the MetricStore, with CloudWatch's validation errors.

Timestamps are control-plane clock time (`miniecs/clock.py`): equal to the wall clock at
`--clock-speed 1`, running ahead of it when the clock is faster, so a client that reads series
published by miniecs should take "now" from the endpoint (`GET /_miniecs/usage` carries it)
rather than from its own wall clock. Unknown metrics return empty results, as CloudWatch's do.

Alarms (PutMetricAlarm, DescribeAlarms, DeleteAlarms) belong to the autoscaler, which passes an
`AlarmSource`; without one those operations answer with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.utils import parse_to_aware_datetime

from miniecs.clock import Clock
from miniecs.errors import (
    AwsError,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    ValidationError,
)
from miniecs.metrics.store import Datapoint, MetricId, MetricStore, Stats, dimensions

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
MAX_STATISTICS_DATAPOINTS = 1440
"""GetMetricStatistics returns at most this many datapoints per call."""
MAX_QUERIES = 500
"""GetMetricData takes at most this many MetricDataQuery structures."""
DEFAULT_MAX_DATAPOINTS = 100_800
LIST_METRICS_PAGE = 500
RECENTLY_ACTIVE = {"PT3H": 3 * 3600.0}
PAST_LIMIT = 14 * 24 * 3600.0
"""PutMetricData accepts timestamps up to two weeks old..."""
FUTURE_LIMIT = 2 * 3600.0
"""...and up to two hours in the future."""
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
MISSING = re.compile(r'^Missing required parameter in input: "([^"]+)"')


class AlarmSource(Protocol):
    """Where CloudWatch alarms live (the autoscaler): requests and responses in the wire's
    dict form (botocore's member names)."""

    def put_metric_alarm(self, request: dict[str, Any]) -> None: ...

    def describe_alarms(self, request: dict[str, Any]) -> dict[str, Any]:
        """The whole DescribeAlarms response."""
        ...

    def delete_alarms(self, request: dict[str, Any]) -> None: ...

    def describe_alarms_for_metric(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def set_alarm_state(self, request: dict[str, Any]) -> None: ...

    def set_alarm_actions(self, names: Sequence[str], enabled: bool) -> None: ...


def input_error(report: str) -> AwsError:
    """The error a request that does not fit CloudWatch's input shapes gets (from botocore's
    validation report): MissingParameter naming the first absent member, as CloudWatch does,
    else InvalidParameterValue."""
    missing = MISSING.match(report)
    if missing:
        return MissingParameter(f"The parameter {missing.group(1)} is required.")
    return InvalidParameterValue(report)


def _time(value: Any) -> float:
    """A request timestamp (epoch seconds, or an ISO 8601 string) in epoch seconds."""
    if isinstance(value, int | float):
        return float(value)
    return float(parse_to_aware_datetime(value).timestamp())


def _metric(namespace: str, name: str, dims: Sequence[dict[str, str]] | None) -> MetricId:
    return MetricId(namespace, name, dimensions((d["Name"], d["Value"]) for d in dims or ()))


def _wire_dimensions(metric: MetricId) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in metric.dimensions]


def _check_period(period: int, name: str) -> None:
    if period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0):
        return
    raise InvalidParameterValue(f"The parameter {name} must be a multiple of 60.")


def _check_range(start: float, end: float) -> None:
    if start >= end:
        raise InvalidParameterValue(
            "The parameter StartTime must be less than the parameter EndTime."
        )


def _aligned(start: float, period: int) -> float:
    """CloudWatch rounds the start down to the minute for periods of a minute or more (to the
    period below that); periods then count from there (aws CLI get-metric-statistics example:
    StartTime 23:18 with Period 3600 gives datapoints at hh:18)."""
    grain = 60 if period >= 60 else period
    return float(math.floor(start / grain) * grain)


def _token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()


def _untoken(token: str, error: AwsError) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise error from None
    if not isinstance(value, dict):
        raise error
    return value


@dataclass(frozen=True, slots=True)
class _Series:
    """One GetMetricData query's answer before pagination."""

    id: str
    label: str
    points: list[tuple[float, float]]


class CloudWatchApi:
    """The handlers of CloudWatch's metric operations over `metrics`."""

    def __init__(self, metrics: MetricStore, clock: Clock, alarms: AlarmSource | None = None):
        self.metrics = metrics
        self.clock = clock
        self.alarms = alarms

    # ------------------------------------------------------------------ PutMetricData
    def put_metric_data(self, req: dict[str, Any]) -> dict[str, Any]:
        namespace = req["Namespace"]
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(
                f"The value {namespace} for parameter Namespace is invalid: "
                "the AWS/ prefix is reserved for AWS services."
            )
        # Entity-associated data is stored like plain data: miniecs keeps no entities.
        data = [
            (f"MetricData.member.{i + 1}", d) for i, d in enumerate(req.get("MetricData") or [])
        ]
        for i, entity in enumerate(req.get("EntityMetricData") or []):
            at = f"EntityMetricData.member.{i + 1}.MetricData.member"
            data += [(f"{at}.{j + 1}", d) for j, d in enumerate(entity.get("MetricData") or [])]
        if not data:
            raise MissingParameter("The parameter MetricData is required.")
        if len(data) > 1000:
            raise InvalidParameterValue(
                "The collection MetricData must not have a size greater than 1000."
            )
        now = self.clock.now()
        points = [self._datum(namespace, datum, at, now) for at, datum in data]
        self.metrics.put_many(points)
        return {}

    def _datum(
        self, namespace: str, datum: dict[str, Any], at: str, now: float
    ) -> tuple[MetricId, float, float | Stats, str, int]:
        value, values, stats = datum.get("Value"), datum.get("Values"), datum.get("StatisticValues")
        if value is not None and values:
            raise InvalidParameterCombination(
                f"The parameters {at}.Value and {at}.Values are mutually exclusive and you "
                "have specified both."
            )
        if value is not None and stats is not None:
            raise InvalidParameterCombination(
                f"The parameters {at}.Value and {at}.StatisticValues are mutually exclusive "
                "and you have specified both."
            )
        unit = datum.get("Unit", "None")
        if unit not in UNITS:
            raise InvalidParameterValue(f"The value {unit} for parameter {at}.Unit is invalid.")
        resolution = datum.get("StorageResolution", 60)
        if resolution not in (1, 60):
            raise InvalidParameterValue(
                f"The value {resolution} for parameter {at}.StorageResolution is invalid."
            )
        timestamp = _time(datum["Timestamp"]) if "Timestamp" in datum else now
        if timestamp < now - PAST_LIMIT:
            raise InvalidParameterValue(
                f"The parameter {at}.Timestamp must specify a time no more than two weeks "
                "in the past."
            )
        if timestamp > now + FUTURE_LIMIT:
            raise InvalidParameterValue(
                f"The parameter {at}.Timestamp must specify a time no more than two hours "
                "in the future."
            )
        metric = _metric(namespace, datum["MetricName"], datum.get("Dimensions"))
        if values:
            point: float | Stats = self._values(values, datum.get("Counts"), at)
        elif stats is not None:
            point = self._statistic_set(stats, at)
        elif value is not None:
            self._check_value(value, f"{at}.Value")
            point = float(value)
        else:
            raise MissingParameter(
                f"At least one of the parameters {at}.Value, {at}.Values or "
                f"{at}.StatisticValues must be specified."
            )
        return metric, timestamp, point, unit, resolution

    @staticmethod
    def _check_value(value: float, name: str) -> None:
        if not math.isfinite(value) or (value != 0 and not 2**-260 <= abs(value) <= 2**360):
            raise InvalidParameterValue(f"The value {value} for parameter {name} is invalid.")

    def _values(self, values: list[float], counts: list[float] | None, at: str) -> Stats:
        if len(values) > 150:
            raise InvalidParameterValue(
                f"The collection {at}.Values must not have a size greater than 150."
            )
        if counts and len(counts) != len(values):
            raise InvalidParameterValue(
                f"The parameters {at}.Values and {at}.Counts must be of the same size."
            )
        merged: Stats | None = None
        for i, value in enumerate(values):
            self._check_value(value, f"{at}.Values.member.{i + 1}")
            count = float(counts[i]) if counts else 1.0
            if count < 0 or not math.isfinite(count):
                raise InvalidParameterValue(
                    f"The value {count} for parameter {at}.Counts.member.{i + 1} is invalid."
                )
            stats = Stats(count, value * count, value, value)
            merged = stats if merged is None else merged.merge(stats)
        assert merged is not None
        return merged

    def _statistic_set(self, raw: dict[str, float], at: str) -> Stats:
        for key in ("SampleCount", "Sum", "Minimum", "Maximum"):
            self._check_value(raw[key], f"{at}.StatisticValues.{key}")
        if raw["SampleCount"] <= 0:
            raise InvalidParameterValue(
                f"The parameter {at}.StatisticValues.SampleCount must be greater than 0."
            )
        if raw["Maximum"] < raw["Minimum"]:
            raise InvalidParameterValue(
                f"The parameter {at}.StatisticValues.Maximum must be greater than "
                f"{at}.StatisticValues.Minimum."
            )
        return Stats(raw["SampleCount"], raw["Sum"], raw["Minimum"], raw["Maximum"])

    # ------------------------------------------------------------------ ListMetrics
    def list_metrics(self, req: dict[str, Any]) -> dict[str, Any]:
        since = None
        if "RecentlyActive" in req:
            if req["RecentlyActive"] not in RECENTLY_ACTIVE:
                raise InvalidParameterValue(
                    f"The value {req['RecentlyActive']} for parameter RecentlyActive is invalid."
                )
            since = self.clock.now() - RECENTLY_ACTIVE[req["RecentlyActive"]]
        filters = [(d["Name"], d.get("Value")) for d in req.get("Dimensions") or ()]
        found = self.metrics.metrics(req.get("Namespace"), req.get("MetricName"), filters, since)
        start = 0
        if req.get("NextToken"):
            bad = InvalidParameterValue("The value for parameter NextToken is invalid.")
            start = _untoken(req["NextToken"], bad).get("o", -1)
            if not isinstance(start, int) or not 0 <= start <= len(found):
                raise bad
        page = found[start : start + LIST_METRICS_PAGE]
        out: dict[str, Any] = {
            "Metrics": [
                {"Namespace": m.namespace, "MetricName": m.name, "Dimensions": _wire_dimensions(m)}
                for m in page
            ]
        }
        if start + LIST_METRICS_PAGE < len(found):
            out["NextToken"] = _token({"o": start + LIST_METRICS_PAGE})
        return out

    # ------------------------------------------------------------------ GetMetricStatistics
    def get_metric_statistics(self, req: dict[str, Any]) -> dict[str, Any]:
        statistics = req.get("Statistics") or []
        if not statistics and not req.get("ExtendedStatistics"):
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics"
            )
        for i, stat in enumerate(statistics):
            if stat not in STATISTICS:
                raise InvalidParameterValue(
                    f"The value {stat} for parameter Statistics.member.{i + 1} is invalid."
                )
        if req.get("ExtendedStatistics"):
            raise InvalidParameterValue(
                "The parameter ExtendedStatistics is not supported by miniecs: percentiles "
                "need every raw value, and miniecs keeps statistic sets."
            )
        unit = req.get("Unit")
        if unit is not None and unit not in UNITS:
            raise InvalidParameterValue(f"The value {unit} for parameter Unit is invalid.")
        period = req["Period"]
        _check_period(period, "Period")
        start, end = _time(req["StartTime"]), _time(req["EndTime"])
        _check_range(start, end)
        # The limit counts the periods of the range asked for (CloudWatch answers a whole day
        # at Period 60 from a start inside a minute).
        count = math.ceil((end - start) / period)
        start = _aligned(start, period)
        if count > MAX_STATISTICS_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {count:,} datapoints, which exceeds the limit of "
                f"{MAX_STATISTICS_DATAPOINTS:,}. You may reduce the datapoints requested by "
                "increasing Period, or decreasing the time range."
            )
        metric = _metric(req["Namespace"], req["MetricName"], req.get("Dimensions"))
        datapoints = []
        for point in self._datapoints(metric, start, end, period, unit, by_unit=True):
            entry: dict[str, Any] = {"Timestamp": point.timestamp, "Unit": point.unit}
            for stat in statistics:
                entry[stat] = point.stats.statistic(stat)
            datapoints.append(entry)
        return {"Label": metric.name, "Datapoints": datapoints}

    def _datapoints(
        self,
        metric: MetricId,
        start: float,
        end: float,
        period: int,
        unit: str | None,
        by_unit: bool = False,
    ) -> list[Datapoint]:
        """Periods counted from `start`; with a `unit`, only that unit's data, else every
        unit's, one datapoint per unit (`by_unit`, GetMetricStatistics) or merged."""
        points = self.metrics.datapoints(
            metric, start, end, period, by_unit=by_unit or unit is not None, origin=start
        )
        return [p for p in points if unit is None or p.unit == unit]

    # ------------------------------------------------------------------ GetMetricData
    def get_metric_data(self, req: dict[str, Any]) -> dict[str, Any]:
        queries = req["MetricDataQueries"]
        if not queries:
            raise ValidationError("The parameter MetricDataQueries is required.")
        if len(queries) > MAX_QUERIES:
            raise ValidationError(
                f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
            )
        scan_by = req.get("ScanBy", "TimestampDescending")
        if scan_by not in ("TimestampDescending", "TimestampAscending"):
            raise ValidationError(f"The value {scan_by} for parameter ScanBy is invalid.")
        max_points = req.get("MaxDatapoints", DEFAULT_MAX_DATAPOINTS)
        if max_points < 1:
            raise InvalidParameterValue(
                "The parameter MaxDatapoints must be greater than or equal to 1."
            )
        start, end = _time(req["StartTime"]), _time(req["EndTime"])
        _check_range(start, end)
        self._check_queries(queries)
        series = [
            self._series(q, start, end, scan_by) for q in queries if q.get("ReturnData", True)
        ]
        return self._page(series, req.get("NextToken"), max_points, scan_by)

    @staticmethod
    def _check_queries(queries: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for i, query in enumerate(queries):
            at = f"MetricDataQueries.member.{i + 1}"
            if not QUERY_ID.match(query["Id"]):
                raise ValidationError(
                    f"The value for parameter {at}.Id is not matching the expected pattern "
                    "^[a-z][a-zA-Z0-9_]*$."
                )
            if query["Id"] in seen:
                raise ValidationError(
                    "The values for parameter id in MetricDataQueries are not unique."
                )
            seen.add(query["Id"])
            stat, expression = query.get("MetricStat"), query.get("Expression")
            if stat is not None and expression is not None:
                raise ValidationError(
                    f"The parameters {at}.Expression and {at}.MetricStat are mutually "
                    "exclusive and you have specified both."
                )
            if expression is not None:
                raise ValidationError(
                    f"The parameter {at}.Expression is not supported by miniecs: it does not "
                    "evaluate metric math; query each metric with MetricStat."
                )
            if stat is None:
                raise ValidationError(f"The parameter {at}.MetricStat is required.")
            if query.get("Period") is not None:
                raise ValidationError(
                    f"The parameters {at}.Period and {at}.MetricStat are mutually exclusive "
                    "and you have specified both."
                )
            _check_period(stat["Period"], f"{at}.MetricStat.Period")
            if stat["Stat"] not in STATISTICS:
                raise ValidationError(
                    f"The value {stat['Stat']} for parameter {at}.MetricStat.Stat is not "
                    f"supported by miniecs (supported: {', '.join(STATISTICS)})."
                )
            unit = stat.get("Unit")
            if unit is not None and unit not in UNITS:
                raise InvalidParameterValue(
                    f"The value {unit} for parameter {at}.MetricStat.Unit is invalid."
                )

    def _series(self, query: dict[str, Any], start: float, end: float, scan_by: str) -> _Series:
        stat = query["MetricStat"]
        raw = stat["Metric"]
        if "Namespace" not in raw or "MetricName" not in raw:
            return _Series(query["Id"], query.get("Label", raw.get("MetricName", "")), [])
        metric = _metric(raw["Namespace"], raw["MetricName"], raw.get("Dimensions"))
        period = stat["Period"]
        points = [
            (p.timestamp, p.stats.statistic(stat["Stat"]))
            for p in self._datapoints(
                metric, _aligned(start, period), end, period, stat.get("Unit")
            )
        ]
        if scan_by == "TimestampDescending":
            points.reverse()
        return _Series(query["Id"], query.get("Label", metric.name), points)

    @staticmethod
    def _page(
        series: list[_Series], token: str | None, max_points: int, scan_by: str
    ) -> dict[str, Any]:
        """One page of at most `max_points` datapoints over all queries in order; the token
        holds the offset into the whole answer (and the order, which must not change)."""
        offset = 0
        if token:
            bad = AwsError("The service cannot process the NextToken.", code="InvalidNextToken")
            state = _untoken(token, bad)
            offset = state.get("o", -1)
            if state.get("s") != scan_by or not isinstance(offset, int) or offset < 0:
                raise bad
        total = sum(len(s.points) for s in series)
        remaining = max_points
        position = 0
        results = []
        for s in series:
            first = max(0, offset - position)
            take = max(0, min(len(s.points) - first, remaining))
            chosen = s.points[first : first + take]
            remaining -= take
            position += len(s.points)
            results.append(
                {
                    "Id": s.id,
                    "Label": s.label,
                    "Timestamps": [t for t, _ in chosen],
                    "Values": [v for _, v in chosen],
                    "StatusCode": "Complete" if first + take >= len(s.points) else "PartialData",
                }
            )
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if offset + max_points < total:
            out["NextToken"] = _token({"o": offset + max_points, "s": scan_by})
        return out

    # ------------------------------------------------------------------ alarms
    def _alarm_source(self) -> AlarmSource:
        if self.alarms is None:
            raise AwsError(
                "CloudWatch alarms are not available in this miniecs: no alarm source is "
                "configured.",
                code="InvalidAction",
            )
        return self.alarms

    def put_metric_alarm(self, req: dict[str, Any]) -> dict[str, Any]:
        self._alarm_source().put_metric_alarm(req)
        return {}

    def describe_alarms(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._alarm_source().describe_alarms(req)

    def delete_alarms(self, req: dict[str, Any]) -> dict[str, Any]:
        self._alarm_source().delete_alarms(req)
        return {}

    def describe_alarms_for_metric(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._alarm_source().describe_alarms_for_metric(req)

    def set_alarm_state(self, req: dict[str, Any]) -> dict[str, Any]:
        self._alarm_source().set_alarm_state(req)
        return {}

    def enable_alarm_actions(self, req: dict[str, Any]) -> dict[str, Any]:
        self._alarm_source().set_alarm_actions(req["AlarmNames"], True)
        return {}

    def disable_alarm_actions(self, req: dict[str, Any]) -> dict[str, Any]:
        self._alarm_source().set_alarm_actions(req["AlarmNames"], False)
        return {}
