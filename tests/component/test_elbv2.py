"""ELBv2 through the query codec, the ALB store and controller, with a fake runtime standing in
for Docker and the data plane (tests write its state.json)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore import parsers, serialize

from miniecs.alb.controller import CONFIG_PATH, RETRY_CAP, STATE_PATH, AlbController
from miniecs.alb.store import AlbStore
from miniecs.aws.elbv2 import Elbv2Api
from miniecs.aws.protocols import service_model
from miniecs.aws.query import QueryService
from miniecs.clock import FakeClock
from miniecs.metrics.store import MetricId, MetricStore, dimensions
from miniecs.runtime.base import ContainerCreateError, ProxySpec
from miniecs.runtime.fake import FakeRuntime
from tests.conftest import free_port

MODEL = service_model("elbv2")


class Elb:
    def __init__(self) -> None:
        self.store = AlbStore(None)
        self.runtime = FakeRuntime()
        self.clock = FakeClock()
        self.metrics = MetricStore(None)
        self.controller = AlbController(
            self.store, self.runtime, self.clock, self.metrics, "inst01"
        )
        self.service = QueryService(
            "elbv2", Elbv2Api(self.store, self.controller, self.clock, "us-east-1"), strict=True
        )

    async def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        op = MODEL.operation_model(operation)
        body = serialize.create_serializer("query", include_validation=False).serialize_to_request(
            params, op
        )["body"]
        wire = await self.service.handle(urlencode(body).encode())
        parsed: dict[str, Any] = parsers.create_parser("query").parse(
            {"status_code": wire.status, "headers": wire.headers, "body": wire.body},
            op.output_shape,
        )
        parsed.pop("ResponseMetadata")
        return parsed

    async def error(self, operation: str, **params: Any) -> str:
        out = await self(operation, **params)
        assert "Error" in out, out
        return f"{out['Error']['Code']}: {out['Error']['Message']}"

    def proxy(self) -> str:
        [name] = self.runtime.proxies
        return name

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.runtime.files[self.proxy()][CONFIG_PATH])
        return data

    def report(self, targets: dict[str, list[dict[str, Any]]], **counters: Any) -> None:
        state = {"config_version": self.config()["version"], "targets": targets}
        state["counters"] = counters
        self.runtime.files[self.proxy()][STATE_PATH] = json.dumps(state).encode()


@pytest.fixture
def elb() -> Iterator[Elb]:
    e = Elb()
    yield e
    e.store.close()
    e.metrics.close()


async def setup(elb: Elb, port: int | None = None) -> tuple[str, str, str]:
    lb = (await elb("CreateLoadBalancer", Name="web"))["LoadBalancers"][0]
    tg = (
        await elb(
            "CreateTargetGroup",
            Name="web-tg",
            Protocol="HTTP",
            Port=8080,
            TargetType="ip",
            HealthCheckPath="/health",
        )
    )["TargetGroups"][0]
    listener = (
        await elb(
            "CreateListener",
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=port or free_port(),
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )
    )["Listeners"][0]
    return lb["LoadBalancerArn"], tg["TargetGroupArn"], listener["ListenerArn"]


async def test_load_balancer_gets_a_data_plane_with_its_config(elb: Elb) -> None:
    lb_arn, tg_arn, listener_arn = await setup(elb)
    assert lb_arn.startswith(
        "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/"
    )
    described = (await elb("DescribeLoadBalancers", Names=["web"]))["LoadBalancers"][0]
    assert described["State"]["Code"] == "provisioning" and described["DNSName"] == "localhost"
    await elb.controller.once()
    assert (await elb("DescribeLoadBalancers"))["LoadBalancers"][0]["State"]["Code"] == "active"
    spec = elb.runtime.proxy_specs[elb.proxy()]
    assert spec.host_network and spec.labels["miniecs.load-balancer"] == lb_arn
    config = elb.config()
    assert config["listeners"][0]["arn"] == listener_arn and config["bind"] == "127.0.0.1"
    assert config["target_groups"][0]["health_check"]["path"] == "/health"
    assert config["target_groups"][0]["health_check"]["interval"] == 30
    version = config["version"]
    await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.5"}])
    await elb.controller.once()
    assert elb.config()["version"] > version
    assert elb.config()["target_groups"][0]["targets"] == [
        {"ip": "172.20.0.5", "port": 8080, "draining": False}
    ]
    version = elb.config()["version"]
    await elb.controller.once()
    assert elb.config()["version"] == version, "an unchanged config is not pushed again"
    tg = (await elb("DescribeTargetGroups", TargetGroupArns=[tg_arn]))["TargetGroups"][0]
    assert tg["LoadBalancerArns"] == [lb_arn] and tg["HealthCheckIntervalSeconds"] == 30
    assert tg["Matcher"] == {"HttpCode": "200"} and tg["HealthyThresholdCount"] == 5
    rules = (await elb("DescribeRules", ListenerArn=listener_arn))["Rules"]
    assert [r["Priority"] for r in rules] == ["default"] and rules[0]["IsDefault"]


async def test_target_health_and_draining(elb: Elb) -> None:
    lb_arn, tg_arn, _ = await setup(elb)
    await elb(
        "RegisterTargets",
        TargetGroupArn=tg_arn,
        Targets=[{"Id": "172.20.0.5"}, {"Id": "172.20.0.6", "Port": 9000}],
    )
    await elb.controller.once()
    health = (await elb("DescribeTargetHealth", TargetGroupArn=tg_arn))["TargetHealthDescriptions"]
    assert [h["TargetHealth"]["Reason"] for h in health] == ["Elb.RegistrationInProgress"] * 2
    elb.report(
        {
            tg_arn: [
                {"ip": "172.20.0.5", "port": 8080, "state": "healthy", "in_flight": 2},
                {
                    "ip": "172.20.0.6",
                    "port": 9000,
                    "state": "unhealthy",
                    "reason": "Target.ResponseCodeMismatch",
                    "description": "Health checks failed with these codes: [503]",
                    "in_flight": 0,
                },
            ]
        }
    )
    await elb.controller.once()
    health = (await elb("DescribeTargetHealth", TargetGroupArn=tg_arn))["TargetHealthDescriptions"]
    assert health[0]["TargetHealth"] == {"State": "healthy"}
    assert health[0]["HealthCheckPort"] == "8080"
    assert (
        health[1]["TargetHealth"]["Description"] == "Health checks failed with these codes: [503]"
    )
    assert elb.controller.target_health(tg_arn, "172.20.0.5", 8080) == ("healthy", None, None)
    # Draining: gone when nothing is in flight under a config where it drains.
    elb.controller.deregister_targets(tg_arn, [("172.20.0.5", 8080)])
    assert elb.controller.target_health(tg_arn, "172.20.0.5", 8080)[0] == "draining"
    await elb.controller.once()
    assert elb.config()["target_groups"][0]["targets"][0]["draining"] is True
    assert not elb.controller.is_deregistered(tg_arn, "172.20.0.5", 8080)
    elb.report({tg_arn: [{"ip": "172.20.0.5", "port": 8080, "state": "draining", "in_flight": 1}]})
    await elb.controller.once()
    assert not elb.controller.is_deregistered(tg_arn, "172.20.0.5", 8080)
    elb.report({tg_arn: [{"ip": "172.20.0.5", "port": 8080, "state": "draining", "in_flight": 0}]})
    await elb.controller.once()
    assert elb.controller.is_deregistered(tg_arn, "172.20.0.5", 8080)
    assert elb.controller.target_health(tg_arn, "172.20.0.5", 8080) is None
    gone = await elb("DescribeTargetHealth", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.5"}])
    assert gone["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"] == "Target.NotRegistered"
    # Draining that never goes idle ends with the deregistration delay (control-plane time).
    await elb(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
    )
    await elb(
        "DeregisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "172.20.0.6", "Port": 9000}]
    )
    await elb.controller.once()
    elb.report({tg_arn: [{"ip": "172.20.0.6", "port": 9000, "state": "draining", "in_flight": 4}]})
    elb.clock.advance(29)
    await elb.controller.once()
    assert not elb.controller.is_deregistered(tg_arn, "172.20.0.6", 9000)
    elb.clock.advance(1)
    await elb.controller.once()
    assert elb.controller.is_deregistered(tg_arn, "172.20.0.6", 9000)
    await elb.controller.once()
    assert elb.config()["target_groups"][0]["targets"] == []
    info = elb.controller.target_group(tg_arn)
    assert info is not None and info.port == 8080 and info.load_balancer_arns == (lb_arn,)
    assert info.deregistration_delay == 30 and info.health_check["path"] == "/health"


async def test_unused_group_and_invalid_targets(elb: Elb) -> None:
    tg_arn = (
        await elb("CreateTargetGroup", Name="idle", Protocol="HTTP", Port=80, TargetType="ip")
    )["TargetGroups"][0]["TargetGroupArn"]
    await elb("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "10.1.2.3"}])
    assert elb.controller.target_health(tg_arn, "10.1.2.3", 80) == (
        "unused",
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    )
    assert (
        await elb.error("RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "8.8.8.8"}])
    ).startswith("InvalidTarget")
    assert (
        await elb.error(
            "RegisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "10.0.0.1"}, {"Id": "i-123"}]
        )
    ).startswith("InvalidTarget")
    assert [t.ip for t in elb.store.targets(tg_arn)] == ["10.1.2.3"], "nothing registered on error"
    await elb("DeregisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "10.1.2.3"}])
    assert elb.controller.is_deregistered(tg_arn, "10.1.2.3", 80), "no load balancer: gone at once"
    assert (
        await elb.error("DeregisterTargets", TargetGroupArn=tg_arn, Targets=[{"Id": "10.1.2.3"}])
    ).startswith("InvalidTarget")
    assert (
        await elb.error(
            "RegisterTargets", TargetGroupArn=tg_arn + "x", Targets=[{"Id": "10.1.2.3"}]
        )
    ).startswith("TargetGroupNotFound")


async def test_errors_change_nothing(elb: Elb) -> None:
    lb_arn, tg_arn, listener_arn = await setup(elb)
    port = (await elb("DescribeListeners", ListenerArns=[listener_arn]))["Listeners"][0]["Port"]
    # CreateLoadBalancer is idempotent (ELB API reference): the same settings answer the
    # existing load balancer, other settings under the same name are a duplicate.
    again = await elb("CreateLoadBalancer", Name="web")
    assert again["LoadBalancers"][0]["LoadBalancerArn"] == lb_arn
    assert (await elb.error("CreateLoadBalancer", Name="web", Scheme="internal")).startswith(
        "DuplicateLoadBalancerName"
    )
    assert "cannot be longer than '32'" in await elb.error("CreateLoadBalancer", Name="x" * 33)
    assert "cannot begin or end with '-'" in await elb.error("CreateLoadBalancer", Name="web-")
    assert "internal-" in await elb.error("CreateLoadBalancer", Name="internal-web")
    assert (
        await elb.error(
            "CreateTargetGroup", Name="web-tg", Protocol="HTTP", Port=81, TargetType="ip"
        )
    ).startswith("DuplicateTargetGroupName")
    same = await elb(
        "CreateTargetGroup",
        Name="web-tg",
        Protocol="HTTP",
        Port=8080,
        TargetType="ip",
        HealthCheckPath="/health",
    )
    assert same["TargetGroups"][0]["TargetGroupArn"] == tg_arn, "same settings: the existing group"
    assert "at 'healthCheckIntervalSeconds' failed to satisfy constraint" in await elb.error(
        "CreateTargetGroup",
        Name="t2",
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        HealthCheckIntervalSeconds=4,
    )
    assert "must be smaller than the interval" in await elb.error(
        "CreateTargetGroup",
        Name="t2",
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=5,
    )
    assert "200-499" in await elb.error(
        "CreateTargetGroup",
        Name="t2",
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        Matcher={"HttpCode": "100"},
    )
    assert (await elb.error("CreateTargetGroup", Name="t2", Protocol="HTTP", Port=80)).startswith(
        "ValidationError"
    )
    assert (
        await elb.error(
            "CreateListener",
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
    ).startswith("DuplicateListener")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        message = await elb.error(
            "CreateListener",
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=busy,
            DefaultActions=[
                {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}
            ],
        )
    assert message.startswith("InvalidConfigurationRequest") and "in use on this host" in message
    assert (
        await elb.error(
            "CreateListener",
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=free_port(),
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn + "0"}],
        )
    ).startswith("TargetGroupNotFound")
    assert (
        await elb.error(
            "CreateListener",
            LoadBalancerArn=lb_arn + "0",
            Protocol="HTTP",
            Port=free_port(),
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
    ).startswith("LoadBalancerNotFound")
    rule = {
        "ListenerArn": listener_arn,
        "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    }
    paths = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a"]}}]
    created = (await elb("CreateRule", Priority=10, Conditions=paths, **rule))["Rules"][0]
    assert created["Conditions"][0]["Values"] == ["/a"]
    assert (await elb.error("CreateRule", Priority=10, Conditions=paths, **rule)).startswith(
        "PriorityInUse"
    )
    six = [{"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/{i}" for i in range(6)]}}]
    assert "'5' condition values" in await elb.error(
        "CreateRule", Priority=11, Conditions=six, **rule
    )
    other = (await elb("CreateRule", Priority=20, Conditions=paths, **rule))["Rules"][0]
    assert (
        await elb.error(
            "SetRulePriorities", RulePriorities=[{"RuleArn": other["RuleArn"], "Priority": 10}]
        )
    ).startswith("PriorityInUse")
    swapped = await elb(
        "SetRulePriorities",
        RulePriorities=[
            {"RuleArn": other["RuleArn"], "Priority": 10},
            {"RuleArn": created["RuleArn"], "Priority": 20},
        ],
    )
    assert {r["Priority"] for r in swapped["Rules"]} == {"10", "20"}
    priorities = [
        r["Priority"] for r in (await elb("DescribeRules", ListenerArn=listener_arn))["Rules"]
    ]
    assert priorities == ["10", "20", "default"]
    assert (await elb.error("DeleteTargetGroup", TargetGroupArn=tg_arn)).startswith("ResourceInUse")
    assert "deregistration_delay" in await elb.error(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "3601"}],
    )
    assert "slow_start" in await elb.error(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "slow_start.duration_seconds", "Value": "10"}],
    )
    assert "not recognized" in await elb.error(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "nope", "Value": "1"}],
    )
    ok = await elb(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[
            {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"}
        ],
    )
    assert {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"} in ok[
        "Attributes"
    ]
    assert "least outstanding" in await elb.error(
        "ModifyTargetGroupAttributes",
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "slow_start.duration_seconds", "Value": "60"}],
    )
    attrs = {
        a["Key"]: a["Value"]
        for a in (await elb("DescribeTargetGroupAttributes", TargetGroupArn=tg_arn))["Attributes"]
    }
    assert (
        attrs["deregistration_delay.timeout_seconds"] == "300"
        and attrs["slow_start.duration_seconds"] == "0"
    )
    assert len((await elb("DescribeLoadBalancers"))["LoadBalancers"]) == 1
    assert len((await elb("DescribeTargetGroups"))["TargetGroups"]) == 1
    assert len((await elb("DescribeListeners", LoadBalancerArn=lb_arn))["Listeners"]) == 1
    assert (await elb.error("DescribeLoadBalancers", Names=["nope"])).startswith(
        "LoadBalancerNotFound"
    )
    assert (await elb.error("DescribeListeners", ListenerArns=[listener_arn + "0"])).startswith(
        "ListenerNotFound"
    )
    assert (await elb.error("DeleteRule", RuleArn=created["RuleArn"] + "0")).startswith(
        "RuleNotFound"
    )


async def test_tags(elb: Elb) -> None:
    lb_arn, tg_arn, listener_arn = await setup(elb)
    await elb("AddTags", ResourceArns=[lb_arn, tg_arn], Tags=[{"Key": "env", "Value": "dev"}])
    await elb("RemoveTags", ResourceArns=[tg_arn], TagKeys=["env"])
    out = await elb("DescribeTags", ResourceArns=[lb_arn, tg_arn, listener_arn])
    assert [d.get("Tags", []) for d in out["TagDescriptions"]] == [
        [{"Key": "env", "Value": "dev"}],
        [],
        [],
    ]
    assert (
        await elb.error("AddTags", ResourceArns=[lb_arn + "0"], Tags=[{"Key": "a", "Value": "b"}])
    ).startswith("LoadBalancerNotFound")
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert (await elb.error("AddTags", ResourceArns=[lb_arn], Tags=many)).startswith("TooManyTags")


async def test_restart_adopts_and_killed_container_is_recreated(elb: Elb) -> None:
    lb_arn, tg_arn, _ = await setup(elb)
    await elb.controller.once()
    name = elb.proxy()
    old_version = elb.config()["version"]
    elb.report({}, load_balancer={"requests": 5})
    restarted = AlbController(elb.store, elb.runtime, elb.clock, elb.metrics, "inst01")
    await restarted.once()
    assert [c for c in elb.runtime.calls if c[0] == "run_proxy"] == [("run_proxy", name)]
    assert elb.config()["version"] > old_version, "a restart pushes a newer config"
    elb.runtime.proxies[name] = dataclasses.replace(elb.runtime.proxies[name], state="exited")
    await restarted.once()
    assert [c for c in elb.runtime.calls if c[0] == "run_proxy"] == [("run_proxy", name)] * 2
    assert elb.runtime.proxies[name].running
    await elb("DeleteLoadBalancer", LoadBalancerArn=lb_arn)
    await restarted.once()
    assert elb.runtime.proxies == {}
    assert await elb("DeleteLoadBalancer", LoadBalancerArn=lb_arn) == {}, "idempotent"
    await elb("DeleteTargetGroup", TargetGroupArn=tg_arn)
    assert (await elb("DescribeTargetGroups"))["TargetGroups"] == []


async def test_counters_become_application_elb_datapoints(elb: Elb) -> None:
    lb_arn, tg_arn, _ = await setup(elb)
    await elb(
        "RegisterTargets",
        TargetGroupArn=tg_arn,
        Targets=[{"Id": "172.20.0.5"}, {"Id": "172.20.0.6"}],
    )
    await elb.controller.once()
    healthy = [
        {"ip": ip, "port": 8080, "state": "healthy", "in_flight": 0}
        for ip in ("172.20.0.5", "172.20.0.6")
    ]
    tg_counters = {
        "requests": 10,
        "2xx": 9,
        "5xx": 1,
        "response_time_sum": 1.0,
        "response_time_count": 10,
    }
    elb.report({tg_arn: healthy}, load_balancer={"requests": 10}, **{tg_arn: tg_counters})
    await elb.controller.once()
    elb.clock.advance(1)
    tg_counters = {
        "requests": 30,
        "2xx": 28,
        "5xx": 2,
        "response_time_sum": 3.0,
        "response_time_count": 30,
    }
    elb.report(
        {tg_arn: healthy},
        load_balancer={"requests": 31, "elb_5xx": 1, "elb_503": 1},
        **{tg_arn: tg_counters},
    )
    await elb.controller.once()
    lb_dim = "app/web/" + lb_arn.rsplit("/", 1)[1]
    tg_dim = "targetgroup/web-tg/" + tg_arn.rsplit("/", 1)[1]
    now = elb.clock.now()

    def total(name: str, dims: dict[str, str], stat: str = "Sum") -> float:
        points = elb.metrics.datapoints(
            MetricId("AWS/ApplicationELB", name, dimensions(dims)), now - 120, now + 60, 60
        )
        return sum(p.stats.statistic(stat) for p in points)

    assert total("RequestCount", {"LoadBalancer": lb_dim}) == 21
    assert total("RequestCount", {"LoadBalancer": lb_dim, "TargetGroup": tg_dim}) == 20
    assert total("RequestCountPerTarget", {"TargetGroup": tg_dim}) == 10
    assert total("HTTPCode_Target_2XX_Count", {"LoadBalancer": lb_dim}) == 19
    assert total("HTTPCode_Target_5XX_Count", {"LoadBalancer": lb_dim, "TargetGroup": tg_dim}) == 1
    assert total("HTTPCode_ELB_5XX_Count", {"LoadBalancer": lb_dim}) == 1
    assert total("TargetResponseTime", {"LoadBalancer": lb_dim}, "Average") == pytest.approx(0.1)
    assert (
        total("HealthyHostCount", {"LoadBalancer": lb_dim, "TargetGroup": tg_dim}, "Maximum") == 2
    )


async def test_load_balancer_attributes(elb: Elb) -> None:
    lb_arn, _, _ = await setup(elb)
    await elb.controller.once()
    assert elb.config()["idle_timeout"] == 60
    out = await elb(
        "ModifyLoadBalancerAttributes",
        LoadBalancerArn=lb_arn,
        Attributes=[
            {"Key": "idle_timeout.timeout_seconds", "Value": "120"},
            {"Key": "deletion_protection.enabled", "Value": "true"},
        ],
    )
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in out["Attributes"]
    await elb.controller.once()
    assert elb.config()["idle_timeout"] == 120
    bad = [{"Key": "idle_timeout.timeout_seconds", "Value": "0"}]
    assert "between 1 and 4000" in await elb.error(
        "ModifyLoadBalancerAttributes", LoadBalancerArn=lb_arn, Attributes=bad
    )
    message = await elb.error("DeleteLoadBalancer", LoadBalancerArn=lb_arn)
    assert message.startswith("OperationNotPermitted") and "deletion protection" in message
    off = [{"Key": "deletion_protection.enabled", "Value": "false"}]
    await elb("ModifyLoadBalancerAttributes", LoadBalancerArn=lb_arn, Attributes=off)
    attrs = await elb("DescribeLoadBalancerAttributes", LoadBalancerArn=lb_arn)
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in attrs["Attributes"]


async def test_draining_targets_of_a_deleted_listener_go_at_once(elb: Elb) -> None:
    _, tg_arn, listener_arn = await setup(elb)
    elb.controller.register_targets(tg_arn, [("10.0.0.7", None)])
    await elb.controller.once()
    elb.controller.deregister_targets(tg_arn, [("10.0.0.7", 8080)])
    assert elb.controller.target_health(tg_arn, "10.0.0.7", 8080) is not None
    await elb("DeleteListener", ListenerArn=listener_arn)
    await elb.controller.once()
    assert elb.controller.is_deregistered(tg_arn, "10.0.0.7", 8080)


async def test_bridge_mode_publishes_ports_and_recreates_on_new_ports(elb: Elb) -> None:
    elb.runtime.host_network = False
    lb_arn, _, listener_arn = await setup(elb)
    await elb.controller.once()
    name = elb.proxy()
    spec = elb.runtime.proxy_specs[name]
    port = (await elb("DescribeListeners", ListenerArns=[listener_arn]))["Listeners"][0]["Port"]
    assert not spec.host_network and spec.ports == (port,) and spec.publish_address == "127.0.0.1"
    assert elb.config()["bind"] == "0.0.0.0"
    await elb.controller.once()
    assert [c for c in elb.runtime.calls if c[0] == "run_proxy"] == [("run_proxy", name)]
    second = free_port()
    await elb(
        "CreateListener",
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=second,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
    )
    await elb.controller.once()
    assert elb.runtime.proxy_specs[name].ports == tuple(sorted((port, second)))
    assert [c[0] for c in elb.runtime.calls] == ["run_proxy", "remove", "run_proxy"]


async def test_desired_view_is_cached_until_a_write(
    elb: Elb, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb_arn, tg_arn, listener_arn = await setup(elb)
    elb.controller.register_targets(tg_arn, [("10.0.0.7", None)])
    info = elb.controller.target_group(tg_arn)
    assert info is not None and info.load_balancer_arns == (lb_arn,)
    reads = []
    all_ = elb.store.all
    monkeypatch.setattr(elb.store, "all", lambda *a: reads.append(a) or all_(*a))
    for _ in range(3):
        health = elb.controller.target_health(tg_arn, "10.0.0.7", 8080)
        assert health is not None and health.state == "initial"
        assert elb.controller.load_balancers_of(tg_arn) == [lb_arn]
    assert reads == [], "no write, no store read"
    await elb("DeleteListener", ListenerArn=listener_arn)
    info = elb.controller.target_group(tg_arn)
    assert info is not None and info.load_balancer_arns == ()
    assert elb.controller.target_health(tg_arn, "10.0.0.7", 8080) == (
        "unused",
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    )
    listener_arn = (
        await elb(
            "CreateListener",
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=free_port(),
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
    )["Listeners"][0]["ListenerArn"]
    assert elb.controller.load_balancers_of(tg_arn) == [lb_arn]
    await elb("ModifyListener", ListenerArn=listener_arn, DefaultActions=[FIXED])
    assert elb.controller.load_balancers_of(tg_arn) == []
    elb.controller.deregister_targets(tg_arn, [("10.0.0.7", 8080)])
    assert elb.controller.target_health(tg_arn, "10.0.0.7", 8080) is None
    assert elb.controller.is_deregistered(tg_arn, "10.0.0.7", 8080)
    await elb("DeleteTargetGroup", TargetGroupArn=tg_arn)
    assert elb.controller.target_group(tg_arn) is None


FIXED = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}


async def test_a_data_plane_that_cannot_run_backs_off_and_fails(
    elb: Elb, monkeypatch: pytest.MonkeyPatch
) -> None:
    elb.runtime.host_network = False
    lb_arn, _, _ = await setup(elb)
    attempts = []

    async def refuse(spec: ProxySpec) -> str:
        attempts.append(elb.clock.now())
        raise ContainerCreateError("Bind for 127.0.0.1:8080 failed: port is already allocated")

    monkeypatch.setattr(elb.runtime, "run_proxy", refuse)
    start = elb.clock.now()
    for _ in range(200):
        await elb.controller.once()
        elb.clock.advance(0.5)
    waits = [round(b - a, 1) for a, b in itertools.pairwise(attempts)]
    assert waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0] and set(waits[5:]) == {RETRY_CAP}
    assert attempts[0] == start and len(attempts) == 8
    state = (await elb("DescribeLoadBalancers"))["LoadBalancers"][0]["State"]
    assert state == {
        "Code": "failed",
        "Reason": "Bind for 127.0.0.1:8080 failed: port is already allocated",
    }
    await elb(
        "CreateListener",
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=free_port(),
        DefaultActions=[FIXED],
    )
    await elb.controller.once()
    assert len(attempts) == 9, "new listener ports are tried at once"
    monkeypatch.undo()
    elb.clock.advance(0.5)
    await elb.controller.once()
    assert len(attempts) == 9 and elb.runtime.proxies == {}, "still backing off"
    elb.clock.advance(0.5)
    await elb.controller.once()
    state = (await elb("DescribeLoadBalancers"))["LoadBalancers"][0]["State"]
    assert state == {"Code": "active"} and len(elb.runtime.proxies) == 1


async def test_a_privileged_port_on_the_host_network_recreates_the_data_plane(
    elb: Elb, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb_arn, _, _ = await setup(elb)
    await elb.controller.once()
    name = elb.proxy()
    await elb(
        "CreateListener",
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=free_port(),
        DefaultActions=[FIXED],
    )
    await elb.controller.once()
    assert [c[0] for c in elb.runtime.calls] == ["run_proxy"], "host network: config push only"
    monkeypatch.setattr(elb.controller, "host_port_free", lambda port: True)
    await elb(
        "CreateListener", LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80, DefaultActions=[FIXED]
    )
    await elb.controller.once()
    assert [c[0] for c in elb.runtime.calls] == ["run_proxy", "remove", "run_proxy"]
    assert elb.runtime.proxy_specs[name].ports[0] == 80


async def test_set_ip_address_type_and_subnets_as_zones(elb: Elb) -> None:
    lb = (
        await elb(
            "CreateLoadBalancer",
            Name="zones",
            Subnets=["subnet-0aaa", "subnet-0bbb"],
            Scheme="internal",
        )
    )["LoadBalancers"][0]
    assert [(z["ZoneName"], z["SubnetId"]) for z in lb["AvailabilityZones"]] == [
        ("us-east-1a", "subnet-0aaa"),
        ("us-east-1b", "subnet-0bbb"),
    ]
    arn = lb["LoadBalancerArn"]
    out = await elb("SetIpAddressType", LoadBalancerArn=arn, IpAddressType="dualstack")
    assert out["IpAddressType"] == "dualstack"
    described = await elb("DescribeLoadBalancers", LoadBalancerArns=[arn])
    assert described["LoadBalancers"][0]["IpAddressType"] == "dualstack"
    assert "not supported for internal" in await elb.error(
        "SetIpAddressType", LoadBalancerArn=arn, IpAddressType="dualstack-without-public-ipv4"
    )
    assert "enum value set" in await elb.error(
        "SetIpAddressType", LoadBalancerArn=arn, IpAddressType="invalid"
    )
    assert "enum value set" in await elb.error(
        "CreateLoadBalancer", Name="bad", IpAddressType="invalid"
    )
    assert "enum value set" in await elb.error(
        "CreateTargetGroup",
        Name="bad",
        Protocol="HTTP",
        Port=80,
        TargetType="ip",
        IpAddressType="invalid",
    )
    assert await elb.error("SetIpAddressType", LoadBalancerArn=arn + "0", IpAddressType="ipv4")
    described = await elb("DescribeLoadBalancers", LoadBalancerArns=[arn])
    assert described["LoadBalancers"][0]["IpAddressType"] == "dualstack"
    assert [
        b["LoadBalancerName"] for b in (await elb("DescribeLoadBalancers"))["LoadBalancers"]
    ] == ["zones"]


async def test_cross_zone_attribute_is_always_on(elb: Elb) -> None:
    lb_arn, _, _ = await setup(elb)
    attrs = await elb("DescribeLoadBalancerAttributes", LoadBalancerArn=lb_arn)
    assert {"Key": "load_balancing.cross_zone.enabled", "Value": "true"} in attrs["Attributes"]
    assert "always on" in await elb.error(
        "ModifyLoadBalancerAttributes",
        LoadBalancerArn=lb_arn,
        Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "false"}],
    )


@pytest.mark.parametrize(
    "condition",
    [
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["a" * 125 + ".com"]}},
        {"Field": "host-header", "Values": ["bad host.example.com"]},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/" + "p" * 128]}},
        {"Field": "path-pattern", "Values": ["/a b"]},
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-" + "h" * 39, "Values": ["v"]},
        },
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["v" * 129]},
        },
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["get"]}},
        {
            "Field": "query-string",
            "QueryStringConfig": {"Values": [{"Key": "k", "Value": "v" * 129}]},
        },
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.300/32"]}},
    ],
)
async def test_rule_condition_values_within_elb_limits(elb: Elb, condition: dict[str, Any]) -> None:
    _, tg_arn, listener_arn = await setup(elb)
    before = await elb("DescribeRules", ListenerArn=listener_arn)
    error = await elb.error(
        "CreateRule",
        ListenerArn=listener_arn,
        Priority=10,
        Conditions=[condition],
        Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    assert error.startswith("ValidationError")
    assert await elb("DescribeRules", ListenerArn=listener_arn) == before


async def test_rule_condition_values_at_the_limits_are_taken(elb: Elb) -> None:
    _, tg_arn, listener_arn = await setup(elb)
    conditions = [
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["*." + "a" * 122 + ".com"]}},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*?" + "x" * 121]}},
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8", "2001:db8::/32"]}},
    ]
    out = await elb(
        "CreateRule",
        ListenerArn=listener_arn,
        Priority=10,
        Conditions=conditions,
        Actions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    assert len(out["Rules"][0]["Conditions"]) == 3
