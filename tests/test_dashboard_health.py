"""Health of the periodic jobs: schedules read from beat's own schedule, overdue and failing
states, queue lengths on both brokers, and the records the Celery signals write."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from django.utils import timezone

from digest import jobs
from digest.dashboard import charts, health
from digest.models import Heartbeat, JobStatus

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "interval", "words"),
    [
        (30.0, timedelta(seconds=30), "every 30 s"),
        (300.0, timedelta(minutes=5), "every 5 min"),
        (timedelta(hours=6), timedelta(hours=6), "every 6 h"),
        (90.0, timedelta(seconds=90), "every 90 s"),
        (crontab(minute="15", hour="3"), timedelta(days=1), "crontab 15 3 * * *"),
        (crontab(minute="*/10"), timedelta(minutes=10), "crontab */10 * * * *"),
    ],
)
def test_interval_of_every_kind_of_schedule(value: Any, interval: timedelta, words: str) -> None:
    assert health.interval_of(value, timezone.now()) == (interval, words)


def status(**fields: Any) -> JobStatus:
    return JobStatus(task="t", **fields)


@pytest.mark.parametrize(
    ("job", "state"),
    [
        (None, "not run yet"),
        (status(), "not run yet"),
        (status(last_queued_at=NOW - timedelta(seconds=60)), "not run yet"),  # just queued
        # Queued or started long ago and never finished (killed, or no worker): overdue.
        (status(last_queued_at=NOW - timedelta(seconds=100)), "overdue"),
        (status(last_started_at=NOW - timedelta(seconds=100)), "overdue"),
        (status(last_finished_at=NOW, last_success_at=NOW - timedelta(seconds=80)), "ok"),
        (status(last_finished_at=NOW, last_success_at=NOW - timedelta(seconds=100)), "overdue"),
        (
            status(
                last_finished_at=NOW,
                last_success_at=NOW - timedelta(seconds=10),
                last_failure_at=NOW,
            ),
            "failing",
        ),
        (
            status(
                last_finished_at=NOW,
                last_success_at=NOW,
                last_failure_at=NOW - timedelta(seconds=10),
            ),
            "ok",
        ),
        (status(last_finished_at=NOW, last_failure_at=NOW), "failing"),
    ],
)
def test_job_state(job: JobStatus | None, state: str, settings: Any) -> None:
    settings.JOB_OVERDUE_FACTOR = 3
    assert health.job_state(job, timedelta(seconds=30), NOW) == state


def test_job_overdue_factor_is_a_setting(settings: Any) -> None:
    settings.JOB_OVERDUE_FACTOR = 5
    job = status(last_finished_at=NOW, last_success_at=NOW - timedelta(seconds=100))
    assert health.job_state(job, timedelta(seconds=30), NOW) == "ok"


# --- queue length ----------------------------------------------------------------------------


def test_the_queues_asked_about_are_celerys_own() -> None:
    assert health.queue_names() == ["celery"]


def test_queue_length_of_the_embedded_broker_counts_message_files(
    filesystem_broker_options: dict[str, str],
) -> None:
    from kombu import Connection

    import digest  # noqa: F401  (installs the embedded transport)

    # A queue name of its own: kombu remembers bindings per process, across connections.
    name = f"dash-{uuid.uuid4().hex[:8]}"
    options = filesystem_broker_options
    assert health.queue_lengths("filesystem://", options, [name])[0].waiting == 0
    with Connection("filesystem://", transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        for i in range(4):
            queue.put({"n": i})
        other = conn.SimpleQueue(f"{name}-other")
        other.put({"n": 0})
        [length] = health.queue_lengths("filesystem://", options, [name])
        assert (length.queue, length.waiting) == (name, 4)
        queue.get(timeout=1).ack()
        assert health.queue_lengths("filesystem://", options, [name])[0].waiting == 3
        queue.close()
        other.close()


@pytest.mark.services
def test_queue_length_on_redis_counts_every_priority_list(redis_url: str) -> None:
    import redis
    from kombu import Connection

    name = f"dash-{uuid.uuid4().hex[:8]}"
    keys = [name, *(f"{name}\x06\x16{p}" for p in (3, 6, 9))]
    client = redis.Redis.from_url(redis_url)
    try:
        assert health.queue_lengths(redis_url, {}, [name])[0].waiting == 0
        with Connection(redis_url) as conn:
            queue = conn.SimpleQueue(name)
            queue.put({"n": 1})
            queue.put({"n": 2}, priority=6)
            queue.put({"n": 3}, priority=9)
            [length] = health.queue_lengths(redis_url, {}, [name])
            assert (length.queue, length.waiting, length.error) == (name, 3, "")
            assert length.in_progress is not None
            queue.close()
    finally:
        client.delete(*keys, f"_kombu.binding.{name}")


def test_an_unreachable_redis_gives_the_reason_instead_of_a_number() -> None:
    [length] = health.queue_lengths("redis://127.0.0.1:9/0", {})
    assert length.waiting is None and "Error" in length.error


# --- records written by the Celery signals ----------------------------------------------------


@pytest.mark.django_db
def test_job_runs_are_recorded_with_counts_and_the_last_error() -> None:
    jobs.record_queued("digest.tasks.scan_inbox", NOW)
    jobs.record_started("digest.tasks.scan_inbox", NOW)
    jobs.record_finished("digest.tasks.scan_inbox", "", NOW + timedelta(seconds=1))
    jobs.record_finished("digest.tasks.scan_inbox", "FAILURE: boom", NOW + timedelta(seconds=2))
    row = JobStatus.objects.get()
    assert row.last_queued_at == NOW and row.last_started_at == NOW
    assert row.last_success_at == NOW + timedelta(seconds=1)
    assert row.last_failure_at == NOW + timedelta(seconds=2)
    assert (row.runs, row.failures, row.last_error) == (2, 1, "FAILURE: boom")


@pytest.mark.django_db
def test_heartbeats_are_written_at_most_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_last_beat", {})
    jobs.record_heartbeat("worker", "celery@a", NOW)
    jobs.record_heartbeat("worker", "celery@a", NOW + timedelta(seconds=1))  # throttled
    assert Heartbeat.objects.get().last_seen_at == NOW
    jobs.record_heartbeat("worker", "celery@a", NOW + timedelta(seconds=2), force=True)
    jobs.record_heartbeat("worker", "celery@b", NOW)
    assert dict(Heartbeat.objects.values_list("name", "last_seen_at")) == {
        "celery@a": NOW + timedelta(seconds=2),
        "celery@b": NOW,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_a_real_worker_and_beat_record_their_runs_and_heartbeats(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Beat queues the inbox scan every second; the worker runs it. Both leave their marks."""
    from tests.test_worker import start_worker, stop, wait_for

    (tmp_path / "inbox").mkdir()
    env = {"INBOX_DIR": str(tmp_path / "inbox"), "INBOX_SCAN_SECONDS": "1"}
    proc: subprocess.Popen[bytes] = start_worker(tmp_path, "filesystem", env, beat=True)
    try:
        log = tmp_path / "worker.log"

        def recorded() -> bool:
            row = JobStatus.objects.filter(task="digest.tasks.scan_inbox").first()
            return bool(row and row.last_success_at and row.last_queued_at and row.runs >= 2)

        wait_for(recorded, 90, proc, log)
        wait_for(lambda: Heartbeat.objects.filter(role="beat").exists(), 30, proc, log)
        wait_for(lambda: Heartbeat.objects.filter(role="worker").exists(), 30, proc, log)
    finally:
        stop(proc)
    row = JobStatus.objects.get(task="digest.tasks.scan_inbox")
    assert row.failures == 0 and row.last_error == ""
    [job] = [j for j in health.jobs() if j.name == "scan-inbox"]
    assert job.state in ("ok", "overdue")  # overdue only if this machine is very slow
    assert Heartbeat.objects.get(role="worker").name.startswith("celery@")


# --- charts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (7, 10), (11, 20), (20, 20), (49, 50)])
def test_nice_axis_top(value: int, top: int) -> None:
    assert charts.nice_max(value) == top


def test_column_chart_bars_scale_to_the_axis_and_keep_their_figures() -> None:
    chart = charts.column_chart("c", "Things", ["a", "b"], [("x", [5, 10]), ("y", [0, 2])])
    heights = [r.height for r in chart.rects]
    assert heights[1] == charts.HEIGHT - charts.TOP - charts.BOTTOM  # 10 fills the axis
    assert heights[0] == heights[1] / 2 and heights[2] == 0
    assert chart.table_rows == [["a", "5", "0"], ["b", "10", "2"]]
    assert "x: 15 in total, at most 10 (b)" in chart.description
    assert not chart.empty
    assert charts.column_chart("e", "Empty", ["a"], [("x", [0])]).empty
