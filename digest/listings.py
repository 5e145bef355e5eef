"""Daily listings: which papers were listed on a day, and which days have papers at all.

A listing is the set of papers sharing a ``listing_date``; papers without one (some arXiv
entries) appear only on their own page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import F, QuerySet

from digest.models import Paper

# What a paper card shows; the detail page loads the whole row.
CARD_FIELDS = (
    "title",
    "abstract",
    "authors",
    "author_count",
    "listing_date",
    "url_code",
    "upvotes",
)


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The nearest listing dates before and after a day (None at either end)."""

    previous: date | None
    next: date | None


def parse_day(text: str) -> date | None:
    """``YYYY-MM-DD`` as a date; anything else (including 2024-02-30) is None."""
    if len(text) != 10:  # fromisoformat also takes "20240101" and week dates
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def latest_listing_date() -> date | None:
    return _listed().order_by("-listing_date").values_list("listing_date", flat=True).first()


def neighbours(day: date) -> Neighbours:
    listed = _listed()
    earlier = listed.filter(listing_date__lt=day).order_by("-listing_date")
    later = listed.filter(listing_date__gt=day).order_by("listing_date")
    return Neighbours(
        previous=earlier.values_list("listing_date", flat=True).first(),
        next=later.values_list("listing_date", flat=True).first(),
    )


def papers_for(day: date) -> QuerySet[Paper]:
    """The day's papers, most upvoted first; papers without a vote count go last."""
    return (
        Paper.objects.filter(listing_date=day)
        .only(*CARD_FIELDS)
        .order_by(F("upvotes").desc(nulls_last=True), "title", "pk")
    )


def _listed() -> QuerySet[Paper]:
    return Paper.objects.filter(listing_date__isnull=False)
