"""Whole task lifecycles against the fake runtime and a fake clock: no Docker, no sleeping."""

from __future__ import annotations

from typing import Any

from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from miniecs.demo import TASK_DEFINITION
from miniecs.model import TaskStatus
from tests.component.conftest import Harness

FAMILY = TASK_DEFINITION


def sidecar_family() -> dict[str, Any]:
    return {
        **FAMILY,
        "family": "withinit",
        "containerDefinitions": [
            {"name": "init", "image": "busy", "essential": False},
            {
                "name": "app",
                "image": "miniecs/workload:latest",
                "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
            },
        ],
    }


def run(h: Harness, family: dict[str, Any] = FAMILY, count: int = 1) -> list[str]:
    h.ecs.create_cluster({"clusterName": "c1"})
    h.ecs.register_task_definition(family)
    out = h.ecs.run_task(
        {
            "cluster": "c1",
            "taskDefinition": family["family"],
            "count": count,
            "networkConfiguration": NETWORK,
        }
    )
    return [t["taskArn"].rsplit("/", 1)[-1] for t in out["tasks"]]


async def test_run_task_reaches_running_with_limits_and_ip(harness: Harness) -> None:
    (task_id,) = run(harness)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.RUNNING
    assert task.private_ip is not None
    assert task.started_at is not None and task.pull_stopped_at is not None
    spec = harness.runtime.specs[f"miniecs-{task_id}-app"]
    assert spec.nano_cpus == 250_000_000
    assert spec.memory_bytes == 512 * 1024 * 1024
    assert spec.network is not None


async def test_stop_task_goes_through_stopping_to_stopped_and_removes_containers(
    harness: Harness,
) -> None:
    (task_id,) = run(harness)
    await harness.settle()
    harness.ecs.stop_task({"cluster": "c1", "task": task_id})
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.STOPPED
    assert task.stop_code == "UserInitiated"
    assert task.stopped_reason == "Task stopped by user"
    assert task.stopping_at is not None and task.stopped_at is not None
    assert harness.runtime.names_of_task(task_id) == []
    assert task.containers[0].exit_code == 143


async def test_essential_exit_stops_task_with_ecs_reason(harness: Harness) -> None:
    (task_id,) = run(harness)
    await harness.settle()
    harness.runtime.exit(f"miniecs-{task_id}-app", 137, oom=True)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.STOPPED
    assert task.stopped_reason == "Essential container in task exited"
    assert task.stop_code == "EssentialContainerExited"
    assert task.containers[0].exit_code == 137
    assert task.containers[0].reason == "OutOfMemoryError: Container killed due to memory usage"


async def test_missing_image_fails_fast_with_cannot_pull(harness: Harness) -> None:
    harness.runtime.images = {"something-else"}
    (task_id,) = run(harness)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.STOPPED
    assert task.stop_code == "TaskFailedToStart"
    assert task.stopped_reason is not None
    assert task.stopped_reason.startswith("CannotPullContainerError")


async def test_depends_on_success_orders_start(harness: Harness) -> None:
    (task_id,) = run(harness, sidecar_family())
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.PENDING
    starts = [n for op, n in harness.runtime.calls if op == "start"]
    assert starts == [f"miniecs-{task_id}.pause", f"miniecs-{task_id}-init"]
    harness.runtime.exit(f"miniecs-{task_id}-init", 0)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.RUNNING
    app = harness.runtime.specs[f"miniecs-{task_id}-app"]
    assert app.netns_of == f"miniecs-{task_id}.pause"


async def test_failed_dependency_fails_the_task(harness: Harness) -> None:
    (task_id,) = run(harness, sidecar_family())
    await harness.settle()
    harness.runtime.exit(f"miniecs-{task_id}-init", 3)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None
    assert task.last_status is TaskStatus.STOPPED
    assert task.stop_code == "TaskFailedToStart"


async def test_health_check_sets_task_health(harness: Harness) -> None:
    family = {
        **FAMILY,
        "family": "hc",
        "containerDefinitions": [
            {
                "name": "app",
                "image": "img",
                "healthCheck": {"command": ["CMD-SHELL", "true"]},
            }
        ],
    }
    (task_id,) = run(harness, family)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.health_status == "UNKNOWN"
    harness.runtime.set_health(f"miniecs-{task_id}-app", "healthy")
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.health_status == "HEALTHY"
    harness.runtime.set_health(f"miniecs-{task_id}-app", "unhealthy")
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.health_status == "UNHEALTHY"


async def test_engine_down_freezes_decisions(harness: Harness) -> None:
    (task_id,) = run(harness)
    await harness.settle()
    harness.runtime.available = False
    assert not await harness.controller.guard.run(harness.controller.once)
    task = harness.store.get_task(task_id)
    assert task is not None and task.last_status is TaskStatus.RUNNING
    assert not harness.controller.engine_available


async def test_restart_adopts_containers_without_creating_or_deleting(harness: Harness) -> None:
    ids = run(harness, count=3)
    await harness.settle()
    before = list(harness.runtime.calls)
    fresh = type(harness.controller)(
        harness.store, harness.runtime, harness.clock, harness.controller.settings, "inst01", 2
    )
    harness.controller = fresh
    await harness.settle()
    assert harness.runtime.calls == before
    for task_id in ids:
        task = harness.store.get_task(task_id)
        assert task is not None and task.last_status is TaskStatus.RUNNING


async def test_orphan_containers_are_removed(harness: Harness) -> None:
    (task_id,) = run(harness)
    await harness.settle()
    with harness.store.db.transaction() as sql:
        sql.execute("DELETE FROM tasks")
    await harness.settle()
    assert harness.runtime.names_of_task(task_id) == []


async def test_crash_mid_provision_is_finished_by_next_pass(harness: Harness) -> None:
    (task_id,) = run(harness, sidecar_family())
    task = harness.store.get_task(task_id)
    assert task is not None
    # Only the pause container got created before the "crash".
    from miniecs.tasks.specs import SpecContext, container_specs

    td = harness.store.get_task_definition("withinit", 1)
    assert td is not None
    specs = container_specs(task, td, SpecContext("inst01", "net-c1", 2))
    await harness.runtime.create_container(specs[0])
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.last_status is TaskStatus.PENDING
    assert len(harness.runtime.names_of_task(task_id)) == 3


async def test_a_container_named_pause_does_not_collide(harness: Harness) -> None:
    family = {
        **FAMILY,
        "family": "p",
        "containerDefinitions": [
            {"name": "app", "image": "i"},
            {"name": "pause", "image": "i", "essential": False},
        ],
    }
    (task_id,) = run(harness, family)
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.last_status is TaskStatus.RUNNING
    assert len(harness.runtime.names_of_task(task_id)) == 3


async def test_memory_split_respects_reservations_and_never_unlimits(harness: Harness) -> None:
    from miniecs.tasks.specs import SpecContext, container_specs

    family = {
        **FAMILY,
        "family": "m",
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [
            {"name": "app", "image": "i", "memory": 1024},
            {"name": "side", "image": "i", "essential": False, "memoryReservation": 128},
        ],
    }
    (task_id,) = run(harness, family)
    task = harness.store.get_task(task_id)
    td = harness.store.get_task_definition("m", 1)
    assert task is not None and td is not None
    specs = {s.container_name: s for s in container_specs(task, td, SpecContext("i", "n", 2))}
    mib = 1024 * 1024
    assert specs["app"].memory_bytes == 1024 * mib
    assert specs["side"].memory_bytes == 1024 * mib  # nothing left: capped at the task's
    assert specs["side"].memory_reservation_bytes == 128 * mib


async def test_pending_task_gives_up_after_start_timeout(harness: Harness) -> None:
    family = sidecar_family()
    family["containerDefinitions"][1]["startTimeout"] = 60
    (task_id,) = run(harness, family)
    await harness.settle()
    harness.clock.advance(61)  # the init container never exits
    await harness.settle()
    task = harness.store.get_task(task_id)
    assert task is not None and task.last_status is TaskStatus.STOPPED
    assert task.stop_code == "TaskFailedToStart"


async def test_cpu_override_in_vcpu_units(harness: Harness) -> None:
    harness.ecs.create_cluster({"clusterName": "c1"})
    harness.ecs.register_task_definition(FAMILY)
    out = harness.ecs.run_task(
        {
            "cluster": "c1",
            "taskDefinition": "web",
            "overrides": {"cpu": "0.5 vCPU"},
            "networkConfiguration": NETWORK,
        }
    )
    task_id = out["tasks"][0]["taskArn"].rsplit("/", 1)[-1]
    await harness.settle()
    assert harness.runtime.specs[f"miniecs-{task_id}-app"].nano_cpus == 500_000_000


async def test_engine_down_stops_unprovisioned_tasks_with_the_reason(harness: Harness) -> None:
    """With no engine, a new task does not wait in PROVISIONING: it ends STOPPED at the next
    pass with TaskFailedToStart and a ResourceInitializationError reason (what a Fargate task
    whose resources cannot be set up shows); a running task keeps its status."""
    (running,) = run(harness)
    await harness.settle()
    harness.runtime.available = False
    (fresh,) = run(harness)
    await harness.controller.guard.run(harness.controller.once)
    stopped = harness.store.get_task(fresh)
    assert stopped is not None and stopped.last_status is TaskStatus.STOPPED
    assert stopped.stop_code == "TaskFailedToStart"
    assert stopped.stopped_reason is not None
    assert stopped.stopped_reason.startswith("ResourceInitializationError: fake engine is down")
    assert stopped.stopped_at is not None
    kept = harness.store.get_task(running)
    assert kept is not None and kept.last_status is TaskStatus.RUNNING
