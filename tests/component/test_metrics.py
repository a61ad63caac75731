"""Sampling and publishing over a real store and ECS handlers, with the fake runtime's synthetic
usage and a fake clock: a service of three tasks, one of them hot."""

from __future__ import annotations

import pytest

from miniecs.config import MetricsSettings
from miniecs.metrics.publish import AWS_ECS, CONTAINER_INSIGHTS, Publisher
from miniecs.metrics.sampler import Sampler, reservations
from miniecs.metrics.store import MetricId, MetricStore, dimensions
from miniecs.model import TaskStatus
from tests.component.conftest import Harness
from tests.component.test_services import running, service
from tests.component.test_tasks import NETWORK

SERVICE = dimensions({"ClusterName": "c1", "ServiceName": "web"})


def sampler(h: Harness) -> Sampler:
    h.runtime.usage_time = h.clock.now
    return Sampler(
        h.store,
        h.runtime,
        h.clock,
        MetricsSettings(),
        Publisher(h.store, MetricStore(None), period=20.0),
    )


async def three_tasks_one_hot(h: Harness) -> tuple[str, list[str]]:
    service(h, 3)
    await h.settle()
    tasks = running(h)
    assert len(tasks) == 3
    hot = tasks[0].task_id
    for t in tasks:
        h.runtime.set_usage(
            f"miniecs-{t.task_id}-app",
            cpu_units=256.0 if t.task_id == hot else 5.12,
            memory_mib=100.0 if t.task_id == hot else 25.6,
        )
    return hot, [t.task_id for t in tasks]


async def sample_for(h: Harness, s: Sampler, seconds: int) -> None:
    for _ in range(seconds):
        await s.once()
        h.clock.advance(1.0)


def start_of_next_period(h: Harness) -> float:
    return (h.clock.now() // 20 + 1) * 20


async def test_latest_shows_one_hot_task_beside_idle_ones(harness: Harness) -> None:
    s = sampler(harness)
    hot, ids = await three_tasks_one_hot(harness)
    assert await s.once() == []  # one reading is not an interval
    harness.clock.advance(1.0)
    latest = {u.task_id: u for u in await s.once()}
    assert set(latest) == set(ids)
    assert latest[hot].cpu_percent == pytest.approx(100.0)
    assert latest[hot].memory_percent == pytest.approx(100.0 * 100 / 512)
    for task_id in set(ids) - {hot}:
        assert latest[task_id].cpu_percent == pytest.approx(2.0)
    assert latest[hot].service == "web" and latest[hot].cpu_reserved == 256
    assert s.latest() == list(latest.values())


async def test_service_datapoints_average_min_max(harness: Harness) -> None:
    s = sampler(harness)
    await three_tasks_one_hot(harness)
    first = start_of_next_period(harness)
    harness.clock.advance(first - harness.clock.now())
    await sample_for(harness, s, 41)
    metrics = s.publisher.metrics if s.publisher else None
    assert metrics is not None
    cpu = metrics.datapoints(MetricId(AWS_ECS, "CPUUtilization", SERVICE), first, first + 40, 20)
    assert [p.timestamp for p in cpu] == [first, first + 20]
    for p in cpu:
        assert p.stats.sample_count == 3
        assert p.stats.average == pytest.approx(100 * (256 + 2 * 5.12) / 768)
        assert p.stats.maximum == pytest.approx(100.0)
        assert p.stats.minimum == pytest.approx(2.0)
    memory = metrics.datapoints(
        MetricId(AWS_ECS, "MemoryUtilization", SERVICE), first, first + 40, 20
    )
    assert memory[0].stats.average == pytest.approx(100 * (100 + 2 * 25.6) / 1536)
    # Container Insights is off by default, as on AWS.
    assert metrics.metrics(namespace=CONTAINER_INSIGHTS) == []


async def test_no_datapoint_without_running_tasks(harness: Harness) -> None:
    s = sampler(harness)
    await three_tasks_one_hot(harness)
    harness.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 0})
    await harness.settle()
    assert running(harness) == []
    assert all(t.last_status is TaskStatus.STOPPED for t in harness.store.list_tasks())
    await sample_for(harness, s, 45)
    assert s.latest() == []
    assert s.publisher is not None
    assert s.publisher.metrics.metrics() == []


async def test_container_insights_follows_the_cluster_setting(harness: Harness) -> None:
    s = sampler(harness)
    hot, _ = await three_tasks_one_hot(harness)
    assert s.publisher is not None
    metrics = s.publisher.metrics

    def settings(value: str) -> None:
        harness.ecs.update_cluster_settings(
            {"cluster": "c1", "settings": [{"name": "containerInsights", "value": value}]}
        )

    settings("enhanced")
    start = start_of_next_period(harness)
    harness.clock.advance(start - harness.clock.now())
    await sample_for(harness, s, 21)
    task_dims = dimensions({"ClusterName": "c1", "ServiceName": "web", "TaskId": hot})
    (point,) = metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "TaskCpuUtilization", task_dims), start, start + 20, 20
    )
    assert point.stats.average == pytest.approx(100.0)
    (running_count,) = metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "RunningTaskCount", SERVICE), start, start + 20, 20
    )
    assert running_count.stats.sum == 3
    # Per AWS's enhanced table: ContainerCpuUtilization per task, without ContainerName;
    # ContainerMemoryUtilized per task and container.
    (container_cpu,) = metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "ContainerCpuUtilization", task_dims), start, start + 20, 20
    )
    assert container_cpu.stats.average == pytest.approx(100.0)
    assert (
        metrics.metrics(CONTAINER_INSIGHTS, "ContainerCpuUtilization", [("ContainerName", None)])
        == []
    )
    app = dimensions({**dict(task_dims), "ContainerName": "app"})
    (container_memory,) = metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "ContainerMemoryUtilized", app), start, start + 20, 20
    )
    assert container_memory.stats.average == pytest.approx(100.0)

    settings("enabled")
    await sample_for(harness, s, 20)
    assert (
        metrics.datapoints(
            MetricId(CONTAINER_INSIGHTS, "TaskCpuUtilization", task_dims),
            start + 20,
            start + 40,
            20,
        )
        == []
    )
    (cpu,) = metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "CpuUtilized", SERVICE), start + 20, start + 40, 20
    )
    assert cpu.stats.maximum == pytest.approx(256.0)

    settings("disabled")
    await sample_for(harness, s, 20)
    assert (
        metrics.datapoints(
            MetricId(CONTAINER_INSIGHTS, "CpuUtilized", SERVICE), start + 40, start + 60, 20
        )
        == []
    )
    assert metrics.datapoints(
        MetricId(AWS_ECS, "CPUUtilization", SERVICE), start + 40, start + 60, 20
    )


async def test_reservations_split_task_size_among_containers(harness: Harness) -> None:
    harness.ecs.create_cluster({"clusterName": "c1"})
    harness.ecs.register_task_definition(
        {
            "family": "pair",
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "1024",
            "memory": "2048",
            "containerDefinitions": [
                {"name": "app", "image": "a", "cpu": 512, "memoryReservation": 1024},
                {"name": "side", "image": "b"},
                {"name": "log", "image": "c", "memory": 256},
            ],
        }
    )
    (out,) = harness.ecs.run_task(
        {"cluster": "c1", "taskDefinition": "pair", "networkConfiguration": NETWORK}
    )["tasks"]
    task = harness.store.get_task(out["taskArn"].rsplit("/", 1)[-1])
    assert task is not None
    cpu, memory, per_container = reservations(task)
    assert (cpu, memory) == (1024, 2048)
    assert per_container == [(512, 1024), (256, 768), (256, 256)]
