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
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from miniecs import images, loadgen
from miniecs.config import ServerSettings, Settings
from miniecs.engine import Engine, EngineThread
from miniecs.report import Observation, Recorder, TaskSample
from miniecs.runtime.docker import network_name

LOAD_RUN_LABEL = "miniecs.demo.load"
DEMO_LABEL = "miniecs.demo"
"""Labels the demo's own helper containers (the load generator), for cleanup."""
CLUSTER = "demo"
SERVICE = "web"
RESOURCE_ID = f"service/{CLUSTER}/{SERVICE}"
DIMENSION = "ecs:service:DesiredCount"
POLICY = "cpu40-target-tracking"
TARGET_CPU = 40.0
"""One task near 100 % against 40 % gives ceil(1 x 100 / 40) = 3 tasks, as in the study."""
MAX_TASKS = 4
TASK_CPU = 256
LOAD_RATE = 9.0
WORK_MS = 25.0
"""9 requests/s of 25 ms CPU: 90 % of one 0.25 vCPU task, 30 % each when spread over 3."""
LOAD_CONNECTIONS = 4
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

NETWORK_CONFIGURATION = {
    "awsvpcConfiguration": {
        "subnets": ["subnet-0123456789abcdef0"],
        "securityGroups": ["sg-0123456789abcdef0"],
        "assignPublicIp": "DISABLED",
    }
}
"""What RunTask and CreateService need for an awsvpc task definition, as on AWS (the IDs are
only echoed: miniecs puts every task on its own Docker network)."""


@dataclass
class LoadRun:
    """One background run of the load generator."""

    name: str
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    report: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    stop_container: Callable[[], None] = lambda: None

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """End the run now (SIGTERM: load.py reports what it did) and return its report."""
        self.stop_container()
        if not self.done.wait(timeout):
            raise DemoError(f"the {self.name} load did not stop")
        if self.error is not None:
            raise DemoError(f"the {self.name} load failed: {self.error}")
        return self.report


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1][:8]


class Demo:
    def __init__(
        self,
        console: Console,
        clock_speed: float,
        load_seconds: float | None,
        report_dir: Path | None = None,
        port: int = 0,
        console_hold: float = 0.0,
    ) -> None:
        self.console = console
        self.port = port
        """The endpoint's (and web console's) port; 0: any free one."""
        self.console_hold = console_hold
        """Seconds the control plane (and its web console) stays up after the last phase."""
        self.report_dir = report_dir
        self.clock_speed = clock_speed
        self.load_seconds = load_seconds
        self.docker = docker.from_env()
        self.endpoint = ""
        self.ecs: Any = None
        self.scaling: Any = None
        self.cloudwatch: Any = None
        self.elbv2: Any = None
        self.engine: Engine | None = None
        self.instance = ""
        self.hot_task = ""
        self.target_group: str | None = None
        self.seen_activities: set[str] = set()
        self.pinned = LoadRun("pinned", 0.0)
        self.via_alb = LoadRun("alb", 0.0)
        self.recorder = Recorder("miniecs demo: ECS scales tasks, not workload", clock_speed)

    # plumbing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def control_plane(self) -> Iterator[None]:
        with tempfile.TemporaryDirectory(prefix="miniecs-demo-") as tmp:
            settings = Settings(
                state_dir=Path(tmp),
                clock_speed=self.clock_speed,
                server=ServerSettings(port=self.port),
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
                self.console.print(f"[bold]live web console: {endpoint}/[/] (open it in a browser)")
                self.endpoint = endpoint
                self.ecs = self.client("ecs")
                self.scaling = self.client("application-autoscaling")
                self.cloudwatch = self.client("cloudwatch")
                self.elbv2 = self.client("elbv2")
                yield
            finally:
                thread.stop()
                self.cleanup()

    def cleanup(self) -> None:
        label = {"label": f"miniecs.instance={self.instance}"}
        for filters in (label, {"label": f"{DEMO_LABEL}={self.instance}"}):
            for c in self.docker.containers.list(sparse=True, all=True, filters=filters):
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
        return loadgen.task_ip(task) or "?"

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

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )

    def desired(self) -> int:
        service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        return int(service["desiredCount"])

    def clock_now(self) -> float:
        """Control-plane time: CloudWatch timestamps are on the (compressed) clock."""
        assert self.engine is not None and self.engine.clock is not None
        return self.engine.clock.now()

    def service_metric(self, namespace: str, metric: str) -> float | None:
        """The newest complete 60 s datapoint's Average for the service."""
        now = self.clock_now()
        points = self.cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[
                {"Name": "ClusterName", "Value": CLUSTER},
                {"Name": "ServiceName", "Value": SERVICE},
            ],
            StartTime=now - 300,
            EndTime=now - 60,
            Period=60,
            Statistics=["Average"],
        )["Datapoints"]
        if not points:
            return None
        return float(max(points, key=lambda p: p["Timestamp"])["Average"])

    def task_cpu_from_insights(self) -> dict[str, float]:
        """Task id → its newest ECS/ContainerInsights TaskCpuUtilization (GetMetricData)."""
        metrics = self.cloudwatch.list_metrics(
            Namespace="ECS/ContainerInsights",
            MetricName="TaskCpuUtilization",
            Dimensions=[{"Name": "ServiceName", "Value": SERVICE}],
        )["Metrics"]
        metrics = [m for m in metrics if any(d["Name"] == "TaskId" for d in m["Dimensions"])]
        if not metrics:
            return {}
        now = self.clock_now()
        queries = [
            {
                "Id": f"t{i}",
                "MetricStat": {"Metric": m, "Period": 60, "Stat": "Average"},
                "Label": next(d["Value"] for d in m["Dimensions"] if d["Name"] == "TaskId"),
            }
            for i, m in enumerate(metrics)
        ]
        results = self.cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=now - 180, EndTime=now - 60
        )["MetricDataResults"]
        return {r["Label"]: float(r["Values"][0]) for r in results if r["Values"]}

    def healthy_targets(self) -> list[str]:
        if self.target_group is None:
            return []
        health = self.elbv2.describe_target_health(TargetGroupArn=self.target_group)
        return [
            h["Target"]["Id"]
            for h in health["TargetHealthDescriptions"]
            if h["TargetHealth"]["State"] == "healthy"
        ]

    def record_activities(self) -> list[dict[str, Any]]:
        """New scaling activities since the last call, also into the report."""
        found = self.scaling.describe_scaling_activities(
            ServiceNamespace="ecs", ResourceId=RESOURCE_ID
        )["ScalingActivities"]
        new = [a for a in reversed(found) if a["ActivityId"] not in self.seen_activities]
        for activity in new:
            self.seen_activities.add(activity["ActivityId"])
            self.recorder.activity(activity["Description"], activity["Cause"])
        return new

    def watch(self, condition: Callable[[], bool], timeout: float, what: str) -> bool:
        """Poll until `condition` holds, with a live line of the service's state and every
        scaling activity as it happens. False on timeout."""
        deadline = time.monotonic() + timeout
        with self.console.status(f"waiting for {what}") as status:
            while True:
                for activity in self.record_activities():
                    self.console.print(
                        f"  [bold]scaling activity[/]: {activity['Description']} "
                        f"Cause: {activity['Cause']}"
                    )
                if condition():
                    return True
                if time.monotonic() > deadline:
                    return False
                service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])[
                    "services"
                ][0]
                avg = self.service_metric("AWS/ECS", "CPUUtilization")
                status.update(
                    f"waiting for {what}: desired {service['desiredCount']}, running "
                    f"{service['runningCount']}, AWS/ECS CPUUtilization {_pct(avg)}"
                )
                time.sleep(0.5)

    def start_load(self, target: loadgen.Target, name: str, seconds: float) -> LoadRun:
        """Start the bounded load generator (open loop) in a container; `stop()` ends it
        early with its report, as a client that goes away."""
        run = LoadRun(name, self.recorder.now())
        phase = self.recorder.current_phase
        spec = loadgen.LoadSpec(
            duration=seconds, rate=LOAD_RATE, connections=LOAD_CONNECTIONS, work_ms=WORK_MS
        )
        labels = {DEMO_LABEL: self.instance, LOAD_RUN_LABEL: f"{self.instance}-{name}"}

        def main() -> None:
            try:
                run.report = loadgen.run_load(self.docker, target, spec, labels=labels)
                self.recorder.load(run.report, run.report["routing"], run.started, phase)
            except BaseException as exc:
                run.error = exc
            finally:
                run.done.set()

        def stop() -> None:
            for c in self.docker.containers.list(
                sparse=True, filters={"label": f"{LOAD_RUN_LABEL}={labels[LOAD_RUN_LABEL]}"}
            ):
                with contextlib.suppress(docker.errors.APIError):
                    c.kill(signal="SIGTERM")

        run.stop_container = stop
        self.console.print(
            f"load: {LOAD_RATE:g} requests/s of {WORK_MS:g} ms CPU to {target.description} "
            f"({name}, at most {seconds:.0f} s)"
        )
        threading.Thread(target=main, name=f"load-{name}", daemon=True).start()
        return run

    # phases -------------------------------------------------------------------------------
    def phase_model(self) -> None:
        self.console.rule("[bold]1. The model: cluster → service → task → container (O1, O2, O11)")
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.ecs.register_task_definition(**TASK_DEFINITION)
        self.ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition="web",
            desiredCount=1,
            networkConfiguration=NETWORK_CONFIGURATION,
        )
        started = time.monotonic()
        self.wait_stable()
        self.console.print(
            f"CreateService desiredCount=1: stable in {time.monotonic() - started:.1f} s. "
            "The task is a real container with Fargate's limits and a private IP; "
            "nothing is published on the host."
        )
        self.console.print(self.task_table("tasks of service web"))
        self.scaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=RESOURCE_ID,
            ScalableDimension=DIMENSION,
            MinCapacity=1,
            MaxCapacity=MAX_TASKS,
        )
        self.scaling.put_scaling_policy(
            PolicyName=POLICY,
            ServiceNamespace="ecs",
            ResourceId=RESOURCE_ID,
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": TARGET_CPU,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
            },
        )
        alarms = self.cloudwatch.describe_alarms(AlarmNamePrefix="TargetTracking-")["MetricAlarms"]
        self.console.print(
            f"Target tracking on average CPU, target {TARGET_CPU:g} %, 1 to {MAX_TASKS} tasks. "
            "Application Auto Scaling made its two alarms:"
        )
        for alarm in alarms:
            self.console.print(
                f"  {alarm['AlarmName']}: {alarm['MetricName']} {alarm['ComparisonOperator']} "
                f"{alarm['Threshold']:g} for {alarm['EvaluationPeriods']} x {alarm['Period']} s"
            )

    def pinned_target(self, task: dict[str, Any]) -> loadgen.Target:
        return loadgen.Target(
            [f"http://{self.ip_of(task)}:8080/work"],
            network_name(CLUSTER, self.instance),
            "direct",
            description=f"task {_short(task['taskArn'])} at {self.ip_of(task)} (pinned)",
        )

    def cpu_now(self) -> dict[str, float]:
        """Task id → CPU % of its reservation, from the sampler's newest sample."""
        assert self.engine is not None
        return {
            u.task_id: u.cpu_percent
            for u in self.engine.sampler.latest()
            if u.cluster == CLUSTER and u.service == SERVICE
        }

    def cpu_table(self, title: str, values: dict[str, float], source: str) -> Table:
        table = Table(title=title)
        for column in ("task", "private IP", source):
            table.add_column(column, justify="right" if column == source else "left")
        for task in self.tasks():
            task_id = task["taskArn"].rsplit("/", 1)[-1]
            hot = " (the pinned one)" if task_id == self.hot_task else ""
            table.add_row(task_id[:8] + hot, self.ip_of(task), _pct(values.get(task_id)))
        return table

    def phase_pinned(self) -> None:
        self.console.rule("[bold]2. Target tracking adds tasks, not load (O3, O4, O5, O6)")
        (first,) = self.tasks()
        self.hot_task = first["taskArn"].rsplit("/", 1)[-1]
        period = 60 / self.clock_speed
        self.console.print(
            f"A client caches task {_short(first['taskArn'])}'s IP and keeps its connections "
            f"open, as a client without a load balancer does: about "
            f"{LOAD_RATE * WORK_MS / 10 / (TASK_CPU / 1024):.0f} % of the task's 0.25 vCPU. "
            f"One metric period (60 s) lasts {period:.1f} s here."
        )
        self.pinned = self.start_load(
            self.pinned_target(first), "pinned", self.load_seconds or period * 40
        )
        if not self.watch(lambda: self.desired() >= 3, period * 9, "the scale-out"):
            raise DemoError("the service did not scale out within 9 metric periods")
        took = self.recorder.now() - self.pinned.started
        self.console.print(
            f"Scaled out after {took:.0f} s of load ({took / period:.1f} periods; AWS needs 3 "
            "datapoints above target, then the new tasks start). Watching 4 more periods:"
        )
        self.watch(lambda: False, period * 4, "4 periods")
        avg = self.service_metric("AWS/ECS", "CPUUtilization")
        self.console.print(
            self.cpu_table("each task's CPU now (the sampler)", self.cpu_now(), "CPU %")
        )
        self.console.print(
            f"{self.desired()} tasks. The default metric, AWS/ECS CPUUtilization, says {_pct(avg)}"
            f" on average, under the {TARGET_CPU:g} % target, so scaling stopped: "
            "ceil(1 x ~90 / 40) = 3, and 3 tasks averaging ~30 % hold there. A control system "
            "doing its job, with all the work still on one task."
        )
        dims = sorted(
            {
                ",".join(sorted(d["Name"] for d in m["Dimensions"]))
                for m in self.cloudwatch.list_metrics(Namespace="AWS/ECS")["Metrics"]
            }
        )
        self.console.print(f"AWS/ECS has the dimensions {dims}: no task in sight (O6).")

    def phase_insights(self) -> None:
        self.console.rule("[bold]3. Container Insights (enhanced) shows the hot task (O7)")
        self.ecs.update_cluster_settings(
            cluster=CLUSTER, settings=[{"name": "containerInsights", "value": "enhanced"}]
        )
        period = 60 / self.clock_speed
        self.console.print(
            "UpdateClusterSettings containerInsights=enhanced; the load goes on. Waiting "
            "3 periods for the per-task series."
        )
        self.watch(lambda: False, period * 3, "per-task datapoints")
        self.console.print(
            self.cpu_table(
                "ECS/ContainerInsights TaskCpuUtilization (GetMetricData, last period)",
                self.task_cpu_from_insights(),
                "CPU % of its reservation",
            )
        )
        avg = self.service_metric("AWS/ECS", "CPUUtilization")
        self.console.print(
            f"Same moment, same service: average {_pct(avg)}; one task near its limit, the "
            "others idle. Only per-task metrics show why scaling did not help."
        )

    def phase_alb(self) -> None:
        self.console.rule("[bold]4. A load balancer turns added tasks into shared load (O8, O9)")
        lb = self.elbv2.create_load_balancer(Name="web", Type="application")["LoadBalancers"][0]
        tg = self.elbv2.create_target_group(
            Name="web",
            Protocol="HTTP",
            Port=8080,
            TargetType="ip",
            HealthCheckPath="/health",
            HealthCheckIntervalSeconds=5,
            HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=2,
        )["TargetGroups"][0]
        self.target_group = tg["TargetGroupArn"]
        self.elbv2.modify_target_group_attributes(
            TargetGroupArn=self.target_group,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
        )
        port = free_port()
        self.elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.target_group}],
        )
        self.ecs.update_service(
            cluster=CLUSTER,
            service=SERVICE,
            loadBalancers=[
                {"targetGroupArn": self.target_group, "containerName": "app", "containerPort": 8080}
            ],
        )
        count = self.desired()
        if not self.watch(lambda: len(self.healthy_targets()) >= count, 60, "healthy targets"):
            raise DemoError("the targets did not become healthy within 60 s")
        self.console.print(
            f"Load balancer {lb['DNSName']}:{port} (the only thing listening on the host); its "
            "target group is in IP mode. UpdateService with loadBalancers rolled out a new "
            "deployment, as on ECS: new tasks, each registered by its private IP once RUNNING, "
            f"healthy after the checks: {', '.join(sorted(self.healthy_targets()))}; the old "
            "tasks, the pinned one among them, are being replaced."
        )
        try:
            target = loadgen.url_target(f"http://{lb['DNSName']}:{port}/work")
        except loadgen.LoadError as exc:
            raise DemoError(str(exc)) from None
        period = 60 / self.clock_speed
        self.via_alb = self.start_load(target, "alb", period * 20)
        time.sleep(1.0)
        pinned = self.pinned.stop()
        self.console.print(
            "The client now goes through the listener. The pinned run ended with "
            f"{sum(_per_task(pinned).values())} answers, all from one task, and "
            f"{_errors(pinned)} errors once the deployment stopped that task: a cached task "
            "IP breaks when the task goes."
        )
        self.watch(lambda: False, period * 3, "3 periods of load via the load balancer")
        self.console.print(
            self.cpu_table(
                "ECS/ContainerInsights TaskCpuUtilization via the load balancer",
                self.task_cpu_from_insights(),
                "CPU % of its reservation",
            )
        )
        self.console.print(
            "The same work that kept one task near its limit is now spread evenly: "
            "autoscaling added capacity; the load balancer put it to use."
        )

    def phase_replacement(self) -> None:
        self.console.rule("[bold]5. Task IPs are dynamic; the target group follows (O10)")
        before = self.tasks()
        known = {t["taskArn"] for t in before}
        victim = next((t for t in before if t["taskArn"].endswith(self.hot_task)), before[0])
        old_ip = self.ip_of(victim)
        self.docker.containers.get(victim["containers"][0]["runtimeId"]).kill()
        started = time.monotonic()

        def replaced() -> bool:
            current = self.tasks()
            arns = {t["taskArn"] for t in current}
            ips = self.healthy_targets()
            return (
                victim["taskArn"] not in arns
                and len(current) == self.desired()
                and len(ips) == len(current)
                and old_ip not in ips
            )

        if not self.watch(replaced, 90, "a replacement, registered and healthy"):
            raise DemoError("the killed task was not replaced within 90 s")
        new = ", ".join(
            f"{_short(t['taskArn'])} at {self.ip_of(t)}"
            for t in self.tasks()
            if t["taskArn"] not in known
        )
        stopped = self.ecs.describe_tasks(cluster=CLUSTER, tasks=[victim["taskArn"]])["tasks"][0]
        self.console.print(
            f"docker kill of task {_short(victim['taskArn'])} ({old_ip}): "
            f"'{stopped['stoppedReason']}'. ECS started "
            f"{new}, "
            f"registered it and the health checks passed in {time.monotonic() - started:.1f} s."
        )
        self.watch(lambda: False, 60 / self.clock_speed * 2, "2 more periods of load")
        report = self.via_alb.stop()
        statuses = report.get("statuses") or {}
        self.console.print(
            self.task_table("requests per task through the load balancer", _per_task(report))
        )
        self.console.print(
            f"Through the listener, the whole time: {report.get('requests', '?')} requests, "
            f"status codes {statuses}. A client holding {old_ip} would have failed; a client of "
            "the load balancer saw at most the requests in flight on the killed task."
        )

    def phase_zero(self) -> None:
        self.console.rule("[bold]6. Desired count 0 keeps everything but the tasks (O12)")
        arns = [t["taskArn"] for t in self.tasks()]
        self.scaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=RESOURCE_ID,
            ScalableDimension=DIMENSION,
            MinCapacity=0,
            MaxCapacity=MAX_TASKS,
        )
        self.set_desired(0, "UpdateService by the demo: scale to zero (scaling minimum 0)")
        self.ecs.get_waiter("tasks_stopped").wait(
            cluster=CLUSTER, tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 180}
        )
        service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        label = {"label": f"miniecs.instance={self.instance}", "status": "running"}
        tasks_running = [
            c
            for c in self.docker.api.containers(filters=label)
            if (c.get("Labels") or {}).get("miniecs.task")
        ]
        policies = self.scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
        self.console.print(
            f"service {service['serviceName']}: {service['status']}, desired "
            f"{service['desiredCount']}, running {service['runningCount']}; task definition "
            f"{service['taskDefinition'].rsplit('/', 1)[-1]}; scaling policies "
            f"{[p['PolicyName'] for p in policies]}; task containers running: "
            f"{len(tasks_running)}. Nothing runs, nothing is lost."
        )
        self.set_desired(1, "UpdateService by the demo: back from zero")
        started = time.monotonic()
        if not self.watch(lambda: len(self.healthy_targets()) == 1, 60, "one healthy target"):
            raise DemoError("the service did not come back within 60 s")
        self.console.print(
            f"desiredCount=1 again: a task RUNNING and healthy behind the load balancer in "
            f"{time.monotonic() - started:.1f} s."
        )

    def summary(self) -> Table:
        """Per phase: tasks, service average CPU, per-task CPU spread, requests per task."""
        table = Table(title="summary")
        columns = ("phase", "tasks", "service avg CPU", "per-task CPU", "requests per task")
        for column in (*columns, "routing"):
            table.add_column(column, justify="left" if column in ("phase", "routing") else "right")
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
                row.routing or "",
            )
        return table

    def run(self) -> None:
        with self.console.status("building images (offline)"):
            images.build_all(self.docker, console=self.console)
        with self.control_plane():
            phases = [
                ("model", "1 task, target tracking on CPU", ["O1", "O2", "O11"], self.phase_model),
                (
                    "pinned",
                    "pinned client, scaled out",
                    ["O3", "O4", "O5", "O6"],
                    self.phase_pinned,
                ),
                ("insights", "Container Insights on", ["O7"], self.phase_insights),
                ("alb", "via the load balancer", ["O8", "O9"], self.phase_alb),
                ("replaced", "task killed and replaced", ["O10"], self.phase_replacement),
                ("zero", "desired 0, then 1", ["O12"], self.phase_zero),
            ]
            for name, title, observations, run_phase in phases:
                with self.phase(name, title, observations):
                    run_phase()
            self.record_activities()
            service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]
            self.console.rule("[bold]service events, as ECS words them (newest first)")
            for e in service[0]["events"][:10]:
                self.console.print(f"  {e['message']}")
            self.console.rule("[bold]scaling activities, as Application Auto Scaling words them")
            for a in self.recorder.data.activities:
                self.console.print(f"  {a.description} Cause: {a.cause}")
            self.console.print(self.summary())
            self.hold_console()
        if self.report_dir is not None:
            page = self.recorder.render(self.report_dir)
            self.console.print(f"report: {page} (charts and raw data beside it)")

    def hold_console(self) -> None:
        """Keep the control plane, and so the web console, up `console_hold` seconds more."""
        if self.console_hold <= 0:
            return
        self.console.print(
            f"web console stays live at {self.endpoint}/ for {self.console_hold:g} s "
            "(Ctrl-C ends it; everything is removed then)"
        )
        time.sleep(self.console_hold)


def _errors(report: dict[str, Any]) -> int:
    return int(report.get("errors") or 0)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


def free_port() -> int:
    """A port free on the host's loopback, for the demo's listener."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _per_task(report: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in (report.get("tasks") or {}).items()}


def run_demo(
    console: Console,
    clock_speed: float = 12.0,
    load_seconds: float | None = None,
    report_dir: Path | None = None,
    port: int = 0,
    console_hold: float = 0.0,
) -> None:
    """Run the demo; with `report_dir`, write the report (HTML, charts, raw data) there.
    `port`: the endpoint's and web console's port (0: a free one); `console_hold`: seconds the
    console stays live after the last phase."""
    try:
        docker.from_env().ping()
    except Exception as exc:
        raise DemoError(f"no Docker engine answers ({exc}); start Docker and try again") from None
    try:
        Demo(console, clock_speed, load_seconds, report_dir, port, console_hold).run()
    except ClientError as exc:
        raise DemoError(f"the control plane refused a call: {exc}") from None
