"""The inbox folder: dumps dropped there are claimed, ingested, and moved aside.

Layout under ``INBOX_DIR``::

    inbox/                 drop dumps here (names starting with "." or ending in .part/.tmp wait)
    inbox/processing/      claimed by a worker: <claim time>__<name>
    inbox/processed/       ingested (success, partial or duplicate)
    inbox/failed/          unreadable dumps, each with <name>.error.txt saying why

A file is claimed by an atomic rename, so two scans can never ingest it twice; nothing is ever
deleted. A claim older than ``STALE_CLAIM_SECONDS`` (its worker died) goes back to the inbox.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from digest.ingest.run import IngestOptions, ingest_path
from digest.models import IngestRun

log = logging.getLogger(__name__)

SKIP_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp")
CLAIM_SEPARATOR = "__"


@dataclass(frozen=True)
class Folders:
    inbox: Path

    @property
    def processing(self) -> Path:
        return self.inbox / "processing"

    @property
    def processed(self) -> Path:
        return self.inbox / "processed"

    @property
    def failed(self) -> Path:
        return self.inbox / "failed"

    def create(self) -> None:
        for folder in (self.inbox, self.processing, self.processed, self.failed):
            folder.mkdir(parents=True, exist_ok=True)


def folders() -> Folders:
    return Folders(Path(settings.INBOX_DIR))


def stale_claim_seconds() -> int:
    return int(settings.CELERY_TASK_TIME_LIMIT) + 60


def _candidates(inbox: Path) -> dict[Path, tuple[int, int]]:
    found = {}
    for entry in os.scandir(inbox):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.startswith(".") or entry.name.endswith(SKIP_SUFFIXES):
            continue
        stat = entry.stat(follow_symlinks=False)
        found[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def stable_files(settle_seconds: float | None = None) -> list[Path]:
    """Files in the inbox whose size and mtime did not change over the settle interval.

    A writer still copying a file (even with ``cp -p``, which keeps the old mtime) grows it in
    the meantime, so it waits for the next scan.
    """
    box = folders()
    box.create()
    settle = settings.INBOX_SETTLE_SECONDS if settle_seconds is None else settle_seconds
    first = _candidates(box.inbox)
    if first and settle > 0:
        time.sleep(settle)
    second = _candidates(box.inbox)
    return sorted(path for path, seen in first.items() if second.get(path) == seen)


def claim(path: Path) -> Path | None:
    """Move ``path`` into processing/ atomically; None if another scan took it first."""
    box = folders()
    box.create()
    target = box.processing / f"{int(time.time())}{CLAIM_SEPARATOR}{path.name}"
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def original_name(claimed: Path) -> str:
    _, sep, name = claimed.name.partition(CLAIM_SEPARATOR)
    return name if sep else claimed.name


def release_stale_claims(now: float | None = None) -> list[Path]:
    """Put back into the inbox the claims whose worker died before finishing them."""
    box = folders()
    box.create()
    now = time.time() if now is None else now
    released = []
    for entry in box.processing.iterdir():
        stamp, sep, _ = entry.name.partition(CLAIM_SEPARATOR)
        if not sep or not stamp.isdigit() or now - int(stamp) < stale_claim_seconds():
            continue
        target = _free_name(box.inbox, original_name(entry))
        os.rename(entry, target)
        released.append(target)
        log.warning("released stale inbox claim %s back to %s", entry.name, target)
    return released


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/name.1``, ``.2`` ... when that exists: never overwrite."""
    target = folder / name
    counter = 0
    while target.exists():
        counter += 1
        target = folder / f"{name}.{counter}"
    return target


def ingest_claimed(claimed: Path) -> IngestRun:
    """Ingest a claimed file and move it to processed/ or failed/ (with the reason beside it).

    Database errors propagate and leave the claim in place, so the task can be retried.
    """
    box = folders()
    box.create()
    run = ingest_path(claimed, IngestOptions(source="inbox"))
    name = original_name(claimed)
    if run.status == IngestRun.Status.FAILED:
        target = _free_name(box.failed, name)
        os.rename(claimed, target)
        stamp = timezone.now().isoformat(timespec="seconds")
        reason = f"{stamp} ingest run #{run.pk}: {run.error}\n"
        target.with_name(target.name + ".error.txt").write_text(reason, encoding="utf-8")
    else:
        target = _free_name(box.processed, name)
        os.rename(claimed, target)
    run.location = str(target)
    run.save(update_fields=["location"])
    return run
