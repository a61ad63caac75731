"""Secrets Manager secrets (with versions and staging labels) and SSM Parameter Store
parameters (with versions) in SQLite, in their own file beside the control plane's state.

Small surface, one method per action, one transaction per read-modify-write. Values are stored
as given: this is a local emulator, not a vault (the README says so). Times are control-plane
epoch seconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from miniecs.database import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY, arn TEXT NOT NULL UNIQUE, description TEXT, kms_key TEXT,
    created REAL NOT NULL, changed REAL NOT NULL, accessed REAL, deleted REAL, delete_at REAL);
CREATE TABLE IF NOT EXISTS secret_versions (
    name TEXT NOT NULL, version_id TEXT NOT NULL, stages TEXT NOT NULL, string TEXT,
    binary BLOB, created REAL NOT NULL, PRIMARY KEY (name, version_id));
CREATE TABLE IF NOT EXISTS secret_tags (
    name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key));
CREATE TABLE IF NOT EXISTS parameters (
    name TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
    modified REAL NOT NULL, description TEXT, allowed_pattern TEXT, tier TEXT NOT NULL,
    data_type TEXT NOT NULL, key_id TEXT);
CREATE TABLE IF NOT EXISTS parameter_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, value TEXT NOT NULL,
    modified REAL NOT NULL, PRIMARY KEY (name, version));
"""
CURRENT, PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"


@dataclass(frozen=True, slots=True)
class SecretVersion:
    version_id: str
    stages: tuple[str, ...]
    string: str | None
    binary: bytes | None
    created: float


@dataclass(frozen=True, slots=True)
class Secret:
    name: str
    arn: str
    description: str | None
    kms_key: str | None
    created: float
    changed: float
    accessed: float | None
    deleted: float | None
    delete_at: float | None
    tags: dict[str, str] = field(default_factory=dict)
    versions: tuple[SecretVersion, ...] = ()

    def version(self, version_id: str | None, stage: str | None) -> SecretVersion | None:
        for v in self.versions:
            if (version_id is None or v.version_id == version_id) and (
                stage is None or stage in v.stages
            ):
                return v
        return None


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    value: str
    version: int
    modified: float
    description: str | None
    allowed_pattern: str | None
    tier: str
    data_type: str
    key_id: str | None


class Exists(Exception):
    pass


class Missing(LookupError):
    pass


class SecretStore:
    """On the shared `Database`; `path=None` keeps everything in memory."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.db = Database(path, _SCHEMA)

    def close(self) -> None:
        self.db.close()

    # secrets

    def create_secret(
        self,
        name: str,
        arn: str,
        now: float,
        description: str | None,
        kms_key: str | None,
        tags: dict[str, str],
        version: SecretVersion | None,
    ) -> None:
        """Raises Exists when the name is taken (also by a secret scheduled for deletion)."""
        with self.db.transaction() as sql:
            try:
                sql.execute(
                    "INSERT INTO secrets VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                    (name, arn, description, kms_key, now, now),
                )
            except sqlite3.IntegrityError:
                raise Exists(name) from None
            sql.executemany(
                "INSERT INTO secret_tags VALUES (?, ?, ?)", [(name, k, v) for k, v in tags.items()]
            )
            if version is not None:
                self._put_version_locked(sql, name, version, now)

    def _put_version_locked(
        self, sql: sqlite3.Connection, name: str, version: SecretVersion, now: float
    ) -> None:
        """Add a version; labels it carries move to it from older versions, and the version
        losing AWSCURRENT gets AWSPREVIOUS."""
        rows = sql.execute(
            "SELECT version_id, stages FROM secret_versions WHERE name = ?", (name,)
        ).fetchall()
        for vid, stages_text in rows:
            stages = [s for s in json.loads(stages_text) if s not in version.stages]
            had_current = CURRENT in json.loads(stages_text)
            if CURRENT in version.stages:
                stages = [s for s in stages if s != PREVIOUS]
                if had_current:
                    stages.append(PREVIOUS)
            sql.execute(
                "UPDATE secret_versions SET stages = ? WHERE name = ? AND version_id = ?",
                (json.dumps(stages), name, vid),
            )
        sql.execute(
            "INSERT INTO secret_versions VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                version.version_id,
                json.dumps(list(version.stages)),
                version.string,
                version.binary,
                version.created,
            ),
        )
        # versions without a label are deprecated; keep at most 100 of them (AWS's quota)
        sql.execute(
            """DELETE FROM secret_versions WHERE name = ? AND stages = '[]' AND version_id NOT IN
               (SELECT version_id FROM secret_versions WHERE name = ? AND stages = '[]'
                ORDER BY created DESC LIMIT 100)""",
            (name, name),
        )
        sql.execute("UPDATE secrets SET changed = ? WHERE name = ?", (now, name))

    def put_version(self, name: str, version: SecretVersion, now: float) -> None:
        """Raises Missing for an unknown secret, Exists for a version id already used."""
        with self.db.transaction() as sql:
            if sql.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone() is None:
                raise Missing(name)
            if sql.execute(
                "SELECT 1 FROM secret_versions WHERE name = ? AND version_id = ?",
                (name, version.version_id),
            ).fetchone():
                raise Exists(version.version_id)
            self._put_version_locked(sql, name, version, now)

    def update_secret(
        self, name: str, now: float, description: str | None, kms_key: str | None
    ) -> None:
        with self.db.transaction() as sql:
            cur = sql.execute(
                """UPDATE secrets SET description = coalesce(?, description),
                   kms_key = coalesce(?, kms_key), changed = ? WHERE name = ?""",
                (description, kms_key, now, name),
            )
            if cur.rowcount == 0:
                raise Missing(name)

    def secret(self, name_or_arn: str) -> Secret | None:
        """By name, full ARN, or ARN without the random suffix."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT * FROM secrets WHERE name = ? OR arn = ?", (name_or_arn, name_or_arn)
            ).fetchone()
            if row is None and name_or_arn.startswith("arn:"):
                row = sql.execute(
                    "SELECT * FROM secrets WHERE substr(arn, 1, length(arn) - 7) = ?",
                    (name_or_arn,),
                ).fetchone()
            if row is None:
                return None
            return self._secret_locked(sql, row)

    def _secret_locked(self, sql: sqlite3.Connection, row: tuple[object, ...]) -> Secret:
        name = str(row[0])
        tags = dict(
            sql.execute(
                "SELECT key, value FROM secret_tags WHERE name = ? ORDER BY key", (name,)
            ).fetchall()
        )
        versions = tuple(
            SecretVersion(vid, tuple(json.loads(stages)), string, binary, created)
            for vid, stages, string, binary, created in sql.execute(
                """SELECT version_id, stages, string, binary, created FROM secret_versions
                   WHERE name = ? ORDER BY created DESC""",
                (name,),
            ).fetchall()
        )
        return Secret(
            str(row[0]),
            str(row[1]),
            row[2],  # type: ignore[arg-type]
            row[3],  # type: ignore[arg-type]
            float(row[4]),  # type: ignore[arg-type]
            float(row[5]),  # type: ignore[arg-type]
            row[6],  # type: ignore[arg-type]
            row[7],  # type: ignore[arg-type]
            row[8],  # type: ignore[arg-type]
            tags=tags,
            versions=versions,
        )

    def secrets(self) -> list[Secret]:
        with self.db.transaction() as sql:
            rows = sql.execute("SELECT * FROM secrets ORDER BY created").fetchall()
            return [self._secret_locked(sql, r) for r in rows]

    def touch_secret(self, name: str, now: float) -> None:
        """Record an access (LastAccessedDate is a date: the day, as AWS keeps it)."""
        with self.db.transaction() as sql:
            sql.execute(
                "UPDATE secrets SET accessed = ? WHERE name = ?", (now // 86400 * 86400, name)
            )

    def schedule_deletion(self, name: str, now: float, delete_at: float | None) -> None:
        """Mark for deletion at `delete_at`, or delete now when it is None."""
        with self.db.transaction() as sql:
            if delete_at is None:
                for table in ("secret_versions", "secret_tags", "secrets"):
                    sql.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
            else:
                sql.execute(
                    "UPDATE secrets SET deleted = ?, delete_at = ? WHERE name = ?",
                    (now, delete_at, name),
                )

    def restore(self, name: str) -> None:
        with self.db.transaction() as sql:
            sql.execute(
                "UPDATE secrets SET deleted = NULL, delete_at = NULL WHERE name = ?", (name,)
            )

    def purge(self, now: float) -> int:
        """Delete the secrets whose recovery window has passed."""
        with self.db.transaction() as sql:
            names = [
                n
                for (n,) in sql.execute(
                    "SELECT name FROM secrets WHERE delete_at IS NOT NULL AND delete_at <= ?",
                    (now,),
                )
            ]
            for name in names:
                for table in ("secret_versions", "secret_tags", "secrets"):
                    sql.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
        return len(names)

    def tag_secret(self, name: str, tags: dict[str, str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "INSERT OR REPLACE INTO secret_tags VALUES (?, ?, ?)",
                [(name, k, v) for k, v in tags.items()],
            )

    def untag_secret(self, name: str, keys: Iterable[str]) -> None:
        with self.db.transaction() as sql:
            sql.executemany(
                "DELETE FROM secret_tags WHERE name = ? AND key = ?", [(name, k) for k in keys]
            )

    # parameters

    def put_parameter(
        self,
        name: str,
        type_: str,
        value: str,
        now: float,
        overwrite: bool,
        description: str | None,
        allowed_pattern: str | None,
        tier: str,
        data_type: str,
        key_id: str | None,
    ) -> int:
        """Store a new version; returns its number. Raises Exists unless `overwrite`."""
        with self.db.transaction() as sql:
            row = sql.execute(
                "SELECT version, description, allowed_pattern FROM parameters WHERE name = ?",
                (name,),
            ).fetchone()
            if row is not None and not overwrite:
                raise Exists(name)
            version = 1 if row is None else int(row[0]) + 1
            if row is not None:
                description = description if description is not None else row[1]
                allowed_pattern = allowed_pattern if allowed_pattern is not None else row[2]
            sql.execute(
                "INSERT OR REPLACE INTO parameters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    type_,
                    value,
                    version,
                    now,
                    description,
                    allowed_pattern,
                    tier,
                    data_type,
                    key_id,
                ),
            )
            sql.execute(
                "INSERT OR REPLACE INTO parameter_versions VALUES (?, ?, ?, ?, ?)",
                (name, version, type_, value, now),
            )
            return version

    def parameter(self, name: str, version: int | None = None) -> Parameter | None:
        with self.db.transaction() as sql:
            row = sql.execute("SELECT * FROM parameters WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            param = Parameter(*row)
            if version is None or version == param.version:
                return param
            old = sql.execute(
                """SELECT type, value, modified FROM parameter_versions
                   WHERE name = ? AND version = ?""",
                (name, version),
            ).fetchone()
        if old is None:
            return None
        return Parameter(
            name,
            old[0],
            old[1],
            version,
            old[2],
            param.description,
            param.allowed_pattern,
            param.tier,
            param.data_type,
            param.key_id,
        )

    def parameters(self) -> list[Parameter]:
        with self.db.transaction() as sql:
            rows = sql.execute("SELECT * FROM parameters ORDER BY name").fetchall()
        return [Parameter(*r) for r in rows]

    def delete_parameter(self, name: str) -> bool:
        with self.db.transaction() as sql:
            sql.execute("DELETE FROM parameter_versions WHERE name = ?", (name,))
            return sql.execute("DELETE FROM parameters WHERE name = ?", (name,)).rowcount == 1
