"""Aggregation of task usage into AWS/ECS and ECS/ContainerInsights datapoints (pure), and the
writer's periods against an in-memory MetricStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniecs.metrics.publish import (
    AWS_ECS,
    CONTAINER_INSIGHTS,
    ClusterView,
    Point,
    Publisher,
    ServiceCounts,
    aws_ecs_points,
    insights_points,
    mean_usage,
)
from miniecs.metrics.store import MetricId, MetricStore, Stats, dimensions
from miniecs.metrics.usage import ContainerUsage, TaskUsage
from miniecs.model import Cluster
from miniecs.store import Store

T0 = 1_700_000_040.0  # a multiple of 20 and of 60


def task(
    task_id: str,
    cpu_units: float,
    memory_mib: float = 128.0,
    service: str | None = "web",
    cluster: str = "c1",
    timestamp: float = T0,
    **extra: float,
) -> TaskUsage:
    return TaskUsage(
        task_id=task_id,
        cluster=cluster,
        group=f"service:{service}" if service else "family:web",
        task_definition_family="web",
        cpu_reserved=256,
        memory_reserved_mib=512,
        containers=(ContainerUsage("app", cpu_units, 256, memory_mib, 512, **extra),),
        timestamp=timestamp,
    )


def by_key(points: list[Point]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], Stats]:
    out = {}
    for metric, _, value, _, resolution in points:
        assert resolution == 1
        assert isinstance(value, Stats)
        out[(metric.namespace, metric.name, metric.dimensions)] = value
    return out


def units(points: list[Point]) -> dict[str, str]:
    return {metric.name: unit for metric, _, _, unit, _ in points}


SERVICE = dimensions({"ClusterName": "c1", "ServiceName": "web"})
CLUSTER = dimensions({"ClusterName": "c1"})


def test_service_utilization_by_aws_formula_with_min_max_over_tasks() -> None:
    tasks = [task("hot", 256, 512), task("warm", 25.6, 128), task("idle", 0, 0)]
    points = aws_ecs_points(tasks, T0)
    got = by_key(points)
    cpu = got[(AWS_ECS, "CPUUtilization", SERVICE)]
    assert cpu.sample_count == 3
    assert cpu.average == pytest.approx(100 * 281.6 / 768)
    assert (cpu.minimum, cpu.maximum) == (0.0, 100.0)
    memory = got[(AWS_ECS, "MemoryUtilization", SERVICE)]
    assert memory.average == pytest.approx(100 * 640 / 1536)
    assert (memory.minimum, memory.maximum) == (0.0, 100.0)
    assert units(points) == {"CPUUtilization": "Percent", "MemoryUtilization": "Percent"}
    assert {p[1] for p in points} == {T0}


def test_a_reading_above_the_task_limit_is_capped_at_100_percent() -> None:
    # Sampling jitter reads a pinned task at 100.4 %: target tracking at 50 % must see 100 %
    # (ceil(1 x 100 / 50) = 2), not 100.4 % (which would give 3).
    points = aws_ecs_points([task("pinned", 257.0)], T0)
    cpu = by_key(points)[(AWS_ECS, "CPUUtilization", SERVICE)]
    assert (cpu.average, cpu.maximum) == (100.0, 100.0)


def test_cluster_datapoint_counts_every_task_and_standalone_tasks_have_no_service_one() -> None:
    tasks = [task("a", 256), task("b", 0, service=None)]
    got = by_key(aws_ecs_points(tasks, T0))
    assert got[(AWS_ECS, "CPUUtilization", CLUSTER)].average == pytest.approx(50.0)
    assert got[(AWS_ECS, "CPUUtilization", SERVICE)].sample_count == 1
    assert len(got) == 4


def test_no_tasks_no_datapoints() -> None:
    assert aws_ecs_points([], T0) == []


def cluster(insights: str) -> ClusterView:
    return ClusterView("c1", insights, (ServiceCounts("c1", "web", 3, 1, 4, 2),), 1)


def test_container_insights_disabled_publishes_nothing() -> None:
    assert insights_points([task("a", 10)], cluster("disabled"), T0) == []
    assert insights_points([], cluster("enabled"), T0) == []


def test_container_insights_enabled_service_family_and_cluster_series() -> None:
    tasks = [task("hot", 256, 300, rx_bytes=100.0), task("idle", 4, 100, read_bytes=4096.0)]
    points = insights_points(tasks, cluster("enabled"), T0)
    got = by_key(points)
    cpu = got[(CONTAINER_INSIGHTS, "CpuUtilized", SERVICE)]
    assert (cpu.sample_count, cpu.sum, cpu.minimum, cpu.maximum) == (2, 260, 4, 256)
    family = dimensions({"ClusterName": "c1", "TaskDefinitionFamily": "web"})
    assert got[(CONTAINER_INSIGHTS, "MemoryUtilized", family)].sum == 400
    assert got[(CONTAINER_INSIGHTS, "CpuReserved", CLUSTER)].sum == 512
    assert got[(CONTAINER_INSIGHTS, "NetworkRxBytes", SERVICE)].sum == 100
    assert got[(CONTAINER_INSIGHTS, "StorageReadBytes", SERVICE)].sum == 4096
    counts = {
        name: got[(CONTAINER_INSIGHTS, name, SERVICE)].sum
        for name in ("RunningTaskCount", "PendingTaskCount", "DesiredTaskCount", "DeploymentCount")
    }
    assert counts == {
        "RunningTaskCount": 3,
        "PendingTaskCount": 1,
        "DesiredTaskCount": 4,
        "DeploymentCount": 2,
    }
    assert got[(CONTAINER_INSIGHTS, "ServiceCount", CLUSTER)].sum == 1
    assert got[(CONTAINER_INSIGHTS, "TaskCount", CLUSTER)].sum == 2
    assert not any("TaskId" in dict(dims) for _, _, dims in got)
    assert not any(
        name.startswith(("Task", "Container")) for _, name, _ in got if name != "TaskCount"
    )
    assert units(points)["MemoryUtilized"] == "Megabytes"
    assert units(points)["CpuUtilized"] == "None"
    assert units(points)["NetworkRxBytes"] == "Bytes/Second"
    assert units(points)["StorageReadBytes"] == "Bytes"
    assert units(points)["RunningTaskCount"] == "Count"


def dimension_sets(points: list[Point]) -> dict[str, set[frozenset[str]]]:
    """Metric name → the dimension-name sets it is published with."""
    out: dict[str, set[frozenset[str]]] = {}
    for metric, _, _, _, _ in points:
        out.setdefault(metric.name, set()).add(frozenset(k for k, _ in metric.dimensions))
    return out


def sets(*specs: str) -> set[frozenset[str]]:
    return {frozenset(spec.split(",")) for spec in specs}


# Transcribed from AWS's tables: Container-Insights-metrics-ECS.html (enabled) and
# Container-Insights-enhanced-observability-metrics-ECS.html (enhanced), AmazonCloudWatch guide.
ENABLED_TASK_SETS = sets(
    "ClusterName", "ClusterName,ServiceName", "ClusterName,TaskDefinitionFamily"
)
ENHANCED_TASK_SETS = ENABLED_TASK_SETS | sets(
    "ClusterName,ServiceName,TaskId", "ClusterName,TaskDefinitionFamily,TaskId"
)
CONTAINER_NAME_SETS = sets(
    "ClusterName",
    "ClusterName,ServiceName,ContainerName",
    "ClusterName,TaskDefinitionFamily,ContainerName",
    "ClusterName,ServiceName,TaskId,ContainerName",
    "ClusterName,TaskDefinitionFamily,TaskId,ContainerName",
)
TASK_USAGE = (
    "CpuUtilized",
    "CpuReserved",
    "MemoryUtilized",
    "MemoryReserved",
    "NetworkRxBytes",
    "NetworkTxBytes",
    "StorageReadBytes",
    "StorageWriteBytes",
)
COUNTS = {
    **dict.fromkeys(
        ("RunningTaskCount", "PendingTaskCount", "DesiredTaskCount", "DeploymentCount"),
        sets("ClusterName,ServiceName"),
    ),
    "ServiceCount": sets("ClusterName"),
    "TaskCount": sets("ClusterName"),
}
AWS_UNITS = {
    "CpuUtilized": "None",
    "CpuReserved": "None",
    "MemoryUtilized": "Megabytes",
    "MemoryReserved": "Megabytes",
    "NetworkRxBytes": "Bytes/Second",
    "NetworkTxBytes": "Bytes/Second",
    "StorageReadBytes": "Bytes",
    "StorageWriteBytes": "Bytes",
    "TaskCpuUtilization": "Percent",
    "TaskMemoryUtilization": "Percent",
    "ContainerCpuUtilized": "None",
    "ContainerCpuReserved": "None",
    "ContainerCpuUtilization": "Percent",
    "ContainerMemoryUtilized": "Megabytes",
    "ContainerMemoryReserved": "Megabytes",
    "ContainerMemoryUtilization": "Percent",
    "ContainerNetworkRxBytes": "Bytes/Second",
    "ContainerNetworkTxBytes": "Bytes/Second",
    "ContainerStorageReadBytes": "Bytes",
    "ContainerStorageWriteBytes": "Bytes",
    **dict.fromkeys(COUNTS, "Count"),
}


def test_enabled_publishes_aws_documented_metrics_dimension_sets_and_units() -> None:
    tasks = [task("a", 10), task("b", 20, service=None)]
    points = insights_points(tasks, cluster("enabled"), T0)
    assert dimension_sets(points) == {
        **dict.fromkeys(TASK_USAGE, ENABLED_TASK_SETS),
        **COUNTS,
    }
    assert units(points) == {name: AWS_UNITS[name] for name in units(points)}


def test_enhanced_publishes_aws_documented_metrics_dimension_sets_and_units() -> None:
    tasks = [task("a", 10), task("b", 20, service=None)]
    points = insights_points(tasks, cluster("enhanced"), T0)
    assert dimension_sets(points) == {
        **dict.fromkeys(
            (*TASK_USAGE, "TaskCpuUtilization", "TaskMemoryUtilization"), ENHANCED_TASK_SETS
        ),
        **dict.fromkeys(
            (
                "ContainerCpuUtilized",
                "ContainerCpuReserved",
                "ContainerMemoryUtilized",
                "ContainerMemoryReserved",
                "ContainerMemoryUtilization",
                "ContainerStorageReadBytes",
                "ContainerStorageWriteBytes",
            ),
            CONTAINER_NAME_SETS,
        ),
        **dict.fromkeys(
            ("ContainerCpuUtilization", "ContainerNetworkRxBytes", "ContainerNetworkTxBytes"),
            ENHANCED_TASK_SETS,
        ),
        **COUNTS,
    }
    assert units(points) == AWS_UNITS


def test_container_insights_enhanced_adds_task_and_container_series() -> None:
    tasks = [task("hot", 256, 256), task("idle", 2.56, 51.2)]
    points = insights_points(tasks, cluster("enhanced"), T0)
    got = by_key(points)
    hot = dimensions({"ClusterName": "c1", "ServiceName": "web", "TaskId": "hot"})
    idle = dimensions({"ClusterName": "c1", "TaskDefinitionFamily": "web", "TaskId": "idle"})
    assert got[(CONTAINER_INSIGHTS, "TaskCpuUtilization", hot)].average == 100.0
    assert got[(CONTAINER_INSIGHTS, "TaskMemoryUtilization", hot)].average == 50.0
    assert got[(CONTAINER_INSIGHTS, "TaskCpuUtilization", idle)].average == pytest.approx(1.0)
    assert got[(CONTAINER_INSIGHTS, "CpuUtilized", hot)].sum == 256
    container = dimensions(
        {"ClusterName": "c1", "ServiceName": "web", "TaskId": "hot", "ContainerName": "app"}
    )
    assert got[(CONTAINER_INSIGHTS, "ContainerCpuReserved", container)].average == 256
    assert got[(CONTAINER_INSIGHTS, "ContainerMemoryUtilized", container)].average == 256
    assert got[(CONTAINER_INSIGHTS, "ContainerMemoryUtilization", container)].average == 50.0
    assert got[(CONTAINER_INSIGHTS, "ContainerCpuUtilization", hot)].average == 100.0
    over_tasks = dimensions({"ClusterName": "c1", "ServiceName": "web", "ContainerName": "app"})
    memory = got[(CONTAINER_INSIGHTS, "ContainerMemoryUtilization", over_tasks)]
    assert (memory.sample_count, memory.maximum, memory.minimum) == (2, 50.0, 10.0)
    spread = got[(CONTAINER_INSIGHTS, "ContainerCpuUtilization", SERVICE)]
    assert (spread.sample_count, spread.maximum) == (2, 100.0)
    assert spread.minimum == pytest.approx(1.0)
    assert got[(CONTAINER_INSIGHTS, "ContainerCpuReserved", CLUSTER)].sum == 512


def test_enhanced_container_series_of_a_two_container_task() -> None:
    """Per task, ContainerCpuUtilization and the container network metrics (no ContainerName)
    are statistic sets over its containers; the others stay one series per container."""
    two = TaskUsage(
        task_id="t",
        cluster="c1",
        group="service:web",
        task_definition_family="web",
        cpu_reserved=1024,
        memory_reserved_mib=2048,
        containers=(
            ContainerUsage("app", 512, 512, 512, 1024, rx_bytes=300.0),
            ContainerUsage("side", 0, 512, 256, 1024),
        ),
        timestamp=T0,
    )
    got = by_key(insights_points([two], cluster("enhanced"), T0))
    task_dims = dimensions({"ClusterName": "c1", "ServiceName": "web", "TaskId": "t"})
    cpu = got[(CONTAINER_INSIGHTS, "ContainerCpuUtilization", task_dims)]
    assert (cpu.sample_count, cpu.average, cpu.minimum, cpu.maximum) == (2, 50.0, 0.0, 100.0)
    rx = got[(CONTAINER_INSIGHTS, "ContainerNetworkRxBytes", task_dims)]
    assert (rx.sample_count, rx.sum) == (2, 300.0)
    for name, percent in (("app", 50.0), ("side", 25.0)):
        per = dimensions({**dict(task_dims), "ContainerName": name})
        memory = got[(CONTAINER_INSIGHTS, "ContainerMemoryUtilization", per)]
        assert (memory.sample_count, memory.average) == (1, percent)
    assert got[(CONTAINER_INSIGHTS, "TaskCpuUtilization", task_dims)].average == 50.0


def test_mean_usage_averages_rates_and_sums_storage_bytes() -> None:
    samples = [
        task("a", 100, 100, rx_bytes=10.0, read_bytes=5.0),
        task("a", 300, 200, rx_bytes=30.0, read_bytes=7.0, timestamp=T0 + 1),
    ]
    mean = mean_usage(samples)
    (c,) = mean.containers
    assert (c.cpu_units, c.memory_mib, c.rx_bytes, c.read_bytes) == (200, 150, 20, 12)
    assert mean.timestamp == T0 + 1


@pytest.fixture
def publisher() -> Publisher:
    store = Store(":memory:")
    store.put_cluster(Cluster("c1", "us-east-1"))
    return Publisher(store, MetricStore(None), period=20.0)


def test_publisher_writes_each_closed_period_at_its_start(publisher: Publisher) -> None:
    cpu = MetricId(AWS_ECS, "CPUUtilization", SERVICE)
    for second in range(60):
        hot = 256.0 if second < 20 else 0.0  # hot in the first period only
        now = T0 + second
        publisher.add([task("hot", hot, timestamp=now), task("idle", 0, timestamp=now)], now)
    assert publisher.metrics.datapoints(cpu, T0, T0 + 60, 20) == publisher.metrics.datapoints(
        cpu, T0, T0 + 40, 20
    )  # the third period is still open
    publisher.add([], T0 + 60)
    points = publisher.metrics.datapoints(cpu, T0, T0 + 60, 20)
    assert [p.timestamp for p in points] == [T0, T0 + 20, T0 + 40]
    assert points[0].stats.average == 50.0 and points[0].stats.maximum == 100.0
    assert points[1].stats.average == 0.0
    (minute,) = publisher.metrics.datapoints(cpu, T0, T0 + 60, 60)
    assert minute.stats.sample_count == 6  # two tasks in each of three periods
    assert minute.stats.average == pytest.approx(50.0 / 3)
    assert (minute.stats.minimum, minute.stats.maximum) == (0.0, 100.0)
    assert minute.unit == "Percent"


def test_publisher_writes_nothing_for_periods_without_tasks(publisher: Publisher) -> None:
    for second in range(45):
        assert publisher.add([], T0 + second) == 0
    assert publisher.metrics.metrics() == []


def test_put_period_writes_each_period_of_a_writer_once() -> None:
    metrics = MetricStore(None)
    cpu = MetricId(AWS_ECS, "CPUUtilization", SERVICE)
    point: Point = (cpu, T0, Stats.of(10.0), "Percent", 1)
    assert metrics.put_period("a", T0, [point])
    assert not metrics.put_period("a", T0, [point])
    assert not metrics.put_period("a", T0 - 20, [(cpu, T0 - 20, Stats.of(1.0), "Percent", 1)])
    assert metrics.put_period("b", T0, [point])  # another writer's periods are its own
    assert metrics.put_period("a", T0 + 20, [(cpu, T0 + 20, Stats.of(30.0), "Percent", 1)])
    points = metrics.datapoints(cpu, T0 - 20, T0 + 40, 20)
    assert [(p.timestamp, p.stats.sample_count, p.stats.sum) for p in points] == [
        (T0, 2.0, 20.0),
        (T0 + 20, 1.0, 30.0),
    ]


def test_publisher_restarted_with_the_clock_behind_does_not_write_a_period_twice(
    tmp_path: Path,
) -> None:
    """kill -9 after the period [T0, T0+20) was written at T0+20.5, the clock persisted at
    T0+19.5: the restarted publisher sees that period again and must not merge it twice."""
    store = Store(":memory:")
    store.put_cluster(Cluster("c1", "us-east-1"))
    cpu = MetricId(AWS_ECS, "CPUUtilization", SERVICE)
    first = Publisher(store, MetricStore(tmp_path / "metrics.db"), period=20.0)
    for now in (T0 + 1, T0 + 10, T0 + 19):
        first.add([task("a", 128, timestamp=now)], now)
    assert first.add([task("a", 128, timestamp=T0 + 20.5)], T0 + 20.5) == 4
    first.metrics.close()  # what survives kill -9: the committed database

    again = Publisher(store, MetricStore(tmp_path / "metrics.db"), period=20.0)
    for now in (T0 + 19.5, T0 + 20.5, T0 + 30):
        assert again.add([task("a", 256, timestamp=now)], now) == 0
    assert again.add([task("a", 0, timestamp=T0 + 40)], T0 + 40) == 4
    points = again.metrics.datapoints(cpu, T0, T0 + 60, 20)
    assert [(p.timestamp, p.stats.sample_count, p.stats.average) for p in points] == [
        (T0, 1.0, 50.0),  # as first written: the restarted sample was dropped
        (T0 + 20, 1.0, 100.0),  # the reopened period's samples, written once after restart
    ]
