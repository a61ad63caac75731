"""AWS/ApplicationELB datapoints from the data plane's cumulative counters.

The data plane counts since its container started; `datapoints` turns the difference between
two readings into CloudWatch datapoints with the dimensions ALB uses (`LoadBalancer`
`app/<name>/<id>`, `TargetGroup` `targetgroup/<name>/<id>`). A reading lower than the previous
one means the container restarted, so it counts from zero. RequestCountPerTarget is written at
every reading, zero when no request came, so ALBRequestCountPerTarget target tracking sees an
idle group's real zeros (and can scale in to MinCapacity) rather than missing data; the other
counts are written only when nonzero, as ELB reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miniecs.metrics.store import MetricId, Stats, dimensions

NAMESPACE = "AWS/ApplicationELB"
Point = tuple[MetricId, float, float | Stats, str, int]


def load_balancer_dimension(lb_arn: str) -> str:
    """`app/<name>/<id>` from a load balancer ARN."""
    return lb_arn.split(":loadbalancer/", 1)[1]


def target_group_dimension(tg_arn: str) -> str:
    """`targetgroup/<name>/<id>` from a target group ARN."""
    return tg_arn.rsplit(":", 1)[1]


def _delta(current: Mapping[str, Any], previous: Mapping[str, Any], key: str) -> float:
    now, before = float(current.get(key) or 0), float(previous.get(key) or 0)
    return now - before if now >= before else now


def _restarted(current: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    return float(current.get("requests") or 0) < float(previous.get("requests") or 0)


def datapoints(
    lb_arn: str,
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    host_counts: Mapping[str, tuple[int, int, int]],
    now: float,
) -> list[Point]:
    """Datapoints for the counters of one load balancer between two readings. `host_counts`:
    target group ARN → (healthy, unhealthy, registered) targets at `now`."""
    lb_dim = load_balancer_dimension(lb_arn)
    points: list[Point] = []

    def put(name: str, dims: dict[str, str], value: float | Stats, unit: str = "Count") -> None:
        points.append((MetricId(NAMESPACE, name, dimensions(dims)), now, value, unit, 60))

    lb_now = current.get("load_balancer") or {}
    lb_before = previous.get("load_balancer") or {}
    if _restarted(lb_now, lb_before):
        lb_before = {}
    on_lb = {"LoadBalancer": lb_dim}
    for key, name in (
        ("requests", "RequestCount"),
        ("elb_4xx", "HTTPCode_ELB_4XX_Count"),
        ("elb_5xx", "HTTPCode_ELB_5XX_Count"),
        ("elb_502", "HTTPCode_ELB_502_Count"),
        ("elb_503", "HTTPCode_ELB_503_Count"),
        ("elb_504", "HTTPCode_ELB_504_Count"),
        ("rejected", "RejectedConnectionCount"),
    ):
        value = _delta(lb_now, lb_before, key)
        if value > 0:
            put(name, on_lb, value)
    noncompliant = sum(
        _delta(lb_now, lb_before, f"desync_{tier}")
        for tier in ("acceptable", "ambiguous", "severe")
    )
    if noncompliant > 0:
        put("DesyncMitigationMode_NonCompliant_Request_Count", on_lb, noncompliant)

    lb_codes = dict.fromkeys(("2xx", "3xx", "4xx", "5xx"), 0.0)
    lb_time = Stats(0.0, 0.0, 0.0, 0.0)
    for tg_arn, healthy_unhealthy in host_counts.items():
        tg_dim = target_group_dimension(tg_arn)
        on_tg = {"LoadBalancer": lb_dim, "TargetGroup": tg_dim}
        healthy, unhealthy, registered = healthy_unhealthy
        put("HealthyHostCount", on_tg, float(healthy))
        put("UnHealthyHostCount", on_tg, float(unhealthy))
        tg_now = (current.get(tg_arn) if tg_arn != "load_balancer" else None) or {}
        tg_before = previous.get(tg_arn) or {}
        if _restarted(tg_now, tg_before):
            tg_before = {}
        requests = _delta(tg_now, tg_before, "requests")
        if requests > 0:
            put("RequestCount", on_tg, requests)
        # Real zeros while the group is idle, so ALBRequestCountPerTarget can scale in.
        per_target = requests / (healthy or registered or 1)
        put("RequestCountPerTarget", {"TargetGroup": tg_dim}, per_target)
        put("RequestCountPerTarget", on_tg, per_target)
        for code in lb_codes:
            value = _delta(tg_now, tg_before, code)
            lb_codes[code] += value
            if value > 0:
                put(f"HTTPCode_Target_{code.upper()}_Count", on_tg, value)
        count = _delta(tg_now, tg_before, "response_time_count")
        total = _delta(tg_now, tg_before, "response_time_sum")
        if count > 0:
            mean = total / count
            stats = Stats(count, total, mean, mean)
            put("TargetResponseTime", on_tg, stats, "Seconds")
            lb_time = lb_time.merge(stats) if lb_time.sample_count else stats
    for code, value in lb_codes.items():
        if value > 0:
            put(f"HTTPCode_Target_{code.upper()}_Count", on_lb, value)
    if lb_time.sample_count:
        put("TargetResponseTime", on_lb, lb_time, "Seconds")
    return points
