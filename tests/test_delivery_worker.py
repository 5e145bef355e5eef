"""Kill -9 a real Celery worker in the middle of a chunk, start it again, compare what a real
SMTP server received: every digest arrives, none twice except at most the one in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from kombu import Connection

from digest.delivery import plan as planning
from digest.ingest.run import IngestOptions, ingest_path
from digest.models import Digest
from subscriptions.models import Subscriber
from tests.browser import Recorder, free_port
from tests.conftest import SEED
from tests.test_worker import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

SUBSCRIBERS = 24


class SlowRecorder(Recorder):
    """A real SMTP server that takes a moment per message, so a kill lands mid-chunk."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.25)
        return await super().handle_DATA(server, session, envelope)


def start_mailing_worker(tmp_path: Path, broker: str, smtp_port: int) -> subprocess.Popen[bytes]:
    return start_worker(
        tmp_path,
        broker,
        {
            "CELERY_VISIBILITY_TIMEOUT": "5",  # so the killed worker's message comes back soon
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "SITE_URL": "https://digest.example.org",
            "SEMANTIC_MATCHING": "off",
        },
    )


def wait(condition: Any, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"condition not met in {timeout}s; worker log:\n{log.read_text()[-3000:]}")


def test_kill_9_mid_chunk_then_restart_sends_the_rest_and_resends_at_most_one(
    tmp_path: Path, redis_url: str
) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    ingest_path(SEED, IngestOptions(source="test", today=date(2026, 11, 29)))
    for i in range(SUBSCRIBERS):
        Subscriber.objects.create(
            email=f"reader{i:02d}@example.org",
            status="confirmed",
            interests="",
            delivery_hour=0,
            timezone="UTC",
        )
    recorder = SlowRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    log = tmp_path / "worker.log"
    try:
        chunks = planning.plan(timezone.now())
        assert [len(c) for c in chunks] == [SUBSCRIBERS]
        from digest.tasks import send_digest_chunk

        with Connection(redis_url) as conn:
            send_digest_chunk.apply_async(args=[chunks[0]], connection=conn)
        worker = start_mailing_worker(tmp_path, redis_url, port)
        wait(lambda: len(recorder.messages) >= SUBSCRIBERS // 3, 60, log)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        before = len(recorder.messages)
        assert 0 < before < SUBSCRIBERS
        in_flight = Digest.objects.filter(state="sending").count()
        assert in_flight <= 1
        # Past the visibility timeout, the new worker's first look at the unacknowledged
        # messages gives the killed worker's task back to the queue.
        time.sleep(6)

        worker = start_mailing_worker(tmp_path, redis_url, port)
        try:
            # The unacknowledged task comes back to the new worker and sends the rest; the
            # planner rescues the single claim the dead worker held.
            wait(
                lambda: (
                    Digest.objects.filter(state="pending").count() == 0
                    and Digest.objects.filter(state="sending").count() == in_flight
                ),
                90,
                log,
            )
            # A lease later the planner rescues it. Only that part of the planner runs: a
            # lease (an hour) after a late-evening run is the next day, when a whole planner
            # run would also make tomorrow's digests (the test failed at 23:11 UTC for that).
            later = timezone.now() + planning.lease() + timedelta(minutes=1)
            assert planning.rescue_lost(later) == in_flight
            for ids in planning.chunks_to_send(later):
                with Connection(redis_url) as conn:
                    send_digest_chunk.apply_async(args=[ids], connection=conn)
            wait(lambda: Digest.objects.filter(state="sent").count() == SUBSCRIBERS, 90, log)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        controller.stop()
    recipients = [str(m["To"]) for m in recorder.messages]
    assert sorted(set(recipients)) == sorted(
        f"reader{i:02d}@example.org" for i in range(SUBSCRIBERS)
    )
    duplicates = len(recipients) - len(set(recipients))
    assert duplicates <= 1, recipients
    ids = [str(m["Message-ID"]) for m in recorder.messages]
    assert len(set(ids)) == SUBSCRIBERS  # a re-sent digest keeps its Message-ID
