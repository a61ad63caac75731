"""The SQLite foundation: transactions, change notification, migrations and the codec."""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from miniecs.database import Database, from_json, to_json

SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);"


def test_a_file_database_creates_its_directory_and_runs_in_wal(tmp_path: Path) -> None:
    db = Database(tmp_path / "deep" / "dir" / "x.db", SCHEMA)
    assert (tmp_path / "deep" / "dir" / "x.db").exists()
    assert db.one("PRAGMA journal_mode") == ("wal",)
    db.close()


def test_a_failed_transaction_writes_nothing_and_notifies_nobody() -> None:
    db = Database(None, SCHEMA)
    seen: list[str] = []
    db.on_change(seen.append)

    def write_then_fail() -> None:
        with db.transaction() as sql:
            sql.execute("INSERT INTO kv VALUES ('a', '1')")
            db.changed("kv")
            raise LookupError("after the write")

    with pytest.raises(LookupError, match="after the write"):
        write_then_fail()
    assert db.all("SELECT * FROM kv") == []
    assert seen == []


def test_nested_transactions_commit_with_the_outer_one_and_notify_after_it() -> None:
    db = Database(None, SCHEMA)
    seen: list[tuple[str, int]] = []
    db.on_change(lambda kind: seen.append((kind, len(db.all("SELECT * FROM kv")))))
    before = db.writes
    with db.transaction() as sql:
        sql.execute("INSERT INTO kv VALUES ('a', '1')")
        db.changed("kv")
        with db.transaction() as inner:
            inner.execute("INSERT INTO kv VALUES ('b', '2')")
            db.changed("kv")
        assert seen == [], "listeners wait for the outer commit"
        assert db.writes != before, "a running write already marks cached views stale"
    assert seen == [("kv", 2)], "one notification per kind, after the commit"
    assert db.writes == before + 2


def test_migrations_bring_an_older_file_up_to_date_once(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    old.execute("INSERT INTO kv VALUES ('a', 'old')")
    old.commit()
    old.close()
    runs: list[int] = []

    def upgrade(sql: sqlite3.Connection) -> None:
        runs.append(1)
        sql.execute("UPDATE kv SET v = 'new'")

    Database(path, SCHEMA, [upgrade]).close()
    again = Database(path, SCHEMA, [upgrade])
    assert runs == [1]
    assert again.all("SELECT v FROM kv") == [("new",)]
    fresh = Database(tmp_path / "fresh.db", SCHEMA, [upgrade])
    assert runs == [1], "a new file starts at the latest version"
    assert fresh.one("PRAGMA user_version") == (1,)


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Inner:
    colour: Colour
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str
    inners: tuple[Inner, ...]
    maybe: Inner | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    added_later: int = 7


def test_the_codec_round_trips_nested_records() -> None:
    record = Outer("x", (Inner(Colour.RED, (("a", "b"),)),), Inner(Colour.RED), {"k": [1]})
    assert from_json(Outer, to_json(record)) == record


def test_the_codec_reads_records_of_other_versions() -> None:
    """A missing field takes its default, an unknown one is ignored."""
    assert from_json(Outer, '{"name": "x", "inners": [], "gone": 1}') == Outer("x", ())
