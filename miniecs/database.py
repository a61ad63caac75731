"""The SQLite foundation every miniecs database stands on: one way to open a file, to write, to
tell listeners about a write, and to keep frozen dataclasses as JSON.

A database is one file in the state dir (or `:memory:` for tests) with its own schema; a store
is a class with one method per action that owns a `Database` and talks SQL through it:

    class SecretStore:
        def __init__(self, path: Path | str | None) -> None:
            self.db = Database(path, _SCHEMA)            # creates the directory and tables

        def put_secret(self, secret: Secret) -> None:
            with self.db.transaction() as sql:           # all or nothing
                sql.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?)",
                            (secret.name, to_json(secret)))
                self.db.changed("secret")                # listeners run after the commit

        def get_secret(self, name: str) -> Secret | None:
            row = self.db.one("SELECT data FROM secrets WHERE name = ?", (name,))
            return None if row is None else from_json(Secret, row[0])

Rules: a read-modify-write reads inside the transaction that writes; a transaction never spans
an `await` (store methods are synchronous), so on the event loop nothing interleaves with it.
Transactions nest: an inner one joins the outer one and commits with it. A schema change adds
a step to `migrations` (run once, in order, recorded in `PRAGMA user_version`).

The control plane uses a database from its event loop only; the one lock here serialises the
rare reader on another thread (tests and the demo read an engine running in `EngineThread`).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import sqlite3
import threading
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

Migration = Callable[[sqlite3.Connection], None]


class Database:
    """One SQLite file (`path`), or a private in-memory database (`None` or ":memory:")."""

    def __init__(
        self, path: Path | str | None, schema: str, migrations: Sequence[Migration] = ()
    ) -> None:
        memory = path is None or str(path) == ":memory:"
        if not memory:
            Path(str(path)).parent.mkdir(parents=True, exist_ok=True)
        self._sql = sqlite3.connect(
            ":memory:" if memory else str(path), isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._depth = 0
        self._writes = 0
        self._pending: list[str] = []
        self._listeners: list[Callable[[str], None]] = []
        if not memory:
            self._sql.execute("PRAGMA journal_mode=WAL")
            self._sql.execute("PRAGMA synchronous=NORMAL")
        with self.transaction() as sql:
            version = int(sql.execute("PRAGMA user_version").fetchone()[0])
            fresh = not sql.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
            # A file older than its migrations is brought up to date before the schema's
            # IF NOT EXISTS statements run; a new file starts at the latest version.
            if not fresh:
                for migrate in migrations[version:]:
                    migrate(sql)
            for statement in schema.split(";"):
                if statement.strip():
                    sql.execute(statement)
            sql.execute(f"PRAGMA user_version = {len(migrations)}")

    def close(self) -> None:
        with self._lock:
            self._sql.close()

    @property
    def writes(self) -> int:
        """Changes when a write transaction starts and again when it ends, so a view built
        from reads tagged with the count seen before reading is stale once it differs."""
        return self._writes

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Statements that commit together or not at all; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._sql
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            self._writes += 1
            self._sql.execute("BEGIN IMMEDIATE")
            try:
                yield self._sql
            except BaseException:
                self._sql.execute("ROLLBACK")
                self._pending.clear()
                raise
            else:
                self._sql.execute("COMMIT")
            finally:
                self._depth = 0
                self._writes += 1
            kinds, self._pending = list(dict.fromkeys(self._pending)), []
        for kind in kinds:
            for listener in self._listeners:
                listener(kind)

    def one(self, query: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._sql.execute(query, args).fetchone()
            return row

    def all(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._sql.execute(query, args).fetchall()

    # change notification -------------------------------------------------------------------
    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(kind)` after each committed transaction that wrote that kind."""
        self._listeners.append(listener)

    def changed(self, kind: str) -> None:
        """Inside a transaction: tell the listeners about `kind` once it commits."""
        assert self._depth, "changed() belongs inside the transaction that writes"
        self._pending.append(kind)


# dataclass <-> JSON ------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """A frozen record as plain JSON values: dataclasses become objects, enums their values,
    tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def to_json(record: Any) -> str:
    return json.dumps(encode(record))


def from_json(cls: type[T], text: str) -> T:
    """The inverse of `to_json`, guided by `cls`'s field types. Keys the class does not know
    are ignored and missing ones take their defaults, so records written by an older or newer
    version still load."""
    return decode(cls, json.loads(text))


def decode(cls: type[T], value: Any) -> T:
    record: T = _decoder(cls)(value)
    return record


def _decoder(tp: Any) -> Callable[[Any], Any]:
    return _cached_decoder(tp)


@functools.cache
def _cached_decoder(tp: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(tp) if f.init}
        cls: Any = tp

        def record(data: Any) -> Any:
            return cls(**{k: fields[k](v) for k, v in data.items() if k in fields})

        return record
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if origin in (types.UnionType, typing.Union):
        inner = [_decoder(a) for a in args if a is not type(None)]
        if len(inner) != 1:
            return _same
        one = inner[0]
        return lambda v: None if v is None else one(v)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda v: () if v is None else tuple(item(x) for x in v)
        items = [_decoder(a) for a in args]
        return lambda v: tuple(f(x) for f, x in zip(items, v, strict=True))
    return _same


def _same(value: Any) -> Any:
    return value
