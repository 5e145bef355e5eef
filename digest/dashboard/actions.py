"""What the dashboard's buttons do. Tasks are queued once the request's transaction commits."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.text import get_valid_filename

from digest import inbox
from digest.delivery.plan import sending_paused
from digest.models import DeliveryControl

log = logging.getLogger(__name__)


def safe_name(name: str) -> str:
    """A file name made of safe characters, or "dump" when nothing usable is left."""
    try:
        return get_valid_filename(Path(name).name)[:100]
    except SuspiciousFileOperation:
        return "dump"


def save_upload(upload: UploadedFile) -> Path:
    """Hand an uploaded dump to the inbox the way a careful writer would (a hidden partial file,
    then an atomic rename), claim it, and queue its ingest. Returns where the file is now.

    If the queueing fails, the claim is released back to the inbox after the stale-claim time
    and a scan picks it up: an upload is never lost.
    """
    from digest.tasks import ingest_inbox_file

    box = inbox.folders()
    box.create()
    token = uuid.uuid4().hex
    # The token keeps two uploads of one name apart (claims are named by the second).
    name = f"upload-{token[:8]}-{safe_name(upload.name or '')}"
    partial = box.inbox / f".upload-{token}.part"
    with partial.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    target = inbox._free_name(box.inbox, name)
    os.rename(partial, target)
    claimed = inbox.claim(target)
    if claimed is None:  # a scan was quicker; its own task ingests the file
        return target
    transaction.on_commit(lambda: ingest_inbox_file.delay(str(claimed)))
    return claimed


def queue_fetch(url: str) -> None:
    from digest.tasks import fetch_source_url

    transaction.on_commit(lambda: fetch_source_url.delay(url))


def queue_planning() -> bool:
    """Queue a planner run now (what beat does every few minutes); False while paused."""
    from digest.tasks import plan_digests

    if sending_paused():
        return False
    transaction.on_commit(plan_digests.delay)
    return True


def set_paused(paused: bool, who: str) -> DeliveryControl:
    control = DeliveryControl.current()
    control.paused = paused
    control.note = f"{'paused' if paused else 'resumed'} from the dashboard by {who}"[:200]
    control.save()
    log.warning("sending %s by %s", "paused" if paused else "resumed", who)
    return control


def queue_test_digest(to: str, subscriber_id: int | None) -> None:
    from digest.tasks import send_test_digest

    transaction.on_commit(lambda: send_test_digest.delay(to, subscriber_id))
