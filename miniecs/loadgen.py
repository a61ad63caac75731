"""The load generator as miniecs runs it: `load.py` (the workload image's bounded HTTP/1.1
client) in a throwaway container placed where the target is reachable wherever Docker runs.

Two routings, as in the study. **direct**: pinned to one task's private IP over kept-alive
connections, like a client that cached an endpoint; the container joins the task's cluster
network (found from the task's container through the Docker API). **alb**: through a load
balancer listener URL; ALB listeners bind the engine host's loopback, so the container shares
the engine host's network (`network_mode=host`). The container carries `miniecs.role=load` and
the caller's labels, and is removed when the run ends, fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import docker
import docker.errors
from rich.table import Table

from miniecs import images
from miniecs.runtime.base import LABEL_CLUSTER

Routing = Literal["direct", "alb"]
HOST_NETWORK = "host"
LOAD_ROLE = {"miniecs.role": "load"}
DEFAULT_PORT = 8080
"""Port used when the task definition maps none (the sample workload's)."""
GRACE = 30.0
"""Real seconds a run may take beyond its duration and request timeout before it is abandoned."""


class LoadError(Exception):
    """The load run could not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """How much load: load.py's options."""

    duration: float = 10.0
    requests: int | None = None
    rate: float | None = None
    """Open loop at this many requests/s in total; None: closed loop."""
    connections: int = 1
    work_ms: float | None = None
    """CPU milliseconds each request burns (`/work?ms=`)."""
    timeout: float = 5.0

    def args(self) -> list[str]:
        args = ["--duration", f"{self.duration:g}", "--connections", str(self.connections)]
        args += ["--timeout", f"{self.timeout:g}"]
        if self.requests is not None:
            args += ["--requests", str(self.requests)]
        if self.rate is not None:
            args += ["--rate", f"{self.rate:g}"]
        if self.work_ms is not None:
            args += ["--ms", f"{self.work_ms:g}"]
        return args


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes and from which network the load container sends it."""

    urls: list[str]
    network: str
    routing: Routing
    extra_hosts: dict[str, str] = field(default_factory=dict)
    description: str = ""


def task_target(
    ecs: Any, docker_client: docker.DockerClient, task: str, cluster: str, path: str = "/work"
) -> Target:
    """Direct routing to one RUNNING task (id or ARN): its IP, its first container port, the
    cluster network it sits on."""
    if task.startswith("arn:"):
        parts = task.split(":", 5)[-1].split("/")
        if len(parts) == 3:
            cluster = parts[1]
    found = _call(ecs.describe_tasks, cluster=cluster, tasks=[task])
    if not found.get("tasks"):
        reasons = ", ".join(f.get("reason", "?") for f in found.get("failures", [])) or "MISSING"
        raise LoadError(f"task {task} not found in cluster {cluster} ({reasons})")
    described = found["tasks"][0]
    status = described.get("lastStatus")
    if status != "RUNNING":
        raise LoadError(f"task {task} is {status}; only a RUNNING task can take load")
    ip = task_ip(described)
    if ip is None:
        raise LoadError(f"task {task} has no private IP (networkMode awsvpc is needed)")
    port = _task_port(ecs, described)
    network = _task_network(docker_client, described, ip)
    return Target(
        urls=[f"http://{ip}:{port}{path}"],
        network=network,
        routing="direct",
        description=f"task {described['taskArn'].rsplit('/', 1)[-1]} at {ip}:{port}",
    )


def url_target(url: str, network: str = HOST_NETWORK) -> Target:
    """Routing through a load balancer listener URL (http://<lb-dns>:<port>/path). A name the
    client host resolves is resolved here and passed to the container, so an ALB DNS name in
    this host's resolver works from inside it too."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LoadError(f"{url!r}: only http://host[:port]/path URLs are supported")
    extra: dict[str, str] = {}
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        with contextlib.suppress(OSError):
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
            if infos:
                extra[host] = str(infos[0][4][0])
    return Target(urls=[url], network=network, routing="alb", extra_hosts=extra, description=url)


def task_ip(task: Mapping[str, Any]) -> str | None:
    for attachment in task.get("attachments", []):
        details = {d["name"]: d["value"] for d in attachment.get("details", [])}
        if "privateIPv4Address" in details:
            return str(details["privateIPv4Address"])
    return None


def _task_port(ecs: Any, task: Mapping[str, Any]) -> int:
    definition = _call(ecs.describe_task_definition, taskDefinition=task["taskDefinitionArn"])
    for container in definition["taskDefinition"].get("containerDefinitions", []):
        for mapping in container.get("portMappings", []):
            if "containerPort" in mapping:
                return int(mapping["containerPort"])
    return DEFAULT_PORT


def _call(operation: Callable[..., Any], **params: Any) -> Any:
    """One control-plane call; its failure becomes a LoadError naming AWS's error code."""
    import botocore.exceptions

    try:
        return operation(**params)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise LoadError(
            f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise LoadError(
            f"no miniecs answers at {exc.kwargs.get('endpoint_url')}; start `miniecs server` "
            "or pass --endpoint-url"
        ) from None


def _task_network(client: docker.DockerClient, task: Mapping[str, Any], ip: str) -> str:
    """The Docker network holding `ip`: the one its container (or, in a multi-container task,
    the container whose namespace it joins) is attached to, else the cluster's labelled one."""
    for container in task.get("containers", []):
        runtime_id = container.get("runtimeId")
        seen = 0
        while runtime_id and seen < 3:
            seen += 1
            try:
                attrs = client.api.inspect_container(runtime_id)
            except docker.errors.NotFound:
                break
            networks = attrs["NetworkSettings"].get("Networks") or {}
            for name, net in networks.items():
                if net.get("IPAddress") == ip:
                    return str(name)
            mode = str(attrs["HostConfig"].get("NetworkMode", ""))
            runtime_id = mode.removeprefix("container:") if mode.startswith("container:") else ""
    cluster = str(task.get("clusterArn", "")).rsplit("/", 1)[-1]
    address = ipaddress.ip_address(ip)
    for net in client.api.networks(filters={"label": f"{LABEL_CLUSTER}={cluster}"}):
        for config in (net.get("IPAM") or {}).get("Config") or []:
            if address in ipaddress.ip_network(config["Subnet"]):
                return str(net["Name"])
    raise LoadError(f"no Docker network holds the task's IP {ip}")


def run_load(
    client: docker.DockerClient,
    target: Target,
    spec: LoadSpec,
    labels: Mapping[str, str] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run load.py against `target` in a container; return its JSON report plus `routing`.
    The container is removed however the run ends (Ctrl-C included)."""
    command = ["python3", "/app/load.py", *target.urls, *spec.args(), "--json", "--progress"]
    options: dict[str, Any] = {
        "labels": {**LOAD_ROLE, **(labels or {})},
        "detach": True,
        "extra_hosts": target.extra_hosts or None,
    }
    if target.network == HOST_NETWORK:
        options["network_mode"] = HOST_NETWORK
    else:
        options["network"] = target.network
    container = None
    try:
        container = client.containers.run(images.WORKLOAD_IMAGE, command, **options)
        deadline = time.monotonic() + spec.duration + spec.timeout + GRACE
        while True:
            try:
                status = container.wait(timeout=0.5)
                break
            except Exception as exc:  # docker-py raises a requests timeout while it runs
                if not _is_timeout(exc):
                    raise
            if on_progress is not None:
                last = container.logs(stdout=False, stderr=True, tail=1).decode(errors="replace")
                if last.strip():
                    on_progress(last.strip())
            if time.monotonic() > deadline:
                raise LoadError("the load generator did not finish in time")
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
    except docker.errors.ImageNotFound:
        raise LoadError(
            f"image {images.WORKLOAD_IMAGE} is missing: run `miniecs images build`"
        ) from None
    except docker.errors.APIError as exc:
        raise LoadError(f"the load container could not run: {exc.explanation or exc}") from None
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    if status.get("StatusCode") != 0:
        raise LoadError(f"load.py exited {status.get('StatusCode')}: {stderr.strip()[-500:]}")
    try:
        report = dict(json.loads(stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise LoadError(f"load.py printed no report: {stderr.strip()[-500:]}") from None
    report["routing"] = target.routing
    return report


DEFAULT_EXPECT = "2xx,3xx"


def parse_expect(expect: str) -> tuple[str, ...]:
    """``--expect``: comma-separated statuses (``200``) or classes (``2xx``); LoadError if bad."""
    items = tuple(item.strip().lower() for item in expect.split(",") if item.strip())
    for item in items:
        if not (len(item) == 3 and item[0] in "12345" and (item[1:].isdigit() or item[1:] == "xx")):
            raise LoadError(f"--expect: {item!r} is not a status like 200 or a class like 2xx")
    if not items:
        raise LoadError("--expect needs at least one status or class")
    return items


def failures(report: Mapping[str, Any], expect: tuple[str, ...]) -> list[str]:
    """Why a run should fail a CI job: requests that failed, statuses outside ``expect``, or
    no request at all. Empty when the run is good."""
    reasons = []
    if not report.get("requests") and not report.get("responses"):
        reasons.append("no request completed")
    kinds = {k: v for k, v in (report.get("errorKinds") or {}).items() if v}
    if kinds:
        reasons.append("requests failed: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    unexpected = {
        status: n
        for status, n in (report.get("statuses") or {}).items()
        if n and status not in expect and f"{str(status)[0]}xx" not in expect
    }
    if unexpected:
        shown = ", ".join(f"{k}: {v}" for k, v in unexpected.items())
        reasons.append(f"unexpected statuses (expected {','.join(expect)}): {shown}")
    return reasons


def _is_timeout(exc: Exception) -> bool:
    import requests.exceptions

    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def report_tables(report: Mapping[str, Any]) -> list[Table]:
    """The report as rich tables: the run, then requests per task (busiest first)."""
    run = Table(title=f"load via {report.get('routing', '?')}", show_header=False)
    run.add_column("what")
    run.add_column("value", justify="right")
    mode = f"open loop at {report['rate']:g} req/s" if report.get("rate") else "closed loop"
    lat = report.get("latencyMs") or {}
    rows = [
        ("targets", ", ".join(report.get("targets", []))),
        ("mode", f"{mode}, {report.get('connections')} connection(s)"),
        ("elapsed", f"{report.get('elapsed', 0):.2f} s (stopped by {report.get('stoppedBy')})"),
        ("requests", str(report.get("requests", 0))),
        ("responses / ok", f"{report.get('responses', 0)} / {report.get('ok', 0)}"),
        ("throughput", f"{report.get('rps', 0):.1f} req/s"),
        ("statuses", "  ".join(f"{k}: {v}" for k, v in report.get("statuses", {}).items()) or "-"),
        ("errors", "  ".join(f"{k}: {v}" for k, v in report.get("errorKinds", {}).items() if v)
         or "0"),
        ("dropped", str(report.get("dropped", 0))),
        ("latency p50 / p90 / p99 / max",
         " / ".join(f"{lat[k]:.2f}" for k in ("p50", "p90", "p99", "max")) + " ms" if lat else "-"),
    ]  # fmt: skip
    for row in rows:
        run.add_row(*row)
    per_task = Table(title="requests per task")
    per_task.add_column("task")
    per_task.add_column("requests", justify="right")
    per_task.add_column("share", justify="right")
    tasks: dict[str, int] = dict(report.get("tasks") or {})
    total = sum(tasks.values()) or 1
    for task, n in tasks.items():
        per_task.add_row(task, str(n), f"{n / total:.1%}")
    return [run, per_task]


def ecs_client(endpoint_url: str) -> Any:
    """A boto3 ECS client for the miniecs endpoint (miniecs accepts any credentials)."""
    import boto3

    return boto3.client(
        "ecs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="miniecs",
        aws_secret_access_key="miniecs",
    )


def connect_docker() -> docker.DockerClient:
    """The Docker engine of the environment (DOCKER_HOST or the local socket), or LoadError."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise LoadError(f"no Docker engine answers ({exc}); start Docker and try again") from None
    return client


def load_command(
    spec: LoadSpec,
    to_task: str | None,
    url: str | None,
    cluster: str,
    path: str,
    endpoint_url: str,
    network: str | None,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`miniecs load`: resolve the target (asking the control plane for a task's IP), run."""
    if (to_task is None) == (url is None):
        raise LoadError("give exactly one of --to-task (direct) or --url (via a load balancer)")
    client = connect_docker()
    if url is not None:
        target = url_target(url, network or HOST_NETWORK)
    else:
        assert to_task is not None
        target = task_target(ecs_client(endpoint_url), client, to_task, cluster, path)
        if network is not None:
            target = Target(target.urls, network, "direct", {}, target.description)
    return run_load(client, target, spec, on_progress=on_progress)
