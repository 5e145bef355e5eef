"""``manage.py match --interests TEXT``: rank candidate papers for an interest profile."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from rich.console import Console
from rich.table import Table

from digest.ingest import parse, validate
from digest.ingest.records import DumpError, PaperRecord
from digest.matching import semantic
from digest.matching.index import PaperIndex, PaperText
from digest.matching.interests import InterestError, parse_interests
from digest.matching.score import Matcher, Ranked
from digest.matching.service import candidate_papers, matcher_for


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Rank candidate papers for an interest profile: score, reason, and inclusion."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interests", required=True, help='e.g. "Mamba, quantization"')
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--listing", type=_day, help="papers of this listing date")
        source.add_argument("--since", type=_day, help="papers first seen on or after this day")
        source.add_argument("--dump", type=Path, help="papers of a dump file (not stored)")
        parser.add_argument("--limit", type=int, default=10, help="papers per digest (10)")
        parser.add_argument(
            "--top", type=int, default=25, help="candidates to print, 0 for all (25)"
        )
        parser.add_argument("--lexical", action="store_true", help="no semantic score")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            profile = parse_interests(options["interests"])
        except InterestError as error:
            raise CommandError(str(error)) from None
        use_semantic = semantic.available() and not options["lexical"]
        matcher, rows = self._matcher(options, use_semantic)
        ranked = matcher.rank(profile, options["limit"])
        if options["top"]:
            ranked = ranked[: options["top"]]
        results = [self._result(rows[r.paper], r) for r in ranked]
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2, ensure_ascii=False))
            return
        mode = "hybrid (lexical + semantic)" if use_semantic else "lexical"
        self._table(results, f"{len(rows)} candidates, {mode}: {profile}")

    def _matcher(
        self, options: dict[str, Any], use_semantic: bool
    ) -> tuple[Matcher, list[dict[str, Any]]]:
        if options["dump"]:
            texts = self._dump_texts(options["dump"])
            scorer = None
            if use_semantic:
                vectors = semantic.PaperVectors.embed([(t.title, t.abstract) for t in texts])
                scorer = semantic.EmbeddingScorer(vectors)
            rows = [{"title": t.title, "arxiv_id": t.key, "url": ""} for t in texts]
            return Matcher(PaperIndex(texts), semantic=scorer), rows
        papers = candidate_papers(listing=options["listing"], since=options["since"])
        if not papers:
            raise CommandError("no candidate papers (ingest a dump first, or pick a listing)")
        rows = [
            {
                "title": p.title,
                "arxiv_id": p.arxiv_id or "",
                "paper_id": p.pk,
                "url": p.url_page or p.url_abs,
            }
            for p in papers
        ]
        return matcher_for(papers, semantic_on=use_semantic), rows

    def _dump_texts(self, path: Path) -> list[PaperText]:
        try:
            with path.open("rb") as stream:
                _, items = parse(stream, today=timezone.localdate())
                checked = [validate(item) for item in items if isinstance(item, PaperRecord)]
        except (OSError, DumpError) as error:
            raise CommandError(f"{path}: {error}") from None
        return [
            PaperText(key=r.arxiv_id or "", title=r.title, abstract=r.abstract, upvotes=r.upvotes)
            for r in checked
            if isinstance(r, PaperRecord)
        ]

    def _result(self, row: dict[str, Any], ranked: Ranked) -> dict[str, Any]:
        return {**row, "score": ranked.score, "included": ranked.included, "reason": ranked.reason}

    def _table(self, results: list[dict[str, Any]], title: str) -> None:
        table = Table(title=title)
        for column in ("#", "score", "in", "title", "reason"):
            table.add_column(column, justify="right" if column in {"#", "score"} else "left")
        for number, result in enumerate(results, start=1):
            table.add_row(
                str(number),
                f"{result['score']:.3f}",
                "yes" if result["included"] else "",
                result["title"][:90],
                result["reason"],
            )
        Console(file=cast(TextIO, self.stdout), highlight=False, width=160).print(table)
