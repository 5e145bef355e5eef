"""Date parsing for the dump formats, including pages that print a date without its year."""

from __future__ import annotations

import re
from datetime import date
from email.utils import parsedate_to_datetime

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
# "Mar 11", "Mar 11, 2025", "March 11 2025", "Sept. 3": how the HF pages print dates.
MONTH_DAY = re.compile(r"^(?P<month>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:,?\s+(?P<year>\d{4}))?$")
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


def most_recent(month: int, day: int, not_after: date) -> date | None:
    """The latest ``month``/``day`` date that is not after ``not_after`` (None if impossible).

    A page that prints "Mar 11" means the last Mar 11 that had happened when it was saved;
    Feb 29 walks back to the last leap year.
    """
    for year in range(not_after.year, not_after.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= not_after:
            return candidate
    return None


def parse_month_day(text: str, not_after: date) -> date | None:
    """Parse "Mar 11" / "Oct 7, 2024"; a missing year is inferred with ``most_recent``."""
    match = MONTH_DAY.match(text.strip())
    if match is None:
        return None
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        return None
    day = int(match["day"])
    if match["year"] is None:
        return most_recent(month, day, not_after)
    try:
        return date(int(match["year"]), month, day)
    except ValueError:
        return None


def parse_iso_date(value: object) -> date | None:
    """The calendar date of an ISO 8601 timestamp such as ``2024-10-25T00:57:09.392Z``."""
    if not isinstance(value, str):
        return None
    match = _ISO_DATE.match(value)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_rfc822_date(value: str | None) -> date | None:
    """The date of an RSS ``pubDate`` as written (its own time zone, not converted to UTC)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.strip()).date()
    except (TypeError, ValueError, IndexError):
        return None
