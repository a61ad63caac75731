"""CloudWatch on the wire: boto3's default (AWS JSON 1.0), Smithy RPC v2 CBOR through a botocore
client forced to it, and the aws CLI, against a real endpoint (no Docker needed). Every
response passes botocore's validator and errors parse into the client's exception classes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import cbor2
import pytest
import uvicorn

from miniecs.aws.app import create_app
from miniecs.aws.cloudwatch import CloudWatchApi
from miniecs.aws.protocols import RpcV2CborService
from miniecs.clock import SystemClock
from miniecs.metrics.store import MetricStore
from tests import sigv4
from tests.conftest import _validate_response, boto_client, free_port

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def fresh_now() -> None:
    """Each test's windows around the time it runs (a module-level time goes stale when the
    module waits behind slow tests)."""
    global NOW
    NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    api = CloudWatchApi(MetricStore(None), SystemClock())
    service = RpcV2CborService("cloudwatch", api, strict=True)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app([service], None), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def forced_client(protocol: str, endpoint: str, tmp: Path) -> Any:
    """A botocore CloudWatch client that speaks `protocol` (its model says only that one)."""
    loader = botocore.session.get_session().get_component("data_loader")
    model = json.loads(json.dumps(loader.load_service_model("cloudwatch", "service-2")))
    model["metadata"].update(protocols=[protocol], protocol=protocol)
    folder = tmp / protocol / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp / protocol))
    client = session.create_client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert client.meta.service_model.resolved_protocol == protocol
    client.meta.events.register("after-call", _validate_response)
    return client


@pytest.fixture(params=["default", "smithy-rpc-v2-cbor", "json"])
def cloudwatch(request: pytest.FixtureRequest, endpoint: str, tmp_path: Path) -> Any:
    if request.param == "default":
        return boto_client("cloudwatch", endpoint)
    return forced_client(request.param, endpoint, tmp_path)


def test_put_then_read_back_every_way(cloudwatch: Any) -> None:
    namespace = f"Wire/{uuid.uuid4().hex}"
    dims = [{"Name": "ServiceName", "Value": "web"}]
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Value": 4,
                "Timestamp": NOW,
                "Unit": "Milliseconds",
            },
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Values": [1, 2],
                "Counts": [1, 1],
                "Unit": "Milliseconds",
            },
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Timestamp": NOW,
                "StatisticValues": {"SampleCount": 2, "Sum": 10, "Minimum": 4, "Maximum": 6},
                "Unit": "Milliseconds",
            },
        ],
    )
    listed = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert listed == [{"Namespace": namespace, "MetricName": "Latency", "Dimensions": dims}]
    window = {"StartTime": NOW - dt.timedelta(minutes=5), "EndTime": NOW + dt.timedelta(minutes=5)}
    got = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="Latency",
        Dimensions=dims,
        Period=600,
        Statistics=["SampleCount", "Maximum"],
        **window,
    )
    assert [(p["SampleCount"], p["Maximum"]) for p in got["Datapoints"]] == [(5.0, 6.0)]
    assert isinstance(got["Datapoints"][0]["Timestamp"], dt.datetime)
    results = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "sum",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": "Latency", "Dimensions": dims},
                    "Period": 600,
                    "Stat": "Sum",
                },
            }
        ],
        **window,
    )["MetricDataResults"]
    assert results[0]["Values"] == [17.0] and results[0]["StatusCode"] == "Complete"


def test_errors_parse_into_the_modelled_exceptions(cloudwatch: Any) -> None:
    window = {"StartTime": NOW - dt.timedelta(minutes=5), "EndTime": NOW}
    with pytest.raises(cloudwatch.exceptions.InvalidParameterValueException) as err:
        cloudwatch.get_metric_statistics(
            Namespace="A", MetricName="B", Period=61, Statistics=["Average"], **window
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert (
        err.value.response["Error"]["Message"] == "The parameter Period must be a multiple of 60."
    )
    with pytest.raises(cloudwatch.exceptions.InvalidParameterCombinationException):
        cloudwatch.get_metric_statistics(Namespace="A", MetricName="B", Period=60, **window)
    with pytest.raises(cloudwatch.exceptions.ClientError) as other:
        cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "e", "Expression": "SUM(METRICS())"}], **window
        )
    assert other.value.response["Error"]["Code"] == "ValidationError"


def test_cbor_timestamps_are_tag_1_and_errors_carry_the_query_code(endpoint: str) -> None:
    url = f"{endpoint}/service/GraniteServiceVersion20100801/operation/"
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}
    start = NOW - dt.timedelta(minutes=5)
    body = {
        "Namespace": "Raw",
        "MetricName": "M",
        "StartTime": start,
        "EndTime": NOW,
        "Period": 60,
        "Statistics": ["Sum"],
    }
    put = {"Namespace": "Raw", "MetricData": [{"MetricName": "M", "Value": 1, "Timestamp": start}]}
    assert (
        sigv4.post(
            url + "PutMetricData",
            content=cbor2.dumps(put, timezone=dt.UTC),
            headers=headers,
            service="monitoring",
        ).status_code
        == 200
    )
    raw = sigv4.post(
        url + "GetMetricStatistics",
        content=cbor2.dumps(body, timezone=dt.UTC),
        headers=headers,
        service="monitoring",
    )
    assert raw.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert raw.content.find(b"\xc1") > 0  # tag 1 before the epoch seconds
    point = cbor2.loads(raw.content)["Datapoints"][0]
    assert point["Timestamp"] == start.replace(second=0) and point["Sum"] == 1.0
    bad = sigv4.post(
        url + "GetMetricStatistics", content=b"\xff\x00", headers=headers, service="monitoring"
    )
    assert bad.status_code == 400
    assert cbor2.loads(bad.content)["__type"] == "SerializationException"
    wrong = sigv4.post(
        url + "GetMetricStatistics",
        content=cbor2.dumps({**body, "Period": 61}, timezone=dt.UTC),
        headers=headers,
        service="monitoring",
    )
    assert cbor2.loads(wrong.content)["__type"] == "InvalidParameterValueException"
    assert wrong.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    unknown = sigv4.post(
        f"{endpoint}/service/Nope/operation/X", content=b"", headers=headers, service="monitoring"
    )
    assert unknown.status_code == 400
    assert cbor2.loads(unknown.content)["__type"] == "UnknownOperationException"


def test_aws_cli_get_metric_statistics(endpoint: str) -> None:
    client = boto_client("cloudwatch", endpoint)
    client.put_metric_data(Namespace="Cli", MetricData=[{"MetricName": "Hits", "Value": 7}])
    aws = Path(sys.executable).parent / "aws"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [
            str(aws),
            "cloudwatch",
            "get-metric-statistics",
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--namespace",
            "Cli",
            "--metric-name",
            "Hits",
            "--statistics",
            "Sum",
            "--period",
            "60",
            "--start-time",
            (NOW - dt.timedelta(minutes=5)).isoformat(),
            "--end-time",
            (NOW + dt.timedelta(minutes=5)).isoformat(),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["Label"] == "Hits" and [p["Sum"] for p in reply["Datapoints"]] == [7.0]
    refused = subprocess.run(
        [
            str(aws),
            "cloudwatch",
            "get-metric-statistics",
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--namespace",
            "Cli",
            "--metric-name",
            "Hits",
            "--statistics",
            "Sum",
            "--period",
            "90",
            "--start-time",
            NOW.isoformat(),
            "--end-time",
            (NOW + dt.timedelta(minutes=5)).isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "InvalidParameterValue" in refused.stderr and "multiple of 60" in refused.stderr


def test_requests_that_do_not_fit_the_model_get_cloudwatch_codes(endpoint: str) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "GraniteServiceVersion20100801.GetMetricStatistics",
    }
    missing = sigv4.post(
        endpoint, content=b'{"MetricName": "M"}', headers=headers, service="monitoring"
    )
    assert missing.status_code == 400
    assert missing.json()["__type"] == "MissingRequiredParameterException"
    assert missing.headers["x-amzn-query-error"] == "MissingParameter;Sender"
    assert missing.json()["message"] == "The parameter Namespace is required."
    wrong = sigv4.post(
        endpoint,
        content=json.dumps(
            {"Namespace": "A", "MetricName": "M", "StartTime": 1, "EndTime": 2, "Period": "sixty"}
        ).encode(),
        headers=headers,
        service="monitoring",
    )
    # AWS JSON's deserialiser wording (recorded from AWS in dynalite's test suite)
    assert json.loads(wrong.content) == {
        "__type": "SerializationException",
        "message": "STRING_VALUE cannot be converted to Integer",
    }
    long_name = sigv4.post(
        endpoint,
        content=json.dumps(
            {"Namespace": "A", "MetricName": "M" * 256, "StartTime": 1, "EndTime": 2, "Period": 60}
        ).encode(),
        headers=headers,
        service="monitoring",
    )
    assert long_name.headers["x-amzn-query-error"] == "ValidationError;Sender"
    message = json.loads(long_name.content)["message"]
    assert message.startswith("1 validation error detected: Value 'MMMM") and message.endswith(
        "at 'metricName' failed to satisfy constraint: "
        "Member must have length less than or equal to 255"
    )
