"""The web console's cost, with a real headless Chromium (Debian's package) on it.

Against `miniecs server` in a subprocess with one service of N tasks (default 50) behind a load
balancer, with target tracking:
- page weight: bytes over the wire for the page, its script and style sheet (gzip), and the
  stream's bytes per second at N tasks;
- update latency: a change made through the API (UpdateClusterSettings, UpdateService) until
  the open page shows it, repeated;
- server CPU: the server process's CPU time per second with no page open (the reference, in
  the same run) and with one console open, and their ratio.

Run: `.venv/bin/python benchmarks/console.py [N] [SECONDS]` (bounded: N tasks, SECONDS per
CPU window; everything it starts is removed by label at the end)."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miniecs import images
from miniecs.store import Store
from tests import chromium

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_percent(pid: int, seconds: float) -> float:
    start, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - t0)


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def setup(endpoint: str, n: int) -> None:
    ecs, elb, aas = (client(s, endpoint) for s in ("ecs", "elbv2", "application-autoscaling"))
    ecs.create_cluster(clusterName="bench")
    ecs.register_task_definition(
        family="web",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": images.WORKLOAD_IMAGE,
                "portMappings": [{"containerPort": 8080}],
            }
        ],
    )
    lb = elb.create_load_balancer(Name="bench")["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name="bench", Protocol="HTTP", Port=8080, TargetType="ip", HealthCheckPath="/health"
    )["TargetGroups"][0]
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=free_port(),
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ecs.create_service(
        cluster="bench",
        serviceName="web",
        taskDefinition="web",
        desiredCount=n,
        loadBalancers=[
            {"targetGroupArn": tg["TargetGroupArn"], "containerName": "app", "containerPort": 8080}
        ],
    )
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/bench/web",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=n,
    )
    aas.put_scaling_policy(
        PolicyName="cpu",
        ServiceNamespace="ecs",
        ResourceId="service/bench/web",
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 90.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        },
    )
    deadline = time.monotonic() + 15 * n
    while time.monotonic() < deadline:
        s = ecs.describe_services(cluster="bench", services=["web"])["services"][0]
        if s["runningCount"] == n:
            return
        time.sleep(2)
    raise SystemExit(f"{n} tasks did not start in time")


def latency(page: chromium.Page, change: Any, shown: str, timeout: float = 10.0) -> float:
    started = time.monotonic()
    change()
    while not page.eval(shown):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"not shown in {timeout} s: {shown}")
        time.sleep(0.01)
    return time.monotonic() - started


def main(n: int = 50, seconds: float = 30.0) -> None:
    engine = docker.from_env()
    try:
        engine.images.get(images.WORKLOAD_IMAGE)
        engine.images.get(images.ALB_IMAGE)
    except docker.errors.ImageNotFound:
        images.build_all(engine)
    with tempfile.TemporaryDirectory(prefix="miniecs-console-bench-") as tmp:
        state = Path(tmp) / "state"
        store = Store(state / "miniecs.db")
        instance = store.instance_id()
        store.close()
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "miniecs",
                "server",
                "--port",
                str(port),
                "--state-dir",
                str(state),
            ],
            stdout=log,
            stderr=log,
        )
        try:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(endpoint + "/_miniecs/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            started = time.monotonic()
            setup(endpoint, n)
            print(f"{n} tasks running in {time.monotonic() - started:.0f} s; settling")
            time.sleep(10)
            idle = cpu_percent(server.pid, seconds)
            builds = []
            for _ in range(10):
                t0 = time.monotonic()
                size = len(httpx.get(endpoint + "/console/view", timeout=30).content)
                builds.append(time.monotonic() - t0)
            with chromium.Browser() as browser:
                page = browser.page(1280, 720)
                page.goto(endpoint + "/")
                page.wait_for("document.body.dataset.updates > 2", timeout=60)
                time.sleep(2)
                loaded = [
                    e for e in page.network_events() if e["method"] == "Network.loadingFinished"
                ]
                weight = sum(e["params"]["encodedDataLength"] for e in loaded)
                page_requests = len(loaded)
                mark = len(browser.events)
                watched = cpu_percent(server.pid, seconds)
                browser.pump(0.1)
                streamed = sum(
                    e["params"].get("encodedDataLength", 0)
                    for e in browser.events[mark:]
                    if e.get("method") == "Network.dataReceived"
                )
                updates = int(page.eval("document.body.dataset.updates"))
                ecs = client("ecs", endpoint)
                toggles = []
                for i in range(10):
                    value = "enabled" if i % 2 == 0 else "disabled"
                    toggles.append(
                        latency(
                            page,
                            lambda v=value: ecs.update_cluster_settings(
                                cluster="bench",
                                settings=[{"name": "containerInsights", "value": v}],
                            ),
                            "document.querySelector('[data-cluster=bench] select').value === "
                            f"'{value}'",
                        )
                    )
                scale = latency(
                    page,
                    lambda: ecs.update_service(cluster="bench", service="web", desiredCount=n - 1),
                    'document.querySelector(\'[data-service="bench/web"] '
                    f"[data-field=desiredCount]').textContent === '{n - 1}'",
                )
        finally:
            server.terminate()
            server.wait(60)
            log.close()
            engine = docker.from_env()
            label = {"label": f"miniecs.instance={instance}"}
            for c in engine.containers.list(all=True, sparse=True, filters=label):
                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)
            for net in engine.networks.list(filters=label):
                with contextlib.suppress(docker.errors.APIError):
                    net.remove()
    print(f"page weight: {weight / 1024:.1f} KB over the wire in {page_requests} responses")
    print(
        f"one view at {n} tasks (GET /console/view): median {statistics.median(builds) * 1000:.0f}"
        f" ms, {size / 1024:.1f} KB uncompressed"
    )
    print(
        f"stream at {n} tasks: {streamed / 1024 / seconds:.1f} KB/s "
        f"({updates} updates received so far)"
    )
    print(
        f"update latency (UpdateClusterSettings -> page), {len(toggles)} changes: median "
        f"{statistics.median(toggles):.2f} s, max {max(toggles):.2f} s; "
        f"UpdateService desiredCount -> page: {scale:.2f} s"
    )
    print(
        f"server CPU, {n} tasks: {idle:.1f} % of a core with no page open, {watched:.1f} % "
        f"with one console open (ratio {watched / idle if idle else float('nan'):.2f})"
    )


if __name__ == "__main__":
    main(*(int(a) if i == 0 else float(a) for i, a in enumerate(sys.argv[1:3])))
