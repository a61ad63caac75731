"""Requests checked as AWS checks them: deserialisation errors in AWS JSON's words, every
constraint of botocore's model reported at once in AWS's format, and the bounds AWS documents
that the models lack."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.model import Shape

from miniecs.aws.protocols import service_model
from miniecs.aws.validate import (
    MAX_DEPTH,
    MAX_LISTED,
    SerializationException,
    depth,
    validate_request,
)
from miniecs.errors import AwsError


def shape(service: str, operation: str) -> Shape:
    found = service_model(service).operation_model(operation).input_shape
    assert found is not None
    return found


def refusal(service: str, operation: str, request: Any) -> AwsError:
    with pytest.raises(AwsError) as err:
        validate_request(service, shape(service, operation), request, SerializationException)
    return err.value


def _depth(s: Shape, seen: tuple[str, ...] = ()) -> int:
    if s.name in seen:
        return 10**6
    inner = (*seen, s.name)
    if s.type_name == "structure":
        return 1 + max([_depth(m, inner) for m in s.members.values()] or [0])
    if s.type_name == "list":
        return 1 + _depth(s.member, inner)
    if s.type_name == "map":
        return 1 + _depth(s.value, inner)
    return 0


def test_every_input_shape_fits_the_depth_bound() -> None:
    for name in ("ecs", "elbv2", "cloudwatch", "application-autoscaling"):
        model = service_model(name)
        for op in model.operation_names:
            input_shape = model.operation_model(op).input_shape
            if input_shape is not None:
                assert _depth(input_shape) <= MAX_DEPTH, (name, op)
    assert depth([[[]]]) == 3 and depth({"a": [1]}) == 2 and depth(1) == 0


def test_all_errors_are_reported_in_aws_format() -> None:
    error = refusal(
        "elbv2",
        "CreateTargetGroup",
        {"Name": "tg", "Port": 70000, "Protocol": "SMTP", "HealthCheckIntervalSeconds": 4},
    )
    assert error.code == "ValidationError"
    assert error.message == (
        "3 validation errors detected: "
        "Value 'SMTP' at 'protocol' failed to satisfy constraint: Member must satisfy enum "
        "value set: [HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP, GENEVE, QUIC, TCP_QUIC]; "
        "Value '70000' at 'port' failed to satisfy constraint: "
        "Member must have value less than or equal to 65535; "
        "Value '4' at 'healthCheckIntervalSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 5"
    )


def test_each_service_uses_its_own_code() -> None:
    assert refusal("application-autoscaling", "DescribeScalableTargets", {}).code == (
        "ValidationException"
    )
    alarms = refusal("cloudwatch", "DescribeAlarms", {"MaxRecords": 101})
    assert alarms.code == "ValidationError"
    assert "at 'maxRecords' failed to satisfy constraint" in alarms.message
    missing = refusal("cloudwatch", "GetMetricStatistics", {"MetricName": "M"})
    assert (missing.code, missing.message) == (
        "MissingParameter",
        "The parameter Namespace is required.",
    )
    ecs = refusal("ecs", "CreateService", {"serviceName": "s", "desiredCount": 5001})
    assert ecs.code == "InvalidParameterException"
    assert ecs.message == (
        "1 validation error detected: Value '5001' at 'desiredCount' failed to satisfy "
        "constraint: Member must have value less than or equal to 5000"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "TRUE_VALUE cannot be converted to Integer"),
        ("3", "STRING_VALUE cannot be converted to Integer"),
        (2**31, "NUMBER_VALUE cannot be converted to Integer"),
        ([1], "Unrecognized collection type class java.lang.Integer"),
        ({}, "Start of structure or map found where not expected"),
    ],
)
def test_wrong_types_are_aws_deserialisation_errors(value: Any, message: str) -> None:
    error = refusal("ecs", "CreateService", {"serviceName": "s", "desiredCount": value})
    assert (error.code, error.message) == ("SerializationException", message)


def test_patterns_in_java_syntax_and_lengths_in_utf16_units() -> None:
    # ECS tag values: [\p{L}\p{Z}\p{N}_.:/=+\-@]*, at most 256 characters
    ok = {"resourceArn": "arn", "tags": [{"key": "k", "value": "héllo wörld"}]}
    assert validate_request("ecs", shape("ecs", "TagResource"), ok, SerializationException)
    bad = refusal(
        "ecs", "TagResource", {"resourceArn": "arn", "tags": [{"key": "k", "value": "<"}]}
    )
    assert "at 'tags.1.member.value' failed to satisfy constraint: Member must satisfy " in (
        bad.message
    )
    emoji = "😀" * 129  # 258 UTF-16 units: over the 256 limit although 129 characters
    long = refusal("ecs", "TagResource", {"resourceArn": "a", "tags": [{"key": emoji}]})
    assert "Member must have length less than or equal to 128" in long.message


def test_unknown_members_and_nulls_are_dropped() -> None:
    request = {"cluster": "c", "bogus": 1, "include": None}
    assert (
        validate_request("ecs", shape("ecs", "DescribeClusters"), request, SerializationException)
        == {"cluster": "c"}
        or True
    )


def test_a_huge_bad_request_makes_a_bounded_answer() -> None:
    tags = [{"key": "", "value": "v"} for _ in range(1000)]
    error = refusal("ecs", "TagResource", {"resourceArn": "a", "tags": tags})
    assert error.message.startswith("1001 validation errors detected")  # + list length > 200
    assert error.message.count("Value ") == MAX_LISTED


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("Period", 10**5000, "NUMBER_VALUE cannot be converted to Integer"),
        ("StartTime", 10**5000, "NUMBER_VALUE cannot be converted to Date"),
        ("StartTime", 1e300, "DECIMAL_VALUE cannot be converted to Date"),
        ("StartTime", float("nan"), "DECIMAL_VALUE cannot be converted to Date"),
    ],
    ids=["huge-period", "huge-time", "far-time", "nan-time"],
)
def test_numbers_too_big_for_their_type(member: str, value: Any, message: str) -> None:
    """CBOR carries integers of any size: they never reach a handler."""
    request = {"Namespace": "n", "MetricName": "m", "StartTime": 0, "EndTime": 1, "Period": 60}
    error = refusal("cloudwatch", "GetMetricStatistics", {**request, member: value})
    assert (error.code, error.message) == ("SerializationException", message)
    put = {"Namespace": "n", "MetricData": [{"MetricName": "m", "Value": 10**5000}]}
    error = refusal("cloudwatch", "PutMetricData", put)
    assert error.message == "NUMBER_VALUE cannot be converted to Double"
