"""When a subscriber is due: pure functions over (now, time zone, frequency, weekday, hour).

A subscriber is due once per period: their local calendar day (daily) or ISO week (weekly, on
their weekday), from their delivery hour on. "From the hour on", not "at the hour": a planner
run that comes late (worker down, a DST jump that skips the hour) still finds them due the
same day, and the period key, with a unique constraint on (subscriber, period), makes a second
digest impossible when a DST fall-back repeats the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAILY = "daily"
WEEKLY = "weekly"


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class LocalNow:
    day: date
    hour: int
    weekday: int

    @property
    def daily_period(self) -> str:
        return self.day.isoformat()

    @property
    def weekly_period(self) -> str:
        year, week, _ = self.day.isocalendar()
        return f"{year}-W{week:02d}"


def local_now(now: datetime, tz: str) -> LocalNow:
    local = now.astimezone(zone(tz))
    return LocalNow(local.date(), local.hour, local.weekday())


def due_period(now: datetime, tz: str, frequency: str, weekday: int, hour: int) -> str | None:
    """The period key if a subscriber with these settings is due at ``now``, else None."""
    local = local_now(now, tz)
    if local.hour < hour:
        return None
    if frequency == WEEKLY:
        return local.weekly_period if local.weekday == weekday else None
    return local.daily_period
