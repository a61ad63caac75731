"""SQLite-backed ELBv2 desired state: load balancers, target groups, listeners, rules, targets
and tags, in their own file beside the control plane's database.

Resources are kept as the dicts ELBv2 describes them (`DescribeLoadBalancers` members and so
on), next to the columns lookups use; target-group attributes and load-balancer bookkeeping
(config version) live in `extra`. Every method is one transaction, so a request either changes
everything it should or nothing. `elbv2.py` validates before it writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS elb_resources (
    arn TEXT PRIMARY KEY, kind TEXT NOT NULL, parent TEXT, name TEXT,
    data TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS elb_by_kind ON elb_resources (kind, parent);
CREATE TABLE IF NOT EXISTS elb_targets (
    tg_arn TEXT NOT NULL, ip TEXT NOT NULL, port INTEGER NOT NULL,
    registered_at REAL NOT NULL, draining_since REAL,
    PRIMARY KEY (tg_arn, ip, port));
CREATE TABLE IF NOT EXISTS elb_tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
"""

LOAD_BALANCER = "loadbalancer"
TARGET_GROUP = "targetgroup"
LISTENER = "listener"
RULE = "rule"


@dataclass(frozen=True, slots=True)
class Resource:
    arn: str
    kind: str
    parent: str | None
    name: str | None
    data: dict[str, Any]
    extra: dict[str, Any]
    created: float


@dataclass(frozen=True, slots=True)
class TargetRecord:
    tg_arn: str
    ip: str
    port: int
    registered_at: float
    draining_since: float | None = None

    @property
    def draining(self) -> bool:
        return self.draining_since is not None


class AlbStore:
    """Thread-safe; `path=None` keeps everything in memory."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False
        )
        self._lock = threading.RLock()
        self._depth = 0
        self._writes = 0
        with self._lock, self._db:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def writes(self) -> int:
        """Changes whenever a write starts and again when it commits or rolls back, so a view
        built from reads tagged with the count it saw before reading is stale once it differs."""
        return self._writes

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Writes that commit together (or not at all); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            self._writes += 1
            try:
                with self._db:
                    yield self._db
            finally:
                self._depth = 0
                self._writes += 1

    # resources ---------------------------------------------------------------------------------
    def put(self, resource: Resource) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO elb_resources VALUES (?,?,?,?,?,?,?)",
                (
                    resource.arn,
                    resource.kind,
                    resource.parent,
                    resource.name,
                    json.dumps(resource.data),
                    json.dumps(resource.extra),
                    resource.created,
                ),
            )

    def put_many(self, resources: list[Resource]) -> None:
        with self.transaction():
            for resource in resources:
                self.put(resource)

    def get(self, arn: str, kind: str | None = None) -> Resource | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM elb_resources WHERE arn = ?", (arn,)).fetchone()
        resource = _resource(row) if row else None
        if resource is not None and kind is not None and resource.kind != kind:
            return None
        return resource

    def all(self, kind: str, parent: str | None = None) -> list[Resource]:
        query = "SELECT * FROM elb_resources WHERE kind = ?"
        args: tuple[str, ...] = (kind,)
        if parent is not None:
            query += " AND parent = ?"
            args = (kind, parent)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created, arn", args).fetchall()
        return [_resource(r) for r in rows]

    def by_name(self, kind: str, name: str) -> Resource | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM elb_resources WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
        return _resource(row) if row else None

    def delete(self, *arns: str) -> None:
        with self.transaction() as db:
            for arn in arns:
                db.execute("DELETE FROM elb_resources WHERE arn = ?", (arn,))
                db.execute("DELETE FROM elb_tags WHERE arn = ?", (arn,))
                db.execute("DELETE FROM elb_targets WHERE tg_arn = ?", (arn,))

    # targets -----------------------------------------------------------------------------------
    def targets(self, tg_arn: str | None = None) -> list[TargetRecord]:
        query = "SELECT * FROM elb_targets"
        args: tuple[str, ...] = ()
        if tg_arn is not None:
            query += " WHERE tg_arn = ?"
            args = (tg_arn,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY registered_at, ip, port", args).fetchall()
        return [TargetRecord(*r) for r in rows]

    def target(self, tg_arn: str, ip: str, port: int) -> TargetRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM elb_targets WHERE tg_arn = ? AND ip = ? AND port = ?",
                (tg_arn, ip, port),
            ).fetchone()
        return TargetRecord(*row) if row else None

    def put_targets(self, records: list[TargetRecord]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO elb_targets VALUES (?,?,?,?,?)",
                [(r.tg_arn, r.ip, r.port, r.registered_at, r.draining_since) for r in records],
            )

    def remove_targets(self, keys: list[tuple[str, str, int]]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM elb_targets WHERE tg_arn = ? AND ip = ? AND port = ?", keys)

    # tags --------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM elb_tags WHERE arn = ? ORDER BY key", (arn,)
            ).fetchall()
        return {k: v for k, v in rows}

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO elb_tags VALUES (?,?,?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM elb_tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys]
            )


def _resource(row: tuple[Any, ...]) -> Resource:
    arn, kind, parent, name, data, extra, created = row
    return Resource(arn, kind, parent, name, json.loads(data), json.loads(extra), created)
