"""A real Celery worker with beat: files dropped into the inbox become papers in the database.

Runs on the real Redis broker (and on the embedded filesystem broker that ``make run`` uses),
against the database the suite runs on: PostgreSQL in CI's first pass, SQLite in its second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from digest.models import IngestRun, Paper
from tests.conftest import ROOT, SAMPLES, SEED, hf_item, hf_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def database_url() -> str:
    """The URL of the test database this process uses, for the worker to use too."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    host = f"{params['HOST'] or 'localhost'}:{params['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{params['NAME']}"


def start_worker(
    tmp_path: Path, broker: str, env: dict[str, str] | None = None, beat: bool = False
) -> subprocess.Popen[bytes]:
    """A real Celery worker process on the test database; its output goes to worker.log."""
    environ = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    environ.update(
        {
            "DATABASE_URL": database_url(),
            "DATA_DIR": str(tmp_path / "data"),
            "DJANGO_SETTINGS_MODULE": "digest.settings",
            **(env or {}),
        }
    )
    if broker != "filesystem":
        environ["CELERY_BROKER_URL"] = broker
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "digest",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        "1",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        *(["--beat"] if beat else []),
    ]
    log = (tmp_path / "worker.log").open("ab")
    return subprocess.Popen(
        command, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(condition: Any, timeout: float, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"condition not met in {timeout}s; worker log:\n{log.read_text()[-4000:]}")


@pytest.fixture(params=["redis", "filesystem"])
def worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        import redis

        redis.Redis.from_url(url).flushdb()
    else:
        url = "filesystem"
    (tmp_path / "inbox").mkdir()
    inbox = {
        "INBOX_DIR": str(tmp_path / "inbox"),
        "INBOX_SCAN_SECONDS": "1",
        "INBOX_SETTLE_SECONDS": "0",
    }
    proc = start_worker(tmp_path, url, inbox, beat=True)
    yield tmp_path, proc
    stop(proc)


def test_worker_and_beat_turn_inbox_files_into_papers(
    worker: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    tmp_path, proc = worker
    inbox = tmp_path / "inbox"
    (inbox / "seed.txt").write_bytes(SEED.read_bytes())
    (inbox / "daily.json").write_bytes((SAMPLES / "hf-daily-papers-2024-10-25.json").read_bytes())
    (inbox / "junk.bin").write_bytes(os.urandom(4096))
    log = tmp_path / "worker.log"
    wait_for(lambda: IngestRun.objects.exclude(status="running").count() == 3, 90, proc, log)
    assert Paper.objects.count() == 94 + 29
    statuses = dict(IngestRun.objects.values_list("format", "status"))
    assert statuses.get("hf-text") == "success" and statuses.get("hf-json") == "success"
    assert IngestRun.objects.filter(status="failed").count() == 1
    wait_for(
        lambda: (
            sorted(p.name for p in (inbox / "processed").iterdir()) == ["daily.json", "seed.txt"]
        ),
        30,
        proc,
        log,
    )
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == [
        "junk.bin",
        "junk.bin.error.txt",
    ]
    # The worker survived the bad file and goes on with the next one.
    (inbox / "later.json").write_bytes(hf_json([hf_item("2411.00001", "A Later Paper")]))
    wait_for(lambda: Paper.objects.filter(arxiv_id="2411.00001").exists(), 60, proc, log)
    assert proc.poll() is None


def test_embedded_broker_writes_messages_atomically(
    filesystem_broker_options: dict[str, str],
) -> None:
    """A consumer must never see a half-written message file (it would stop the worker)."""
    from kombu import Connection

    import digest  # noqa: F401  (installs the transport)

    options = filesystem_broker_options
    folder = Path(options["data_folder_in"])
    with Connection("filesystem://", transport_options=options) as conn:
        assert type(conn.transport).__module__ == "digest.broker"
        queue = conn.SimpleQueue("q")
        for i in range(50):
            queue.put({"n": i})
        names = sorted(p.name for p in folder.iterdir())
        assert len(names) == 50 and all(n.endswith(".q.msg") for n in names)
        got = [queue.get(timeout=1).payload["n"] for _ in range(50)]
        assert sorted(got) == list(range(50))
        queue.close()
