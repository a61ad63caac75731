"""The console's view and actions over real ECS handlers, store and scheduler (fake runtime):
its counts are DescribeServices', each task carries its own usage beside the service's
figures, a tick reaches a subscriber, and actions go through UpdateService / StopTask /
UpdateClusterSettings, bad input changing nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from miniecs.aws.protocols import JsonService
from miniecs.console import Console
from miniecs.errors import AwsError
from miniecs.metrics.view import UsageView, usage_view
from tests.component.conftest import Harness
from tests.component.test_services import running, service
from tests.component.test_usage_view import sample


def console(h: Harness, hot: dict[str, float] | None = None) -> Console:
    def usage() -> UsageView:
        now = h.clock.now()
        tasks = running(h)
        return usage_view(
            h.store,
            [sample(t.task_id, (hot or {}).get(t.task_id, 0.0), 64, now) for t in tasks],
            now,
        )

    return Console([JsonService("ecs", h.ecs)], h.clock, usage, lambda _: None)


def web(view: dict[str, Any]) -> dict[str, Any]:
    service_view: dict[str, Any] = view["clusters"][0]["services"][0]
    return service_view


async def test_view_counts_are_describe_services_and_tasks_carry_their_usage(
    harness: Harness,
) -> None:
    h = harness
    service(h, 3)
    await h.settle()
    hot = running(h)[0].task_id
    c = console(h, {hot: 256.0})
    view = await c.view()
    api = h.ecs.describe_services({"cluster": "c1", "services": ["web"]})["services"][0]
    shown = web(view)
    for key in ("desiredCount", "runningCount", "pendingCount"):
        assert shown[key] == api[key]
    by_id = {t["taskId"]: t for t in shown["tasks"]}
    assert set(by_id) == {t.task_id for t in running(h)}
    assert by_id[hot]["cpuUtilization"] == 100.0
    assert [t["cpuUtilization"] for i, t in by_id.items() if i != hot] == [0.0, 0.0]
    assert all(t["privateIp"] for t in by_id.values())
    assert view["logs"] == {"available": False}
    assert shown["scaling"] is None  # no Application Auto Scaling served here


async def test_a_tick_reaches_subscribers_with_a_history_point(harness: Harness) -> None:
    h = harness
    service(h, 2)
    await h.settle()
    c = console(h)
    quiet = c.subscribe()
    await c.tick()
    message = json.loads(quiet.get_nowait())
    assert web(message)["runningCount"] == 2
    assert message["point"]["services"] == {"c1/web": [2, 2]}
    assert len(c.history.points) == 1
    c.unsubscribe(quiet)
    await c.tick()  # nobody listening: history only
    assert quiet.empty() and len(c.history.points) == 2


async def test_actions_call_the_aws_operations(harness: Harness) -> None:
    h = harness
    service(h, 2)
    await h.settle()
    c = console(h)
    out = await c.act("set-desired-count", {"cluster": "c1", "service": "web", "desiredCount": 1})
    assert out["service"]["desiredCount"] == 1
    victim = running(h)[0]
    await c.act("stop-task", {"cluster": "c1", "task": victim.task_id})
    stopped = h.store.get_task(victim.task_id)
    assert stopped is not None and stopped.stopped_reason == "Stopped from the miniecs console"
    await c.act("container-insights", {"cluster": "c1", "value": "enhanced"})
    assert h.store.get_cluster("c1").setting("containerInsights") == "enhanced"  # type: ignore[union-attr]
    before = h.store.get_service("c1", "web")
    await c.act("force-new-deployment", {"cluster": "c1", "service": "web"})
    after = h.store.get_service("c1", "web")
    assert before is not None and after is not None
    assert (
        len(after.deployments) > len(before.deployments) or after.deployments != before.deployments
    )


@pytest.mark.parametrize(
    ("action", "body", "code"),
    [
        (
            "set-desired-count",
            {"cluster": "c1", "service": "web", "desiredCount": "9"},
            "SerializationException",  # a type error, as ECS answers one
        ),
        (
            "set-desired-count",
            {"cluster": "c1", "service": "web", "desiredCount": -1},
            "InvalidParameterException",
        ),
        ("set-desired-count", {"cluster": "c1", "desiredCount": 2}, "InvalidParameterException"),
        (
            "set-desired-count",
            {"cluster": "c1", "service": "nope", "desiredCount": 2},
            "ServiceNotFoundException",
        ),
        ("container-insights", {"cluster": "c1", "value": "on"}, "InvalidParameterException"),
        ("stop-task", {"cluster": "c1", "task": "0" * 32}, "InvalidParameterException"),
        ("reboot", {}, "InvalidParameterException"),
    ],
)
async def test_bad_actions_get_aws_errors_and_change_nothing(
    harness: Harness, action: str, body: dict[str, Any], code: str
) -> None:
    h = harness
    service(h, 2)
    await h.settle()
    c = console(h)
    before = (await c.view())["clusters"]
    with pytest.raises(AwsError) as caught:
        await c.act(action, body)
    assert caught.value.code == code, caught.value.message
    await h.settle()
    after = (await c.view())["clusters"]
    assert [web({"clusters": after})[k] for k in ("desiredCount", "runningCount")] == [
        web({"clusters": before})[k] for k in ("desiredCount", "runningCount")
    ]
    assert after[0]["containerInsights"] == before[0]["containerInsights"]


async def test_task_logs_are_the_awslogs_streams_of_its_containers(harness: Harness) -> None:
    """The console's log panel reads what `aws logs get-log-events` would: the stream
    `<prefix>/<container>/<task id>` of the group its awslogs configuration names."""
    from miniecs.logs.store import LogStore
    from miniecs.logs.tasklogs import TaskLogTail
    from tests.component.test_tasks import FAMILY, NETWORK

    h = harness
    h.ecs.create_cluster({"clusterName": "c1"})
    container = {
        **FAMILY["containerDefinitions"][0],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/web", "awslogs-stream-prefix": "ecs"},
        },
    }
    h.ecs.register_task_definition({**FAMILY, "containerDefinitions": [container]})
    task = h.ecs.run_task(
        {"cluster": "c1", "taskDefinition": "web", "networkConfiguration": NETWORK}
    )
    task_id = task["tasks"][0]["taskArn"].rsplit("/", 1)[1]
    logs = LogStore(None)
    stream = f"ecs/{container['name']}/{task_id}"
    logs.create_group("/ecs/web", 0)
    logs.create_stream("/ecs/web", stream, 0)
    logs.create_stream("/ecs/web", "ecs/other/0000", 0)
    logs.append("/ecs/web", stream, [(1000 + i, f"line {i}") for i in range(5)], 2000)
    logs.append("/ecs/web", "ecs/other/0000", [(1500, "not this task")], 2000)
    c = Console(
        [JsonService("ecs", h.ecs)], h.clock, lambda: usage_view(h.store, [], 0.0),
        lambda _: None, logs=TaskLogTail(h.store, logs),
    )  # fmt: skip
    assert (await c.view())["logs"] == {"available": True}
    shown = c.task_logs("c1", task_id, limit=3)
    assert [e["message"] for e in shown] == ["line 2", "line 3", "line 4"]
    assert {e["logStreamName"] for e in shown} == {stream}
    assert c.task_logs("other-cluster", task_id) == []
