"""Prometheus exposition of the live usage view (`GET /metrics` on the endpoint).

A custom collector reads the view at scrape time, so a scrape always sees the sampler's latest
figures and no series outlives its task. Names follow Prometheus conventions (ratios 0..1,
base units) and map one to one to the CloudWatch metrics miniecs publishes:

Prometheus name → CloudWatch metric (ratios are CloudWatch's percent ÷ 100):
- `miniecs_service_cpu_utilization_ratio` → AWS/ECS `CPUUtilization` (ClusterName,
  ServiceName), Average; `miniecs_service_memory_utilization_ratio` → `MemoryUtilization`
- `miniecs_service_desired_tasks`, `_running_tasks`, `_pending_tasks` → ECS/ContainerInsights
  `DesiredTaskCount`, `RunningTaskCount`, `PendingTaskCount`
- `miniecs_task_cpu_utilization_ratio`, `miniecs_task_memory_utilization_ratio` →
  ECS/ContainerInsights `TaskCpuUtilization`, `TaskMemoryUtilization` (TaskId)
- `miniecs_container_cpu_utilization_ratio` → ECS/ContainerInsights `ContainerCpuUtilized` /
  `ContainerCpuReserved` (ContainerName; CloudWatch's `ContainerCpuUtilization` has no
  ContainerName dimension), `miniecs_container_memory_utilization_ratio` →
  `ContainerMemoryUtilization` (ContainerName)

Load balancers (AWS/ApplicationELB), from each data plane's cumulative counters (since its
container started; a restart resets them, which `rate()` and `increase()` handle) and the target
health at the controller's last reading (about once a second):
- `miniecs_alb_requests_total{load_balancer}` → `RequestCount` (LoadBalancer), Sum
- `miniecs_alb_target_requests_total{load_balancer,target_group}` → `RequestCount`
  (LoadBalancer, TargetGroup); `RequestCountPerTarget` (TargetGroup), the metric of
  ALBRequestCountPerTarget target tracking, is
  `increase(miniecs_alb_target_requests_total[1m]) / miniecs_alb_healthy_targets`
- `miniecs_alb_target_responses_total{...,code_class="2xx"|"3xx"|"4xx"|"5xx"}` →
  `HTTPCode_Target_2XX_Count` ... `HTTPCode_Target_5XX_Count`
- `miniecs_alb_elb_5xx_total{load_balancer}` → `HTTPCode_ELB_5XX_Count`
- `miniecs_alb_target_response_time_seconds_sum` / `_count` → `TargetResponseTime`; Average is
  `rate(..._sum[1m]) / rate(..._count[1m])`
- `miniecs_alb_healthy_targets`, `miniecs_alb_unhealthy_targets` → `HealthyHostCount`,
  `UnHealthyHostCount` (LoadBalancer, TargetGroup)

Labels are `cluster`, `service` (empty for tasks not started by a service), `task_id`,
`container`, `load_balancer` and `target_group` (names): no IPs, ARNs or timestamps, so series
are bounded by the number of live tasks and load balancers. A service or task without a sample
has no series, as CloudWatch has no datapoint for it; a load balancer appears once its data
plane has reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from miniecs.metrics.loadbalancing import LoadBalancerCounters
from miniecs.metrics.view import TaskView, UsageView

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The Prometheus text format (0.0.4)."""


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100.0


def _load_balancer_metrics(load_balancers: tuple[LoadBalancerCounters, ...]) -> list[Metric]:
    lb_labels = ["load_balancer"]
    tg_labels = ["load_balancer", "target_group"]
    requests = CounterMetricFamily(
        "miniecs_alb_requests",
        "Requests the load balancer answered (AWS/ApplicationELB RequestCount, LoadBalancer).",
        labels=lb_labels,
    )
    elb_5xx = CounterMetricFamily(
        "miniecs_alb_elb_5xx",
        "5xx responses the load balancer generated itself (HTTPCode_ELB_5XX_Count).",
        labels=lb_labels,
    )
    tg_requests = CounterMetricFamily(
        "miniecs_alb_target_requests",
        "Requests routed to the target group (RequestCount, LoadBalancer and TargetGroup).",
        labels=tg_labels,
    )
    responses = CounterMetricFamily(
        "miniecs_alb_target_responses",
        "Responses from the group's targets by code class (HTTPCode_Target_<class>_Count).",
        labels=[*tg_labels, "code_class"],
    )
    response_time = SummaryMetricFamily(
        "miniecs_alb_target_response_time_seconds",
        "Time from sending a request to a target to receiving its response head "
        "(TargetResponseTime).",
        labels=tg_labels,
    )
    healthy = GaugeMetricFamily(
        "miniecs_alb_healthy_targets",
        "Registered targets in state healthy (HealthyHostCount).",
        labels=tg_labels,
    )
    unhealthy = GaugeMetricFamily(
        "miniecs_alb_unhealthy_targets",
        "Registered targets in state unhealthy (UnHealthyHostCount).",
        labels=tg_labels,
    )
    for lb in load_balancers:
        requests.add_metric([lb.name], lb.requests)
        elb_5xx.add_metric([lb.name], lb.elb_5xx)
        for tg in lb.target_groups:
            labels = [lb.name, tg.name]
            tg_requests.add_metric(labels, tg.requests)
            for code_class, count in tg.responses:
                responses.add_metric([*labels, code_class], count)
            response_time.add_metric(labels, tg.response_time_count, tg.response_time_sum)
            healthy.add_metric(labels, tg.healthy)
            unhealthy.add_metric(labels, tg.unhealthy)
    return [requests, elb_5xx, tg_requests, responses, response_time, healthy, unhealthy]


class UsageCollector:
    """A prometheus_client collector over `view()`, read at every scrape."""

    def __init__(self, view: Callable[[], UsageView]) -> None:
        self.view = view

    def describe(self) -> list[Metric]:
        """Nothing to describe up front: the series depend on what runs at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        service_labels = ["cluster", "service"]
        task_labels = [*service_labels, "task_id"]
        container_labels = [*task_labels, "container"]

        def gauge(name: str, doc: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels, unit=unit)

        svc_cpu = gauge(
            "miniecs_service_cpu_utilization_ratio",
            "CPU used by the service's running tasks over their reserved CPU (AWS/ECS "
            "CPUUtilization / 100).",
            service_labels,
        )
        svc_mem = gauge(
            "miniecs_service_memory_utilization_ratio",
            "Memory used by the service's running tasks over their reserved memory (AWS/ECS "
            "MemoryUtilization / 100).",
            service_labels,
        )
        desired = gauge(
            "miniecs_service_desired_tasks", "The service's desired count.", service_labels
        )
        running = gauge(
            "miniecs_service_running_tasks", "The service's RUNNING tasks.", service_labels
        )
        pending = gauge(
            "miniecs_service_pending_tasks", "The service's tasks not yet RUNNING.", service_labels
        )
        task_cpu = gauge(
            "miniecs_task_cpu_utilization_ratio",
            "CPU used by the task over its task-level CPU (TaskCpuUtilization / 100).",
            task_labels,
        )
        task_mem = gauge(
            "miniecs_task_memory_utilization_ratio",
            "Memory used by the task over its task-level memory (TaskMemoryUtilization / 100).",
            task_labels,
        )
        ctr_cpu = gauge(
            "miniecs_container_cpu_utilization_ratio",
            "CPU used by the container over its CPU share "
            "(ContainerCpuUtilized / ContainerCpuReserved).",
            container_labels,
        )
        ctr_mem = gauge(
            "miniecs_container_memory_utilization_ratio",
            "Memory used by the container over its memory (ContainerMemoryUtilization / 100).",
            container_labels,
        )

        def add_task(cluster: str, service: str, task: TaskView) -> None:
            labels = [cluster, service, task.task_id]
            for family, value in (
                (task_cpu, _ratio(task.cpu_percent)),
                (task_mem, _ratio(task.memory_percent)),
            ):
                if value is not None:
                    family.add_metric(labels, value)
            for container in task.containers:
                usage = container.usage
                if usage is None:
                    continue
                ctr_cpu.add_metric([*labels, container.name], usage.cpu_percent / 100.0)
                ctr_mem.add_metric([*labels, container.name], usage.memory_percent / 100.0)

        view = self.view()
        for cluster in view.clusters:
            for service in cluster.services:
                labels = [cluster.name, service.name]
                desired.add_metric(labels, service.desired)
                running.add_metric(labels, service.running)
                pending.add_metric(labels, service.pending)
                for family, value in (
                    (svc_cpu, _ratio(service.cpu_percent)),
                    (svc_mem, _ratio(service.memory_percent)),
                ):
                    if value is not None:
                        family.add_metric(labels, value)
                for task in service.tasks:
                    add_task(cluster.name, service.name, task)
            for task in cluster.standalone_tasks:
                add_task(cluster.name, "", task)
        yield from (
            svc_cpu, svc_mem, desired, running, pending, task_cpu, task_mem, ctr_cpu, ctr_mem,
        )  # fmt: skip
        if view.load_balancers:
            yield from _load_balancer_metrics(view.load_balancers)


def exposition(view: Callable[[], UsageView]) -> bytes:
    """The Prometheus text exposition of `view()`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(view))
    return generate_latest(registry)
