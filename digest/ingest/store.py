"""Upsert validated paper records into the ``Paper`` table, a batch at a time.

A batch costs two queries to find the rows it touches, one bulk insert, one bulk update and one
``last_seen`` update, whatever its size. Merging follows two rules: descriptive fields (title,
abstract, authors, dates, links) are filled when blank and never blanked; source signals
(upvotes, comments, stars) take the newer value, upvotes never going down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q

from digest.ingest.normalize import normalize_arxiv_id, title_key
from digest.ingest.records import PaperRecord
from digest.models import Paper

KEY_LIMIT = 200
URL_LIMIT = 500
FILL_FIELDS = ("published_on", "url_page", "url_abs", "url_pdf", "url_code", "url_project")
# An arbitrary constant that names "the paper table's ingest lock" for PostgreSQL.
ADVISORY_LOCK_ID = 7_220_611


@dataclass
class BatchCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: BatchCounts) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged


@dataclass
class _Pending:
    """Rows touched by one batch, keyed by primary key (existing) or object id (new)."""

    created: dict[int, Paper] = field(default_factory=dict)
    changed: dict[int, Paper] = field(default_factory=dict)
    changed_fields: set[str] = field(default_factory=set)
    seen: dict[int, Paper] = field(default_factory=dict)


def bounded_title_key(title: str) -> str:
    """The normalized title, shortened with a hash suffix so it always fits its column."""
    key = title_key(title)
    if len(key) > KEY_LIMIT:
        digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]
        key = f"{key[: KEY_LIMIT - 17]}-{digest}"
    return key


def paper_key(arxiv_id: str | None, tkey: str) -> str:
    return f"arxiv:{arxiv_id}" if arxiv_id else f"title:{tkey}"


def upsert_batch(records: Sequence[PaperRecord], *, source: str, now: datetime) -> BatchCounts:
    """Store one batch atomically; returns how many records were new, updated or unchanged."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Serializes concurrent ingests of overlapping dumps: without it two workers could
            # both decide a paper is new and one would fail on the unique key.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_ID])
        return _upsert(records, source=source, now=now)


def _upsert(records: Sequence[PaperRecord], *, source: str, now: datetime) -> BatchCounts:
    prepared = [
        (rec, normalize_arxiv_id(rec.arxiv_id or ""), bounded_title_key(rec.title))
        for rec in records
    ]
    by_arxiv, by_title = _existing(prepared)
    pending = _Pending()
    counts = BatchCounts()
    for rec, arxiv_id, tkey in prepared:
        paper = _find(arxiv_id, tkey, by_arxiv, by_title)
        if paper is None:
            paper = _new_paper(rec, arxiv_id, tkey, source, now)
            pending.created[id(paper)] = paper
            counts.new += 1
        else:
            changed = merge_into(paper, rec, arxiv_id, source)
            if changed:
                counts.updated += 1
                pending.changed_fields.update(changed)
                if paper.pk is not None:
                    pending.changed[paper.pk] = paper
            else:
                counts.unchanged += 1
            if paper.pk is not None:
                pending.seen[paper.pk] = paper
        _remember(paper, by_arxiv, by_title)
    _write(pending, now)
    return counts


def _existing(
    prepared: Iterable[tuple[PaperRecord, str | None, str]],
) -> tuple[dict[str, Paper], dict[str, list[Paper]]]:
    arxiv_ids = {a for _, a, _ in prepared if a}
    tkeys = {t for _, _, t in prepared}
    query = Q(title_key__in=tkeys)
    if arxiv_ids:
        query |= Q(arxiv_id__in=arxiv_ids)
    by_arxiv: dict[str, Paper] = {}
    by_title: dict[str, list[Paper]] = {}
    for paper in Paper.objects.filter(query):
        _remember(paper, by_arxiv, by_title)
    return by_arxiv, by_title


def _remember(paper: Paper, by_arxiv: dict[str, Paper], by_title: dict[str, list[Paper]]) -> None:
    if paper.arxiv_id:
        by_arxiv[paper.arxiv_id] = paper
    same_title = by_title.setdefault(paper.title_key, [])
    if not any(p is paper for p in same_title):
        same_title.append(paper)


def _find(
    arxiv_id: str | None, tkey: str, by_arxiv: dict[str, Paper], by_title: dict[str, list[Paper]]
) -> Paper | None:
    """The row this record describes: same arXiv id, else same title and no conflicting id."""
    if arxiv_id and arxiv_id in by_arxiv:
        return by_arxiv[arxiv_id]
    for paper in by_title.get(tkey, ()):
        if not arxiv_id or not paper.arxiv_id:
            return paper
    return None


def _new_paper(
    rec: PaperRecord, arxiv_id: str | None, tkey: str, source: str, now: datetime
) -> Paper:
    authors = list(rec.authors)
    return Paper(
        key=paper_key(arxiv_id, tkey),
        arxiv_id=arxiv_id,
        title=rec.title,
        title_key=tkey,
        abstract=rec.abstract,
        authors=authors,
        author_count=len(authors) if authors else rec.author_count,
        published_on=rec.published_on,
        listing_date=rec.listing_date,
        url_page=_url(rec.url_page),
        url_abs=_url(rec.url_abs),
        url_pdf=_url(rec.url_pdf),
        url_code=_url(rec.url_code),
        url_project=_url(rec.url_project),
        upvotes=rec.upvotes,
        signals={k: v for k, v in rec.signals.items() if v is not None},
        sources=[source],
        first_seen=now,
        last_seen=now,
    )


def _url(value: str) -> str:
    return value if len(value) <= URL_LIMIT else ""


def merge_into(paper: Paper, rec: PaperRecord, arxiv_id: str | None, source: str) -> set[str]:
    """Enrich ``paper`` with what ``rec`` adds; returns the names of the fields that changed."""
    changed: set[str] = set()

    def put(name: str, value: object) -> None:
        setattr(paper, name, value)
        changed.add(name)

    if arxiv_id and not paper.arxiv_id:
        put("arxiv_id", arxiv_id)
        put("key", paper_key(arxiv_id, paper.title_key))
    if not paper.abstract and rec.abstract:
        put("abstract", rec.abstract)
    if rec.authors and len(rec.authors) > len(paper.authors or []):
        put("authors", list(rec.authors))
        put("author_count", len(rec.authors))
    elif rec.author_count is not None and paper.author_count is None:
        put("author_count", rec.author_count)
    for name in FILL_FIELDS:
        value = getattr(rec, name)
        if name.startswith("url_"):
            value = _url(value)
        if value and not getattr(paper, name):
            put(name, value)
    if rec.listing_date and (paper.listing_date is None or rec.listing_date < paper.listing_date):
        put("listing_date", rec.listing_date)
    if rec.upvotes is not None and (paper.upvotes is None or rec.upvotes > paper.upvotes):
        put("upvotes", rec.upvotes)
    signals = {k: v for k, v in rec.signals.items() if v is not None}
    if any(paper.signals.get(k) != v for k, v in signals.items()):
        put("signals", {**paper.signals, **signals})
    if source not in paper.sources:
        put("sources", [*paper.sources, source])
    return changed


def _write(pending: _Pending, now: datetime) -> None:
    if pending.created:
        Paper.objects.bulk_create(pending.created.values(), batch_size=500)
    if pending.changed:
        fields = sorted(pending.changed_fields | {"last_seen", "updated_at"})
        for paper in pending.changed.values():
            paper.last_seen = now
            paper.updated_at = now
        Paper.objects.bulk_update(pending.changed.values(), fields, batch_size=500)
    unchanged = [pk for pk in pending.seen if pk not in pending.changed]
    if unchanged:
        Paper.objects.filter(pk__in=unchanged).update(last_seen=now)
