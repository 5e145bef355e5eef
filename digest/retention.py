"""Data retention: old digests (their items and "view in browser" pages) are deleted.

What is kept, and why: a subscriber never gets the same paper twice (design invariant 4). That
rule rests on two records: a paper already in one of their ``DigestItem`` rows is never offered
again, and candidates are only papers first seen since their latest digest (``delivery.send``).
Pruning must keep both true, so a digest is deleted only when

- it is finished (sent, skipped or failed; never pending or sending),
- it is older than ``DIGEST_RETENTION_DAYS``,
- the subscriber has a newer digest that was sent or skipped (the next digest's window starts
  at the latest of those: a failed one did not reach them), so that window does not move,
- and every paper in it was first seen before that newer digest was made: such a paper can
  never be a candidate again, so its item is no longer needed to exclude it.

An item that fails the last test keeps its digest until a later digest passes it, which in
practice is the next one. No extra table and no copy of sent paper ids are needed.

Deletion runs in batches of ``RETENTION_BATCH_SIZE`` digests, each in its own short
transaction, so a large backlog neither holds locks for long nor loads everything at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from digest.models import Digest, DigestItem

log = logging.getLogger(__name__)

FINISHED = (Digest.State.SENT, Digest.State.SKIPPED, Digest.State.FAILED)
WINDOW_STARTS = (Digest.State.SENT, Digest.State.SKIPPED)  # as in delivery.send._windows


def prunable(now: datetime) -> QuerySet[Digest]:
    """The digests that may be deleted at ``now`` (see the module's docstring)."""
    cutoff = now - timedelta(days=settings.DIGEST_RETENTION_DAYS)
    newest = (
        Digest.objects.filter(subscriber_id=OuterRef("subscriber_id"), state__in=WINDOW_STARTS)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    # A paper first seen since the subscriber's newest digest could still be a candidate.
    still_needed = DigestItem.objects.filter(
        digest_id=OuterRef("pk"), paper__first_seen__gte=OuterRef("newest")
    )
    return (
        Digest.objects.filter(state__in=FINISHED, created_at__lt=cutoff)
        .annotate(newest=Subquery(newest))
        .filter(created_at__lt=F("newest"))
        .exclude(Exists(still_needed))
    )


def prune_digests(now: datetime | None = None, max_batches: int | None = None) -> int:
    """Delete prunable digests in batches; returns how many digests were deleted."""
    if settings.DIGEST_RETENTION_DAYS <= 0:
        return 0
    now = now or timezone.now()
    size = settings.RETENTION_BATCH_SIZE
    deleted = batches = 0
    after = 0  # an id cursor: each batch reads on from the last, not the whole backlog again
    while max_batches is None or batches < max_batches:
        ids = list(
            prunable(now).filter(id__gt=after).order_by("id").values_list("id", flat=True)[:size]
        )
        if not ids:
            break
        after = ids[-1]
        with transaction.atomic():
            # The state is checked again in the DELETE: a digest cannot have gone back to
            # pending in between, but the rule should not rest on that.
            _, per_model = Digest.objects.filter(pk__in=ids, state__in=FINISHED).delete()
        batches += 1
        deleted += per_model.get(Digest._meta.label, 0)
    if deleted:
        log.info(
            "retention: deleted %d digests older than %d days",
            deleted,
            settings.DIGEST_RETENTION_DAYS,
        )
    return deleted


def forget_unused_topics(older_than: timedelta = timedelta(days=1)) -> int:
    """Delete stored topic embeddings that no subscriber names any more (left behind by changed
    or deleted profiles and by previews of unsaved ones): they hold what people typed. Rows
    younger than ``older_than`` stay, so a profile being saved right now keeps its row."""
    from digest.matching.interests import topic_texts
    from digest.models import TopicEmbedding
    from subscriptions.models import Subscriber

    named: set[str] = set()
    for text in Subscriber.objects.values_list("interests", flat=True).iterator(chunk_size=2000):
        named.update(topic_texts(text))
    stale = TopicEmbedding.objects.filter(created_at__lt=timezone.now() - older_than)
    unused = [pk for pk, text in stale.values_list("pk", "text") if text not in named]
    deleted = 0
    for start in range(0, len(unused), 1000):
        deleted += TopicEmbedding.objects.filter(pk__in=unused[start : start + 1000]).delete()[0]
    if deleted:
        log.info("retention: forgot %d topic embeddings nobody names any more", deleted)
    return deleted


# A worker or beat process that has not reported for this long is gone (its container was
# replaced, its host renamed): its heartbeat row goes, except the newest of each role, which
# the dashboard needs to say since when nothing has reported.
GONE_AFTER = timedelta(days=7)


def forget_gone_processes(now: datetime | None = None) -> int:
    from digest.models import Heartbeat

    cutoff = (now or timezone.now()) - GONE_AFTER
    newest = Heartbeat.objects.filter(role=OuterRef("role")).order_by("-last_seen_at", "-pk")
    deleted, _ = (
        Heartbeat.objects.filter(last_seen_at__lt=cutoff)
        .exclude(pk=Subquery(newest.values("pk")[:1]))
        .delete()
    )
    if deleted:
        log.info("retention: forgot %d heartbeats of processes gone for %s", deleted, GONE_AFTER)
    return deleted
