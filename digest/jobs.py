"""What beat and the workers record about themselves, for the dashboard to read.

Celery's own signals feed two small tables: ``JobStatus`` (per periodic task: last queued by
beat, last started, last success or failure) and ``Heartbeat`` (per worker host and for beat).
The periodic tasks are the ones in ``digest.schedule.beat_schedule()``, so a job added there is
tracked without further changes. Recording never breaks the work it records: a database error
here is logged and dropped.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime
from typing import Any

from celery.signals import after_task_publish, beat_init, task_postrun, task_prerun
from django.db import DatabaseError, close_old_connections
from django.db.models import F
from django.utils import timezone

log = logging.getLogger(__name__)

# Heartbeats are written at most this often per process: they only need to be fresh to the
# minute, and every write is a database round trip.
HEARTBEAT_EVERY_SECONDS = 10.0

_beat_thread: int | None = None
_last_beat: dict[tuple[str, str], float] = {}


def scheduled_tasks() -> set[str]:
    from digest.schedule import beat_schedule

    return {str(entry["task"]) for entry in beat_schedule().values()}


def _status(task: str) -> Any:
    from digest.models import JobStatus

    JobStatus.objects.get_or_create(task=task)
    return JobStatus.objects.filter(task=task)


def record_queued(task: str, now: datetime | None = None) -> None:
    _status(task).update(last_queued_at=now or timezone.now())


def record_started(task: str, now: datetime | None = None) -> None:
    _status(task).update(last_started_at=now or timezone.now())


def record_finished(task: str, error: str = "", now: datetime | None = None) -> None:
    """A run ended: successfully when ``error`` is empty."""
    now = now or timezone.now()
    if not error:
        _status(task).update(last_finished_at=now, last_success_at=now, runs=F("runs") + 1)
        return
    _status(task).update(
        last_finished_at=now,
        last_failure_at=now,
        last_error=error[:2000],
        runs=F("runs") + 1,
        failures=F("failures") + 1,
    )


def record_heartbeat(
    role: str, name: str, now: datetime | None = None, force: bool = False
) -> None:
    """Note that ``name`` (a worker's host name, or beat's) is alive, at most every
    ``HEARTBEAT_EVERY_SECONDS`` unless forced."""
    from digest.models import Heartbeat

    key = (role, name)
    clock = time.monotonic()
    if (
        not force
        and clock - _last_beat.get(key, -HEARTBEAT_EVERY_SECONDS) < HEARTBEAT_EVERY_SECONDS
    ):
        return
    Heartbeat.objects.update_or_create(
        role=role, name=name[:255], defaults={"last_seen_at": now or timezone.now()}
    )
    _last_beat[key] = clock


def _safely(what: str, action: Any, *args: Any, **kwargs: Any) -> None:
    try:
        action(*args, **kwargs)
    except DatabaseError:
        log.warning("could not record %s", what, exc_info=True)


# --- Celery signal handlers --------------------------------------------------------------------


@task_prerun.connect
def _on_task_prerun(task: Any = None, **_: Any) -> None:
    if task is None or task.request.is_eager:
        return
    if task.name in scheduled_tasks():
        _safely("a job start", record_started, task.name)
    # At the start too, so that a worker busy with one long ingest still shows when it began.
    _worker_heartbeat(task)


@task_postrun.connect
def _on_task_postrun(
    task: Any = None, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    if task is None or task.request.is_eager:
        return
    if task.name in scheduled_tasks():
        error = "" if state == "SUCCESS" else f"{state}: {retval!r}"
        _safely("a job result", record_finished, task.name, error)
    _worker_heartbeat(task)


def _worker_heartbeat(task: Any) -> None:
    hostname = task.request.hostname or socket.gethostname()
    _safely("a worker heartbeat", record_heartbeat, "worker", str(hostname))


@beat_init.connect
def _on_beat_init(sender: Any = None, **_: Any) -> None:
    """Remember beat's thread: with ``worker --beat`` the worker publishes from the same
    process, and only beat's own publishing is beat's heartbeat."""
    global _beat_thread
    _beat_thread = threading.get_ident()
    close_old_connections()
    _safely("beat's heartbeat", record_heartbeat, "beat", socket.gethostname(), force=True)


@after_task_publish.connect
def _on_task_publish(sender: Any = None, **_: Any) -> None:
    if _beat_thread is None or threading.get_ident() != _beat_thread:
        return
    close_old_connections()  # beat has no request cycle that would drop a broken connection
    _safely("a queued job", record_queued, str(sender))
    _safely("beat's heartbeat", record_heartbeat, "beat", socket.gethostname())
