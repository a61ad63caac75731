"""The load balancers' cumulative counters and target health, as `/metrics` exposes them.

The ALB controller fills these from each data plane's state.json (counters since the container
started, so they fall back to zero when it restarts, as a Prometheus counter may) and from the
target health at that reading. Names only: no ARNs, IDs or target addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True, slots=True)
class TargetGroupCounters:
    name: str
    requests: float
    """Requests routed to the group (AWS/ApplicationELB RequestCount with TargetGroup)."""
    responses: tuple[tuple[str, float], ...]
    """(code class, responses from its targets): HTTPCode_Target_<class>_Count."""
    response_time_sum: float
    """Seconds from sending a request to receiving the response head (TargetResponseTime)."""
    response_time_count: int
    healthy: int
    unhealthy: int


@dataclass(frozen=True, slots=True)
class LoadBalancerCounters:
    name: str
    requests: float
    """Every request the load balancer answered (RequestCount with LoadBalancer)."""
    elb_5xx: float
    """Responses it generated itself with a 5xx code (HTTPCode_ELB_5XX_Count)."""
    target_groups: tuple[TargetGroupCounters, ...]
