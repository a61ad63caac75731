"""A desired count beyond ECS's quota left in a state dir by an older miniecs: repaired at start
with a log line, and the scheduler only ever starts tasks in bounded batches (issue 14)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from miniecs.quotas import TASK_LAUNCH_BURST, TASKS_PER_SERVICE
from miniecs.scheduler.repair import repair_services
from tests.component.conftest import Harness
from tests.component.test_services import service


def _force_desired(h: Harness, count: int) -> None:
    """Write the count straight into the store, as an older version that accepted it did."""
    h.store.update_service_spec("c1", "web", lambda s: dataclasses.replace(s, desired_count=count))


async def test_scheduler_starts_tasks_in_bounded_batches(harness: Harness) -> None:
    service(harness, 0)
    _force_desired(harness, 10**12)
    harness.scheduler.once()
    assert len(harness.store.list_tasks(cluster="c1", service="web")) == TASK_LAUNCH_BURST
    harness.scheduler.once()
    assert len(harness.store.list_tasks(cluster="c1", service="web")) <= 2 * TASK_LAUNCH_BURST


def test_start_repairs_a_desired_count_beyond_the_quota(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    service(harness, 2)
    _force_desired(harness, 10**12)
    with caplog.at_level(logging.WARNING):
        repaired = repair_services(harness.store)
    assert len(repaired) == 1
    stored = harness.store.get_service("c1", "web")
    assert stored is not None and stored.desired_count == TASKS_PER_SERVICE
    assert "stored desiredCount 1000000000000 is outside 0..5000" in caplog.text
    assert repair_services(harness.store) == []  # nothing left to repair
