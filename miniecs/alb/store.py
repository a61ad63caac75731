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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miniecs.database import Database

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
    """`path=None` keeps everything in memory."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.db = Database(path, _SCHEMA)

    def close(self) -> None:
        self.db.close()

    @property
    def writes(self) -> int:
        """See `Database.writes`: the controller's cached view is stale once this differs."""
        return self.db.writes

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Writes that commit together (or not at all); nested calls join the outer one."""
        return self.db.transaction()

    # resources ---------------------------------------------------------------------------------
    def put(self, resource: Resource) -> None:
        with self.db.transaction() as sql:
            sql.execute(
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
        with self.db.transaction():
            for resource in resources:
                self.put(resource)

    def get(self, arn: str, kind: str | None = None) -> Resource | None:
        row = self.db.one("SELECT * FROM elb_resources WHERE arn = ?", (arn,))
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
        return [_resource(r) for r in self.db.all(query + " ORDER BY created, arn", args)]

    def by_name(self, kind: str, name: str) -> Resource | None:
        row = self.db.one("SELECT * FROM elb_resources WHERE kind = ? AND name = ?", (kind, name))
        return _resource(row) if row else None

    def delete(self, *arns: str) -> None:
        with self.db.transaction() as sql:
            for arn in arns:
                sql.execute("DELETE FROM elb_resources WHERE arn = ?", (arn,))
                sql.execute("DELETE FROM elb_tags WHERE arn = ?", (arn,))
                sql.execute("DELETE FROM elb_targets WHERE tg_arn = ?", (arn,))

    # targets -----------------------------------------------------------------------------------
    def targets(self, tg_arn: str | None = None) -> list[TargetRecord]:
        query = "SELECT * FROM elb_targets"
        args: tuple[str, ...] = ()
        if tg_arn is not None:
            query += " WHERE tg_arn = ?"
            args = (tg_arn,)
        rows = self.db.all(query + " ORDER BY registered_at, ip, port", args)
        return [TargetRecord(*r) for r in rows]

    def target(self, tg_arn: str, ip: str, port: int) -> TargetRecord | None:
        row = self.db.one(
            "SELECT * FROM elb_targets WHERE tg_arn = ? AND ip = ? AND port = ?",
            (tg_arn, ip, port),
        )
        return TargetRecord(*row) if row else None

    def put_targets(self, records: list[TargetRecord]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "INSERT OR REPLACE INTO elb_targets VALUES (?,?,?,?,?)",
                [(r.tg_arn, r.ip, r.port, r.registered_at, r.draining_since) for r in records],
            )

    def remove_targets(self, keys: list[tuple[str, str, int]]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "DELETE FROM elb_targets WHERE tg_arn = ? AND ip = ? AND port = ?", keys
            )

    # tags --------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        rows = self.db.all("SELECT key, value FROM elb_tags WHERE arn = ? ORDER BY key", (arn,))
        return {k: v for k, v in rows}

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "INSERT OR REPLACE INTO elb_tags VALUES (?,?,?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "DELETE FROM elb_tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys]
            )


def _resource(row: tuple[Any, ...]) -> Resource:
    arn, kind, parent, name, data, extra, created = row
    return Resource(arn, kind, parent, name, json.loads(data), json.loads(extra), created)
