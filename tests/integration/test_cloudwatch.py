"""The read side of metrics on a real server: CloudWatch through boto3, `/metrics` through
Prometheus's parser, `/_miniecs/usage` and `miniecs top --once` on a service of real tasks."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Miniecs, wait_for
from tests.integration.test_services import FAST, create

pytestmark = pytest.mark.integration
TOP = [sys.executable, "-m", "miniecs", "top"]


def clock_now(endpoint: str) -> dt.datetime:
    """The server's control-plane clock: CloudWatch timestamps are on it."""
    now = httpx.get(f"{endpoint}/_miniecs/usage", timeout=5).json()["now"]
    return dt.datetime.fromtimestamp(now, dt.UTC)


def test_put_metric_data_then_read_it_back(miniecs: Miniecs) -> None:
    cw = miniecs.client("cloudwatch")
    dims = [{"Name": "ServiceName", "Value": "web"}]
    cw.put_metric_data(
        Namespace="Custom/App",
        MetricData=[
            {"MetricName": "Requests", "Dimensions": dims, "Value": 3, "Unit": "Count"},
            {"MetricName": "Requests", "Dimensions": dims, "Values": [1, 2], "Unit": "Count"},
        ],
    )
    now = clock_now(miniecs.endpoint)
    window = {"StartTime": now - dt.timedelta(minutes=3), "EndTime": now + dt.timedelta(minutes=1)}
    listed = cw.list_metrics(Namespace="Custom/App")["Metrics"]
    assert listed == [{"Namespace": "Custom/App", "MetricName": "Requests", "Dimensions": dims}]
    points = cw.get_metric_statistics(
        Namespace="Custom/App",
        MetricName="Requests",
        Dimensions=dims,
        Period=240,
        Statistics=["Sum", "SampleCount"],
        **window,
    )["Datapoints"]
    assert [(p["Sum"], p["SampleCount"], p["Unit"]) for p in points] == [(6.0, 3.0, "Count")]
    result = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "req",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Custom/App",
                        "MetricName": "Requests",
                        "Dimensions": dims,
                    },
                    "Period": 240,
                    "Stat": "Maximum",
                },
            }
        ],
        **window,
    )["MetricDataResults"][0]
    assert (result["Values"], result["StatusCode"]) == ([3.0], "Complete")
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.get_metric_statistics(
            Namespace="Custom/App", MetricName="Requests", Period=45, Statistics=["Sum"], **window
        )
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException):
        cw.put_metric_data(
            Namespace="Custom/App", MetricData=[{"MetricName": "X", "Value": 1, "Values": [1]}]
        )


def top_once(endpoint: str, output: str) -> str:
    out = subprocess.run(
        [*TOP, "--endpoint-url", endpoint, "--once", "--output", output],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_usage_metrics_and_top_show_a_service_of_real_tasks(miniecs: Miniecs) -> None:
    ecs = miniecs.client()
    create(ecs, 2)
    ecs.get_waiter("services_stable").wait(cluster="svc", services=["web"], WaiterConfig=FAST)

    def web() -> dict[str, Any]:
        view = json.loads(top_once(miniecs.endpoint, "json"))
        (cluster,) = [c for c in view["clusters"] if c["clusterName"] == "svc"]
        return dict(cluster["services"][0])

    def sampled() -> dict[str, Any] | None:
        service = web()
        sampled = all(t["cpuUtilization"] is not None for t in service["tasks"])
        return service if sampled and service["cpuUtilization"] is not None else None

    service = wait_for(sampled, timeout=60, interval=1)
    assert (service["serviceName"], service["desiredCount"], service["runningCount"]) == (
        "web",
        2,
        2,
    )
    assert len(service["tasks"]) == 2
    assert all(0 <= t["memoryUtilization"] <= 100 for t in service["tasks"])
    assert service["tasks"][0]["containers"][0]["containerName"] == "app"

    text = httpx.get(f"{miniecs.endpoint}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    desired = families["miniecs_service_desired_tasks"].samples
    assert [(s.labels, s.value) for s in desired] == [({"cluster": "svc", "service": "web"}, 2)]
    tasks = families["miniecs_task_cpu_utilization_ratio"].samples
    assert {s.labels["task_id"] for s in tasks} == {t["taskId"] for t in service["tasks"]}
    assert all(0 <= s.value <= 1.05 for s in tasks)

    table = top_once(miniecs.endpoint, "table")
    assert "web" in table and "2/2/0" in table
    assert all(t["taskId"] in table for t in service["tasks"]), table


def test_top_reports_an_unreachable_server() -> None:
    out = subprocess.run(
        [*TOP, "--endpoint-url", "http://127.0.0.1:9", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and "cannot read" in out.stderr
