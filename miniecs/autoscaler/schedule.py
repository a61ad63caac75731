"""Scheduled-action expressions, as Application Auto Scaling writes them: `at(...)` for one
time, `rate(N unit)` for a fixed interval, `cron(min hour day-of-month month day-of-week year)`.

`next_run(action, after)` is pure: the first time strictly after `after` at which the action
is due (control-plane clock seconds), or None when it never runs again.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_croniter import AwsCroniter

from miniecs.autoscaler.model import ScheduledAction

_RATE_UNITS = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}


class ScheduleError(ValueError):
    """The expression is not one Application Auto Scaling accepts."""


def zone(name: str | None) -> dt.tzinfo:
    if not name or name.upper() == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Time zone {name} is not supported.") from None


def _at(expr: str, tz: dt.tzinfo) -> float:
    try:
        when = dt.datetime.strptime(expr, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ScheduleError(f"Invalid at expression: at({expr})") from None
    return when.replace(tzinfo=tz).timestamp()


def _rate(expr: str) -> float:
    m = re.fullmatch(r"\s*(\d+)\s+(\w+)\s*", expr)
    if not m or m.group(2) not in _RATE_UNITS or int(m.group(1)) <= 0:
        raise ScheduleError(f"Invalid rate expression: rate({expr})")
    return int(m.group(1)) * _RATE_UNITS[m.group(2)]


@lru_cache(maxsize=256)
def _cron(expr: str) -> AwsCroniter:
    """AWS's cron dialect (six fields with a year; `?` in exactly one of the day fields; `L`,
    `W` and `#`), parsed by aws-croniter, which implements AWS's grammar."""
    try:
        return AwsCroniter(expr)
    except Exception as exc:  # the parser's errors are ValueErrors, but any refusal is ours
        raise ScheduleError(f"Invalid cron expression: cron({expr}). {exc}") from None


@lru_cache(maxsize=1024)
def _cron_next(expr: str, timezone: str | None, after: float) -> float | None:
    """The first minute strictly after `after` that `expr` matches on the wall clock of
    `timezone`, or None when it never matches again."""
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(after, tz).replace(tzinfo=None)
    # aws-croniter works in UTC: give it the zone's wall-clock time as if it were UTC.
    try:
        (found,) = _cron(expr).get_next(local.replace(tzinfo=dt.UTC))
    except ScheduleError:
        raise
    except Exception:
        return None
    if found is None:
        return None
    return float(found.replace(tzinfo=None).replace(tzinfo=tz).timestamp())


def validate(schedule: str, timezone: str | None = None) -> None:
    """Raise ScheduleError unless `schedule` is an at, rate or cron expression."""
    tz = zone(timezone)
    kind, _, rest = schedule.partition("(")
    if not rest.endswith(")"):
        raise ScheduleError(f"Invalid schedule expression: {schedule}")
    body = rest[:-1]
    if kind == "at":
        _at(body, tz)
    elif kind == "rate":
        _rate(body)
    elif kind == "cron":
        _cron(body)
    else:
        raise ScheduleError(f"Invalid schedule expression: {schedule}")


def next_run(action: ScheduledAction, after: float) -> float | None:
    """The first time > `after` the action runs, within its StartTime/EndTime."""
    tz = zone(action.timezone)
    kind, _, rest = action.schedule.partition("(")
    body = rest[:-1]
    start = action.start_time if action.start_time is not None else action.created_at
    after = max(after, start - 1e-6) if kind != "at" else after
    result: float | None
    if kind == "at":
        when = _at(body, tz)
        result = when if when > after else None
    elif kind == "rate":
        interval = _rate(body)
        periods = int((after - start) // interval) + 1
        result = start + periods * interval
    else:
        result = _cron_next(body, action.timezone, after)
    if result is not None and action.end_time is not None and result > action.end_time:
        return None
    return result
