"""Celery tasks: thin callers of the ingest modules. They take paths and URLs, never objects."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from digest import inbox, retention
from digest.delivery import plan
from digest.delivery.errors import TransientDeliveryError
from digest.fetch import fetch_source
from digest.ingest.run import fail_interrupted_runs
from digest.matching import semantic
from digest.matching import service as matching

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def scan_inbox() -> int:
    """Claim the settled files in the inbox and queue one ingest task per file."""
    inbox.release_stale_claims()
    fail_interrupted_runs(timedelta(seconds=inbox.stale_claim_seconds()))
    claimed = 0
    for path in inbox.stable_files():
        target = inbox.claim(path)
        if target is not None:
            ingest_inbox_file.delay(str(target))
            claimed += 1
    return claimed


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def ingest_inbox_file(self: object, path: str) -> str:
    """Ingest one claimed file. Safe to run twice: a finished file is no longer in processing/,
    and content already ingested is recognized by its checksum."""
    claimed = Path(path)
    if not claimed.exists():
        log.info("inbox file %s is gone (already handled)", path)
        return "gone"
    run = inbox.ingest_claimed(claimed)
    _after_ingest(run.status)
    return str(run.status)


def _after_ingest(status: str) -> None:
    if status in ("success", "partial") and semantic.available():
        embed_recent_papers.delay()


@shared_task(ignore_result=True)
def embed_recent_papers() -> int:
    """Paper embeddings for the semantic score, computed once, right after ingest."""
    return matching.embed_recent_papers()


@shared_task(ignore_result=True)
def embed_interests(interests: str) -> None:
    """Topic embeddings of a profile, computed when the profile is saved."""
    matching.embed_profile(interests)


@shared_task(ignore_result=True)
def fetch_sources() -> None:
    for url in settings.SOURCE_URLS:
        fetch_source_url.delay(url)


@shared_task(ignore_result=True, acks_late=True)
def fetch_source_url(url: str) -> str:
    run = fetch_source(url)
    _after_ingest(run.status)
    return str(run.status)


# --- delivery ----------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def plan_digests() -> int:
    """Beat, every few minutes: create the due digests and queue them in chunks."""
    chunks = plan.plan()
    for ids in chunks:
        send_digest_chunk.delay(ids)
    return len(chunks)


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientDeliveryError, DatabaseError),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def send_digest_chunk(self: object, digest_ids: list[int]) -> dict[str, int]:
    """Prepare and send one chunk. Safe to run again: only pending digests are touched."""
    from digest.delivery.send import process_chunk

    result = process_chunk(digest_ids)
    return {"sent": result.sent, "skipped": result.skipped, "failed": result.failed}


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=3)
def send_test_digest(to: str, subscriber_id: int | None) -> str:
    """An operator's test digest: what a subscriber (or the trending default) would get now,
    mailed to ``to``. Nothing is recorded as sent."""
    from digest.delivery.preview import operator_test_message, trending_profile
    from subscriptions.models import Subscriber

    subscriber = trending_profile()
    if subscriber_id is not None:
        found = Subscriber.objects.filter(pk=subscriber_id).first()
        if found is None:
            return "gone"
        subscriber = found
    operator_test_message(subscriber, to).send()
    return "sent"


# --- retention ---------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def prune_old_digests() -> int:
    """Beat, daily by default: delete digests past DIGEST_RETENTION_DAYS, the stored topic
    embeddings nobody names any more, and heartbeats of processes long gone
    (digest.retention)."""
    deleted = retention.prune_digests()
    retention.forget_unused_topics()
    retention.forget_gone_processes()
    return deleted
