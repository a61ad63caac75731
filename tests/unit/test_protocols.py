"""The model-driven AWS JSON codec: requests checked, responses shaped, errors as AWS sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from miniecs.aws.protocols import JsonService, ShapeError, encode, paginate, service_model
from miniecs.errors import ClusterNotFoundException, InvalidParameterException


class Handlers:
    def list_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"clusterArns": ["a", "b"], "unexpected": 1}

    def describe_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        raise ClusterNotFoundException()

    def run_task(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"tasks": [{"createdAt": 1700000000.5, "cpu": 256}], "failures": []}


async def call(service: JsonService, op: str, body: object) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    wire = await service.handle(f"AmazonEC2ContainerServiceV20141113.{op}", raw)
    return wire.status, json.loads(wire.body)


async def test_unknown_members_are_dropped_and_types_follow_the_model() -> None:
    service = JsonService("ecs", Handlers())
    status, body = await call(service, "ListClusters", {})
    assert status == 200 and body == {"clusterArns": ["a", "b"]}
    status, body = await call(service, "RunTask", {"taskDefinition": "x"})
    assert body["tasks"][0] == {"createdAt": 1700000000.5, "cpu": "256"}


async def test_strict_mode_refuses_unknown_members() -> None:
    with pytest.raises(ShapeError):
        await call(JsonService("ecs", Handlers(), strict=True), "ListClusters", {})


async def test_errors_carry_type_and_message() -> None:
    service = JsonService("ecs", Handlers())
    status, body = await call(service, "DescribeClusters", {})
    assert status == 400
    assert body == {"__type": "ClusterNotFoundException", "message": "Cluster not found."}
    status, body = await call(service, "DescribeClusters", b"{not json")
    assert body["__type"] == "SerializationException"
    status, body = await call(service, "NoSuchThing", {})
    assert body["__type"] == "UnknownOperationException"
    status, body = await call(service, "CreateCluster", {})
    assert body["__type"] == "UnknownOperationException"  # not implemented by these handlers


async def test_requests_are_validated_against_the_input_shape() -> None:
    service = JsonService("ecs", Handlers())
    status, body = await call(service, "RunTask", {})
    assert status == 400 and body["__type"] == "InvalidParameterException"
    assert "taskDefinition" in body["message"]
    assert body["message"] == (
        "1 validation error detected: Value null at 'taskDefinition' failed to satisfy "
        "constraint: Member must not be null"
    )
    # a value of the wrong type fails deserialisation, in AWS JSON's words (dynalite's
    # recordings of AWS): no Python class names, and never coerced (true is not 1)
    for count, token in (("three", "STRING_VALUE"), (True, "TRUE_VALUE"), (1.5, "DECIMAL_VALUE")):
        status, body = await call(service, "RunTask", {"taskDefinition": "x", "count": count})
        assert (status, body) == (
            400,
            {
                "__type": "SerializationException",
                "message": f"{token} cannot be converted to Integer",
            },
        )
    status, body = await call(service, "RunTask", {"taskDefinition": "x", "count": 2**40})
    assert body["message"] == "NUMBER_VALUE cannot be converted to Integer"  # Smithy int is 32-bit


def test_encode_timestamps_and_nested_lists() -> None:
    shape = service_model("ecs").shape_for("Cluster")
    out = encode(
        shape, {"clusterName": "c", "settings": [{"name": "containerInsights", "value": "x"}]}, True
    )
    assert out == {"clusterName": "c", "settings": [{"name": "containerInsights", "value": "x"}]}


def test_paginate_walks_every_item_once() -> None:
    items = list(range(250))
    seen: list[int] = []
    token = None
    while True:
        page, token = paginate(items, token, 100)
        seen += page
        if token is None:
            break
    assert seen == items
    with pytest.raises(InvalidParameterException):
        paginate(items, "garbage", 10)
    with pytest.raises(InvalidParameterException):
        paginate(items, None, 500)
