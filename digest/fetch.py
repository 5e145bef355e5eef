"""Fetch configured source URLs politely: timeouts, bounded retries, conditional requests.

The ETag / Last-Modified of the last good response are kept in ``SourceState`` and sent back
(If-None-Match / If-Modified-Since), so an unchanged source costs a 304 and no ingest. The body
is read up to the ingest size limit and then handed to the normal ingest pipeline.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

import httpx
from django.conf import settings
from django.utils import timezone

from digest.ingest.run import IngestOptions, ingest_stream
from digest.models import IngestRun, SourceState

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0


class FetchError(Exception):
    """The source could not be fetched (after retries, or with a permanent error)."""


@dataclass
class FetchPolicy:
    timeout: float
    retries: int
    backoff: float
    max_bytes: int
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls) -> FetchPolicy:
        return cls(
            timeout=float(settings.FETCH_TIMEOUT_SECONDS),
            retries=settings.FETCH_RETRIES,
            backoff=float(settings.FETCH_BACKOFF_SECONDS),
            max_bytes=settings.INGEST_MAX_BYTES,
        )

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After (seconds) wins."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), MAX_RETRY_AFTER)
        return random.uniform(0, self.backoff * (2**attempt))


def fetch_source(url: str, policy: FetchPolicy | None = None) -> IngestRun:
    """Fetch ``url`` and ingest what it returns. Always records an ``IngestRun``."""
    policy = policy or FetchPolicy.from_settings()
    state, _ = SourceState.objects.get_or_create(url=url)
    state.last_fetched_at = timezone.now()
    try:
        run = _fetch_and_ingest(url, state, policy)
    except FetchError as exc:
        state.consecutive_failures += 1
        state.last_status = str(exc)[:200]
        state.save()
        now = timezone.now()
        return IngestRun.objects.create(
            source="fetch",
            location=url[:1000],
            status=IngestRun.Status.FAILED,
            error=str(exc),
            finished_at=now,
        )
    state.consecutive_failures = 0
    state.save()
    return run


def _fetch_and_ingest(url: str, state: SourceState, policy: FetchPolicy) -> IngestRun:
    headers = {"User-Agent": settings.FETCH_USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    with (
        httpx.Client(timeout=policy.timeout, follow_redirects=True, max_redirects=5) as client,
        tempfile.SpooledTemporaryFile(max_size=8 << 20) as body,
    ):
        response = _get_with_retries(client, url, headers, policy, body)
        if response.status_code == 304:
            state.last_status = "304 not modified"
            return IngestRun.objects.create(
                source="fetch",
                location=url[:1000],
                status=IngestRun.Status.NOT_MODIFIED,
                finished_at=timezone.now(),
            )
        body.seek(0)
        run = ingest_stream(cast(BinaryIO, body), url, IngestOptions(source="fetch"))
    if run.status != IngestRun.Status.FAILED:
        # Remember validators only once the content is safely stored: a failed ingest must be
        # fetched again in full next time, not answered with a 304.
        state.etag = response.headers.get("ETag", "")[:500]
        state.last_modified = response.headers.get("Last-Modified", "")[:100]
    state.last_status = f"{response.status_code}, ingest {run.status}"
    return run


def _get_with_retries(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    policy: FetchPolicy,
    body: tempfile.SpooledTemporaryFile[bytes],
) -> httpx.Response:
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            response = _get_once(client, url, headers, policy, body)
        except httpx.TransportError as exc:
            if last:
                raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
            policy.sleep(policy.delay(attempt, None))
            continue
        if response.status_code in RETRY_STATUSES and not last:
            log.info("fetch %s: %s, retrying", url, response.status_code)
            policy.sleep(policy.delay(attempt, response.headers.get("Retry-After")))
            continue
        if response.status_code == 304 or response.is_success:
            return response
        raise FetchError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
    raise AssertionError("unreachable")  # pragma: no cover


def _get_once(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    policy: FetchPolicy,
    body: tempfile.SpooledTemporaryFile[bytes],
) -> httpx.Response:
    body.seek(0)
    body.truncate()
    with client.stream("GET", url, headers=headers) as response:
        if not response.is_success:
            return response
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > policy.max_bytes:
                raise FetchError(
                    f"{url}: response is over the size limit of "
                    f"{policy.max_bytes:,} bytes (INGEST_MAX_BYTES)"
                )
            body.write(chunk)
    return response
