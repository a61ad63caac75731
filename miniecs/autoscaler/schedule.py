"""Scheduled-action expressions, as Application Auto Scaling writes them: `at(...)` for one
time, `rate(N unit)` for a fixed interval, `cron(min hour day-of-month month day-of-week year)`.

`next_run(action, after)` is pure: the first time strictly after `after` at which the action
is due (control-plane clock seconds), or None when it never runs again.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from miniecs.autoscaler.model import ScheduledAction

_RATE_UNITS = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS = (  # name, low, high, names
    ("Minutes", 0, 59, ()),
    ("Hours", 0, 23, ()),
    ("Day-of-month", 1, 31, ()),
    ("Month", 1, 12, _MONTHS),
    ("Day-of-week", 1, 7, _DAYS),
    ("Year", 1970, 2199, ()),
)
MAX_CRON_SCAN = 366 * 24 * 60
"""Minutes a cron expression is searched ahead before it is taken to never run."""


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


def _field(text: str, index: int) -> frozenset[int] | None:
    """The values a cron field allows; None means any."""
    name, lo, hi, names = _FIELDS[index]
    if text in ("*", "?"):
        return None

    def number(token: str) -> int:
        if token.upper() in names:
            return names.index(token.upper()) + lo
        if not token.isdigit() or not lo <= int(token) <= hi:
            raise ScheduleError(f"Invalid cron expression: {name} field value {token!r}")
        return int(token)

    out: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"Invalid cron expression: {name} field value {part!r}")
        if span == "*":
            first, last = lo, hi
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = number(a), number(b)
        else:
            first = number(span)
            last = hi if step else first
        out.update(range(first, last + 1, step or 1))
    return frozenset(out)


def _cron(expr: str) -> tuple[frozenset[int] | None, ...]:
    parts = expr.split()
    if len(parts) != 6:
        raise ScheduleError(f"Invalid cron expression: cron({expr}) needs six fields")
    return tuple(_field(p, i) for i, p in enumerate(parts))


def _matches(fields: tuple[frozenset[int] | None, ...], t: dt.datetime) -> bool:
    dow = (t.isoweekday() % 7) + 1  # SUN=1 ... SAT=7
    values = (t.minute, t.hour, t.day, t.month, dow, t.year)
    return all(f is None or v in f for f, v in zip(fields, values, strict=True))


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
        fields = _cron(body)
        minute = dt.datetime.fromtimestamp(after, tz).replace(second=0, microsecond=0)
        result = None
        for _ in range(MAX_CRON_SCAN):
            minute += dt.timedelta(minutes=1)
            if _matches(fields, minute):
                result = minute.timestamp()
                break
    if result is not None and action.end_time is not None and result > action.end_time:
        return None
    return result
