"""Application Load Balancers on the real Docker engine, driven through boto3: a data-plane
container per load balancer, ECS tasks as IP targets, health, routing, draining, restarts."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from miniecs.demo import TASK_DEFINITION
from tests.conftest import Miniecs, ServerProcess, boto_client, docker_client, free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def alb_image(images: None) -> None:
    """The data-plane image, built (or found up to date) by the session's `images`: a broken
    build fails here instead of skipping."""
    docker_client().images.get("miniecs/alb:latest")


def get(url: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def status_of(url: str) -> int:
    """The status of a GET, 0 while nothing listens."""
    try:
        return get(url, 2)[0]
    except (urllib.error.URLError, ConnectionError):
        return 0


def run_tasks(ecs: Any, count: int) -> list[str]:
    """`count` RUNNING tasks of the demo workload; their private IPs."""
    ecs.create_cluster(clusterName="alb")
    ecs.register_task_definition(**TASK_DEFINITION)
    arns = [
        t["taskArn"]
        for t in ecs.run_task(
            networkConfiguration=NETWORK, cluster="alb", taskDefinition="web", count=count
        )["tasks"]
    ]
    ecs.get_waiter("tasks_running").wait(
        cluster="alb", tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    ips = []
    for task in ecs.describe_tasks(cluster="alb", tasks=arns)["tasks"]:
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        ips.append(details["privateIPv4Address"])
    return ips


def load_balancer(elb: Any, port: int) -> tuple[str, str, str]:
    lb = elb.create_load_balancer(Name="web", Type="application")["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name="web",
        Protocol="HTTP",
        Port=8080,
        TargetType="ip",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2,
    )["TargetGroups"][0]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )["Listeners"][0]
    return lb["LoadBalancerArn"], tg["TargetGroupArn"], listener["ListenerArn"]


def states(elb: Any, tg_arn: str) -> dict[str, str]:
    out = elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in out}


def lb_containers(instance: str) -> list[Any]:
    return list(
        docker_client().containers.list(
            sparse=True,
            all=True,
            filters={"label": [f"miniecs.instance={instance}", "miniecs.load-balancer"]},
        )
    )


def test_alb_routes_to_healthy_tasks_and_drains(miniecs: Miniecs, alb_image: None) -> None:
    """Clock speed 1: a slow request must not outlast a health-check timeout."""
    ecs, elb = miniecs.client("ecs"), miniecs.client("elbv2")
    port = free_port()
    ips = run_tasks(ecs, 2)
    lb_arn, tg_arn, listener_arn = load_balancer(elb, port)
    elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": ip} for ip in ips])
    wait_for(lambda: set(states(elb, tg_arn).values()) == {"healthy"}, timeout=60)
    lb = elb.describe_load_balancers(LoadBalancerArns=[lb_arn])["LoadBalancers"][0]
    assert lb["State"]["Code"] == "active"
    url = f"http://127.0.0.1:{port}/work"
    answered = {get(url)[1]["ip"] for _ in range(10)}
    assert answered == set(ips), "round robin reaches both targets"
    cloudwatch = miniecs.client("cloudwatch")
    lb_dim = "app/web/" + lb_arn.rsplit("/", 1)[1]

    def requests_counted() -> float:
        now = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB",
            MetricName="RequestCount",
            Dimensions=[{"Name": "LoadBalancer", "Value": lb_dim}],
            StartTime=now - 600,
            EndTime=now + 600,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    wait_for(lambda: requests_counted() >= 10, timeout=15)
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(
            urllib.request.urlopen(f"{miniecs.endpoint}/metrics", timeout=5).read().decode()
        )
        for s in f.samples
    }
    group = (("load_balancer", "web"), ("target_group", "web"))
    assert scraped[("miniecs_alb_requests_total", (("load_balancer", "web"),))] >= 10
    assert scraped[("miniecs_alb_target_requests_total", group)] >= 10
    assert scraped[("miniecs_alb_healthy_targets", group)] == 2

    # Requests in flight keep a deregistered target draining; once they finish it is gone,
    # long before the 300 s deregistration delay.
    slow: list[tuple[int, dict[str, Any]]] = []
    threads = [threading.Thread(target=lambda: slow.append(get(url + "?ms=300", 30))) for _ in ips]
    before = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    first = ips[0]
    elb.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": first}])
    assert states(elb, tg_arn)[first] == "draining"
    assert (
        elb.describe_target_health(TargetGroupArn=tg_arn, Targets=[{"Id": first}])[
            "TargetHealthDescriptions"
        ][0]["TargetHealth"]["Reason"]
        == "Target.DeregistrationInProgress"
    )
    for thread in threads:
        thread.join(30)
    assert sorted(body["ip"] for _, body in slow) == sorted(ips), "both finished normally"
    wait_for(lambda: first not in states(elb, tg_arn), timeout=30)
    assert time.monotonic() - before < 30
    assert {get(url)[1]["ip"] for _ in range(6)} == {ips[1]}
    gone = elb.describe_target_health(TargetGroupArn=tg_arn, Targets=[{"Id": first}])
    assert gone["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"] == "Target.NotRegistered"

    # Errors come back as ELBv2's codes through boto3.
    with pytest.raises(ClientError) as err:
        elb.delete_target_group(TargetGroupArn=tg_arn)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as err:
        elb.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
    assert err.value.response["Error"]["Code"] == "DuplicateListener"
    with pytest.raises(ClientError) as err:
        elb.describe_load_balancers(Names=["missing"])
    assert err.value.response["Error"]["Code"] == "LoadBalancerNotFound"
    with pytest.raises(ClientError) as err:
        elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "8.8.8.8"}])
    assert err.value.response["Error"]["Code"] == "InvalidTarget"

    # A fixed-response rule in front of the default action.
    elb.create_rule(
        ListenerArn=listener_arn,
        Priority=5,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/blocked*"]}}],
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "403"}}],
    )
    wait_for(lambda: get(f"http://127.0.0.1:{port}/blocked")[0] == 403, timeout=10)
    assert get(url)[0] == 200

    # Deleting everything removes the data-plane container.
    assert len(lb_containers(miniecs.instance)) == 1
    elb.delete_listener(ListenerArn=listener_arn)
    elb.delete_load_balancer(LoadBalancerArn=lb_arn)
    elb.delete_target_group(TargetGroupArn=tg_arn)
    wait_for(lambda: not lb_containers(miniecs.instance), timeout=15)
    assert elb.describe_load_balancers()["LoadBalancers"] == []


def test_restart_adopts_the_data_plane_and_a_killed_one_is_recreated(
    server_process: ServerProcess, alb_image: None
) -> None:
    server_process.extra = ("--clock-speed", "10")
    server_process.start()
    ecs = boto_client("ecs", server_process.endpoint)
    elb = boto_client("elbv2", server_process.endpoint)
    port = free_port()
    ips = run_tasks(ecs, 1)
    _, tg_arn, _ = load_balancer(elb, port)
    elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": ips[0]}])
    wait_for(lambda: states(elb, tg_arn) == {ips[0]: "healthy"}, timeout=60)
    [container] = lb_containers(server_process.instance)

    # A client keeps sending through the listener while miniecs is killed and restarted.
    outcomes: list[str] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/work")
                response = conn.getresponse()
                response.read()
                outcomes.append(str(response.status))
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    sender = threading.Thread(target=client)
    sender.start()
    try:
        server_process.kill()
        assert get(f"http://127.0.0.1:{port}/work")[0] == 200, "serves while miniecs is down"
        server_process.start()
        wait_for(lambda: states(elb, tg_arn) == {ips[0]: "healthy"}, timeout=30)
    finally:
        stop.set()
        sender.join(30)
    assert len(outcomes) > 50
    assert set(outcomes) == {"200"}, f"requests lost across the restart: {set(outcomes)}"
    assert [c.id for c in lb_containers(server_process.instance)] == [container.id]

    container.kill()
    wait_for(
        lambda: (
            [c.id for c in lb_containers(server_process.instance) if c.status == "running"]
            not in ([], [container.id])
        ),
        timeout=30,
    )
    assert len(lb_containers(server_process.instance)) == 1
    wait_for(lambda: status_of(f"http://127.0.0.1:{port}/work") == 200, timeout=30)


def test_every_operation_through_boto3_and_the_cli(miniecs: Miniecs) -> None:
    """The API alone (no data plane needed): strict response shapes, AWS's error codes."""
    elb = miniecs.client("elbv2")
    port = free_port()
    lb_arn, tg_arn, listener_arn = load_balancer(elb, port)
    assert elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]["DNSName"] == "localhost"
    elb.modify_load_balancer_attributes(
        LoadBalancerArn=lb_arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "30"}]
    )
    assert {
        "Key": "idle_timeout.timeout_seconds",
        "Value": "30",
    } in elb.describe_load_balancer_attributes(LoadBalancerArn=lb_arn)["Attributes"]
    elb.modify_target_group(TargetGroupArn=tg_arn, Matcher={"HttpCode": "200-299"})
    elb.modify_target_group_attributes(
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
    )
    attrs = elb.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "10"} in attrs
    other = elb.create_target_group(Name="other", Protocol="HTTP", Port=80, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    rule = elb.create_rule(
        ListenerArn=listener_arn,
        Priority=10,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["api.*"]}}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": tg_arn, "Weight": 1},
                        {"TargetGroupArn": other, "Weight": 3},
                    ]
                },
            }
        ],
    )["Rules"][0]
    with pytest.raises(ClientError) as in_use:
        elb.delete_target_group(TargetGroupArn=other)
    assert in_use.value.response["Error"]["Code"] == "ResourceInUse"
    elb.modify_rule(
        RuleArn=rule["RuleArn"],
        Actions=[
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTP", "Port": "80", "StatusCode": "HTTP_301"},
            }
        ],
    )
    elb.set_rule_priorities(RulePriorities=[{"RuleArn": rule["RuleArn"], "Priority": 3}])
    rules = elb.describe_rules(ListenerArn=listener_arn)["Rules"]
    assert [r["Priority"] for r in rules] == ["3", "default"]
    elb.modify_listener(
        ListenerArn=listener_arn,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
    )
    listener = elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"][0]
    assert listener["DefaultActions"][0]["Type"] == "fixed-response"
    elb.add_tags(ResourceArns=[lb_arn, tg_arn], Tags=[{"Key": "team", "Value": "a"}])
    elb.remove_tags(ResourceArns=[tg_arn], TagKeys=["team"])
    tags = elb.describe_tags(ResourceArns=[lb_arn, tg_arn])["TagDescriptions"]
    assert [t.get("Tags", []) for t in tags] == [[{"Key": "team", "Value": "a"}], []]
    elb.register_targets(TargetGroupArn=other, Targets=[{"Id": "10.9.9.9", "Port": 8080}])
    health = elb.describe_target_health(TargetGroupArn=other)["TargetHealthDescriptions"]
    assert health[0]["TargetHealth"]["State"] in ("initial", "unused")
    elb.deregister_targets(TargetGroupArn=other, Targets=[{"Id": "10.9.9.9", "Port": 8080}])
    for call, code in (
        (
            lambda: elb.create_load_balancer(Name="web", Scheme="internal"),
            "DuplicateLoadBalancerName",
        ),
        (lambda: elb.create_load_balancer(Name="-bad"), "ValidationError"),
        (lambda: elb.describe_target_groups(Names=["nope"]), "TargetGroupNotFound"),
        (lambda: elb.describe_listeners(ListenerArns=[listener_arn + "0"]), "ListenerNotFound"),
        (lambda: elb.describe_rules(RuleArns=[rule["RuleArn"] + "0"]), "RuleNotFound"),
        (
            lambda: elb.create_rule(
                ListenerArn=listener_arn,
                Priority=3,
                Conditions=[{"Field": "path-pattern", "Values": ["/x"]}],
                Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
            ),
            "PriorityInUse",
        ),
        (lambda: elb.delete_rule(RuleArn=rules[-1]["RuleArn"]), "OperationNotPermitted"),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == code
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "aws"),
            "elbv2",
            "describe-target-groups",
            "--names",
            "nope",
            "--endpoint-url",
            miniecs.endpoint,
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        check=False,
    )
    assert cli.returncode != 0 and "(TargetGroupNotFound)" in cli.stderr
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "aws"),
            "elbv2",
            "describe-load-balancers",
            "--endpoint-url",
            miniecs.endpoint,
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        check=True,
    )
    assert json.loads(cli.stdout)["LoadBalancers"][0]["LoadBalancerArn"] == lb_arn
    elb.delete_rule(RuleArn=rule["RuleArn"])
    elb.delete_listener(ListenerArn=listener_arn)
    elb.delete_load_balancer(LoadBalancerArn=lb_arn)
    elb.delete_target_group(TargetGroupArn=tg_arn)
    elb.delete_target_group(TargetGroupArn=other)
    assert elb.describe_target_groups()["TargetGroups"] == []
