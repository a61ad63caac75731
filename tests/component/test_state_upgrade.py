"""A state dir written by the previous version (before a service's spec, state and events
were split) still opens: the dumps in tests/fixtures/state_v0 come from main's code at 254ade5
(`make_state.py` there)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from miniecs.autoscaler.store import ScalingStore
from miniecs.aws.ecs import EcsApi
from miniecs.clock import FakeClock
from miniecs.config import Settings, TaskSettings
from miniecs.metrics.store import MetricId, MetricStore
from miniecs.model import DeploymentStatus, RolloutState
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures" / "state_v0"


def _restore(tmp_path: Path) -> Path:
    for dump in FIXTURES.glob("*.sql"):
        db = sqlite3.connect(tmp_path / f"{dump.stem}.db")
        db.executescript(dump.read_text())
        db.close()
    return tmp_path


def _old_services() -> dict[str, dict[str, Any]]:
    """The services as the previous version stored them: one JSON record each."""
    db = sqlite3.connect(":memory:")
    db.executescript((FIXTURES / "miniecs.sql").read_text())
    records = [json.loads(data) for (data,) in db.execute("SELECT data FROM services")]
    return {r["name"]: r for r in records}


def test_an_old_state_dir_opens_with_every_service_field_kept(tmp_path: Path) -> None:
    state = _restore(tmp_path)
    old = _old_services()
    store = Store(state / "miniecs.db")
    web = store.get_service("c1", "web")
    gone = store.get_service("c1", "gone")
    assert web is not None and gone is not None
    assert gone.status == "INACTIVE"
    assert web.status == "ACTIVE"
    for name, service in (("web", web), ("gone", gone)):
        before = old[name]
        assert [e.message for e in service.events] == [e["message"] for e in before["events"]]
        assert [(d.id, d.status.value, d.rollout_state.value) for d in service.deployments] == [
            (d["id"], d["status"], d["rollout_state"]) for d in before["deployments"]
        ]
        for field in ("task_definition", "desired_count", "created_at", "circuit_breaker"):
            assert getattr(service, field) == before[field], field
        assert list(service.running_seen) == before["running_seen"]
    assert web.primary.rollout_state is RolloutState.IN_PROGRESS
    assert [d.status for d in web.deployments] == [
        DeploymentStatus.PRIMARY,
        DeploymentStatus.ACTIVE,
    ]
    assert len(store.list_tasks(cluster="c1")) == 4
    store.close()
    again = Store(state / "miniecs.db")
    assert again.get_service("c1", "web") == web, "the upgrade runs once"
    again.close()


def test_the_scheduler_carries_on_from_an_old_state_dir(tmp_path: Path) -> None:
    """No deployment is started twice and no task is started again after the upgrade."""
    state = _restore(tmp_path)
    store = Store(state / "miniecs.db")
    web = store.get_service("c1", "web")
    assert web is not None
    scheduler = ServiceScheduler(store, FakeClock(web.created_at + 120))
    scheduler.once()
    after = store.get_service("c1", "web")
    assert after is not None
    assert [d.id for d in after.deployments] == [d.id for d in web.deployments]
    assert len(store.list_tasks(cluster="c1", service="web")) == 4
    ecs = EcsApi(store, FakeClock(web.created_at + 130), Settings(tasks=TaskSettings()))
    shape = ecs.update_service({"cluster": "c1", "service": "web", "desiredCount": 3})["service"]
    assert shape["desiredCount"] == 3
    assert [d["id"] for d in shape["deployments"]] == [d.id for d in web.deployments]
    store.close()


def test_the_other_databases_of_an_old_state_dir_open(tmp_path: Path) -> None:
    state = _restore(tmp_path)
    scaling = ScalingStore(state / "autoscaling.db")
    [target] = scaling.list_targets()
    assert (target.resource_id, target.min_capacity, target.max_capacity) == (
        "service/c1/web",
        1,
        4,
    )
    metrics = MetricStore(state / "metrics.db")
    cpu = MetricId("AWS/ECS", "CPUUtilization", (("ClusterName", "c1"), ("ServiceName", "web")))
    assert metrics.metrics(namespace="AWS/ECS") == [cpu]
    [point] = metrics.datapoints(cpu, 0, 2e9, 60)
    assert point.stats.maximum == 42.0
