"""AWS's cron dialect in scheduled actions (issue 14, item 7). The expressions and their
meanings are the examples of AWS's documentation: Application Auto Scaling User Guide,
"Scheduled scaling" (`cron(0 12 ? * MON#1 *)`-style), and the EventBridge cron table it refers
to ("Cron expressions": examples, and the `L`, `W`, `#` and `?` wildcards)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from miniecs.autoscaler.model import ScheduledAction
from miniecs.autoscaler.schedule import ScheduleError, next_run, validate

CREATED = dt.datetime(2026, 12, 3, 10, 7, tzinfo=dt.UTC).timestamp()  # a Thursday


def runs(schedule: str, count: int = 3, timezone: str = "UTC") -> list[str]:
    action = ScheduledAction(
        "a", "service/c1/web", "id", schedule, CREATED, "us-east-1", timezone=timezone
    )
    out, after = [], CREATED
    for _ in range(count):
        when = next_run(action, after)
        assert when is not None
        tz = ZoneInfo(timezone)
        out.append(dt.datetime.fromtimestamp(when, tz).strftime("%a %Y-%m-%d %H:%M"))
        after = when
    return out


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # EventBridge "Cron expressions" examples.
        ("cron(0 10 * * ? *)", ["Fri 2026-12-04 10:00", "Sat 2026-12-05 10:00"]),
        ("cron(15 12 * * ? *)", ["Thu 2026-12-03 12:15", "Fri 2026-12-04 12:15"]),
        ("cron(0 18 ? * MON-FRI *)", ["Thu 2026-12-03 18:00", "Fri 2026-12-04 18:00"]),
        ("cron(0 8 1 * ? *)", ["Fri 2027-01-01 08:00", "Mon 2027-02-01 08:00"]),
        ("cron(0/15 * * * ? *)", ["Thu 2026-12-03 10:15", "Thu 2026-12-03 10:30"]),
        ("cron(0/10 * ? * MON-FRI *)", ["Thu 2026-12-03 10:10", "Thu 2026-12-03 10:20"]),
        ("cron(0/5 8-17 ? * MON-FRI *)", ["Thu 2026-12-03 10:10", "Thu 2026-12-03 10:15"]),
        ("cron(0 9 ? * 2#1 *)", ["Mon 2026-12-07 09:00", "Mon 2027-01-04 09:00"]),
        # The forms issue 14 found refused: the first Monday, the last day of the month.
        ("cron(0 12 ? * MON#1 *)", ["Mon 2026-12-07 12:00", "Mon 2027-01-04 12:00"]),
        ("cron(0 18 L * ? *)", ["Thu 2026-12-31 18:00", "Sun 2027-01-31 18:00"]),
        # W: the weekday nearest the 3rd (Sunday 3 Jan 2027 -> Monday 4).
        ("cron(0 9 3W * ? *)", ["Mon 2027-01-04 09:00", "Wed 2027-02-03 09:00"]),
        # 5L: the last Thursday of the month.
        ("cron(0 9 ? * 5L *)", ["Thu 2026-12-31 09:00", "Thu 2027-01-28 09:00"]),
        # Day of week 1 is Sunday in AWS's dialect (not Monday, not 0).
        ("cron(0 9 ? * 1 *)", ["Sun 2026-12-06 09:00", "Sun 2026-12-13 09:00"]),
        ("cron(0 0 1 1 ? 2028-2029)", ["Sat 2028-01-01 00:00", "Mon 2029-01-01 00:00"]),
    ],
)
def test_aws_documented_cron_examples(schedule: str, expected: list[str]) -> None:
    validate(schedule)
    assert runs(schedule, len(expected)) == expected


@pytest.mark.parametrize(
    "schedule",
    [
        "cron(0 9 * * * *)",  # one of day-of-month and day-of-week must be ?
        "cron(0 9 ? * ? *)",  # ...and only one
        "cron(0 9 * * ?)",  # six fields
        "cron(60 9 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 9 32 * ? *)",
        "cron(0 9 * 13 ? *)",
        "cron(0 9 ? * 8 *)",
        "cron(0 9 ? * MON#6 *)",
        "cron(0 9 * * ? 1969)",
        "cron(0 9 1-5W * ? *)",
    ],
)
def test_cron_that_aws_refuses(schedule: str) -> None:
    with pytest.raises(ScheduleError, match="Invalid cron expression"):
        validate(schedule)


def test_cron_runs_on_the_wall_clock_of_its_timezone() -> None:
    # 9:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer.
    assert runs("cron(0 9 ? * MON#1 *)", 1, "America/New_York") == ["Mon 2026-12-07 09:00"]
    action = ScheduledAction(
        "a", "service/c1/web", "id", "cron(0 9 1 * ? *)", CREATED, "us-east-1",
        timezone="America/New_York",
    )  # fmt: skip
    winter = next_run(action, CREATED)
    assert winter == dt.datetime(2027, 1, 1, 14, tzinfo=dt.UTC).timestamp()
    summer = dt.datetime(2027, 6, 15, tzinfo=dt.UTC).timestamp()
    assert next_run(action, summer) == dt.datetime(2027, 7, 1, 13, tzinfo=dt.UTC).timestamp()
