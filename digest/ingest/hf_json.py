"""Hugging Face daily-papers JSON: the API's array of items, streamed item by item.

The API returns ``[{"paper": {...}, "title": ..., "publishedAt": ..., "numComments": ...}, ...]``.
A page's embedded data has the same items under ``{"dailyPapers": [...]}``; some exports drop
the wrapper and list the paper objects themselves. All three are accepted.

The array is read with ijson so memory stays flat however long the dump is; a dump that breaks
off keeps the items read before the break.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

import ijson

from digest.ingest.dates import parse_iso_date
from digest.ingest.decoding import replay, split_bom
from digest.ingest.normalize import EXCERPT, clean_text, normalize_arxiv_id, safe_url
from digest.ingest.records import DumpError, Note, PaperRecord, Rejected

Entry = PaperRecord | Rejected | Note

_PEEK = 64
_WHITESPACE = b" \t\r\n"
_NOT_AN_OBJECT = "entry is not an object"


def parse_hf_json(stream: BinaryIO, *, today: date) -> Iterator[Entry]:
    """Parse an HF daily-papers JSON dump (``today`` is unused: JSON dates carry their year)."""
    del today  # same signature as the other parsers; JSON dates are complete
    head, stream = _open(stream)
    if head.startswith(b"["):
        yield from _stream_array(stream)
    elif head.startswith(b"{"):
        yield from parse_items(_daily_papers(_load(stream)))
    else:
        _load(stream)  # raises "not valid JSON" for garbage
        raise DumpError("JSON of the wrong shape: expected a list of papers, got a single value")


def _open(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """Skip a BOM and leading whitespace; return the first bytes and a stream that starts there.

    UTF-16/32 JSON (rare, but some Windows tools write it) is re-encoded to UTF-8 in memory,
    because ijson reads UTF-8 only.
    """
    head = stream.read(_PEEK)
    codec, body = split_bom(head)
    if codec is not None and codec != "utf-8":
        text = (body + stream.read()).decode(codec, errors="replace").lstrip("\ufeff")
        stream, body = io.BytesIO(text.encode("utf-8")), b""
    body = body.lstrip(_WHITESPACE)
    while not body:
        chunk = stream.read(_PEEK)
        if not chunk:
            raise DumpError("empty file")
        body = chunk.lstrip(_WHITESPACE)
    return body[:1], replay(body, stream)


def _short(error: Exception) -> str:
    """First line of a parser message (ijson's quote the input over several lines)."""
    message = error.args[0] if error.args else str(error)
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return str(message).strip().splitlines()[0][:200] if str(message).strip() else "parse error"


def _load(stream: BinaryIO) -> Any:
    try:
        return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DumpError(f"not valid JSON: {_short(error)}") from error


def _daily_papers(document: Any) -> list[Any]:
    papers = document.get("dailyPapers") if isinstance(document, dict) else None
    if not isinstance(papers, list):
        raise DumpError("JSON of the wrong shape: an object without a 'dailyPapers' list")
    return papers


def _stream_array(stream: BinaryIO) -> Iterator[Entry]:
    count = 0
    try:
        for count, item in enumerate(ijson.items(stream, "item", use_float=True), start=1):
            yield item_to_record(item, count)
    except ijson.JSONError as error:
        if count == 0:
            raise DumpError(f"not valid JSON: {_short(error)}") from error
        kind = "truncated" if "premature EOF" in _short(error) else "invalid"
        reason = f"{kind} JSON after entry {count}: {_short(error)}"
        yield Rejected(count + 1, reason)


def parse_items(items: list[Any], listing_date: date | None = None) -> Iterator[Entry]:
    """Records for already-loaded items; ``listing_date`` stands in when an item has none."""
    for position, item in enumerate(items, start=1):
        yield item_to_record(item, position, listing_date)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return clean_text(value) if isinstance(value, str) else ""


def _authors(paper: dict[str, Any]) -> list[str]:
    """Visible author names: an author marked hidden asked not to be shown."""
    authors = paper.get("authors")
    if not isinstance(authors, list):
        return []
    names = []
    for author in authors:
        if isinstance(author, dict):
            name = "" if author.get("hidden") else _text(author.get("name"))
        else:
            name = _text(author)
        if name:
            names.append(name)
    return names


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def item_to_record(item: Any, position: int, listing_date: date | None = None) -> Entry:
    """One daily-papers item (wrapped ``{"paper": ...}`` or a bare paper) as a record."""
    if not isinstance(item, dict):
        return Rejected(position, _NOT_AN_OBJECT, str(item)[:EXCERPT])
    inner = item.get("paper")
    wrapped = isinstance(inner, dict)
    paper: dict[str, Any] = inner if isinstance(inner, dict) else item
    if wrapped:
        listing_date = parse_iso_date(item.get("publishedAt")) or listing_date
    record = PaperRecord(
        # The item's own title is the unwrapped one; paper.title keeps arXiv's hard wraps.
        title=_text(item.get("title")) or _text(paper.get("title")),
        abstract=_text(paper.get("summary")),
        position=position,
        arxiv_id=normalize_arxiv_id(_str(paper.get("id"))),
        authors=_authors(paper),
        published_on=parse_iso_date(paper.get("publishedAt")),
        listing_date=listing_date,
        url_code=safe_url(_str(paper.get("githubRepo"))),
        url_project=safe_url(_str(paper.get("projectPage"))),
        upvotes=_count(paper.get("upvotes")),
    )
    _add_derived(record, item, paper)
    return record


def _add_derived(record: PaperRecord, item: dict[str, Any], paper: dict[str, Any]) -> None:
    """Fields computed from the id, and the popularity signals."""
    record.author_count = len(record.authors) or None
    if record.arxiv_id:
        record.url_page = f"https://huggingface.co/papers/{record.arxiv_id}"
        record.url_abs = f"https://arxiv.org/abs/{record.arxiv_id}"
        record.url_pdf = f"https://arxiv.org/pdf/{record.arxiv_id}"
    if (comments := _count(item.get("numComments"))) is not None:
        record.signals["comments"] = comments
    if (stars := _count(paper.get("githubStars"))) is not None:
        record.signals["github_stars"] = stars
