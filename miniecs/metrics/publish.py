"""What ECS publishes to CloudWatch, from the sampler's task usage: aggregation (pure) and a
small writer into the engine's `MetricStore`.

Every publish period (20 s of control-plane time, ECS's high resolution) the samples of each
RUNNING task are averaged, and:
- AWS/ECS, always: `CPUUtilization` and `MemoryUtilization` (Percent) per ClusterName,ServiceName
  and per ClusterName, by AWS's formula Σ used / Σ reserved * 100. The datapoint is a statistic
  set over the tasks: Average is that ratio, Minimum/Maximum the least/most loaded task,
  SampleCount the number of tasks. A service without a RUNNING task gets no datapoint.
- ECS/ContainerInsights, when the cluster's `containerInsights` setting is `enabled` or
  `enhanced`: task usage (CpuUtilized, MemoryUtilized, ...) as statistic sets over the tasks
  per ClusterName,ServiceName / ClusterName,TaskDefinitionFamily / ClusterName, the service
  counts (RunningTaskCount, ...) and the cluster counts (ServiceCount, TaskCount). `enhanced`
  adds TaskCpuUtilization and TaskMemoryUtilization, every task metric per task (the two sets
  above plus TaskId), and the container metrics, with the dimension sets of AWS's table
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-enhanced-observability-metrics-ECS.html):
  most carry ContainerName (per service or family, and per task), three do not (see
  `WITHOUT_CONTAINER_NAME`), and all have a ClusterName series.
Points are stored with resolution 1, so both 20 s and 60 s periods can be queried.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from miniecs.metrics.store import Dimensions, MetricId, MetricStore, Stats, dimensions
from miniecs.metrics.usage import ContainerUsage, TaskUsage
from miniecs.model import TaskStatus
from miniecs.store import Store

AWS_ECS = "AWS/ECS"
CONTAINER_INSIGHTS = "ECS/ContainerInsights"
PERIOD = 20.0
"""ECS's high-resolution period; 60 s queries merge three."""
PRUNE_EVERY = 3600.0
"""Control-plane seconds between two prunes of expired buckets."""
WRITER = "ecs-publisher"
"""The publisher's name for `MetricStore.put_period`: each period is written once."""

Point = tuple[MetricId, float, float | Stats, str, int]
"""A `MetricStore.put_many` row: metric, timestamp, statistic set, unit, resolution."""
WITHOUT_CONTAINER_NAME = frozenset(
    {"ContainerCpuUtilization", "ContainerNetworkRxBytes", "ContainerNetworkTxBytes"}
)
"""Container metrics AWS documents without a ContainerName dimension: statistic sets over the
containers of a task (ClusterName,ServiceName|TaskDefinitionFamily,TaskId), of a service or
family, or of the cluster."""


@dataclass(frozen=True, slots=True)
class ServiceCounts:
    cluster: str
    service: str
    running: int
    pending: int
    desired: int
    deployments: int


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the aggregation needs to know of one cluster besides its tasks' usage."""

    name: str
    insights: str
    """The `containerInsights` setting: disabled, enabled or enhanced."""
    services: tuple[ServiceCounts, ...] = ()
    active_services: int = 0


def mean_usage(samples: Sequence[TaskUsage]) -> TaskUsage:
    """One task's samples of a period as one: CPU, memory and network rates averaged, storage
    bytes summed; reservations and identity from the latest sample."""
    last = samples[-1]
    by_name: dict[str, list[ContainerUsage]] = defaultdict(list)
    for sample in samples:
        for c in sample.containers:
            by_name[c.container_name].append(c)
    containers = []
    for c in last.containers:
        seen = by_name[c.container_name]
        n = len(seen)
        containers.append(
            ContainerUsage(
                container_name=c.container_name,
                cpu_units=sum(x.cpu_units for x in seen) / n,
                cpu_reserved=c.cpu_reserved,
                memory_mib=sum(x.memory_mib for x in seen) / n,
                memory_reserved_mib=c.memory_reserved_mib,
                rx_bytes=sum(x.rx_bytes for x in seen) / n,
                tx_bytes=sum(x.tx_bytes for x in seen) / n,
                read_bytes=sum(x.read_bytes for x in seen),
                write_bytes=sum(x.write_bytes for x in seen),
            )
        )
    return TaskUsage(
        task_id=last.task_id,
        cluster=last.cluster,
        group=last.group,
        task_definition_family=last.task_definition_family,
        cpu_reserved=last.cpu_reserved,
        memory_reserved_mib=last.memory_reserved_mib,
        containers=tuple(containers),
        timestamp=last.timestamp,
    )


def over(values: Iterable[float]) -> Stats | None:
    """A statistic set with one sample per value (one per task), as CloudWatch builds a
    metric from one performance event per task."""
    items = list(values)
    if not items:
        return None
    return Stats(float(len(items)), sum(items), min(items), max(items))


def utilization(
    tasks: Sequence[TaskUsage],
    used: Callable[[TaskUsage], float],
    reserved: Callable[[TaskUsage], float],
) -> Stats | None:
    """AWS/ECS's utilization: Average = Σ used / Σ reserved * 100, Minimum/Maximum the least
    and most loaded task, SampleCount the tasks; None without a task or a reservation."""
    total = sum(reserved(t) for t in tasks)
    if not tasks or total <= 0:
        return None
    each = [100.0 * used(t) / reserved(t) if reserved(t) else 0.0 for t in tasks]
    average = 100.0 * sum(used(t) for t in tasks) / total
    return Stats(float(len(tasks)), average * len(tasks), min(each), max(each))


def _task_values(t: TaskUsage) -> list[tuple[str, float, str]]:
    return [
        ("CpuUtilized", t.cpu_units, "None"),
        ("CpuReserved", t.cpu_reserved, "None"),
        ("MemoryUtilized", t.memory_mib, "Megabytes"),
        ("MemoryReserved", t.memory_reserved_mib, "Megabytes"),
        ("NetworkRxBytes", sum(c.rx_bytes for c in t.containers), "Bytes/Second"),
        ("NetworkTxBytes", sum(c.tx_bytes for c in t.containers), "Bytes/Second"),
        ("StorageReadBytes", sum(c.read_bytes for c in t.containers), "Bytes"),
        ("StorageWriteBytes", sum(c.write_bytes for c in t.containers), "Bytes"),
    ]


def _enhanced_task_values(t: TaskUsage) -> list[tuple[str, float, str]]:
    return [
        ("TaskCpuUtilization", min(t.cpu_percent, 100.0), "Percent"),
        ("TaskMemoryUtilization", t.memory_percent, "Percent"),
    ]


def _container_values(c: ContainerUsage) -> list[tuple[str, float, str]]:
    return [
        ("ContainerCpuUtilized", c.cpu_units, "None"),
        ("ContainerCpuReserved", c.cpu_reserved, "None"),
        ("ContainerCpuUtilization", c.cpu_percent, "Percent"),
        ("ContainerMemoryUtilized", c.memory_mib, "Megabytes"),
        ("ContainerMemoryReserved", c.memory_reserved_mib, "Megabytes"),
        ("ContainerMemoryUtilization", c.memory_percent, "Percent"),
        ("ContainerNetworkRxBytes", c.rx_bytes, "Bytes/Second"),
        ("ContainerNetworkTxBytes", c.tx_bytes, "Bytes/Second"),
        ("ContainerStorageReadBytes", c.read_bytes, "Bytes"),
        ("ContainerStorageWriteBytes", c.write_bytes, "Bytes"),
    ]


def _groups(tasks: Sequence[TaskUsage]) -> dict[tuple[tuple[str, str], ...], list[TaskUsage]]:
    """Tasks by each Container Insights dimension set they belong to."""
    out: dict[tuple[tuple[str, str], ...], list[TaskUsage]] = defaultdict(list)
    for t in tasks:
        out[dimensions({"ClusterName": t.cluster})].append(t)
        out[
            dimensions({"ClusterName": t.cluster, "TaskDefinitionFamily": t.task_definition_family})
        ].append(t)
        if t.service is not None:
            out[dimensions({"ClusterName": t.cluster, "ServiceName": t.service})].append(t)
    return out


def _task_dims(t: TaskUsage) -> list[dict[str, str]]:
    dims = [
        {
            "ClusterName": t.cluster,
            "TaskDefinitionFamily": t.task_definition_family,
            "TaskId": t.task_id,
        }
    ]
    if t.service is not None:
        dims.append({"ClusterName": t.cluster, "ServiceName": t.service, "TaskId": t.task_id})
    return dims


def _container_dims(t: TaskUsage, c: ContainerUsage, named: bool) -> list[Dimensions]:
    """The dimension sets one container's sample counts in: ClusterName, and per service or
    family and per task, with ContainerName when `named`."""
    owners = [{"ClusterName": t.cluster, "TaskDefinitionFamily": t.task_definition_family}]
    if t.service is not None:
        owners.append({"ClusterName": t.cluster, "ServiceName": t.service})
    scopes = owners + [{**o, "TaskId": t.task_id} for o in owners]
    if named:
        scopes = [{**s, "ContainerName": c.container_name} for s in scopes]
    return [dimensions(d) for d in [{"ClusterName": t.cluster}, *scopes]]


def aws_ecs_points(tasks: Sequence[TaskUsage], timestamp: float) -> list[Point]:
    """CPUUtilization and MemoryUtilization per service and per cluster."""
    by_dims: dict[tuple[tuple[str, str], ...], list[TaskUsage]] = defaultdict(list)
    for t in tasks:
        by_dims[dimensions({"ClusterName": t.cluster})].append(t)
        if t.service is not None:
            by_dims[dimensions({"ClusterName": t.cluster, "ServiceName": t.service})].append(t)
    points: list[Point] = []
    for dims, members in sorted(by_dims.items()):
        for name, used, reserved in (
            ("CPUUtilization", _cpu_used, _cpu_reserved),
            ("MemoryUtilization", _memory_used, _memory_reserved),
        ):
            stats = utilization(members, used, reserved)
            if stats is not None:
                points.append((MetricId(AWS_ECS, name, dims), timestamp, stats, "Percent", 1))
    return points


def _cpu_used(t: TaskUsage) -> float:
    """With task-level CPU (Fargate) a task cannot use more than its reservation; a reading a
    hair above it is sampling jitter, capped as AWS caps it."""
    return min(t.cpu_units, t.cpu_reserved) if t.cpu_reserved else t.cpu_units


def _cpu_reserved(t: TaskUsage) -> float:
    return t.cpu_reserved


def _memory_used(t: TaskUsage) -> float:
    return t.memory_mib


def _memory_reserved(t: TaskUsage) -> float:
    return t.memory_reserved_mib


def insights_points(
    tasks: Sequence[TaskUsage], cluster: ClusterView, timestamp: float
) -> list[Point]:
    """ECS/ContainerInsights series of one cluster (none when its setting is disabled or it
    has no RUNNING task)."""
    enhanced = cluster.insights == "enhanced"
    mine = [t for t in tasks if t.cluster == cluster.name]
    if cluster.insights not in ("enabled", "enhanced") or not mine:
        return []
    points: list[Point] = []

    def put(
        name: str,
        dims: dict[str, str] | tuple[tuple[str, str], ...],
        value: Stats | None,
        unit: str,
    ) -> None:
        if value is not None:
            key = dims if isinstance(dims, tuple) else dimensions(dims)
            points.append((MetricId(CONTAINER_INSIGHTS, name, key), timestamp, value, unit, 1))

    for dims, members in sorted(_groups(mine).items()):
        rows = [_task_values(t) + (_enhanced_task_values(t) if enhanced else []) for t in members]
        for i, (name, _, unit) in enumerate(rows[0]):
            put(name, dims, over(row[i][1] for row in rows), unit)
    cluster_dims = {"ClusterName": cluster.name}
    put("ServiceCount", cluster_dims, Stats.of(cluster.active_services), "Count")
    put("TaskCount", cluster_dims, Stats.of(len(mine)), "Count")
    running_services = {t.service for t in mine if t.service is not None}
    for s in cluster.services:
        if s.service not in running_services:
            continue
        service_dims = {"ClusterName": s.cluster, "ServiceName": s.service}
        put("RunningTaskCount", service_dims, Stats.of(s.running), "Count")
        put("PendingTaskCount", service_dims, Stats.of(s.pending), "Count")
        put("DesiredTaskCount", service_dims, Stats.of(s.desired), "Count")
        put("DeploymentCount", service_dims, Stats.of(s.deployments), "Count")
    if not enhanced:
        return points
    for t in mine:
        for dims_of_task in _task_dims(t):
            for name, value, unit in _task_values(t) + _enhanced_task_values(t):
                put(name, dims_of_task, Stats.of(value), unit)
    per_container: dict[tuple[Dimensions, str], list[float]] = defaultdict(list)
    container_units: dict[str, str] = {}
    for t in mine:
        for c in t.containers:
            for name, value, unit in _container_values(c):
                container_units[name] = unit
                for dims in _container_dims(t, c, name not in WITHOUT_CONTAINER_NAME):
                    per_container[(dims, name)].append(value)
    for (dims, name), values in sorted(per_container.items()):
        put(name, dims, over(values), container_units[name])
    return points


def period_start(now: float, period: float = PERIOD) -> float:
    return math.floor(now / period) * period


class Publisher:
    """Collects the sampler's usage into publish periods and writes each closed period's
    datapoints (at the period's start) into the MetricStore, once: after a restart the
    control-plane clock can resume up to a persist interval in the past, and a period the
    store already holds is then dropped rather than merged twice."""

    def __init__(self, store: Store, metrics: MetricStore, period: float = PERIOD) -> None:
        self.store = store
        self.metrics = metrics
        self.period = period
        self._window: float | None = None
        self._samples: dict[str, list[TaskUsage]] = {}
        self._pruned_at: float | None = None

    def add(self, usages: Sequence[TaskUsage], now: float) -> int:
        """Add one round of samples taken at `now`; returns the points written (when `now`
        closed a period)."""
        window = period_start(now, self.period)
        written = 0
        if self._window is not None and window > self._window:
            written = self.flush()
        if self._window is None or window > self._window:
            self._window = window
        for u in usages:
            self._samples.setdefault(u.task_id, []).append(u)
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.metrics.prune(now)
        return written

    def flush(self) -> int:
        if self._window is None or not self._samples:
            self._samples = {}
            return 0
        tasks = [mean_usage(samples) for samples in self._samples.values()]
        self._samples = {}
        points = aws_ecs_points(tasks, self._window)
        for cluster in self._clusters({t.cluster for t in tasks}):
            points += insights_points(tasks, cluster, self._window)
        if not self.metrics.put_period(WRITER, self._window, points):
            return 0
        return len(points)

    def _clusters(self, names: set[str]) -> list[ClusterView]:
        out = []
        for name in sorted(names):
            cluster = self.store.get_cluster(name)
            if cluster is None:
                continue
            insights = cluster.setting("containerInsights") or "disabled"
            if insights not in ("enabled", "enhanced"):
                out.append(ClusterView(name, insights))
                continue
            services = self.store.list_services(name, status="ACTIVE")
            live = self.store.list_tasks(cluster=name, live_only=True)
            counts = []
            for s in services:
                own = [t for t in live if t.service == s.name]
                running = sum(1 for t in own if t.last_status is TaskStatus.RUNNING)
                pending = sum(
                    1
                    for t in own
                    if t.last_status.rank < TaskStatus.RUNNING.rank
                    and t.desired_status is TaskStatus.RUNNING
                )
                counts.append(
                    ServiceCounts(
                        name, s.name, running, pending, s.desired_count, len(s.deployments)
                    )
                )
            out.append(ClusterView(name, insights, tuple(counts), len(services)))
        return out
