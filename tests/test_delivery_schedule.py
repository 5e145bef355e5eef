"""Who is due when: local hours, weekdays, and DST transitions that neither skip nor double."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from digest.delivery.schedule import due_period


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tz", "hour", "expected"),
    [
        (utc(2026, 3, 11, 6, 59), "Europe/Berlin", 8, None),  # 07:59 in Berlin
        (utc(2026, 3, 11, 7, 0), "Europe/Berlin", 8, "2026-03-11"),  # 08:00
        (utc(2026, 3, 11, 22, 30), "Europe/Berlin", 8, "2026-03-11"),  # 23:30: still that day
        (utc(2026, 3, 11, 23, 30), "Europe/Berlin", 8, None),  # 00:30 on the 12th
        (utc(2026, 3, 12, 2, 0), "America/Los_Angeles", 18, "2026-03-11"),  # 19:00 the day before
        (utc(2026, 3, 11, 20, 0), "Asia/Tokyo", 5, "2026-03-12"),  # 05:00 the next day
        (utc(2026, 3, 11, 8, 0), "Nowhere/Invalid", 8, "2026-03-11"),  # unknown zone: UTC
    ],
)
def test_daily_due_from_the_local_hour_on(
    now: datetime, tz: str, hour: int, expected: str | None
) -> None:
    assert due_period(now, tz, "daily", 0, hour) == expected


def test_weekly_due_only_on_the_chosen_weekday() -> None:
    wednesday = utc(2026, 3, 11, 12, 0)
    assert due_period(wednesday, "UTC", "weekly", 2, 9) == "2026-W11"
    assert due_period(wednesday, "UTC", "weekly", 0, 9) is None
    assert due_period(wednesday, "UTC", "weekly", 2, 13) is None


def hourly(start: datetime, hours: int) -> list[datetime]:
    return [start + timedelta(minutes=5 * i) for i in range(hours * 12)]


@pytest.mark.parametrize(
    ("tz", "start", "hour", "dst_day"),
    [
        ("Europe/Berlin", utc(2026, 3, 28, 0, 0), 2, "2026-03-29"),  # 02:00 does not exist
        ("Europe/Berlin", utc(2026, 10, 24, 0, 0), 2, "2026-10-25"),  # 02:00 happens twice
        ("America/New_York", utc(2026, 3, 7, 0, 0), 2, "2026-03-08"),
        ("America/New_York", utc(2026, 10, 31, 0, 0), 1, "2026-11-01"),
        ("Australia/Lord_Howe", utc(2026, 4, 3, 0, 0), 1, "2026-04-05"),  # a 30-minute shift
    ],
)
def test_dst_changes_neither_skip_nor_double_a_day(
    tz: str, start: datetime, hour: int, dst_day: str
) -> None:
    """A planner every 5 minutes over three days around a DST change."""
    periods = [p for p in (due_period(t, tz, "daily", 0, hour) for t in hourly(start, 72)) if p]
    days = list(dict.fromkeys(periods))
    assert dst_day in days  # not skipped
    assert periods == sorted(periods)  # once a day is over it never comes back (no double)
    dates = [datetime.fromisoformat(d) for d in days]
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(dates))
