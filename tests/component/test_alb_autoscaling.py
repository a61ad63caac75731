"""ALBRequestCountPerTarget target tracking end to end: a service on the fake runtime, the ALB
controller over a fake data plane (the test writes its state.json counters, one target per
RUNNING task), the controller's AWS/ApplicationELB datapoints in the MetricStore the autoscaler
reads, and a fake clock, in 20 s steps."""

from __future__ import annotations

from typing import Any

from miniecs.alb.controller import AlbController
from miniecs.alb.store import AlbStore
from miniecs.aws.elbv2 import Elbv2Api
from miniecs.aws.query import QueryService
from miniecs.clock import FakeClock
from miniecs.metrics.store import MetricId, MetricStore
from miniecs.runtime.fake import FakeRuntime
from tests.component.test_autoscaling import IDS, STEP, Scaling, scaling
from tests.component.test_elbv2 import Elb
from tests.component.test_elbv2 import setup as create_load_balancer
from tests.component.test_services import service

__all__ = ["scaling"]


class SharedElb(Elb):
    """The ELBv2 harness on the service harness's clock and the autoscaler's metric store."""

    def __init__(self, clock: FakeClock, metrics: MetricStore) -> None:
        self.store = AlbStore(None)
        self.runtime = FakeRuntime()
        self.clock = clock
        self.metrics = metrics
        self.controller = AlbController(self.store, self.runtime, clock, metrics, "inst01")
        self.service = QueryService(
            "elbv2", Elbv2Api(self.store, self.controller, clock, "us-east-1"), strict=True
        )


class Traffic:
    """Requests through the listener at `per_minute`, spread over one healthy target per
    RUNNING task, reported as the data plane's cumulative counters."""

    def __init__(self, s: Scaling, elb: SharedElb, tg_arn: str) -> None:
        self.s, self.elb, self.tg_arn = s, elb, tg_arn
        self.requests = 0.0

    def targets(self) -> list[str]:
        records = self.elb.store.targets(self.tg_arn)
        return [r.ip for r in records if not r.draining]

    def sync_targets(self) -> None:
        want = [f"10.0.0.{i + 1}" for i in range(self.s.running())]
        have = self.targets()
        if extra := [(ip, 8080) for ip in have if ip not in want]:
            self.elb.controller.deregister_targets(self.tg_arn, extra)
        if missing := [(ip, None) for ip in want if ip not in have]:
            self.elb.controller.register_targets(self.tg_arn, missing)

    async def run(self, seconds: float, per_minute: float) -> None:
        for _ in range(int(seconds / STEP)):
            self.sync_targets()
            self.requests += per_minute * STEP / 60
            records = self.elb.store.targets(self.tg_arn)
            health: list[dict[str, Any]] = [
                {"ip": r.ip, "port": r.port, "state": "healthy", "in_flight": 0} for r in records
            ]
            counters = {"requests": self.requests, "2xx": self.requests}
            self.elb.report(
                {self.tg_arn: health},
                load_balancer={"requests": self.requests},
                **{self.tg_arn: counters},
            )
            await self.elb.controller.once()
            self.s.h.clock.advance(STEP)
            before = self.s.desired()
            self.s.autoscaler.once()
            if (after := self.s.desired()) != before:
                self.s.changes.append((self.s.h.clock.now(), after))
            await self.s.h.settle()


async def test_request_count_per_target_scales_out_then_in_to_min_capacity(
    scaling: Scaling,
) -> None:
    s = scaling
    elb = SharedElb(s.h.clock, s.metrics)
    lb_arn, tg_arn, _ = await create_load_balancer(elb)
    await elb.controller.once()  # the data plane container starts
    service(s.h, 1)
    await s.h.settle()
    s.h.clock.advance(40)
    await s.h.settle()
    lb_full_name = lb_arn.split(":loadbalancer/", 1)[1]  # app/web/<id>
    tg_full_name = tg_arn.rsplit(":", 1)[1]  # targetgroup/web-tg/<id>
    assert lb_full_name.startswith("app/web/") and tg_full_name.startswith("targetgroup/web-tg/")
    s.api.register_scalable_target({**IDS, "MinCapacity": 1, "MaxCapacity": 10})
    s.api.put_scaling_policy(
        {
            **IDS,
            "PolicyName": "requests",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 200,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ALBRequestCountPerTarget",
                    "ResourceLabel": f"{lb_full_name}/{tg_full_name}",
                },
                "ScaleInCooldown": 300,
            },
        }
    )
    [high, low] = sorted(s.store.list_alarms(), key=lambda a: a.comparison)
    assert (high.namespace, high.metric_name, high.statistic) == (
        "AWS/ApplicationELB",
        "RequestCountPerTarget",
        "Sum",
    )
    assert high.dimensions == low.dimensions == (("TargetGroup", tg_full_name),)

    traffic = Traffic(s, elb, tg_arn)
    start = s.h.clock.now()
    await traffic.run(15 * 60, per_minute=600)
    # 600 requests a minute on one target against 200: ceil(1 x 600 / 200) = 3, within 3
    # periods (+ alignment); 3 targets then get 200 each, neither above 200 nor below 180.
    (at, capacity), *later = s.changes
    assert capacity == 3 and at - start <= 4 * 60
    assert later == [] and s.running() == 3 and len(traffic.targets()) == 3
    per_target = MetricId("AWS/ApplicationELB", "RequestCountPerTarget", high.dimensions)
    now = s.h.clock.now()
    [last] = s.metrics.datapoints(per_target, now // 60 * 60 - 60, now // 60 * 60, 60)
    assert last.stats.statistic("Sum") == 200

    # The traffic stops: the idle group reports real zeros, AlarmLow (< 180) holds for 15
    # periods, and ceil(3 x 0 / 200) = 0 is clamped to MinCapacity.
    stop = s.h.clock.now()
    await traffic.run(25 * 60, per_minute=0)
    [(at, capacity)] = s.changes[1:]
    assert capacity == 1 and 15 * 60 <= at - stop <= 17 * 60
    assert s.running() == 1
    activity = s.api.describe_scaling_activities({"ServiceNamespace": "ecs"})["ScalingActivities"]
    assert [a["Description"] for a in activity] == [
        "Setting desired count to 1.",
        "Setting desired count to 3.",
    ]
    assert "-AlarmLow-" in activity[0]["Cause"]
