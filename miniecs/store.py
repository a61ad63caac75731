"""SQLite-backed state: desired state (clusters, task definitions, services) and task records.

One method per action; every write is one transaction, so a SIGKILL leaves either the old or the
new state. Records are stored as JSON next to the columns queries filter on. Listeners registered
with `on_change` are called after each write so loops can wake up instead of polling.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from miniecs.model import (
    Cluster,
    ContainerRecord,
    Deployment,
    DeploymentStatus,
    HealthStatus,
    RolloutState,
    Service,
    ServiceEvent,
    StopCode,
    Task,
    TaskDefinition,
    TaskStatus,
)

T = TypeVar("T")

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS services (
    cluster TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (cluster, name));
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
"""


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def task_to_json(task: Task) -> str:
    return json.dumps(_encode(task))


def task_from_json(text: str) -> Task:
    data = json.loads(text)
    data["containers"] = tuple(
        ContainerRecord(**{**c, "health_status": HealthStatus(c["health_status"])})
        for c in data["containers"]
    )
    data["last_status"] = TaskStatus(data["last_status"])
    data["desired_status"] = TaskStatus(data["desired_status"])
    data["health_status"] = HealthStatus(data["health_status"])
    if data.get("stop_code"):
        data["stop_code"] = StopCode(data["stop_code"])
    return Task(**data)


def _cluster_from_json(text: str) -> Cluster:
    data = json.loads(text)
    data["settings"] = tuple(tuple(s) for s in data["settings"])
    for key in ("capacity_providers", "default_strategy"):
        data[key] = tuple(data.get(key) or ())
    return Cluster(**data)


def service_to_json(service: Service) -> str:
    return json.dumps(_encode(service))


def service_from_json(text: str) -> Service:
    data = json.loads(text)
    data["deployments"] = tuple(
        Deployment(
            **{
                **d,
                "status": DeploymentStatus(d["status"]),
                "rollout_state": RolloutState(d["rollout_state"]),
                "load_balancers": tuple(d.get("load_balancers") or ()),
            }
        )
        for d in data["deployments"]
    )
    data["events"] = tuple(ServiceEvent(**e) for e in data["events"])
    data["load_balancers"] = tuple(data["load_balancers"])
    data["capacity_provider_strategy"] = tuple(data.get("capacity_provider_strategy") or ())
    data["counted_stops"] = tuple(data["counted_stops"])
    data["running_seen"] = tuple(data["running_seen"])
    return Service(**data)


class Store:
    """The state of one miniecs instance, in `<state_dir>/miniecs.db`."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._listeners: list[Callable[[str], None]] = []

    def close(self) -> None:
        self._db.close()

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(kind)` after every write of that kind ('cluster', 'task', ...)."""
        self._listeners.append(listener)

    def _changed(self, kind: str) -> None:
        for listener in self._listeners:
            listener(kind)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def instance_id(self) -> str:
        """A random id minted on first use; it labels every Docker object of this state dir."""
        existing = self.get_meta("instance_id")
        if existing:
            return existing
        new = uuid.uuid4().hex[:12]
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('instance_id', ?)", (new,))
        return self.get_meta("instance_id") or new

    # clusters -------------------------------------------------------------------------------
    def put_cluster(self, cluster: Cluster) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO clusters VALUES (?, ?)",
            (cluster.name, json.dumps(_encode(cluster))),
        )
        self._changed("cluster")

    def get_cluster(self, name: str) -> Cluster | None:
        row = self._db.execute("SELECT data FROM clusters WHERE name = ?", (name,)).fetchone()
        return None if row is None else _cluster_from_json(row[0])

    def list_clusters(self) -> list[Cluster]:
        rows = self._db.execute("SELECT data FROM clusters ORDER BY name").fetchall()
        return [_cluster_from_json(r[0]) for r in rows]

    # task definitions -----------------------------------------------------------------------
    def register_task_definition(
        self, family: str, build: Callable[[int], dict[str, Any]]
    ) -> TaskDefinition:
        """Store the next revision of `family`; `build(revision)` returns its document or raises."""
        with self._tx() as db:
            row = db.execute(
                "SELECT MAX(revision) FROM task_definitions WHERE family = ?", (family,)
            ).fetchone()
            revision = (row[0] or 0) + 1
            document = build(revision)
            db.execute(
                "INSERT INTO task_definitions VALUES (?, ?, 'ACTIVE', ?)",
                (family, revision, json.dumps(document)),
            )
        self._changed("task_definition")
        return TaskDefinition(family, revision, document)

    def get_task_definition(
        self, family: str, revision: int | None = None
    ) -> TaskDefinition | None:
        """A revision, or the latest ACTIVE one when `revision` is None."""
        if revision is None:
            row = self._db.execute(
                "SELECT revision, status, data FROM task_definitions WHERE family = ? "
                "AND status = 'ACTIVE' ORDER BY revision DESC LIMIT 1",
                (family,),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT revision, status, data FROM task_definitions WHERE family = ? "
                "AND revision = ?",
                (family, revision),
            ).fetchone()
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
            for r in self._db.execute(query, args).fetchall()
        ]

    def list_families(self, prefix: str | None = None, status: str | None = None) -> list[str]:
        rows = self._db.execute(
            "SELECT family, MAX(status = 'ACTIVE') FROM task_definitions GROUP BY family "
            "ORDER BY family"
        ).fetchall()
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
        td = self.get_task_definition(family, revision)
        if td is None:
            return
        document = {**td.document, **document_changes, "status": status}
        self._db.execute(
            "UPDATE task_definitions SET status = ?, data = ? WHERE family = ? AND revision = ?",
            (status, json.dumps(document), family, revision),
        )
        self._changed("task_definition")

    # tasks ----------------------------------------------------------------------------------
    def put_task(self, task: Task) -> None:
        self._db.execute(
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
                task_to_json(task),
            ),
        )
        self._changed("task")

    def get_task(self, task_id: str) -> Task | None:
        row = self._db.execute("SELECT data FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else task_from_json(row[0])

    def update_task(self, task_id: str, change: Callable[[Task], Task]) -> Task | None:
        """Read the current record, apply `change`, write it back; None if the task is gone."""
        current = self.get_task(task_id)
        if current is None:
            return None
        updated = change(current)
        if updated != current:
            self.put_task(dataclasses.replace(updated, version=current.version + 1))
        return self.get_task(task_id)

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
        return [task_from_json(r[0]) for r in self._db.execute(query, args).fetchall()]

    def delete_stopped_tasks(self, stopped_before: float) -> int:
        cur = self._db.execute(
            "DELETE FROM tasks WHERE last_status = 'STOPPED' AND stopped_at < ?",
            (stopped_before,),
        )
        if cur.rowcount:
            self._changed("task")
        return cur.rowcount

    # services -------------------------------------------------------------------------------
    def put_service(self, service: Service) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO services VALUES (?, ?, ?, ?)",
            (service.cluster, service.name, service.status, service_to_json(service)),
        )
        self._changed("service")

    def get_service(self, cluster: str, name: str) -> Service | None:
        row = self._db.execute(
            "SELECT data FROM services WHERE cluster = ? AND name = ?", (cluster, name)
        ).fetchone()
        return None if row is None else service_from_json(row[0])

    def update_service(
        self, cluster: str, name: str, change: Callable[[Service], Service]
    ) -> Service | None:
        current = self.get_service(cluster, name)
        if current is None:
            return None
        updated = change(current)
        if updated != current:
            self.put_service(updated)
        return updated

    def list_services(self, cluster: str | None = None, status: str | None = None) -> list[Service]:
        query = "SELECT data FROM services WHERE 1=1"
        args: list[Any] = []
        if cluster is not None:
            query += " AND cluster = ?"
            args.append(cluster)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        query += " ORDER BY cluster, name"
        return [service_from_json(r[0]) for r in self._db.execute(query, args).fetchall()]

    def delete_service(self, cluster: str, name: str) -> None:
        self._db.execute("DELETE FROM services WHERE cluster = ? AND name = ?", (cluster, name))
        self._changed("service")

    # tags -----------------------------------------------------------------------------------
    def tag(self, arn: str, tags: dict[str, str]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def untag(self, arn: str, keys: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys])

    def tags(self, arn: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM tags WHERE arn = ? ORDER BY key", (arn,)
        ).fetchall()
        return {str(k): str(v) for k, v in rows}
