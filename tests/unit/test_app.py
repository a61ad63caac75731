"""The endpoint's door: a strict Host parser against DNS rebinding, browser cross-site markers
refused on every path, SigV4 required on AWS calls, bounded bodies, dispatch by X-Amz-Target,
and services miniecs does not emulate answered in their own protocol."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import httpx
import pytest
from botocore import parsers

from miniecs.aws.app import LOOPBACK_NAMES, MAX_BODY, create_app
from miniecs.aws.door import AuthProblem, Credential, authorization, cross_site, host_name
from miniecs.aws.protocols import JsonService
from tests.sigv4 import sign

LIST_CLUSTERS = {
    "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
    "Content-Type": "application/x-amz-json-1.1",
}


class Handlers:
    def list_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"clusterArns": []}


async def send(
    host: str = "127.0.0.1:4566",
    allowed: frozenset[str] | None = LOOPBACK_NAMES,
    headers: dict[str, str] | None = None,
    body: bytes = b"{}",
    path: str = "/",
    method: str = "POST",
    signed: str | None = "ecs",
) -> httpx.Response:
    app = create_app([JsonService("ecs", Handlers())], allowed, usage=None)
    transport = httpx.ASGITransport(app=app)
    url = f"http://127.0.0.1:4566{path}"
    all_headers = dict(headers if headers is not None else LIST_CLUSTERS)
    if signed:
        all_headers = sign(method, url, body, all_headers, service=signed)
    all_headers["Host"] = host
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.request(method, url, headers=all_headers, content=body)


async def test_loopback_names_are_accepted() -> None:
    for host in ("127.0.0.1:4566", "localhost:4566", "[::1]:4566", "LOCALHOST", "127.0.0.1"):
        response = await send(host)
        assert response.status_code == 200, host


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:4566",
        "[::1]evil.com",
        "[::1]evil.com:4566",
        "localhost:80:80",
        "localhost:99999",
        "localhost:0",
        "127.0.0.1.evil.com",
        "user@localhost",
        "localhost evil",
        "",
        "[::1",
        "[::2]:4566",
    ],
)
async def test_other_host_names_are_refused_on_a_loopback_endpoint(host: str) -> None:
    assert (await send(host)).status_code == 403


async def test_any_well_formed_host_on_an_endpoint_bound_elsewhere() -> None:
    assert (await send("miniecs:4566", None)).status_code == 200
    assert (await send("[::1]evil.com", None)).status_code == 403


def test_host_parser() -> None:
    assert host_name("[::1]:4566") == "[::1]"
    assert host_name("Localhost:1") == "localhost"
    assert host_name("[::1]evil.com") is None
    assert host_name("[zz::1]") is None
    assert host_name("a" * 300) is None


@pytest.mark.parametrize(
    ("origin", "site", "refused"),
    [
        ("https://evil.example", None, True),
        ("null", "cross-site", True),
        ("http://localhost.evil.example", "cross-site", True),
        (None, "cross-site", True),
        (None, "same-site", True),
        ("http://localhost:3000", "cross-site", False),  # a local dev tool's page
        ("http://127.0.0.1:4566", "same-origin", False),
        (None, "none", False),  # typed into the address bar
        (None, None, False),  # SDKs, curl
    ],
)
def test_cross_site_markers(origin: str | None, site: str | None, refused: bool) -> None:
    assert (cross_site(origin, site) is not None) is refused


async def test_cross_site_requests_are_refused_on_every_path() -> None:
    browser = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    for path, method in (("/", "POST"), ("/_miniecs/health", "GET"), ("/metrics", "GET")):
        response = await send(headers={**LIST_CLUSTERS, **browser}, path=path, method=method)
        assert response.status_code == 403, path
        assert "Cross-site request refused" in response.json()["message"]


async def test_read_only_views_need_no_signature() -> None:
    response = await send(path="/_miniecs/health", method="GET", signed=None, headers={})
    assert response.status_code == 200 and response.json()["services"] == ["ecs"]


def test_authorization_header_parser() -> None:
    good = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-2/ecs/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert authorization(good, True) == Credential("AKID", "20260101", "us-east-2", "ecs")
    assert authorization(None, True) == AuthProblem(True, "Request is missing Authentication Token")
    problem = authorization("AWS4-HMAC-SHA256 Credential=a/b", False)
    assert isinstance(problem, AuthProblem) and not problem.missing
    assert problem.message.startswith(
        "Authorization header requires 'Signature' parameter. Authorization header requires "
        "'SignedHeaders' parameter. Authorization header requires existence of either a "
        "'X-Amz-Date' or a 'Date' header."
    )
    spaced = good.replace("AKID/", "AKID /")
    problem = authorization(spaced, True)
    assert isinstance(problem, AuthProblem)
    assert "not a valid key=value pair (missing equal-sign)" in problem.message


async def test_unsigned_api_calls_get_aws_errors_in_their_protocol() -> None:
    response = await send(signed=None)
    assert response.status_code == 403
    assert response.json() == {
        "__type": "MissingAuthenticationTokenException",
        "message": "Request is missing Authentication Token",
    }
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await send(headers=form, body=b"Action=DeleteLoadBalancer", signed=None)
    assert response.status_code == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in response.content
    bad = {**LIST_CLUSTERS, "Authorization": "Bearer x", "X-Amz-Date": "20260101T000000Z"}
    response = await send(headers=bad, signed=None)
    assert response.status_code == 400
    assert response.json()["__type"] == "IncompleteSignatureException"


async def test_bodies_are_bounded() -> None:
    response = await send(body=b" " * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json()["__type"] == "RequestEntityTooLarge"
    deep = b"[" * 200_000 + b"]" * 200_000
    response = await send(body=deep[: MAX_BODY - 10])
    assert response.status_code == 400
    assert response.json()["__type"] == "SerializationException"
    nested = json.dumps({"x": 1}).replace("1", "[" * 40 + "1" + "]" * 40)
    response = await send(body=nested.encode())
    assert response.status_code == 400
    assert "nests deeper than 32 levels" in response.json()["message"]


def _parse(service: str, operation: str, response: httpx.Response) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model(service)
    protocol = model.metadata.get("protocols", [model.metadata.get("protocol")])[0]
    op = model.operation_model(operation)
    parsed: dict[str, Any] = parsers.create_parser(protocol).parse(
        {
            "status_code": response.status_code,
            "headers": response.headers,
            "body": response.content,
        },
        op.output_shape,
    )
    return parsed


@pytest.mark.parametrize(
    ("service", "scope", "operation", "headers", "body"),
    [
        (
            "sts",
            "sts",
            "GetCallerIdentity",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            b"Action=GetCallerIdentity&Version=2011-06-15",
        ),
        (
            "ec2",
            "ec2",
            "DescribeVpcs",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            b"Action=DescribeVpcs&Version=2016-11-15",
        ),
        (
            "iam",
            "iam",
            "ListRoles",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            b"Action=ListRoles&Version=2010-05-08",
        ),
        (
            "logs",
            "logs",
            "DescribeLogGroups",
            {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
            },
            b"{}",
        ),
    ],
)
async def test_services_not_emulated_answer_in_their_own_protocol(
    service: str, scope: str, operation: str, headers: dict[str, str], body: bytes
) -> None:
    response = await send(headers=headers, body=body, signed=scope)
    assert response.status_code == 501
    error = _parse(service, operation, response)["Error"]
    assert error["Code"] == "NotImplemented"
    assert f"The service '{service}' is not emulated by miniecs" in error["Message"]
