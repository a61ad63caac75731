"""The live usage view and its Prometheus exposition over a real store and scheduler: one hot
task beside idle ones shows in the task figures, and the service figure is AWS/ECS's."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from miniecs.metrics.prometheus import exposition
from miniecs.metrics.usage import ContainerUsage, TaskUsage
from miniecs.metrics.view import UsageView, usage_view
from tests.component.conftest import Harness
from tests.component.test_services import running, service


def sample(task_id: str, cpu_units: float, memory_mib: float, now: float) -> TaskUsage:
    """A task of the test family (256 CPU units, 512 MiB) using `cpu_units` and `memory_mib`
    in its one container."""
    return TaskUsage(
        task_id=task_id,
        cluster="c1",
        group="service:web",
        task_definition_family="web",
        cpu_reserved=256,
        memory_reserved_mib=512,
        containers=(ContainerUsage("app", cpu_units, 256, memory_mib, 512),),
        timestamp=now,
    )


async def view_with_one_hot_task(h: Harness) -> UsageView:
    service(h, 3)
    await h.settle()
    tasks = running(h)
    assert len(tasks) == 3
    now = h.clock.now()
    usages = [sample(tasks[0].task_id, 256, 256, now)]
    usages += [sample(t.task_id, 0, 64, now) for t in tasks[1:]]
    return usage_view(h.store, usages, now)


async def test_service_average_beside_each_tasks_own_figure(harness: Harness) -> None:
    view = await view_with_one_hot_task(harness)
    (cluster,) = view.clusters
    (web,) = cluster.services
    assert (web.desired, web.running, web.pending) == (3, 3, 0)
    assert web.cpu_percent == pytest.approx(100 / 3)
    assert web.memory_percent == pytest.approx(100 * (256 + 64 + 64) / (3 * 512))
    assert sorted(t.cpu_percent or 0 for t in web.tasks) == [0, 0, 100]
    body = view.to_json()
    task = body["clusters"][0]["services"][0]["tasks"][0]
    assert set(task) >= {"taskId", "lastStatus", "cpuUtilization", "memoryUtilization"}
    assert task["containers"][0]["containerName"] == "app"
    assert body["now"] == harness.clock.now()


async def test_tasks_without_a_sample_have_no_figure(harness: Harness) -> None:
    service(harness, 2)
    await harness.settle()
    view = usage_view(harness.store, [], harness.clock.now())
    web = view.clusters[0].services[0]
    assert web.cpu_percent is None and all(t.cpu_percent is None for t in web.tasks)
    text = exposition(lambda: view).decode()
    assert "miniecs_service_running_tasks" in text
    assert "miniecs_service_cpu_utilization_ratio{" not in text


async def test_prometheus_exposition_parses_with_ratios_and_bounded_labels(
    harness: Harness,
) -> None:
    view = await view_with_one_hot_task(harness)
    families = {
        f.name: f for f in text_string_to_metric_families(exposition(lambda: view).decode())
    }
    svc = families["miniecs_service_cpu_utilization_ratio"].samples
    assert [(s.labels, round(s.value, 4)) for s in svc] == [
        ({"cluster": "c1", "service": "web"}, round(1 / 3, 4))
    ]
    assert families["miniecs_service_desired_tasks"].samples[0].value == 3
    assert families["miniecs_service_running_tasks"].samples[0].value == 3
    tasks = families["miniecs_task_cpu_utilization_ratio"].samples
    assert sorted(s.value for s in tasks) == [0, 0, 1.0]
    assert all(set(s.labels) == {"cluster", "service", "task_id"} for s in tasks)
    containers = families["miniecs_container_memory_utilization_ratio"].samples
    assert sorted(s.value for s in containers) == [0.125, 0.125, 0.5]
    assert all(s.labels["container"] == "app" for s in containers)
    for family in families.values():
        assert family.type == "gauge"
