"""The dashboard's figures and series, each one or two aggregate queries (no table is loaded
into memory, except the interest texts, which are streamed)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from digest.matching.interests import topic_texts
from digest.models import Digest, DigestItem, IngestRun, Paper, RejectedEntry, SourceState
from subscriptions.models import Subscriber

GOOD_INGEST = (IngestRun.Status.SUCCESS, IngestRun.Status.PARTIAL)
SIZE_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 50))


# --- at a glance -----------------------------------------------------------------------------


def paper_figures() -> dict[str, Any]:
    latest = Paper.objects.aggregate(day=Max("listing_date"))["day"]
    # order_by: the model's default ordering would make DISTINCT read every run.
    formats = list(
        IngestRun.objects.exclude(format="")
        .order_by("format")
        .values_list("format", flat=True)
        .distinct()
    )
    # Paper.sources is a JSON list of format names; a string match works on every database.
    counts = Paper.objects.aggregate(
        total=Count("id"),
        in_latest=Count("id", filter=Q(listing_date=latest)),
        **{
            f"source_{i}": Count("id", filter=Q(sources__icontains=f'"{name}"'))
            for i, name in enumerate(formats)
        },
    )
    return {
        "total": counts["total"],
        "latest_listing": latest,
        "in_latest_listing": counts["in_latest"] if latest else 0,
        "per_source": [(name, counts[f"source_{i}"]) for i, name in enumerate(formats)],
    }


def subscriber_figures() -> dict[str, Any]:
    counts = dict(
        Subscriber.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    return {
        "by_state": [(label, counts.get(value, 0)) for value, label in Subscriber.Status.choices],
        "total": sum(counts.values()),
        "suppressed": Subscriber.objects.filter(suppressed_at__isnull=False).count(),
    }


def digest_counts(since: datetime) -> dict[str, int]:
    sent = Q(state=Digest.State.SENT, sent_at__gte=since)
    made = Q(created_at__gte=since)
    return Digest.objects.aggregate(
        sent=Count("id", filter=sent),
        skipped=Count("id", filter=made & Q(state=Digest.State.SKIPPED)),
        failed=Count("id", filter=made & Q(state=Digest.State.FAILED)),
    )


def delivery_figures(now: datetime) -> dict[str, Any]:
    return {
        "day": digest_counts(now - timedelta(hours=24)),
        "week": digest_counts(now - timedelta(days=7)),
        "waiting": Digest.objects.filter(
            state__in=(Digest.State.PENDING, Digest.State.SENDING)
        ).count(),
        "last_sent_at": Digest.objects.aggregate(t=Max("sent_at"))["t"],
    }


def ingest_figures() -> dict[str, Any]:
    good = IngestRun.objects.filter(status__in=GOOD_INGEST)
    return {
        "last_success_at": good.aggregate(t=Max("finished_at"))["t"],
        "per_source": list(
            good.values("source").annotate(last=Max("finished_at")).order_by("source")
        ),
        "sources": list(SourceState.objects.order_by("url")),
    }


# --- recent activity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run: IngestRun
    rejected: list[RejectedEntry]


def recent_runs(limit: int = 10, rejected_each: int = 3) -> list[RunRow]:
    """The latest runs, each with its first rejected entries (two queries in all)."""
    first_rejected = Prefetch(
        "rejected",
        RejectedEntry.objects.order_by("position")[:rejected_each],
        to_attr="first_rejected",
    )
    runs = IngestRun.objects.order_by("-started_at", "-id").prefetch_related(first_rejected)
    return [RunRow(run, run.first_rejected) for run in runs[:limit]]


def recent_failures(limit: int = 10) -> QuerySet[Digest]:
    return (
        Digest.objects.filter(state=Digest.State.FAILED)
        .select_related("subscriber")
        .order_by("-created_at")[:limit]
    )


# --- series for the charts -------------------------------------------------------------------


def days_until(today: date, count: int) -> list[date]:
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def per_day(queryset: QuerySet[Any], field: str, days: list[date]) -> list[int]:
    start = timezone.make_aware(datetime.combine(days[0], datetime.min.time()))
    rows = (
        queryset.filter(**{f"{field}__gte": start})
        .annotate(day=TruncDate(field))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    found = {row["day"]: row["n"] for row in rows}
    return [found.get(day, 0) for day in days]


def papers_per_day(days: list[date]) -> list[int]:
    return per_day(Paper.objects.all(), "first_seen", days)


def digests_per_day(days: list[date]) -> tuple[list[int], list[int]]:
    sent = per_day(Digest.objects.filter(state=Digest.State.SENT), "sent_at", days)
    failed = per_day(Digest.objects.filter(state=Digest.State.FAILED), "created_at", days)
    return sent, failed


def confirmed_over_time(days: list[date]) -> list[int]:
    """Subscribers confirmed and not unsubscribed at the end of each day (deleted subscribers
    are gone from the history too)."""
    ever = Subscriber.objects.filter(confirmed_at__isnull=False)
    start = timezone.make_aware(datetime.combine(days[0], datetime.min.time()))
    base = ever.filter(confirmed_at__lt=start).exclude(unsubscribed_at__lt=start).count()
    joined = per_day(ever, "confirmed_at", days)
    left = per_day(ever.filter(unsubscribed_at__isnull=False), "unsubscribed_at", days)
    series, running = [], base
    for plus, minus in zip(joined, left, strict=True):
        running += plus - minus
        series.append(running)
    return series


def size_distribution(since: datetime) -> list[tuple[str, int]]:
    """How many papers the digests sent since ``since`` held, in buckets."""
    items = (
        DigestItem.objects.filter(digest=OuterRef("pk"))
        .order_by()
        .values("digest")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = (
        Digest.objects.filter(state=Digest.State.SENT, sent_at__gte=since)
        .annotate(size=Subquery(items))
        .values("size")
        .annotate(n=Count("id"))
        .order_by("size")
    )
    counts = {row["size"] or 0: row["n"] for row in rows}
    return [
        (
            str(low) if low == high else f"{low}-{high}",
            sum(counts.get(k, 0) for k in range(low, high + 1)),
        )
        for low, high in SIZE_BUCKETS
    ]


def top_topics(limit: int = 10) -> list[tuple[str, int]]:
    """The interest topics confirmed subscribers name most (case-insensitive), streamed."""
    counter: Counter[str] = Counter()
    texts = (
        Subscriber.objects.filter(status=Subscriber.Status.CONFIRMED)
        .exclude(interests="")
        .values_list("interests", flat=True)
        .iterator(chunk_size=2000)
    )
    for text in texts:
        counter.update({topic.replace('"', "").lower() for topic in topic_texts(text)})
    return counter.most_common(limit)
