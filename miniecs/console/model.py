"""The console's view of everything, built each tick from the AWS operations the endpoint
serves (DescribeServices, DescribeTasks, DescribeTargetHealth, GetMetricData, ...), joined with
the sampler's usage, the load balancers' counters and the autoscaler's `why`; and the few
actions a demo needs, which call the same operations (UpdateService, StopTask,
UpdateClusterSettings) so they behave, and show up, as API calls do.

The numbers a page shows are the API's own: a test compares them with boto3's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from miniecs.aws.protocols import JsonService
from miniecs.aws.query import QueryService
from miniecs.clock import Clock
from miniecs.console.calls import AwsCalls
from miniecs.console.history import History, Point, point
from miniecs.errors import AwsError, InvalidParameterException
from miniecs.metrics.loadbalancing import LoadBalancerCounters
from miniecs.metrics.view import TaskView, UsageView
from miniecs.why import render as why_lines

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300.0
"""Real seconds of history the charts show."""
MIN_GAP = 0.2
"""Real seconds at least between two updates of the stream."""
EVENTS_SHOWN = 10
ACTIVITIES_SHOWN = 12


class TaskLogs(Protocol):
    """The seam for CloudWatch Logs (built elsewhere): a task's newest log lines."""

    def tail(self, cluster: str, task_id: str, limit: int) -> list[dict[str, Any]]:
        """Newest `limit` events of the task's log streams, oldest first, each with
        `timestamp` (epoch ms), `message` and `logStreamName`, as GetLogEvents gives them."""
        ...


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _ip(task: dict[str, Any]) -> str | None:
    for attachment in task.get("attachments") or []:
        for d in attachment.get("details") or []:
            if d.get("name") == "privateIPv4Address":
                return str(d.get("value"))
    return None


def _condition(c: dict[str, Any]) -> str:
    field = c.get("Field", "")
    values = c.get("Values") or []
    for key in ("PathPatternConfig", "HostHeaderConfig", "HttpRequestMethodConfig"):
        values = values or (c.get(key) or {}).get("Values") or []
    return f"{field} {' | '.join(values)}".strip()


def _action(a: dict[str, Any]) -> str:
    kind = a.get("Type", "")
    if kind == "forward":
        groups = (a.get("ForwardConfig") or {}).get("TargetGroups") or []
        arns = [g["TargetGroupArn"] for g in groups] or [a.get("TargetGroupArn", "")]
        return "forward to " + ", ".join(arn.rsplit("/", 2)[-2] for arn in arns if arn)
    if kind == "fixed-response":
        cfg = a.get("FixedResponseConfig") or {}
        return f"fixed-response {cfg.get('StatusCode', '')}"
    if kind == "redirect":
        return "redirect"
    return str(kind)


class Console:
    """The console's state: history, subscribers, the per-server action token."""

    def __init__(
        self,
        services: Iterable[JsonService | QueryService],
        clock: Clock,
        usage: Callable[[], UsageView],
        scaling_history: Callable[[str], list[dict[str, Any]] | None],
        target_requests: Callable[[], dict[str, dict[str, int]]] = dict,
        logs: TaskLogs | None = None,
        interval: float = 1.0,
        on_change: Callable[[Callable[[str], None]], None] | None = None,
    ) -> None:
        """`on_change`: subscribes a listener to the ECS store's writes; a write wakes the
        stream early (at most every `MIN_GAP` s), so a change reaches open pages at once."""
        self.calls = AwsCalls(services)
        self.clock = clock
        self.usage = usage
        self.scaling_history = scaling_history
        self.target_requests = target_requests
        self.logs = logs
        """CloudWatch Logs, when the server has it (None: the page says logs are not here)."""
        self.interval = interval
        self.token = secrets.token_urlsafe(32)
        """Required (header X-Miniecs-Console-Token) by every action; delivered in the page."""
        self.history = History(int(WINDOW_SECONDS / interval) + 1)
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self.last_view: dict[str, Any] | None = None
        self._closed = False
        self._on_change = on_change

    # the stream ---------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[str | None]:
        """A queue of view messages; None in it means the server is stopping."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=4)
        if self._closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return queue

    def close(self) -> None:
        """End every stream, so the server's graceful shutdown does not wait on open pages."""
        self._closed = True
        self._publish(None)
        self._subscribers.clear()

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _publish(self, message: str | None) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a slow reader skips a tick rather than growing the queue
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def tick(self) -> None:
        """Record a history point; with readers, build the view and send it to them."""
        usage = self.usage()
        p = point(usage)
        self.history.add(p)
        await self._send(usage, p)

    async def _send(self, usage: UsageView, p: Point | None = None) -> None:
        """Build the view and send it to every open page (with the history point `p`)."""
        if not self._subscribers:
            return
        view = await self.view(usage)
        if p is not None:
            view["point"] = p.to_json()
        self._publish(json.dumps(view, separators=(",", ":")))

    async def run(self) -> None:
        """Tick every `interval` s (a fixed rate, whatever a tick costs); between ticks, a
        write to the store sends open pages an update at once (no history point)."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def changed(_kind: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to wake
                loop.call_soon_threadsafe(wake.set)

        if self._on_change is not None:
            self._on_change(changed)
        due = loop.time()
        while True:
            if loop.time() >= due:
                wake.clear()
                try:
                    await self.tick()
                except Exception:
                    log.exception("console tick failed")
                due = max(due + self.interval, loop.time())
                await asyncio.sleep(MIN_GAP)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), due - loop.time())
            if wake.is_set():
                wake.clear()
                if self._subscribers and loop.time() < due:
                    try:
                        await self._send(self.usage())
                    except Exception:
                        log.exception("console update failed")
                    await asyncio.sleep(MIN_GAP)

    # the view ------------------------------------------------------------------------------
    async def view(self, usage: UsageView | None = None) -> dict[str, Any]:
        usage = usage or self.usage()
        now = usage.now
        window = WINDOW_SECONDS * self.clock.speed
        by_task: dict[str, TaskView] = {}
        for c in usage.clusters:
            for s in c.services:
                by_task.update((t.task_id, t) for t in s.tasks)
            by_task.update((t.task_id, t) for t in c.standalone_tasks)
        requests_by_ip: dict[str, int] = {}
        for per_target in self.target_requests().values():
            for key, n in per_target.items():
                ip = key.rsplit(":", 1)[0]
                requests_by_ip[ip] = requests_by_ip.get(ip, 0) + n
        clusters = await self._clusters(now, window, by_task, requests_by_ip)
        lbs, groups = await self._load_balancers(usage.load_balancers)
        view = {
            "now": now,
            "speed": self.clock.speed,
            "window": window,
            "interval": self.interval,
            "clusters": clusters,
            "loadBalancers": lbs,
            "targetGroups": groups,
            "logs": {"available": self.logs is not None},
        }
        self.last_view = view
        return view

    async def _clusters(
        self,
        now: float,
        window: float,
        by_task: dict[str, TaskView],
        requests_by_ip: dict[str, int],
    ) -> list[dict[str, Any]]:
        arns = (await self.calls("ecs", "ListClusters"))["clusterArns"]
        if not arns:
            return []
        described = await self.calls(
            "ecs", "DescribeClusters", clusters=arns, include=["SETTINGS", "STATISTICS"]
        )
        out = []
        for cluster in sorted(described["clusters"], key=lambda c: c["clusterName"]):
            if cluster["status"] != "ACTIVE":
                continue
            name = cluster["clusterName"]
            settings = {s["name"]: s["value"] for s in cluster.get("settings") or []}
            service_arns = (await self.calls("ecs", "ListServices", cluster=name))["serviceArns"]
            services = []
            for i in range(0, len(service_arns), 10):
                got = await self.calls(
                    "ecs", "DescribeServices", cluster=name, services=service_arns[i : i + 10]
                )
                services += got["services"]
            service_views = []
            for service in sorted(services, key=lambda s: s["serviceName"]):
                service_views.append(
                    await self._service(name, service, now, window, by_task, requests_by_ip)
                )
            standalone = await self._tasks(name, None, by_task, requests_by_ip)
            out.append(
                {
                    "clusterName": name,
                    "clusterArn": cluster["clusterArn"],
                    "containerInsights": settings.get("containerInsights", "disabled"),
                    "runningTasksCount": cluster.get("runningTasksCount", 0),
                    "pendingTasksCount": cluster.get("pendingTasksCount", 0),
                    "activeServicesCount": cluster.get("activeServicesCount", 0),
                    "services": service_views,
                    "tasks": standalone,
                }
            )
        return out

    async def _tasks(
        self,
        cluster: str,
        service: str | None,
        by_task: dict[str, TaskView],
        requests_by_ip: dict[str, int],
    ) -> list[dict[str, Any]]:
        req: dict[str, Any] = {"cluster": cluster, "maxResults": 100}
        if service is not None:
            req["serviceName"] = service
        arns: list[str] = []
        while True:
            page = await self.calls("ecs", "ListTasks", **req)
            arns += page["taskArns"]
            if not page.get("nextToken"):
                break
            req["nextToken"] = page["nextToken"]
        described: list[dict[str, Any]] = []
        for i in range(0, len(arns), 100):
            got = await self.calls("ecs", "DescribeTasks", cluster=cluster, tasks=arns[i : i + 100])
            described += got["tasks"]
        out = []
        for task in sorted(described, key=lambda t: t.get("createdAt") or 0):
            if service is None and str(task.get("group", "")).startswith("service:"):
                continue
            task_id = _short(task["taskArn"])
            usage = by_task.get(task_id)
            u = usage.usage if usage else None
            ip = _ip(task)
            out.append(
                {
                    "taskId": task_id,
                    "taskArn": task["taskArn"],
                    "taskDefinition": _short(task["taskDefinitionArn"]),
                    "lastStatus": task["lastStatus"],
                    "desiredStatus": task["desiredStatus"],
                    "healthStatus": task.get("healthStatus", "UNKNOWN"),
                    "privateIp": ip,
                    "cpu": task.get("cpu"),
                    "memory": task.get("memory"),
                    "cpuUtilized": None if u is None else round(u.cpu_units, 1),
                    "cpuUtilization": None if u is None else round(u.cpu_percent, 1),
                    "memoryUtilized": None if u is None else round(u.memory_mib, 1),
                    "memoryUtilization": None if u is None else round(u.memory_percent, 1),
                    "requests": requests_by_ip.get(ip) if ip else None,
                    "startedAt": task.get("startedAt"),
                    "stoppedReason": task.get("stoppedReason"),
                }
            )
        return out

    async def _service(
        self,
        cluster: str,
        service: dict[str, Any],
        now: float,
        window: float,
        by_task: dict[str, TaskView],
        requests_by_ip: dict[str, int],
    ) -> dict[str, Any]:
        name = service["serviceName"]
        return {
            "serviceName": name,
            "serviceArn": service["serviceArn"],
            "status": service["status"],
            "desiredCount": service["desiredCount"],
            "runningCount": service["runningCount"],
            "pendingCount": service["pendingCount"],
            "taskDefinition": _short(service.get("taskDefinition", "")),
            "deployments": [
                {
                    "id": d["id"],
                    "status": d["status"],
                    "taskDefinition": _short(d.get("taskDefinition", "")),
                    "desiredCount": d.get("desiredCount", 0),
                    "runningCount": d.get("runningCount", 0),
                    "pendingCount": d.get("pendingCount", 0),
                    "rolloutState": d.get("rolloutState"),
                    "rolloutStateReason": d.get("rolloutStateReason"),
                    "updatedAt": d.get("updatedAt"),
                }
                for d in service.get("deployments") or []
            ],
            "events": [
                {"createdAt": e["createdAt"], "message": e["message"]}
                for e in (service.get("events") or [])[:EVENTS_SHOWN]
            ],
            "loadBalancers": service.get("loadBalancers") or [],
            "tasks": await self._tasks(cluster, name, by_task, requests_by_ip),
            "cpuAverage": await self._service_cpu(cluster, name, now, window),
            "scaling": await self._scaling(f"service/{cluster}/{name}"),
        }

    async def _service_cpu(
        self, cluster: str, service: str, now: float, window: float
    ) -> list[list[float]]:
        """AWS/ECS CPUUtilization, Average per 60 s, over the window: [[timestamp, value]]."""
        if not self.calls.has("cloudwatch"):
            return []
        got = await self.calls(
            "cloudwatch",
            "GetMetricData",
            MetricDataQueries=[
                {
                    "Id": "cpu",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ECS",
                            "MetricName": "CPUUtilization",
                            "Dimensions": [
                                {"Name": "ClusterName", "Value": cluster},
                                {"Name": "ServiceName", "Value": service},
                            ],
                        },
                        "Period": 60,
                        "Stat": "Average",
                    },
                }
            ],
            StartTime=now - window - 60,
            EndTime=now,
            ScanBy="TimestampAscending",
        )
        result = got["MetricDataResults"][0]
        return [
            [float(t), round(float(v), 2)]
            for t, v in zip(result["Timestamps"], result["Values"], strict=True)
        ]

    async def _scaling(self, resource_id: str) -> dict[str, Any] | None:
        if not self.calls.has("application-autoscaling"):
            return None
        targets = await self.calls(
            "application-autoscaling",
            "DescribeScalableTargets",
            ServiceNamespace="ecs",
            ResourceIds=[resource_id],
        )
        if not targets["ScalableTargets"]:
            return None
        target = targets["ScalableTargets"][0]
        policies = (
            await self.calls(
                "application-autoscaling",
                "DescribeScalingPolicies",
                ServiceNamespace="ecs",
                ResourceId=resource_id,
            )
        )["ScalingPolicies"]
        activities = (
            await self.calls(
                "application-autoscaling",
                "DescribeScalingActivities",
                ServiceNamespace="ecs",
                ResourceId=resource_id,
                MaxResults=ACTIVITIES_SHOWN,
            )
        )["ScalingActivities"]
        history = self.scaling_history(resource_id) or []
        latest_points: dict[str, list[dict[str, Any]]] = {}
        for entry in history:
            for p in entry.get("policies") or []:
                for a in p.get("alarms") or []:
                    latest_points[a["name"]] = a.get("datapoints") or []
        names = [a["AlarmName"] for p in policies for a in p.get("Alarms") or []]
        alarms: dict[str, dict[str, Any]] = {}
        if names and self.calls.has("cloudwatch"):
            found = await self.calls("cloudwatch", "DescribeAlarms", AlarmNames=names[:100])
            alarms = {a["AlarmName"]: a for a in found["MetricAlarms"]}
        policy_views = []
        for p in policies:
            config = p.get("TargetTrackingScalingPolicyConfiguration") or {}
            metric = (config.get("PredefinedMetricSpecification") or {}).get(
                "PredefinedMetricType"
            ) or (config.get("CustomizedMetricSpecification") or {}).get("MetricName")
            alarm_views = []
            for ref in p.get("Alarms") or []:
                a = alarms.get(ref["AlarmName"], {})
                alarm_views.append(
                    {
                        "name": ref["AlarmName"],
                        "state": a.get("StateValue"),
                        "stateReason": a.get("StateReason"),
                        "threshold": a.get("Threshold"),
                        "comparison": a.get("ComparisonOperator"),
                        "metric": f"{a.get('Namespace', '')}/{a.get('MetricName', '')}",
                        "evaluationPeriods": a.get("EvaluationPeriods"),
                        "datapoints": [
                            [d["timestamp"], round(float(d["value"]), 2), bool(d["breaching"])]
                            for d in latest_points.get(ref["AlarmName"], [])
                            if d.get("value") is not None
                        ],
                    }
                )
            policy_views.append(
                {
                    "policyName": p["PolicyName"],
                    "policyType": p["PolicyType"],
                    "targetValue": config.get("TargetValue"),
                    "metric": metric,
                    "alarms": alarm_views,
                }
            )
        return {
            "resourceId": resource_id,
            "minCapacity": target["MinCapacity"],
            "maxCapacity": target["MaxCapacity"],
            "suspendedState": target.get("SuspendedState") or {},
            "policies": policy_views,
            "activities": [
                {
                    "startTime": a["StartTime"],
                    "endTime": a.get("EndTime"),
                    "statusCode": a["StatusCode"],
                    "description": a["Description"],
                    "cause": a["Cause"],
                }
                for a in activities
            ],
            "why": why_lines(history, limit=3) if history else [],
        }

    async def _load_balancers(
        self, counters: Iterable[LoadBalancerCounters]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not self.calls.has("elbv2"):
            return [], []
        by_lb = {c.name: c for c in counters}
        by_tg = {g.name: g for c in by_lb.values() for g in c.target_groups}
        per_target = self.target_requests()
        lbs = []
        for lb in (await self.calls("elbv2", "DescribeLoadBalancers"))["LoadBalancers"]:
            listeners = []
            found = await self.calls(
                "elbv2", "DescribeListeners", LoadBalancerArn=lb["LoadBalancerArn"]
            )
            for listener in found["Listeners"]:
                rules = (
                    await self.calls("elbv2", "DescribeRules", ListenerArn=listener["ListenerArn"])
                )["Rules"]
                listeners.append(
                    {
                        "port": listener["Port"],
                        "protocol": listener["Protocol"],
                        "rules": [
                            {
                                "priority": r["Priority"],
                                "conditions": [_condition(c) for c in r.get("Conditions") or []],
                                "actions": [_action(a) for a in r.get("Actions") or []],
                            }
                            for r in rules
                        ],
                    }
                )
            c = by_lb.get(lb["LoadBalancerName"])
            lbs.append(
                {
                    "name": lb["LoadBalancerName"],
                    "arn": lb["LoadBalancerArn"],
                    "dnsName": lb.get("DNSName"),
                    "state": (lb.get("State") or {}).get("Code"),
                    "stateReason": (lb.get("State") or {}).get("Reason"),
                    "requests": None if c is None else c.requests,
                    "elb5xx": None if c is None else c.elb_5xx,
                    "listeners": listeners,
                }
            )
        groups = []
        for tg in (await self.calls("elbv2", "DescribeTargetGroups"))["TargetGroups"]:
            health = (
                await self.calls(
                    "elbv2", "DescribeTargetHealth", TargetGroupArn=tg["TargetGroupArn"]
                )
            )["TargetHealthDescriptions"]
            counted = per_target.get(tg["TargetGroupArn"], {})
            g = by_tg.get(tg["TargetGroupName"])
            codes = dict(g.responses) if g else {}
            groups.append(
                {
                    "name": tg["TargetGroupName"],
                    "arn": tg["TargetGroupArn"],
                    "protocol": tg.get("Protocol"),
                    "port": tg.get("Port"),
                    "targetType": tg.get("TargetType"),
                    "healthCheckPath": tg.get("HealthCheckPath"),
                    "loadBalancers": [a.rsplit("/", 2)[-2] for a in tg.get("LoadBalancerArns", [])],
                    "requests": None if g is None else g.requests,
                    "target5xx": codes.get("5xx"),
                    "target2xx": codes.get("2xx"),
                    "responseTimeMs": (
                        round(1000 * g.response_time_sum / g.response_time_count, 1)
                        if g and g.response_time_count
                        else None
                    ),
                    "targets": [
                        {
                            "id": h["Target"]["Id"],
                            "port": h["Target"].get("Port"),
                            "state": h["TargetHealth"]["State"],
                            "reason": h["TargetHealth"].get("Reason"),
                            "description": h["TargetHealth"].get("Description"),
                            "requests": counted.get(
                                f"{h['Target']['Id']}:{h['Target'].get('Port')}"
                            ),
                        }
                        for h in health
                    ],
                }
            )
        return lbs, groups

    # logs -----------------------------------------------------------------------------------
    def task_logs(self, cluster: str, task_id: str, limit: int = 100) -> list[dict[str, Any]]:
        if self.logs is None:
            raise AwsError("CloudWatch Logs is not served by this server.", code="NotAvailable")
        return self.logs.tail(cluster, task_id, limit)

    # actions --------------------------------------------------------------------------------
    async def act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one of the console's actions through its AWS operation; AwsError on bad input
        (nothing changes then). Returns the operation's response."""
        run = ACTIONS.get(action)
        if run is None:
            raise InvalidParameterException(f"Unknown console action {action!r}.")
        return await run(self, body)


async def _set_desired(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    return await console.calls(
        "ecs",
        "UpdateService",
        cluster=body.get("cluster"),
        service=body.get("service"),
        desiredCount=body.get("desiredCount"),
    )


async def _stop_task(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    return await console.calls(
        "ecs",
        "StopTask",
        cluster=body.get("cluster"),
        task=body.get("task"),
        reason="Stopped from the miniecs console",
    )


async def _force_new_deployment(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    return await console.calls(
        "ecs",
        "UpdateService",
        cluster=body.get("cluster"),
        service=body.get("service"),
        forceNewDeployment=True,
    )


async def _container_insights(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    return await console.calls(
        "ecs",
        "UpdateClusterSettings",
        cluster=body.get("cluster"),
        settings=[{"name": "containerInsights", "value": body.get("value")}],
    )


ACTIONS: dict[str, Callable[[Console, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "set-desired-count": _set_desired,
    "stop-task": _stop_task,
    "force-new-deployment": _force_new_deployment,
    "container-insights": _container_insights,
}
"""Action name (the path under /console/actions/) → the AWS operation it calls."""
