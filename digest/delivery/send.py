"""Sending one chunk of digests: match, record items, render, send over one SMTP connection.

Exactly once: each digest is claimed with a conditional update (pending -> sending, and only
while its subscriber is still active) right before its message goes out, and marked sent right
after the server accepts it. A crash can therefore leave at most the one in-flight digest in
"sending"; everything else is either sent or still pending for the retry.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import F, Max, Value
from django.db.models.functions import Concat
from django.utils import timezone

from digest.delivery.errors import TransientDeliveryError
from digest.delivery.message import DigestTooLarge, build_digest_message, content_for
from digest.delivery.plan import active_subscribers, sending_paused
from digest.matching.interests import InterestError, Profile, parse_interests
from digest.matching.service import latest_listing, matcher_for
from digest.models import Digest, DigestItem, Paper
from subscriptions.models import Subscriber

log = logging.getLogger(__name__)

MAX_CANDIDATES = 5000


@dataclass
class ChunkResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    not_active: int = 0
    details: list[str] = field(default_factory=list)


# --- matching: which papers go into each digest ------------------------------------------------


def _windows(subscriber_ids: list[int], exclude: list[int]) -> dict[int, datetime | None]:
    """When each subscriber's previous digest was made (None: this is their first)."""
    previous = (
        Digest.objects.filter(subscriber_id__in=subscriber_ids)
        .exclude(pk__in=exclude)
        .exclude(state=Digest.State.PENDING)
        .values("subscriber_id")
        .annotate(last=Max("created_at"))
    )
    found = {row["subscriber_id"]: row["last"] for row in previous}
    return {pk: found.get(pk) for pk in subscriber_ids}


def _candidates(windows: dict[int, datetime | None]) -> list[Paper]:
    starts = [w for w in windows.values() if w is not None]
    papers = Paper.objects.only("id", "title", "abstract", "upvotes", "listing_date", "first_seen")
    found: dict[int, Paper] = {}
    if starts:
        for paper in papers.filter(first_seen__gte=min(starts)).order_by("-first_seen")[
            :MAX_CANDIDATES
        ]:
            found[paper.pk] = paper
    if any(w is None for w in windows.values()) and (day := latest_listing()):
        for paper in papers.filter(listing_date=day):
            found.setdefault(paper.pk, paper)
    return sorted(found.values(), key=lambda p: p.pk)


def _allowed(
    digests: list[Digest], papers: list[Paper], windows: dict[int, datetime | None]
) -> np.ndarray:
    """(digests x papers): inside the subscriber's window and never sent to them before."""
    day = latest_listing()
    first_seen = np.array([p.first_seen.timestamp() for p in papers])
    in_latest = np.array([p.listing_date == day for p in papers], dtype=bool)
    column = {p.pk: i for i, p in enumerate(papers)}
    allowed = np.zeros((len(digests), len(papers)), dtype=bool)
    owners = {d.subscriber_id: row for row, d in enumerate(digests)}
    for row, digest in enumerate(digests):
        start = windows[digest.subscriber_id]
        allowed[row] = in_latest if start is None else first_seen >= start.timestamp()
    had = DigestItem.objects.filter(
        subscriber_id__in=list(owners), paper_id__in=list(column)
    ).values_list("subscriber_id", "paper_id")
    for subscriber_id, paper_id in had:
        allowed[owners[subscriber_id], column[paper_id]] = False
    return allowed


def _profile(subscriber: Subscriber) -> Profile:
    try:
        return parse_interests(subscriber.interests)
    except InterestError:
        # Saved before a rule tightened: fall back to trending rather than failing the chunk.
        return Profile()


def prepare(digests: list[Digest]) -> None:
    """Give each new digest its items (or mark it skipped when nothing matched)."""
    fresh = [d for d in digests if not d.items.exists()]
    if not fresh:
        return
    windows = _windows([d.subscriber_id for d in fresh], [d.pk for d in fresh])
    papers = _candidates(windows)
    found: list[list[Any]] = [[] for _ in fresh]
    if papers:
        matcher = matcher_for(papers)
        found = list(
            matcher.digests(
                [_profile(d.subscriber) for d in fresh],
                [d.subscriber.max_papers for d in fresh],
                allowed=_allowed(fresh, papers, windows),
            )
        )
    with transaction.atomic():
        items = [
            DigestItem(
                digest=d,
                subscriber_id=d.subscriber_id,
                paper=papers[r.paper],
                rank=rank,
                score=r.score,
                reason=r.reason[:500],
            )
            for d, ranked in zip(fresh, found, strict=True)
            for rank, r in enumerate(ranked, start=1)
        ]
        DigestItem.objects.bulk_create(items, ignore_conflicts=True, batch_size=500)
        empty = [d.pk for d, ranked in zip(fresh, found, strict=True) if not ranked]
        Digest.objects.filter(pk__in=empty, state=Digest.State.PENDING).update(
            state=Digest.State.SKIPPED, error="no new paper matched"
        )


# --- sending ---------------------------------------------------------------------------------


def _claim(digest: Digest, now: datetime) -> bool:
    """pending -> sending, only while the subscriber may still get mail (an unsubscribe that
    lands while the chunk is being prepared wins)."""
    active = Subscriber.objects.filter(active_subscribers()).values("pk")
    return (
        Digest.objects.filter(
            pk=digest.pk, state=Digest.State.PENDING, subscriber__in=active
        ).update(state=Digest.State.SENDING, claimed_at=now, attempts=F("attempts") + 1)
        == 1
    )


def _permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return isinstance(error, DigestTooLarge)


def _transient(error: Exception) -> bool:
    return isinstance(error, smtplib.SMTPException | ConnectionError | socket.timeout | OSError)


def _fail(digest: Digest, error: Exception) -> None:
    Digest.objects.filter(pk=digest.pk).update(
        state=Digest.State.FAILED, error=f"{type(error).__name__}: {error}"[:2000]
    )
    if isinstance(error, DigestTooLarge):
        return
    Subscriber.objects.filter(pk=digest.subscriber_id).update(hard_failures=F("hard_failures") + 1)
    Subscriber.objects.filter(
        pk=digest.subscriber_id,
        suppressed_at__isnull=True,
        hard_failures__gte=settings.SUPPRESS_AFTER_HARD_FAILURES,
    ).update(suppressed_at=timezone.now())


def _give_back(digest: Digest, error: Exception) -> None:
    Digest.objects.filter(pk=digest.pk, state=Digest.State.SENDING).update(
        state=Digest.State.PENDING, claimed_at=None, error=f"retrying: {error}"[:2000]
    )


def send_one(digest: Digest, connection: Any, result: ChunkResult) -> None:
    if not _claim(digest, timezone.now()):
        result.not_active += 1
        Digest.objects.filter(pk=digest.pk, state=Digest.State.PENDING).update(
            state=Digest.State.SKIPPED, error="subscriber no longer active"
        )
        return
    try:
        message = build_digest_message(content_for(digest), connection=connection)
        message.send()
    except Exception as error:
        if _permanent(error):
            _fail(digest, error)
            result.failed += 1
            return
        _give_back(digest, error)
        if _transient(error):
            raise TransientDeliveryError(str(error)) from error
        raise
    Digest.objects.filter(pk=digest.pk).update(
        state=Digest.State.SENT, sent_at=timezone.now(), subject=message.subject[:300], error=""
    )
    Subscriber.objects.filter(pk=digest.subscriber_id, hard_failures__gt=0).update(hard_failures=0)
    result.sent += 1


def process_chunk(digest_ids: list[int]) -> ChunkResult:
    """Prepare and send the still-pending digests among ``digest_ids``."""
    result = ChunkResult()
    if sending_paused():
        return result
    digests = list(
        Digest.objects.filter(pk__in=digest_ids, state=Digest.State.PENDING)
        .select_related("subscriber")
        .order_by("id")
    )
    prepare(digests)
    ready = list(
        Digest.objects.filter(pk__in=[d.pk for d in digests], state=Digest.State.PENDING).order_by(
            "id"
        )
    )
    result.skipped = len(digests) - len(ready)
    if not ready:
        return result
    connection = get_connection()
    try:
        connection.open()
        for digest in ready:
            if sending_paused():
                break
            send_one(digest, connection, result)
    except (TimeoutError, ConnectionError, smtplib.SMTPException, OSError) as error:
        raise TransientDeliveryError(str(error)) from error
    finally:
        try:
            connection.close()
        except Exception:
            log.debug("closing the SMTP connection failed", exc_info=True)
    return result


def expire_stale_pending(now: datetime) -> int:
    """Digests still pending after the retry window failed for transient reasons: give up."""
    cutoff = now - timedelta(minutes=settings.SMTP_RETRY_WINDOW_MINUTES)
    return (
        Digest.objects.filter(state=Digest.State.PENDING, created_at__lt=cutoff)
        .exclude(error="")
        .update(state=Digest.State.FAILED, error=Concat(Value("gave up: "), F("error")))
    )
