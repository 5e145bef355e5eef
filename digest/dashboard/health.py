"""Is everything running? Periodic jobs (from beat's schedule), heartbeats, queue lengths.

The list of jobs is ``digest.schedule.beat_schedule()``, the one source of truth that beat runs
from, so a job added there appears here with its schedule and last runs without any change.
A job is overdue when it has not succeeded within ``JOB_OVERDUE_FACTOR`` of its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab, maybe_schedule
from celery.schedules import schedule as every
from django.conf import settings
from django.utils import timezone
from kombu import Connection

from digest.models import Heartbeat, JobStatus
from digest.schedule import beat_schedule

# The setting (environment variable) that sets each built-in job's interval. A job missing here
# still shows, with its schedule; only the hint on how to change it is missing.
ADJUSTED_BY = {
    "digest.tasks.scan_inbox": "INBOX_SCAN_SECONDS",
    "digest.tasks.fetch_sources": "SOURCE_FETCH_MINUTES (runs when SOURCES_ENABLED=true)",
    "digest.tasks.plan_digests": "DIGEST_PLAN_MINUTES",
    "subscriptions.tasks.purge_stale_pending": "PURGE_PENDING_HOURS",
    "digest.tasks.prune_old_digests": "RETENTION_HOURS (runs when DIGEST_RETENTION_DAYS > 0)",
}
# Heartbeats older than this many shortest job intervals (and at least this long) are stale.
MIN_HEARTBEAT_SLACK = timedelta(minutes=2)


@dataclass(frozen=True)
class Job:
    name: str
    task: str
    every: str
    interval: timedelta
    adjusted_by: str
    status: JobStatus | None
    next_run: datetime | None
    state: str  # ok, failing, overdue, not run yet


def describe(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds // size} {unit}"
    return f"every {seconds} s"


def _normalized(value: Any) -> Any:
    from digest.celery import app

    return maybe_schedule(value, app=app)


def interval_of(value: Any, reference: datetime) -> tuple[timedelta, str]:
    """(the time between two runs, in words) of a beat schedule value: seconds, a timedelta, a
    celery ``schedule`` or a ``crontab``."""
    sched = _normalized(value)
    if isinstance(sched, every):
        run_every: timedelta = sched.run_every  # type: ignore[attr-defined]  # missing in stubs
        return run_every, describe(run_every)
    first = _next_run(sched, reference)
    second = _next_run(sched, first)
    words = str(sched)
    if isinstance(sched, crontab):
        words = "crontab " + words.removeprefix("<crontab: ").split(" (")[0].rstrip(">")
    return second - first, words


def _next_run(sched: Any, after: datetime) -> datetime:
    """When ``sched`` next runs after a run at ``after`` (never the same instant)."""
    nxt = timezone.now() + sched.remaining_estimate(after)
    # Celery reads its own clock inside; round away the microseconds between the two readings,
    # or a crontab's next run after "03:14:59.9998" would be 03:15 the same day.
    nxt = (nxt + timedelta(microseconds=500_000)).replace(microsecond=0)
    return nxt if nxt > after else after + timedelta(seconds=1)


def job_state(status: JobStatus | None, interval: timedelta, now: datetime) -> str:
    factor = settings.JOB_OVERDUE_FACTOR
    if status is None:
        return "not run yet"
    if status.last_finished_at is None:
        # Queued or started long ago and never finished (killed at its time limit, or no
        # worker takes its queue): that is overdue, not "not run yet".
        began = status.last_started_at or status.last_queued_at
        if began is not None and now - began > factor * interval:
            return "overdue"
        return "not run yet"
    if status.last_failure_at and (
        status.last_success_at is None or status.last_failure_at > status.last_success_at
    ):
        return "failing"
    if status.last_success_at is None or now - status.last_success_at > factor * interval:
        return "overdue"
    return "ok"


def jobs(now: datetime | None = None) -> list[Job]:
    now = now or timezone.now()
    entries = beat_schedule()
    statuses = {s.task: s for s in JobStatus.objects.filter(task__in=_tasks(entries))}
    found = []
    for name, entry in entries.items():
        task = str(entry["task"])
        status = statuses.get(task)
        interval, words = interval_of(entry["schedule"], now)
        last = status.last_queued_at or status.last_started_at if status else None
        found.append(
            Job(
                name=name,
                task=task,
                every=words,
                interval=interval,
                adjusted_by=ADJUSTED_BY.get(task, ""),
                status=status,
                next_run=_next_run(_normalized(entry["schedule"]), last) if last else None,
                state=job_state(status, interval, now),
            )
        )
    return found


def _tasks(entries: dict[str, dict[str, Any]]) -> list[str]:
    return [str(entry["task"]) for entry in entries.values()]


# --- heartbeats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    role: str
    name: str
    last_seen_at: datetime
    stale: bool


def heartbeat_slack(job_list: list[Job]) -> timedelta:
    """How old a heartbeat may be: workers and beat act at least once per shortest interval."""
    shortest = min((j.interval for j in job_list), default=timedelta(minutes=5))
    return max(settings.JOB_OVERDUE_FACTOR * shortest, MIN_HEARTBEAT_SLACK)


def heartbeats(slack: timedelta, now: datetime | None = None) -> dict[str, list[Beat]]:
    now = now or timezone.now()
    found: dict[str, list[Beat]] = {"worker": [], "beat": []}
    for row in Heartbeat.objects.order_by("role", "-last_seen_at"):
        stale = now - row.last_seen_at > slack
        found.setdefault(row.role, []).append(Beat(row.role, row.name, row.last_seen_at, stale))
    return found


# --- queue length ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueLength:
    queue: str
    waiting: int | None
    in_progress: int | None  # delivered to a worker, not acknowledged yet (Redis only)
    error: str = ""


def queue_names() -> list[str]:
    from digest.celery import app

    return sorted(app.amqp.queues.keys()) or [app.conf.task_default_queue]


def queue_lengths(
    broker_url: str | None = None,
    options: dict[str, Any] | None = None,
    names: list[str] | None = None,
) -> list[QueueLength]:
    """Messages waiting in each Celery queue, as the broker's own kombu transport counts them
    (Redis: every priority list, with the configured key prefix; the embedded broker: message
    files), and on Redis the messages delivered but not acknowledged yet. A broker that cannot
    be asked gives the reason instead of a number."""
    url = settings.CELERY_BROKER_URL if broker_url is None else broker_url
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS if options is None else options
    names = queue_names() if names is None else names
    try:
        with Connection(url, transport_options=options, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=0, timeout=3)
            channel: Any = connection.default_channel
            unacked = getattr(channel, "unacked_key", None)
            in_progress = int(channel.client.hlen(unacked)) if unacked else None
            found = []
            for queue in names:
                try:
                    waiting = channel.queue_declare(queue=queue, passive=True).message_count
                except connection.channel_errors:
                    waiting = 0  # never declared, or emptied and gone: nothing waits
                found.append(QueueLength(queue, waiting, in_progress))
            return found
    except Exception as exc:  # any connection or protocol trouble: say so, do not fail
        return [QueueLength(q, None, None, f"{type(exc).__name__}: {exc}") for q in names]
