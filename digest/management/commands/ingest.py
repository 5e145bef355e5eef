"""``manage.py ingest PATH_OR_URL ...``: ingest dumps now, with progress and a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from digest.fetch import fetch_source
from digest.ingest.run import IngestOptions, ingest_path
from digest.ingest.sniff import FORMATS
from digest.models import IngestRun

PROGRESS_MIN_BYTES = 1 << 20
BAD = {IngestRun.Status.FAILED}


class Command(BaseCommand):
    help = "Ingest paper dumps (files, folders of files, or http(s) URLs) and print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("targets", nargs="+", metavar="PATH_OR_URL")
        parser.add_argument("--format", choices=FORMATS, help="skip sniffing, force this format")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="parse and count, but store nothing and record no run",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # OutputWrapper is a text stream; rich only needs write() and flush().
        console = Console(file=cast(TextIO, self.stdout), highlight=False, soft_wrap=True)
        runs = [self._one(target, options, console) for target in self._expand(options["targets"])]
        console.print(_summary(runs, dry_run=options["dry_run"]))
        failed = [run for run in runs if run.status in BAD]
        if failed:
            reasons = "; ".join(f"{run.location}: {run.error}" for run in failed)
            raise CommandError(f"{len(failed)} of {len(runs)} dumps failed: {reasons}")

    def _expand(self, targets: list[str]) -> list[str]:
        expanded: list[str] = []
        for target in targets:
            if target.startswith(("http://", "https://")):
                expanded.append(target)
                continue
            path = Path(target)
            if path.is_dir():
                expanded.extend(
                    str(p)
                    for p in sorted(path.iterdir())
                    if p.is_file() and not p.name.startswith(".")
                )
            elif path.is_file():
                expanded.append(target)
            else:
                raise CommandError(f"{target}: no such file, folder or http(s) URL")
        if not expanded:
            raise CommandError("nothing to ingest")
        return expanded

    def _one(self, target: str, options: dict[str, Any], console: Console) -> IngestRun:
        if target.startswith(("http://", "https://")):
            if options["dry_run"]:
                raise CommandError("--dry-run works on files only")
            return fetch_source(target)
        opts = IngestOptions(source="cli", fmt=options["format"], dry_run=options["dry_run"])
        size = Path(target).stat().st_size
        if size < PROGRESS_MIN_BYTES or not console.is_terminal:
            return ingest_path(target, opts)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(Path(target).name, total=size)
            opts.progress = lambda done: bar.update(task, completed=done)
            return ingest_path(target, opts)


def _summary(runs: list[IngestRun], *, dry_run: bool) -> Table:
    title = "Ingest summary (dry run: nothing stored)" if dry_run else "Ingest summary"
    table = Table(title=title)
    for column in ("dump", "format", "status", "new", "updated", "unchanged", "rejected", "time"):
        table.add_column(
            column,
            justify="right"
            if column in {"new", "updated", "unchanged", "rejected", "time"}
            else "left",
        )
    for run in runs:
        seconds = f"{run.duration.total_seconds():.2f}s" if run.duration else "-"
        status = run.status if not run.error else f"{run.status}: {run.error}"
        table.add_row(
            run.location,
            run.format or "-",
            status,
            str(run.n_new),
            str(run.n_updated),
            str(run.n_unchanged),
            str(run.n_rejected),
            seconds,
        )
    return table
