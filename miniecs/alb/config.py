"""The data plane's config.json (docs/alb-dataplane.md), built purely from the desired state.

`build_config` turns one load balancer's listeners, rules, target groups and targets into the
document the data-plane container polls; the controller adds the version and pushes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .store import Resource, TargetRecord

DEFAULT_ATTRIBUTES: dict[str, str] = {
    "deregistration_delay.timeout_seconds": "300",
    "slow_start.duration_seconds": "0",
    "load_balancing.algorithm.type": "round_robin",
    "load_balancing.algorithm.anomaly_mitigation": "off",
    "stickiness.enabled": "false",
    "stickiness.type": "lb_cookie",
    "stickiness.lb_cookie.duration_seconds": "86400",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count": "1",
}
"""Target-group attributes and their defaults, as DescribeTargetGroupAttributes shows them."""


LOAD_BALANCER_ATTRIBUTES: dict[str, str] = {
    "idle_timeout.timeout_seconds": "60",
    "deletion_protection.enabled": "false",
    "routing.http2.enabled": "true",
    "routing.http.xff_header_processing.mode": "append",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.desync_mitigation_mode": "defensive",
    "client_keep_alive.seconds": "3600",
    "access_logs.s3.enabled": "false",
    "access_logs.s3.bucket": "",
    "access_logs.s3.prefix": "",
    "load_balancing.cross_zone.enabled": "true",
}
"""Load-balancer attributes and their defaults (DescribeLoadBalancerAttributes)."""


def attributes(resource: Resource) -> dict[str, str]:
    """A target group's or load balancer's attributes, defaults included."""
    defaults = LOAD_BALANCER_ATTRIBUTES if resource.kind == "loadbalancer" else DEFAULT_ATTRIBUTES
    return {**defaults, **resource.extra.get("attributes", {})}


def forwarded_target_groups(actions: Iterable[dict[str, Any]]) -> set[str]:
    """ARNs of the target groups `actions` forward to."""
    arns: set[str] = set()
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            arns.add(action["TargetGroupArn"])
        for tg in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            arns.add(tg["TargetGroupArn"])
    return arns


def health_check(tg: Resource) -> dict[str, Any]:
    data = tg.data
    return {
        "enabled": bool(data.get("HealthCheckEnabled", True)),
        "protocol": data.get("HealthCheckProtocol", "HTTP"),
        "port": data.get("HealthCheckPort", "traffic-port"),
        "path": data.get("HealthCheckPath", "/"),
        "interval": data["HealthCheckIntervalSeconds"],
        "timeout": data["HealthCheckTimeoutSeconds"],
        "healthy_threshold": data["HealthyThresholdCount"],
        "unhealthy_threshold": data["UnhealthyThresholdCount"],
        "matcher": (data.get("Matcher") or {}).get("HttpCode", "200"),
    }


def build_config(
    listeners: list[Resource],
    rules: list[Resource],
    target_groups: list[Resource],
    targets: list[TargetRecord],
    *,
    speed: float,
    bind: str,
    idle_timeout: int = 60,
    desync_mitigation_mode: str = "defensive",
) -> dict[str, Any]:
    """config.json without its `version`: every listener with its non-default rules, and every
    target group those forward to with its targets (draining ones flagged)."""
    used: set[str] = set()
    out_listeners = []
    for listener in sorted(listeners, key=lambda r: r.data["Port"]):
        own_rules = [
            r for r in rules if r.parent == listener.arn and not r.data.get("IsDefault", False)
        ]
        own_rules.sort(key=lambda r: int(r.data["Priority"]))
        used |= forwarded_target_groups(listener.data["DefaultActions"])
        for rule in own_rules:
            used |= forwarded_target_groups(rule.data["Actions"])
        out_listeners.append(
            {
                "arn": listener.arn,
                "port": listener.data["Port"],
                "default_actions": listener.data["DefaultActions"],
                "rules": [
                    {
                        "arn": r.arn,
                        "priority": int(r.data["Priority"]),
                        "conditions": r.data["Conditions"],
                        "actions": r.data["Actions"],
                    }
                    for r in own_rules
                ],
            }
        )
    out_groups = []
    for tg in target_groups:
        if tg.arn not in used:
            continue
        attrs = attributes(tg)
        out_groups.append(
            {
                "arn": tg.arn,
                "name": tg.name,
                "port": tg.data["Port"],
                "health_check": health_check(tg),
                "algorithm": attrs["load_balancing.algorithm.type"],
                "slow_start": int(attrs["slow_start.duration_seconds"]),
                "targets": [
                    {"ip": t.ip, "port": t.port, "draining": t.draining}
                    for t in targets
                    if t.tg_arn == tg.arn
                ],
            }
        )
    return {
        "speed": speed,
        "bind": bind,
        "idle_timeout": idle_timeout,
        "desync_mitigation_mode": desync_mitigation_mode,
        "listeners": out_listeners,
        "target_groups": out_groups,
    }
