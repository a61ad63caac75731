"""SQLite persistence of Application Auto Scaling's state, in its own file beside the control
plane's (`<state_dir>/autoscaling.db`): targets, policies, alarms, activities, scheduled actions.

Records are stored as JSON; every write is one transaction, so a SIGKILL leaves the old or the
new state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from miniecs.autoscaler.model import (
    Alarm,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from miniecs.database import Database, from_json, to_json

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

R = TypeVar("R")


class ScalingStore:
    """`path=":memory:"` keeps everything in memory (tests)."""

    def __init__(self, path: Path | str) -> None:
        self.db = Database(path, _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _records(self, cls: type[R], sql: str, args: tuple[Any, ...] = ()) -> list[R]:
        return [from_json(cls, str(r[0])) for r in self.db.all(sql, args)]

    # scalable targets -------------------------------------------------------------------
    def put_target(self, target: ScalableTarget) -> None:
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO scalable_targets VALUES (?, ?)",
                (target.resource_id, to_json(target)),
            )

    def get_target(self, resource_id: str) -> ScalableTarget | None:
        rows = self._records(
            ScalableTarget,
            "SELECT data FROM scalable_targets WHERE resource_id = ?",
            (resource_id,),
        )
        return rows[0] if rows else None

    def list_targets(self) -> list[ScalableTarget]:
        return self._records(ScalableTarget, "SELECT data FROM scalable_targets ORDER BY rowid")

    def delete_target(self, resource_id: str) -> None:
        """Deletes the target with its policies, their alarms and its scheduled actions."""
        with self.db.transaction() as sql:
            for policy in self.list_policies(resource_id):
                for name in policy.alarm_names:
                    sql.execute("DELETE FROM alarms WHERE name = ?", (name,))
            sql.execute("DELETE FROM scaling_policies WHERE resource_id = ?", (resource_id,))
            sql.execute("DELETE FROM scheduled_actions WHERE resource_id = ?", (resource_id,))
            sql.execute("DELETE FROM scalable_targets WHERE resource_id = ?", (resource_id,))

    # scaling policies -------------------------------------------------------------------
    def put_policy(self, policy: ScalingPolicy, alarms: list[Alarm], replaced: list[str]) -> None:
        """Store `policy` with its own alarms, deleting the alarms named in `replaced`."""
        with self.db.transaction() as sql:
            for name in replaced:
                sql.execute("DELETE FROM alarms WHERE name = ?", (name,))
            for alarm in alarms:
                sql.execute(
                    "INSERT OR REPLACE INTO alarms VALUES (?, ?)", (alarm.name, to_json(alarm))
                )
            sql.execute(
                "INSERT OR REPLACE INTO scaling_policies VALUES (?, ?, ?)",
                (policy.resource_id, policy.name, to_json(policy)),
            )

    def get_policy(self, resource_id: str, name: str) -> ScalingPolicy | None:
        rows = self._records(
            ScalingPolicy,
            "SELECT data FROM scaling_policies WHERE resource_id = ? AND name = ?",
            (resource_id, name),
        )
        return rows[0] if rows else None

    def list_policies(self, resource_id: str | None = None) -> list[ScalingPolicy]:
        if resource_id is None:
            return self._records(ScalingPolicy, "SELECT data FROM scaling_policies ORDER BY rowid")
        return self._records(
            ScalingPolicy,
            "SELECT data FROM scaling_policies WHERE resource_id = ? ORDER BY rowid",
            (resource_id,),
        )

    def delete_policy(self, policy: ScalingPolicy) -> None:
        with self.db.transaction() as sql:
            for name in policy.alarm_names:
                sql.execute("DELETE FROM alarms WHERE name = ?", (name,))
            sql.execute(
                "DELETE FROM scaling_policies WHERE resource_id = ? AND name = ?",
                (policy.resource_id, policy.name),
            )

    # alarms -----------------------------------------------------------------------------
    def put_alarm(self, alarm: Alarm) -> None:
        with self.db.transaction() as sql:
            sql.execute("INSERT OR REPLACE INTO alarms VALUES (?, ?)", (alarm.name, to_json(alarm)))

    def get_alarm(self, name: str) -> Alarm | None:
        rows = self._records(Alarm, "SELECT data FROM alarms WHERE name = ?", (name,))
        return rows[0] if rows else None

    def list_alarms(self) -> list[Alarm]:
        return self._records(Alarm, "SELECT data FROM alarms ORDER BY name")

    def delete_alarms(self, names: list[str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany("DELETE FROM alarms WHERE name = ?", [(n,) for n in names])

    # scaling activities -----------------------------------------------------------------
    def add_activity(self, activity: ScalingActivity) -> None:
        with self.db.transaction() as sql:
            self._insert_activity(sql, activity)

    def start_activity(
        self,
        activity: ScalingActivity,
        cooldown: Callable[[ScalableTarget], ScalableTarget] | None = None,
    ) -> None:
        """Record an activity and, in the same transaction, the cooldown it starts on its
        target (`cooldown` maps the stored target to the new one): a crash keeps both or
        neither."""
        with self.db.transaction() as sql:
            if cooldown is not None:
                target = self.get_target(activity.resource_id)
                if target is not None:
                    sql.execute(
                        "UPDATE scalable_targets SET data = ? WHERE resource_id = ?",
                        (to_json(cooldown(target)), activity.resource_id),
                    )
            self._insert_activity(sql, activity)

    def put_activity(self, activity: ScalingActivity) -> None:
        """Update a recorded activity (its status); nothing if it is gone."""
        with self.db.transaction() as sql:
            sql.execute(
                "UPDATE scaling_activities SET data = ? WHERE activity_id = ?",
                (to_json(activity), activity.activity_id),
            )

    @staticmethod
    def _insert_activity(sql: sqlite3.Connection, activity: ScalingActivity) -> None:
        sql.execute(
            "INSERT INTO scaling_activities VALUES (?, ?, ?, ?)",
            (activity.activity_id, activity.resource_id, activity.start_time, to_json(activity)),
        )
        sql.execute(
            "DELETE FROM scaling_activities WHERE resource_id = ? AND activity_id NOT IN "
            "(SELECT activity_id FROM scaling_activities WHERE resource_id = ? "
            "ORDER BY start_time DESC LIMIT ?)",
            (activity.resource_id, activity.resource_id, MAX_ACTIVITIES),
        )

    def list_activities(self, resource_id: str | None = None) -> list[ScalingActivity]:
        """Newest first, as DescribeScalingActivities returns them."""
        if resource_id is None:
            return self._records(
                ScalingActivity, "SELECT data FROM scaling_activities ORDER BY start_time DESC"
            )
        return self._records(
            ScalingActivity,
            "SELECT data FROM scaling_activities WHERE resource_id = ? ORDER BY start_time DESC",
            (resource_id,),
        )

    # scheduled actions ------------------------------------------------------------------
    def put_scheduled(self, action: ScheduledAction) -> None:
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO scheduled_actions VALUES (?, ?, ?)",
                (action.resource_id, action.name, to_json(action)),
            )

    def get_scheduled(self, resource_id: str, name: str) -> ScheduledAction | None:
        rows = self._records(
            ScheduledAction,
            "SELECT data FROM scheduled_actions WHERE resource_id = ? AND name = ?",
            (resource_id, name),
        )
        return rows[0] if rows else None

    def list_scheduled(self, resource_id: str | None = None) -> list[ScheduledAction]:
        if resource_id is None:
            return self._records(
                ScheduledAction, "SELECT data FROM scheduled_actions ORDER BY rowid"
            )
        return self._records(
            ScheduledAction,
            "SELECT data FROM scheduled_actions WHERE resource_id = ? ORDER BY rowid",
            (resource_id,),
        )

    def delete_scheduled(self, resource_id: str, name: str) -> None:
        with self.db.transaction() as sql:
            sql.execute(
                "DELETE FROM scheduled_actions WHERE resource_id = ? AND name = ?",
                (resource_id, name),
            )
