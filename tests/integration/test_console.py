"""The web console in a real headless Chromium (Debian's package) against a real server with a
service behind a load balancer: the page's numbers are the API's (DescribeServices,
DescribeTasks, DescribeTargetHealth, GetMetricData), a scale-out reaches the open page over
server-sent events, actions go through the AWS operations, and another site cannot act."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from miniecs.demo import NETWORK_CONFIGURATION
from tests import chromium
from tests.conftest import Miniecs, free_port, remove_by_label, wait_for
from tests.integration.test_tasks import WORKLOAD

pytestmark = pytest.mark.integration
CLUSTER, SERVICE = "console", "web"
CARD = f'[data-service="{CLUSTER}/{SERVICE}"]'
DESIRED_SHOWN = f"document.querySelector('{CARD} [data-field=desiredCount]').textContent === "
SHOTS = (
    Path(os.environ.get("MINIECS_CONSOLE_SHOTS", ""))
    if "MINIECS_CONSOLE_SHOTS" in os.environ
    else None
)


@pytest.fixture
def browser() -> Iterator[chromium.Browser]:
    if chromium.find() is None:
        pytest.skip(
            "no Chromium on this machine: apt-get install chromium "
            "(scripts/bootstrap.sh installs it when run as root)"
        )
    with chromium.Browser() as b:
        yield b


def _service_behind_lb(m: Miniecs, desired: int) -> tuple[str, int]:
    """Cluster, service with `desired` tasks behind an ALB listener on a free port, and a
    target tracking policy; returns (target group ARN, listener port)."""
    ecs, elb, aas = m.client("ecs"), m.client("elbv2"), m.client("application-autoscaling")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(**WORKLOAD)
    lb = elb.create_load_balancer(Name="console-lb", Type="application")["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name="console-tg",
        Protocol="HTTP",
        Port=8080,
        TargetType="ip",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2,
    )["TargetGroups"][0]
    port = free_port()
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ecs.create_service(
        cluster=CLUSTER,
        serviceName=SERVICE,
        taskDefinition=WORKLOAD["family"],
        desiredCount=desired,
        networkConfiguration=NETWORK_CONFIGURATION,
        loadBalancers=[
            {"targetGroupArn": tg["TargetGroupArn"], "containerName": "app", "containerPort": 8080}
        ],
    )
    resource = f"service/{CLUSTER}/{SERVICE}"
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=resource,
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=4,
    )
    aas.put_scaling_policy(
        PolicyName="cpu40",
        ServiceNamespace="ecs",
        ResourceId=resource,
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 40.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        },
    )
    return tg["TargetGroupArn"], port


def _field(page: chromium.Page, name: str) -> Any:
    return page.eval(
        f'(document.querySelector(\'[data-service="{CLUSTER}/{SERVICE}"] '
        f"[data-field={name}]') || {{}}).textContent"
    )


def _page_targets(page: chromium.Page) -> dict[str, str]:
    return dict(
        page.eval(
            "[...document.querySelectorAll('[data-tg=console-tg] tr[data-target]')]"
            ".map(r => [r.dataset.target, r.querySelector('[data-field=state]').textContent])"
        )
    )


def _page_tasks(page: chromium.Page) -> dict[str, list[str]]:
    return dict(
        page.eval(
            f"[...document.querySelectorAll('{CARD} tr[data-task]')]"
            ".map(r => [r.dataset.task, [r.querySelector('[data-field=lastStatus]').textContent,"
            " r.querySelector('[data-field=privateIp]').textContent]])"
        )
    )


def _api_tasks(m: Miniecs) -> dict[str, list[str]]:
    ecs = m.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    out = {}
    for t in tasks:
        details = {d["name"]: d["value"] for d in t["attachments"][0]["details"]}
        out[t["taskArn"].rsplit("/", 1)[1]] = [
            t["lastStatus"],
            details.get("privateIPv4Address", "\N{EN DASH}"),
        ]
    return out


def _shot(page: chromium.Page, tmp_path: Path, name: str) -> Path:
    path = (SHOTS or tmp_path) / name
    page.screenshot(path)
    assert path.stat().st_size > 10_000, "a blank screenshot"
    return path


def test_console_shows_what_the_api_says_and_follows_a_scale_out(
    fast_miniecs: Miniecs, browser: chromium.Browser, tmp_path: Path
) -> None:
    m = fast_miniecs
    tg_arn, port = _service_behind_lb(m, desired=2)
    ecs, elb, cw = m.client("ecs"), m.client("elbv2"), m.client("cloudwatch")
    wait_for(
        lambda: [
            h
            for h in elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
            if h["TargetHealth"]["State"] == "healthy"
        ][1:],
        timeout=90,
    )
    for _ in range(20):  # requests through the listener, so the per-target counts move
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()

    page = browser.page(1280, 720)
    page.goto(m.endpoint + "/")
    page.wait_for("document.body.dataset.updates > 1")
    assert page.eval("document.getElementById('conn').textContent") == "live"

    # Counts, tasks and targets on the page are DescribeServices / DescribeTasks /
    # DescribeTargetHealth (read both until they agree: the service moves underneath).
    def counts_agree() -> bool:
        s = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        api = [str(s[k]) for k in ("desiredCount", "runningCount", "pendingCount")]
        return api == [_field(page, k) for k in ("desiredCount", "runningCount", "pendingCount")]

    wait_for(counts_agree, timeout=20, interval=0.5)
    wait_for(lambda: _page_tasks(page) == _api_tasks(m), timeout=20, interval=0.5)

    def targets_agree() -> bool:
        health = elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
        api = {
            f"{h['Target']['Id']}:{h['Target']['Port']}": h["TargetHealth"]["State"] for h in health
        }
        return bool(api) and _page_targets(page) == api

    wait_for(targets_agree, timeout=20, interval=0.5)

    def served() -> int:
        cells = page.eval(
            "[...document.querySelectorAll('[data-tg=console-tg] [data-field=requests]')]"
            ".map(c => Number(c.textContent))"
        )
        return int(sum(cells))

    # the data plane's counters, as the controller last read them (it reads every pass)
    assert wait_for(lambda: served() == 20, timeout=20, interval=0.5)

    # The service average drawn over the per-task lines is GetMetricData's AWS/ECS series.
    def metric_points() -> list[list[float]]:
        raw = page.eval(
            f"document.querySelector('[data-service=\"{CLUSTER}/{SERVICE}\"] svg[data-points]')"
            ".dataset.points"
        )
        return list(json.loads(raw))

    page_points = wait_for(lambda: metric_points()[1:], timeout=60, interval=0.5)
    first, last = page_points[0][0], page_points[-1][0]
    got = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "cpu",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/ECS",
                        "MetricName": "CPUUtilization",
                        "Dimensions": [
                            {"Name": "ClusterName", "Value": CLUSTER},
                            {"Name": "ServiceName", "Value": SERVICE},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Average",
                },
            }
        ],
        StartTime=first,
        EndTime=last + 60,
        ScanBy="TimestampAscending",
    )["MetricDataResults"][0]
    api_points = {
        ts.timestamp(): round(v, 2) for ts, v in zip(got["Timestamps"], got["Values"], strict=True)
    }
    # every complete period (not the newest, which is still filling) has the API's value
    for t, v in page_points[:-1]:
        assert api_points.get(t) == pytest.approx(v, abs=0.01), (t, v, api_points)
    _shot(page, tmp_path, "console-1280x720.png")

    # A scale-out made through the API reaches the open page without a reload.
    before = int(page.eval("document.body.dataset.updates"))
    started = time.monotonic()
    ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=3)
    page.wait_for(DESIRED_SHOWN + "'3'")
    latency = time.monotonic() - started
    assert int(page.eval("document.body.dataset.updates")) > before
    wait_for(lambda: len(_page_tasks(page)) == 3, timeout=60, interval=0.5)
    print(f"scale-out shown after {latency:.2f} s")

    # The page's own action: UpdateService through the token, seen by the API.
    page.eval(
        f"(() => {{ const card = document.querySelector('[data-service=\"{CLUSTER}/{SERVICE}\"]');"
        " const input = card.querySelector('input[type=number]'); input.value = '1';"
        " input.dataset.dirty = '1';"
        " card.querySelector('button[data-act=set-desired-count]').click(); })()"
    )
    wait_for(
        lambda: (
            ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0][
                "desiredCount"
            ]
            == 1
        ),
        timeout=10,
    )
    page.wait_for(DESIRED_SHOWN + "'1'")

    # Phone width: the page reflows, nothing wider than the screen.
    phone = browser.page(390, 844, mobile=True)
    phone.goto(m.endpoint + "/")
    phone.wait_for("document.body.dataset.updates > 0")
    assert phone.eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(phone, tmp_path, "console-phone.png")


class _OtherSite(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        pass


def test_another_site_cannot_act(miniecs: Miniecs, browser: chromium.Browser) -> None:
    """A page of another origin, open in the same browser, tries the console's actions: a
    plain cross-origin POST (no preflight) and one with a guessed token header. Neither
    changes anything; without the token, or from a foreign Origin, the server says 403."""
    ecs = miniecs.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(**WORKLOAD)
    ecs.create_service(
        cluster=CLUSTER,
        serviceName=SERVICE,
        taskDefinition=WORKLOAD["family"],
        desiredCount=0,
        networkConfiguration=NETWORK_CONFIGURATION,
    )
    url = f"{miniecs.endpoint}/console/actions/set-desired-count"
    body = json.dumps({"cluster": CLUSTER, "service": SERVICE, "desiredCount": 1})
    _OtherSite.page = (
        "<script>window.results = [];"
        f"fetch({json.dumps(url)}, {{method: 'POST', mode: 'no-cors', body: {json.dumps(body)}}})"
        ".then(r => results.push('no-cors:' + r.type), e => results.push('no-cors:' + e));"
        f"fetch({json.dumps(url)}, {{method: 'POST', body: {json.dumps(body)}, headers: "
        "{'Content-Type': 'application/json', 'X-Miniecs-Console-Token': 'guess'}})"
        ".then(r => results.push('cors:' + r.status), e => results.push('cors:' + e.name));"
        "</script>"
    ).encode()
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        page = browser.page()
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        results = page.wait_for("window.results && window.results.length === 2 && window.results")
    finally:
        other.shutdown()
        other.server_close()
    assert sorted(results) == ["cors:TypeError", "no-cors:opaque"], results
    service = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    assert service["desiredCount"] == 0

    # What the server answers each kind of request (the browser hides it from the other site).
    token_page = httpx.get(miniecs.endpoint + "/").text
    token = token_page.split('name="miniecs-console-token" content="', 1)[1].split('"', 1)[0]
    headers = {"Content-Type": "application/json"}
    assert httpx.post(url, content=body, headers=headers).status_code == 403
    foreign = {**headers, "X-Miniecs-Console-Token": token, "Origin": "http://evil.example"}
    assert httpx.post(url, content=body, headers=foreign).status_code == 403
    cross = {**headers, "X-Miniecs-Console-Token": token, "Sec-Fetch-Site": "cross-site"}
    assert httpx.post(url, content=body, headers=cross).status_code == 403
    wrong = {**headers, "X-Miniecs-Console-Token": token[:-1] + "x"}
    assert httpx.post(url, content=body, headers=wrong).status_code == 403
    rebinding = {**headers, "X-Miniecs-Console-Token": token, "Host": "evil.example"}
    assert httpx.post(url, content=body, headers=rebinding).status_code == 403
    assert (
        ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["desiredCount"]
        == 0
    )

    # Bad input gets ECS's error and changes nothing; the right request works.
    ok = {**headers, "X-Miniecs-Console-Token": token, "Origin": miniecs.endpoint}
    bad = httpx.post(
        url,
        content=json.dumps({"cluster": CLUSTER, "service": SERVICE, "desiredCount": "x"}),
        headers=ok,
    )
    # a string where ECS wants an integer: the type error ECS answers
    assert bad.status_code == 400 and bad.json()["__type"] == "SerializationException"
    missing = httpx.post(
        url,
        content=json.dumps({"cluster": CLUSTER, "service": "nope", "desiredCount": 1}),
        headers=ok,
    )
    assert missing.json()["__type"] == "ServiceNotFoundException", missing.text
    assert httpx.post(url, content=b"[1]", headers=ok).status_code == 400
    assert (
        httpx.post(
            url.replace("set-desired-count", "reboot"), content=b"{}", headers=ok
        ).status_code
        == 400
    )
    done = httpx.post(url, content=body, headers=ok)
    assert done.status_code == 200, done.text
    assert done.json()["service"]["desiredCount"] == 1
    # the task it starts runs before the server stops (no start in flight at teardown)
    wait_for(
        lambda: (
            ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0][
                "runningCount"
            ]
            == 1
        ),
        timeout=60,
    )


def test_an_open_console_does_not_hold_up_shutdown(tmp_path: Path, images: None) -> None:
    """uvicorn waits for open responses on shutdown; the stream ends itself instead."""
    from miniecs.config import ServerSettings, Settings
    from miniecs.engine import Engine, EngineThread

    engine = Engine(Settings(state_dir=tmp_path / "state", server=ServerSettings(port=0)))
    thread = EngineThread(engine)
    endpoint = thread.start()
    try:
        with httpx.stream("GET", endpoint + "/console/stream", timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"
            thread.stop(timeout=20)  # raises if the open stream holds the server up
            rest = list(lines)  # the server ended the stream
        assert "event: view" in rest
    finally:
        remove_by_label(f"miniecs.instance={engine.instance}")
