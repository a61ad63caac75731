"""`miniecs demo`: the source study's story, end to end, on this machine.

An embedded control plane on a private state dir, driven through boto3 exactly as a user would
drive ECS. Phases so far: the model (tasks as limited containers with private IPs, no host
ports), scaling adds tasks but not load (a client pinned to one task keeps it busy while new
tasks sit idle), task IPs change on replacement, and desired count 0 keeps everything but the
tasks. Metrics, autoscaling and the ALB phases join as those parts land. Everything the demo
creates carries its instance label and is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import docker
from rich.console import Console
from rich.table import Table

from miniecs import images, loadgen
from miniecs.config import ServerSettings, Settings
from miniecs.engine import Engine, EngineThread
from miniecs.report import Observation, Recorder, TaskSample
from miniecs.runtime.docker import network_name

DEMO_LABEL = "miniecs.demo"
"""Labels the demo's own helper containers (the load generator), for cleanup."""
CLUSTER = "demo"
SERVICE = "web"
TASK_DEFINITION = {
    "family": "web",
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "containerDefinitions": [
        {
            "name": "app",
            "image": images.WORKLOAD_IMAGE,
            "essential": True,
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
        }
    ],
}


@dataclass
class PhaseResult:
    phase: str
    tasks: int
    requests: dict[str, int] = field(default_factory=dict)
    note: str = ""


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1][:8]


class Demo:
    def __init__(
        self,
        console: Console,
        clock_speed: float,
        load_seconds: float,
        report_dir: Path | None = None,
    ) -> None:
        self.console = console
        self.report_dir = report_dir
        self.clock_speed = clock_speed
        self.load_seconds = load_seconds
        self.results: list[PhaseResult] = []
        self.docker = docker.from_env()
        self.ecs: Any = None
        self.engine: Engine | None = None
        self.instance = ""
        self.recorder = Recorder("miniecs demo: ECS scales tasks, not workload", clock_speed)

    # plumbing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def control_plane(self) -> Iterator[None]:
        with tempfile.TemporaryDirectory(prefix="miniecs-demo-") as tmp:
            settings = Settings(
                state_dir=Path(tmp),
                clock_speed=self.clock_speed,
                server=ServerSettings(port=0),
            )
            engine = Engine(settings)
            self.engine = engine
            self.instance = engine.instance
            thread = EngineThread(engine)
            try:
                endpoint = thread.start()
                self.console.print(
                    f"control plane: {endpoint} (clock x{self.clock_speed:g}, "
                    f"instance {self.instance})"
                )
                self.ecs = boto3.client(
                    "ecs",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="demo",
                    aws_secret_access_key="demo",
                )
                yield
            finally:
                thread.stop()
                self.cleanup()

    def cleanup(self) -> None:
        label = {"label": f"miniecs.instance={self.instance}"}
        for filters in (label, {"label": f"{DEMO_LABEL}={self.instance}"}):
            for c in self.docker.containers.list(all=True, filters=filters):
                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)
        for n in self.docker.networks.list(filters=label):
            with contextlib.suppress(docker.errors.APIError):
                n.remove()

    def tasks(self) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
        if not arns:
            return []
        described = self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
        return sorted(
            (t for t in described if t["lastStatus"] == "RUNNING"), key=lambda t: t["createdAt"]
        )

    @staticmethod
    def ip_of(task: dict[str, Any]) -> str:
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        return str(details.get("privateIPv4Address", "?"))

    def observe(self) -> Observation | None:
        """The service now, for the report: counts, each running task's IP and usage (the
        sampler's latest), and the service CPU by AWS/ECS's formula (used / reserved)."""
        found = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]
        if not found or self.engine is None:
            return None
        service = found[0]
        usage = {
            u.task_id: u
            for u in self.engine.sampler.latest()
            if u.cluster == CLUSTER and u.service == SERVICE
        }
        tasks: dict[str, TaskSample] = {}
        for task in self.tasks():
            task_id = task["taskArn"].rsplit("/", 1)[-1]
            u = usage.get(task_id)
            tasks[task_id] = TaskSample(
                round(u.cpu_percent, 1) if u else None,
                round(u.memory_percent, 1) if u else None,
                self.ip_of(task),
            )
        used = [usage[t] for t in tasks if t in usage]
        reserved = sum(u.cpu_reserved for u in used)
        average = round(100 * sum(u.cpu_units for u in used) / reserved, 1) if reserved else None
        return Observation(service["desiredCount"], service["runningCount"], average, tasks)

    @contextlib.contextmanager
    def phase(self, name: str, title: str, observations: list[str]) -> Iterator[None]:
        """Record a phase, sampling the service every second while it runs."""
        with (
            self.recorder.phase(name, title, observations),
            self.recorder.sampling(self.observe, interval=1.0),
        ):
            yield

    def set_desired(self, count: int, cause: str) -> None:
        self.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=count)
        self.recorder.activity(f"Setting desired count to {count}.", cause)

    def wait_stable(self) -> None:
        self.ecs.get_waiter("services_stable").wait(
            cluster=CLUSTER, services=[SERVICE], WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )

    def load(self, urls: list[str], connections: int, ms: int) -> dict[str, Any]:
        """Run the bounded load generator in a container on the cluster's network."""
        target = loadgen.Target(urls, network_name(CLUSTER, self.instance), "direct")
        spec = loadgen.LoadSpec(duration=self.load_seconds, connections=connections, work_ms=ms)
        message = (
            f"load: {connections} kept-alive connections to {', '.join(urls)} "
            f"for {self.load_seconds:g} s"
        )
        started = self.recorder.now()
        with self.console.status(message) as status:
            try:
                report = loadgen.run_load(
                    self.docker,
                    target,
                    spec,
                    labels={DEMO_LABEL: self.instance},
                    on_progress=lambda line: status.update(f"{message}\n  {line}"),
                )
            except loadgen.LoadError as exc:
                raise DemoError(str(exc)) from None
        self.recorder.load(report, "direct", started)
        return report

    def task_table(self, title: str, per_task: dict[str, int] | None = None) -> Table:
        """The service's running tasks; with `per_task`, the requests each one served."""
        table = Table(title=title)
        columns = ["task", "private IP"]
        columns += (
            ["requests served"]
            if per_task is not None
            else ["status", "CPU limit", "memory limit", "host ports"]
        )
        for column in columns:
            table.add_column(column, justify="right" if column == "requests served" else "left")
        for task in self.tasks():
            row = [_short(task["taskArn"]), self.ip_of(task)]
            if per_task is not None:
                row.append(str(per_task.get(task["taskArn"].rsplit("/", 1)[-1], 0)))
            else:
                attrs = self.docker.api.inspect_container(task["containers"][0]["runtimeId"])
                host = attrs["HostConfig"]
                ports = [p for p in (attrs["NetworkSettings"]["Ports"] or {}).values() if p]
                row += [
                    task["lastStatus"],
                    f"{host['NanoCpus'] / 1e9:g} vCPU",
                    f"{host['Memory'] // 2**20} MiB",
                    "none" if not ports else str(ports),
                ]
            table.add_row(*row)
        return table

    # phases -------------------------------------------------------------------------------
    def phase_model(self) -> None:
        self.console.rule("[bold]1. The model: cluster → service → task → container (O1, O2, O11)")
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.ecs.register_task_definition(**TASK_DEFINITION)
        self.ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition="web", desiredCount=1
        )
        started = time.monotonic()
        self.wait_stable()
        self.console.print(
            f"CreateService desiredCount=1: stable in {time.monotonic() - started:.1f} s. "
            "The task is a real container with Fargate's limits and a private IP; "
            "nothing is published on the host."
        )
        self.console.print(self.task_table("tasks of service web"))
        self.results.append(PhaseResult("1 task, no load", len(self.tasks())))

    def phase_pinned(self) -> None:
        self.console.rule("[bold]2. Scaling adds tasks, not load (O3, O4, O5)")
        (first,) = self.tasks()
        url = f"http://{self.ip_of(first)}:8080/work"
        self.console.print(
            f"A client caches task {_short(first['taskArn'])}'s IP and keeps its connections "
            "open, as a client without a load balancer does."
        )
        self.set_desired(
            3, "UpdateService by the demo: the decision target tracking took in the study"
        )
        started = time.monotonic()
        self.wait_stable()
        self.console.print(
            f"UpdateService desiredCount=3 (the decision target tracking takes in the study): "
            f"3 tasks RUNNING after {time.monotonic() - started:.1f} s."
        )
        report = self.load([url], connections=4, ms=5)
        per_task = _per_task(report)
        self.console.print(self.task_table("requests per task, client pinned to one IP", per_task))
        busy = sum(1 for v in per_task.values() if v)
        self.console.print(
            f"{busy} of 3 tasks served requests: the new tasks sit idle. Autoscaling changed the "
            "number of tasks; it did not move any work."
        )
        self.results.append(PhaseResult("scaled to 3, pinned client", 3, per_task))

    def phase_spread_by_hand(self) -> None:
        tasks = self.tasks()
        urls = [f"http://{self.ip_of(t)}:8080/work" for t in tasks]
        report = self.load(urls, connections=len(urls) * 2, ms=5)
        per_task = _per_task(report)
        self.console.print(
            self.task_table("requests per task, client that knows every task IP", per_task)
        )
        self.console.print(
            "Only a client that discovers every task spreads the load; a load balancer does "
            "that for every client (the ALB phase comes with the load balancer)."
        )
        self.results.append(PhaseResult("3 tasks, client knows all IPs", len(tasks), per_task))

    def phase_replacement(self) -> None:
        self.console.rule("[bold]3. Task IPs are dynamic (O10)")
        before = self.tasks()
        known = {t["taskArn"] for t in before}
        victim = before[0]
        old_ip = self.ip_of(victim)
        self.docker.containers.get(victim["containers"][0]["runtimeId"]).kill()
        started = time.monotonic()

        def replaced() -> list[dict[str, Any]]:
            current = self.tasks()
            ids = {t["taskArn"] for t in current}
            return current if len(current) == 3 and victim["taskArn"] not in ids else []

        while not (current := replaced()):
            if time.monotonic() - started > 60:
                raise DemoError("the killed task was not replaced within 60 s")
            time.sleep(0.1)
        new = next(t for t in current if t["taskArn"] not in known)
        stopped = self.ecs.describe_tasks(cluster=CLUSTER, tasks=[victim["taskArn"]])["tasks"][0]
        self.console.print(
            f"docker kill of task {_short(victim['taskArn'])} ({old_ip}): "
            f"'{stopped['stoppedReason']}', exit code {stopped['containers'][0]['exitCode']}. "
            f"The scheduler started {_short(new['taskArn'])} at {self.ip_of(new)} in "
            f"{time.monotonic() - started:.1f} s. A client holding {old_ip} now fails."
        )
        self.results.append(PhaseResult("task killed and replaced", 3, note="new IP"))

    def phase_zero(self) -> None:
        self.console.rule("[bold]4. Desired count 0 keeps everything but the tasks (O12)")
        arns = [t["taskArn"] for t in self.tasks()]
        self.set_desired(0, "UpdateService by the demo: scale to zero")
        self.wait_stable()
        self.ecs.get_waiter("tasks_stopped").wait(
            cluster=CLUSTER, tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        label = {"label": f"miniecs.instance={self.instance}", "status": "running"}
        containers = len(self.docker.containers.list(filters=label))
        self.console.print(
            f"service {service['serviceName']}: status {service['status']}, desired "
            f"{service['desiredCount']}, running {service['runningCount']}, task definition "
            f"{service['taskDefinition'].rsplit('/', 1)[-1]}; running containers: {containers}."
        )
        self.set_desired(1, "UpdateService by the demo: back from zero")
        started = time.monotonic()
        self.wait_stable()
        self.console.print(f"desiredCount=1 again: back in {time.monotonic() - started:.1f} s.")
        self.results.append(PhaseResult("desired 0, then 1", 1, note="nothing lost"))

    def summary(self) -> Table:
        """Per phase: tasks, service average CPU, per-task CPU spread, requests per task."""
        table = Table(title="summary")
        columns = ("phase", "tasks", "service avg CPU", "per-task CPU", "requests per task")
        for column in (*columns, "note"):
            table.add_column(column, justify="left" if column in ("phase", "note") else "right")
        notes = {r.phase: r.note for r in self.results}
        for row in self.recorder.data.summary():
            spread = (
                "-"
                if row.task_cpu_min is None or row.task_cpu_max is None
                else f"{row.task_cpu_min:.0f}-{row.task_cpu_max:.0f} %"
            )
            table.add_row(
                row.title,
                row.tasks_text,
                "-" if row.service_cpu_avg is None else f"{row.service_cpu_avg:.0f} %",
                spread,
                " / ".join(str(n) for _, n in row.requests_per_task) or "-",
                notes.get(row.title, ""),
            )
        return table

    def run(self) -> None:
        with self.console.status("building images (offline)"):
            images.build_all(self.docker, console=self.console)
        with self.control_plane():
            with self.phase("model", "1 task, no load", ["O1", "O2", "O11"]):
                self.phase_model()
            with self.phase("pinned", "scaled to 3, pinned client", ["O3", "O4", "O5"]):
                self.phase_pinned()
            with self.phase("all IPs", "3 tasks, client knows all IPs", ["O8"]):
                self.phase_spread_by_hand()
            with self.phase("replaced", "task killed and replaced", ["O10"]):
                self.phase_replacement()
            with self.phase("zero", "desired 0, then 1", ["O12"]):
                self.phase_zero()
            events = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0][
                "events"
            ]
            self.console.rule("[bold]service events, as ECS words them (newest first)")
            for e in events[:8]:
                self.console.print(f"  {e['message']}")
            self.console.print(self.summary())
        if self.report_dir is not None:
            page = self.recorder.render(self.report_dir)
            self.console.print(f"report: {page} (charts and raw data beside it)")


def _per_task(report: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in (report.get("tasks") or {}).items()}


def run_demo(
    console: Console,
    clock_speed: float = 10.0,
    load_seconds: float = 5.0,
    report_dir: Path | None = None,
) -> None:
    """Run the demo; with `report_dir`, write the report (HTML, charts, raw data) there."""
    try:
        docker.from_env().ping()
    except Exception as exc:
        raise DemoError(f"no Docker engine answers ({exc}); start Docker and try again") from None
    Demo(console, clock_speed, load_seconds, report_dir).run()
