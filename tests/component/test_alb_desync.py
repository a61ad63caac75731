"""http-desync-guardian's request classes and ALB's ``routing.http.desync_mitigation_mode``.

AWS (ALB user guide, "Desync mitigation mode"): monitor forwards every request; defensive (the
default) forwards Compliant and Acceptable ones, forwards Ambiguous ones and then closes the
client and target connections, and blocks Severe ones; strictest forwards only Compliant ones.
Requests are counted by class; DesyncMitigationMode_NonCompliant_Request_Count is the sum of
the non-compliant ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miniecs.metrics.store import MetricId, dimensions
from tests.alb_raw import Answer, RawTarget
from tests.alb_support import config, data_plane
from tests.component.test_alb_corpus import OK, converse, status_of
from tests.component.test_elbv2 import Elb, elb, setup
from tests.conftest import free_port

__all__ = ["elb"]  # the fixture

COMPLIANT = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
ACCEPTABLE = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
AMBIGUOUS = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n"
SEVERE = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
OPEN, CLOSED, BLOCKED = (200, False), (200, True), (400, True)
EXPECTED = {
    "monitor": [OPEN, OPEN, OPEN, BLOCKED],  # llhttp cannot frame the Severe one: refused
    "defensive": [OPEN, OPEN, CLOSED, BLOCKED],
    "strictest": [OPEN, BLOCKED, BLOCKED, BLOCKED],
}


async def test_modes_decide_by_class_and_classes_are_counted(tmp_path: Path) -> None:
    target = RawTarget([Answer(OK)])
    await target.start()
    for version, (mode, expected) in enumerate(EXPECTED.items(), start=1):
        port = free_port()
        doc: dict[str, Any] = config(port, [target.port], version=version)
        doc["desync_mitigation_mode"] = mode
        async with data_plane(tmp_path, doc) as dp:
            got = []
            for raw in (COMPLIANT, ACCEPTABLE, AMBIGUOUS, SEVERE):
                data, closed = await converse(port, raw)
                got.append((status_of(data), closed))
            counters = dp.plane.counters
            assert got == expected, mode
            assert (
                counters.desync_acceptable,
                counters.desync_ambiguous,
                counters.desync_severe,
            ) == (1, 1, 1), mode
    await target.stop()


async def test_an_ambiguous_request_never_reuses_the_target_connection(tmp_path: Path) -> None:
    target = RawTarget([Answer(OK)])
    await target.start()
    port = free_port()
    async with data_plane(tmp_path, config(port, [target.port])):
        await converse(port, COMPLIANT)
        assert target.connections == 1
        await converse(port, AMBIGUOUS)
        await converse(port, COMPLIANT)
        await converse(port, COMPLIANT)
        assert target.connections == 2  # the ambiguous request's connection was closed
    await target.stop()


async def test_the_mode_is_a_load_balancer_attribute(elb: Elb) -> None:
    lb_arn, _, _ = await setup(elb)
    await elb.controller.once()
    assert elb.config()["desync_mitigation_mode"] == "defensive"
    attrs = (await elb("DescribeLoadBalancerAttributes", LoadBalancerArn=lb_arn))["Attributes"]
    assert {"Key": "routing.http.desync_mitigation_mode", "Value": "defensive"} in attrs
    strict = [{"Key": "routing.http.desync_mitigation_mode", "Value": "strictest"}]
    await elb("ModifyLoadBalancerAttributes", LoadBalancerArn=lb_arn, Attributes=strict)
    await elb.controller.once()
    assert elb.config()["desync_mitigation_mode"] == "strictest"
    bad = [{"Key": "routing.http.desync_mitigation_mode", "Value": "paranoid"}]
    message = await elb.error(
        "ModifyLoadBalancerAttributes", LoadBalancerArn=lb_arn, Attributes=bad
    )
    assert message.startswith("ValidationError") and "monitor, defensive or strictest" in message
    await elb.controller.once()
    assert elb.config()["desync_mitigation_mode"] == "strictest"


async def test_non_compliant_requests_become_a_cloudwatch_metric(elb: Elb) -> None:
    lb_arn, _, _ = await setup(elb)
    await elb.controller.once()
    elb.report({}, load_balancer={"requests": 10})
    await elb.controller.once()
    elb.clock.advance(1)
    elb.report(
        {},
        load_balancer={
            "requests": 20,
            "desync_acceptable": 2,
            "desync_ambiguous": 1,
            "desync_severe": 4,
        },
    )
    await elb.controller.once()
    lb_dim = "app/web/" + lb_arn.rsplit("/", 1)[1]
    now = elb.clock.now()
    metric = MetricId(
        "AWS/ApplicationELB",
        "DesyncMitigationMode_NonCompliant_Request_Count",
        dimensions({"LoadBalancer": lb_dim}),
    )
    points = elb.metrics.datapoints(metric, now - 120, now + 60, 60)
    assert sum(p.stats.statistic("Sum") for p in points) == 7
