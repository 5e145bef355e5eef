"""``manage.py ingest``: summary table, exit status, dry run, folders and URLs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from digest.models import IngestRun, Paper
from tests.conftest import SAMPLES, SEED, hf_item, hf_json

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("ingest", *args, stdout=out)
    return out.getvalue()


def test_ingest_prints_a_summary_table(today_2026: Any) -> None:
    output = run_command(str(SEED), str(SAMPLES / "hf-daily-papers-2024-10-25.json"))
    assert "Ingest summary" in output
    assert "hf-text" in output and "hf-json" in output
    assert "94" in output and "29" in output
    assert Paper.objects.count() == 94 + 29


def test_failure_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "empty.json"
    bad.write_bytes(b"")
    good = tmp_path / "good.json"
    good.write_bytes(hf_json([hf_item("2410.00001", "Good")]))
    with pytest.raises(CommandError, match=r"1 of 2 dumps failed: .*empty\.json: empty file"):
        run_command(str(bad), str(good))
    assert Paper.objects.count() == 1


def test_dry_run_stores_nothing(today_2026: Any) -> None:
    output = run_command("--dry-run", str(SEED))
    assert "dry run" in output and "94" in output
    assert Paper.objects.count() == 0 and IngestRun.objects.count() == 0


def test_a_folder_is_expanded_and_missing_paths_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(hf_json([hf_item("2410.00001", "A")]))
    (tmp_path / "b.json").write_bytes(hf_json([hf_item("2410.00002", "B")]))
    run_command(str(tmp_path))
    assert Paper.objects.count() == 2
    with pytest.raises(CommandError, match="no such file"):
        run_command(str(tmp_path / "missing.txt"))


def test_format_option_forces_the_parser(today_2026: Any) -> None:
    with pytest.raises(CommandError, match="failed"):
        run_command("--format", "arxiv-atom", str(SEED))


def test_progress_bar_on_a_large_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(
        hf_json(
            [
                hf_item(f"2410.{i:05d}", f"Paper number {i}", summary="word " * 200)
                for i in range(1200)
            ]
        )
    )
    assert big.stat().st_size > 1 << 20
    seen: list[int] = []
    import digest.management.commands.ingest as command

    real = command.ingest_path

    def spy(path: Any, opts: Any) -> Any:
        assert opts.progress is not None
        inner = opts.progress
        opts.progress = lambda done: (seen.append(done), inner(done))
        return real(path, opts)

    monkeypatch.setattr(command, "ingest_path", spy)
    monkeypatch.setattr("rich.console.Console.is_terminal", property(lambda self: True))
    run_command(str(big))
    assert seen and seen[-1] > 0 and seen == sorted(seen)
    assert Paper.objects.count() == 1200
