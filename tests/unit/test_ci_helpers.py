"""The pieces a CI job relies on: `miniecs load`'s verdict, the state-change log lines, the
plain and JSON log formats."""

from __future__ import annotations

import json
import logging

import pytest

from miniecs import loadgen
from miniecs.cli import JsonFormatter
from miniecs.engine import state_changes
from miniecs.model import Service, Task, TaskStatus

GOOD = {"requests": 10, "responses": 10, "statuses": {"200": 10}, "errorKinds": {"connect": 0}}


def test_load_verdict_passes_only_a_clean_run() -> None:
    expect = loadgen.parse_expect(loadgen.DEFAULT_EXPECT)
    assert loadgen.failures(GOOD, expect) == []
    refused = {"requests": 10, "responses": 0, "statuses": {}, "errorKinds": {"connect": 10}}
    assert loadgen.failures(refused, expect) == ["requests failed: connect 10"]
    not_found = {**GOOD, "statuses": {"200": 9, "404": 1}}
    assert loadgen.failures(not_found, expect) == ["unexpected statuses (expected 2xx,3xx): 404: 1"]
    assert loadgen.failures(not_found, loadgen.parse_expect("200,404")) == []
    assert loadgen.failures({"requests": 0, "statuses": {}}, expect) == ["no request completed"]


@pytest.mark.parametrize("bad", ["", "20", "2x", "600", "abc", "2xx,99"])
def test_load_expect_rejects_what_is_not_a_status(bad: str) -> None:
    with pytest.raises(loadgen.LoadError):
        loadgen.parse_expect(bad)


def _task(status: TaskStatus, reason: str | None = None) -> Task:
    return Task(
        task_id="t1", cluster="c", region="us-east-1", task_definition_arn="arn:td/web:1",
        family="web", cpu="256", memory="512", created_at=0.0, containers=(), group="family:web",
        last_status=status, stopped_reason=reason,
    )  # fmt: skip


def _service(desired: int, status: str = "ACTIVE") -> Service:
    return Service(
        name="web", cluster="c", region="us-east-1", task_definition="arn:td/web:1",
        desired_count=desired, created_at=0.0, deployments=(), status=status,
        deployment_id="d1", deployment_at=0.0,
    )  # fmt: skip


def test_state_changes_give_one_line_per_change() -> None:
    states, lines = state_changes({}, [_task(TaskStatus.PROVISIONING)], [_service(2)])
    assert lines == ["task c/t1 new -> PROVISIONING", "service c/web new -> ACTIVE desired=2"]
    states, lines = state_changes(states, [_task(TaskStatus.PROVISIONING)], [_service(2)])
    assert lines == []
    stopped = _task(TaskStatus.STOPPED, "Essential container exited")
    _, lines = state_changes(states, [stopped], [_service(3)])
    assert lines == [
        "task c/t1 PROVISIONING -> STOPPED (Essential container exited)",
        "service c/web ACTIVE desired=2 -> ACTIVE desired=3",
    ]


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("miniecs.engine", logging.INFO, __file__, 1, "task %s", ("x",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "miniecs.engine"
    assert entry["message"] == "task x" and entry["time"].endswith("Z")
