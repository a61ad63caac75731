"""Listener rules: conditions, priorities and actions, as ELBv2 evaluates them."""

from __future__ import annotations

from typing import Any

import pytest

from miniecs.alb.dataplane.config import ConfigError, ListenerSpec, RuleSpec
from miniecs.alb.dataplane.routing import (
    FixedResponse,
    Forward,
    Redirect,
    RequestInfo,
    compile_condition,
    compile_listener,
)


def req(
    path: str = "/",
    *,
    method: str = "GET",
    query: str = "",
    host: str = "example.com",
    headers: list[tuple[bytes, bytes]] | None = None,
    source_ip: str = "10.0.0.7",
) -> RequestInfo:
    return RequestInfo(method, path, query, host, headers or [], source_ip, 80)


CASES: list[tuple[dict[str, Any], RequestInfo, bool]] = [
    ({"Field": "path-pattern", "Values": ["/api/*"]}, req("/api/v1"), True),
    ({"Field": "path-pattern", "Values": ["/api/*"]}, req("/API/v1"), False),  # case-sensitive
    ({"Field": "path-pattern", "Values": ["/api/*"]}, req("/apix"), False),
    ({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a?c"]}}, req("/abc"), True),
    ({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a?c"]}}, req("/abbc"), False),
    ({"Field": "path-pattern", "Values": ["/x.y"]}, req("/xzy"), False),  # . is literal
    ({"Field": "path-pattern", "Values": ["/a", "/b*"]}, req("/bee"), True),
    ({"Field": "host-header", "Values": ["*.example.com"]}, req(host="api.EXAMPLE.com"), True),
    ({"Field": "host-header", "Values": ["*.example.com"]}, req(host="example.com"), False),
    (
        {"Field": "host-header", "Values": ["api.example.com"]},
        req(host="api.example.com:8080"),
        True,
    ),
    ({"Field": "host-header", "HostHeaderConfig": {"Values": ["a?.io"]}}, req(host="ab.io"), True),
    (
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST", "PUT"]}},
        req(method="PUT"),
        True,
    ),
    (
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}},
        req(method="post"),
        False,
    ),
    (
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "User-Agent", "Values": ["*Mobile*"]},
        },
        req(headers=[(b"user-agent", b"x mobile y")]),
        True,
    ),
    (
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["prod"]},
        },
        req(headers=[(b"X-Env", b"dev"), (b"x-env", b"PROD")]),
        True,
    ),
    (
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["prod"]},
        },
        req(),
        False,
    ),
    (
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2*"}]}},
        req(query="a=1&v=2.1"),
        True,
    ),
    (
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}]}},
        req(query="v=3"),
        False,
    ),
    (
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "beta"}]}},
        req(query="flag=BETA"),
        True,
    ),
    (
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "q", "Value": "a b"}]}},
        req(query="q=a%20b"),
        True,
    ),
    ({"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/24"]}}, req(), True),
    (
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["192.168.0.0/16", "::1/128"]}},
        req(),
        False,
    ),
]


@pytest.mark.parametrize(("condition", "request_info", "expected"), CASES)
def test_condition(condition: dict[str, Any], request_info: RequestInfo, expected: bool) -> None:
    assert compile_condition(condition, "rule")(request_info) is expected


@pytest.mark.parametrize(
    "condition",
    [
        {"Field": "path-pattern", "Values": []},
        {"Field": "path-pattern", "Values": ["/a", "/b", "/c", "/d", "/e", "/f"]},
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["not-a-cidr"]}},
        {"Field": "http-header", "HttpHeaderConfig": {"Values": ["x"]}},
        {"Field": "cookie", "Values": ["x"]},
    ],
)
def test_invalid_condition(condition: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        compile_condition(condition, "rule")


def forward(arn: str) -> dict[str, Any]:
    return {"Type": "forward", "TargetGroupArn": arn}


def rule(priority: int, path: str, arn: str) -> RuleSpec:
    return RuleSpec(
        arn=f"r{priority}",
        priority=priority,
        conditions=({"Field": "path-pattern", "Values": [path]},),
        actions=(forward(arn),),
    )


def test_rules_by_ascending_priority_then_default() -> None:
    spec = ListenerSpec(
        arn="l",
        port=80,
        default_actions=(forward("default"),),
        rules=(rule(20, "/api/*", "broad"), rule(10, "/api/v2/*", "narrow")),
    )
    table = compile_listener(spec, {"default", "broad", "narrow"})
    assert table.route(req("/api/v2/x")) == Forward((("narrow", 1),), 1)
    assert table.route(req("/api/v1/x")) == Forward((("broad", 1),), 1)
    assert table.route(req("/other")) == Forward((("default", 1),), 1)


def test_unknown_target_group_is_refused() -> None:
    spec = ListenerSpec(arn="l", port=80, default_actions=(forward("nope"),))
    with pytest.raises(ConfigError, match="unknown target group"):
        compile_listener(spec, {"tg"})


def test_weighted_forward_follows_the_weights() -> None:
    table = compile_listener(
        ListenerSpec(
            arn="l",
            port=80,
            default_actions=(
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": "blue", "Weight": 1},
                            {"TargetGroupArn": "green", "Weight": 3},
                            {"TargetGroupArn": "off", "Weight": 0},
                        ]
                    },
                },
            ),
        )
    )
    action = table.default
    assert isinstance(action, Forward)
    points = [i / 100 for i in range(100)]
    chosen = [action.pick(lambda p=p: p) for p in points]  # type: ignore[misc]
    assert (chosen.count("blue"), chosen.count("green"), chosen.count("off")) == (25, 75, 0)


def test_fixed_response_and_its_limits() -> None:
    spec = ListenerSpec(
        arn="l",
        port=80,
        default_actions=(
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "503", "MessageBody": "down"},
            },
        ),
    )
    assert compile_listener(spec).default == FixedResponse(503, "text/plain", b"down")
    bad = ListenerSpec(
        arn="l",
        port=80,
        default_actions=({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}},),
    )
    with pytest.raises(ConfigError):
        compile_listener(bad)


@pytest.mark.parametrize(
    ("config", "request_info", "location"),
    [
        (
            {"StatusCode": "HTTP_301", "Protocol": "HTTPS", "Port": "443"},
            req("/a/b", query="x=1"),
            "https://example.com/a/b?x=1",
        ),
        (
            {"StatusCode": "HTTP_302", "Host": "new.#{host}", "Path": "/v2/#{path}", "Query": ""},
            req("/p", query="x=1", host="example.com:80"),
            "http://new.example.com/v2/p",
        ),
        (
            {"StatusCode": "HTTP_301", "Port": "8443", "Query": "#{query}&r=1"},
            req("/"),
            "http://example.com:8443/?&r=1",
        ),
    ],
)
def test_redirect_location(
    config: dict[str, Any], request_info: RequestInfo, location: str
) -> None:
    spec = ListenerSpec(
        arn="l", port=80, default_actions=({"Type": "redirect", "RedirectConfig": config},)
    )
    action = compile_listener(spec).default
    assert isinstance(action, Redirect)
    assert action.location(request_info) == location
    assert action.status == int(config["StatusCode"][5:])
