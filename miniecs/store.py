"""SQLite-backed state: desired state (clusters, task definitions, services) and task records.

One method per action; every write is one transaction, so a SIGKILL leaves either the old or the
new state. Records are stored as JSON next to the columns queries filter on. Listeners registered
with `on_change` are called after each write so loops can wake up instead of polling.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from miniecs.database import Database, decode, from_json, to_json
from miniecs.model import (
    MAX_EVENTS,
    Cluster,
    Service,
    ServiceEvent,
    ServiceSpec,
    ServiceState,
    Task,
    TaskDefinition,
    service_view,
    spec_of,
    state_of,
)

_SERVICES = """
CREATE TABLE IF NOT EXISTS services (
    cluster TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (cluster, name));
CREATE TABLE IF NOT EXISTS service_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cluster TEXT NOT NULL, name TEXT NOT NULL,
    id TEXT NOT NULL, created_at REAL NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_service ON service_events (cluster, name, seq);
"""
"""A service is three records, one per writer: its spec (the ECS API, the autoscaler), its
state (the service scheduler) and its events (appended by anyone, never rewritten)."""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clusters (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_definitions (
    family TEXT NOT NULL, revision INTEGER NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (family, revision));
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, cluster TEXT NOT NULL, service TEXT, family TEXT NOT NULL,
    started_by TEXT, last_status TEXT NOT NULL, desired_status TEXT NOT NULL,
    created_at REAL NOT NULL, stopped_at REAL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_cluster ON tasks (cluster, desired_status);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
"""
    + _SERVICES
)


def _split_services(sql: sqlite3.Connection) -> None:
    """Version 1: a service's one record (spec, scheduler state and events together) becomes a
    spec, a state and an event log, each with its own writer."""
    sql.execute("ALTER TABLE services RENAME TO services_v0")
    for statement in _SERVICES.split(";"):
        if statement.strip():
            sql.execute(statement)
    for cluster, name, text in sql.execute(
        "SELECT cluster, name, data FROM services_v0"
    ).fetchall():
        data = json.loads(text)
        primary = next(d for d in data["deployments"] if d["status"] == "PRIMARY")
        inactive = data["status"] == "INACTIVE"
        spec = decode(
            ServiceSpec,
            {
                **data,
                "deployment_id": primary["id"],
                "deployment_at": primary["created_at"],
                "status": "DRAINING" if inactive else data["status"],
            },
        )
        state = decode(ServiceState, {**data, "inactive": inactive})
        sql.execute(
            "INSERT INTO services VALUES (?, ?, ?, ?)",
            (cluster, name, to_json(spec), to_json(state)),
        )
        _append_events(sql, cluster, name, [decode(ServiceEvent, e) for e in data["events"]])
    sql.execute("DROP TABLE services_v0")


def _append_events(
    sql: sqlite3.Connection, cluster: str, name: str, events: Sequence[ServiceEvent]
) -> None:
    """Append `events` (newest first, as a Service holds them), keeping the newest 100."""
    sql.executemany(
        "INSERT INTO service_events (cluster, name, id, created_at, message) VALUES (?,?,?,?,?)",
        [(cluster, name, e.id, e.created_at, e.message) for e in reversed(events)],
    )
    sql.execute(
        "DELETE FROM service_events WHERE cluster = ? AND name = ? AND seq NOT IN "
        "(SELECT seq FROM service_events WHERE cluster = ? AND name = ? ORDER BY seq DESC "
        "LIMIT ?)",
        (cluster, name, cluster, name, MAX_EVENTS),
    )


MIGRATIONS = (_split_services,)


class Store:
    """The state of one miniecs instance, in `<state_dir>/miniecs.db`."""

    def __init__(self, path: Path | str) -> None:
        self.db = Database(path, _SCHEMA, MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(kind)` after every write of that kind ('cluster', 'task', ...)."""
        self.db.on_change(listener)

    # meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.db.transaction() as sql:
            sql.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def instance_id(self) -> str:
        """A random id minted on first use; it labels every Docker object of this state dir."""
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT OR IGNORE INTO meta VALUES ('instance_id', ?)", (uuid.uuid4().hex[:12],)
            )
            return str(
                sql.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0]
            )

    # clusters -------------------------------------------------------------------------------
    def put_cluster(self, cluster: Cluster) -> None:
        with self.db.transaction() as sql:
            sql.execute(
                "INSERT OR REPLACE INTO clusters VALUES (?, ?)", (cluster.name, to_json(cluster))
            )
            self.db.changed("cluster")

    def get_cluster(self, name: str) -> Cluster | None:
        row = self.db.one("SELECT data FROM clusters WHERE name = ?", (name,))
        return None if row is None else from_json(Cluster, row[0])

    def list_clusters(self) -> list[Cluster]:
        return [
            from_json(Cluster, r[0]) for r in self.db.all("SELECT data FROM clusters ORDER BY name")
        ]

    # task definitions -----------------------------------------------------------------------
    def register_task_definition(
        self, family: str, build: Callable[[int], dict[str, Any]]
    ) -> TaskDefinition:
        """Store the next revision of `family`; `build(revision)` returns its document or raises."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT MAX(revision) FROM task_definitions WHERE family = ?", (family,)
            ).fetchone()
            revision = (row[0] or 0) + 1
            document = build(revision)
            sql.execute(
                "INSERT INTO task_definitions VALUES (?, ?, 'ACTIVE', ?)",
                (family, revision, json.dumps(document)),
            )
            self.db.changed("task_definition")
        return TaskDefinition(family, revision, document)

    def get_task_definition(
        self, family: str, revision: int | None = None
    ) -> TaskDefinition | None:
        """A revision, or the latest ACTIVE one when `revision` is None."""
        if revision is None:
            row = self.db.one(
                "SELECT revision, status, data FROM task_definitions WHERE family = ? "
                "AND status = 'ACTIVE' ORDER BY revision DESC LIMIT 1",
                (family,),
            )
        else:
            row = self.db.one(
                "SELECT revision, status, data FROM task_definitions WHERE family = ? "
                "AND revision = ?",
                (family, revision),
            )
        if row is None:
            return None
        return TaskDefinition(family, int(row[0]), json.loads(row[2]), status=str(row[1]))

    def list_task_definitions(
        self, family: str | None = None, status: str | None = "ACTIVE", descending: bool = False
    ) -> list[TaskDefinition]:
        query = "SELECT family, revision, status, data FROM task_definitions WHERE 1=1"
        args: list[Any] = []
        if family:
            query += " AND family = ?"
            args.append(family)
        if status:
            query += " AND status = ?"
            args.append(status)
        order = "DESC" if descending else "ASC"
        query += f" ORDER BY family {order}, revision {order}"
        return [
            TaskDefinition(r[0], int(r[1]), json.loads(r[3]), status=str(r[2]))
            for r in self.db.all(query, args)
        ]

    def list_families(self, prefix: str | None = None, status: str | None = None) -> list[str]:
        rows = self.db.all(
            "SELECT family, MAX(status = 'ACTIVE') FROM task_definitions GROUP BY family "
            "ORDER BY family"
        )
        out = []
        for family, any_active in rows:
            if prefix and not str(family).startswith(prefix):
                continue
            if status == "ACTIVE" and not any_active:
                continue
            if status == "INACTIVE" and any_active:
                continue
            out.append(str(family))
        return out

    def set_task_definition_status(
        self, family: str, revision: int, status: str, **document_changes: Any
    ) -> None:
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT data FROM task_definitions WHERE family = ? AND revision = ?",
                (family, revision),
            ).fetchone()
            if row is None:
                return
            document = {**json.loads(row[0]), **document_changes, "status": status}
            sql.execute(
                "UPDATE task_definitions SET status = ?, data = ? "
                "WHERE family = ? AND revision = ?",
                (status, json.dumps(document), family, revision),
            )
            self.db.changed("task_definition")

    # tasks ----------------------------------------------------------------------------------
    def put_task(self, task: Task) -> None:
        with self.db.transaction() as sql:
            self._put_task(sql, task)

    def _put_task(self, sql: sqlite3.Connection, task: Task) -> None:
        sql.execute(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id,
                task.cluster,
                task.service,
                task.family,
                task.started_by,
                task.last_status.value,
                task.desired_status.value,
                task.created_at,
                task.stopped_at,
                to_json(task),
            ),
        )
        self.db.changed("task")

    def get_task(self, task_id: str) -> Task | None:
        row = self.db.one("SELECT data FROM tasks WHERE task_id = ?", (task_id,))
        return None if row is None else from_json(Task, row[0])

    def update_task(self, task_id: str, change: Callable[[Task], Task]) -> Task | None:
        """Read the current record, apply `change`, write it back, in one transaction; None if
        the task is gone."""
        with self.db.transaction() as sql:
            row = sql.execute("SELECT data FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            current = from_json(Task, row[0])
            updated = change(current)
            if updated == current:
                return current
            updated = dataclasses.replace(updated, version=current.version + 1)
            self._put_task(sql, updated)
            return updated

    def list_tasks(
        self,
        cluster: str | None = None,
        service: str | None = None,
        desired_status: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        live_only: bool = False,
    ) -> list[Task]:
        query = "SELECT data FROM tasks WHERE 1=1"
        args: list[Any] = []
        for column, value in (
            ("cluster", cluster),
            ("service", service),
            ("desired_status", desired_status),
            ("family", family),
            ("started_by", started_by),
        ):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        if live_only:
            query += " AND last_status != 'STOPPED'"
        query += " ORDER BY created_at, task_id"
        return [from_json(Task, r[0]) for r in self.db.all(query, args)]

    def delete_stopped_tasks(self, stopped_before: float) -> int:
        with self.db.transaction() as sql:
            cur = sql.execute(
                "DELETE FROM tasks WHERE last_status = 'STOPPED' AND stopped_at < ?",
                (stopped_before,),
            )
            if cur.rowcount:
                self.db.changed("task")
            return cur.rowcount

    # services -------------------------------------------------------------------------------
    def create_service(self, spec: ServiceSpec) -> Service:
        """A new service (replacing an INACTIVE namesake with its state and events)."""
        with self.db.transaction() as sql:
            sql.execute(
                "DELETE FROM service_events WHERE cluster = ? AND name = ?",
                (spec.cluster, spec.name),
            )
            sql.execute(
                "INSERT OR REPLACE INTO services VALUES (?, ?, ?, ?)",
                (spec.cluster, spec.name, to_json(spec), to_json(ServiceState())),
            )
            self.db.changed("service")
            return service_view(spec, ServiceState())

    def get_service(self, cluster: str, name: str) -> Service | None:
        row = self.db.one(
            "SELECT spec, state FROM services WHERE cluster = ? AND name = ?", (cluster, name)
        )
        return None if row is None else self._view(row[0], row[1])

    def update_service_spec(
        self, cluster: str, name: str, change: Callable[[Service], Service]
    ) -> Service | None:
        """Apply `change` to the service and write its spec and new events (the ECS API, the
        autoscaler); what `change` does to the scheduler's state is not written. None if the
        service is gone."""
        return self._update(cluster, name, change, "spec")

    def update_service_state(
        self, cluster: str, name: str, change: Callable[[Service], Service]
    ) -> Service | None:
        """Apply `change` to the service and write its state and new events (the scheduler);
        what `change` does to the spec is not written. None if the service is gone."""
        return self._update(cluster, name, change, "state")

    def _update(
        self, cluster: str, name: str, change: Callable[[Service], Service], part: str
    ) -> Service | None:
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT spec, state FROM services WHERE cluster = ? AND name = ?", (cluster, name)
            ).fetchone()
            if row is None:
                return None
            spec_text, state_text = row
            current = self._view(spec_text, state_text)
            updated = change(current)
            known = {e.id for e in current.events}
            added = [e for e in updated.events if e.id not in known]
            _append_events(sql, cluster, name, added)
            if part == "spec":
                spec_text = to_json(spec_of(updated))
            else:
                state_text = to_json(state_of(updated))
            if (spec_text, state_text) != tuple(row):
                sql.execute(
                    "UPDATE services SET spec = ?, state = ? WHERE cluster = ? AND name = ?",
                    (spec_text, state_text, cluster, name),
                )
            if added or (spec_text, state_text) != tuple(row):
                self.db.changed("service")
            return self._view(spec_text, state_text)

    def list_services(self, cluster: str | None = None, status: str | None = None) -> list[Service]:
        query = "SELECT spec, state FROM services"
        args: list[Any] = []
        if cluster is not None:
            query += " WHERE cluster = ?"
            args.append(cluster)
        query += " ORDER BY cluster, name"
        views = [self._view(spec, state) for spec, state in self.db.all(query, args)]
        return [v for v in views if status is None or v.status == status]

    def _view(self, spec_text: str, state_text: str) -> Service:
        spec = from_json(ServiceSpec, spec_text)
        rows = self.db.all(
            "SELECT id, created_at, message FROM service_events WHERE cluster = ? AND name = ? "
            "ORDER BY seq DESC LIMIT ?",
            (spec.cluster, spec.name, MAX_EVENTS),
        )
        events = tuple(ServiceEvent(str(i), float(at), str(m)) for i, at, m in rows)
        return service_view(spec, from_json(ServiceState, state_text), events)

    # tags -----------------------------------------------------------------------------------
    def tag(self, arn: str, tags: dict[str, str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def untag(self, arn: str, keys: list[str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany("DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys])

    def tags(self, arn: str) -> dict[str, str]:
        rows = self.db.all("SELECT key, value FROM tags WHERE arn = ? ORDER BY key", (arn,))
        return {str(k): str(v) for k, v in rows}
