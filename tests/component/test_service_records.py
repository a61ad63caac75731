"""One writer per field: a service's spec (ECS API, autoscaler), its state (scheduler) and its
events (appended) are written apart, so no writer can undo another's change."""

from __future__ import annotations

import dataclasses

from miniecs.model import DeploymentStatus, add_event
from tests.component.conftest import Harness
from tests.component.test_services import service


async def test_a_state_write_from_a_stale_read_keeps_the_spec_and_events_written_since(
    harness: Harness,
) -> None:
    service(harness, 1)
    stale = harness.store.get_service("c1", "web")
    assert stale is not None
    harness.store.update_service_spec(
        "c1",
        "web",
        lambda s: add_event(dataclasses.replace(s, desired_count=5), "scaled to 5", 1.0),
    )
    harness.store.update_service_state(
        "c1",
        "web",
        lambda _: add_event(
            dataclasses.replace(stale, launch_failures=2, desired_count=1), "throttled", 2.0
        ),
    )
    now = harness.store.get_service("c1", "web")
    assert now is not None
    assert now.desired_count == 5, "the scheduler cannot write the desired count"
    assert now.launch_failures == 2
    assert [e.message for e in now.events] == ["throttled", "scaled to 5"]


async def test_a_spec_write_cannot_touch_the_scheduler_state(harness: Harness) -> None:
    service(harness, 1)
    harness.store.update_service_state(
        "c1", "web", lambda s: dataclasses.replace(s, launch_failures=3)
    )
    written = harness.store.update_service_spec(
        "c1", "web", lambda s: dataclasses.replace(s, launch_failures=0, desired_count=2)
    )
    assert written is not None
    assert (written.desired_count, written.launch_failures) == (2, 3)


async def test_a_new_deployment_shows_at_once_and_the_scheduler_records_it(
    harness: Harness,
) -> None:
    first = service(harness, 1)["deployments"][0]["id"]
    await harness.settle(passes=1)
    shape = harness.ecs.update_service(
        {"cluster": "c1", "service": "web", "forceNewDeployment": True}
    )["service"]
    ids = [d["id"] for d in shape["deployments"]]
    assert len(ids) == 2 and ids[1] == first, "UpdateService answers with the new PRIMARY"
    await harness.settle(passes=1)
    after = harness.store.get_service("c1", "web")
    assert after is not None
    assert [d.id for d in after.deployments] == ids
    assert [d.status for d in after.deployments] == [
        DeploymentStatus.PRIMARY,
        DeploymentStatus.ACTIVE,
    ]
    row = harness.store.db.one("SELECT state FROM services WHERE name = 'web'")
    assert row is not None and ids[0] in row[0], "the scheduler wrote the deployment it started"
