"""The inbox folder: settle, claim, ingest, move aside; never delete, never ingest twice."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from digest import inbox
from digest.models import IngestRun, Paper
from digest.tasks import ingest_inbox_file, scan_inbox
from tests.conftest import hf_item, hf_json, seed_layout

pytestmark = pytest.mark.django_db


def test_scan_ingests_files_and_moves_them_to_processed_or_failed(
    inbox_dir: Path, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from digest.celery import app

    app.conf.task_always_eager = True
    try:
        (inbox_dir / "good.json").write_bytes(hf_json([hf_item("2410.00001", "Good")]))
        (inbox_dir / "bad.json").write_bytes(b"\x00\x01\x02 junk" * 50)
        (inbox_dir / ".hidden.json").write_bytes(b"[]")
        (inbox_dir / "copying.json.part").write_bytes(b"[")
        assert scan_inbox() == 2
    finally:
        app.conf.task_always_eager = False
    assert Paper.objects.filter(arxiv_id="2410.00001").exists()
    assert sorted(p.name for p in (inbox_dir / "processed").iterdir()) == ["good.json"]
    failed = sorted(p.name for p in (inbox_dir / "failed").iterdir())
    assert failed == ["bad.json", "bad.json.error.txt"]
    assert "binary" in (inbox_dir / "failed" / "bad.json.error.txt").read_text()
    assert (inbox_dir / ".hidden.json").exists() and (inbox_dir / "copying.json.part").exists()
    assert list((inbox_dir / "processing").iterdir()) == []
    runs = {Path(r.location).name: r.status for r in IngestRun.objects.all()}
    assert runs == {"good.json": "success", "bad.json": "failed"}


def test_processed_file_content_is_untouched_and_names_never_collide(inbox_dir: Path) -> None:
    data = seed_layout([("Some Title", "Some abstract.")])
    for _ in range(2):
        (inbox_dir / "dump.txt").write_bytes(data)
        claimed = inbox.claim(inbox_dir / "dump.txt")
        assert claimed is not None
        inbox.ingest_claimed(claimed)
    processed = inbox_dir / "processed"
    assert sorted(p.name for p in processed.iterdir()) == ["dump.txt", "dump.txt.1"]
    assert (processed / "dump.txt").read_bytes() == data
    assert list(IngestRun.objects.order_by("pk").values_list("status", flat=True)) == [
        "success",
        "duplicate",
    ]


def test_a_file_still_growing_waits_for_the_next_scan(inbox_dir: Path) -> None:
    growing = inbox_dir / "growing.txt"
    growing.write_bytes(b"x")
    os.utime(growing, (1, 1))  # like `cp -p`: an old mtime that says nothing
    stop = threading.Event()

    def writer() -> None:
        with growing.open("ab") as out:
            while not stop.is_set():
                out.write(b"more\n")
                out.flush()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inbox.stable_files(settle_seconds=0.3) == []
    finally:
        stop.set()
        thread.join()
    assert inbox.stable_files(settle_seconds=0.2) == [growing]


def test_claim_is_won_by_exactly_one_scanner(inbox_dir: Path) -> None:
    path = inbox_dir / "x.txt"
    path.write_text("data")
    inbox.folders().create()
    assert inbox.claim(path) is not None
    assert inbox.claim(path) is None


def test_stale_claims_go_back_to_the_inbox(inbox_dir: Path) -> None:
    inbox.folders().create()
    old = inbox_dir / "processing" / f"{int(time.time()) - 10 * 3600}__old.txt"
    old.write_text("x")
    fresh = inbox_dir / "processing" / f"{int(time.time())}__fresh.txt"
    fresh.write_text("y")
    released = inbox.release_stale_claims()
    assert released == [inbox_dir / "old.txt"]
    assert (inbox_dir / "old.txt").read_text() == "x" and fresh.exists()


def test_ingest_task_is_safe_to_run_twice(inbox_dir: Path) -> None:
    (inbox_dir / "a.json").write_bytes(hf_json([hf_item("2410.00001", "Good")]))
    inbox.folders().create()
    claimed = inbox.claim(inbox_dir / "a.json")
    assert claimed is not None
    assert ingest_inbox_file.run(str(claimed)) == "success"
    assert ingest_inbox_file.run(str(claimed)) == "gone"
    assert IngestRun.objects.count() == 1 and Paper.objects.count() == 1


def test_database_error_leaves_the_claim_for_a_retry(
    inbox_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection lost")

    (inbox_dir / "a.json").write_bytes(hf_json([hf_item("2410.00001", "Good")]))
    inbox.folders().create()
    claimed = inbox.claim(inbox_dir / "a.json")
    assert claimed is not None
    monkeypatch.setattr("digest.ingest.run.upsert_batch", down)
    with pytest.raises(OperationalError):
        inbox.ingest_claimed(claimed)
    assert claimed.exists()
    monkeypatch.undo()
    assert inbox.ingest_claimed(claimed).status == "success"
    assert Paper.objects.count() == 1


def test_runs_left_running_by_a_killed_worker_are_marked_failed() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from digest.ingest.run import fail_interrupted_runs

    old = IngestRun.objects.create(source="inbox", location="a.json")
    IngestRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=3))
    fresh = IngestRun.objects.create(source="inbox", location="b.json")
    assert fail_interrupted_runs(timedelta(hours=1)) == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == "failed" and "interrupted" in old.error and old.finished_at
    assert fresh.status == "running"


BAD_DUMPS = {
    "empty.txt": (b"", "empty file"),
    "junk.bin": (bytes(range(256)) * 64, "binary"),
    "cut.json": (b'[{"paper": {"id": "24', "not valid JSON"),
    "shape.json": (b'{"papers": 3}', "wrong shape"),
    "xxe.xml": (
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&x;</title></entry>'
        b"</feed>",
        "entit",
    ),
    "bomb.xml": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss><channel><item>'
        b"<title>&b;</title></item></channel></rss>",
        "entit",
    ),
}


def test_every_kind_of_bad_dump_fails_alone_and_the_scan_goes_on(
    inbox_dir: Path, settings: Any
) -> None:
    from digest.celery import app

    settings.INGEST_MAX_BYTES = 200_000
    for name, (data, _) in BAD_DUMPS.items():
        (inbox_dir / name).write_bytes(data)
    (inbox_dir / "huge.json").write_bytes(b"[" + b" " * 300_000 + b"]")
    (inbox_dir / "zz-good.json").write_bytes(hf_json([hf_item("2410.00001", "Good")]))
    app.conf.task_always_eager = True
    try:
        assert scan_inbox() == len(BAD_DUMPS) + 2
    finally:
        app.conf.task_always_eager = False
    failed = inbox_dir / "failed"
    for name, (_, reason) in [*BAD_DUMPS.items(), ("huge.json", (b"", "size limit"))]:
        assert (failed / name).exists(), name
        assert reason.lower() in (failed / f"{name}.error.txt").read_text().lower(), name
    assert (inbox_dir / "processed" / "zz-good.json").exists()
    assert Paper.objects.count() == 1
