"""Run one dump through the pipeline: size check, checksum, parse, validate, upsert, record.

Every call leaves exactly one ``IngestRun`` row (none for a dry run) whose status and counts say
what happened. A dump that cannot be read fails with a recorded reason and changes no paper;
entries that cannot be read are rejected one by one while the good ones are stored.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from digest.ingest import parse, validate
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected
from digest.ingest.store import upsert_batch
from digest.models import IngestRun, RejectedEntry

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
STORED_REJECTIONS_LIMIT = 10_000
CHUNK = 1 << 20


class _DryRunRollback(Exception):
    """Raised inside a dry run's transaction so that nothing it wrote is kept."""


@dataclass
class IngestOptions:
    source: str = "cli"
    fmt: str | None = None
    dry_run: bool = False
    today: date | None = None
    progress: Progress | None = None
    max_bytes: int | None = None


def ingest_path(path: Path | str, options: IngestOptions | None = None) -> IngestRun:
    """Ingest a dump file. The file itself is only read, never changed."""
    path = Path(path)
    with path.open("rb") as stream:
        return ingest_stream(stream, str(path), options)


def ingest_bytes(data: bytes, location: str, options: IngestOptions | None = None) -> IngestRun:
    return ingest_stream(io.BytesIO(data), location, options)


def ingest_stream(
    stream: BinaryIO, location: str, options: IngestOptions | None = None
) -> IngestRun:
    """Ingest a seekable binary stream; ``location`` is what the run records as its origin."""
    options = options or IngestOptions()
    if not options.dry_run:
        return _ingest(stream, location, options)
    run: IngestRun | None = None
    try:
        with transaction.atomic():
            run = _ingest(stream, location, options)
            raise _DryRunRollback
    except _DryRunRollback:
        pass
    assert run is not None
    run.pk = None
    if run.status in (IngestRun.Status.SUCCESS, IngestRun.Status.PARTIAL):
        run.status = IngestRun.Status.DRY_RUN
    return run


def _ingest(stream: BinaryIO, location: str, options: IngestOptions) -> IngestRun:
    run = IngestRun.objects.create(source=options.source, location=location[:1000])
    try:
        _check_and_fill(stream, run, options)
    except DumpError as exc:
        run.status = IngestRun.Status.FAILED
        run.error = str(exc)
    except DatabaseError:
        # The database is the problem, not the dump: let the caller retry later.
        _try_finish_failed(run, "database error, will be retried")
        raise
    except Exception as exc:
        # A bug must not turn one odd dump into a crash loop: record it, and the file goes to
        # failed/ like any unreadable dump.
        log.exception("ingest of %s failed unexpectedly", location)
        run.status = IngestRun.Status.FAILED
        run.error = f"internal error: {type(exc).__name__}: {exc}"
    _finish(run)
    return run


def _try_finish_failed(run: IngestRun, error: str) -> None:
    run.status = IngestRun.Status.FAILED
    run.error = error
    try:
        _finish(run)
    except DatabaseError:
        log.warning("could not record the failure of ingest run #%s", run.pk)


def fail_interrupted_runs(older_than: timedelta) -> int:
    """Mark as failed the runs still "running" long after any worker could be on them
    (their worker was killed); the dump itself is retried through its inbox claim."""
    now = timezone.now()
    return IngestRun.objects.filter(
        status=IngestRun.Status.RUNNING, started_at__lt=now - older_than
    ).update(
        status=IngestRun.Status.FAILED,
        error="interrupted: the worker stopped before finishing this run",
        finished_at=now,
    )


def _finish(run: IngestRun) -> None:
    run.finished_at = timezone.now()
    run.save()
    log.info(
        "ingest %s: %s new=%d updated=%d unchanged=%d rejected=%d %s",
        run.location,
        run.status,
        run.n_new,
        run.n_updated,
        run.n_unchanged,
        run.n_rejected,
        run.error,
    )


def _check_and_fill(stream: BinaryIO, run: IngestRun, options: IngestOptions) -> None:
    limit = options.max_bytes or settings.INGEST_MAX_BYTES
    run.size_bytes, run.checksum = _measure(stream, limit)
    if run.size_bytes == 0:
        raise DumpError("empty file")
    already = (
        IngestRun.objects.filter(
            checksum=run.checksum, status__in=[IngestRun.Status.SUCCESS, IngestRun.Status.PARTIAL]
        )
        .exclude(pk=run.pk)
        .order_by("-started_at")
        .first()
    )
    if already is not None:
        run.status = IngestRun.Status.DUPLICATE
        run.notes = [f"same content as ingest run #{already.pk} ({already.location})"]
        return
    stream.seek(0)
    run.format = options.fmt or ""
    fmt, items = parse(stream, options.fmt, today=options.today or timezone.localdate())
    run.format = fmt
    run.save(update_fields=["size_bytes", "checksum", "format"])
    _consume(_watch(items, stream, options.progress), run)
    if run.n_rejected and not (run.n_new or run.n_updated or run.n_unchanged):
        raise DumpError(f"no usable entries: all {run.n_rejected} entries were rejected")
    run.status = IngestRun.Status.PARTIAL if run.n_rejected else IngestRun.Status.SUCCESS


def _measure(stream: BinaryIO, limit: int) -> tuple[int, str]:
    """Size and SHA-256 of the stream, read in chunks; refuses a dump over the size limit."""
    sha = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise DumpError(f"dump is over the size limit of {limit:,} bytes (INGEST_MAX_BYTES)")
        sha.update(chunk)
    return size, sha.hexdigest()


def _watch(
    items: Iterator[PaperRecord | Rejected | Note], stream: BinaryIO, progress: Progress | None
) -> Iterator[PaperRecord | Rejected | Note]:
    if progress is None:
        yield from items
        return
    for item in items:
        yield item
        progress(stream.tell())


def _consume(items: Iterator[PaperRecord | Rejected | Note], run: IngestRun) -> None:
    """Validate and store the entries batch by batch, counting into ``run`` as it goes.

    The counts are kept current so that a dump failing half-way still says what was stored.
    """
    batch: list[PaperRecord] = []
    rejected: list[RejectedEntry] = []
    now = timezone.now()
    batch_size = settings.INGEST_BATCH_SIZE
    try:
        _consume_items(items, run, batch, rejected, now, batch_size)
    finally:
        RejectedEntry.objects.bulk_create(rejected, batch_size=500)
    if run.n_rejected > STORED_REJECTIONS_LIMIT:
        run.notes.append(f"only the first {STORED_REJECTIONS_LIMIT:,} rejected entries are listed")


def _consume_items(
    items: Iterator[PaperRecord | Rejected | Note],
    run: IngestRun,
    batch: list[PaperRecord],
    rejected: list[RejectedEntry],
    now: datetime,
    batch_size: int,
) -> None:
    for item in items:
        if isinstance(item, PaperRecord):
            checked = validate(item)
            if isinstance(checked, PaperRecord):
                batch.append(checked)
                if len(batch) >= batch_size:
                    _store(batch, run, now)
                    batch.clear()
                continue
            item = checked
        if isinstance(item, Rejected):
            run.n_rejected += 1
            if len(rejected) < STORED_REJECTIONS_LIMIT:
                rejected.append(
                    RejectedEntry(
                        run=run,
                        position=item.position,
                        reason=item.reason[:500],
                        excerpt=item.excerpt[:200],
                    )
                )
        elif isinstance(item, Note):
            run.notes.append(item.message)
    if batch:
        _store(batch, run, now)


def _store(batch: list[PaperRecord], run: IngestRun, now: datetime) -> None:
    counts = upsert_batch(batch, source=run.format, now=now)
    run.n_new += counts.new
    run.n_updated += counts.updated
    run.n_unchanged += counts.unchanged
