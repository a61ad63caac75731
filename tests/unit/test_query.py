"""The model-driven query/XML codec: botocore serialises requests, botocore parses our XML."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore import parsers, serialize

from miniecs.alb.errors import LoadBalancerNotFound
from miniecs.aws.protocols import ShapeError, service_model
from miniecs.aws.query import MAX_FORM_FIELDS, QueryService, parse_params

MODEL = service_model("elbv2")


def request_body(operation: str, params: dict[str, Any]) -> dict[str, str]:
    op = MODEL.operation_model(operation)
    body = serialize.create_serializer("query").serialize_to_request(params, op)["body"]
    return {k: str(v) for k, v in body.items()}


async def call(service: QueryService, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    wire = await service.handle(urlencode(request_body(operation, params)).encode())
    op = MODEL.operation_model(operation)
    parsed: dict[str, Any] = parsers.create_parser("query").parse(
        {"status_code": wire.status, "headers": wire.headers, "body": wire.body}, op.output_shape
    )
    parsed.pop("ResponseMetadata")
    return parsed


ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateListener",
        {
            "LoadBalancerArn": "arn:lb",
            "Protocol": "HTTP",
            "Port": 8080,
            "DefaultActions": [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": "a", "Weight": 3},
                            {"TargetGroupArn": "b", "Weight": 0},
                        ]
                    },
                }
            ],
            "Tags": [{"Key": "k", "Value": "v"}],
        },
    ),
    (
        "CreateRule",
        {
            "ListenerArn": "arn:l",
            "Priority": 10,
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/x"]}},
                {
                    "Field": "http-header",
                    "HttpHeaderConfig": {"HttpHeaderName": "X-A", "Values": ["1"]},
                },
            ],
            "Actions": [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": "404", "MessageBody": "<no> & yes"},
                }
            ],
        },
    ),
    (
        "ModifyTargetGroup",
        {"TargetGroupArn": "t", "HealthCheckEnabled": False, "Matcher": {"HttpCode": "200-299"}},
    ),
    ("DescribeLoadBalancers", {}),
    ("DescribeTags", {"ResourceArns": ["a", "b"]}),
]


@pytest.mark.parametrize(("operation", "params"), ROUND_TRIPS)
def test_flattened_form_parses_back_to_the_input(operation: str, params: dict[str, Any]) -> None:
    op = MODEL.operation_model(operation)
    assert parse_params(op.input_shape, request_body(operation, params)) == params


def test_empty_list_is_an_empty_list() -> None:
    op = MODEL.operation_model("RemoveTags")
    body = request_body("RemoveTags", {"ResourceArns": ["a"], "TagKeys": []})
    assert parse_params(op.input_shape, body) == {"ResourceArns": ["a"], "TagKeys": []}


class Handlers:
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def create_rule(self, req: dict[str, Any]) -> dict[str, Any]:
        self.seen = req
        return {
            "Rules": [
                {
                    "RuleArn": "r",
                    "Priority": str(req["Priority"]),
                    "Conditions": req["Conditions"],
                    "Actions": req["Actions"],
                    "IsDefault": False,
                }
            ]
        }

    def describe_load_balancers(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "LoadBalancers": [
                {
                    "LoadBalancerArn": "arn:lb",
                    "CreatedTime": 1_700_000_000.25,
                    "State": {"Code": "active"},
                    "AvailabilityZones": [],
                    "Unknown": 1,
                }
            ]
        }

    def describe_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        raise LoadBalancerNotFound()

    def delete_load_balancer(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}


async def test_responses_parse_with_botocore() -> None:
    handlers = Handlers()
    service = QueryService("elbv2", handlers)
    params = ROUND_TRIPS[1][1]
    out = await call(service, "CreateRule", params)
    assert handlers.seen == params
    rule = out["Rules"][0]
    assert rule["Conditions"] == params["Conditions"]
    assert rule["Actions"][0]["FixedResponseConfig"]["MessageBody"] == "<no> & yes"
    assert rule["IsDefault"] is False
    out = await call(service, "DescribeLoadBalancers", {})
    lb = out["LoadBalancers"][0]
    assert lb["CreatedTime"] == dt.datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=dt.UTC)
    assert lb["State"] == {"Code": "active"} and lb["AvailabilityZones"] == []
    assert await call(service, "DeleteLoadBalancer", {"LoadBalancerArn": "x"}) == {}


async def test_errors_parse_with_botocore() -> None:
    service = QueryService("elbv2", Handlers())
    out = await call(service, "DescribeTags", {"ResourceArns": ["a"]})
    assert out["Error"]["Code"] == "LoadBalancerNotFound"
    assert out["Error"]["Type"] == "Sender"
    wire = await service.handle(b"Action=CreateRule&Version=2015-12-01&Priority=ten")
    assert wire.status == 400 and b"<Code>ValidationError</Code>" in wire.body
    assert b"STRING_VALUE cannot be converted to Integer" in wire.body
    wire = await service.handle(b"Action=CreateRule&Version=2015-12-01&Priority=0")
    message = parsers.create_parser("query").parse(
        {"status_code": wire.status, "headers": wire.headers, "body": wire.body},
        MODEL.operation_model("CreateRule").output_shape,
    )["Error"]["Message"]
    assert message == (
        "4 validation errors detected: "
        "Value null at 'listenerArn' failed to satisfy constraint: Member must not be null; "
        "Value null at 'conditions' failed to satisfy constraint: Member must not be null; "
        "Value '0' at 'priority' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; "
        "Value null at 'actions' failed to satisfy constraint: Member must not be null"
    )
    wire = await service.handle(b"Action=Nope&Version=2015-12-01")
    assert wire.status == 400 and b"<Code>InvalidAction</Code>" in wire.body
    wire = await service.handle(b"Action=DescribeListeners&Version=2015-12-01")
    assert b"<Code>InvalidAction</Code>" in wire.body and b"not supported" in wire.body


async def test_strict_mode_refuses_unknown_members() -> None:
    with pytest.raises(ShapeError):
        await QueryService("elbv2", Handlers(), strict=True).handle(
            b"Action=DescribeLoadBalancers&Version=2015-12-01"
        )


async def test_form_field_count_is_bounded() -> None:
    service = QueryService("elbv2", Handlers())
    many = "&".join(f"Names.member.{i}=n" for i in range(MAX_FORM_FIELDS + 1))
    wire = await service.handle(f"Action=DescribeLoadBalancers&Version=2015-12-01&{many}".encode())
    assert wire.status == 400 and b"<Code>MalformedQueryString</Code>" in wire.body


def test_odd_indexes_and_numbers_stay_text_for_the_validator() -> None:
    op = MODEL.operation_model("CreateRule")
    params = {
        "ListenerArn": "l",
        "Priority": "1_0",  # Python's int() would take it; AWS does not
        "Conditions.member.01.Field": "a",
        "Conditions.member.1.Field": "b",
        "Conditions.member.²": "x",
    }
    parsed = parse_params(op.input_shape, params)
    assert parsed["Priority"] == "1_0"
    assert parsed["Conditions"] == [{"Field": "b"}]
