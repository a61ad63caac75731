"""CloudWatch Logs storage: log groups, streams and their events in SQLite.

Events are kept in their own file beside the control plane's state, so a task's output survives
a restart of miniecs. Each event gets a store-wide sequence number (its eventId); reads order
events by (timestamp, sequence), as CloudWatch orders them by timestamp. Storage is bounded:
`prune` drops events older than their group's retention and, past `max_bytes`, the oldest events
of the whole store. The awslogs driver's reader positions are written in the same transaction
as the events they produced, so a restart resumes without loss or duplication.

Small surface, one method per action, one transaction per read-modify-write. Times are epoch
milliseconds, as CloudWatch Logs carries them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

EVENT_OVERHEAD = 26
"""Bytes CloudWatch Logs counts per event on top of its UTF-8 message."""
DEFAULT_MAX_BYTES = 1 << 30
"""Default cap on stored message bytes (1 GiB); the oldest events go first past it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, created INTEGER NOT NULL, retention INTEGER,
    kms_key TEXT, log_class TEXT NOT NULL DEFAULT 'STANDARD');
CREATE TABLE IF NOT EXISTS group_tags (
    grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (grp, key));
CREATE TABLE IF NOT EXISTS streams (
    grp TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
    first_ts INTEGER, last_ts INTEGER, last_ingest INTEGER, PRIMARY KEY (grp, name));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, stream TEXT NOT NULL,
    ts INTEGER NOT NULL, ingest INTEGER NOT NULL, message TEXT NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (grp, stream, ts, seq);
CREATE INDEX IF NOT EXISTS events_by_group ON events (grp, ts, seq);
CREATE TABLE IF NOT EXISTS readers (key TEXT PRIMARY KEY, ts_ns INTEGER NOT NULL,
    count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0);
"""


@dataclass(frozen=True, slots=True)
class LogGroup:
    name: str
    created: int
    retention: int | None
    kms_key: str | None
    log_class: str
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogStream:
    group: str
    name: str
    created: int
    first_ts: int | None
    last_ts: int | None
    last_ingest: int | None
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class LogEvent:
    seq: int
    stream: str
    timestamp: int
    ingestion_time: int
    message: str


@dataclass(frozen=True, slots=True)
class ReaderPosition:
    """Where an awslogs reader stopped: the Docker timestamp (ns) of the last line stored and
    how many lines carrying exactly that timestamp were stored."""

    ts_ns: int
    count: int


class NoSuchGroup(LookupError):
    pass


class NoSuchStream(LookupError):
    pass


class AlreadyExists(Exception):
    pass


class LogStore:
    """Thread-safe; `path=None` keeps everything in memory."""

    def __init__(self, path: Path | str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False
        )
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        with self._lock, self._db:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def on_append(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (from the writer's thread) after events are appended."""
        self._listeners.append(listener)

    # groups

    def create_group(
        self,
        name: str,
        now_ms: int,
        tags: dict[str, str] | None = None,
        kms_key: str | None = None,
        log_class: str = "STANDARD",
    ) -> None:
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO groups VALUES (?, ?, NULL, ?, ?)",
                    (name, now_ms, kms_key, log_class),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(name) from None
            self._db.executemany(
                "INSERT INTO group_tags VALUES (?, ?, ?)",
                [(name, k, v) for k, v in (tags or {}).items()],
            )

    def ensure_group(self, name: str, now_ms: int) -> bool:
        """Create the group unless it exists; True when it was created."""
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO groups VALUES (?, ?, NULL, NULL, 'STANDARD')",
                (name, now_ms),
            )
            return cur.rowcount == 1

    def delete_group(self, name: str) -> None:
        """The group, its streams, events and tags, in one transaction."""
        with self._lock, self._db:
            self._group_locked(name)
            freed = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM events WHERE grp = ?", (name,)
            ).fetchone()[0]
            for table, column in (
                ("events", "grp"),
                ("streams", "grp"),
                ("group_tags", "grp"),
                ("groups", "name"),
            ):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
            self._db.execute("UPDATE totals SET bytes = bytes - ?", (freed,))

    def _group_locked(self, name: str) -> tuple[object, ...]:
        row = self._db.execute("SELECT * FROM groups WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NoSuchGroup(name)
        return tuple(row)

    def group(self, name: str) -> LogGroup | None:
        found = self.groups(exact=name)
        return found[0] if found else None

    def groups(self, prefix: str | None = None, exact: str | None = None) -> list[LogGroup]:
        """Groups in name order, by name prefix or exact name."""
        sql = """SELECT g.name, g.created, g.retention, g.kms_key, g.log_class,
                    (SELECT coalesce(sum(size), 0) FROM events e WHERE e.grp = g.name)
                 FROM groups g"""
        args: list[object] = []
        if exact is not None:
            sql += " WHERE g.name = ?"
            args.append(exact)
        elif prefix:
            sql += " WHERE substr(g.name, 1, ?) = ?"
            args += [len(prefix), prefix]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY g.name", args).fetchall()
        return [LogGroup(*row) for row in rows]

    def set_retention(self, name: str, days: int | None) -> None:
        with self._lock, self._db:
            self._group_locked(name)
            self._db.execute("UPDATE groups SET retention = ? WHERE name = ?", (days, name))

    def tags(self, name: str) -> dict[str, str]:
        with self._lock:
            self._group_locked(name)
            rows = self._db.execute(
                "SELECT key, value FROM group_tags WHERE grp = ? ORDER BY key", (name,)
            ).fetchall()
        return dict(rows)

    def tag(self, name: str, tags: dict[str, str], limit: int = 50) -> bool:
        """Add or replace tags; False (nothing changed) when the group would carry more than
        `limit` tags."""
        with self._lock, self._db:
            self._group_locked(name)
            keys = {
                k for (k,) in self._db.execute("SELECT key FROM group_tags WHERE grp = ?", (name,))
            }
            if len(keys | set(tags)) > limit:
                return False
            self._db.executemany(
                "INSERT OR REPLACE INTO group_tags VALUES (?, ?, ?)",
                [(name, k, v) for k, v in tags.items()],
            )
        return True

    def untag(self, name: str, keys: Iterable[str]) -> None:
        with self._lock, self._db:
            self._group_locked(name)
            self._db.executemany(
                "DELETE FROM group_tags WHERE grp = ? AND key = ?", [(name, k) for k in keys]
            )

    # streams

    def create_stream(self, group: str, name: str, now_ms: int) -> None:
        with self._lock, self._db:
            self._group_locked(group)
            try:
                self._db.execute(
                    "INSERT INTO streams VALUES (?, ?, ?, NULL, NULL, NULL)", (group, name, now_ms)
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(name) from None

    def ensure_stream(self, group: str, name: str, now_ms: int) -> None:
        with self._lock, self._db:
            self._group_locked(group)
            self._db.execute(
                "INSERT OR IGNORE INTO streams VALUES (?, ?, ?, NULL, NULL, NULL)",
                (group, name, now_ms),
            )

    def delete_stream(self, group: str, name: str) -> None:
        with self._lock, self._db:
            self._group_locked(group)
            if (
                self._db.execute(
                    "DELETE FROM streams WHERE grp = ? AND name = ?", (group, name)
                ).rowcount
                == 0
            ):
                raise NoSuchStream(name)
            freed = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM events WHERE grp = ? AND stream = ?",
                (group, name),
            ).fetchone()[0]
            self._db.execute("DELETE FROM events WHERE grp = ? AND stream = ?", (group, name))
            self._db.execute("UPDATE totals SET bytes = bytes - ?", (freed,))

    def streams(self, group: str, prefix: str | None = None) -> list[LogStream]:
        """The group's streams in name order (raises NoSuchGroup)."""
        sql = """SELECT s.grp, s.name, s.created, s.first_ts, s.last_ts, s.last_ingest,
                    (SELECT coalesce(sum(size), 0) FROM events e
                     WHERE e.grp = s.grp AND e.stream = s.name)
                 FROM streams s WHERE s.grp = ?"""
        args: list[object] = [group]
        if prefix:
            sql += " AND substr(s.name, 1, ?) = ?"
            args += [len(prefix), prefix]
        with self._lock:
            self._group_locked(group)
            rows = self._db.execute(sql + " ORDER BY s.name", args).fetchall()
        return [LogStream(*row) for row in rows]

    # events

    def append(
        self,
        group: str,
        stream: str,
        events: Sequence[tuple[int, str]],
        ingest_ms: int,
        reader: tuple[str, ReaderPosition] | None = None,
    ) -> None:
        """Store (timestamp ms, message) events; with `reader`, its new position is written in
        the same transaction. Raises NoSuchGroup / NoSuchStream and then writes nothing."""
        rows = [
            (group, stream, ts, ingest_ms, msg, len(msg.encode()) + EVENT_OVERHEAD)
            for ts, msg in events
        ]
        with self._lock, self._db:
            self._group_locked(group)
            if (
                self._db.execute(
                    "SELECT 1 FROM streams WHERE grp = ? AND name = ?", (group, stream)
                ).fetchone()
                is None
            ):
                raise NoSuchStream(stream)
            self._db.executemany(
                "INSERT INTO events (grp, stream, ts, ingest, message, size) VALUES (?,?,?,?,?,?)",
                rows,
            )
            if rows:
                first = min(r[2] for r in rows)
                last = max(r[2] for r in rows)
                self._db.execute(
                    """UPDATE streams SET first_ts = min(coalesce(first_ts, ?), ?),
                       last_ts = max(coalesce(last_ts, ?), ?), last_ingest = ?
                       WHERE grp = ? AND name = ?""",
                    (first, first, last, last, ingest_ms, group, stream),
                )
                self._db.execute("UPDATE totals SET bytes = bytes + ?", (sum(r[5] for r in rows),))
            if reader is not None:
                key, pos = reader
                self._db.execute(
                    "INSERT OR REPLACE INTO readers VALUES (?, ?, ?)", (key, pos.ts_ns, pos.count)
                )
        for listener in self._listeners:
            listener()

    def reader_position(self, key: str) -> ReaderPosition | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ts_ns, count FROM readers WHERE key = ?", (key,)
            ).fetchone()
        return ReaderPosition(*row) if row else None

    def forget_reader(self, key: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM readers WHERE key = ?", (key,))

    def stream_events(
        self,
        group: str,
        stream: str,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
        before: tuple[int, int] | None,
        limit: int,
        forward: bool,
    ) -> list[LogEvent]:
        """Up to `limit` events of one stream in [start, end), strictly after the (ts, seq)
        cursor `after` or before `before`; oldest first. `forward=False` takes the newest."""
        sql = "SELECT seq, stream, ts, ingest, message FROM events WHERE grp = ? AND stream = ?"
        args: list[object] = [group, stream]
        sql, args = _range(sql, args, start, end, after, before)
        order = "ASC" if forward else "DESC"
        with self._lock:
            self._group_locked(group)
            if (
                self._db.execute(
                    "SELECT 1 FROM streams WHERE grp = ? AND name = ?", (group, stream)
                ).fetchone()
                is None
            ):
                raise NoSuchStream(stream)
            rows = self._db.execute(
                f"{sql} ORDER BY ts {order}, seq {order} LIMIT ?", [*args, limit]
            ).fetchall()
        events = [LogEvent(*row) for row in rows]
        return events if forward else events[::-1]

    def group_events(
        self,
        group: str,
        streams: Sequence[str] | None,
        stream_prefix: str | None,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
        limit: int,
    ) -> list[LogEvent]:
        """Up to `limit` events of a group's streams (all, the named ones, or by prefix),
        interleaved by (timestamp, seq), strictly after the cursor `after`."""
        sql = "SELECT seq, stream, ts, ingest, message FROM events WHERE grp = ?"
        args: list[object] = [group]
        if streams:
            sql += f" AND stream IN ({','.join('?' * len(streams))})"
            args += list(streams)
        if stream_prefix:
            sql += " AND substr(stream, 1, ?) = ?"
            args += [len(stream_prefix), stream_prefix]
        sql, args = _range(sql, args, start, end, after, None)
        with self._lock:
            self._group_locked(group)
            rows = self._db.execute(f"{sql} ORDER BY ts, seq LIMIT ?", [*args, limit]).fetchall()
        return [LogEvent(*row) for row in rows]

    def stored_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT bytes FROM totals").fetchone()[0])

    def prune(self, now_ms: int) -> int:
        """Drop events past their group's retention, then the oldest events while the store
        holds more than `max_bytes`; returns how many events went."""
        removed = 0
        with self._lock, self._db:
            for name, days in self._db.execute(
                "SELECT name, retention FROM groups WHERE retention IS NOT NULL"
            ).fetchall():
                cutoff = now_ms - int(days) * 86_400_000
                freed, count = self._db.execute(
                    "SELECT coalesce(sum(size), 0), count(*) FROM events WHERE grp = ? AND ts < ?",
                    (name, cutoff),
                ).fetchone()
                if count:
                    self._db.execute("DELETE FROM events WHERE grp = ? AND ts < ?", (name, cutoff))
                    self._db.execute("UPDATE totals SET bytes = bytes - ?", (freed,))
                    removed += int(count)
            total = int(self._db.execute("SELECT bytes FROM totals").fetchone()[0])
            while total > self.max_bytes:
                # the oldest tenth of what is over, at least 1000 events, in seq order
                rows = self._db.execute(
                    "SELECT seq, size FROM events ORDER BY seq LIMIT 1000"
                ).fetchall()
                if not rows:
                    break
                over = total - self.max_bytes
                cut, freed = rows[-1][0], 0
                for seq, size in rows:
                    freed += size
                    if freed >= over:
                        cut = seq
                        break
                n = self._db.execute("DELETE FROM events WHERE seq <= ?", (cut,)).rowcount
                freed = sum(size for seq, size in rows if seq <= cut)
                self._db.execute("UPDATE totals SET bytes = bytes - ?", (freed,))
                total -= freed
                removed += n
        return removed


def _range(
    sql: str,
    args: list[object],
    start: int | None,
    end: int | None,
    after: tuple[int, int] | None,
    before: tuple[int, int] | None,
) -> tuple[str, list[object]]:
    if start is not None:
        sql += " AND ts >= ?"
        args.append(start)
    if end is not None:
        sql += " AND ts < ?"
        args.append(end)
    if after is not None:
        sql += " AND (ts > ? OR (ts = ? AND seq > ?))"
        args += [after[0], after[0], after[1]]
    if before is not None:
        sql += " AND (ts < ? OR (ts = ? AND seq < ?))"
        args += [before[0], before[0], before[1]]
    return sql, args
