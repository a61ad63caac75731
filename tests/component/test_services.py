"""The service scheduler over whole cycles: fake runtime, fake clock, real store and API."""

from __future__ import annotations

from typing import Any

import pytest

from miniecs.errors import AwsError
from miniecs.model import TaskStatus
from tests.component.conftest import Harness
from tests.component.test_tasks import FAMILY, NETWORK


def service(h: Harness, desired: int = 3, **extra: Any) -> dict[str, Any]:
    h.ecs.create_cluster({"clusterName": "c1"})
    h.ecs.register_task_definition(FAMILY)
    return h.ecs.create_service(
        {
            "cluster": "c1",
            "serviceName": "web",
            "taskDefinition": "web",
            "desiredCount": desired,
            "networkConfiguration": NETWORK,
            **extra,
        }
    )["service"]


def describe(h: Harness) -> dict[str, Any]:
    return h.ecs.describe_services({"cluster": "c1", "services": ["web"]})["services"][0]


def running(h: Harness) -> list[Any]:
    return [
        t
        for t in h.store.list_tasks(cluster="c1", service="web")
        if t.last_status is TaskStatus.RUNNING and t.desired_status is TaskStatus.RUNNING
    ]


def messages(h: Harness) -> list[str]:
    return [e["message"] for e in describe(h)["events"]]


async def test_service_reaches_desired_count_and_steady_state(harness: Harness) -> None:
    service(harness, 3)
    await harness.settle()
    s = describe(harness)
    assert (s["desiredCount"], s["runningCount"], s["pendingCount"]) == (3, 3, 0)
    assert len(s["deployments"]) == 1
    # Without health checks a task counts as healthy 40 s after RUNNING (ECS's rule).
    assert s["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    harness.clock.advance(40)
    await harness.settle()
    s = describe(harness)
    assert s["deployments"][0]["rolloutState"] == "COMPLETED"
    events = messages(harness)
    assert events[0] == "(service web) has reached a steady state."
    assert events[1].startswith("(service web) (deployment ecs-svc/")
    assert events[1].endswith("deployment completed.")
    assert events[2].startswith("(service web) has started 3 tasks: (task ")
    for t in running(harness):
        assert t.group == "service:web"
        assert t.started_by == s["deployments"][0]["id"]


async def test_dead_task_is_replaced(harness: Harness) -> None:
    service(harness, 3)
    await harness.settle()
    victim = running(harness)[0]
    harness.runtime.exit(f"miniecs-{victim.task_id}-app", 137)
    await harness.settle()
    assert len(running(harness)) == 3
    dead = harness.store.get_task(victim.task_id)
    assert dead is not None and dead.stopped_reason == "Essential container in task exited"
    assert victim.task_id not in {t.task_id for t in running(harness)}


async def test_scale_to_zero_keeps_service_and_comes_back(harness: Harness) -> None:
    service(harness, 2)
    await harness.settle()
    harness.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 0})
    await harness.settle()
    s = describe(harness)
    assert s["status"] == "ACTIVE" and s["runningCount"] == 0 and s["desiredCount"] == 0
    assert harness.runtime.containers == {}
    assert any("has stopped 2 running tasks" in m for m in messages(harness))
    stopped = harness.store.list_tasks(cluster="c1", service="web")
    assert all(
        t.stopped_reason.startswith("Scaling activity initiated by (deployment") for t in stopped
    )  # type: ignore[union-attr]
    harness.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 2})
    await harness.settle()
    assert len(running(harness)) == 2


async def test_rolling_update_never_drops_below_minimum_healthy(harness: Harness) -> None:
    service(
        harness, 4, deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 100}
    )
    await harness.settle()
    harness.clock.advance(60)  # old tasks become healthy (40 s after RUNNING)
    await harness.settle()
    harness.ecs.register_task_definition({**FAMILY, "cpu": "512", "memory": "1024"})
    harness.ecs.update_service({"cluster": "c1", "service": "web", "taskDefinition": "web:2"})
    lowest_healthy = 4
    for _ in range(30):
        await harness.settle(passes=1)
        from miniecs.scheduler.plan import is_healthy

        tasks = harness.store.list_tasks(cluster="c1", service="web", live_only=True)
        lowest_healthy = min(lowest_healthy, sum(is_healthy(t, harness.clock.now()) for t in tasks))
        assert len([t for t in tasks if t.desired_status is TaskStatus.RUNNING]) <= 4
        harness.clock.advance(10)
    s = describe(harness)
    assert lowest_healthy >= 2
    assert len(s["deployments"]) == 1 and s["deployments"][0]["taskDefinition"].endswith("web:2")
    assert s["runningCount"] == 4
    assert all(t.task_definition_arn.endswith("web:2") for t in running(harness))


async def test_blocked_deployment_says_so(harness: Harness) -> None:
    service(
        harness, 1, deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 100}
    )
    await harness.settle()
    harness.clock.advance(60)
    harness.ecs.update_service({"cluster": "c1", "service": "web", "forceNewDeployment": True})
    await harness.settle()
    assert any(
        "was unable to stop or start tasks during a deployment" in m for m in messages(harness)
    )


async def test_broken_image_is_throttled_and_trips_circuit_breaker_with_rollback(
    harness: Harness,
) -> None:
    service(
        harness,
        2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    await harness.settle()
    harness.clock.advance(60)
    await harness.settle()
    good = describe(harness)["deployments"][0]["id"]
    harness.ecs.register_task_definition(
        {**FAMILY, "containerDefinitions": [{"name": "app", "image": "broken:1"}]}
    )
    harness.runtime.images = {"miniecs/workload:latest"}
    harness.ecs.update_service({"cluster": "c1", "service": "web", "taskDefinition": "web:2"})
    for _ in range(20):
        await harness.settle(passes=2)
        harness.clock.advance(30)
    events = messages(harness)
    assert any("deployment failed: tasks failed to start." in m for m in events)
    assert any(f"rolling back to deployment {good}" in m for m in events)
    s = describe(harness)
    assert s["taskDefinition"].endswith("web:1")
    assert s["runningCount"] == 2
    assert all(t.task_definition_arn.endswith("web:1") for t in running(harness))


async def test_start_throttle_slows_a_service_that_cannot_start(harness: Harness) -> None:
    harness.runtime.images = set()
    service(harness, 1)
    for _ in range(10):
        await harness.settle(passes=2)
    attempts = len(harness.store.list_tasks(cluster="c1", service="web"))
    assert any(
        "is unable to consistently start tasks successfully." in m for m in messages(harness)
    )
    for _ in range(10):
        await harness.settle(passes=2)
    assert len(harness.store.list_tasks(cluster="c1", service="web")) == attempts  # throttled
    harness.clock.advance(900)
    await harness.settle(passes=2)
    assert len(harness.store.list_tasks(cluster="c1", service="web")) > attempts


async def test_unhealthy_task_is_replaced_after_grace_period(harness: Harness) -> None:
    harness.ecs.create_cluster({"clusterName": "c1"})
    harness.ecs.register_task_definition(
        {
            **FAMILY,
            "containerDefinitions": [
                {"name": "app", "image": "i", "healthCheck": {"command": ["CMD", "true"]}}
            ],
        }
    )
    harness.ecs.create_service(
        {
            "cluster": "c1",
            "serviceName": "web",
            "taskDefinition": "web",
            "desiredCount": 1,
            "healthCheckGracePeriodSeconds": 60,
            "networkConfiguration": NETWORK,
        }
    )
    await harness.settle()
    (task,) = running(harness)
    harness.runtime.set_health(f"miniecs-{task.task_id}-app", "unhealthy")
    await harness.settle()
    assert running(harness)[0].task_id == task.task_id  # inside the grace period
    harness.clock.advance(61)
    await harness.settle()
    stopped = harness.store.get_task(task.task_id)
    assert stopped is not None and stopped.stopped_reason == "Task failed container health checks"
    assert len(running(harness)) == 1 and running(harness)[0].task_id != task.task_id


async def test_delete_service(harness: Harness) -> None:
    service(harness, 2)
    await harness.settle()
    with pytest.raises(AwsError, match="scaled above 0"):
        harness.ecs.delete_service({"cluster": "c1", "service": "web"})
    out = harness.ecs.delete_service({"cluster": "c1", "service": "web", "force": True})
    assert out["service"]["status"] == "DRAINING"
    await harness.settle()
    assert describe(harness)["status"] == "INACTIVE"
    assert harness.runtime.containers == {}
    assert harness.ecs.list_services({"cluster": "c1"})["serviceArns"] == []


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"cluster": "nope"}, "ClusterNotFoundException"),
        ({"taskDefinition": "ghost"}, "ClientException"),
        ({"desiredCount": -1}, "InvalidParameterException"),
        (
            {"deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 50}},
            "InvalidParameterException",
        ),
    ],
)
async def test_bad_create_service_changes_nothing(
    harness: Harness, request_: dict[str, Any], code: str
) -> None:
    harness.ecs.create_cluster({"clusterName": "c1"})
    harness.ecs.register_task_definition(FAMILY)
    req = {
        "cluster": "c1",
        "serviceName": "web",
        "taskDefinition": "web",
        "desiredCount": 1,
        "networkConfiguration": NETWORK,
        **request_,
    }
    with pytest.raises(AwsError) as err:
        harness.ecs.create_service(req)
    assert err.value.code == code
    assert harness.store.list_services() == []


async def test_duplicate_service_is_refused(harness: Harness) -> None:
    service(harness, 1)
    with pytest.raises(AwsError, match="Creation of service was not idempotent"):
        harness.ecs.create_service(
            {
                "cluster": "c1",
                "serviceName": "web",
                "taskDefinition": "web",
                "desiredCount": 5,
                "networkConfiguration": NETWORK,
            }
        )
    assert describe(harness)["desiredCount"] == 1


async def test_recreated_service_does_not_inherit_old_failures(harness: Harness) -> None:
    harness.runtime.images = set()
    service(harness, 1)
    for _ in range(6):
        await harness.settle(passes=2)
    harness.ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 0})
    harness.ecs.delete_service({"cluster": "c1", "service": "web"})
    await harness.settle()
    harness.runtime.images = None
    harness.clock.advance(1)
    harness.ecs.create_service(
        {
            "cluster": "c1",
            "serviceName": "web",
            "taskDefinition": "web",
            "desiredCount": 1,
            "networkConfiguration": NETWORK,
        }
    )
    await harness.settle()
    s = harness.store.get_service("c1", "web")
    assert s is not None and s.launch_failures == 0
    assert len(running(harness)) == 1
