"""SQLite persistence of Application Auto Scaling's state, in its own file beside the control
plane's (`<state_dir>/autoscaling.db`): targets, policies, alarms, activities, scheduled actions.

Records are stored as JSON; every write is one statement (or one transaction for cascades), so
a SIGKILL leaves the old or the new state.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from miniecs.autoscaler.model import (
    Alarm,
    AlarmState,
    PolicyType,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scalable_targets (resource_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scaling_policies (
    resource_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (resource_id, name));
CREATE TABLE IF NOT EXISTS alarms (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scaling_activities (
    activity_id TEXT PRIMARY KEY, resource_id TEXT NOT NULL, start_time REAL NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activities_by_resource ON scaling_activities (resource_id, start_time);
CREATE TABLE IF NOT EXISTS scheduled_actions (
    resource_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (resource_id, name));
"""

MAX_ACTIVITIES = 500
"""Scaling activities kept per target (AWS keeps six weeks of them)."""


def _encode(record: Any) -> str:
    def value(v: Any) -> Any:
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, tuple):
            return [value(x) for x in v]
        return v

    return json.dumps({f.name: value(getattr(record, f.name)) for f in dataclasses.fields(record)})


def _target(text: str) -> ScalableTarget:
    return ScalableTarget(**json.loads(text))


def _policy(text: str) -> ScalingPolicy:
    data = json.loads(text)
    data["policy_type"] = PolicyType(data["policy_type"])
    data["alarm_names"] = tuple(data["alarm_names"])
    return ScalingPolicy(**data)


def _alarm(text: str) -> Alarm:
    data = json.loads(text)
    data["dimensions"] = tuple((str(k), str(v)) for k, v in data["dimensions"])
    for key in ("actions", "ok_actions", "insufficient_data_actions"):
        data[key] = tuple(data[key])
    data["state"] = AlarmState(data["state"])
    return Alarm(**data)


def _activity(text: str) -> ScalingActivity:
    return ScalingActivity(**json.loads(text))


def _scheduled(text: str) -> ScheduledAction:
    return ScheduledAction(**json.loads(text))


class ScalingStore:
    """Thread-safe; `path=":memory:"` keeps everything in memory (tests)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute(sql, args).fetchall()]

    # scalable targets -------------------------------------------------------------------
    def put_target(self, target: ScalableTarget) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO scalable_targets VALUES (?, ?)",
                (target.resource_id, _encode(target)),
            )

    def get_target(self, resource_id: str) -> ScalableTarget | None:
        rows = self._rows("SELECT data FROM scalable_targets WHERE resource_id = ?", (resource_id,))
        return _target(rows[0]) if rows else None

    def list_targets(self) -> list[ScalableTarget]:
        return [_target(r) for r in self._rows("SELECT data FROM scalable_targets ORDER BY rowid")]

    def delete_target(self, resource_id: str) -> None:
        """Deletes the target with its policies, their alarms and its scheduled actions."""
        policies = self.list_policies(resource_id)
        with self._tx() as db:
            for policy in policies:
                for name in policy.alarm_names:
                    db.execute("DELETE FROM alarms WHERE name = ?", (name,))
            db.execute("DELETE FROM scaling_policies WHERE resource_id = ?", (resource_id,))
            db.execute("DELETE FROM scheduled_actions WHERE resource_id = ?", (resource_id,))
            db.execute("DELETE FROM scalable_targets WHERE resource_id = ?", (resource_id,))

    # scaling policies -------------------------------------------------------------------
    def put_policy(self, policy: ScalingPolicy, alarms: list[Alarm], replaced: list[str]) -> None:
        """Store `policy` with its own alarms, deleting the alarms named in `replaced`."""
        with self._tx() as db:
            for name in replaced:
                db.execute("DELETE FROM alarms WHERE name = ?", (name,))
            for alarm in alarms:
                db.execute(
                    "INSERT OR REPLACE INTO alarms VALUES (?, ?)", (alarm.name, _encode(alarm))
                )
            db.execute(
                "INSERT OR REPLACE INTO scaling_policies VALUES (?, ?, ?)",
                (policy.resource_id, policy.name, _encode(policy)),
            )

    def get_policy(self, resource_id: str, name: str) -> ScalingPolicy | None:
        rows = self._rows(
            "SELECT data FROM scaling_policies WHERE resource_id = ? AND name = ?",
            (resource_id, name),
        )
        return _policy(rows[0]) if rows else None

    def list_policies(self, resource_id: str | None = None) -> list[ScalingPolicy]:
        if resource_id is None:
            rows = self._rows("SELECT data FROM scaling_policies ORDER BY rowid")
        else:
            rows = self._rows(
                "SELECT data FROM scaling_policies WHERE resource_id = ? ORDER BY rowid",
                (resource_id,),
            )
        return [_policy(r) for r in rows]

    def delete_policy(self, policy: ScalingPolicy) -> None:
        with self._tx() as db:
            for name in policy.alarm_names:
                db.execute("DELETE FROM alarms WHERE name = ?", (name,))
            db.execute(
                "DELETE FROM scaling_policies WHERE resource_id = ? AND name = ?",
                (policy.resource_id, policy.name),
            )

    # alarms -----------------------------------------------------------------------------
    def put_alarm(self, alarm: Alarm) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO alarms VALUES (?, ?)", (alarm.name, _encode(alarm)))

    def get_alarm(self, name: str) -> Alarm | None:
        rows = self._rows("SELECT data FROM alarms WHERE name = ?", (name,))
        return _alarm(rows[0]) if rows else None

    def list_alarms(self) -> list[Alarm]:
        return [_alarm(r) for r in self._rows("SELECT data FROM alarms ORDER BY name")]

    def delete_alarms(self, names: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM alarms WHERE name = ?", [(n,) for n in names])

    # scaling activities -----------------------------------------------------------------
    def add_activity(self, activity: ScalingActivity) -> None:
        with self._tx() as db:
            self._insert_activity(db, activity)

    def start_activity(
        self,
        activity: ScalingActivity,
        cooldown: Callable[[ScalableTarget], ScalableTarget] | None = None,
    ) -> None:
        """Record an activity and, in the same transaction, the cooldown it starts on its
        target (`cooldown` maps the stored target to the new one): a crash keeps both or
        neither."""
        with self._tx() as db:
            if cooldown is not None:
                row = db.execute(
                    "SELECT data FROM scalable_targets WHERE resource_id = ?",
                    (activity.resource_id,),
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE scalable_targets SET data = ? WHERE resource_id = ?",
                        (_encode(cooldown(_target(str(row[0])))), activity.resource_id),
                    )
            self._insert_activity(db, activity)

    def put_activity(self, activity: ScalingActivity) -> None:
        """Update a recorded activity (its status); nothing if it is gone."""
        with self._tx() as db:
            db.execute(
                "UPDATE scaling_activities SET data = ? WHERE activity_id = ?",
                (_encode(activity), activity.activity_id),
            )

    @staticmethod
    def _insert_activity(db: sqlite3.Connection, activity: ScalingActivity) -> None:
        db.execute(
            "INSERT INTO scaling_activities VALUES (?, ?, ?, ?)",
            (activity.activity_id, activity.resource_id, activity.start_time, _encode(activity)),
        )
        db.execute(
            "DELETE FROM scaling_activities WHERE resource_id = ? AND activity_id NOT IN "
            "(SELECT activity_id FROM scaling_activities WHERE resource_id = ? "
            "ORDER BY start_time DESC LIMIT ?)",
            (activity.resource_id, activity.resource_id, MAX_ACTIVITIES),
        )

    def list_activities(self, resource_id: str | None = None) -> list[ScalingActivity]:
        """Newest first, as DescribeScalingActivities returns them."""
        if resource_id is None:
            rows = self._rows("SELECT data FROM scaling_activities ORDER BY start_time DESC")
        else:
            rows = self._rows(
                "SELECT data FROM scaling_activities WHERE resource_id = ? "
                "ORDER BY start_time DESC",
                (resource_id,),
            )
        return [_activity(r) for r in rows]

    # scheduled actions ------------------------------------------------------------------
    def put_scheduled(self, action: ScheduledAction) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO scheduled_actions VALUES (?, ?, ?)",
                (action.resource_id, action.name, _encode(action)),
            )

    def get_scheduled(self, resource_id: str, name: str) -> ScheduledAction | None:
        rows = self._rows(
            "SELECT data FROM scheduled_actions WHERE resource_id = ? AND name = ?",
            (resource_id, name),
        )
        return _scheduled(rows[0]) if rows else None

    def list_scheduled(self, resource_id: str | None = None) -> list[ScheduledAction]:
        if resource_id is None:
            rows = self._rows("SELECT data FROM scheduled_actions ORDER BY rowid")
        else:
            rows = self._rows(
                "SELECT data FROM scheduled_actions WHERE resource_id = ? ORDER BY rowid",
                (resource_id,),
            )
        return [_scheduled(r) for r in rows]

    def delete_scheduled(self, resource_id: str, name: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM scheduled_actions WHERE resource_id = ? AND name = ?",
                (resource_id, name),
            )
