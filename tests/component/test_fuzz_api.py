"""Fuzz: every operation miniecs serves, fed inputs generated from botocore's input shapes
(valid-looking values, values beyond the model's bounds, values of the wrong type, missing
members) over the real wire protocols against a real in-process server (the engine with the fake
container runtime). Nothing may answer 500 or take longer than a request timeout, and the server
stays healthy. `MINIECS_FUZZ_EXAMPLES` sets the examples per operation (default 4: a bounded run
in the suite; the note in the README gives the size and result of a bigger run)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import cbor2
import httpx
import pytest
from botocore.model import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniecs.aws.autoscaling import AutoScalingApi
from miniecs.aws.cloudwatch import CloudWatchApi
from miniecs.aws.ecs import EcsApi
from miniecs.aws.elbv2 import Elbv2Api
from miniecs.aws.logs import LogsApi
from miniecs.aws.protocols import JsonService, RpcV2CborService, _snake, service_model
from miniecs.aws.query import QueryService
from miniecs.aws.secretsmanager import SecretsManagerApi
from miniecs.aws.ssm import SsmApi
from miniecs.config import ServerSettings, Settings
from miniecs.engine import Engine, EngineThread
from miniecs.runtime.fake import FakeRuntime
from tests.sigv4 import sign

EXAMPLES = int(os.environ.get("MINIECS_FUZZ_EXAMPLES", "4"))
TIMEOUT = 10.0
"""Seconds a request may take (a hang fails the test)."""
SIGNING = {"ecs": "ecs", "elbv2": "elasticloadbalancing", "cloudwatch": "monitoring"}


HANDLERS = {
    "ecs": EcsApi,
    "application-autoscaling": AutoScalingApi,
    "cloudwatch": CloudWatchApi,
    "elbv2": Elbv2Api,
    "logs": LogsApi,
    "secretsmanager": SecretsManagerApi,
    "ssm": SsmApi,
}
PROTOCOLS = [
    ("json", "ecs"),
    ("json", "application-autoscaling"),
    ("cbor", "cloudwatch"),
    ("query", "cloudwatch"),
    ("query", "elbv2"),
    ("json", "logs"),
    ("json", "secretsmanager"),
    ("json", "ssm"),
]


def _served() -> list[tuple[str, str, str]]:
    """(protocol, service, operation) for every operation miniecs serves, in every protocol
    it serves it in."""
    return [
        (kind, name, op)
        for kind, name in PROTOCOLS
        for op in service_model(name).operation_names
        if hasattr(HANDLERS[name], _snake(op))
    ]


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
"""A value of any JSON type: what a member gets when the fuzzer breaks its type."""


def _sized(shape: Shape, default_max: int) -> tuple[int, int]:
    low = int(shape.metadata.get("min", 0))
    high = int(shape.metadata.get("max", default_max))
    return max(0, low - 1), min(high + 2, low + default_max)


def value_of(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for values of `shape`, mostly well typed, sometimes beyond its bounds,
    sometimes of the wrong type."""
    return st.one_of(_typed(shape, depth), ANY_VALUE) if depth else _typed(shape, depth)


def _typed(shape: Shape, depth: int) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if depth > 8:
        return st.none()
    if kind == "structure":
        members = dict(shape.members)
        required = {k: value_of(members[k], depth + 1) for k in shape.required_members}
        optional = {k: value_of(m, depth + 1) for k, m in members.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        low, high = _sized(shape, 4)
        return st.lists(value_of(shape.member, depth + 1), min_size=low, max_size=min(high, 6))
    if kind == "map":
        low, high = _sized(shape, 3)
        return st.dictionaries(
            st.text(max_size=12), value_of(shape.value, depth + 1), max_size=min(high, 4)
        )
    if kind == "string":
        if shape.enum:
            return st.one_of(st.sampled_from(shape.enum), st.text(max_size=6))
        low, high = _sized(shape, 40)
        return st.text(min_size=low, max_size=high)
    if kind in ("integer", "long"):
        low = shape.metadata.get("min")
        high = shape.metadata.get("max")
        near = st.integers(
            min_value=(low - 2) if low is not None else -(2**31),
            max_value=(high + 2) if high is not None else 2**31,
        )
        return st.one_of(near, st.integers(min_value=-(2**64), max_value=2**64))
    if kind in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.one_of(
            st.integers(min_value=0, max_value=2**33),
            st.floats(min_value=-1e12, max_value=1e12),
        )
    if kind == "blob":
        return st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
    return ANY_VALUE


def _flatten(shape: Shape | None, value: Any, prefix: str, out: dict[str, str]) -> None:
    """`value` in the query protocol's flattened form (values of the wrong type as text)."""
    kind = shape.type_name if shape is not None else ""
    if kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            member = shape.members.get(key) if shape is not None else None
            name = member.serialization.get("name", key) if member is not None else key
            _flatten(member, item, f"{prefix}.{name}" if prefix else name, out)
    elif kind == "list" and isinstance(value, list):
        if not value:
            out[prefix] = ""
        for i, item in enumerate(value, 1):
            _flatten(shape.member if shape else None, item, f"{prefix}.member.{i}", out)
    elif kind == "map" and isinstance(value, dict):
        for i, (k, item) in enumerate(value.items(), 1):
            out[f"{prefix}.entry.{i}.key"] = str(k)
            _flatten(shape.value if shape else None, item, f"{prefix}.entry.{i}.value", out)
    elif value is not None:
        if isinstance(value, bool):
            out[prefix] = "true" if value else "false"
        elif kind == "timestamp" and isinstance(value, int | float):
            out[prefix] = dt.datetime.fromtimestamp(min(max(value, 0), 2**33), dt.UTC).isoformat()
        else:
            out[prefix] = str(value)


def request_for(
    endpoint: str, kind: str, service: str, operation: str, params: Any
) -> tuple[str, bytes, dict[str, str]]:
    model = service_model(service)
    if kind == "json":
        target = f"{model.metadata['targetPrefix']}.{operation}"
        headers = {
            "X-Amz-Target": target,
            "Content-Type": f"application/x-amz-json-{model.metadata['jsonVersion']}",
        }
        return endpoint + "/", json.dumps(params).encode(), headers
    if kind == "cbor":
        url = f"{endpoint}/service/{model.metadata['targetPrefix']}/operation/{operation}"
        headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}
        return url, cbor2.dumps(params), headers
    form = {"Action": operation, "Version": str(model.metadata["apiVersion"])}
    _flatten(model.operation_model(operation).input_shape, params, "", form)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    return endpoint + "/", urlencode(form).encode(), headers


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    state = Path(tmp_path_factory.mktemp("fuzz")) / "state"
    settings_ = Settings(state_dir=state, server=ServerSettings(port=0), clock_speed=1.0)
    engine = Engine(settings_, runtime=FakeRuntime(), strict_responses=True)
    thread = EngineThread(engine)
    url = thread.start()
    try:
        yield url, engine
    finally:
        thread.stop()


@pytest.fixture
def endpoint(engine: tuple[str, Engine]) -> str:
    return engine[0]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def engine_services(engine: tuple[str, Engine]) -> list[Any]:
    return list(engine[1].services)


SERVED = _served()


def test_every_service_of_the_engine_is_fuzzed(engine_services: list[Any]) -> None:
    """The fuzz covers every protocol and service the engine serves."""
    kinds = {RpcV2CborService: "cbor", JsonService: "json", QueryService: "query"}
    served = {(kinds[type(s)], s.model.service_name) for s in engine_services}
    assert served == set(PROTOCOLS)
    assert len(SERVED) > 60


@pytest.mark.parametrize(("kind", "service", "operation"), SERVED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_no_input_answers_500_or_hangs(
    endpoint: str, http: httpx.Client, kind: str, service: str, operation: str, data: st.DataObject
) -> None:
    shape = service_model(service).operation_model(operation).input_shape
    params = data.draw(_typed(shape, 0) if shape is not None else st.just({}), label="input")
    url, body, headers = request_for(endpoint, kind, service, operation, params)
    signed = sign("POST", url, body, headers, service=SIGNING.get(service, service))
    response = http.post(url, content=body, headers=signed)
    assert response.status_code < 500 or response.status_code == 501, response.content[:500]
    health = http.get(f"{endpoint}/_miniecs/health")
    assert health.status_code == 200
