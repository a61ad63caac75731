"""CloudWatch-style metric storage: statistic sets in time buckets, queried by period.

Every series is identified by (namespace, metric name, dimensions). A value or a statistic set
is put at a timestamp (control-plane clock seconds) and merged into the bucket of its storage
resolution (1 s for high-resolution metrics, 60 s for standard ones), as CloudWatch keeps them.
A query asks for one series between two times and aggregates the buckets into periods;
CloudWatch's statistics (SampleCount, Sum, Minimum, Maximum, Average) come from the merged set.

Buckets live in SQLite (their own file beside the control plane's state), so datapoints survive
a restart of miniecs, as CloudWatch's do when the agent restarts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from miniecs.database import Database

Dimensions = tuple[tuple[str, str], ...]
"""Dimension (name, value) pairs, sorted by name: the canonical form used as a key."""

RETENTION_SECONDS = 15 * 24 * 3600.0
"""How long buckets are kept (CloudWatch keeps 1-minute data 15 days)."""


def dimensions(pairs: Iterable[tuple[str, str]] | dict[str, str]) -> Dimensions:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class MetricId:
    namespace: str
    name: str
    dimensions: Dimensions = ()


@dataclass(frozen=True, slots=True)
class Stats:
    """A CloudWatch StatisticSet."""

    sample_count: float
    sum: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, value: float) -> Stats:
        return cls(1.0, value, value, value)

    @property
    def average(self) -> float:
        return self.sum / self.sample_count if self.sample_count else 0.0

    def merge(self, other: Stats) -> Stats:
        return Stats(
            self.sample_count + other.sample_count,
            self.sum + other.sum,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )

    def statistic(self, name: str) -> float:
        """One of CloudWatch's statistic names: SampleCount, Sum, Minimum, Maximum, Average."""
        return {
            "SampleCount": self.sample_count,
            "Sum": self.sum,
            "Minimum": self.minimum,
            "Maximum": self.maximum,
            "Average": self.average,
        }[name]


@dataclass(frozen=True, slots=True)
class Datapoint:
    timestamp: float
    """Start of the period."""
    stats: Stats
    unit: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    namespace TEXT NOT NULL, name TEXT NOT NULL, dims TEXT NOT NULL,
    ts REAL NOT NULL, resolution INTEGER NOT NULL, unit TEXT NOT NULL,
    n REAL NOT NULL, total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    PRIMARY KEY (namespace, name, dims, ts, unit));
CREATE TABLE IF NOT EXISTS series (
    namespace TEXT NOT NULL, name TEXT NOT NULL, dims TEXT NOT NULL,
    last REAL NOT NULL, PRIMARY KEY (namespace, name, dims));
CREATE TABLE IF NOT EXISTS periods (writer TEXT NOT NULL PRIMARY KEY, start REAL NOT NULL);
"""


def _key_buckets_by_unit(sql: sqlite3.Connection) -> None:
    """Version 1: buckets keyed without their unit get the unit in their key, so data of
    different units in one period stay apart (the rows stay as they are)."""
    sql.execute("ALTER TABLE buckets RENAME TO buckets_before_units")
    sql.execute(
        """CREATE TABLE buckets (
            namespace TEXT NOT NULL, name TEXT NOT NULL, dims TEXT NOT NULL,
            ts REAL NOT NULL, resolution INTEGER NOT NULL, unit TEXT NOT NULL,
            n REAL NOT NULL, total REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
            PRIMARY KEY (namespace, name, dims, ts, unit))"""
    )
    sql.execute("INSERT INTO buckets SELECT * FROM buckets_before_units")
    sql.execute("DROP TABLE buckets_before_units")


class MetricStore:
    """`path=None` keeps everything in memory."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.db = Database(path, _SCHEMA, (_key_buckets_by_unit,))

    def close(self) -> None:
        self.db.close()

    def put(
        self,
        metric: MetricId,
        timestamp: float,
        value: float | Stats,
        unit: str = "None",
        resolution: int = 60,
    ) -> None:
        self.put_many([(metric, timestamp, value, unit, resolution)])

    def put_many(self, points: Iterable[tuple[MetricId, float, float | Stats, str, int]]) -> None:
        """Merge each (metric, timestamp, value or stats, unit, resolution) into its bucket."""
        rows, series = self._rows(points)
        with self.db.transaction() as sql:
            self._write(sql, rows, series)

    def put_period(
        self,
        writer: str,
        start: float,
        points: Iterable[tuple[MetricId, float, float | Stats, str, int]],
    ) -> bool:
        """Merge `points` as `writer`'s datapoints of the period starting at `start`, once:
        when the writer already wrote that period or a later one (a restarted control-plane
        clock can reopen a period already written) nothing is written and it returns False.
        The points and the writer's last period are committed together."""
        rows, series = self._rows(points)
        with self.db.transaction() as sql:
            row = sql.execute("SELECT start FROM periods WHERE writer = ?", (writer,)).fetchone()
            if row is not None and row[0] >= start:
                return False
            self._write(sql, rows, series)
            sql.execute(
                """INSERT INTO periods VALUES (?, ?)
                   ON CONFLICT (writer) DO UPDATE SET start = excluded.start""",
                (writer, start),
            )
        return True

    @staticmethod
    def _rows(
        points: Iterable[tuple[MetricId, float, float | Stats, str, int]],
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        rows: list[tuple[object, ...]] = []
        series: list[tuple[object, ...]] = []
        for metric, timestamp, value, unit, resolution in points:
            stats = value if isinstance(value, Stats) else Stats.of(float(value))
            res = 1 if resolution < 60 else 60
            ts = float(int(timestamp // res) * res)
            dims = json.dumps(metric.dimensions)
            rows.append(
                (
                    metric.namespace,
                    metric.name,
                    dims,
                    ts,
                    res,
                    unit,
                    stats.sample_count,
                    stats.sum,
                    stats.minimum,
                    stats.maximum,
                )
            )
            series.append((metric.namespace, metric.name, dims, timestamp))
        return rows, series

    @staticmethod
    def _write(
        sql: sqlite3.Connection, rows: list[tuple[object, ...]], series: list[tuple[object, ...]]
    ) -> None:
        sql.executemany(
            """INSERT INTO buckets VALUES (?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT (namespace, name, dims, ts, unit) DO UPDATE SET
               n = n + excluded.n, total = total + excluded.total,
               lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)""",
            rows,
        )
        sql.executemany(
            """INSERT INTO series VALUES (?,?,?,?) ON CONFLICT (namespace, name, dims)
               DO UPDATE SET last = max(last, excluded.last)""",
            series,
        )

    def metrics(
        self,
        namespace: str | None = None,
        name: str | None = None,
        dimension_filters: Sequence[tuple[str, str | None]] = (),
        since: float | None = None,
    ) -> list[MetricId]:
        """Series matching ListMetrics' filters: each filter (name, value or None for any
        value) must be among the series' dimensions; `since` keeps recently active ones."""
        sql = "SELECT namespace, name, dims FROM series WHERE 1=1"
        args: list[object] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            args.append(namespace)
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        if since is not None:
            sql += " AND last >= ?"
            args.append(since)
        rows = self.db.all(sql + " ORDER BY namespace, name, dims", args)
        out = []
        for ns, metric_name, dims_text in rows:
            dims = tuple((k, v) for k, v in json.loads(dims_text))
            present = dict(dims)
            if all(k in present and (v is None or present[k] == v) for k, v in dimension_filters):
                out.append(MetricId(ns, metric_name, dims))
        return out

    def datapoints(
        self,
        metric: MetricId,
        start: float,
        end: float,
        period: int,
        by_unit: bool = False,
        origin: float = 0.0,
    ) -> list[Datapoint]:
        """Datapoints for each period in [start, end) that has data, oldest first. Periods are
        aligned to multiples of `period` from `origin` (the epoch unless given). With
        `by_unit`, data of different units in one period stay apart, one datapoint per unit,
        as GetMetricStatistics answers; without, they are merged."""
        rows = self.db.all(
            """SELECT ts, unit, n, total, lo, hi FROM buckets
               WHERE namespace = ? AND name = ? AND dims = ? AND ts >= ? AND ts < ?
               ORDER BY ts""",
            (metric.namespace, metric.name, json.dumps(metric.dimensions), start, end),
        )
        periods: dict[tuple[float, str], tuple[Stats, str]] = {}
        for ts, unit, n, total, lo, hi in rows:
            at = float(origin + ((ts - origin) // period) * period)
            key = (at, unit if by_unit else "")
            stats = Stats(n, total, lo, hi)
            if key in periods:
                periods[key] = (periods[key][0].merge(stats), periods[key][1])
            else:
                periods[key] = (stats, unit)
        return [Datapoint(at, s, u) for (at, _), (s, u) in sorted(periods.items())]

    def prune(self, now: float, retention: float = RETENTION_SECONDS) -> int:
        with self.db.transaction() as sql:
            cur = sql.execute("DELETE FROM buckets WHERE ts < ?", (now - retention,))
            sql.execute("DELETE FROM series WHERE last < ?", (now - retention,))
            return cur.rowcount
