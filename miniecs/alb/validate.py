"""ELBv2's input rules beyond botocore's shapes: names, health-check ranges, matchers,
target-group attributes, actions and rule conditions, each refused with AWS's error code.

Pure functions of the request (and, for actions, a lookup of target groups); `aws/elbv2.py`
calls them before it writes anything, so a refused request changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from .errors import (
    InvalidConfigurationRequest,
    InvalidLoadBalancerAction,
    TargetGroupNotFound,
    ValidationError,
)

_NAME = re.compile(r"^[A-Za-z0-9-]+$")
ALGORITHMS = ("round_robin", "least_outstanding_requests", "weighted_random")
CONDITION_FIELDS = {
    "host-header": "HostHeaderConfig",
    "path-pattern": "PathPatternConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}
MAX_CONDITION_VALUE = 128
"""Characters in one host-header, path-pattern, http-header or query-string value (ELB's
"Rule condition types")."""
_CONDITION_CHARS = {
    "host-header": re.compile(r"[A-Za-z0-9.*?-]+"),
    "path-pattern": re.compile(r"[A-Za-z0-9_.$/~\"'@:+&*?=%-]+"),
    "http-request-method": re.compile(r"[A-Z_-]{1,40}"),
}
CONTENT_TYPES = (
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
)


def _range(name: str, value: int, low: int, high: int) -> None:
    if value < low:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            f"constraint: Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            f"constraint: Member must have value less than or equal to {high}"
        )


def resource_name(kind: str, name: str) -> None:
    """`kind` is "Load balancer" or "Target group"; AWS's naming rules for both."""
    if len(name) > 32:
        raise ValidationError(f"{kind} name '{name}' cannot be longer than '32' characters")
    if not name or not _NAME.match(name):
        raise ValidationError(
            f"{kind} name '{name}' can only contain characters that are alphanumeric "
            "characters or hyphens(-)"
        )
    if name.startswith("-") or name.endswith("-"):
        raise ValidationError(f"{kind} name '{name}' cannot begin or end with '-'")
    if kind == "Load balancer" and name.startswith("internal-"):
        raise ValidationError(f"{kind} name '{name}' cannot begin with 'internal-'")


def matcher(code: str) -> None:
    for part in code.split(","):
        bounds = part.strip().split("-")
        if not all(b.isdigit() for b in bounds) or len(bounds) > 2:
            raise ValidationError(f"Invalid health check matcher '{code}'")
        for b in bounds:
            if not 200 <= int(b) <= 499:
                raise ValidationError(
                    f"Health check matcher HTTP code '{b}' must be within '200-499' inclusive"
                )
        if len(bounds) == 2 and int(bounds[0]) > int(bounds[1]):
            raise ValidationError(f"Invalid health check matcher range '{part}'")


def health_check(tg: dict[str, Any]) -> None:
    """Ranges and relations of a target group's health-check settings (merged, AWS names)."""
    _range("healthCheckIntervalSeconds", tg["HealthCheckIntervalSeconds"], 5, 300)
    _range("healthCheckTimeoutSeconds", tg["HealthCheckTimeoutSeconds"], 2, 120)
    _range("healthyThresholdCount", tg["HealthyThresholdCount"], 2, 10)
    _range("unhealthyThresholdCount", tg["UnhealthyThresholdCount"], 2, 10)
    if tg["HealthCheckTimeoutSeconds"] >= tg["HealthCheckIntervalSeconds"]:
        raise ValidationError(
            f"Health check timeout '{tg['HealthCheckTimeoutSeconds']}' must be smaller than "
            f"the interval '{tg['HealthCheckIntervalSeconds']}'"
        )
    if tg["HealthCheckProtocol"] not in ("HTTP", "HTTPS"):
        raise ValidationError(
            f"Health check protocol '{tg['HealthCheckProtocol']}' is not supported "
            "for target groups with the HTTP protocol"
        )
    path = tg["HealthCheckPath"]
    if not path.startswith("/") or len(path) > 1024:
        raise ValidationError(
            "Health check path must begin with '/' and be at most 1024 characters"
        )
    port = tg["HealthCheckPort"]
    if port != "traffic-port" and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ValidationError(
            f"Health check port '{port}' must be 'traffic-port' or a number from 1 to 65535"
        )
    matcher(tg["Matcher"]["HttpCode"])


def target_group_attribute(key: str, value: str, known: dict[str, str]) -> None:
    if key not in known:
        raise ValidationError(f"Target group attribute key '{key}' is not recognized")
    if key == "deregistration_delay.timeout_seconds":
        if not value.isdigit() or not 0 <= int(value) <= 3600:
            raise ValidationError(
                "'deregistration_delay.timeout_seconds' must be between 0 and 3600 seconds"
            )
    elif key == "slow_start.duration_seconds":
        if not value.isdigit() or not (int(value) == 0 or 30 <= int(value) <= 900):
            raise ValidationError(
                "'slow_start.duration_seconds' must be 0 (disabled) or between 30-900 seconds"
            )
    elif key == "load_balancing.algorithm.type":
        if value not in ALGORITHMS:
            raise ValidationError(
                f"'load_balancing.algorithm.type' must be one of: {', '.join(ALGORITHMS)}"
            )
    elif key == "load_balancing.algorithm.anomaly_mitigation":
        if value not in ("on", "off"):
            raise ValidationError("'load_balancing.algorithm.anomaly_mitigation' must be on or off")
    elif key in ("stickiness.enabled",) and value not in ("true", "false"):
        raise ValidationError(f"'{key}' must be true or false")
    elif (key.endswith("seconds") or key.endswith("count")) and not value.isdigit():
        raise ValidationError(f"'{key}' must be a number")


def load_balancer_attributes(attrs: dict[str, str], known: dict[str, str]) -> None:
    for key, value in attrs.items():
        if key not in known:
            raise ValidationError(f"Load balancer attribute key '{key}' is not recognized")
        if key == "load_balancing.cross_zone.enabled" and value != "true":
            raise InvalidConfigurationRequest(
                "Cross-zone load balancing is always on for Application Load Balancers: "
                "'load_balancing.cross_zone.enabled' can only be 'true'"
            )
        if key == "idle_timeout.timeout_seconds":
            if not value.isdigit() or not 1 <= int(value) <= 4000:
                raise ValidationError(
                    "Load balancer attribute 'idle_timeout.timeout_seconds' "
                    "must be between 1 and 4000 seconds"
                )
        elif key == "client_keep_alive.seconds":
            if not value.isdigit() or not 60 <= int(value) <= 604800:
                raise ValidationError(
                    "Load balancer attribute 'client_keep_alive.seconds' "
                    "must be between 60 and 604800 seconds"
                )
        elif key.endswith(".enabled") and value not in ("true", "false"):
            raise ValidationError(f"Load balancer attribute '{key}' must be true or false")
        elif key == "routing.http.xff_header_processing.mode" and value not in (
            "append",
            "preserve",
            "remove",
        ):
            raise ValidationError(
                "Load balancer attribute 'routing.http.xff_header_processing.mode' "
                "must be append, preserve or remove"
            )
        elif key == "routing.http.desync_mitigation_mode" and value not in (
            "monitor",
            "defensive",
            "strictest",
        ):
            raise ValidationError(
                "Load balancer attribute 'routing.http.desync_mitigation_mode' "
                "must be monitor, defensive or strictest"
            )


def target_group_attributes(attrs: dict[str, str], known: dict[str, str]) -> None:
    for key, value in attrs.items():
        target_group_attribute(key, value, known)
    if (
        attrs.get("slow_start.duration_seconds", "0") != "0"
        and attrs.get("load_balancing.algorithm.type") == "least_outstanding_requests"
    ):
        raise InvalidConfigurationRequest(
            "Slow start mode is not supported with the least outstanding requests algorithm"
        )


def actions(
    items: list[dict[str, Any]], target_group: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """The actions of a listener or rule, checked and normalised (single-target forward also
    gets its ForwardConfig, as DescribeListeners shows it). `target_group(arn)`: does it exist."""
    if not items:
        raise ValidationError("At least one action must be specified")
    terminal = [a for a in items if a["Type"] in ("forward", "fixed-response", "redirect")]
    unsupported = [a["Type"] for a in items if a not in terminal]
    if unsupported:
        raise InvalidLoadBalancerAction(
            f"Action type '{unsupported[0]}' is not supported by miniecs (HTTP listeners only)"
        )
    if len(terminal) != 1:
        raise InvalidLoadBalancerAction("Exactly one forward, fixed-response or redirect action")
    out = []
    for action in items:
        kind = action["Type"]
        if kind == "forward":
            out.append(_forward(action, target_group))
        elif kind == "fixed-response":
            config = action.get("FixedResponseConfig")
            if not config:
                raise ValidationError("A fixed-response action requires a FixedResponseConfig")
            if not re.match(r"^(2|4|5)\d\d$", config["StatusCode"]):
                raise ValidationError(
                    f"Fixed-response status code '{config['StatusCode']}' must be 2XX, 4XX or 5XX"
                )
            if config.get("ContentType") and config["ContentType"] not in CONTENT_TYPES:
                raise ValidationError(
                    f"Fixed-response content type '{config['ContentType']}' is not valid"
                )
            if len(config.get("MessageBody", "")) > 1024:
                raise ValidationError("Fixed-response message body cannot exceed 1024 characters")
            out.append({k: v for k, v in action.items() if k != "TargetGroupArn"})
        else:
            config = action.get("RedirectConfig")
            if not config:
                raise ValidationError("A redirect action requires a RedirectConfig")
            out.append(action)
    return out


def _forward(action: dict[str, Any], target_group: Callable[[str], bool]) -> dict[str, Any]:
    single = action.get("TargetGroupArn")
    config = action.get("ForwardConfig") or {}
    groups = config.get("TargetGroups") or []
    if single and groups and not (len(groups) == 1 and groups[0]["TargetGroupArn"] == single):
        raise ValidationError(
            "You cannot specify both a target group ARN and a forward config "
            "with different target groups"
        )
    if not single and not groups:
        raise ValidationError("A forward action requires a target group")
    if single and not groups:
        groups = [{"TargetGroupArn": single, "Weight": 1}]
    if len(groups) > 5:
        raise ValidationError("A forward action can have at most 5 target groups")
    seen = set()
    for group in groups:
        arn = group["TargetGroupArn"]
        if arn in seen:
            raise ValidationError(f"Target group '{arn}' is specified more than once")
        seen.add(arn)
        _range("weight", int(group.get("Weight", 1)), 0, 999)
        if not target_group(arn):
            raise TargetGroupNotFound(f"Target groups '{arn}' not found")
    forward = {
        "TargetGroups": [
            {"TargetGroupArn": g["TargetGroupArn"], "Weight": int(g.get("Weight", 1))}
            for g in groups
        ],
        **(
            {"TargetGroupStickinessConfig": config["TargetGroupStickinessConfig"]}
            if config.get("TargetGroupStickinessConfig")
            else {}
        ),
    }
    out: dict[str, Any] = {"Type": "forward", "ForwardConfig": forward}
    if len(groups) == 1:
        out["TargetGroupArn"] = groups[0]["TargetGroupArn"]
    if "Order" in action:
        out["Order"] = action["Order"]
    return out


def conditions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule conditions checked (fields, one config each, at most 5 values in all) and given
    both the legacy `Values` and their `*Config`, as DescribeRules shows them."""
    total = 0
    seen = set()
    out = []
    for cond in items:
        field = cond.get("Field", "")
        config_key = CONDITION_FIELDS.get(field)
        if config_key is None:
            raise ValidationError(f"Condition field '{field}' is not supported")
        if field in seen and field not in ("http-header", "query-string"):
            raise ValidationError(f"A rule can only have one '{field}' condition")
        seen.add(field)
        config = dict(cond.get(config_key) or {})
        if field == "query-string":
            values: list[Any] = list(config.get("Values") or [])
        else:
            values = list(config.get("Values") or cond.get("Values") or [])
        if not values:
            raise ValidationError(f"A '{field}' condition requires at least one value")
        total += len(values)
        _condition_values(field, config, values)
        normalised: dict[str, Any] = {"Field": field}
        if field == "http-header":
            if not config.get("HttpHeaderName"):
                raise ValidationError("An 'http-header' condition requires HttpHeaderName")
            normalised[config_key] = {"HttpHeaderName": config["HttpHeaderName"], "Values": values}
        elif field == "query-string":
            normalised[config_key] = {"Values": values}
        else:
            normalised["Values"] = values
            normalised[config_key] = {"Values": values}
        out.append(normalised)
    if total > 5:
        raise ValidationError("A rule can only have '5' condition values")
    return out


def _condition_values(field: str, config: dict[str, Any], values: list[Any]) -> None:
    """Each value within ELB's length and character rules for its condition type."""
    if field == "http-header" and len(str(config.get("HttpHeaderName", ""))) > 40:
        raise ValidationError("The 'http-header' condition's HttpHeaderName can be 40 characters")
    for value in values:
        if field == "query-string":
            texts = [str(value.get("Key") or ""), str(value.get("Value") or "")]
            if not texts[1]:
                raise ValidationError("A 'query-string' condition value needs a 'Value'")
        elif field == "source-ip":
            try:
                ipaddress.ip_network(str(value), strict=False)
            except ValueError:
                raise ValidationError(
                    f"The 'source-ip' condition value '{value}' is not a valid CIDR block"
                ) from None
            continue
        else:
            texts = [str(value)]
        for text in texts:
            if len(text) > MAX_CONDITION_VALUE:
                raise ValidationError(
                    f"A '{field}' condition value can be at most {MAX_CONDITION_VALUE} characters"
                )
            chars = _CONDITION_CHARS.get(field)
            if chars is not None and not chars.fullmatch(text):
                raise ValidationError(
                    f"The '{field}' condition value '{text}' contains characters that are "
                    "not allowed"
                )


IP_ADDRESS_TYPES = ("ipv4", "dualstack", "dualstack-without-public-ipv4")


def ip_address_type(value: str, scheme: str) -> str:
    """An Application Load Balancer's IpAddressType, checked against its scheme."""
    if value not in IP_ADDRESS_TYPES:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at 'ipAddressType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(IP_ADDRESS_TYPES)}]"
        )
    if value == "dualstack-without-public-ipv4" and scheme == "internal":
        raise InvalidConfigurationRequest(
            "IP address type 'dualstack-without-public-ipv4' is not supported for internal "
            "load balancers"
        )
    return value


def target_ip_address_type(value: str) -> str:
    """A target group's IpAddressType (ipv4 or ipv6)."""
    if value not in ("ipv4", "ipv6"):
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at 'ipAddressType' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ipv4, ipv6]"
        )
    return value


def priority(value: int) -> None:
    _range("priority", value, 1, 50000)
