"""The load balancers' series on `/metrics`: the ALB controller over a fake runtime (tests write
the data plane's state.json), its counters in the usage view, parsed back with
prometheus_client's text parser."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from miniecs.metrics.prometheus import exposition
from miniecs.metrics.view import UsageView
from tests.component.test_elbv2 import Elb, elb, setup

__all__ = ["elb"]

TARGETS = ("172.20.0.5", "172.20.0.6", "172.20.0.7")


def scrape(e: Elb) -> dict[str, list[Sample]]:
    view = UsageView(e.clock.now(), (), tuple(e.controller.load_balancer_counters()))
    text = exposition(lambda: view).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    [match] = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return match.value


async def test_load_balancer_series_follow_the_data_plane_counters(elb: Elb) -> None:
    _, tg_arn, _ = await setup(elb)
    await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": ip} for ip in TARGETS])
    await elb.controller.once()
    assert "miniecs_alb_requests" not in scrape(elb)  # nothing reported yet: no series

    def state(healthy: int) -> dict[str, list[dict[str, Any]]]:
        return {
            tg_arn: [
                {"ip": ip, "port": 8080, "state": "healthy" if i < healthy else "unhealthy"}
                | {"in_flight": 0}
                for i, ip in enumerate(TARGETS)
            ]
        }

    tg_counters = {
        "requests": 30,
        "2xx": 25,
        "3xx": 1,
        "4xx": 3,
        "5xx": 1,
        "response_time_sum": 1.5,
        "response_time_count": 30,
        "per_target": {f"{ip}:8080": 10 for ip in TARGETS},
    }
    load_balancer = {"requests": 34, "elb_4xx": 2, "elb_5xx": 2, "elb_503": 2, "rejected": 2}
    elb.report(state(2), load_balancer=load_balancer, **{tg_arn: tg_counters})
    await elb.controller.once()
    families = scrape(elb)

    lb, group = {"load_balancer": "web"}, {"load_balancer": "web", "target_group": "web-tg"}
    assert value(families["miniecs_alb_requests"], "miniecs_alb_requests_total", **lb) == 34
    assert value(families["miniecs_alb_elb_5xx"], "miniecs_alb_elb_5xx_total", **lb) == 2
    requests = families["miniecs_alb_target_requests"]
    assert value(requests, "miniecs_alb_target_requests_total", **group) == 30
    responses = families["miniecs_alb_target_responses"]
    assert {s.labels["code_class"]: s.value for s in responses if s.name.endswith("_total")} == {
        "2xx": 25,
        "3xx": 1,
        "4xx": 3,
        "5xx": 1,
    }
    time = families["miniecs_alb_target_response_time_seconds"]
    assert value(time, "miniecs_alb_target_response_time_seconds_sum", **group) == 1.5
    assert value(time, "miniecs_alb_target_response_time_seconds_count", **group) == 30
    assert value(families["miniecs_alb_healthy_targets"], "miniecs_alb_healthy_targets") == 2
    assert value(families["miniecs_alb_unhealthy_targets"], "miniecs_alb_unhealthy_targets") == 1
    label_names = {name for samples in families.values() for s in samples for name in s.labels}
    assert label_names == {"load_balancer", "target_group", "code_class"}
    assert not any(
        ip in repr(s.labels) for samples in families.values() for s in samples for ip in TARGETS
    )

    # The data plane restarted: its counters start again from zero, as a counter's may.
    restarted = {"requests": 4, "2xx": 4, "response_time_sum": 0.2, "response_time_count": 4}
    elb.report(state(3), load_balancer={"requests": 4}, **{tg_arn: restarted})
    await elb.controller.once()
    families = scrape(elb)
    assert value(families["miniecs_alb_requests"], "miniecs_alb_requests_total") == 4
    assert value(families["miniecs_alb_elb_5xx"], "miniecs_alb_elb_5xx_total") == 0
    responses = families["miniecs_alb_target_responses"]
    assert value(responses, "miniecs_alb_target_responses_total", code_class="5xx") == 0
    assert value(families["miniecs_alb_healthy_targets"], "miniecs_alb_healthy_targets") == 3
    assert value(families["miniecs_alb_unhealthy_targets"], "miniecs_alb_unhealthy_targets") == 0


async def test_a_deleted_load_balancer_has_no_series(elb: Elb) -> None:
    lb_arn, tg_arn, listener_arn = await setup(elb)
    await elb.controller.once()
    elb.report({tg_arn: []}, load_balancer={"requests": 1})
    await elb.controller.once()
    assert value(scrape(elb)["miniecs_alb_requests"], "miniecs_alb_requests_total") == 1
    await elb("DeleteListener", ListenerArn=listener_arn)
    await elb("DeleteLoadBalancer", LoadBalancerArn=lb_arn)
    await elb.controller.once()
    assert "miniecs_alb_requests" not in scrape(elb)
